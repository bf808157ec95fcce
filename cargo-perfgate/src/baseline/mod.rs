//! The baseline file (`perfgate.baseline.toml` by default): several rounds per scenario, committed to
//! git, read back at the merge-base (`git.rs`, `lookup.rs`), written by `record` and `calibrate`
//! (`write.rs`).
//!
//! Layout, chosen so that a pull request's diff of it reads as a performance change:
//! - a header (schema and perfgate versions, commit, the machine's fingerprint);
//! - `[scenarios."package::name"]`: per scenario, the medians over rounds of p50/p95/p99 in ms, the error
//!   rate and the throughput, per named request too, and the spec hash — small, human-readable lines;
//! - `[scenarios."package::name".cost]`: the cost pass's figures per iteration (and per named
//!   request) with the toolchain they were measured under — what the cost checks compare;
//! - `[rounds."package::name"]` at the end: each round's counts and its encoded HDR histogram, which is
//!   what the gate actually compares (long base64 lines nobody needs to read in a diff);
//! - `[cost_functions."package::name"]`: the largest functions' instructions per iteration, from
//!   which a cost regression names the functions that changed.
//!
//! A scenario may have rounds, cost figures, or both (`record --cost-only` records cost figures
//! only: portable across machines of one toolchain, so a repository can commit them for every
//! runner, where latency rounds hold for one machine only).
//!
//! Several packages share one file: every scenario is keyed by `package::name`. Packages that set their
//! own `baseline = "…"` in `[package.metadata.perfgate]` get their own file.

pub mod git;
pub mod lookup;
pub mod write;

use std::collections::BTreeMap;
use std::path::Path;

use perfgate_runtime::format::{self, Metric, Stats};
use serde::{Deserialize, Serialize};

use crate::cost::{median, CostFigures, CostMeasurement, PerRequest};
use crate::error::{Error, Result};
use crate::gate::cost::CostFloors;
use crate::gate::file::{MeasuredScenario, Measurements};
use crate::gate::spec::spec_hash;
use crate::gate::RoundStats;
use crate::machine::{Fingerprint, Toolchain};

/// Version of the baseline file. Bump on any change a reader of the old version would misread.
pub const BASELINE_SCHEMA_VERSION: u32 = 1;

/// Default path, from the workspace root.
pub const DEFAULT_PATH: &str = "perfgate.baseline.toml";

const HEADER: &str = "\
# perfgate baseline: written by `cargo perfgate record`; commit it. `cargo perfgate` compares a pull
# request with this file as committed at the merge-base. Latencies are in milliseconds (medians over
# rounds); the [rounds.*] tables hold each round's encoded histograms, which the gate compares. The
# .cost tables hold the cost pass's figures per iteration (instructions, allocations, bytes, syscalls
# under valgrind) and [cost_functions.*] the largest functions' instructions per iteration.
";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BaselineFile {
    pub schema_version: u32,
    pub perfgate_version: String,
    /// The commit the baseline was recorded at (HEAD when `record` ran), if known.
    pub commit: Option<String>,
    pub recorded_unix_ms: u64,
    pub machine: Fingerprint,
    /// Readable per-scenario summaries, keyed by `package::name`.
    #[serde(default)]
    pub scenarios: BTreeMap<String, ScenarioSummary>,
    /// The rounds themselves, keyed like `scenarios`.
    #[serde(default)]
    pub rounds: BTreeMap<String, Vec<BaselineRound>>,
    /// Per scenario, the self instructions per iteration of its largest functions (by name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost_functions: BTreeMap<String, BTreeMap<String, f64>>,
    /// This machine's noise floor, measured by `cargo perfgate calibrate` (used by `--ab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// What `cargo perfgate calibrate` measured: per scenario and check, the smallest change `--ab` can
