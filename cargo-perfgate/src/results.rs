//! The results document, `target/perfgate/<run>/results.json`: what a run found, per scenario, read
//! back by `compare`, `report` and the gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfgate_runtime::format::{ResourceStats, ScenarioResult, ScenarioSpec};
use serde::{Deserialize, Serialize};

use crate::cost::CostMeasurement;
use crate::error::{Error, Result};
use crate::gate::contention::Contention;
use crate::gate::file::{MeasuredScenario, Measurements};
use crate::gate::{spec::spec_hash, Decision, GateSummary, RoundStats};
use crate::machine::Fingerprint;
use crate::shard::ShardId;
use crate::slo::{self, Check, Evidence, TrendCheck, Verdict};

/// Version of the `results.json` document (the CLI's; the scenario results inside carry their own).
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// Everything a run found, written to `target/perfgate/<run-id>/results.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunResults {
    pub schema_version: u32,
    pub perfgate_version: String,
    pub run_id: String,
    pub started_unix_ms: u64,
    pub environment: Fingerprint,
    /// The service URL given with `--target-url`, when no service was started.
    pub target_url: Option<String>,
    pub build_secs: f64,
    /// What `build_secs` went to: the scenarios (and the service when one build made both), the
    /// services built on their own, the merge-base's services. Empty in files of older versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_parts: Vec<BuildPart>,
    pub load_secs: f64,
    /// Seconds of the cost pass (services under valgrind), 0 when it did not run.
    #[serde(default)]
    pub cost_secs: f64,
    pub total_secs: f64,
    pub scenarios: Vec<ScenarioRun>,
    pub exit_code: i32,
    /// The comparison with the baseline: where it was read, warnings, counts of outcomes.
    #[serde(default)]
    pub gate: Option<GateSummary>,
    /// The test tier the run was planned for (`--tier`), when one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The share of the load this run was (`--shard`): a shard's document, for `merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardId>,
    /// The shards' documents this one merges (`cargo perfgate merge`), in shard order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<ShardSource>,
}

/// One shard's document, as `merge` read it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardSource {
    pub shard: ShardId,
    /// The path it was read from, as given.
    pub file: String,
    pub run_id: String,
}

/// How one shard's generator kept its schedule for a scenario (the merged document keeps each).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardHealth {
    pub shard: ShardId,
    pub iterations: u64,
    /// Starts the shard's schedule called for in the measured window, late and dropped ones.
    pub intended: u64,
    pub late: u64,
    pub dropped: u64,
    /// The shard's schedule lag at the 99th percentile, in milliseconds.
    pub lag_p99_ms: f64,
    /// Why the shard's measurement cannot be trusted; None when it can.
    pub invalid: Option<String>,
}

/// One part of a run's build time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BuildPart {
    /// `scenarios`, `scenarios and service`, `service`, `services`, `merge-base service`.
    pub part: String,
    pub secs: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScenarioRun {
    pub package: String,
    /// `package::name`, as in the table.
    pub id: String,
    /// The libtest name of the generated test.
    pub test_name: String,
    pub spec: Option<ScenarioSpec>,
    pub result: Option<ScenarioResult>,
    /// The service's process tree during the scenario (None with `--target-url`).
    pub resources: Option<ResourceStats>,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
    /// Why the scenario errored or failed other than by an SLO (with the relevant log's last lines).
    pub error: Option<String>,
    /// The scenario binary's output.
    pub log: Option<PathBuf>,
    pub wall_secs: f64,
    /// Every round's counts and histograms when the scenario ran several rounds (`--rounds`); the
    /// first round is also `result`. Empty for a single round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundStats>,
    /// What makes this measurement comparable with a baseline's (load, window, SLOs, data file hashes).
    #[serde(default)]
    pub spec_parts: BTreeMap<String, String>,
    /// The regression checks against the baseline (empty when there was none to compare with).
    #[serde(default)]
    pub regressions: Vec<Decision>,
    /// The merge-base's side of a same-machine A/B run (`--ab`); `rounds` then holds HEAD's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab: Option<AbRounds>,
    /// How busy the machine was during each round, in order (None for a round not measured): the
    /// gate compares it with the baseline's (`gate/contention.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contention: Vec<Option<Contention>>,
    /// What the cost pass measured (None when it did not run for this scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostMeasurement>,
    /// Why the cost pass could not measure this scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_error: Option<String>,
    /// The leak and drift checks (memory, descriptors, threads, p99 over time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trends: Vec<TrendCheck>,
    /// The load generator's own process (the scenario binary) during its first round: what shows
    /// that it stayed flat over a long run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<ResourceStats>,
    /// Each shard's generator health, when this scenario merges shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardHealth>,
}

