//! The regression gate applied to a run: current rounds against the baseline's, per scenario, with the
//! spec hash and the machine fingerprint checked first. Shared by `cargo perfgate` (against the baseline
//! at the merge-base) and `cargo perfgate compare BASE HEAD` (two files, offline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfgate_runtime::format::{LoadModel, Metric, ScenarioSpec};
use serde::{Deserialize, Serialize};

use crate::baseline::{self, BaselineFile};
use crate::check::Verdict;
use crate::cli::{CommonArgs, CompareArgs, GateArgs, MessageFormat};
use crate::discover::PerfPackage;
use crate::error::{exit, Error, Result};
use crate::gate::{self, Decision, GateOptions, Outcome, RoundStats, ScenarioPair};
use crate::git;
use crate::report::{Fingerprint, RunReport, ScenarioReport};
use crate::ui::Ui;

/// Options of the gate given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct GateFlags {
    /// Inconclusive checks and a missing or incomparable baseline exit 3 instead of warning.
    pub strict: bool,
    /// Compare with a baseline recorded on another machine as if it were this one.
    pub allow_other_machine: bool,
}

/// One side of a comparison: its scenarios' rounds and what makes them comparable.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// What the side is, for messages: `perfgate.baseline.toml at 1a2b3c (merge-base …)`, a path.
    pub origin: String,
    pub machine: Fingerprint,
    pub scenarios: BTreeMap<String, SideScenario>,
}

#[derive(Debug, Clone, Default)]
pub struct SideScenario {
    pub rounds: Vec<RoundStats>,
    pub spec_hash: Option<String>,
    pub spec_parts: BTreeMap<String, String>,
    pub spec: Option<ScenarioSpec>,
}

impl Side {
    pub fn from_baseline(file: &BaselineFile, origin: &str) -> Side {
        let scenarios = file
            .scenarios
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    SideScenario {
                        rounds: file.rounds_of(id),
                        spec_hash: Some(s.spec_hash.clone()),
                        spec_parts: s.spec_parts.clone(),
                        spec: None,
                    },
                )
            })
            .collect();
        Side {
            origin: origin.to_string(),
            machine: file.machine.clone(),
            scenarios,
        }
    }

    /// The scenarios of a run that measured something trustworthy (not errored, not invalid).
    pub fn from_reports(reports: &[ScenarioReport], machine: &Fingerprint, origin: &str) -> Side {
        let scenarios = reports
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Pass | Verdict::Fail))
            .filter_map(|r| {
                let rounds = r.all_rounds();
                (!rounds.is_empty()).then(|| {
                    (
                        r.id.clone(),
                        SideScenario {
                            rounds,
                            spec_hash: (!r.spec_parts.is_empty())
                                .then(|| baseline::spec_hash(&r.spec_parts)),
                            spec_parts: r.spec_parts.clone(),
                            spec: r.spec.clone(),
                        },
                    )
                })
            })
            .collect();
        Side {
            origin: origin.to_string(),
            machine: machine.clone(),
            scenarios,
        }
    }
}

/// What the gate found for a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct GateSummary {
    /// Where the baseline was read from (or looked for).
    pub baseline: Option<String>,
    /// The commit it was read at.
    pub commit: Option<String>,
    /// Whether a baseline file was found there.
    pub found: bool,
    /// Whether it was recorded on a machine like this one.
    pub same_machine: bool,
    pub fails: usize,
    pub inconclusive: usize,
    pub not_comparable: usize,
    /// Said on stderr and kept here for reports.
    pub warnings: Vec<String>,
}

fn not_comparable(id: &str, note: String, tolerance: f64, b: usize, c: usize) -> Decision {
    Decision {
        scenario: id.to_string(),
        request: None,
        metric: Metric::P99,
        outcome: Outcome::NotComparable,
        baseline: None,
        current: None,
        change: None,
        change_low: None,
        change_high: None,
        tolerance,
        rounds_baseline: b,
        rounds_current: c,
        note,
    }
}

