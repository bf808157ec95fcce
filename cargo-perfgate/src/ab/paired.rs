//! The paired loop of `--ab` and `calibrate`: rounds of each scenario against both sides in ABBA
//! order, looks on the plan fixed in advance, and the scenario's report assembled from both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use perfgate_runtime::format::{LoadModel, ScenarioResult, ScenarioSpec};

use crate::discover::{PerfPackage, Scenario};
use crate::error::{Error, Result};
use crate::gate::contention::Contention;
use crate::gate::sequential::{self, Look, Plan, Stop};
use crate::gate::{Decision, GateOptions, Outcome, RoundStats, ScenarioPair};
use crate::load::window::{round_estimate, spec_parts, Window};
use crate::load::{self, PreparedPackage, RunOptions};
use crate::procs;
use crate::results::{AbRounds, ScenarioRun};
use crate::service::pool::Services;
use crate::slo::{self, Evidence, Verdict};
use crate::ui::Ui;

/// Time the whole `--ab` load may take unless `--budget` says otherwise.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(300);

/// Pairs before the first look unless `--rounds` says otherwise: fewer cannot decide anything at the
/// per-look level (a paired t with 5 degrees of freedom), more waste time on clear cases.
pub const DEFAULT_MIN_PAIRS: usize = 6;

/// Pairs per scenario at most, whatever the budget: beyond this the round-to-round drift, not the
/// sample size, limits what can be resolved.
pub const MAX_PAIRS: usize = 100;

/// What one side of the comparison is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Base,
    Head,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Base => "base",
            Side::Head => "head",
        }
    }
}

/// How the paired rounds of a run are sampled.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// The load of the whole run (both sides, every scenario) may take this long.
    pub budget: Duration,
    /// Pairs before the first look.
    pub min_pairs: usize,
    /// Exactly this many pairs, no looks (calibration).
    pub fixed_pairs: Option<usize>,
    /// Family-wise false-alarm rate of the run, split evenly over its scenarios.
    pub alpha: f64,
    /// `cargo perfgate calibrate`'s floors for this machine, by scenario id.
    pub floors: BTreeMap<String, sequential::NoiseFloor>,
    /// Scenarios whose cost checks already failed (the cost passes run first): their wall clock is
    /// sampled to the first look only, with the whole of their alpha, for the report's figures.
    pub cost_failed: BTreeSet<String>,
}

/// A scenario measured on both sides.
pub struct Paired {
    /// HEAD's side, as a plain run reports it, with `ab` and `regressions` filled in.
    pub report: ScenarioRun,
    /// The look schedule it was sampled under (for calibration's floor).
    pub plan: Option<Plan>,
}

