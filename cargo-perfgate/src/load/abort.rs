//! Stopping a round early when its verdict is already certain, instead of burning the rest of an
//! hour: the CLI watches the round's finished seconds (the progress file the runtime writes next to
//! its results) and the service's sampled resources, about once a second, and stops the scenario
//! process with the reason. Three rules, each certain rather than likely:
//! - the errors of each of the last `abort_after` seconds were above `abort_errors` of its
//!   iterations (50% for 10 s by default): the service is down or broken;
//! - with one round, the errors so far already exceed the scenario's `errors` bound (declared, or
//!   the implicit 1%) of every iteration the open model's schedule will start: no remaining
//!   second can bring the rate back under it;
//! - a leak check fails at the stricter level of [`LOOK_CONFIDENCE`], looked at when each tenth of
//!   the measured window has passed (at most nine looks, so the extra chance of a false stop
//!   stays below 1%).

use perfgate_runtime::format::{LoadModel, ResourceStats, ScenarioSpec, SecondSample};

use crate::gate::Outcome;
use crate::load::window::{TierPlan, Window};
use crate::slo::{self, TrendCheck, TrendInput};
use crate::text::describe_secs;

/// The confidence of the leak checks looked at while a round runs.
pub const LOOK_CONFIDENCE: f64 = 0.999;

/// Why a round was stopped, and the leak check that stopped it.
#[derive(Debug, Clone)]
pub struct Abort {
    pub reason: String,
    pub trend: Option<TrendCheck>,
}

/// What one round is watched for.
pub struct Watch<'a> {
    pub spec: &'a ScenarioSpec,
    pub window: Window,
    pub plan: &'a TierPlan,
    /// Rounds of the scenario (the error bound is certain to fail only with one).
    pub rounds: usize,
    /// Unix time (ms) the measured window started, about.
    pub measured_from_ms: u64,
    /// The next leak look, in tenths of the measured window.
    next_look: u32,
}

impl<'a> Watch<'a> {
    pub fn new(
        spec: &'a ScenarioSpec,
        window: Window,
        plan: &'a TierPlan,
        rounds: usize,
        measured_from_ms: u64,
    ) -> Self {
        Watch {
            spec,
            window,
            plan,
            rounds,
            measured_from_ms,
            next_look: 1,
        }
    }

    /// Whether the round must stop: `seconds` are its finished seconds so far, `resources` the
    /// service's trace so far (None when it is not sampled), `now_ms` the Unix time.
    pub fn check(
        &mut self,
        seconds: &[SecondSample],
        resources: Option<&ResourceStats>,
        now_ms: u64,
    ) -> Option<Abort> {
        if self.plan.config.abort == Some(false) {
            return None;
        }
        let rate = self.plan.config.abort_errors.unwrap_or(0.5);
        let after = self
            .plan
            .config
            .abort_after
            .map_or(10, |d| d.as_secs().max(1)) as usize;
        if let Some(reason) = sustained_errors(seconds, rate, after) {
            return Some(Abort {
                reason,
                trend: None,
            });
        }
        if self.rounds <= 1 {
            if let Some(reason) = error_bound_lost(self.spec, self.window, seconds) {
                return Some(Abort {
                    reason,
                    trend: None,
                });
            }
        }
        let elapsed = now_ms.saturating_sub(self.measured_from_ms) as f64;
        let tenth = self.window.duration_ms as f64 / 10.0;
        if self.next_look > 9 || elapsed < tenth * f64::from(self.next_look) {
            return None;
        }
        self.next_look = (elapsed / tenth) as u32 + 1;
        let failed = slo::trend_checks(
            self.spec,
            &TrendInput {
                resources,
                unsampled: "",
                measured: Some((self.measured_from_ms, now_ms)),
                rounds: &[],
                always: self.plan.tier == crate::cli::Tier::Soak,
                confidence: LOOK_CONFIDENCE,
            },
        )
        .into_iter()
        .find(|c| c.outcome == Outcome::Fail)?;
        Some(Abort {
            reason: format!(
                "the leak check `{}` failed for certain: {}",
                failed.description, failed.message
            ),
            trend: Some(failed),
        })
    }
}

/// The last `secs` finished seconds each had iterations, and errors above `rate` of them.
pub fn sustained_errors(seconds: &[SecondSample], rate: f64, secs: usize) -> Option<String> {
    if seconds.len() < secs {
        return None;
    }
    let last = &seconds[seconds.len() - secs..];
    let breached = last
        .iter()
        .all(|s| s.iterations > 0 && s.errors as f64 > rate * s.iterations as f64);
    breached.then(|| {
        let (errors, iterations) = last
            .iter()
            .fold((0, 0), |(e, i), s| (e + s.errors, i + s.iterations));
        format!(
            "errors above {:.0}% of the iterations in each of the last {secs} seconds ({errors} of {iterations})",
            rate * 100.0
        )
    })
}