/// Every scenario of `head` against `base`: decisions per scenario id, and the warnings to show.
pub fn gate(
    base: &Side,
    head: &Side,
    flags: GateFlags,
) -> (BTreeMap<String, Vec<Decision>>, GateSummary) {
    let mut out: BTreeMap<String, Vec<Decision>> = BTreeMap::new();
    let mut summary = GateSummary {
        baseline: Some(base.origin.clone()),
        found: true,
        same_machine: baseline::same_machine(&base.machine, &head.machine),
        ..Default::default()
    };
    let mut pairs = Vec::new();
    for (id, cur) in &head.scenarios {
        let spec = cur
            .spec
            .as_ref()
            .or_else(|| base.scenarios.get(id).and_then(|b| b.spec.as_ref()));
        let tolerance = spec.map_or(perfgate_runtime::format::DEFAULT_REGRESSION_PCT, |s| {
            s.regression_pct
        }) / 100.0;
        let Some(old) = base.scenarios.get(id) else {
            out.entry(id.clone()).or_default().push(not_comparable(
                id,
                format!("no baseline for this scenario in {} (a new scenario? it is compared once the baseline is re-recorded on the base branch)", base.origin),
                tolerance,
                0,
                cur.rounds.len(),
            ));
            continue;
        };
        if let (Some(a), Some(b)) = (&old.spec_hash, &cur.spec_hash) {
            if a != b {
                out.entry(id.clone()).or_default().push(not_comparable(
                    id,
                    format!(
                        "not comparable: the scenario changed since the baseline ({}); re-record the baseline",
                        baseline::describe_spec_change(&old.spec_parts, &cur.spec_parts)
                    ),
                    tolerance,
                    old.rounds.len(),
                    cur.rounds.len(),
                ));
                continue;
            }
        }
        if old.rounds.is_empty() {
            out.entry(id.clone()).or_default().push(not_comparable(
                id,
                format!(
                    "the baseline in {} has no rounds for this scenario",
                    base.origin
                ),
                tolerance,
                0,
                cur.rounds.len(),
            ));
            continue;
        }
        let compare_throughput = spec.is_some_and(|s| matches!(s.load, LoadModel::Closed { .. }));
        pairs.push(ScenarioPair {
            scenario: id.as_str(),
            tolerance,
            compare_throughput,
            baseline: &old.rounds,
            current: &cur.rounds,
        });
    }
    let decisions = if pairs.is_empty() {
        Vec::new()
    } else {
        gate::decide(&pairs, &GateOptions::default())
    };
    let other_machine = !summary.same_machine && !flags.allow_other_machine;
    for mut d in decisions {
        if other_machine && matches!(d.outcome, Outcome::Pass | Outcome::Fail) {
            d.note = format!(
                "would be {} on the same machine; the baseline was recorded on another machine: {}",
                match d.outcome {
                    Outcome::Fail => "FAIL",
                    _ => "pass",
                },
                d.note
            );
            d.outcome = Outcome::Inconclusive;
        }
        out.entry(d.scenario.clone()).or_default().push(d);
    }
    if !summary.same_machine {
        summary.warnings.push(format!(
            "the baseline in {} was recorded on another machine ({}; this one: {}){}",
            base.origin,
            baseline::describe_machine(&base.machine),
            baseline::describe_machine(&head.machine),
            if flags.allow_other_machine {
                "; compared anyway (--allow-other-machine)"
            } else {
                "; its checks are inconclusive. Re-record the baseline on the CI runner, or pass --allow-other-machine"
            }
        ));
    }
    for ds in out.values() {
        for d in ds {
            match d.outcome {
                Outcome::Fail => summary.fails += 1,
                Outcome::Inconclusive => summary.inconclusive += 1,
                Outcome::NotComparable => summary.not_comparable += 1,
                Outcome::Pass => {}
            }
        }
    }
    if summary.inconclusive > 0 && !other_machine {
        summary.warnings.push(format!(
            "{} regression check{} inconclusive: the rounds are too noisy or too few to decide (more rounds with \
             `--rounds N` or a longer `--duration` would help)",
            summary.inconclusive,
            if summary.inconclusive == 1 { " is" } else { "s are" }
        ));
    }
    (out, summary)
}

