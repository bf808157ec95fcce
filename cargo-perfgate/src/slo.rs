//! SLO checks, the verdict of a scenario and the exit code of a run: the one place each is decided,
//! whatever mode measured the scenario (a plain run, rounds against a baseline file, A/B pairs, or
//! `compare` of two files).

use perfgate_runtime::format::{format_value, Metric, Op, ScenarioResult, ScenarioSpec, Slo};
use serde::{Deserialize, Serialize};

use crate::error::exit;
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

/// What happened to a scenario, from which its verdict follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
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

/// The verdict of a scenario. An error (nothing trustworthy was measured) wins; an invalid
/// measurement neither passes nor fails (an overloaded generator must not decide); then a death of
/// the service, a breached SLO or a regression fails.
pub fn verdict(e: &Evidence<'_>) -> Verdict {
    if e.error {
        Verdict::Error
    } else if e.service_died {
        Verdict::Fail
    } else if e.invalid {
        Verdict::Invalid
    } else if e.checks.iter().any(|c| !c.passed)
        || e.regressions.iter().any(|d| d.outcome == Outcome::Fail)
    {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// The exit code of a run: 2 if anything errored, else 1 if a scenario failed, else 3 if a measurement
/// was invalid or, under `--strict`, a regression check was inconclusive or no comparable baseline was
/// found, else 0.
pub fn exit_code(
    verdicts: impl IntoIterator<Item = Verdict>,
    gate: Option<&GateSummary>,
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
    let undecided = gate.is_some_and(|g| !g.found || g.inconclusive > 0 || g.not_comparable > 0);
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

    #[test]
    fn exit_codes_aggregate() {
        use Verdict::*;
        assert_eq!(exit_code([], None, false), 0);
        assert_eq!(exit_code([Pass, Pass], None, false), 0);
        assert_eq!(exit_code([Pass, Invalid], None, false), 3);
        assert_eq!(exit_code([Invalid, Fail, Pass], None, false), 1);
        assert_eq!(exit_code([Fail, Error, Invalid], None, false), 2);
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
        assert_eq!(exit_code([Pass], Some(&none), true), 3);
        assert_eq!(exit_code([Pass], Some(&none), false), 0);
        assert_eq!(exit_code([Fail], Some(&none), true), 1);
        let undecided = GateSummary {
            found: true,
            inconclusive: 1,
            ..Default::default()
        };
        assert_eq!(exit_code([Pass], Some(&undecided), true), 3);
        let fine = GateSummary {
            found: true,
            ..Default::default()
        };
        assert_eq!(exit_code([Pass], Some(&fine), true), 0);
        assert_eq!(exit_code([Pass], None, true), 0);
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