/// Runs every scenario of `head` (and the same scenario of `base`, by position) in paired rounds.
/// `head` and `base` hold the same packages in the same order; their scenarios are HEAD's (the
/// binaries that drive the load), their services each side's own.
pub fn run_paired(
    head: &[PreparedPackage<'_>],
    base: &[PreparedPackage<'_>],
    run_dir: &Path,
    opts: &RunOptions,
    sampling: &Sampling,
    base_commit: &str,
    ui: &Ui,
) -> Result<Vec<Paired>> {
    let started = Instant::now();
    let total: usize = head.iter().map(|r| r.scenarios.len()).sum();
    let alpha_scenario = sampling.alpha / total.max(1) as f64;
    let head_dir = run_dir.join("scenarios").join("head");
    let base_dir = run_dir.join("scenarios").join("base");
    let base_logs = run_dir.join("base");
    for d in [&head_dir, &base_dir, &base_logs] {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    // What each scenario needs, fixed before any pair is run (so the split costs no alpha): its
    // pairs' time, times the pairs its calibrated noise needs (the same for all without calibration).
    let needs: Vec<f64> = head
        .iter()
        .flat_map(|h| h.scenarios.iter().map(move |s| (h, s)))
        .map(|(h, s)| {
            need(
                s,
                opts.window(h, s.spec.as_ref().expect("described")),
                sampling,
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut done = 0usize;
    for (h, b) in head.iter().zip(base) {
        let mut head_services = Services::new(run_dir);
        let mut base_services = Services::new(&base_logs);
        for scenario in &h.scenarios {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            // The scenario's share of what is left, in proportion to what it needs: unused time of an
            // early-decided scenario goes to the later ones.
            let left = sampling.budget.saturating_sub(started.elapsed());
            let rest: f64 = needs[done..].iter().sum();
            // (Calibration runs fixed pairs under an unbounded budget: no share to compute then.)
            let share = if rest > 0.0 {
                Duration::try_from_secs_f64(left.as_secs_f64() * (needs[done] / rest))
                    .unwrap_or(left)
            } else {
                left / (total - done).max(1) as u32
            };
            let sides = SideRuns {
                head: (h, &mut head_services, &head_dir),
                base: (b, &mut base_services, &base_dir),
            };
            let paired = run_one(
                scenario,
                sides,
                opts,
                sampling,
                share,
                alpha_scenario,
                base_commit,
                ui,
            )?;
            load::announce_done(ui, &paired.report, false);
            out.push(paired);
            done += 1;
        }
        head_services.stop_all(&h.pkg.name, ui);
        base_services.stop_all(&b.pkg.name, ui);
    }
    Ok(out)
}

/// A scenario's need for time, before anything is measured: the seconds of a pair times the pairs
/// its noisiest check needs to resolve its tolerance at the final look's level, from the noise
/// `cargo perfgate calibrate` measured; [`NEED_PAIRS_UNCALIBRATED`] pairs without it.
fn need(s: &Scenario, window: Window, sampling: &Sampling) -> f64 {
    let Some(spec) = &s.spec else { return 0.0 };
    let pair_secs = 2.0 * round_estimate(window).as_secs_f64();
    if sampling.cost_failed.contains(&s.id) {
        return pair_secs * sampling.min_pairs as f64;
    }
    let tolerance = (spec.regression_pct / 100.0).max(1e-3);
    let pairs = sampling
        .floors
        .get(&s.id)
        .and_then(|f| {
            f.sd.values()
                .map(|sd| sequential::pairs_to_resolve(*sd, tolerance, f.alpha_look))
                .max()
        })
        .unwrap_or(NEED_PAIRS_UNCALIBRATED);
    pair_secs * pairs.clamp(sampling.min_pairs, MAX_PAIRS) as f64
}

/// Takes back the round the other side ran before `starved`'s in this pair (in `order`), if any.
fn unpair(order: [Side; 2], starved: Side, head: &mut Rounds, base: &mut Rounds) {
    if order[1] != starved {
        return;
    }
    let other = match order[0] {
        Side::Head => head,
        Side::Base => base,
    };
    other.results.pop();
    other.contention.pop();
    if other.results.is_empty() {
        other.first = None;
    }
}

/// Why a round is invalid only because the generator did not get the CPU in time (a neighbour took
/// it for a moment), or None. Such a round sets its pair aside. A round the service made invalid
/// (starts that waited for a free slot, dropped starts) does not: its slowness is what the pairs
/// compare, and setting aside the slowest rounds would hide a regression.
fn generator_starved(r: &ScenarioRun) -> Option<String> {
    let result = r.result.as_ref()?;
    let s = &result.schedule;
    let only_late = s.late > 0 && s.late_waiting == 0 && s.dropped == 0;
    (r.verdict == Verdict::Invalid && r.error.is_none() && only_late && result.iterations.count > 0)
        .then(|| r.invalid_reason().to_string())
}

/// Pairs set aside for an invalid round before the scenario stops as unmeasurable: at most this
/// many, or a fifth of the pairs attempted when more. Under one busy loop on 2 cores the generator
/// fell behind in about one round in 25, and three times within 8 pairs once: such moments come
/// in clusters, and two ended runs the rest of which measured well.
const MAX_INVALID_PAIRS: usize = 3;

/// Whether one more pair set aside, with `set_aside` before it and `tried` pairs attempted in all
/// (this one included), is one too many.
fn too_many_set_aside(set_aside: usize, tried: usize) -> bool {
    set_aside + 1 > MAX_INVALID_PAIRS.max(tried / 5)
}

/// Pairs assumed needed by a scenario without calibration: all scenarios alike, so the budget is
/// split by the time their pairs take.
const NEED_PAIRS_UNCALIBRATED: usize = 20;

type SideRun<'r, 'a, 's> = (&'r PreparedPackage<'a>, &'r mut Services<'s>, &'r Path);

struct SideRuns<'r, 'a, 's> {
    head: SideRun<'r, 'a, 's>,
    base: SideRun<'r, 'a, 's>,
}

/// One side's rounds of a scenario.
#[derive(Default)]
struct Rounds {
    results: Vec<ScenarioResult>,
    /// How busy the machine was during each round (`results[i]`'s).
    contention: Vec<Option<Contention>>,
    /// The first round's report (log, resources): what the scenario's row shows.
    first: Option<ScenarioRun>,
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    scenario: &Scenario,
    sides: SideRuns<'_, '_, '_>,
    opts: &RunOptions,
    sampling: &Sampling,
    share: Duration,
    alpha_scenario: f64,
    base_commit: &str,
    ui: &Ui,
) -> Result<Paired> {
    let spec = scenario
        .spec
        .clone()
        .expect("scenarios are described before they run");
    let started = Instant::now();
    let window = opts.window(sides.head.0, &spec);
    load::announce_start(ui, scenario, &spec, window, 1);
    let cost_failed = sampling.cost_failed.contains(&scenario.id);
    let estimate = round_estimate(window);
    let (plan, max_pairs) = match sampling.fixed_pairs {
        Some(n) => (None, n),
        None => {
            let affordable = (share.as_secs_f64() / (2.0 * estimate.as_secs_f64())) as usize;
            let max_pairs = if cost_failed {
                sampling.min_pairs
            } else {
                affordable.clamp(sampling.min_pairs, MAX_PAIRS)
            };
            (
                Some(sequential::plan(
                    sampling.min_pairs,
                    max_pairs,
                    alpha_scenario,
                )),
                max_pairs,
            )
        }
    };
    let consts = Consts {
        tolerance: spec.regression_pct / 100.0,
        compare_throughput: matches!(spec.load, LoadModel::Closed { .. }),
    };
    let quiet = Ui {
        quiet: true,
        verbose: ui.verbose,
    };
    let mut head = Rounds::default();
    let mut base = Rounds::default();
    let mut failure: Option<(Side, ScenarioRun)> = None;
    let mut last: Option<Look> = None;
    let mut stopped;
    let mut pairs = 0usize;
    // Pairs set aside because one round was invalid (the generator fell behind its schedule: a
    // neighbour took the CPU for a moment), with why.
    let mut invalid_pairs: Vec<String> = Vec::new();
    loop {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        let elapsed = started.elapsed();
        if pairs >= max_pairs {
            // Only calibration gets here (a plan stops at its last look).
            stopped = format!("{pairs} A/A pairs were run");
            break;
        }
        // Another pair would overrun the scenario's share of the budget (a pair's time as measured).
        if let Some(plan) = &plan {
            if pairs >= sampling.min_pairs && elapsed + elapsed / pairs as u32 > share {
                let l = match last.take() {
                    Some(l) if l.pairs == pairs => l,
                    // One last look at what there is, with the alpha the plan had left for the looks
                    // that will not happen.
                    _ => last_look(plan, pairs, &scenario.id, &head, &base, &consts, sampling).1,
                };
                stopped = sequential::describe_stop(Stop::Budget, &l, sampling.budget);
                last = Some(l);
                break;
            }
        }
        let order = if pairs % 2 == 0 {
            [Side::Base, Side::Head]
        } else {
            [Side::Head, Side::Base]
        };
        ui.status(
            "Pair",
            &format!(
                "{} of {} ({} then {})",
                pairs + 1,
                scenario.id,
                order[0].name(),
                order[1].name()
            ),
        );
        let mut invalid: Option<(Side, String, ScenarioRun)> = None;
        for side in order {
            let (run, services, dir) = match side {
                Side::Head => (sides.head.0, &mut *sides.head.1, sides.head.2),
                Side::Base => (sides.base.0, &mut *sides.base.1, sides.base.2),
            };
            let round_opts = RunOptions {
                rounds: 1,
                first_round: pairs + invalid_pairs.len(),
                gate_follows: true,
                ..opts.clone()
            };
            let r = load::run_scenario(run, scenario, dir, &round_opts, services, &quiet)?;
            let rounds = match side {
                Side::Head => &mut head,
                Side::Base => &mut base,
            };
            // An error, an invalid round, or a service that died under the load (a Fail with an
            // error) ends the scenario: its rounds cannot be paired as measured.
            let broken =
                matches!(r.verdict, Verdict::Error | Verdict::Invalid) || r.error.is_some();
            if let Some(why) = generator_starved(&r) {
                invalid = Some((side, why, r));
                break;
            }
            match (&r.result, broken) {
                (None, _) | (_, true) => {
                    failure = Some((side, r));
                    break;
                }
                (Some(result), false) => {
                    rounds.results.push(result.clone());
                    rounds
                        .contention
                        .push(r.contention.first().cloned().flatten());
                    if rounds.first.is_none() {
                        rounds.first = Some(r);
                    }
                }
            }
        }
        if failure.is_some() {
            stopped = "a round could not be measured".to_string();
            break;
        }
        if let Some((side, why, r)) = invalid {
            // The pair goes, the other side's round with it (unpaired, it would compare unequal
            // moments). A few such pairs are a disturbed machine; many are a generator that cannot
            // keep this schedule here, which the scenario's report then says.
            unpair(order, side, &mut head, &mut base);
            let tried = pairs + invalid_pairs.len() + 1;
            if too_many_set_aside(invalid_pairs.len(), tried) {
                // This one ends the scenario: its report says why, the list the ones before.
                failure = Some((side, r));
                stopped = "a round could not be measured".to_string();
                break;
            }
            invalid_pairs.push(format!("{}'s round: {why}", side.name()));
            continue;
        }
        pairs += 1;
        let Some(plan) = &plan else { continue };
        if let Some(k) = plan.look_at(pairs) {
            let l = look(&scenario.id, &head, &base, &consts, plan, k, sampling);
            let per_pair = started.elapsed() / pairs as u32;
            let spent = started.elapsed() + per_pair > share;
            let mut stop = sequential::should_stop(&l.decisions, pairs, plan, spent);
            let mut l = l;
            if stop == Some(Stop::Budget) {
                // This look is the last: decide it with all the alpha the later looks would have had.
                let (cut, last) =
                    last_look(plan, pairs, &scenario.id, &head, &base, &consts, sampling);
                l = last;
                stop = match sequential::should_stop(&l.decisions, pairs, &cut, true) {
                    Some(Stop::MaxPairs) => Some(Stop::Budget),
                    other => other,
                };
            }
            if let Some(stop) = stop {
                stopped = if cost_failed {
                    sequential::describe_cost_stop(&l)
                } else {
                    sequential::describe_stop(stop, &l, sampling.budget)
                };
                last = Some(l);
                break;
            }
            ui.status(
                "Look",
                &format!(
                    "{} after {pairs} pairs: {} of {} checks decided",
                    scenario.id,
                    l.decisions
                        .iter()
                        .filter(|d| d.outcome != Outcome::Inconclusive)
                        .count(),
                    l.decisions.len()
                ),
            );
            last = Some(l);
        }
    }
    if !invalid_pairs.is_empty() {
        let n = invalid_pairs.len();
        stopped = format!(
            "{stopped}; set aside: {n} {} with an invalid round ({})",
            if n == 1 { "pair" } else { "pairs" },
            invalid_pairs.join("; ")
        );
    }
    let decisions = last.map(|l| l.decisions).unwrap_or_default();
    Ok(Paired {
        report: assemble(
            scenario,
            &spec,
            head,
            base,
            failure,
            decisions,
            AbRounds {
                base_commit: base_commit.to_string(),
                pairs,
                base_rounds: Vec::new(),
                stopped,
                secs: started.elapsed().as_secs_f64(),
            },
            sides.head.0.pkg,
            opts.window(sides.head.0, &spec),
        ),
        plan,
    })
}

fn to_rounds(side: &Rounds) -> Vec<RoundStats> {
    side.results
        .iter()
        .zip(side.contention.iter().chain(std::iter::repeat(&None)))
        .map(|(r, c)| RoundStats {
            contention: c.clone(),
            ..RoundStats::from(r)
        })
        .collect()
}

/// The look at `pairs` when the budget ends it: the plan cut there, every bit of alpha it had left
/// for later looks spent on this one.
fn last_look(
    plan: &Plan,
    pairs: usize,
    id: &str,
    head: &Rounds,
    base: &Rounds,
    consts: &Consts,
    sampling: &Sampling,
) -> (Plan, Look) {
    let cut = plan.ending_at(pairs);
    let l = look(id, head, base, consts, &cut, cut.looks.len() - 1, sampling);
    (cut, l)
}

/// What the checks of a scenario are held to.
struct Consts {
    tolerance: f64,
    compare_throughput: bool,
}

fn look(
    id: &str,
    head: &Rounds,
    base: &Rounds,
    consts: &Consts,
    plan: &Plan,
    k: usize,
    sampling: &Sampling,
) -> Look {
    let current = to_rounds(head);
    let baseline = to_rounds(base);
    let pair = ScenarioPair {
        scenario: id,
        tolerance: consts.tolerance,
        compare_throughput: consts.compare_throughput,
        baseline: &baseline,
        current: &current,
    };
    sequential::decide_look(
        &pair,
        &GateOptions::default(),
        plan,
        k,
        sampling.floors.get(id),
    )
}

/// HEAD's side as the scenario's report, with the base side and the decisions attached.
#[allow(clippy::too_many_arguments)]
fn assemble(
    scenario: &Scenario,
    spec: &ScenarioSpec,
    head: Rounds,
    base: Rounds,
    failure: Option<(Side, ScenarioRun)>,
    decisions: Vec<Decision>,
    mut ab: AbRounds,
    head_pkg: &PerfPackage,
    window: Window,
) -> ScenarioRun {
    let mut report = head
        .first
        .clone()
        .unwrap_or_else(|| load::empty_report(scenario, spec));
    report.checks = slo::median_checks(spec, &head.results);
    let (error, service_died, invalid) = match &failure {
        Some((_, r)) => (
            r.verdict == Verdict::Error || (r.result.is_none() && r.error.is_none()),
            r.verdict == Verdict::Fail && r.error.is_some(),
            r.verdict == Verdict::Invalid,
        ),
        None => (false, false, false),
    };
    if let Some((side, r)) = failure {
        let what = match side {
            Side::Head => "HEAD's service",
            Side::Base => "the merge-base's service",
        };
        report.error = Some(match r.error {
            Some(e) => format!("against {what}: {e}"),
            None => format!("against {what}: {}", r.invalid_reason()),
        });
        if report.result.is_none() {
            report.result = r.result;
        }
        if report.log.is_none() {
            report.log = r.log;
        }
    }
    report.spec_parts = spec_parts(spec, head_pkg, window);
    report.rounds = to_rounds(&head);
    report.contention = head.contention.clone();
    report.result = report.result.or_else(|| head.results.first().cloned());
    ab.base_rounds = to_rounds(&base);
    report.wall_secs = ab.secs;
    report.verdict = slo::verdict(&Evidence {
        error,
        service_died,
        invalid,
        checks: &report.checks,
        regressions: &decisions,
        trends: &report.trends,
        aborted: false,
    });
    report.regressions = decisions;
    report.ab = Some(ab);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::window::TierPlan;
    use std::path::PathBuf;

    #[test]
    fn a_service_that_died_on_one_side_fails_the_scenario_and_names_the_side() {
        let head_report = crate::results::tests::report().scenarios.remove(0);
        // SLOs the head's round meets: only the death can fail the scenario.
        let mut spec = head_report.spec.clone().unwrap();
        spec.slos[0].threshold = 1000.0;
        let scenario = Scenario {
            package: head_report.package.clone(),
            id: head_report.id.clone(),
            test_name: head_report.test_name.clone(),
            exe: PathBuf::from("/bin/true"),
            cwd: PathBuf::from("/"),
            target: "perf".into(),
            name: "predict".into(),
            spec: Some(spec.clone()),
        };
        let head = Rounds {
            results: vec![head_report.result.clone().unwrap()],
            contention: vec![None],
            first: Some(head_report.clone()),
        };
        let mut died = head_report.clone();
        died.verdict = Verdict::Fail;
        died.error =
            Some("service `predict-service` died during the scenario: it was killed".into());
        let ab = || AbRounds {
            base_commit: "1a2b3c4d5e".into(),
            pairs: 0,
            base_rounds: vec![],
            stopped: "a round could not be measured".into(),
            secs: 1.0,
        };
        let window = Window::of(&spec, &TierPlan::default(), None, None);
        let r = assemble(
            &scenario,
            &spec,
            head,
            Rounds::default(),
            Some((Side::Base, died)),
            vec![],
            ab(),
            &PerfPackage::at(Path::new("/")),
            window,
        );
        assert_eq!(r.verdict, Verdict::Fail);
        let err = r.error.unwrap();
        assert!(
            err.starts_with("against the merge-base's service: service `predict-service` died"),
            "{err}"
        );
        // A round without results is an error, not a failure of the service.
        let mut empty = head_report.clone();
        empty.result = None;
        empty.error = None;
        empty.verdict = Verdict::Error;
        let r = assemble(
            &scenario,
            &spec,
            Rounds::default(),
            Rounds::default(),
            Some((Side::Head, empty)),
            vec![],
            ab(),
            &PerfPackage::at(Path::new("/")),
            window,
        );
        assert_eq!(r.verdict, Verdict::Error);
    }

    #[test]
    fn only_a_round_the_generator_fell_behind_in_sets_its_pair_aside() {
        let mut late = crate::results::tests::report().scenarios.remove(0);
        late.verdict = Verdict::Invalid;
        {
            let r = late.result.as_mut().unwrap();
            r.schedule.intended = 2000;
            r.schedule.late = 33;
            r.invalid = Some("1.6% of 2000 scheduled starts were late or dropped".into());
        }
        assert_eq!(
            generator_starved(&late).as_deref(),
            Some("1.6% of 2000 scheduled starts were late or dropped")
        );
        // The service's slowness made it invalid: that round is what the pairs compare.
        let mut waited = late.clone();
        waited.result.as_mut().unwrap().schedule.late_waiting = 5;
        assert_eq!(generator_starved(&waited), None);
        let mut dropped = late.clone();
        dropped.result.as_mut().unwrap().schedule.dropped = 1;
        assert_eq!(generator_starved(&dropped), None);
        let mut died = late.clone();
        died.error = Some("service died".into());
        assert_eq!(generator_starved(&died), None);
        let mut valid = late.clone();
        valid.verdict = Verdict::Pass;
        assert_eq!(generator_starved(&valid), None);

        // The pair goes whole: the other side's round of it is taken back when it ran first.
        let round = || late.result.clone().unwrap();
        let side = |n: usize| Rounds {
            results: vec![round(); n],
            contention: vec![None; n],
            first: Some(late.clone()),
        };
        let (mut head, mut base) = (side(3), side(2));
        unpair([Side::Head, Side::Base], Side::Base, &mut head, &mut base);
        assert_eq!((head.results.len(), head.contention.len()), (2, 2));
        assert_eq!(base.results.len(), 2);
        unpair([Side::Base, Side::Head], Side::Base, &mut head, &mut base);
        assert_eq!((head.results.len(), base.results.len()), (2, 2));
        let (mut head, mut base) = (side(0), side(1));
        unpair([Side::Base, Side::Head], Side::Head, &mut head, &mut base);
        assert!(base.results.is_empty() && base.first.is_none());
    }

    #[test]
    fn a_cluster_of_three_late_rounds_is_set_aside_a_fourth_ends_the_scenario() {
        // The third within 8 pairs tried (5 measured) goes on; a fourth there ends it.
        assert!(!too_many_set_aside(2, 8));
        assert!(too_many_set_aside(3, 9));
        // Over a long run a fifth of the pairs tried may go.
        assert!(!too_many_set_aside(5, 30));
        assert!(too_many_set_aside(6, 30));
    }
}