/// Attaches the decisions to the scenarios and fails those with a failed check.
pub fn apply(
    reports: &mut [ScenarioReport],
    mut decisions: BTreeMap<String, Vec<Decision>>,
    include: impl Fn(&ScenarioReport) -> bool,
) {
    for r in reports.iter_mut().filter(|r| include(r)) {
        r.regressions = decisions.remove(&r.id).unwrap_or_default();
        if r.verdict == Verdict::Pass && r.regressions.iter().any(|d| d.outcome == Outcome::Fail) {
            r.verdict = Verdict::Fail;
        }
    }
}

/// The summary when no baseline was found where it was looked for.
pub fn no_baseline(origin: &str, commit: Option<&str>, why: String) -> GateSummary {
    GateSummary {
        baseline: Some(origin.to_string()),
        commit: commit.map(str::to_string),
        found: false,
        same_machine: true,
        warnings: vec![why],
        ..Default::default()
    }
}

/// The run's exit code with the gate: the verdicts' code, then 3 under `--strict` when a check was
/// inconclusive or no comparable baseline was found.
pub fn exit_code(verdict_code: i32, gate: Option<&GateSummary>, flags: GateFlags) -> i32 {
    if verdict_code != exit::PASS || !flags.strict {
        return verdict_code;
    }
    match gate {
        Some(g) if !g.found || g.inconclusive > 0 || g.not_comparable > 0 => exit::INCONCLUSIVE,
        _ => verdict_code,
    }
}

/// Reads one side of `cargo perfgate compare`: a `results.json` of an earlier run, or a baseline file.
pub fn read_side(path: &Path) -> Result<Side> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let origin = path.display().to_string();
    if text.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{origin} is not a results file: {e}")))?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(crate::report::REPORT_SCHEMA_VERSION)) {
            return Err(Error::Usage(format!(
                "{origin} has results schema {} but this cargo-perfgate reads schema {}; compare files written by the same version",
                version.map_or("unknown".to_string(), |v| v.to_string()),
                crate::report::REPORT_SCHEMA_VERSION
            )));
        }
        let report: RunReport = serde_json::from_value(value).map_err(|e| {
            Error::Usage(format!(
                "{origin} does not parse as a perfgate results file: {e}"
            ))
        })?;
        Ok(Side::from_reports(
            &report.scenarios,
            &report.environment,
            &origin,
        ))
    } else {
        let file = BaselineFile::parse(&text, &origin)?;
        Ok(Side::from_baseline(&file, &origin))
    }
}

/// The baseline files of a run: which packages each one serves and what was found at the merge-base.
#[derive(Debug)]
pub struct BaselineGroup {
    /// Absolute path in the working tree.
    pub path: PathBuf,
    pub packages: Vec<String>,
    /// None when not in a git repository and no `--baseline-file` was given.
    pub lookup: Option<git::Lookup>,
    pub file: Option<BaselineFile>,
}