/// resolve on this machine within the budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Calibration {
    pub machine: Fingerprint,
    pub recorded_unix_ms: u64,
    /// A/A pairs of rounds measured per scenario.
    pub pairs: usize,
    /// The `--ab` budget the floors were computed for.
    pub budget_secs: f64,
    #[serde(default)]
    pub scenarios: BTreeMap<String, crate::gate::sequential::NoiseFloor>,
    /// Per scenario, the relative spread of repeated cost passes (per check).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost: BTreeMap<String, CostFloors>,
}

/// Medians over rounds of the headline metrics of one scenario.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ScenarioSummary {
    /// Hash of what makes two measurements comparable (see [`spec_hash`]).
    pub spec_hash: String,
    /// What the hash covers, spelled out, so a changed hash can be explained.
    pub load: String,
    pub rounds: usize,
    /// Absent from a file of cost figures only (no rounds).
    #[serde(default, skip_serializing_if = "SeriesSummary::is_empty")]
    pub iterations: SeriesSummary,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, SeriesSummary>,
    /// Per-round values of the hashed parts, to say *what* changed when the hash differs.
    #[serde(default)]
    pub spec_parts: BTreeMap<String, String>,
    /// The cost pass's figures, when they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
}

/// The cost pass's figures of a scenario, as recorded: per iteration, per named request, and
/// what they are comparable with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CostSummary {
    /// Hash of the cost pass's own spec parts (iterations, service, data files).
    pub spec_hash: String,
    pub toolchain: Toolchain,
    pub warmup: u64,
    pub iterations: u64,
    pub instructions: f64,
    pub allocs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_bytes: Option<f64>,
    pub syscalls: f64,
    pub per_request: PerRequest,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, CostRequestSummary>,
    #[serde(default)]
    pub spec_parts: BTreeMap<String, String>,
}

/// One named request's cost figures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CostRequestSummary {
    pub instructions: f64,
    pub allocs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_bytes: Option<f64>,
    pub syscalls: f64,
}

/// Functions kept per scenario in `[cost_functions]`: enough to name what changed, small enough for
/// a readable file.
pub const COST_FUNCTIONS: usize = 100;

/// Significant digits kept of cost figures: repeated passes agree to a few hundredths of a percent,
/// so a re-recording only changes the lines whose figures really moved.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let d = digits - 1 - x.abs().log10().floor() as i32;
    let f = 10f64.powi(d);
    (x * f).round() / f
}

impl CostSummary {
    pub fn of(m: &CostMeasurement, spec_hash: String, toolchain: Toolchain) -> CostSummary {
        let r = |x: f64| round_sig(x, 6);
        CostSummary {
            spec_hash,
            toolchain,
            warmup: m.warmup,
            iterations: m.iterations,
            instructions: r(m.figures.instructions),
            allocs: r(m.figures.allocs),
            alloc_bytes: m.figures.alloc_bytes.map(r),
            syscalls: r(m.figures.syscalls),
            per_request: m.per_request,
            requests: m
                .requests
                .iter()
                .map(|(k, f)| {
                    (
                        k.clone(),
                        CostRequestSummary {
                            instructions: r(f.instructions),
                            allocs: r(f.allocs),
                            alloc_bytes: f.alloc_bytes.map(r),
                            syscalls: r(f.syscalls),
                        },
                    )
                })
                .collect(),
            spec_parts: m.spec_parts.clone(),
        }
    }