/// The base side of a scenario measured in `--ab` mode, and how sampling went.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AbRounds {
    /// The merge-base commit whose service was built and measured.
    pub base_commit: String,
    /// Pairs of rounds run (ABBA order: base then head, head then base, …).
    pub pairs: usize,
    /// The base service's rounds, `base_rounds[i]` paired with HEAD's `rounds[i]`.
    pub base_rounds: Vec<RoundStats>,
    /// Why sampling stopped, in a sentence.
    pub stopped: String,
    /// Seconds of load spent on this scenario (both sides).
    pub secs: f64,
}

impl ScenarioRun {
    /// Why the measurement is invalid, for reports: the engine's reason, else the usual cause.
    pub fn invalid_reason(&self) -> &str {
        self.result
            .as_ref()
            .and_then(|r| r.invalid.as_deref())
            .unwrap_or("the load generator could not keep its schedule")
    }

    /// The rounds the gate compares: `rounds`, or the single `result`.
    pub fn all_rounds(&self) -> Vec<RoundStats> {
        let mut rounds = if self.rounds.is_empty() {
            self.result.iter().map(RoundStats::from).collect()
        } else {
            self.rounds.clone()
        };
        for (r, c) in rounds.iter_mut().zip(&self.contention) {
            if r.contention.is_none() {
                r.contention = c.clone();
            }
        }
        rounds
    }

    /// The cost pass's outcome: its figures and the cost SLOs checked against them, or why it could
    /// not measure (an error: the cost asked for is unknown).
    pub fn attach_cost(&mut self, measured: std::result::Result<CostMeasurement, String>) {
        match measured {
            Ok(m) => {
                if let Some(spec) = &self.spec {
                    self.checks.extend(slo::check_cost_slos(spec, &m));
                }
                self.cost = Some(m);
                if self.verdict == Verdict::Pass && self.checks.iter().any(|c| !c.passed) {
                    self.verdict = Verdict::Fail;
                }
            }
            Err(e) => {
                self.error = Some(match self.error.take() {
                    Some(before) => format!("{before}\n{e}"),
                    None => e.clone(),
                });
                self.cost_error = Some(e);
                self.verdict = Verdict::Error;
            }
        }
    }

    /// Adds regression checks to those attached; a failed one fails a scenario that had passed.
    pub fn add_regressions(&mut self, decisions: Vec<Decision>) {
        let mut all = std::mem::take(&mut self.regressions);
        all.extend(decisions);
        self.attach_regressions(all);
    }

    /// Attaches the regression checks; a failed one fails a scenario that had passed.
    pub fn attach_regressions(&mut self, decisions: Vec<Decision>) {
        self.regressions = decisions;
        if self.verdict == Verdict::Pass {
            self.verdict = slo::verdict(&Evidence {
                checks: &self.checks,
                regressions: &self.regressions,
                trends: &self.trends,
                ..Default::default()
            });
        }
    }
}