/// The baseline path of each package: `baseline` in `[package.metadata.perfgate]`, else in
/// `[workspace.metadata.perfgate]`, else `perfgate.baseline.toml`; relative to the workspace root.
pub fn baseline_paths(
    meta: &cargo_metadata::Metadata,
    packages: &[PerfPackage],
) -> BTreeMap<PathBuf, Vec<String>> {
    let root = meta.workspace_root.as_std_path();
    let workspace = meta
        .workspace_metadata
        .get("perfgate")
        .and_then(|p| p.get("baseline"))
        .and_then(|b| b.as_str())
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    let mut out: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for pkg in packages {
        let own = crate::service::parse_metadata(&pkg.manifest_path, &pkg.metadata)
            .ok()
            .and_then(|c| c.baseline);
        let rel = own
            .or_else(|| workspace.clone())
            .unwrap_or_else(|| baseline::DEFAULT_PATH.to_string());
        out.entry(root.join(rel))
            .or_default()
            .push(pkg.name.clone());
    }
    out
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Finds and reads every baseline of the run before anything is built, so a git problem is said at once.
pub fn lookup_baselines(
    common: &CommonArgs,
    args: &GateArgs,
    ui: &Ui,
) -> Result<Vec<BaselineGroup>> {
    let meta = crate::discover::metadata(common)?;
    let packages = crate::discover::select_packages(&meta, &common.packages)?;
    let root = meta.workspace_root.as_std_path();
    let repo = git::open(root);
    let source = git::source(
        repo.as_ref(),
        root,
        args.baseline_file.as_deref(),
        args.baseline_rev.as_deref(),
        args.base.as_deref(),
        env_var,
    )?;
    let mut groups = Vec::new();
    for (path, pkgs) in baseline_paths(&meta, &packages) {
        let mut group = BaselineGroup {
            path: path.clone(),
            packages: pkgs,
            lookup: None,
            file: None,
        };
        if let Some(src) = &source {
            let lookup = git::read(repo.as_ref(), src, &path)?;
            if let Some(text) = &lookup.text {
                group.file = Some(BaselineFile::parse(text, &lookup.origin)?);
            }
            let what = if group.file.is_some() { "" } else { "none at " };
            ui.status("Baseline", &format!("{what}{}", lookup.origin));
            group.lookup = Some(lookup);
        }
        groups.push(group);
    }
    Ok(groups)
}

/// The gate over a finished run: decisions attached to the scenarios, one summary for all files.
pub fn apply_baselines(
    groups: &[BaselineGroup],
    reports: &mut [ScenarioReport],
    machine: &Fingerprint,
    workspace_root: &Path,
    flags: GateFlags,
) -> GateSummary {
    let mut total = GateSummary {
        found: true,
        same_machine: true,
        ..Default::default()
    };
    let mut origins = Vec::new();
    for g in groups {
        let in_group = |r: &ScenarioReport| g.packages.contains(&r.package);
        let (origin, commit) = match &g.lookup {
            Some(l) => (l.origin.clone(), l.commit.clone()),
            None => (g.path.display().to_string(), None),
        };
        origins.push(origin.clone());
        let Some(file) = &g.file else {
            total.found = false;
            let why = match &g.lookup {
                None => git::not_a_repo_message(workspace_root),
                Some(l) => format!(
                    "no baseline file at {}: the regression gate was skipped, SLOs were checked. Record one on \
                     the base branch with `cargo perfgate record` and commit {}",
                    l.origin,
                    g.path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ),
            };
            total.warnings.push(why);
            total.commit = total.commit.or(commit);
            continue;
        };
        let base = Side::from_baseline(file, &origin);
        let mine: Vec<ScenarioReport> = reports.iter().filter(|r| in_group(r)).cloned().collect();
        let head = Side::from_reports(&mine, machine, "this run");
        let (decisions, s) = gate(&base, &head, flags);
        apply(reports, decisions, in_group);
        total.commit = total.commit.or(commit);
        total.same_machine &= s.same_machine;
        total.fails += s.fails;
        total.inconclusive += s.inconclusive;
        total.not_comparable += s.not_comparable;
        total.warnings.extend(s.warnings);
    }
    total.baseline = Some(origins.join("; "));
    total
}

/// After `record` ran: writes each baseline file (merged with the old one, atomically). Refuses when a
/// selected scenario has no trustworthy measurement, rather than write a partial baseline.
pub fn write_baselines(
    meta: &cargo_metadata::Metadata,
    packages: &[PerfPackage],
    args: &crate::cli::RecordArgs,
    report: &RunReport,
    ui: &Ui,
) -> Result<()> {
    let (filter, allow_drop) = (args.filter.as_deref(), args.allow_drop);
    let unmeasured: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| !matches!(s.verdict, Verdict::Pass | Verdict::Fail) || s.result.is_none())
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
    let groups = match &args.baseline_file {
        Some(f) => {
            let mut one = BTreeMap::new();
            one.insert(f.clone(), packages.iter().map(|p| p.name.clone()).collect());
            one
        }
        None => baseline_paths(meta, packages),
    };
    for (path, pkgs) in groups {
        let old = BaselineFile::read(&path).map_err(|e| match e {
            Error::Baseline(m) => Error::Baseline(format!(
                "{m}\n(record merges into the existing file: move {} away to record from scratch)",
                path.display()
            )),
            other => other,
        })?;
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
                .map(|sp| crate::report::describe_load(&sp.load))
                .unwrap_or_default();
            new.insert(
                &baseline::Measured {
                    id: s.id.clone(),
                    spec_hash: baseline::spec_hash(&s.spec_parts),
                    spec_parts: s.spec_parts.clone(),
                    rounds,
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
        let (merged, dropped) =
            baseline::merge_recording(old.as_ref(), new, selected, allow_drop, &path)?;
        merged.write_atomic(&path)?;
        let rounds = report
            .scenarios
            .iter()
            .map(|s| s.all_rounds().len())
            .max()
            .unwrap_or(0);
        ui.status(
            "Recorded",
            &format!(
                "{recorded} scenario{} × {rounds} round{} to {}{}",
                if recorded == 1 { "" } else { "s" },
                if rounds == 1 { "" } else { "s" },
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

/// `cargo perfgate compare BASE HEAD`: the gate over two files, as a table; the exit code as a run's.
pub fn cmd_compare(
    args: &CompareArgs,
    format: MessageFormat,
    color: bool,
) -> Result<(String, i32)> {
    let base = read_side(&args.base)?;
    let head_report = read_report_or_baseline(&args.head)?;
    let flags = GateFlags {
        strict: args.strict,
        allow_other_machine: args.allow_other_machine,
    };
    let head = Side::from_reports(
        &head_report.scenarios,
        &head_report.environment,
        &args.head.display().to_string(),
    );
    if head.scenarios.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no measured scenario to compare",
            args.head.display()
        )));
    }
    let (decisions, summary) = gate(&base, &head, flags);
    let mut report = head_report;
    report
        .scenarios
        .retain(|s| head.scenarios.contains_key(&s.id));
    apply(&mut report.scenarios, decisions, |_| true);
    let code = exit_code(
        crate::check::exit_code(report.scenarios.iter().map(|s| {
            // Only the regression checks decide here; the SLOs were the other run's business.
            if s.regressions.iter().any(|d| d.outcome == Outcome::Fail) {
                Verdict::Fail
            } else {
                Verdict::Pass
            }
        })),
        Some(&summary),
        flags,
    );
    report.gate = Some(summary);
    report.exit_code = code;
    let text = match format {
        MessageFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::io("serialising", e.into()))?
                + "\n"
        }
        MessageFormat::Human => {
            let mut out = crate::report::render_regressions(&report, color);
            if let Some(l) = crate::report::gate_line(&report) {
                out.push_str(&l);
                out.push('\n');
            }
            out
        }
    };
    Ok((text, code))
}

