//! Writing baseline files: `record`'s rounds and `calibrate`'s noise floors, each merged into the file
//! already there (what this run did not measure is kept) and written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::lookup::baseline_paths;
use super::{BaselineFile, Calibration, Measured, ScenarioSummary};
use crate::cli::Tier;
use crate::discover::{PerfPackage, Workspace};
use crate::error::{Error, Result};
use crate::gate::cost::CostFloors;
use crate::gate::sequential::NoiseFloor;
use crate::gate::spec::spec_hash;
use crate::machine::{same_machine, Fingerprint};
use crate::results::RunResults;
use crate::slo::Verdict;
use crate::text::describe_load;
use crate::ui::Ui;

/// The files to write and the packages each one serves: `--baseline-file` for all of them, else each
/// package's configured path.
fn targets(
    ws: &Workspace,
    packages: &[PerfPackage],
    baseline_file: Option<&Path>,
    tier: Tier,
) -> BTreeMap<PathBuf, Vec<String>> {
    match baseline_file {
        Some(f) => [(
            f.to_path_buf(),
            packages.iter().map(|p| p.name.clone()).collect(),
        )]
        .into(),
        None => baseline_paths(ws, packages, tier),
    }
}

/// The scenarios whose cost figures the files `record` merges into (the tier's) already hold:
/// re-recording them requires the cost pass.
pub fn recorded_cost(
    ws: &Workspace,
    packages: &[PerfPackage],
    baseline_file: Option<&Path>,
    tier: Tier,
) -> Result<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    for path in targets(ws, packages, baseline_file, tier).into_keys() {
        if let Some(file) = BaselineFile::read(&path)? {
            out.extend(
                file.scenarios
                    .iter()
                    .filter(|(_, s)| s.cost.is_some())
                    .map(|(id, _)| id.clone()),
            );
        }
    }
    Ok(out)
}

