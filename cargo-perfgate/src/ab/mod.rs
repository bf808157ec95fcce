//! Same-machine A/B (`cargo perfgate --ab`) and its A/A twin (`cargo perfgate calibrate`).
//!
//! The merge-base is checked out as a linked worktree under `target/perfgate/ab/`, its service built
//! with a target directory of its own (`target/perfgate/ab-target`, so neither build evicts the other),
//! and both services are started on their own ports. HEAD's scenario binaries then drive them in
//! rounds, one service under load at a time, in ABBA order: pair 1 is (base, head), pair 2 (head, base),
//! and so on, so a drift of the machine (a neighbour, thermal state) hits both sides alike and the order
//! of a pair cancels out over two pairs. After each scheduled look the paired gate decides
//! (`gate::sequential`); sampling stops when every check is decided, a check fails, or the scenario's
//! share of the budget is spent.

pub mod base;
pub mod paired;
pub mod worktree;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use perfgate_runtime::format::ScenarioSpec;

use crate::baseline::lookup::Baselines;
use crate::cli::{fmt_duration, RunArgs};
use crate::cost::pass::Measured;
use crate::cost::{CostMeasurement, FunctionChange};
use crate::discover::config::AbSetting;
use crate::error::{Error, Result};
use crate::gate::cost::{self as cost_gate, CostBase, CostTolerance};
use crate::gate::sequential::{self, NoiseFloor};
use crate::gate::spec::spec_hash;
use crate::gate::{Decision, GateOptions, GateSummary, Outcome, ScenarioPair};
use crate::load::window::{spec_parts, Window};
use crate::load::PreparedPackage;
use crate::machine::{
    describe_machine, describe_toolchain, same_machine, same_toolchain, Fingerprint, Toolchain,
};
use crate::results::ScenarioRun;
use crate::service::deps::external_url;
use crate::slo::Verdict;

pub use paired::{Paired, Sampling, Side, DEFAULT_BUDGET, DEFAULT_MIN_PAIRS, MAX_PAIRS};

