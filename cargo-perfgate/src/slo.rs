//! SLO checks, trend checks (leaks and drift), the verdict of a scenario and the exit code of a run:
//! the one place each is decided, whatever mode measured the scenario (a plain run, rounds against a
//! baseline file, A/B pairs, or `compare` of two files).

use perfgate_runtime::format::{
    format_value, Allowance, Metric, Op, ResourceStats, ScenarioResult, ScenarioSpec, Slo,
    TrendMetric, TrendSlo,
};
use serde::{Deserialize, Serialize};

use crate::cost::CostMeasurement;
use crate::error::exit;
use crate::gate::trend::{self, Fit};
use crate::gate::{Decision, GateSummary, Outcome};

/// One SLO of a scenario, checked against its result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Check {
    pub slo: Slo,
    /// `p99 < 25.0ms`
    pub description: String,
    /// The measured value in the SLO's unit; None when it could not be measured.
    pub measured: Option<f64>,
    pub passed: bool,
    /// `measured 31.2ms`, or why there is no value.
    pub message: String,
    /// Not declared by the scenario: the error check every scenario gets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// The error rate every scenario is held to unless it declares an `errors` SLO of its own: a
/// scenario whose requests all fail must not pass for want of a declared bound.
pub const IMPLICIT_MAX_ERROR_RATE: f64 = 0.01;

/// The SLOs a scenario is checked against: the declared ones, the implicit error check unless an
/// `errors` SLO on the iteration is declared, and, always, that some iteration succeeded (a declared
/// `errors < "100%"` cannot make a run with no successful iteration pass).
fn slos_of(spec: &ScenarioSpec) -> Vec<(Slo, Kind)> {
    let mut out: Vec<(Slo, Kind)> = spec
        .slos
        .iter()
        .filter(|s| !s.metric.is_cost())
        .map(|s| (s.clone(), Kind::Declared))
        .collect();
    let errors = |threshold| Slo {
        request: None,
        metric: Metric::Errors,
        op: Op::Lt,
        threshold,
    };
    let declares_errors = spec
        .slos
        .iter()
        .any(|s| s.request.is_none() && s.metric == Metric::Errors);
    if !declares_errors {
        out.push((errors(IMPLICIT_MAX_ERROR_RATE), Kind::ImplicitErrors));
    }
    out.push((errors(1.0), Kind::SomeSuccess));
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Declared,
    ImplicitErrors,
    SomeSuccess,
}

fn check_of(slo: &Slo, kind: Kind, result: &ScenarioResult) -> Check {
    let mut c = check_slo(slo, result);
    match kind {
        Kind::Declared => {}
        Kind::ImplicitErrors => {
            c.implicit = true;
            c.description = format!(
                "{} (implicit; declare `errors < \"…\"` to change it)",
                c.description
            );
        }
        Kind::SomeSuccess => {
            c.implicit = true;
            c.description = "an iteration succeeds".into();
            let n = result.iterations.count;
            if c.measured.is_some() && !c.passed {
                c.message = format!("all {n} iteration{} failed", if n == 1 { "" } else { "s" });
            }
        }
    }
    c
}

/// The outcome of a scenario.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// An SLO was breached (or the service died under the load).
    Fail,
    /// The measurement cannot be trusted: the generator could not keep its schedule.
    Invalid,
    /// perfgate could not measure: the scenario failed to run or wrote no results.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Invalid => "INVALID",
            Verdict::Error => "ERROR",
        }
    }
}

/// Every SLO of `spec` against `result`, the implicit ones included.
pub fn check_slos(spec: &ScenarioSpec, result: &ScenarioResult) -> Vec<Check> {
    slos_of(spec)
        .iter()
        .map(|(slo, kind)| check_of(slo, *kind, result))
        .collect()
}

pub fn check_slo(slo: &Slo, result: &ScenarioResult) -> Check {
    let description = slo.describe();
    let stats = match &slo.request {
        None => Some(&result.iterations),
        Some(name) => result.requests.get(name),
    };
    let Some(stats) = stats else {
        let recorded: Vec<&str> = result.requests.keys().map(String::as_str).collect();
        let name = slo.request.as_deref().unwrap_or_default();
        let message = if recorded.is_empty() {
            format!("request `{name}` was never recorded (no named request was)")
        } else {
            format!(
                "request `{name}` was never recorded (recorded: {})",
                recorded.join(", ")
            )
        };
        return Check {
            slo: slo.clone(),
            description,
            measured: None,
            passed: false,
            message,
            implicit: false,
        };
    };
    let value = slo.metric.value(stats);
    if stats.count == 0 {
        return Check {
            slo: slo.clone(),
            description,
            measured: None,
            passed: false,
            message: "no sample was recorded".into(),
            implicit: false,
        };
    }
    // NaN never satisfies a bound, so a broken value cannot pass.
    let passed = value.is_finite() && slo.op.holds(value, slo.threshold);
    Check {
        slo: slo.clone(),
        description,
        measured: Some(value),
        passed,
        message: format!("measured {}", format_value(slo.metric, value)),
        implicit: false,
    }
}