/// Reads the file at `path` (if any), lets `update` build the new content from it, and writes that
/// atomically; `None` from `update` leaves the file as it is.
fn rewrite(
    path: &Path,
    what: &str,
    update: impl FnOnce(Option<BaselineFile>) -> Result<Option<BaselineFile>>,
) -> Result<bool> {
    let old = BaselineFile::read(path).map_err(|e| match e {
        Error::Baseline(m) => Error::Baseline(format!(
            "{m}\n({what} merges into the existing file: move {} away to start from scratch)",
            path.display()
        )),
        other => other,
    })?;
    match update(old)? {
        Some(new) => {
            new.write_atomic(path)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// After `record` ran: writes each baseline file (merged with the old one, atomically). Refuses when a
/// selected scenario has no trustworthy measurement, rather than write a partial baseline.
pub fn write_baselines(
    ws: &Workspace,
    packages: &[PerfPackage],
    args: &crate::cli::RecordArgs,
    report: &RunResults,
    ui: &Ui,
) -> Result<()> {
    let (filter, allow_drop) = (args.filter.as_deref(), args.allow_drop);
    let cost_only = args.cost.cost_only;
    let unmeasured: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| {
            !matches!(s.verdict, Verdict::Pass | Verdict::Fail)
                || (s.result.is_none() && !cost_only)
                || (s.cost.is_none() && cost_only)
        })
        .map(|s| format!("`{}` ({})", s.id, s.verdict.as_str()))
        .collect();
    if !unmeasured.is_empty() {
        return Err(Error::Baseline(format!(
            "the baseline was not written: {} could not be measured; fix {} and record again",
            unmeasured.join(", "),
            if unmeasured.len() == 1 { "it" } else { "them" }
        )));
    }
    let commit = report.environment.git_commit.clone();
    let selected_pkgs: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let tier = args.load.tier.unwrap_or_default();
    for (path, pkgs) in targets(ws, packages, args.baseline_file.as_deref(), tier) {
        let mut new = BaselineFile::new(
            report.environment.clone(),
            commit.clone(),
            report.started_unix_ms,
        );
        for s in report
            .scenarios
            .iter()
            .filter(|s| pkgs.contains(&s.package))
        {
            let rounds = s.all_rounds();
            let load = s
                .spec
                .as_ref()
                .map(|sp| describe_load(&sp.load))
                .unwrap_or_default();
            new.insert(
                &Measured {
                    id: s.id.clone(),
                    spec_hash: spec_hash(&s.spec_parts),
                    spec_parts: s.spec_parts.clone(),
                    rounds,
                    cost: s.cost.clone().map(|c| (c, report.environment.toolchain())),
                },
                load,
            );
        }
        let selected = |id: &str| {
            let pkg = id.split("::").next().unwrap_or_default();
            pkgs.iter().any(|p| p == pkg)
                && selected_pkgs.contains(&pkg)
                && crate::cli::matches_filter(filter, id)
        };
        let recorded = new.scenarios.len();
        let mut dropped = Vec::new();
        rewrite(&path, "record", |old| {
            let (merged, d) = merge_recording(old.as_ref(), new, selected, allow_drop, &path)?;
            dropped = d;
            Ok(Some(merged))
        })?;
        let rounds = report
            .scenarios
            .iter()
            .map(|s| s.all_rounds().len())
            .max()
            .unwrap_or(0);
        let costed = report.scenarios.iter().filter(|s| s.cost.is_some()).count();
        let what = match (rounds, costed) {
            (0, _) => "cost figures".to_string(),
            (r, 0) => format!("{r} round{}", if r == 1 { "" } else { "s" }),
            (r, _) => format!(
                "{r} round{} and cost figures",
                if r == 1 { "" } else { "s" }
            ),
        };
        ui.status(
            "Recorded",
            &format!(
                "{recorded} scenario{} ({what}) to {}{}",
                if recorded == 1 { "" } else { "s" },
                path.display(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!(" (dropped: {})", dropped.join(", "))
                }
            ),
        );
    }
    Ok(())
}

/// Merges a new recording into the old file: selected scenarios are replaced, unselected ones kept.
/// Of a re-recorded scenario, what this recording did not measure is kept: its latency rounds after
/// `record --cost-only`, its cost figures after `record --no-cost`.
/// Scenarios of the old file that were selected (`selected(id)`) but not measured now would be dropped:
/// refused unless `allow_drop`, naming them.
pub fn merge_recording(
    old: Option<&BaselineFile>,
    mut new: BaselineFile,
    selected: impl Fn(&str) -> bool,
    allow_drop: bool,
    path: &Path,
) -> Result<(BaselineFile, Vec<String>)> {
    let mut dropped = Vec::new();
    if let Some(old) = old {
        // A re-recording keeps the machine's calibration, which `record` does not measure.
        if new.calibration.is_none() {
            new.calibration = old.calibration.clone();
        }
        for (id, summary) in &old.scenarios {
            if let Some(fresh) = new.scenarios.get_mut(id) {
                if fresh.cost.is_none() && summary.cost.is_some() {
                    fresh.cost = summary.cost.clone();
                    if let Some(f) = old.cost_functions.get(id) {
                        new.cost_functions.insert(id.clone(), f.clone());
                    }
                }
                if fresh.rounds == 0 && summary.rounds > 0 {
                    let cost = fresh.cost.take();
                    *fresh = ScenarioSummary {
                        cost,
                        ..summary.clone()
                    };
                    if let Some(r) = old.rounds.get(id) {
                        new.rounds.insert(id.clone(), r.clone());
                    }
                }
                continue;
            }
            if selected(id) {
                dropped.push(id.clone());
            } else {
                new.scenarios.insert(id.clone(), summary.clone());
                if let Some(r) = old.rounds.get(id) {
                    new.rounds.insert(id.clone(), r.clone());
                }
                if let Some(f) = old.cost_functions.get(id) {
                    new.cost_functions.insert(id.clone(), f.clone());
                }
            }
        }
    }
    if !dropped.is_empty() && !allow_drop {
        return Err(Error::Baseline(format!(
            "{} holds scenario{} {} that this run did not record (removed, renamed, or failed to run); \
             the file was left unchanged. If they are gone on purpose, run `cargo perfgate record --allow-drop`",
            path.display(),
            if dropped.len() == 1 { "" } else { "s" },
            dropped
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((new, dropped))
}

/// What `calibrate` measured, to be written.
pub struct Calibrated<'a> {
    /// The A/A pairs' floors per scenario (latency checks, for `--ab`).
    pub floors: &'a BTreeMap<String, NoiseFloor>,
    /// The repeated cost passes' floors per scenario.
    pub cost: &'a BTreeMap<String, CostFloors>,
    pub machine: &'a Fingerprint,
    pub head_commit: Option<String>,
    pub pairs: usize,
    pub budget_secs: f64,
    pub now_unix_ms: u64,
    /// The tier measured: each tier but smoke has its own file.
    pub tier: Tier,
}

/// After `calibrate` ran: the noise floors into each baseline file (or `--baseline-file`), keeping
/// the floors of scenarios this run did not measure (the latency ones when they were taken on this
/// machine; the cost ones always, as they do not depend on the machine). A file that does not exist
/// yet is created with the floors only.
pub fn write_calibration(
    ws: &Workspace,
    baseline_file: Option<&Path>,
    c: &Calibrated<'_>,
    ui: &Ui,
) -> Result<()> {
    let ours = |pkgs: &[String], id: &str| {
        pkgs.iter()
            .any(|p| id.split("::").next() == Some(p.as_str()))
    };
    for (path, pkgs) in targets(ws, &ws.packages, baseline_file, c.tier) {
        let mine: BTreeMap<String, NoiseFloor> = c
            .floors
            .iter()
            .filter(|(id, _)| ours(&pkgs, id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mine_cost: BTreeMap<String, CostFloors> = c
            .cost
            .iter()
            .filter(|(id, _)| ours(&pkgs, id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if mine.is_empty() && mine_cost.is_empty() {
            continue;
        }
        rewrite(&path, "calibrate", |old| {
            let mut file = old.unwrap_or_else(|| {
                BaselineFile::new(c.machine.clone(), c.head_commit.clone(), c.now_unix_ms)
            });
            let old_cal = file.calibration.take();
            let mut cost = old_cal.as_ref().map(|o| o.cost.clone()).unwrap_or_default();
            cost.extend(mine_cost);
            let same = old_cal
                .as_ref()
                .is_some_and(|o| same_machine(&o.machine, c.machine));
            let mut scenarios = old_cal
                .filter(|_| same)
                .map(|o| o.scenarios)
                .unwrap_or_default();
            scenarios.extend(mine);
            file.calibration = Some(Calibration {
                machine: c.machine.clone(),
                recorded_unix_ms: c.now_unix_ms,
                pairs: c.pairs,
                budget_secs: c.budget_secs,
                scenarios,
                cost,
            });
            Ok(Some(file))
        })?;
        ui.status(
            "Calibrated",
            &format!("noise floors written to {}", path.display()),
        );
    }
    Ok(())
}
