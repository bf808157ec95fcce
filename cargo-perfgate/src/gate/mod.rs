//! The regression gate: current rounds against baseline rounds, per scenario and metric, with three
//! outcomes and false alarms controlled across every check of a run. Pure: no I/O.
//!
//! This file holds the types the rest of the crate (baseline, reports) uses; `stats.rs` the method
//! (why a t-interval on log round values and not a bootstrap: see its module comment), `dist.rs` the
//! distributions it needs, `sequential.rs` the A/B mode's looks, `file.rs` a run against a baseline
//! file, `spec.rs` what makes two measurements comparable.

use std::collections::BTreeMap;

pub mod contention;
pub mod cost;
mod dist;
pub mod file;
pub mod rng;
pub mod sequential;
#[cfg(test)]
mod sim;
pub mod spec;
mod stats;
#[cfg(test)]
mod tests;
pub mod trend;

pub use file::GateSummary;

pub use stats::{decide, decide_paired, required_requests, LATENCY_CHECKS, MIN_ERROR_MARGIN};

use perfgate_runtime::format::{InvalidStats, Metric, ScenarioResult, Stats};
use serde::{Deserialize, Serialize};

/// One round of one scenario: what the gate compares (from a results file or a baseline round).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RoundStats {
    pub iterations: Stats,
    pub requests: BTreeMap<String, Stats>,
    /// How busy the machine was during the round (None where it was not measured: older files,
    /// other platforms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention: Option<contention::Contention>,
    /// How late the load generator started the latest 1% of an open model's requests, in ms (None
    /// for a closed model, or where it was not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p99_ms: Option<f64>,
}

impl RoundStats {
    /// Every series' numbers, checked (a corrupt file must not decide a run): the error names the
    /// series and the field, `iterations.latency.p50_ms`.
    pub fn validate(&self) -> Result<(), InvalidStats> {
        std::iter::once(("iterations", &self.iterations))
            .chain(self.requests.iter().map(|(k, v)| (k.as_str(), v)))
            .try_for_each(|(name, st)| {
                st.validate().map_err(|e| InvalidStats {
                    field: format!("{name}.{}", e.field),
                    why: e.why,
                })
            })
    }
}

impl From<&ScenarioResult> for RoundStats {
    fn from(r: &ScenarioResult) -> Self {
        RoundStats {
            iterations: r.iterations.clone(),
            requests: r.requests.clone(),
            contention: None,
            lag_p99_ms: (r.schedule.intended > 0 && r.schedule.lag.count > 0)
                .then_some(r.schedule.lag.p99_ms),
        }
    }
}

/// The outcome of one regression check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The interval lies within the tolerance: no regression beyond it.
    Pass,
    /// The whole interval lies beyond the tolerance: a regression.
    Fail,
    /// The data cannot tell (too few rounds, too much noise, too few requests per round).
    Inconclusive,
    /// Not compared: the spec changed, the metric is missing on one side, …  (`note` says why).
    NotComparable,
}

/// One regression check of one scenario (per iteration, or per named request when `request` is set).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    /// `package::scenario`.
    pub scenario: String,
    pub request: Option<String>,
    pub metric: Metric,
    pub outcome: Outcome,
    /// The metric over the rounds, in the metric's unit (ms, fraction, per second): the geometric mean
    /// of the rounds' values for latency and throughput (so `current / baseline − 1 == change`), the
    /// pooled rate (errors over attempts of all rounds) for `errors`.
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Relative change current/baseline − 1 (0.12 = 12% slower for latency). For `errors` the
    /// difference of the rates as a fraction (0.002 = 0.2 percentage points).
    ///
    /// Each end of the interval is at the level of the decision it supports: the end on the "worse"
    /// side (`change_low` for latency and errors, `change_high` for throughput) at the check's Holm
    /// level (run-wide family-wise `alpha`), so the check Fails exactly when that end lies beyond the
    /// tolerance; the other end at the one-sided `1 − alpha` level, so the check Passes exactly when
    /// that end lies within it (a run passes only when every check passes: an intersection–union
    /// test, which needs no multiplicity adjustment).
    pub change: Option<f64>,
    pub change_low: Option<f64>,
    pub change_high: Option<f64>,
    /// The tolerated change (0.10 for `regression = "10%"`): a slowdown for latency, a drop for
    /// throughput; for `errors` the tolerated rise of the rate as a fraction (see [`MIN_ERROR_MARGIN`]).
    pub tolerance: f64,
    pub rounds_baseline: usize,
    pub rounds_current: usize,
    /// Why the outcome is what it is, in a sentence (e.g. what budget would likely decide it).
    pub note: String,
    /// The smallest change this check tells apart from none on this machine within the run's budget
    /// (~95% power at its level), as a fraction: from `cargo perfgate calibrate`'s floor, else
    /// estimated from the rounds' own noise. A tolerance below it cannot be certified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves: Option<f64>,
}

impl Decision {
    /// A check not compared (yet): no values, no interval; `note` says why.
    pub fn not_comparable(
        scenario: &str,
        request: Option<String>,
        metric: Metric,
        tolerance: f64,
        note: String,
    ) -> Decision {
        Decision {
            scenario: scenario.to_string(),
            request,
            metric,
            outcome: Outcome::NotComparable,
            baseline: None,
            current: None,
            change: None,
            change_low: None,
            change_high: None,
            tolerance,
            rounds_baseline: 0,
            rounds_current: 0,
            note,
            resolves: None,
        }
    }

    /// `pay.p99`, or `p99` for the whole iteration.
    pub fn check_name(&self) -> String {
        match &self.request {
            Some(r) => format!("{r}.{}", self.metric),
            None => self.metric.to_string(),
        }
    }

    /// The check in a sentence: "p99 of `pay`", "p99 of the iterations".
    pub fn check_phrase(&self) -> String {
        match &self.request {
            Some(r) => format!("{} of `{r}`", self.metric),
            None => format!("{} of the iterations", self.metric),
        }
    }
}

/// Settings of the regression gate.
#[derive(Clone, Debug, PartialEq)]
pub struct GateOptions {
    /// Family-wise false-alarm rate of a whole run (every check of every scenario): 0.05 means an
    /// unchanged PR fails at most 1 run in 20.
    pub alpha: f64,
    /// Requests per round a p99 needs (the top 1% must hold a couple of samples); other percentiles
    /// scale with their tail, see [`required_requests`].
    pub min_requests_per_round: u64,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            alpha: 0.05,
            min_requests_per_round: 200,
        }
    }
}

/// One scenario to compare.
#[derive(Clone, Copy, Debug)]
pub struct ScenarioPair<'a> {
    /// `package::scenario`, copied into each [`Decision`].
    pub scenario: &'a str,
    /// Tolerated change: 0.10 for `regression = "10%"`.
    pub tolerance: f64,
    /// Whether throughput is a meaningful metric: in the closed model only (in an open model the
    /// schedule fixes it).
    pub compare_throughput: bool,
    pub baseline: &'a [RoundStats],
    pub current: &'a [RoundStats],
}

/// Options of the gate given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct GateFlags {
    /// Inconclusive checks and a missing or incomparable baseline exit 3 instead of warning.
    pub strict: bool,
    /// Compare with a baseline recorded on another machine as if it were this one.
    pub allow_other_machine: bool,
    /// Compare rounds run under different contention as if the machine had been alike.
    pub ignore_contention: bool,
}