    /// The figures per iteration, with the recorded functions (largest first).
    pub fn figures(&self, functions: Option<&BTreeMap<String, f64>>) -> CostFigures {
        let mut top: Vec<(String, f64)> = functions
            .map(|f| f.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        CostFigures {
            iterations: self.iterations,
            instructions: self.instructions,
            allocs: self.allocs,
            alloc_bytes: self.alloc_bytes,
            syscalls: self.syscalls,
            top_functions: top,
        }
    }

    /// The recorded figures as a measurement (what `compare` reads from a baseline file).
    pub fn measurement(&self, functions: Option<&BTreeMap<String, f64>>) -> CostMeasurement {
        CostMeasurement {
            warmup: self.warmup,
            iterations: self.iterations,
            figures: self.figures(functions),
            requests: self.request_figures(),
            per_request: self.per_request,
            not_idle: 0,
            clock: None,
            secs: 0.0,
            window_secs: 0.0,
            spec_parts: self.spec_parts.clone(),
            attribution: Vec::new(),
        }
    }

    /// The figures per named request.
    pub fn request_figures(&self) -> BTreeMap<String, CostFigures> {
        self.requests
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    CostFigures {
                        iterations: self.iterations,
                        instructions: r.instructions,
                        allocs: r.allocs,
                        alloc_bytes: r.alloc_bytes,
                        syscalls: r.syscalls,
                        top_functions: Vec::new(),
                    },
                )
            })
            .collect()
    }

    /// Every figure, checked: finite and not negative.
    fn validate(&self) -> std::result::Result<(), String> {
        let series = std::iter::once((
            "cost",
            (
                self.instructions,
                self.allocs,
                self.alloc_bytes,
                self.syscalls,
            ),
        ))
        .chain(self.requests.iter().map(|(k, r)| {
            (
                k.as_str(),
                (r.instructions, r.allocs, r.alloc_bytes, r.syscalls),
            )
        }));
        for (name, (i, a, b, sc)) in series {
            for (field, x) in [
                ("instructions", Some(i)),
                ("allocs", Some(a)),
                ("alloc_bytes", b),
                ("syscalls", Some(sc)),
            ] {
                if let Some(x) = x {
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(format!("`{name}.{field}` is {x}"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SeriesSummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Error rate, a fraction (0.005 = 0.5%).
    pub errors: f64,
    pub throughput: f64,
}

/// One round, as stored: counts, the latency summary and the encoded histogram per series.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BaselineRound {
    pub iterations: Stats,
    #[serde(default)]
    pub requests: BTreeMap<String, Stats>,
    /// How busy the machine was while the round was recorded (the gate compares a run's with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention: Option<crate::gate::contention::Contention>,
}

impl BaselineRound {
    /// A round for the file: error samples and the uncorrected histogram are left out (the gate does not
    /// use them and they would only make the file larger and its diff noisier).
    pub fn from_round(r: &RoundStats) -> BaselineRound {
        let slim = |s: &Stats| Stats {
            error_samples: Vec::new(),
            histogram_uncorrected: String::new(),
            ..s.clone()
        };
        BaselineRound {
            iterations: slim(&r.iterations),
            requests: r
                .requests
                .iter()
                .map(|(k, v)| (k.clone(), slim(v)))
                .collect(),
            contention: r.contention.clone(),
        }
    }

    pub fn to_round(&self) -> RoundStats {
        RoundStats {
            iterations: self.iterations.clone(),
            requests: self.requests.clone(),
            contention: self.contention.clone(),
            lag_p99_ms: None,
        }
    }
}

/// A scenario as measured in this run: what `record` writes and what the gate compares.
#[derive(Clone, Debug)]
pub struct Measured {
    pub id: String,
    pub spec_hash: String,
    pub spec_parts: BTreeMap<String, String>,
    pub rounds: Vec<RoundStats>,
    /// The cost pass's figures and the toolchain they were measured under.
    pub cost: Option<(CostMeasurement, Toolchain)>,
}

impl SeriesSummary {
    /// A scenario recorded without rounds has no latency summary.
    pub fn is_empty(&self) -> bool {
        *self == SeriesSummary::default()
    }
}

/// Rounds to three significant digits, so the readable part of the file does not churn in the noise.
fn round3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return 0.0;
    }
    let digits = 3 - 1 - x.abs().log10().floor() as i32;
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn summarize(series: &[&Stats]) -> SeriesSummary {
    let m = |metric: Metric| {
        round3(median(
            &series.iter().map(|s| metric.value(s)).collect::<Vec<_>>(),
        ))
    };
    SeriesSummary {
        p50_ms: m(Metric::P50),
        p95_ms: m(Metric::P95),
        p99_ms: m(Metric::P99),
        errors: m(Metric::Errors),
        throughput: m(Metric::Throughput),
    }
}

impl ScenarioSummary {
    pub fn of(m: &Measured, load: String) -> ScenarioSummary {
        let its: Vec<&Stats> = m.rounds.iter().map(|r| &r.iterations).collect();
        let mut names: Vec<&String> = m.rounds.iter().flat_map(|r| r.requests.keys()).collect();
        names.sort();
        names.dedup();
        let requests = names
            .into_iter()
            .map(|n| {
                let s: Vec<&Stats> = m.rounds.iter().filter_map(|r| r.requests.get(n)).collect();
                (n.clone(), summarize(&s))
            })
            .collect();
        ScenarioSummary {
            spec_hash: m.spec_hash.clone(),
            load,
            rounds: m.rounds.len(),
            iterations: summarize(&its),
            requests,
            spec_parts: m.spec_parts.clone(),
            cost: m.cost.as_ref().map(|(c, toolchain)| {
                CostSummary::of(c, spec_hash(&c.spec_parts), toolchain.clone())
            }),
        }
    }
}

impl BaselineFile {
    pub fn new(machine: Fingerprint, commit: Option<String>, recorded_unix_ms: u64) -> Self {
        BaselineFile {
            schema_version: BASELINE_SCHEMA_VERSION,
            perfgate_version: format::PERFGATE_VERSION.to_string(),
            commit,
            recorded_unix_ms,
            machine,
            scenarios: BTreeMap::new(),
            rounds: BTreeMap::new(),
            cost_functions: BTreeMap::new(),
            calibration: None,
        }
    }

    pub fn insert(&mut self, m: &Measured, load: String) {
        self.scenarios
            .insert(m.id.clone(), ScenarioSummary::of(m, load));
        if m.rounds.is_empty() {
            self.rounds.remove(&m.id);
        } else {
            self.rounds.insert(
                m.id.clone(),
                m.rounds.iter().map(BaselineRound::from_round).collect(),
            );
        }
        match &m.cost {
            Some((c, _)) => {
                let kept = c
                    .figures
                    .top_functions
                    .iter()
                    .take(COST_FUNCTIONS)
                    .map(|(k, v)| (k.clone(), round_sig(*v, 4)))
                    .collect();
                self.cost_functions.insert(m.id.clone(), kept);
            }
            None => {
                self.cost_functions.remove(&m.id);
            }
        }
    }

    /// The recorded cost figures of a scenario, if any.
    pub fn cost_of(&self, id: &str) -> Option<&CostSummary> {
        self.scenarios.get(id).and_then(|s| s.cost.as_ref())
    }

    /// The cost floors `calibrate` measured for a scenario.
    pub fn cost_floors(&self, id: &str) -> Option<&CostFloors> {
        self.calibration.as_ref().and_then(|c| c.cost.get(id))
    }

    /// The file as one side of the file gate.
    pub fn measurements(&self, origin: &str) -> Measurements {
        let scenarios = self
            .scenarios
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    MeasuredScenario {
                        rounds: self.rounds_of(id),
                        spec_hash: Some(s.spec_hash.clone()),
                        spec_parts: s.spec_parts.clone(),
                        spec: None,
                        cost_only: s.rounds == 0 && s.cost.is_some(),
                    },
                )
            })
            .collect();
        Measurements {
            origin: origin.to_string(),
            machine: self.machine.clone(),
            scenarios,
        }
    }

    /// The rounds of a scenario, as the gate takes them.
    pub fn rounds_of(&self, id: &str) -> Vec<RoundStats> {
        self.rounds
            .get(id)
            .map(|rs| rs.iter().map(BaselineRound::to_round).collect())
            .unwrap_or_default()
    }

    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self)
            .map_err(|e| Error::Usage(format!("could not serialise the baseline: {e}")))?;
        Ok(format!("{HEADER}\n{body}"))
    }

    /// Parses a baseline file; `origin` names it in errors (a path, or `path at commit abc123`).
    /// A newer schema is refused with the versions named; a file that does not parse says so.
    pub fn parse(text: &str, origin: &str) -> Result<BaselineFile> {
        let value: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::Baseline(format!(
                "{origin} is not a valid baseline file ({}); re-create it with `cargo perfgate record`",
                e.message()
            ))
        })?;
        let version = value.get("schema_version").and_then(|v| v.as_integer());
        let theirs = value
            .get("perfgate_version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        match version {
            Some(v) if v == i64::from(BASELINE_SCHEMA_VERSION) => {}
            Some(v) if v > i64::from(BASELINE_SCHEMA_VERSION) => {
                return Err(Error::Baseline(format!(
                    "{origin} has baseline schema {v} (written by perfgate {theirs}), newer than the schema {} \
                     this cargo-perfgate {} reads; upgrade cargo-perfgate (`cargo install cargo-perfgate`)",
                    BASELINE_SCHEMA_VERSION,
                    format::PERFGATE_VERSION
                )))
            }
            Some(v) => {
                return Err(Error::Baseline(format!(
                    "{origin} has baseline schema {v} (perfgate {theirs}), which this cargo-perfgate {} no longer \
                     reads (schema {}); re-record it on the base branch with `cargo perfgate record`",
                    format::PERFGATE_VERSION,
                    BASELINE_SCHEMA_VERSION
                )))
            }
            None => {
                return Err(Error::Baseline(format!(
                    "{origin} has no `schema_version`: it is not a perfgate baseline file (or it is corrupt); \
                     re-create it with `cargo perfgate record`"
                )))
            }
        }
        let file: BaselineFile = toml::Value::Table(value).try_into().map_err(|e| {
            Error::Baseline(format!(
                "{origin} does not parse as a baseline ({}); re-create it with `cargo perfgate record`",
                e.to_string().trim()
            ))
        })?;
        file.validate().map_err(|why| {
            Error::Corrupt(format!(
                "{origin} is corrupt: {why}; re-create it with `cargo perfgate record` (or restore it from git)"
            ))
        })?;
        Ok(file)
    }

    /// Every number the gate or a reader relies on, checked: `scenario `x`, round 2, `p50_ms` is NaN`.
    fn validate(&self) -> std::result::Result<(), String> {
        for (id, s) in &self.scenarios {
            let series = std::iter::once(("iterations", &s.iterations))
                .chain(s.requests.iter().map(|(k, v)| (k.as_str(), v)));
            for (name, v) in series {
                for (field, x) in [
                    ("p50_ms", v.p50_ms),
                    ("p95_ms", v.p95_ms),
                    ("p99_ms", v.p99_ms),
                    ("throughput", v.throughput),
                ] {
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(format!("scenario `{id}`, `{name}.{field}` is {x}"));
                    }
                }
                if !(0.0..=1.0).contains(&v.errors) {
                    return Err(format!(
                        "scenario `{id}`, `{name}.errors` is {}, not a rate between 0 and 1",
                        v.errors
                    ));
                }
            }
            if let Some(c) = &s.cost {
                c.validate().map_err(|e| format!("scenario `{id}`, {e}"))?;
            }
        }
        for (id, functions) in &self.cost_functions {
            if let Some((f, v)) = functions
                .iter()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(format!("scenario `{id}`, cost function `{f}` is {v}"));
            }
        }
        for (id, rounds) in &self.rounds {
            for (i, r) in rounds.iter().enumerate() {
                r.to_round()
                    .validate()
                    .map_err(|e| format!("scenario `{id}`, round {}, {e}", i + 1))?;
            }
        }
        Ok(())
    }

    /// Reads a file from the working tree (`record`'s old file, `--baseline-file`).
    pub fn read(path: &Path) -> Result<Option<BaselineFile>> {
        match std::fs::read_to_string(path) {
            Ok(text) => BaselineFile::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Writes the file through a temporary file in the same directory and a rename: an interrupted write
    /// never leaves a truncated baseline behind.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let text = self.to_toml()?;
        // What we write must read back: never commit a file the gate would refuse.
        BaselineFile::parse(&text, "the baseline being written")?;
        crate::files::write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::baseline::write::merge_recording;
    use crate::gate::spec::spec_hash;
    use perfgate_runtime::format::{encode_histogram, new_histogram, LatencySummary};

    fn stats(base_us: u64) -> Stats {
        let mut h = new_histogram();
        for i in 0..500u64 {
            h.record(base_us + i % 50).unwrap();
        }
        Stats {
            count: 500,
            throughput: 100.0,
            latency: LatencySummary::from_histogram(&h),
            histogram: encode_histogram(&h),
            histogram_uncorrected: encode_histogram(&h),
            error_samples: vec!["boom".into()],
            ..Default::default()
        }
    }

    fn measured(id: &str, base_us: u64) -> Measured {
        let rounds = (0..3)
            .map(|i| {
                let mut req = BTreeMap::new();
                req.insert("GET /work".to_string(), stats(base_us + i));
                RoundStats {
                    iterations: stats(base_us + i),
                    requests: req,
                    contention: None,
                    lag_p99_ms: None,
                }
            })
            .collect();
        let mut parts = BTreeMap::new();
        parts.insert("load".to_string(), "open 100/s".to_string());
        Measured {
            id: id.into(),
            spec_hash: spec_hash(&parts),
            spec_parts: parts,
            rounds,
            cost: None,
        }
    }

    pub(crate) fn file(ids: &[&str]) -> BaselineFile {
        let mut f = BaselineFile::new(Fingerprint::default(), Some("abc".into()), 1);
        for id in ids {
            f.insert(&measured(id, 1000), "open 100/s".into());
        }
        f
    }

    #[test]
    fn round_trips_and_reads_as_a_performance_change() {
        let f = file(&["pkg::a", "pkg::b"]);
        let text = f.to_toml().unwrap();
        assert!(text.starts_with("# perfgate baseline"), "{text}");
        // Summaries first (readable), histograms after.
        let summary = text.find("[scenarios.\"pkg::a\".iterations]").unwrap();
        let rounds = text.find("[[rounds.\"pkg::a\"]]").unwrap();
        assert!(summary < rounds, "{text}");
        assert!(text.contains("p99_ms = 1.05"), "{text}");
        assert!(!text.contains("boom"), "error samples are not stored");
        let back = BaselineFile::parse(&text, "x").unwrap();
        assert_eq!(back.rounds_of("pkg::a").len(), 3);
        assert_eq!(back.rounds_of("pkg::a")[0].iterations.count, 500);
        assert_eq!(back.scenarios["pkg::b"].requests["GET /work"].p50_ms, 1.02);
    }

    #[test]
    fn corrupt_and_future_files_are_named() {
        let e = BaselineFile::parse("this is = not [toml", "base.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("base.toml is not a valid baseline file"),
            "{e}"
        );
        let e = BaselineFile::parse("schema_version = 99\nperfgate_version = \"9.0.0\"\n", "b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("schema 99") && e.contains("9.0.0") && e.contains("upgrade"),
            "{e}"
        );
        let e = BaselineFile::parse("x = 1\n", "b").unwrap_err().to_string();
        assert!(e.contains("no `schema_version`"), "{e}");
        let text = file(&["pkg::a"]).to_toml().unwrap();
        let h = file(&["pkg::a"]).rounds["pkg::a"][0]
            .iterations
            .histogram
            .clone();
        let broken = text.replacen(&h, "AAAA", 1);
        let e = BaselineFile::parse(&broken, "b").unwrap_err().to_string();
        assert!(
            e.contains("scenario `pkg::a`, round 1, `iterations.histogram` does not decode"),
            "{e}"
        );
    }

    #[test]
    fn impossible_values_are_corruption_naming_the_scenario_round_and_field() {
        let edit = |f: &dyn Fn(&mut BaselineFile)| {
            let mut file = file(&["pkg::a"]);
            f(&mut file);
            // Written as text and read back, as the gate reads a committed file.
            let text = toml::to_string(&file).unwrap();
            match BaselineFile::parse(&text, "perfgate.baseline.toml") {
                Err(e @ Error::Corrupt(_)) => e.to_string(),
                other => panic!("not corrupt: {other:?}"),
            }
        };
        for (v, shown) in [(f64::NAN, "NaN"), (-1.0, "-1"), (0.0, "0")] {
            let e = edit(&|f| {
                f.rounds.get_mut("pkg::a").unwrap()[1]
                    .iterations
                    .latency
                    .p50_ms = v
            });
            assert!(
                e.starts_with("perfgate.baseline.toml is corrupt: scenario `pkg::a`, round 2, `iterations.latency.p50_ms`")
                    && e.contains(shown)
                    && e.contains("cargo perfgate record"),
                "{e}"
            );
        }
        let e = edit(&|f| {
            f.rounds.get_mut("pkg::a").unwrap()[0]
                .iterations
                .errors
                .status = 501
        });
        assert!(
            e.contains("`iterations.errors` count 501 errors in 500 attempts"),
            "{e}"
        );
        let e = edit(&|f| {
            f.rounds.get_mut("pkg::a").unwrap()[0]
                .requests
                .get_mut("GET /work")
                .unwrap()
                .throughput = f64::INFINITY
        });
        assert!(e.contains("`GET /work.throughput` is inf"), "{e}");
        let e = edit(&|f| f.scenarios.get_mut("pkg::a").unwrap().iterations.p99_ms = f64::NAN);
        assert!(
            e.contains("scenario `pkg::a`, `iterations.p99_ms` is NaN"),
            "{e}"
        );
        // A histogram of other values than the summary says is caught too.
        let other = stats(5000).histogram;
        let e =
            edit(&|f| f.rounds.get_mut("pkg::a").unwrap()[2].iterations.histogram = other.clone());
        assert!(
            e.contains("round 3, `iterations.latency.min_ms`") && e.contains("its histogram says"),
            "{e}"
        );
    }

    #[test]
    fn writes_atomically_and_refuses_to_drop_silently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perfgate.baseline.toml");
        let old = file(&["pkg::a", "pkg::gone", "other::x"]);
        old.write_atomic(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let read = BaselineFile::read(&path).unwrap().unwrap();
        assert_eq!(
            read,
            BaselineFile::parse(&old.to_toml().unwrap(), "x").unwrap()
        );

        let new = file(&["pkg::a"]);
        let selected = |id: &str| id.starts_with("pkg::");
        let e = merge_recording(Some(&read), new.clone(), selected, false, &path).unwrap_err();
        assert!(
            e.to_string().contains("`pkg::gone`") && e.to_string().contains("--allow-drop"),
            "{e}"
        );
        let (merged, dropped) = merge_recording(Some(&read), new, selected, true, &path).unwrap();
        assert_eq!(dropped, ["pkg::gone"]);
        // Unselected scenarios are kept as they were.
        assert!(
            merged.scenarios.contains_key("other::x") && merged.rounds.contains_key("other::x")
        );
        assert!(!merged.scenarios.contains_key("pkg::gone"));
        assert_eq!(
            BaselineFile::read(&dir.path().join("none.toml")).unwrap(),
            None
        );
    }
}