/// Whether the scenario declares SLOs on what the cost pass measures.
pub fn has_cost_slos(spec: &ScenarioSpec) -> bool {
    spec.slos.iter().any(|s| s.metric.is_cost())
}

/// The cost SLOs of `spec` (`instructions < "150k"`, `item.allocs < 40`) against the cost pass's
/// figures per iteration or per named request.
pub fn check_cost_slos(spec: &ScenarioSpec, cost: &CostMeasurement) -> Vec<Check> {
    spec.slos
        .iter()
        .filter(|s| s.metric.is_cost())
        .map(|slo| {
            let description = slo.describe();
            let figures = match &slo.request {
                None => Some(&cost.figures),
                Some(name) => cost.requests.get(name),
            };
            let value = figures.and_then(|f| f.value(slo.metric));
            let (measured, passed, message) = match (figures, value) {
                (None, _) => {
                    let name = slo.request.as_deref().unwrap_or_default();
                    let seen: Vec<&str> = cost.requests.keys().map(String::as_str).collect();
                    (
                        None,
                        false,
                        format!(
                            "request `{name}` was never made in the cost pass (made: {})",
                            if seen.is_empty() {
                                "none".to_string()
                            } else {
                                seen.join(", ")
                            }
                        ),
                    )
                }
                (Some(_), None) => (
                    None,
                    false,
                    "not measured (the bytes come from the massif run, which did not run)".into(),
                ),
                (Some(_), Some(v)) => (
                    Some(v),
                    v.is_finite() && slo.op.holds(v, slo.threshold),
                    format!(
                        "measured {} per {}",
                        format_value(slo.metric, v),
                        match slo.request {
                            Some(_) => "request",
                            None => "iteration",
                        }
                    ),
                ),
            };
            Check {
                slo: slo.clone(),
                description,
                measured,
                passed,
                message,
                implicit: false,
            }
        })
        .collect()
}

/// What happened to a scenario, from which its verdict follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The scenario was stopped early, its SLOs breached beyond recovery.
    pub aborted: bool,
    /// The leak and drift checks.
    pub trends: &'a [TrendCheck],
    /// Nothing trustworthy was measured (the scenario could not run, wrote no results, …).
    pub error: bool,
    /// The service died under the load.
    pub service_died: bool,
    /// The generator could not keep its schedule.
    pub invalid: bool,
    pub checks: &'a [Check],
    /// The regression checks against the baseline or the merge-base (empty without one).
    pub regressions: &'a [Decision],
}

