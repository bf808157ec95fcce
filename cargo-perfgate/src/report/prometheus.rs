//! OpenMetrics text (`--prometheus FILE`): every measured number as a gauge labelled by scenario,
//! request, quantile, commit and branch — for node-exporter's textfile collector (name the file
//! `*.prom`) or a Pushgateway (`curl --data-binary @file …/metrics/job/perfgate`). Samples carry no
//! timestamps (the Pushgateway refuses them); the run's start is a metric of its own.
//! `examples/grafana/perfgate.json` is a dashboard over these names.

use std::fmt::Write as _;

use perfgate_runtime::format::{LatencySummary, Stats};

use crate::gate::Outcome;
use crate::results::RunResults;
use crate::slo::Verdict;

/// The `request` label of the whole iteration (named requests carry their own name).
pub const ITERATION: &str = "(iteration)";

struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<&'static str>,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, unit: Option<&'static str>, help: &'static str) -> Self {
        Family {
            name,
            help,
            unit,
            samples: Vec::new(),
        }
    }
}

fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

type Quantile = (&'static str, fn(&LatencySummary) -> f64);

const QUANTILES: [Quantile; 6] = [
    ("0.5", |l| l.p50_ms),
    ("0.9", |l| l.p90_ms),
    ("0.95", |l| l.p95_ms),
    ("0.99", |l| l.p99_ms),
    ("0.999", |l| l.p999_ms),
    ("1", |l| l.max_ms),
];

/// `branch`: the branch the run measured (CI variables or git), for the `branch` label.
pub fn render(report: &RunResults, branch: Option<&str>) -> String {
    let commit = report.environment.git_commit.clone().unwrap_or_default();
    let branch = branch.unwrap_or_default().to_string();
    let base = |scenario: &str| -> Vec<(&'static str, String)> {
        vec![
            ("scenario", scenario.to_string()),
            ("commit", commit.clone()),
            ("branch", branch.clone()),
        ]
    };
    let mut latency = Family::new(
        "perfgate_latency_seconds",
        Some("seconds"),
        "Latency quantile of the measured window (from the intended start in open models).",
    );
    let mut mean = Family::new(
        "perfgate_latency_mean_seconds",
        Some("seconds"),
        "Mean latency of the measured window.",
    );
    let mut count = Family::new(
        "perfgate_requests",
        None,
        "Attempts in the measured window (iterations for request=\"(iteration)\").",
    );
    let mut errors = Family::new(
        "perfgate_errors",
        None,
        "Failed attempts in the measured window.",
    );
    let mut error_ratio = Family::new(
        "perfgate_error_ratio",
        None,
        "Failed attempts over attempts.",
    );
    let mut throughput = Family::new(
        "perfgate_throughput_per_second",
        None,
        "Attempts per second of the measured window.",
    );
    let mut cpu = Family::new(
        "perfgate_service_cpu_cores",
        None,
        "CPU used by the service's process tree during the scenario, in cores.",
    );
    let mut rss = Family::new(
        "perfgate_service_peak_rss_bytes",
        Some("bytes"),
        "Peak resident memory of the service's process tree during the scenario.",
    );
    let mut rss_mean = Family::new(
        "perfgate_service_mean_rss_bytes",
        Some("bytes"),
        "Mean resident memory of the service's process tree during the scenario.",
    );
    let mut late = Family::new(
        "perfgate_schedule_late_starts",
        None,
        "Iterations started later than the tolerance (open models).",
    );
    let mut dropped = Family::new(
        "perfgate_schedule_dropped_starts",
        None,
        "Iterations the schedule called for that never started.",
    );
    let mut passed = Family::new(
        "perfgate_scenario_passed",
        None,
        "1 when the scenario passed, 0 when it failed, was invalid or errored.",
    );
    let mut verdict = Family::new(
        "perfgate_scenario_verdict",
        None,
        "1 for the scenario's verdict (label verdict), 0 for the others.",
    );
    let mut slo = Family::new(
        "perfgate_slo_passed",
        None,
        "1 when the SLO check passed (label slo), else 0.",
    );
    let mut change = Family::new(
        "perfgate_regression_change_ratio",
        None,
        "Relative change against the baseline (0.1 = 10% higher), by metric.",
    );
    let mut trend = Family::new(
        "perfgate_trend_per_hour",
        None,
        "A leak or drift check's fitted slope per hour in its metric's unit (bytes, descriptors, threads, ms), \
         with the ends of its interval (label bound: slope, low, high).",
    );
    let mut trend_passed = Family::new(
        "perfgate_trend_passed",
        None,
        "1 when the leak or drift check (label metric) passed, 0 when it failed or could not tell.",
    );
    let mut started = Family::new(
        "perfgate_run_start_timestamp_seconds",
        Some("seconds"),
        "When the run started (Unix time).",
    );
    let mut wall = Family::new(
        "perfgate_scenario_duration_seconds",
        Some("seconds"),
        "Wall time of the scenario, start of the service included.",
    );

    started.samples.push((
        vec![("commit", commit.clone()), ("branch", branch.clone())],
        report.started_unix_ms as f64 / 1000.0,
    ));
    for s in &report.scenarios {
        for v in [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Invalid,
            Verdict::Error,
        ] {
            let mut l = base(&s.id);
            l.push(("verdict", v.as_str().to_lowercase()));
            verdict
                .samples
                .push((l, f64::from(u8::from(s.verdict == v))));
        }
        passed
            .samples
            .push((base(&s.id), f64::from(u8::from(s.verdict == Verdict::Pass))));
        wall.samples.push((base(&s.id), s.wall_secs));
        for c in &s.checks {
            let mut l = base(&s.id);
            l.push(("slo", c.description.clone()));
            slo.samples.push((l, f64::from(u8::from(c.passed))));
        }
        for t in &s.trends {
            let mut l = base(&s.id);
            l.push(("metric", t.trend.metric.as_str().to_string()));
            trend_passed
                .samples
                .push((l.clone(), f64::from(u8::from(t.outcome == Outcome::Pass))));
            if let (Some(v), Some((lo, hi))) = (t.per_hour, t.interval_per_hour) {
                for (bound, x) in [("slope", v), ("low", lo), ("high", hi)] {
                    let mut l = l.clone();
                    l.push(("bound", bound.to_string()));
                    trend.samples.push((l, x));
                }
            }
        }
        for d in &s.regressions {
            if let Some(c) = d.change {
                let mut l = base(&s.id);
                l.push((
                    "request",
                    d.request.clone().unwrap_or_else(|| ITERATION.to_string()),
                ));
                l.push(("metric", d.metric.as_str().to_string()));
                change.samples.push((l, c));
            }
        }
        if let Some(res) = &s.resources {
            cpu.samples.push((base(&s.id), res.cpu_util));
            rss.samples.push((base(&s.id), res.peak_rss_bytes as f64));
            rss_mean
                .samples
                .push((base(&s.id), res.mean_rss_bytes as f64));
        }
        let Some(r) = &s.result else { continue };
        late.samples.push((base(&s.id), r.schedule.late as f64));
        dropped
            .samples
            .push((base(&s.id), r.schedule.dropped as f64));
        let series: Vec<(&str, &Stats)> = std::iter::once((ITERATION, &r.iterations))
            .chain(r.requests.iter().map(|(k, v)| (k.as_str(), v)))
            .collect();
        for (name, st) in series {
            let with_req = || {
                let mut l = base(&s.id);
                l.push(("request", name.to_string()));
                l
            };
            for (q, f) in QUANTILES {
                let mut l = with_req();
                l.push(("quantile", q.to_string()));
                latency.samples.push((l, f(&st.latency) / 1000.0));
            }
            mean.samples.push((with_req(), st.latency.mean_ms / 1000.0));
            count.samples.push((with_req(), st.count as f64));
            errors.samples.push((with_req(), st.errors.total() as f64));
            error_ratio.samples.push((with_req(), st.error_rate()));
            throughput.samples.push((with_req(), st.throughput));
        }
    }

    let mut out = String::new();
    for f in [
        started,
        passed,
        verdict,
        wall,
        slo,
        trend,
        trend_passed,
        change,
        latency,
        mean,
        count,
        errors,
        error_ratio,
        throughput,
        late,
        dropped,
        cpu,
        rss,
        rss_mean,
    ] {
        if f.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        if let Some(u) = f.unit {
            let _ = writeln!(out, "# UNIT {} {u}", f.name);
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\\', "\\\\"));
        for (labels, v) in &f.samples {
            let ls: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {}", f.name, ls.join(","), number(*v));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The branch under test: CI variables first (a detached checkout has no branch), then git.
pub fn detect_branch(workspace_root: &std::path::Path) -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var("GITHUB_HEAD_REF")
        .or_else(|| var("GITHUB_REF_NAME"))
        .or_else(|| var("CI_COMMIT_REF_NAME"))
        .or_else(|| var("BRANCH_NAME"))
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--abbrev-ref", "HEAD"])
                .current_dir(workspace_root)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            let b = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !b.is_empty() && b != "HEAD").then_some(b)
        })
}
