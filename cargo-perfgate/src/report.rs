//! The results document (`results.json`), the terminal table and the environment fingerprint.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use perfgate_runtime::format::{
    self, format_ms, LoadModel, ResourceStats, ScenarioResult, ScenarioSpec,
};
use serde::{Deserialize, Serialize};

use crate::check::{Check, Verdict};
use crate::compare::GateSummary;
use crate::error::{Error, Result};
use crate::gate::{Decision, Outcome, RoundStats};

/// Version of the `results.json` document (the CLI's; the scenario results inside carry their own).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Everything a run found, written to `target/perfgate/<run-id>/results.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunReport {
    pub schema_version: u32,
    pub perfgate_version: String,
    pub run_id: String,
    pub started_unix_ms: u64,
    pub environment: Fingerprint,
    /// The service URL given with `--target-url`, when no service was started.
    pub target_url: Option<String>,
    pub build_secs: f64,
    pub load_secs: f64,
    pub total_secs: f64,
    pub scenarios: Vec<ScenarioReport>,
    pub exit_code: i32,
    /// The comparison with the baseline: where it was read, warnings, counts of outcomes.
    #[serde(default)]
    pub gate: Option<GateSummary>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScenarioReport {
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

impl ScenarioReport {
    /// Why the measurement is invalid, for reports: the engine's reason, else the usual cause.
    pub fn invalid_reason(&self) -> &str {
        self.result
            .as_ref()
            .and_then(|r| r.invalid.as_deref())
            .unwrap_or("the load generator could not keep its schedule")
    }

    /// The rounds the gate compares: `rounds`, or the single `result`.
    pub fn all_rounds(&self) -> Vec<RoundStats> {
        if !self.rounds.is_empty() {
            return self.rounds.clone();
        }
        self.result
            .iter()
            .map(|r| RoundStats {
                iterations: r.iterations.clone(),
                requests: r.requests.clone(),
            })
            .collect()
    }
}

/// What the numbers were measured on: a baseline from another machine is not comparable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Fingerprint {
    pub cpu_model: Option<String>,
    pub cores: usize,
    pub os: String,
    pub kernel: Option<String>,
    pub rustc: Option<String>,
    pub git_commit: Option<String>,
    pub perfgate_version: String,
}