/// The verdict of a scenario. An error (nothing trustworthy was measured) wins; a death of the
/// service or a stop on a certain failure fails; an invalid measurement neither passes nor fails (an
/// overloaded generator must not decide: bursts of late starts open connections and fill buffers
/// the service then holds, which look like growth); then a breached SLO, a failed leak or drift
/// check or a regression fails.
pub fn verdict(e: &Evidence<'_>) -> Verdict {
    if e.error {
        Verdict::Error
    } else if e.service_died || e.aborted {
        Verdict::Fail
    } else if e.invalid {
        Verdict::Invalid
    } else if e.checks.iter().any(|c| !c.passed)
        || e.regressions.iter().any(|d| d.outcome == Outcome::Fail)
        || e.trends.iter().any(|t| t.outcome == Outcome::Fail)
    {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// The exit code of a run: 2 if anything errored, else 1 if a scenario failed, else 3 if a measurement
/// was invalid or, under `--strict`, a regression check or a declared trend check
/// (`undecided_trends`; the default bounds only ever fail) was inconclusive or no comparable
/// baseline was found, else 0.
pub fn exit_code(
    verdicts: impl IntoIterator<Item = Verdict>,
    gate: Option<&GateSummary>,
    undecided_trends: bool,
    strict: bool,
) -> i32 {
    let (mut error, mut fail, mut invalid) = (false, false, false);
    for v in verdicts {
        match v {
            Verdict::Error => error = true,
            Verdict::Fail => fail = true,
            Verdict::Invalid => invalid = true,
            Verdict::Pass => {}
        }
    }
    let undecided = undecided_trends
        || gate.is_some_and(|g| !g.found || g.inconclusive > 0 || g.not_comparable > 0);
    if error {
        exit::ERROR
    } else if fail {
        exit::FAIL
    } else if invalid || (strict && undecided) {
        exit::INCONCLUSIVE
    } else {
        exit::PASS
    }
}

/// The exit code of one shard's run (`--shard`): its SLOs and the gate are the merge's business, so
/// 0 once every scenario measured something (an invalid measurement too: the merge names the shard),
/// 2 when one could not be measured.
pub fn shard_exit_code(verdicts: impl IntoIterator<Item = Verdict>) -> i32 {
    if verdicts.into_iter().any(|v| v == Verdict::Error) {
        exit::ERROR
    } else {
        exit::PASS
    }
}

/// The SLO checks of several rounds: per SLO, the round with the median measured value (a round where it
/// could not be measured wins, so a missing value is never hidden).
pub fn median_checks(spec: &ScenarioSpec, results: &[ScenarioResult]) -> Vec<Check> {
    match results {
        [] => Vec::new(),
        [one] => check_slos(spec, one),
        _ => slos_of(spec)
            .iter()
            .map(|(slo, kind)| {
                let mut checks: Vec<Check> =
                    results.iter().map(|r| check_of(slo, *kind, r)).collect();
                if let Some(missing) = checks.iter().position(|c| c.measured.is_none()) {
                    return checks.swap_remove(missing);
                }
                checks.sort_by(|a, b| {
                    a.measured
                        .unwrap_or(0.0)
                        .total_cmp(&b.measured.unwrap_or(0.0))
                });
                let n = checks.len();
                let mut c = checks.swap_remove(n / 2);
                c.message = format!("{} (median of {n} rounds)", c.message);
                c
            })
            .collect(),
    }
}

/// A leak or drift check: a trend of the run against its allowance (`rss_growth < "1MiB/h"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrendCheck {
    pub trend: TrendSlo,
    /// `rss_growth < 1.00MiB/h`
    pub description: String,
    /// Not declared by the scenario: the default bound of every long run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
    /// Pass (the whole interval within the allowance), fail (the whole interval above it, and the
    /// growth over the run certain to exceed the metric's floor) or inconclusive.
    pub outcome: Outcome,
    /// The fitted slope and its interval, per hour in the metric's unit.
    pub per_hour: Option<f64>,
    pub interval_per_hour: Option<(f64, f64)>,
    /// The allowance per hour in the metric's unit (a percentage resolved against the fitted start).
    pub allowance_per_hour: f64,
    /// The fitted line (seconds of the series: the sampler's for the service's resources, the first
    /// round's measured window for latency), for charts.
    pub fit: Option<Fit>,
    /// `+412MiB/h [+398MiB/h, +425MiB/h] over 1m50s (99%)`, then why the outcome.
    pub message: String,
}

impl TrendCheck {
    /// The check in one line: `rss_growth +412MiB/h [+398MiB/h, +425MiB/h] over 1m50s (99%): rising
    /// faster than 1.00MiB/h for certain: …: FAIL`, or why it could not be measured.
    pub fn describe(&self) -> String {
        format!(
            "{} {}: {}",
            self.trend.metric,
            self.message,
            crate::text::trend_outcome_str(self.outcome)
        )
    }

    /// The slope with its interval, per hour: `+750MiB/h [+740MiB/h, +760MiB/h]`, or `-`.
    pub fn slope(&self) -> String {
        let m = self.trend.metric;
        match (self.per_hour, self.interval_per_hour) {
            (Some(v), Some((lo, hi))) => format!(
                "{} [{}, {}]",
                m.format_rate(v),
                m.format_rate(lo),
                m.format_rate(hi)
            ),
            _ => "-".to_string(),
        }
    }

    /// What the slope was fitted on: `59s, 60 points, 99%`, or `-`.
    pub fn fitted_over(&self) -> String {
        self.fit.as_ref().map_or("-".to_string(), |f| {
            format!(
                "{}, {} points, {}",
                crate::text::describe_secs(f.secs()),
                f.points,
                crate::text::describe_confidence(f.confidence)
            )
        })
    }
}

/// The bound a long run is held to for each trend it does not declare.
pub fn default_allowance(metric: TrendMetric) -> Allowance {
    match metric {
        TrendMetric::RssGrowth => Allowance::PerHour(1_048_576.0),
        TrendMetric::FdsGrowth | TrendMetric::ThreadsGrowth => Allowance::PerHour(0.0),
        TrendMetric::P99Drift => Allowance::PercentPerHour(50.0),
    }
}

/// The least growth over the fitted window that can fail a check, however certain the slope: a
/// service's own steps (an allocator arena, a connection or thread pool growing once, a slower
/// stretch of a shared machine) are not leaks. For latency: a fifth of the fitted start, and a
/// millisecond at least.
pub fn floor(metric: TrendMetric, level: f64) -> f64 {
    match metric {
        TrendMetric::RssGrowth => 1_048_576.0,
        TrendMetric::FdsGrowth => 8.0,
        TrendMetric::ThreadsGrowth => 4.0,
        TrendMetric::P99Drift => (0.2 * level.abs()).max(1.0),
    }
}

/// Outside the soak tier, trend checks are reported only for runs whose fitted window is at least
/// this long, and only when they decide.
pub const MIN_TREND_SECS: f64 = 60.0;

/// The trends a scenario is checked against: the declared ones, and the defaults for the others.
fn trends_of(spec: &ScenarioSpec) -> Vec<(TrendSlo, bool)> {
    TrendMetric::ALL
        .into_iter()
        .map(
            |metric| match spec.trends.iter().find(|t| t.metric == metric) {
                Some(t) => (t.clone(), false),
                None => (
                    TrendSlo {
                        metric,
                        allowance: default_allowance(metric),
                    },
                    true,
                ),
            },
        )
        .collect()
}

/// What the trend checks of a scenario are fitted on.
#[derive(Debug, Clone, Copy)]
pub struct TrendInput<'a> {
    /// The service's process tree over the scenario; None when it was not sampled.
    pub resources: Option<&'a ResourceStats>,
    /// Why it was not sampled (`--target-url`), for the message.
    pub unsampled: &'a str,
    /// Unix times (ms) of the first measured window's start and the last one's end: the span the
    /// service's resources are fitted over (warm-up excluded). None when nothing was measured.
    pub measured: Option<(u64, u64)>,
    /// The rounds' results, in order (their latency intervals).
    pub rounds: &'a [ScenarioResult],
    /// Report every check, inconclusive ones too (the soak tier); else only decided checks of runs
    /// at least [`MIN_TREND_SECS`] long.
    pub always: bool,
    /// The interval's confidence ([`trend::CONFIDENCE`]; higher for a look during the run).
    pub confidence: f64,
}