/// Why this run measures the merge-base on this machine, or None for the baseline file's gate.
pub fn reason(
    args: &RunArgs,
    machine: &Fingerprint,
    baselines: &Baselines,
    runs: &[PreparedPackage<'_>],
) -> Option<String> {
    if args.gate.ab {
        return Some("--ab".to_string());
    }
    if args.load.target_url.is_some() || args.gate.baseline.baseline_file.is_some() {
        return None;
    }
    if let Some(r) = runs.iter().find(|r| r.pkg.config.ab == AbSetting::Always) {
        return Some(format!(
            "`ab = \"always\"` in [package.metadata.perfgate] of {}",
            r.pkg.name
        ));
    }
    for r in runs.iter().filter(|r| r.pkg.config.ab == AbSetting::Auto) {
        // Outside git there is no merge-base to measure: the plain run says so and checks the SLOs.
        let Some(group) = baselines
            .groups
            .iter()
            .find(|g| g.packages.contains(&r.pkg.name) && g.lookup.is_some())
        else {
            continue;
        };
        let auto = |why: String| Some(format!("{why} (`ab = \"auto\"` in {})", r.pkg.name));
        let Some(file) = &group.file else {
            return auto(format!(
                "no baseline file at {}",
                group
                    .lookup
                    .as_ref()
                    .map_or_else(|| group.path.display().to_string(), |l| l.origin.clone())
            ));
        };
        if !same_machine(&file.machine, machine) && file.rounds.values().any(|r| !r.is_empty()) {
            return auto(format!(
                "the baseline was recorded on another machine ({})",
                describe_machine(&file.machine)
            ));
        }
        let toolchain = machine.toolchain();
        if let Some((id, c)) = r
            .scenarios
            .iter()
            .find_map(|s| file.cost_of(&s.id).map(|c| (&s.id, c)))
            .filter(|(_, c)| !same_toolchain(&c.toolchain, &toolchain))
        {
            return auto(format!(
                "the baseline's cost figures for {id} were measured with another toolchain ({})",
                describe_toolchain(&c.toolchain)
            ));
        }
        for s in &r.scenarios {
            let spec = s.spec.as_ref().expect("described");
            let window = Window::of(spec, &r.tier, args.load.duration, args.load.warmup);
            let hash = spec_hash(&spec_parts(spec, r.pkg, window));
            match file.scenarios.get(&s.id) {
                None => return auto(format!("scenario {} is not in the baseline", s.id)),
                Some(b) if b.spec_hash != hash => {
                    return auto(format!("scenario {} changed since the baseline", s.id))
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// Each side of `--ab` and `calibrate` gets its own instance of every dependency, set up from the same
/// steps: an existing instance from `PERFGATE_DEP_<NAME>_URL` would be shared, each side's setup,
/// resets and writes landing in the other's data, so it is refused.
pub fn require_own_deps(runs: &[PreparedPackage<'_>], mode: &str) -> Result<()> {
    for r in runs {
        for dep in r.pkg.config.deps.values() {
            if external_url(dep).is_some() {
                return Err(Error::Usage(format!(
                    "{mode} gives each side its own instance of dependency `{}` (package {}), but {} points both \
                     sides at one existing instance, where each side's setup and writes would change the other's \
                     data. Unset it to let perfgate start one per side, or run without {mode}",
                    dep.name,
                    r.pkg.name,
                    dep.external_var()
                )));
            }
        }
    }
    Ok(())
}

/// Why a file-gate run whose scenarios `contended` ran every round under contention the baseline did
/// not have goes on in the A/B mode: when one of them is in a package with `ab = "auto"`.
pub fn contended_reason(contended: &[String], runs: &[PreparedPackage<'_>]) -> Option<String> {
    let (run, id) = runs
        .iter()
        .filter(|r| r.pkg.config.ab == AbSetting::Auto)
        .find_map(|r| Some((r, r.scenarios.iter().find(|s| contended.contains(&s.id))?)))?;
    Some(format!(
        "every round of {} ran under contention the baseline did not have: measuring the merge-base \
         here, under the same conditions (`ab = \"auto\"` in {})",
        id.id, run.pkg.name
    ))
}

/// The cost checks of `--ab`: each scenario's cost pass against the merge-base's, both measured in
/// this run (one pass per side: the figures are counts, so no pairs are needed). A merge-base whose
/// pass failed makes the scenario an error; the floors are those `calibrate` stored, if any.
pub fn judge_costs(
    reports: &mut [ScenarioRun],
    mut base: BTreeMap<String, Measured>,
    machine: &Fingerprint,
    baselines: &Baselines,
    short: &str,
) {
    let toolchain = machine.toolchain();
    for r in reports.iter_mut() {
        let Some(measured) = base.remove(&r.id) else {
            continue;
        };
        let bm = match measured {
            Ok(m) => m,
            Err(e) => {
                r.attach_cost(Err(format!("the merge-base's cost pass: {e}")));
                continue;
            }
        };
        let Some(head) = r.cost.as_mut() else {
            continue;
        };
        let (decisions, attribution) = judge_cost(
            (&r.id, &r.package, r.spec.as_ref()),
            &bm,
            head,
            &toolchain,
            baselines,
            short,
        );
        head.attribution = attribution;
        r.add_regressions(decisions);
    }
}

/// The scenarios whose cost checks fail against the merge-base's, judged before the load: the
/// wall clock of such a scenario needs no more than its first look (the gate has its answer), and
/// the budget goes to the others.
pub fn failed_on_cost(
    runs: &[PreparedPackage<'_>],
    base: &BTreeMap<String, Measured>,
    head: &BTreeMap<String, Measured>,
    machine: &Fingerprint,
    baselines: &Baselines,
    short: &str,
) -> BTreeSet<String> {
    let toolchain = machine.toolchain();
    runs.iter()
        .flat_map(|r| r.scenarios.iter().map(move |s| (r.pkg.name.as_str(), s)))
        .filter(|(package, s)| {
            let (Some(Ok(b)), Some(Ok(h))) = (base.get(&s.id), head.get(&s.id)) else {
                return false;
            };
            let (decisions, _) = judge_cost(
                (&s.id, package, s.spec.as_ref()),
                b,
                h,
                &toolchain,
                baselines,
                short,
            );
            decisions.iter().any(|d| d.outcome == Outcome::Fail)
        })
        .map(|(_, s)| s.id.clone())
        .collect()
}

/// One scenario's cost checks, HEAD's figures against the merge-base's.
fn judge_cost(
    (id, package, spec): (&str, &str, Option<&ScenarioSpec>),
    base: &CostMeasurement,
    head: &CostMeasurement,
    toolchain: &Toolchain,
    baselines: &Baselines,
    short: &str,
) -> (Vec<Decision>, Vec<FunctionChange>) {
    let floors = baselines.file_for(package).and_then(|f| f.cost_floors(id));
    let tol = CostTolerance::of(spec, floors);
    let cb = CostBase {
        figures: base.figures.clone(),
        requests: base.requests.clone(),
        per_request: base.per_request,
        spec_parts: &base.spec_parts,
        toolchain,
    };
    let origin = format!("the merge-base {short} (--ab)");
    cost_gate::judge(id, &origin, Some(&cb), head, toolchain, tol)
}

/// The floors `cargo perfgate calibrate` stored for this machine, from the first baseline file that
/// has them.
pub fn floors(baselines: &Baselines, machine: &Fingerprint) -> BTreeMap<String, NoiseFloor> {
    baselines
        .groups
        .iter()
        .filter_map(|g| g.file.as_ref()?.calibration.as_ref())
        .filter(|c| same_machine(&c.machine, machine))
        .flat_map(|c| c.scenarios.clone())
        .collect()
}

/// The gate's summary of an A/B run: where the base side came from and the outcomes' counts.
pub fn summary(scenarios: &[ScenarioRun], short: &str, how: &str, budget: Duration) -> GateSummary {
    let mut g = GateSummary {
        baseline: Some(format!(
            "{short} ({how}), built and measured on this machine (--ab)"
        )),
        commit: Some(short.to_string()),
        found: true,
        same_machine: true,
        ..Default::default()
    };
    for d in scenarios.iter().flat_map(|s| &s.regressions) {
        match d.outcome {
            Outcome::Fail => g.fails += 1,
            Outcome::Inconclusive => g.inconclusive += 1,
            Outcome::NotComparable => g.not_comparable += 1,
            Outcome::Pass => {}
        }
    }
    // Sampling stops at the first regression, leaving the other checks open: no advice needed then.
    if g.inconclusive > 0 && g.fails == 0 {
        g.warnings.push(format!(
            "{} regression check{} undecided within the budget ({}); each one's note says how many pairs \
             would likely decide it (`--budget`)",
            g.inconclusive,
            if g.inconclusive == 1 { " is" } else { "s are" },
            fmt_duration(budget),
        ));
    }
    g
}

/// Calibration's findings: per scenario the noise floors, the table's rows, and the scenarios that
/// could not be measured.
#[derive(Debug, Default)]
pub struct Floors {
    pub measured: BTreeMap<String, NoiseFloor>,
    /// (scenario, declared tolerance, pairs an `--ab` run could afford, floor).
    pub rows: Vec<(String, f64, usize, NoiseFloor)>,
    pub failed: Vec<String>,
}

/// The floors of A/A pairs: per scenario, the smallest change an `--ab` run of the whole selection
/// within `budget` could resolve on this machine.
pub fn floors_from(paired: &[Paired], budget: Duration) -> Floors {
    let total = paired.len().max(1);
    let alpha_scenario = GateOptions::default().alpha / total as f64;
    let mut out = Floors::default();
    for p in paired {
        let r = &p.report;
        let Some(ab) = &r.ab else { continue };
        if !matches!(r.verdict, Verdict::Pass | Verdict::Fail) || ab.pairs < 3 {
            out.failed.push(format!(
                "{}: {}",
                r.id,
                r.error.clone().unwrap_or_else(|| "not measured".into())
            ));
            continue;
        }
        // The pairs an --ab run of the whole selection could afford for this scenario.
        let per_pair = ab.secs / ab.pairs as f64;
        let share = budget.as_secs_f64() / total as f64;
        let in_budget = ((share / per_pair) as usize).clamp(DEFAULT_MIN_PAIRS, MAX_PAIRS);
        let plan = sequential::plan(DEFAULT_MIN_PAIRS, in_budget, alpha_scenario);
        let spec = r.spec.as_ref().expect("described");
        let pair = ScenarioPair {
            scenario: &r.id,
            tolerance: spec.regression_pct / 100.0,
            compare_throughput: matches!(
                spec.load,
                perfgate_runtime::format::LoadModel::Closed { .. }
            ),
            baseline: &ab.base_rounds,
            current: &r.rounds,
        };
        let floor = sequential::noise_floor(
            &pair,
            &GateOptions::default(),
            in_budget,
            plan.alpha_final(),
        );
        out.rows.push((
            r.id.clone(),
            spec.regression_pct / 100.0,
            in_budget,
            floor.clone(),
        ));
        out.measured.insert(r.id.clone(), floor);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Decision;

    #[test]
    fn the_summary_counts_outcomes_and_advises_only_without_a_failure() {
        let mut report = crate::results::tests::report();
        let d = |outcome| Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric: perfgate_runtime::format::Metric::P99,
            outcome,
            baseline: Some(10.0),
            current: Some(10.5),
            change: Some(0.05),
            change_low: Some(-0.01),
            change_high: Some(0.11),
            tolerance: 0.10,
            rounds_baseline: 6,
            rounds_current: 6,
            note: String::new(),
            resolves: None,
        };
        report.scenarios[0].regressions = vec![d(Outcome::Inconclusive), d(Outcome::Pass)];
        let how = "merge-base of HEAD and main";
        let g = summary(&report.scenarios, "1a2b3c4d5e", how, DEFAULT_BUDGET);
        assert_eq!((g.fails, g.inconclusive), (0, 1));
        assert_eq!(g.commit.as_deref(), Some("1a2b3c4d5e"));
        assert!(g.baseline.as_deref().unwrap().contains("(--ab)"));
        assert!(
            g.warnings[0].contains("undecided within the budget (5m)"),
            "{:?}",
            g.warnings
        );
        // Sampling stops at the first failure: the open checks need no advice then.
        report.scenarios[0].regressions.push(d(Outcome::Fail));
        let g = summary(&report.scenarios, "1a2b3c4d5e", how, DEFAULT_BUDGET);
        assert_eq!((g.fails, g.inconclusive), (1, 1));
        assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    }
}