impl RunResults {
    /// Writes the document as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io("serialising the results", e.into()))?;
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// Reads a `results.json`, naming a file of another schema or of another kind as such.
    pub fn read(path: &Path) -> Result<RunResults> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<RunResults> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Usage(format!("{origin} is not a perfgate results file: {e}")))?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(RESULTS_SCHEMA_VERSION)) {
            return Err(Error::Usage(format!(
                "{origin} has results schema {} but this cargo-perfgate reads schema {}; use files written \
                 by the same version",
                version.map_or("unknown".to_string(), |v| v.to_string()),
                RESULTS_SCHEMA_VERSION
            )));
        }
        let results: RunResults = serde_json::from_value(value).map_err(|e| {
            Error::Usage(format!(
                "{origin} does not parse as a perfgate results file: {e}"
            ))
        })?;
        results.validate().map_err(|why| {
            Error::Corrupt(format!(
                "{origin} is corrupt: {why}; use the results.json a run wrote, unedited"
            ))
        })?;
        Ok(results)
    }

    /// Every measured number, checked as [`RoundStats::validate`] does: `scenario `x`, round 2,
    /// `iterations.latency.p50_ms` is NaN`.
    fn validate(&self) -> std::result::Result<(), String> {
        for s in &self.scenarios {
            let base = s.ab.iter().flat_map(|ab| ab.base_rounds.iter().cloned());
            for (i, r) in s.all_rounds().into_iter().chain(base).enumerate() {
                r.validate()
                    .map_err(|e| format!("scenario `{}`, round {}, {e}", s.id, i + 1))?;
            }
        }
        Ok(())
    }
}

/// The scenarios of a run that measured something trustworthy (not errored, not invalid), as one
/// side of the file gate.
pub fn measurements(reports: &[ScenarioRun], machine: &Fingerprint, origin: &str) -> Measurements {
    let scenarios = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Pass | Verdict::Fail))
        .filter_map(|r| {
            let rounds = r.all_rounds();
            (!rounds.is_empty()).then(|| {
                (
                    r.id.clone(),
                    MeasuredScenario {
                        rounds,
                        spec_hash: (!r.spec_parts.is_empty()).then(|| spec_hash(&r.spec_parts)),
                        spec_parts: r.spec_parts.clone(),
                        spec: r.spec.clone(),
                        cost_only: false,
                    },
                )
            })
        })
        .collect();
    Measurements {
        origin: origin.to_string(),
        machine: machine.clone(),
        scenarios,
    }
}

/// Attaches each scenario's decisions (those `include` selects; the others are left as they are).
pub fn attach(
    reports: &mut [ScenarioRun],
    mut decisions: BTreeMap<String, Vec<Decision>>,
    include: impl Fn(&ScenarioRun) -> bool,
) {
    for r in reports.iter_mut().filter(|r| include(r)) {
        r.attach_regressions(decisions.remove(&r.id).unwrap_or_default());
    }
}

/// A listed scenario, as `list --message-format json` prints it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ListedScenario {
    pub package: String,
    pub id: String,
    pub test_name: String,
    pub executable: PathBuf,
    pub spec: ScenarioSpec,
    /// Per check, the smallest change `--ab` resolves on this machine within the budget, as
    /// `cargo perfgate calibrate` measured it (empty without a calibration for this machine).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolves: BTreeMap<String, f64>,
    /// How each tier runs it, by tier name; None where `tier = [...]` leaves it out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plan: BTreeMap<String, Option<PlannedRun>>,
}