impl Fingerprint {
    pub fn collect(workspace_root: &Path) -> Fingerprint {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| cpu_model(&s));
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        Fingerprint {
            cpu_model,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            rustc: command_line(Command::new(rustc).arg("-V")),
            git_commit: command_line(
                Command::new("git")
                    .args(["rev-parse", "HEAD"])
                    .current_dir(workspace_root),
            ),
            perfgate_version: format::PERFGATE_VERSION.to_string(),
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Model") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// First line of a command's stdout, None when it cannot run or fails.
fn command_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Writes `value` as pretty JSON to `path` through a temporary file in the same directory, so a reader
/// never sees half a file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("creating a file in {}", dir.display()), e))?;
    serde_json::to_writer_pretty(&mut tmp, value)
        .map_err(|e| Error::io("serialising the results", e.into()))?;
    tmp.write_all(b"\n")
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}

pub fn describe_load(load: &LoadModel) -> String {
    match load {
        LoadModel::Open { rate } => format!("open {}/s", trim_float(*rate)),
        LoadModel::Closed { users, think_ms } if *think_ms > 0 => {
            format!("closed {users} users, think {}", whole_ms(*think_ms))
        }
        LoadModel::Closed { users, .. } => format!("closed {users} users"),
        LoadModel::Ramping { stages } => {
            let s: Vec<String> = stages
                .iter()
                .map(|s| {
                    format!(
                        "{}/s over {}",
                        trim_float(s.target_rate),
                        whole_ms(s.duration_ms)
                    )
                })
                .collect();
            format!("ramp {}", s.join(", "))
        }
    }
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

pub fn describe_duration(spec: &ScenarioSpec) -> String {
    if spec.warmup_ms == 0 {
        format!("{}, no warmup", whole_ms(spec.duration_ms))
    } else {
        format!(
            "{} + {} warmup",
            whole_ms(spec.duration_ms),
            whole_ms(spec.warmup_ms)
        )
    }
}

/// A declared duration as users write it: `20s`, `1500ms`.
fn whole_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub(crate) fn new_table(color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

fn verdict_cell(v: Verdict) -> Cell {
    let c = Cell::new(v.as_str());
    match v {
        Verdict::Pass => c.fg(Color::Green),
        Verdict::Fail | Verdict::Error => c.fg(Color::Red).add_attribute(Attribute::Bold),
        Verdict::Invalid => c.fg(Color::Yellow).add_attribute(Attribute::Bold),
    }
}

fn num(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// The results table, then a line per failed check, error and invalid measurement, then the summary.
pub fn render_human(report: &RunReport, results_path: Option<&Path>, color: bool) -> String {
    let mut t = new_table(color);
    t.set_header([
        "scenario",
        "iterations",
        "rate/s",
        "p50",
        "p95",
        "p99",
        "errors",
        "CPU",
        "peak RSS",
        "verdict",
    ]);
    for s in &report.scenarios {
        let mut row = vec![Cell::new(&s.id)];
        match &s.result {
            Some(r) => {
                let it = &r.iterations;
                row.push(num(it.count.to_string()));
                row.push(num(format!("{:.1}", it.throughput)));
                row.push(num(format_ms(it.latency.p50_ms)));
                row.push(num(format_ms(it.latency.p95_ms)));
                row.push(num(format_ms(it.latency.p99_ms)));
                row.push(num(format!("{:.2}%", it.error_rate() * 100.0)));
            }
            None => row.extend((0..6).map(|_| num("-".into()))),
        }
        match &s.resources {
            Some(res) => {
                row.push(num(format!("{:.2} cores", res.cpu_util)));
                row.push(num(format!(
                    "{:.1} MiB",
                    res.peak_rss_bytes as f64 / (1024.0 * 1024.0)
                )));
            }
            None => row.extend([num("-".into()), num("-".into())]),
        }
        row.push(verdict_cell(s.verdict));
        t.add_row(row);
    }
    let mut out = format!("{t}\n");
    let (red, yellow, dim) = if color {
        (
            anstyle::AnsiColor::Red.on_default().bold(),
            anstyle::AnsiColor::Yellow.on_default().bold(),
            anstyle::Style::new().dimmed(),
        )
    } else {
        (
            anstyle::Style::new(),
            anstyle::Style::new(),
            anstyle::Style::new(),
        )
    };
    for s in &report.scenarios {
        let at = s
            .spec
            .as_ref()
            .map(|sp| format!(" ({}:{})", sp.file, sp.line))
            .unwrap_or_default();
        for c in s.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!(
                "{red}✗{red:#} {}: {} — {}{dim}{at}{dim:#}\n",
                s.id, c.description, c.message
            ));
        }
        if let Some(e) = &s.error {
            let label = if s.verdict == Verdict::Error {
                "error"
            } else {
                "failed"
            };
            out.push_str(&format!(
                "{red}✗{red:#} {}: {label}: {}\n",
                s.id,
                indent_tail(e)
            ));
        }
        if s.verdict == Verdict::Invalid {
            if let Some(reason) = s.result.as_ref().and_then(|r| r.invalid.as_deref()) {
                out.push_str(&format!(
                    "{yellow}!{yellow:#} {}: invalid measurement, neither pass nor fail: {reason}\n",
                    s.id
                ));
            }
        }
    }
    out.push_str(&render_regressions(report, color));
    out.push_str(&summary_line(report));
    out.push('\n');
    if let Some(line) = gate_line(report) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(p) = results_path {
        out.push_str(&format!("results: {}\n", p.display()));
    }
    out
}

/// `+12.3%`, or percentage points for the error rate.
pub fn format_change(metric: perfgate_runtime::format::Metric, v: f64) -> String {
    if metric == perfgate_runtime::format::Metric::Errors {
        format!("{:+.2}pp", v * 100.0)
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

/// A decision's change with its interval: `+12.3% [+8.1%, +16.0%]`.
pub fn describe_change(d: &Decision) -> String {
    match (d.change, d.change_low, d.change_high) {
        (Some(c), Some(lo), Some(hi)) => format!(
            "{} [{}, {}]",
            format_change(d.metric, c),
            format_change(d.metric, lo),
            format_change(d.metric, hi)
        ),
        (Some(c), _, _) => format_change(d.metric, c),
        _ => "-".to_string(),
    }
}

/// `pay.p99`, or `p99` for the whole iteration.
pub fn check_name(d: &Decision) -> String {
    match &d.request {
        Some(r) => format!("{r}.{}", d.metric),
        None => d.metric.to_string(),
    }
}

pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "REGRESSED",
        Outcome::Inconclusive => "inconclusive",
        Outcome::NotComparable => "not comparable",
    }
}

/// The regression checks: one row per scenario and check, then a line per regression and warning.
pub fn render_regressions(report: &RunReport, color: bool) -> String {
    let rows: Vec<(&ScenarioReport, &Decision)> = report
        .scenarios
        .iter()
        .flat_map(|s| s.regressions.iter().map(move |d| (s, d)))
        .collect();
    let (red, yellow) = if color {
        (
            anstyle::AnsiColor::Red.on_default().bold(),
            anstyle::AnsiColor::Yellow.on_default().bold(),
        )
    } else {
        (anstyle::Style::new(), anstyle::Style::new())
    };
    let mut out = String::new();
    let compared: Vec<_> = rows
        .iter()
        .filter(|(_, d)| d.outcome != Outcome::NotComparable)
        .collect();
    if !compared.is_empty() {
        let mut t = new_table(color);
        t.set_header([
            "scenario",
            "check",
            "baseline",
            "current",
            "change [interval]",
            "tolerance",
            "verdict",
        ]);
        for (s, d) in &compared {
            let value =
                |v: Option<f64>| v.map_or("-".to_string(), |v| format::format_value(d.metric, v));
            let verdict = Cell::new(outcome_str(d.outcome));
            let verdict = match d.outcome {
                Outcome::Pass => verdict.fg(Color::Green),
                Outcome::Fail => verdict.fg(Color::Red).add_attribute(Attribute::Bold),
                _ => verdict.fg(Color::Yellow),
            };
            t.add_row(vec![
                Cell::new(&s.id),
                Cell::new(check_name(d)),
                num(value(d.baseline)),
                num(value(d.current)),
                num(describe_change(d)),
                num(if d.metric == format::Metric::Errors {
                    format!("{:.2}pp", d.tolerance * 100.0)
                } else {
                    format!("{:.0}%", d.tolerance * 100.0)
                }),
                verdict,
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    for (s, d) in &rows {
        let at = s
            .spec
            .as_ref()
            .map(|sp| format!(" ({}:{})", sp.file, sp.line))
            .unwrap_or_default();
        match d.outcome {
            Outcome::Fail => out.push_str(&format!(
                "{red}✗{red:#} {}: {} regressed — {}{at}\n",
                s.id,
                check_name(d),
                d.note
            )),
            Outcome::NotComparable => {
                out.push_str(&format!("{yellow}!{yellow:#} {}: {}\n", s.id, d.note))
            }
            _ => {}
        }
    }
    for s in &report.scenarios {
        if let Some(ab) = &s.ab {
            out.push_str(&format!(
                "  {}: {} pair{} of rounds against {} (ABBA), {:.0}s; {}\n",
                s.id,
                ab.pairs,
                if ab.pairs == 1 { "" } else { "s" },
                ab.base_commit.get(..10).unwrap_or(&ab.base_commit),
                ab.secs,
                ab.stopped
            ));
        }
    }
    if let Some(g) = &report.gate {
        for w in &g.warnings {
            out.push_str(&format!("{yellow}!{yellow:#} {w}\n"));
        }
    }
    out
}

/// `baseline: perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main): 1 regressed, 2 inconclusive`
pub fn gate_line(report: &RunReport) -> Option<String> {
    let g = report.gate.as_ref()?;
    let origin = g.baseline.as_deref().unwrap_or("none");
    if !g.found {
        return Some(format!("baseline: none ({origin})"));
    }
    let checks: usize = report.scenarios.iter().map(|s| s.regressions.len()).sum();
    Some(format!(
        "baseline: {origin}: {checks} regression check{}, {} regressed, {} inconclusive, {} not comparable",
        if checks == 1 { "" } else { "s" },
        g.fails,
        g.inconclusive,
        g.not_comparable
    ))
}

/// Continuation lines of a multi-line cause, indented under the scenario's line.
fn indent_tail(s: &str) -> String {
    s.trim_end().replace('\n', "\n    ")
}

pub fn summary_line(report: &RunReport) -> String {
    let count = |v: Verdict| report.scenarios.iter().filter(|s| s.verdict == v).count();
    let mut parts = vec![
        format!("{} passed", count(Verdict::Pass)),
        format!("{} failed", count(Verdict::Fail)),
    ];
    if count(Verdict::Invalid) > 0 {
        parts.push(format!("{} invalid", count(Verdict::Invalid)));
    }
    if count(Verdict::Error) > 0 {
        let n = count(Verdict::Error);
        parts.push(format!("{n} error{}", if n == 1 { "" } else { "s" }));
    }
    format!(
        "{} scenario{}: {} · build {:.1}s · load {:.1}s · total {:.1}s",
        report.scenarios.len(),
        if report.scenarios.len() == 1 { "" } else { "s" },
        parts.join(", "),
        report.build_secs,
        report.load_secs,
        report.total_secs
    )
}

/// A listed scenario, as `list --message-format json` prints it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ListedScenario {
    pub package: String,
    pub id: String,
    pub test_name: String,
    pub executable: PathBuf,
    pub spec: ScenarioSpec,
}

pub fn render_list(items: &[ListedScenario], color: bool) -> String {
    let mut t = new_table(color);
    t.set_header(["package", "scenario", "load", "duration", "SLOs", "at"]);
    for s in items {
        let slos: Vec<String> = s.spec.slos.iter().map(|s| s.describe()).collect();
        let name =
            s.id.strip_prefix(&format!("{}::", s.package))
                .unwrap_or(&s.id);
        t.add_row([
            s.package.clone(),
            name.to_string(),
            describe_load(&s.spec.load),
            describe_duration(&s.spec),
            if slos.is_empty() {
                "-".to_string()
            } else {
                slos.join(", ")
            },
            format!("{}:{}", s.spec.file, s.spec.line),
        ]);
    }
    format!(
        "{t}\n{} scenario{}\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::tests::{result, spec};
    use crate::check::{check_slos, verdict};
    use perfgate_runtime::format::{Metric, Op, Slo};

    pub(crate) fn report() -> RunReport {
        let sp = spec(vec![Slo {
            request: None,
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 25.0,
        }]);
        let res = result(&sp, 31.2);
        let checks = check_slos(&sp, &res);
        let v = verdict(false, false, false, &checks);
        let failing = ScenarioReport {
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
        };
        let errored = ScenarioReport {
            id: "predict-service::catalogue".into(),
            test_name: "__perfgate_catalogue".into(),
            result: None,
            resources: None,
            checks: vec![],
            verdict: Verdict::Error,
            error: Some("the scenario wrote no results file\nlast lines:\npanicked at boom".into()),
            ..failing.clone()
        };
        RunReport {
            schema_version: REPORT_SCHEMA_VERSION,
            perfgate_version: "0.1.0".into(),
            run_id: "20260101-000000-1".into(),
            started_unix_ms: 0,
            environment: Fingerprint::default(),
            target_url: None,
            build_secs: 3.0,
            load_secs: 11.0,
            total_secs: 15.0,
            scenarios: vec![failing, errored],
            exit_code: 2,
            gate: None,
        }
    }

    #[test]
    fn an_ab_scenario_says_its_pairs_and_why_sampling_stopped() {
        let mut r = report();
        r.scenarios[0].ab = Some(AbRounds {
            base_commit: "1a2b3c4d5e6f7a8b9c0d".into(),
            pairs: 14,
            base_rounds: vec![],
            stopped: "every check decided after 14 pairs".into(),
            secs: 77.0,
        });
        r.scenarios[0].regressions = vec![Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric: Metric::P99,
            outcome: Outcome::Pass,
            baseline: Some(10.0),
            current: Some(10.1),
            change: Some(0.01),
            change_low: Some(-0.02),
            change_high: Some(0.04),
            tolerance: 0.10,
            rounds_baseline: 14,
            rounds_current: 14,
            note: String::new(),
        }];
        let out = render_human(&r, None, false);
        assert!(
            out.contains("predict-service::predict: 14 pairs of rounds against 1a2b3c4d5e (ABBA), 77s; every check decided after 14 pairs"),
            "{out}"
        );
        let md = crate::output::markdown::render(&r, None);
        assert!(
            md.contains("14 pairs of rounds (ABBA); every check decided after 14 pairs"),
            "{md}"
        );
        let html = crate::output::html::render(&[crate::output::html::Run {
            label: "current".into(),
            report: r.clone(),
        }]);
        assert!(
            html.contains("14 pairs of rounds in ABBA order; every check decided after 14 pairs"),
            "{html}"
        );
    }

    #[test]
    fn regressions_are_tabled_and_named() {
        let mut r = report();
        let d = |metric, outcome, change: Option<f64>, note: &str| Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric,
            outcome,
            baseline: Some(10.0),
            current: change.map(|c| 10.0 * (1.0 + c)),
            change,
            change_low: change.map(|c| c - 0.05),
            change_high: change.map(|c| c + 0.05),
            tolerance: 0.10,
            rounds_baseline: 5,
            rounds_current: 3,
            note: note.into(),
        };
        r.scenarios[0].regressions = vec![
            d(
                Metric::P99,
                Outcome::Fail,
                Some(0.30),
                "at least 25% slower",
            ),
            d(Metric::P50, Outcome::Inconclusive, Some(0.08), "too noisy"),
        ];
        r.scenarios[1].regressions = vec![d(
            Metric::P99,
            Outcome::NotComparable,
            None,
            "not comparable: the scenario changed since the baseline (load: `a` → `b`)",
        )];
        r.gate = Some(GateSummary {
            baseline: Some(
                "perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main)".into(),
            ),
            found: true,
            same_machine: true,
            fails: 1,
            inconclusive: 1,
            not_comparable: 1,
            warnings: vec!["1 regression check is inconclusive".into()],
            ..Default::default()
        });
        let out = render_human(&r, None, false);
        assert!(out.contains("change [interval]"), "{out}");
        assert!(out.contains("+30.0% [+25.0%, +35.0%]"), "{out}");
        assert!(
            out.contains("REGRESSED") && out.contains("inconclusive"),
            "{out}"
        );
        assert!(
            out.contains("✗ predict-service::predict: p99 regressed — at least 25% slower (tests/perf.rs:12)"),
            "{out}"
        );
        assert!(
            out.contains("! predict-service::catalogue: not comparable"),
            "{out}"
        );
        assert!(
            out.contains("! 1 regression check is inconclusive"),
            "{out}"
        );
        assert!(
            out.contains("baseline: perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main): 3 regression checks, 1 regressed, 1 inconclusive, 1 not comparable"),
            "{out}"
        );
        // Without regressions, no second table.
        assert!(!render_human(&report(), None, false).contains("change [interval]"));
        assert_eq!(format_change(Metric::Errors, 0.002), "+0.20pp");
    }

    #[test]
    fn table_shows_the_breach_and_the_error() {
        let r = report();
        let out = render_human(&r, Some(Path::new("target/perfgate/x/results.json")), false);
        assert!(out.contains("predict-service::predict"), "{out}");
        assert!(out.contains("31.2ms"), "{out}");
        assert!(out.contains("FAIL"), "{out}");
        assert!(out.contains("ERROR"), "{out}");
        assert!(
            out.contains("✗ predict-service::predict: p99 < 25.0ms — measured 31.2ms"),
            "{out}"
        );
        assert!(out.contains("panicked at boom"), "{out}");
        assert!(
            out.contains("0.50 cores") && out.contains("64.0 MiB"),
            "{out}"
        );
        assert!(
            out.contains("2 scenarios: 0 passed, 1 failed, 1 error · build 3.0s · load 11.0s"),
            "{out}"
        );
        assert!(
            out.contains("results: target/perfgate/x/results.json"),
            "{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "no colour codes when colour is off: {out}"
        );
        assert!(render_human(&r, None, true).contains('\u{1b}'));
    }

    #[test]
    fn results_are_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        write_json_atomic(&path, &report()).unwrap();
        let back: RunReport =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.scenarios.len(), 2);
        assert_eq!(back.scenarios[0].verdict, Verdict::Fail);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn load_models_and_list() {
        assert_eq!(
            describe_load(&LoadModel::Open { rate: 200.0 }),
            "open 200/s"
        );
        assert_eq!(
            describe_load(&LoadModel::Closed {
                users: 8,
                think_ms: 0
            }),
            "closed 8 users"
        );
        let sp = spec(vec![Slo {
            request: Some("pay".into()),
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 20.0,
        }]);
        let item = ListedScenario {
            package: "shop".into(),
            id: "shop::predict".into(),
            test_name: "__perfgate_predict".into(),
            executable: PathBuf::from("/x"),
            spec: sp,
        };
        let out = render_list(&[item], false);
        assert!(
            out.contains("open 200/s") && out.contains("pay.p99 < 20.0ms"),
            "{out}"
        );
        assert!(
            out.contains("tests/perf.rs:12") && out.contains("10s + 1s warmup"),
            "{out}"
        );
    }

    #[test]
    fn cpu_model_is_read() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
    }
}