/// In the open model, the iterations the whole window will start are known: once the errors so far
/// exceed the scenario's error bound of all of them, the round cannot pass its error check.
pub fn error_bound_lost(
    spec: &ScenarioSpec,
    window: Window,
    seconds: &[SecondSample],
) -> Option<String> {
    let LoadModel::Open { rate } = spec.load else {
        return None;
    };
    let planned = rate * window.duration_ms as f64 / 1000.0;
    let bound = slo::error_bound(spec);
    let errors: u64 = seconds.iter().map(|s| s.errors).sum();
    (planned > 0.0 && errors as f64 > bound * planned).then(|| {
        format!(
            "{errors} errors after {}: more than the error bound of {:.2}% of all {planned:.0} iterations the round \
             will start, so it cannot pass",
            describe_secs(seconds.len() as f64),
            bound * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Tier;
    use perfgate_runtime::format::{Metric, Op, ResourceSample, Slo};

    fn sec(t: u32, iterations: u64, errors: u64) -> SecondSample {
        SecondSample {
            t,
            iterations,
            errors,
            ..Default::default()
        }
    }

    #[test]
    fn sustained_errors_need_every_second_of_the_window() {
        let mut s: Vec<SecondSample> = (0..10).map(|t| sec(t, 100, 60)).collect();
        let why = sustained_errors(&s, 0.5, 10).unwrap();
        assert!(why.contains("last 10 seconds (600 of 1000)"), "{why}");
        assert!(
            sustained_errors(&s, 0.5, 11).is_none(),
            "not yet 11 seconds"
        );
        s[3].errors = 40;
        assert!(
            sustained_errors(&s, 0.5, 10).is_none(),
            "one second recovered"
        );
        s.push(sec(10, 0, 0));
        assert!(
            sustained_errors(&s, 0.5, 1).is_none(),
            "a second without iterations proves nothing"
        );
    }

    #[test]
    fn the_error_bound_is_lost_once_errors_exceed_it_over_the_whole_plan() {
        let mut spec = crate::slo::tests::spec(vec![Slo {
            request: None,
            metric: Metric::Errors,
            op: Op::Lt,
            threshold: 0.01,
        }]);
        let plan = TierPlan::default();
        // 200/s for 10 s: 2000 iterations; 1% of them is 20 errors.
        let w = Window::of(&spec, &plan, None, None);
        let s: Vec<SecondSample> = (0..3).map(|t| sec(t, 200, 7)).collect();
        assert!(error_bound_lost(&spec, w, &s).is_some(), "21 > 20");
        assert!(error_bound_lost(&spec, w, &s[..2]).is_none(), "14 < 20");
        // Without a declared bound, the implicit 1% applies; a closed model has no plan to lose.
        spec.slos.clear();
        assert!(error_bound_lost(&spec, w, &s).is_some());
        spec.load = LoadModel::Closed {
            users: 2,
            think_ms: 0,
        };
        assert!(error_bound_lost(&spec, w, &s).is_none());
    }

    #[test]
    fn a_certain_leak_stops_the_round_at_a_look_and_abort_false_never_stops() {
        let spec = crate::slo::tests::spec(vec![]);
        let mut plan = TierPlan::default_for(Tier::Soak);
        let window = Window {
            duration_ms: 100_000,
            warmup_ms: 0,
            tier: Tier::Soak,
        };
        // 50 s of descriptors rising by 20 a second.
        let res = ResourceStats {
            started_unix_ms: 1_000_000,
            max_fds: 1000,
            timeseries: (1..=100)
                .map(|i| ResourceSample {
                    t: i as f64 * 0.5,
                    secs: 0.5,
                    fds: 10.0 * i as f64,
                    rss_bytes: 1 << 20,
                    threads: 4.0,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut watch = Watch::new(&spec, window, &plan, 1, 1_000_000);
        // Before the first tenth: no look.
        assert!(watch.check(&[], Some(&res), 1_005_000).is_none());
        let stop = watch.check(&[], Some(&res), 1_050_000).unwrap();
        assert!(stop.reason.contains("fds_growth"), "{}", stop.reason);
        assert_eq!(stop.trend.unwrap().outcome, Outcome::Fail);
        plan.config.abort = Some(false);
        let mut watch = Watch::new(&spec, window, &plan, 1, 1_000_000);
        assert!(watch.check(&[], Some(&res), 1_050_000).is_none());
    }
}