/// A scenario's window and rounds in one tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlannedRun {
    pub duration_ms: u64,
    pub warmup_ms: u64,
    /// The tier's rounds; None: perfgate's default (1, or 5 when there is a baseline; 10 for `record`).
    pub rounds: Option<u32>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gate::Outcome;
    use crate::slo::tests::{result, spec};
    use crate::slo::{check_slos, verdict};
    use perfgate_runtime::format::{Metric, Op, Slo};

    pub(crate) fn report() -> RunResults {
        let sp = spec(vec![Slo {
            request: None,
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 25.0,
        }]);
        let res = result(&sp, 31.2);
        let checks = check_slos(&sp, &res);
        let v = verdict(&Evidence {
            checks: &checks,
            ..Default::default()
        });
        let failing = ScenarioRun {
            package: "predict-service".into(),
            id: "predict-service::predict".into(),
            test_name: "__perfgate_predict".into(),
            spec: Some(sp.clone()),
            result: Some(res),
            resources: Some(ResourceStats {
                cpu_util: 0.5,
                peak_rss_bytes: 64 << 20,
                ..Default::default()
            }),
            checks,
            verdict: v,
            error: None,
            log: None,
            wall_secs: 11.0,
            rounds: vec![],
            spec_parts: BTreeMap::new(),
            regressions: vec![],
            ab: None,
            contention: vec![],
            cost: None,
            cost_error: None,
            trends: vec![],
            generator: None,
            shards: vec![],
        };
        let errored = ScenarioRun {
            id: "predict-service::catalogue".into(),
            test_name: "__perfgate_catalogue".into(),
            result: None,
            resources: None,
            checks: vec![],
            verdict: Verdict::Error,
            error: Some("the scenario wrote no results file\nlast lines:\npanicked at boom".into()),
            ..failing.clone()
        };
        RunResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            perfgate_version: "0.1.0".into(),
            run_id: "20260101-000000-1".into(),
            started_unix_ms: 0,
            environment: Fingerprint::default(),
            target_url: None,
            build_secs: 3.0,
            build_parts: Vec::new(),
            load_secs: 11.0,
            cost_secs: 0.0,
            total_secs: 15.0,
            scenarios: vec![failing, errored],
            exit_code: 2,
            gate: None,
            tier: None,
            shard: None,
            merged_from: vec![],
        }
    }

    #[test]
    fn results_are_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        report().write(&path).unwrap();
        let back = RunResults::read(&path).unwrap();
        assert_eq!(back.scenarios.len(), 2);
        assert_eq!(back.scenarios[0].verdict, Verdict::Fail);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_failed_check_fails_its_scenario_only() {
        let sp = crate::slo::tests::spec(vec![]);
        let base = ScenarioRun {
            package: "pkg".into(),
            id: "pkg::a".into(),
            test_name: "__perfgate_a".into(),
            spec: Some(sp.clone()),
            result: Some(crate::slo::tests::result(&sp, 10.0)),
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
            contention: vec![],
            cost: None,
            cost_error: None,
            trends: vec![],
            generator: None,
            shards: vec![],
        };
        let other = ScenarioRun {
            id: "pkg::b".into(),
            ..base.clone()
        };
        let mut reports = vec![base, other];
        let mut fail = crate::gate::file::not_comparable("pkg::a", "x".into(), 0.1, 5, 3);
        fail.outcome = Outcome::Fail;
        let mut decisions = BTreeMap::new();
        decisions.insert("pkg::a".to_string(), vec![fail]);
        attach(&mut reports, decisions, |_| true);
        assert_eq!(reports[0].verdict, Verdict::Fail);
        assert_eq!(reports[1].verdict, Verdict::Pass);
        assert!(reports[1].regressions.is_empty());
        // A single-round run still offers its one round to the gate.
        assert_eq!(reports[0].all_rounds().len(), 1);
    }

    #[test]
    fn impossible_values_in_a_results_file_are_corruption() {
        let mut r = report();
        r.scenarios[0]
            .result
            .as_mut()
            .unwrap()
            .iterations
            .latency
            .p50_ms = -3.0;
        let text = serde_json::to_string(&r).unwrap();
        let e = RunResults::parse(&text, "head/results.json").unwrap_err();
        assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
        assert!(
            e.to_string().contains(
                "head/results.json is corrupt: scenario `predict-service::predict`, round 1, `iterations.latency.p50_ms` is -3"
            ),
            "{e}"
        );
        let mut r = report();
        r.scenarios[0].result.as_mut().unwrap().iterations.histogram = "AAAA".into();
        let e = RunResults::parse(&serde_json::to_string(&r).unwrap(), "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("`iterations.histogram` does not decode"),
            "{e}"
        );
    }
}