/// Unix times (ms) from the first round's measured window's start to the last one's end.
pub fn measured_span(rounds: &[ScenarioResult]) -> Option<(u64, u64)> {
    let first = rounds.first()?;
    let last = rounds.last()?;
    Some((
        first.started_unix_ms,
        last.started_unix_ms + (last.measured_secs * 1000.0) as u64,
    ))
}

/// The error rate a scenario's iterations are held to: its declared `errors` bound, else the
/// implicit one.
pub fn error_bound(spec: &ScenarioSpec) -> f64 {
    slos_of(spec)
        .into_iter()
        .find(|(s, k)| *k != Kind::SomeSuccess && s.request.is_none() && s.metric == Metric::Errors)
        .map_or(IMPLICIT_MAX_ERROR_RATE, |(s, _)| s.threshold)
}

/// The leak and drift checks of a scenario.
pub fn trend_checks(spec: &ScenarioSpec, input: &TrendInput<'_>) -> Vec<TrendCheck> {
    trends_of(spec)
        .into_iter()
        .filter_map(|(slo, implicit)| {
            let series = trend_series(slo.metric, input);
            let check = judge_trend(slo, implicit, series, input.confidence);
            let long_enough = check
                .fit
                .as_ref()
                .is_some_and(|f| f.secs() >= MIN_TREND_SECS);
            let keep = input.always || (long_enough && check.outcome != Outcome::Inconclusive);
            keep.then_some(check)
        })
        .collect()
}

/// The points of a trend's series (seconds, value), or why there are none.
fn trend_series(
    metric: TrendMetric,
    input: &TrendInput<'_>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    if metric == TrendMetric::P99Drift {
        let Some(first) = input.rounds.first() else {
            return Err("no round finished".into());
        };
        // Every round's intervals on one time line, from the first measured window's start.
        let mut points = Vec::new();
        for r in input.rounds {
            let offset = (r.started_unix_ms as f64 - first.started_unix_ms as f64) / 1000.0;
            for iv in r.intervals.iter().filter(|iv| iv.iterations > 0) {
                points.push((offset + iv.t as f64 + iv.secs as f64 / 2.0, iv.p99_ms));
            }
        }
        if points.is_empty() {
            return Err(
                "no latency intervals were recorded (a perfgate-runtime older than the CLI?)"
                    .into(),
            );
        }
        return Ok(points.into_iter().unzip());
    }
    let Some(res) = input.resources else {
        return Err(format!("the service was not sampled ({})", input.unsampled));
    };
    if metric == TrendMetric::FdsGrowth && res.max_fds == 0 {
        return Err("the service's open descriptors could not be counted".into());
    }
    let Some((from, to)) = input.measured else {
        return Err("nothing was measured".into());
    };
    let base = res.started_unix_ms as f64;
    let start = (from as f64 - base) / 1000.0;
    let end = (to as f64 - base) / 1000.0;
    Ok(res
        .timeseries
        .iter()
        .filter(|p| p.t - p.secs >= start && p.t <= end + 0.5)
        .map(|p| {
            let v = match metric {
                TrendMetric::RssGrowth => p.rss_bytes as f64,
                TrendMetric::FdsGrowth => p.fds,
                TrendMetric::ThreadsGrowth => p.threads,
                TrendMetric::P99Drift => unreachable!("handled above"),
            };
            (p.t - p.secs / 2.0, v)
        })
        .unzip())
}