/// HEAD of `compare`: a results file, or a baseline file seen as a run of its rounds.
fn read_report_or_baseline(path: &Path) -> Result<RunReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is not a perfgate results file: {e}",
                path.display()
            ))
        });
    }
    let file = BaselineFile::parse(&text, &path.display().to_string())?;
    let scenarios = file
        .scenarios
        .iter()
        .map(|(id, s)| {
            let rounds = file.rounds_of(id);
            ScenarioReport {
                package: id.split("::").next().unwrap_or_default().to_string(),
                id: id.clone(),
                test_name: String::new(),
                spec: None,
                result: None,
                resources: None,
                checks: Vec::new(),
                verdict: Verdict::Pass,
                error: None,
                log: None,
                wall_secs: 0.0,
                rounds,
                spec_parts: s.spec_parts.clone(),
                regressions: Vec::new(),
                ab: None,
            }
        })
        .collect();
    Ok(RunReport {
        schema_version: crate::report::REPORT_SCHEMA_VERSION,
        perfgate_version: file.perfgate_version.clone(),
        run_id: path.display().to_string(),
        started_unix_ms: file.recorded_unix_ms,
        environment: file.machine.clone(),
        target_url: None,
        build_secs: 0.0,
        load_secs: 0.0,
        total_secs: 0.0,
        scenarios,
        exit_code: 0,
        gate: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_turns_missing_or_undecided_into_3() {
        let flags = GateFlags {
            strict: true,
            ..Default::default()
        };
        let none = no_baseline("b", Some("abc"), "no baseline".into());
        assert_eq!(exit_code(0, Some(&none), flags), 3);
        assert_eq!(exit_code(0, Some(&none), GateFlags::default()), 0);
        assert_eq!(exit_code(1, Some(&none), flags), 1);
        let undecided = GateSummary {
            found: true,
            inconclusive: 1,
            ..Default::default()
        };
        assert_eq!(exit_code(0, Some(&undecided), flags), 3);
        let fine = GateSummary {
            found: true,
            ..Default::default()
        };
        assert_eq!(exit_code(0, Some(&fine), flags), 0);
        assert_eq!(exit_code(0, None, flags), 0);
    }

    fn side(hash: &str, rounds: usize, cpu: &str) -> Side {
        let mut parts = BTreeMap::new();
        parts.insert("load".to_string(), hash.to_string());
        let mut scenarios = BTreeMap::new();
        scenarios.insert(
            "pkg::a".to_string(),
            SideScenario {
                rounds: vec![RoundStats::default(); rounds],
                spec_hash: Some(baseline::spec_hash(&parts)),
                spec_parts: parts,
                spec: Some(crate::check::tests::spec(vec![])),
            },
        );
        Side {
            origin: "base".into(),
            machine: Fingerprint {
                cpu_model: Some(cpu.into()),
                cores: 2,
                ..Default::default()
            },
            scenarios,
        }
    }

    #[test]
    fn a_failed_check_fails_its_scenario_only() {
        let sp = crate::check::tests::spec(vec![]);
        let base = ScenarioReport {
            package: "pkg".into(),
            id: "pkg::a".into(),
            test_name: "__perfgate_a".into(),
            spec: Some(sp.clone()),
            result: Some(crate::check::tests::result(&sp, 10.0)),
            resources: None,
            checks: vec![],
            verdict: Verdict::Pass,
            error: None,
            log: None,
            wall_secs: 1.0,
            rounds: vec![],
            spec_parts: BTreeMap::new(),
            regressions: vec![],
            ab: None,
        };
        let other = ScenarioReport {
            id: "pkg::b".into(),
            ..base.clone()
        };
        let mut reports = vec![base, other];
        let mut fail = not_comparable("pkg::a", "x".into(), 0.1, 5, 3);
        fail.outcome = Outcome::Fail;
        let mut decisions = BTreeMap::new();
        decisions.insert("pkg::a".to_string(), vec![fail]);
        apply(&mut reports, decisions, |_| true);
        assert_eq!(reports[0].verdict, Verdict::Fail);
        assert_eq!(reports[1].verdict, Verdict::Pass);
        assert!(reports[1].regressions.is_empty());
        // A single-round run still offers its one round to the gate.
        assert_eq!(reports[0].all_rounds().len(), 1);
    }

    #[test]
    fn changed_specs_and_new_scenarios_are_not_comparable() {
        let (d, s) = gate(
            &side("open 100/s", 5, "x"),
            &side("open 200/s", 3, "x"),
            GateFlags::default(),
        );
        assert_eq!(d["pkg::a"].len(), 1);
        assert_eq!(d["pkg::a"][0].outcome, Outcome::NotComparable);
        assert!(
            d["pkg::a"][0].note.contains("`open 100/s` → `open 200/s`"),
            "{}",
            d["pkg::a"][0].note
        );
        assert_eq!(s.not_comparable, 1);
        assert!(s.same_machine);
        let mut head = side("open 100/s", 3, "x");
        let sc = head.scenarios.remove("pkg::a").unwrap();
        head.scenarios.insert("pkg::new".into(), sc);
        let (d, _) = gate(&side("open 100/s", 5, "x"), &head, GateFlags::default());
        assert!(
            d["pkg::new"][0]
                .note
                .contains("no baseline for this scenario"),
            "{:?}",
            d
        );
        // Another machine is said, whatever else happens.
        let (_, s) = gate(
            &side("open 100/s", 5, "x"),
            &side("open 200/s", 3, "y"),
            GateFlags::default(),
        );
        assert!(
            !s.same_machine && s.warnings.iter().any(|w| w.contains("another machine")),
            "{s:?}"
        );
    }
}
