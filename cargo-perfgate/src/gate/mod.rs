//! The regression gate: current rounds against baseline rounds, per scenario and metric, with three
//! outcomes and false alarms controlled across every check of a run (see DESIGN-NOTES "The gate").
//!
//! This file holds the types the rest of the crate (baseline, reports) uses; `stats.rs` the methods.

use std::collections::BTreeMap;

use perfgate_runtime::format::{Metric, Stats};
use serde::{Deserialize, Serialize};

/// One round of one scenario: what the gate compares (from a results file or a baseline round).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RoundStats {
    pub iterations: Stats,
    pub requests: BTreeMap<String, Stats>,
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
    /// Median over rounds of the metric, in the metric's unit (ms, fraction, per second).
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Relative change current/baseline − 1 (0.12 = 12% slower for latency), with its interval at the
    /// run-wide (Holm-adjusted) confidence level. For `errors` the change is in percentage points.
    pub change: Option<f64>,
    pub change_low: Option<f64>,
    pub change_high: Option<f64>,
    /// The tolerated change (0.10 for `regression = "10%"`).
    pub tolerance: f64,
    pub rounds_baseline: usize,
    pub rounds_current: usize,
    /// Why the outcome is what it is, in a sentence (e.g. what budget would likely decide it).
    pub note: String,
}