/// One trend against its allowance.
fn judge_trend(
    slo: TrendSlo,
    implicit: bool,
    series: Result<(Vec<f64>, Vec<f64>), String>,
    confidence: f64,
) -> TrendCheck {
    let metric = slo.metric;
    let mut check = TrendCheck {
        description: slo.describe(),
        trend: slo.clone(),
        implicit,
        outcome: Outcome::Inconclusive,
        per_hour: None,
        interval_per_hour: None,
        allowance_per_hour: slo.allowance.per_hour(0.0),
        fit: None,
        message: String::new(),
    };
    let (t, y) = match series {
        Ok(points) => points,
        Err(why) => {
            check.message = format!("not measured: {why}");
            return check;
        }
    };
    let seed = 0x7472_656e_6400 + metric as u64;
    let Some(fit) = trend::fit(&t, &y, confidence, seed) else {
        let secs = match (t.first(), t.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        check.message = format!(
            "too short to tell: {} point{} over {} after the warm-up, at least {} needed",
            t.len(),
            if t.len() == 1 { "" } else { "s" },
            crate::text::describe_secs(secs),
            trend::MIN_POINTS
        );
        return check;
    };
    let h = 3600.0;
    let allowance = slo.allowance.per_hour(fit.level);
    let (per_hour, lo, hi) = (fit.slope * h, fit.lo * h, fit.hi * h);
    let least_growth = fit.lo * fit.secs();
    let smallest = floor(metric, fit.level);
    check.allowance_per_hour = allowance;
    check.per_hour = Some(per_hour);
    check.interval_per_hour = Some((lo, hi));
    let fitted = format!(
        "{} [{}, {}] over {} ({})",
        metric.format_rate(per_hour),
        metric.format_rate(lo),
        metric.format_rate(hi),
        crate::text::describe_secs(fit.secs()),
        crate::text::describe_confidence(fit.confidence)
    );
    let allowed = metric.format_rate(allowance);
    let allowed = allowed.strip_prefix('+').unwrap_or(&allowed);
    let (outcome, why) = if lo > allowance && least_growth >= smallest {
        (
            Outcome::Fail,
            format!(
                "rising faster than {allowed} for certain: at least {} over the run",
                metric.format_level(least_growth)
            ),
        )
    } else if hi <= allowance {
        (Outcome::Pass, format!("within {allowed}"))
    } else if lo > allowance {
        (
            Outcome::Inconclusive,
            format!(
                "rising, but by less than {} over the run, which a service's own steps can explain; a longer run would tell",
                metric.format_level(smallest)
            ),
        )
    } else {
        (
            Outcome::Inconclusive,
            format!("the interval straddles {allowed}: too short or too noisy to tell; a longer run would"),
        )
    };
    check.outcome = outcome;
    check.message = format!("{fitted}: {why}");
    check.fit = Some(fit);
    check
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use perfgate_runtime::format::{LoadModel, Metric, Op, Stats};

    pub fn spec(slos: Vec<Slo>) -> ScenarioSpec {
        ScenarioSpec {
            name: "predict".into(),
            module_path: "perf".into(),
            file: "tests/perf.rs".into(),
            line: 12,
            load: LoadModel::Open { rate: 200.0 },
            duration_ms: 10_000,
            warmup_ms: 1_000,
            timeout_ms: 10_000,
            max_in_flight: None,
            slos,
            regression_pct: 10.0,
            service: None,
            data: vec![],
            cost_regression_pct: 1.0,
            tiers: Default::default(),
            trends: vec![],
        }
    }

    pub fn stats(count: u64, p99: f64) -> Stats {
        let mut s = Stats {
            count,
            throughput: count as f64 / 10.0,
            ..Default::default()
        };
        s.latency.count = count;
        s.latency.p50_ms = p99 / 3.0;
        s.latency.p95_ms = p99 / 1.5;
        s.latency.p99_ms = p99;
        s
    }

    pub fn result(spec: &ScenarioSpec, p99: f64) -> ScenarioResult {
        let mut requests = std::collections::BTreeMap::new();
        requests.insert("POST /predict".to_string(), stats(2000, p99 * 0.9));
        ScenarioResult {
            schema_version: perfgate_runtime::format::SCHEMA_VERSION,
            perfgate_version: "0.1.0".into(),
            spec: spec.clone(),
            base_url: "http://127.0.0.1:1".into(),
            started_unix_ms: 0,
            measured_secs: 10.0,
            iterations: stats(2000, p99),
            requests,
            schedule: Default::default(),
            invalid: None,
            timeseries: vec![],
            intervals: vec![],
            shard: None,
        }
    }

    fn slo(request: Option<&str>, metric: Metric, op: Op, threshold: f64) -> Slo {
        Slo {
            request: request.map(str::to_string),
            metric,
            op,
            threshold,
        }
    }

    #[test]
    fn slos_pass_and_fail() {
        let spec = spec(vec![
            slo(None, Metric::P99, Op::Lt, 25.0),
            slo(None, Metric::Errors, Op::Lt, 0.005),
        ]);
        let checks = check_slos(&spec, &result(&spec, 31.2));
        assert!(!checks[0].passed);
        assert_eq!(checks[0].description, "p99 < 25.0ms");
        assert_eq!(checks[0].message, "measured 31.2ms");
        assert!(checks[1].passed);
        assert_eq!(
            verdict(&Evidence {
                checks: &checks,
                ..Default::default()
            }),
            Verdict::Fail
        );
        let checks = check_slos(&spec, &result(&spec, 20.0));
        assert!(checks.iter().all(|c| c.passed));
        assert_eq!(
            verdict(&Evidence {
                checks: &checks,
                ..Default::default()
            }),
            Verdict::Pass
        );
    }

    #[test]
    fn named_requests_are_checked_and_missing_ones_fail() {
        let spec = spec(vec![
            slo(Some("POST /predict"), Metric::P99, Op::Lt, 25.0),
            slo(Some("pay"), Metric::P99, Op::Lt, 25.0),
        ]);
        let checks = check_slos(&spec, &result(&spec, 20.0));
        assert!(checks[0].passed, "{:?}", checks[0]);
        assert!(!checks[1].passed);
        assert_eq!(checks[1].measured, None);
        assert!(
            checks[1].message.contains("never recorded"),
            "{}",
            checks[1].message
        );
        assert!(
            checks[1].message.contains("POST /predict"),
            "{}",
            checks[1].message
        );
    }

    #[test]
    fn invalid_runs_never_pass_and_errors_win() {
        let spec = spec(vec![slo(None, Metric::P99, Op::Lt, 25.0)]);
        let passing = check_slos(&spec, &result(&spec, 10.0));
        let failing = check_slos(&spec, &result(&spec, 30.0));
        assert_eq!(
            verdict(&Evidence {
                invalid: true,
                checks: &passing,
                ..Default::default()
            }),
            Verdict::Invalid
        );
        assert_eq!(
            verdict(&Evidence {
                invalid: true,
                checks: &failing,
                ..Default::default()
            }),
            Verdict::Invalid
        );
        assert_eq!(
            verdict(&Evidence {
                service_died: true,
                checks: &passing,
                ..Default::default()
            }),
            Verdict::Fail
        );
        assert_eq!(
            verdict(&Evidence {
                error: true,
                service_died: true,
                invalid: true,
                checks: &passing,
                ..Default::default()
            }),
            Verdict::Error
        );
        let empty = check_slo(&spec.slos[0], &result(&spec, 0.0));
        assert!(empty.passed);
        let mut r = result(&spec, 10.0);
        r.iterations = Stats::default();
        assert!(!check_slo(&spec.slos[0], &r).passed);
    }

    /// A service trace of `n` points 0.3 s apart, memory from `rss(i)`, 40 descriptors, 4 threads.
    fn trace(n: u64, rss: impl Fn(u64) -> u64) -> perfgate_runtime::format::ResourceStats {
        perfgate_runtime::format::ResourceStats {
            started_unix_ms: 1_000_000,
            max_fds: 40,
            timeseries: (1..=n)
                .map(|i| perfgate_runtime::format::ResourceSample {
                    t: i as f64 * 0.3,
                    secs: 0.3,
                    rss_bytes: rss(i),
                    fds: 40.0,
                    threads: 4.0,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn checks_of(
        sp: &ScenarioSpec,
        res: Option<&perfgate_runtime::format::ResourceStats>,
        secs: u64,
        always: bool,
    ) -> Vec<TrendCheck> {
        trend_checks(
            sp,
            &TrendInput {
                resources: res,
                unsampled: "--target-url",
                measured: Some((1_000_000, 1_000_000 + secs * 1000)),
                rounds: &[],
                always,
                confidence: trend::CONFIDENCE,
            },
        )
    }

    fn outcome_of(checks: &[TrendCheck], m: TrendMetric) -> (Outcome, String) {
        let c = checks.iter().find(|c| c.trend.metric == m).unwrap();
        (c.outcome, c.message.clone())
    }

    #[test]
    fn trend_checks_fail_pass_or_say_why_they_cannot_tell() {
        let mib = 1u64 << 20;
        let mut sp = spec(vec![]);
        // 64 KiB every 0.3 s for 90 s: a certain leak far above 1 MiB/h.
        let leak = trace(300, |i| 50 * mib + i * 65536);
        let c = checks_of(&sp, Some(&leak), 90, true);
        let (o, msg) = outcome_of(&c, TrendMetric::RssGrowth);
        assert_eq!(o, Outcome::Fail, "{msg}");
        assert!(
            msg.contains("rising faster than 1.00MiB/h for certain"),
            "{msg}"
        );
        assert_eq!(outcome_of(&c, TrendMetric::FdsGrowth).0, Outcome::Pass);
        assert_eq!(outcome_of(&c, TrendMetric::ThreadsGrowth).0, Outcome::Pass);
        let (o, msg) = outcome_of(&c, TrendMetric::P99Drift);
        assert_eq!(o, Outcome::Inconclusive);
        assert!(msg.starts_with("not measured: no round finished"), "{msg}");
        // Rising for certain, but by 300 × 1 KiB over the run: below the 1 MiB floor.
        let small = trace(300, |i| 50 * mib + i * 1024);
        let (o, msg) = outcome_of(
            &checks_of(&sp, Some(&small), 90, true),
            TrendMetric::RssGrowth,
        );
        assert_eq!(o, Outcome::Inconclusive, "{msg}");
        assert!(msg.contains("by less than 1.00MiB over the run"), "{msg}");
        // Flat memory passes; a declared bound of 5% of it an hour is resolved against its level.
        let flat = trace(300, |_| 100 * mib);
        sp.trends.push(TrendSlo {
            metric: TrendMetric::RssGrowth,
            allowance: Allowance::PercentPerHour(5.0),
        });
        let c = checks_of(&sp, Some(&flat), 90, true);
        let rss = c
            .iter()
            .find(|c| c.trend.metric == TrendMetric::RssGrowth)
            .unwrap();
        assert_eq!(rss.outcome, Outcome::Pass);
        assert!(!rss.implicit && rss.description == "rss_growth < 5%/h");
        assert_eq!(rss.allowance_per_hour, 5.0 * mib as f64);
        // Too few points after the warm-up; not sampled at all.
        let (o, msg) = outcome_of(
            &checks_of(&sp, Some(&trace(20, |_| mib)), 6, true),
            TrendMetric::RssGrowth,
        );
        assert_eq!(o, Outcome::Inconclusive);
        assert!(msg.starts_with("too short to tell: 20 points"), "{msg}");
        let (o, msg) = outcome_of(&checks_of(&sp, None, 90, true), TrendMetric::FdsGrowth);
        assert_eq!(o, Outcome::Inconclusive);
        assert_eq!(
            msg,
            "not measured: the service was not sampled (--target-url)"
        );
        // Outside the soak tier: only decided checks of a window of a minute or more.
        assert!(checks_of(&sp, Some(&trace(150, |_| mib)), 45, false).is_empty());
        let decided = checks_of(&sp, Some(&leak), 90, false);
        assert!(decided.iter().all(|c| c.outcome != Outcome::Inconclusive));
        assert!(decided.iter().any(|c| c.outcome == Outcome::Fail));
    }

    #[test]
    fn a_failed_trend_check_fails_a_valid_measurement_only() {
        let check = |metric, outcome| TrendCheck {
            trend: TrendSlo {
                metric,
                allowance: default_allowance(metric),
            },
            description: String::new(),
            implicit: true,
            outcome,
            per_hour: None,
            interval_per_hour: None,
            allowance_per_hour: 0.0,
            fit: None,
            message: String::new(),
        };
        let leak = [check(TrendMetric::RssGrowth, Outcome::Fail)];
        let drift = [check(TrendMetric::P99Drift, Outcome::Fail)];
        let open = [check(TrendMetric::FdsGrowth, Outcome::Inconclusive)];
        let v = |trends: &[TrendCheck], invalid| {
            verdict(&Evidence {
                trends,
                invalid,
                ..Default::default()
            })
        };
        assert_eq!(v(&leak, false), Verdict::Fail);
        assert_eq!(v(&leak, true), Verdict::Invalid);
        assert_eq!(v(&drift, false), Verdict::Fail);
        assert_eq!(v(&open, false), Verdict::Pass, "inconclusive never fails");
        let stopped = Evidence {
            aborted: true,
            invalid: true,
            ..Default::default()
        };
        assert_eq!(verdict(&stopped), Verdict::Fail);
    }

    #[test]
    fn exit_codes_aggregate() {
        use Verdict::*;
        assert_eq!(exit_code([], None, false, false), 0);
        assert_eq!(exit_code([Pass, Pass], None, false, false), 0);
        assert_eq!(exit_code([Pass, Invalid], None, false, false), 3);
        assert_eq!(exit_code([Invalid, Fail, Pass], None, false, false), 1);
        assert_eq!(exit_code([Fail, Error, Invalid], None, false, false), 2);
    }

    #[test]
    fn slos_of_several_rounds_use_the_median_round() {
        use perfgate_runtime::format::{Metric, Op, Slo};
        let sp = spec(vec![Slo {
            request: None,
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 25.0,
        }]);
        // One noisy round above the bound does not fail a scenario whose median round is within it.
        let rounds = [result(&sp, 10.0), result(&sp, 40.0), result(&sp, 12.0)];
        let checks = median_checks(&sp, &rounds);
        assert!(checks[0].passed, "{checks:?}");
        assert_eq!(checks[0].measured, Some(12.0));
        assert!(
            checks[0].message.contains("median of 3 rounds"),
            "{checks:?}"
        );
        let rounds = [result(&sp, 30.0), result(&sp, 40.0), result(&sp, 12.0)];
        assert!(!median_checks(&sp, &rounds)[0].passed);
        assert_eq!(median_checks(&sp, &rounds[..1])[0].measured, Some(30.0));
        assert!(median_checks(&sp, &[]).is_empty());
    }

    #[test]
    fn strict_turns_missing_or_undecided_into_3() {
        use Verdict::*;
        let none = GateSummary {
            found: false,
            ..Default::default()
        };
        assert_eq!(exit_code([Pass], Some(&none), false, true), 3);
        assert_eq!(exit_code([Pass], Some(&none), false, false), 0);
        assert_eq!(exit_code([Fail], Some(&none), false, true), 1);
        let undecided = GateSummary {
            found: true,
            inconclusive: 1,
            ..Default::default()
        };
        assert_eq!(exit_code([Pass], Some(&undecided), false, true), 3);
        let fine = GateSummary {
            found: true,
            ..Default::default()
        };
        assert_eq!(exit_code([Pass], Some(&fine), false, true), 0);
        assert_eq!(exit_code([Pass], None, false, true), 0);
        // A declared trend check that could not decide: 3 under --strict only.
        assert_eq!(exit_code([Pass], None, true, true), 3);
        assert_eq!(exit_code([Pass], None, true, false), 0);
        assert_eq!(exit_code([Fail], None, true, true), 1);
    }

    #[test]
    fn every_scenario_gets_an_error_check_and_no_failing_run_passes() {
        // No declared SLO: the implicit error check and the success check.
        let bare = spec(vec![]);
        let mut all_failed = result(&bare, 10.0);
        all_failed.iterations.errors.status = all_failed.iterations.count;
        let checks = check_slos(&bare, &all_failed);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(checks.iter().all(|c| c.implicit && !c.passed), "{checks:?}");
        assert!(
            checks[0].description.starts_with("errors < 1.00%"),
            "{checks:?}"
        );
        assert_eq!(checks[1].message, "all 2000 iterations failed");
        let v = verdict(&Evidence {
            checks: &checks,
            ..Default::default()
        });
        assert_eq!(v, Verdict::Fail);
        // 0.5% errors pass the implicit 1%; 2% do not.
        let mut few = result(&bare, 10.0);
        few.iterations.errors.timeout = 10;
        assert!(check_slos(&bare, &few).iter().all(|c| c.passed));
        few.iterations.errors.timeout = 40;
        assert!(!check_slos(&bare, &few)[0].passed);
        // A declared `errors` SLO replaces the implicit one, but not the success check.
        let lax = spec(vec![slo(None, Metric::Errors, Op::Lt, 1.0)]);
        let checks = check_slos(&lax, &few);
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        let checks = check_slos(&lax, &all_failed);
        assert!(!checks[1].passed && checks[1].implicit, "{checks:?}");
        // An `errors` SLO of a named request does not replace the iteration's implicit check.
        let named = spec(vec![slo(Some("pay"), Metric::Errors, Op::Lt, 0.5)]);
        assert!(check_slos(&named, &few)
            .iter()
            .any(|c| c.implicit && c.description.starts_with("errors < 1.00%")));
        // Several rounds: the same implicit checks, on the median round.
        let rounds = [all_failed.clone(), all_failed.clone(), few.clone()];
        let checks = median_checks(&bare, &rounds);
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.implicit && !c.passed));
    }
}
