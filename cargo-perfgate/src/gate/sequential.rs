//! Sequential paired decisions for the same-machine A/B mode (`cargo perfgate --ab`).
//!
//! # Why a plan
//! The A/B orchestrator runs a scenario in ABBA pairs of rounds and may stop as soon as every check is
//! decided. Looking at the data after every pair and stopping at the first Fail would turn a 5% test
//! into a much larger one (each look is another chance for noise to cross the line). So the looks are
//! declared before any data exists ([`plan`]): pair counts growing geometrically from `min_pairs` to
//! `max_pairs` (×1.3 apart, or more to stay within [`MAX_LOOKS`]), and the scenario's false-alarm budget is
//! split across them by weighted Bonferroni: look `j` decides at level `alpha_scenario × n_j / Σ n`
//! (Holm across the scenario's checks at that level, exactly as [`decide_paired`](super::decide_paired)
//! does for a whole run). A union bound needs no assumption about how the looks depend on each other,
//! so false alarms over all looks and checks stay ≤ `alpha_scenario`, whatever the data; the run's
//! `alpha` is split across its scenarios by the orchestrator (`alpha / k` each, as each scenario is
//! decided on its own).
//!
//! Why weights proportional to the pairs and not `alpha / L` each: an early look has few pairs and
//! only decides large effects, which clear even a strict level; the borderline cases (a 10% slowdown
//! against a 5% tolerance) are decided at the last looks, where the weights put most of the budget
//! (28% of it at the last of 8 looks from 8 to 60 pairs, instead of 12.5%). Simulated (`sim.rs`,
//! `sequential_spending_table`, 17 checks, tolerance 5%, round noise 3–8%): runs whose every check
//! changed by exactly the tolerance fail in 2.1–3.9% (`alpha / L`: 2.4–4.1%; no correction for the
//! looks: 11–21%); a 10% p99 slowdown is caught in 100% of runs at 5% round noise either way, in 86%
//! at 8% (`alpha / L`: 81%); an unchanged scenario is certified 1.5–2 pairs later (17–39 pairs),
//! none later when 0.2% errors make the error checks the last to Pass. Exact group-sequential
//! boundaries would spend less, but they rest on a known correlation between looks that Holm across
//! checks, t-intervals with estimated noise and a budget cut short do not keep; the union bound holds
//! regardless.
//!
//! Passing uses the same per-look level: a check Passes at a look when its one-sided bound at that
//! look's level lies within the tolerance, so a real regression beyond the tolerance is passed at some
//! look with probability ≤ `alpha_scenario` too.
//!
//! If the time budget runs out between two looks, [`Plan::ending_at`] makes the pairs at hand the last
//! look and gives it the budget of the looks that will never happen: still honest, because the time
//! budget does not depend on what the data say.
//!
//! # Noise floor
//! `cargo perfgate calibrate` runs the same build on both sides; [`noise_floor`] turns those A/A pairs
//! into, per check, the smallest change the budget's pairs could tell apart from none with ~95%
//! power at the last look's level: `(t_{0.9 alpha_look} + t_{0.05}) × sd / √pairs` in log terms (a
//! check's t-test gets 90% of its level, the rest pays for setting disturbed pairs aside; `sd` is
//! that of the pairs kept, so a disturbed calibration pair does not raise the floor). A
//! declared tolerance below it cannot be certified within the budget (an unchanged scenario would not
//! Pass), so [`decide_look`] holds such a check to the floor instead and says so in its note.
//!
//! # Use
//! ```text
//! let plan = plan(min_pairs, max_pairs, alpha / scenarios);
//! for each pair p = 1, 2, … (base/head rounds in ABBA order):
//!     if let Some(j) = plan.look_at(p):
//!         let look = decide_look(&pair, &opts, &plan, j, floors);
//!         if let Some(stop) = should_stop(&look.decisions, p, &plan, false) { report; break }
//!     if the budget is spent:
//!         let last = plan.ending_at(p);
//!         let look = decide_look(&pair, &opts, &last, last.looks.len() - 1, floors);
//!         report look with should_stop(&look.decisions, p, &last, true); break
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use perfgate_runtime::format::Metric;
use serde::{Deserialize, Serialize};

use super::contention::screen_pairs;
use super::dist::t_quantile_upper;
use super::stats::{decide_paired_checked, OUTLIER_SHARE};
use super::{Decision, GateOptions, Outcome, ScenarioPair};

/// At most this many looks: each one costs a share of alpha, and beyond ~8 the extra chances to stop
/// early are worth less than what the last look loses.
pub const MAX_LOOKS: usize = 8;

/// Consecutive looks are about this factor apart in pairs, further when [`MAX_LOOKS`] must span a long
/// budget (closer looks would see nearly the same data, each for a share of alpha).
const LOOK_GROWTH: f64 = 1.3;

/// The power the noise floor is defined with (the `t_{0.05}` of its formula).
const FLOOR_POWER_MISS: f64 = 0.05;

/// A look schedule fixed before any data is seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Pair counts at which to look, strictly increasing; the last is the most pairs the budget allows.
    pub looks: Vec<usize>,
    /// The level each look decides at (Holm across the scenario's checks at that level, and the level
    /// of its one-sided Pass bounds). They sum to at most `alpha_scenario`.
    pub alphas: Vec<f64>,
    /// The scenario's share of the run's false-alarm budget.
    pub alpha_scenario: f64,
}

/// How the scenario's alpha is split across looks (the product uses [`Spending::ByPairs`]; `Equal`
/// exists for the simulated comparison behind the choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spending {
    /// `alpha / L` at every look.
    #[cfg(test)]
    Equal,
    /// In proportion to the look's pairs.
    ByPairs,
}

/// The look schedule of one scenario: see the module comment for the choices.
pub fn plan(min_pairs: usize, max_pairs: usize, alpha_scenario: f64) -> Plan {
    plan_with(min_pairs, max_pairs, alpha_scenario, Spending::ByPairs)
}

pub(crate) fn plan_with(
    min_pairs: usize,
    max_pairs: usize,
    alpha_scenario: f64,
    spending: Spending,
) -> Plan {
    // A paired interval needs 2 pairs to measure noise at all.
    let min = min_pairs.max(2);
    let max = max_pairs.max(min);
    let span = (max as f64 / min as f64).ln();
    let count = if max == min {
        1
    } else {
        (1 + (span / LOOK_GROWTH.ln()).ceil() as usize).min(MAX_LOOKS)
    };
    let mut looks: Vec<usize> = (0..count)
        .map(|j| {
            if j + 1 == count {
                max
            } else {
                (min as f64 * (span * j as f64 / (count - 1) as f64).exp()).round() as usize
            }
        })
        .collect();
    looks.dedup();
    let alphas = match spending {
        #[cfg(test)]
        Spending::Equal => vec![alpha_scenario / looks.len() as f64; looks.len()],
        Spending::ByPairs => {
            let total: usize = looks.iter().sum();
            looks
                .iter()
                .map(|&n| alpha_scenario * n as f64 / total as f64)
                .collect()
        }
    };
    Plan {
        looks,
        alphas,
        alpha_scenario,
    }
}

impl Plan {
    /// The most pairs the plan looks at.
    pub fn max_pairs(&self) -> usize {
        self.looks.last().copied().unwrap_or(0)
    }

    /// The level of the last look: the one a scenario that uses its whole budget is decided at, and
    /// the `alpha_look` to compute a [`NoiseFloor`] for.
    pub fn alpha_final(&self) -> f64 {
        self.alphas.last().copied().unwrap_or(0.0)
    }

    /// The look due after `pairs` pairs, if any.
    pub fn look_at(&self, pairs: usize) -> Option<usize> {
        self.looks.iter().position(|&n| n == pairs)
    }

    /// The plan cut short after `pairs` pairs (the time budget ran out before the planned last look):
    /// the looks already made, then a last one at `pairs` with every bit of alpha not yet spent.
    pub fn ending_at(&self, pairs: usize) -> Plan {
        if pairs >= self.max_pairs() {
            return self.clone();
        }
        let kept = self.looks.iter().take_while(|&&n| n < pairs).count();
        let spent: f64 = self.alphas[..kept].iter().sum();
        let mut looks = self.looks[..kept].to_vec();
        let mut alphas = self.alphas[..kept].to_vec();
        looks.push(pairs);
        alphas.push((self.alpha_scenario - spent).max(0.0));
        Plan {
            looks,
            alphas,
            alpha_scenario: self.alpha_scenario,
        }
    }
}

/// The decisions of one scenario at one look.
#[derive(Clone, Debug, PartialEq)]
pub struct Look {
    /// Index of the look in [`Plan::looks`].
    pub look: usize,
    /// Complete pairs decided on.
    pub pairs: usize,
    /// The level this look decided at.
    pub alpha: f64,
    pub decisions: Vec<Decision>,
    /// One per decision: for an Inconclusive check, the pairs that would likely decide it (at this
    /// look's level, if the estimate stays where it is); None when it is decided or more pairs would
    /// hardly settle it.
    pub pairs_needed: Vec<Option<u64>>,
}

/// The paired decision of one scenario at look `look` of `plan`, on its first `plan.looks[look]`
/// complete pairs (`pair.baseline[i]`, `pair.current[i]`). With `floors`, a latency or throughput check
/// is held to the larger of its declared tolerance and the floor this machine can resolve.
pub fn decide_look(
    pair: &ScenarioPair,
    opts: &GateOptions,
    plan: &Plan,
    look: usize,
    floors: Option<&NoiseFloor>,
) -> Look {
    let n = plan.looks[look]
        .min(pair.baseline.len())
        .min(pair.current.len());
    // Pairs whose rounds ran under unequal contention, or with a round the machine stalled in, are
    // set aside on signals that are not the latencies, so at no cost in alpha (`contention.rs`).
    let (kept_b, kept_c, aside) = screen_pairs(&pair.baseline[..n], &pair.current[..n]);
    let at_look = ScenarioPair {
        baseline: &kept_b,
        current: &kept_c,
        ..*pair
    };
    let alpha = plan.alphas[look];
    let opts = GateOptions {
        alpha,
        ..opts.clone()
    };
    let floor = |request: Option<&str>, metric: Metric| -> Option<f64> {
        if metric == Metric::Errors {
            // The error test works on counts: machine noise does not blur it the same way.
            return None;
        }
        floors?
            .floor
            .get(&NoiseFloor::key(request, metric))
            .copied()
    };
    let tolerance = |p: &ScenarioPair, request: Option<&str>, metric: Metric| -> f64 {
        floor(request, metric).map_or(p.tolerance, |f| f.max(p.tolerance))
    };
    let checked = decide_paired_checked(&[at_look], &opts, &tolerance);
    let mut decisions = Vec::with_capacity(checked.len());
    let mut pairs_needed = Vec::with_capacity(checked.len());
    for c in checked {
        let mut d = c.decision;
        if let Some(f) = floor(d.request.as_deref(), d.metric) {
            if f > pair.tolerance {
                d.note.push_str(&format!(
                    "; declared {}, this machine resolves {:.1}% within the budget (perfgate \
                     calibrate)",
                    percent(pair.tolerance),
                    f * 100.0
                ));
            }
        }
        if let Some(aside) = &aside {
            d.note.push_str(aside);
        }
        // What the whole budget resolves: the calibrated floor, else this look's noise projected to
        // the plan's last look.
        if d.resolves.is_some() {
            d.resolves = floor(d.request.as_deref(), d.metric).or_else(|| {
                c.sd.map(|sd| floor_of(d.metric, sd, plan.max_pairs(), plan.alpha_final()))
            });
        }
        pairs_needed.push(match d.outcome {
            // Pairs needed counts the pairs kept: add back the share set aside.
            Outcome::Inconclusive => c
                .rounds_needed
                .map(|k| (k as f64 * n as f64 / kept_c.len().max(1) as f64).ceil() as u64),
            _ => None,
        });
        decisions.push(d);
    }
    Look {
        look,
        pairs: n,
        alpha,
        decisions,
        pairs_needed,
    }
}

/// Why sampling of a scenario stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A check Failed: the gate has its answer, more pairs would not change it.
    Failed,
    /// Every check Passed or is not comparable (or needs something more pairs do not give, such as
    /// more requests per round).
    Decided,
    /// The time budget ran out before every check was decided.
    Budget,
    /// The plan's last look came without every check decided.
    MaxPairs,
}

/// Whether to stop sampling after a look at `pairs` pairs; None: sample on to the next look.
pub fn should_stop(
    decisions: &[Decision],
    pairs: usize,
    plan: &Plan,
    budget_spent: bool,
) -> Option<Stop> {
    if decisions.iter().any(|d| d.outcome == Outcome::Fail) {
        Some(Stop::Failed)
    } else if !decisions.iter().any(pairs_could_decide) {
        Some(Stop::Decided)
    } else if pairs >= plan.max_pairs() {
        Some(Stop::MaxPairs)
    } else if budget_spent {
        Some(Stop::Budget)
    } else {
        None
    }
}

/// An Inconclusive check with an estimate: more pairs narrow its interval. Without one it is
/// undecided for another reason (too few requests per round, no throughput) that pairs do not fix.
fn pairs_could_decide(d: &Decision) -> bool {
    d.outcome == Outcome::Inconclusive && d.change.is_some()
}

/// The report's sentence on why sampling stopped, e.g. "every check decided after 14 pairs".
pub fn describe_stop(stop: Stop, look: &Look, budget: Duration) -> String {
    let n = look.pairs;
    let pairs = if n == 1 { "pair" } else { "pairs" };
    match stop {
        Stop::Failed => {
            let failed = checks_with(look, Outcome::Fail);
            let verb = if failed.len() == 1 { "fails" } else { "fail" };
            format!(
                "{} {verb} after {n} {pairs}: a regression is decided, no more pairs needed",
                list(&failed)
            )
        }
        Stop::Decided => {
            let stuck = checks_with(look, Outcome::Inconclusive);
            if stuck.is_empty() {
                format!("every check decided after {n} {pairs}")
            } else {
                format!(
                    "every check decided after {n} {pairs}, except {} (more pairs would not \
                     help: see the note)",
                    list(&stuck)
                )
            }
        }
        Stop::Budget => format!(
            "the budget ({}) ran out after {n} {pairs}; {}",
            human_duration(budget),
            undecided(look)
        ),
        Stop::MaxPairs => format!(
            "the last planned look ({n} {pairs}) left checks undecided; {}",
            undecided(look)
        ),
    }
}

/// The checks of a look with this outcome, as phrases ("p99 of `checkout`").
fn checks_with(look: &Look, outcome: Outcome) -> Vec<String> {
    look.decisions
        .iter()
        .filter(|d| d.outcome == outcome)
        .map(Decision::check_phrase)
        .collect()
}

/// Why a scenario whose cost checks failed was sampled no further than its first look.
pub fn describe_cost_stop(look: &Look) -> String {
    let n = look.pairs;
    let pairs = if n == 1 { "pair" } else { "pairs" };
    let failed = checks_with(look, Outcome::Fail);
    let then = if !failed.is_empty() {
        format!("; {} failed there too", list(&failed))
    } else if !checks_with(look, Outcome::Inconclusive).is_empty() {
        format!("; {}", undecided(look))
    } else {
        String::new()
    };
    format!(
        "its cost checks failed before the load, so the wall clock was sampled to the first look \
         only ({n} {pairs}){then}"
    )
}

/// "p99 of `checkout` undecided, ~60 pairs would likely decide it", for the checks more pairs could
/// decide (the three needing the fewest pairs named, the rest counted).
fn undecided(look: &Look) -> String {
    let mut open: Vec<(&Decision, Option<u64>)> = look
        .decisions
        .iter()
        .zip(&look.pairs_needed)
        .filter(|(d, _)| pairs_could_decide(d))
        .map(|(d, n)| (d, *n))
        .collect();
    if open.is_empty() {
        return "no check more pairs could decide is open".to_string();
    }
    open.sort_by_key(|(_, n)| n.unwrap_or(u64::MAX));
    let one = |(d, n): &(&Decision, Option<u64>)| match n {
        Some(n) => format!(
            "{} undecided, ~{n} pairs would likely decide it",
            d.check_phrase()
        ),
        None => format!(
            "{} undecided, sitting at its tolerance (more pairs would hardly settle it)",
            d.check_phrase()
        ),
    };
    const NAMED: usize = 3;
    let mut text = open
        .iter()
        .take(NAMED)
        .map(one)
        .collect::<Vec<_>>()
        .join("; ");
    if open.len() > NAMED {
        text.push_str(&format!("; {} more undecided", open.len() - NAMED));
    }
    text
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// "5m", "2m30s", "45s", "1h", "1h5m".
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// What a machine can resolve, per check, measured from A/A pairs (same build on both sides). Stored
/// in the baseline file. Keys: the metric for the iteration ("p99", "throughput"), `request:metric`
/// for a named request ("checkout:p99").
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NoiseFloor {
    /// The pairs the budget allows and the level of the last look the floors were computed for.
    pub pairs_in_budget: u64,
    pub alpha_look: f64,
    /// Sd of the A/A pairs' log ratios (current / baseline).
    pub sd: BTreeMap<String, f64>,
    /// A/A pairs each sd was measured on.
    pub pairs: BTreeMap<String, u64>,
    /// The smallest change the budget's pairs tell apart from none with ~95% power, as a fraction
    /// (0.041 = 4.1%; a drop for throughput).
    pub floor: BTreeMap<String, f64>,
}

impl NoiseFloor {
    pub fn key(request: Option<&str>, metric: Metric) -> String {
        match request {
            Some(r) => format!("{r}:{metric}"),
            None => metric.to_string(),
        }
    }
}

/// The noise floor of each latency and throughput check from A/A pairs `aa` (the calibration run),
/// for a budget of `pairs_in_budget` pairs decided at `alpha_look` (a plan's [`Plan::alpha_final`]).
/// Checks the A/A run cannot measure (too few requests per round, fewer than 2 pairs) get no entry.
pub fn noise_floor(
    aa: &ScenarioPair,
    opts: &GateOptions,
    pairs_in_budget: usize,
    alpha_look: f64,
) -> NoiseFloor {
    let declared = |p: &ScenarioPair, _: Option<&str>, _: Metric| p.tolerance;
    let mut out = NoiseFloor {
        pairs_in_budget: pairs_in_budget as u64,
        alpha_look,
        ..NoiseFloor::default()
    };
    for c in decide_paired_checked(&[*aa], opts, &declared) {
        let (Some(sd), d) = (c.sd, &c.decision) else {
            continue;
        };
        let key = NoiseFloor::key(d.request.as_deref(), d.metric);
        out.floor.insert(
            key.clone(),
            floor_of(d.metric, sd, pairs_in_budget, alpha_look),
        );
        out.sd.insert(key.clone(), sd);
        out.pairs.insert(key, d.rounds_current as u64);
    }
    out
}

/// The fewest pairs whose floor ([`floor_of`]) at `alpha_look` is within `tolerance`, for a check
/// whose pairs' log ratios have spread `sd` (at most [`MAX_RESOLVE_PAIRS`]).
pub fn pairs_to_resolve(sd: f64, tolerance: f64, alpha_look: f64) -> usize {
    let within = |n: usize| floor_of(Metric::P50, sd, n, alpha_look) <= tolerance;
    if within(2) {
        return 2;
    }
    if !within(MAX_RESOLVE_PAIRS) {
        return MAX_RESOLVE_PAIRS;
    }
    let (mut lo, mut hi) = (2, MAX_RESOLVE_PAIRS);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if within(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The most pairs [`pairs_to_resolve`] answers.
pub const MAX_RESOLVE_PAIRS: usize = 1000;

/// `(t_{0.9 alpha_look} + t_{0.05}) × sd / √n` on the log scale (n − 1 degrees of freedom, as the last
/// look's paired interval has), as a relative slowdown, or a relative drop for throughput.
pub(crate) fn floor_of(metric: Metric, sd: f64, pairs: usize, alpha_look: f64) -> f64 {
    let n = pairs.max(2) as f64;
    let df = n - 1.0;
    // A level of 0 (no alpha left) would be an infinite quantile.
    let alpha_look = alpha_look.clamp(1e-12, 0.5);
    // The t-test of a check is held to the part of the level not spent on setting pairs aside.
    let k = t_quantile_upper(alpha_look * (1.0 - OUTLIER_SHARE), df)
        + t_quantile_upper(FLOOR_POWER_MISS, df);
    let x = k * sd / n.sqrt();
    if metric == Metric::Throughput {
        -(-x).exp_m1()
    } else {
        x.exp_m1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::RoundStats;

    #[test]
    fn pairs_to_resolve_is_the_fewest_whose_floor_is_within_the_tolerance() {
        let n = pairs_to_resolve(0.05, 0.05, 0.002);
        assert!(floor_of(Metric::P50, 0.05, n, 0.002) <= 0.05);
        assert!(floor_of(Metric::P50, 0.05, n - 1, 0.002) > 0.05);
        // Four times the noise, about sixteen times the pairs.
        let m = pairs_to_resolve(0.2, 0.05, 0.002);
        assert!(m > 10 * n, "{n} {m}");
        assert_eq!(pairs_to_resolve(1e-4, 0.05, 0.002), 2);
    }

    #[test]
    fn plan_looks_grow_from_min_to_max_and_spend_at_most_alpha() {
        for (min, max) in [
            (8, 60),
            (8, 100),
            (5, 40),
            (10, 12),
            (3, 3),
            (1, 50),
            (20, 10),
        ] {
            for spending in [Spending::ByPairs, Spending::Equal] {
                let p = plan_with(min, max, 0.05, spending);
                assert!(p.looks.windows(2).all(|w| w[0] < w[1]), "{p:?}");
                assert_eq!(p.looks[0], min.max(2), "{p:?}");
                assert_eq!(p.max_pairs(), max.max(min).max(2), "{p:?}");
                assert!(p.looks.len() <= MAX_LOOKS, "{p:?}");
                assert_eq!(p.alphas.len(), p.looks.len());
                let spent: f64 = p.alphas.iter().sum();
                assert!(spent <= 0.05 * (1.0 + 1e-12), "{p:?}");
                assert!(
                    (spent - 0.05).abs() < 1e-12,
                    "the whole budget is used: {p:?}"
                );
                // ×1.3 apart, or evenly further when the looks would be too many (rounding aside).
                let span = p.max_pairs() as f64 / p.looks[0] as f64;
                let growth = LOOK_GROWTH.max(span.powf(1.0 / (MAX_LOOKS - 1) as f64));
                assert!(
                    p.looks
                        .windows(2)
                        .all(|w| w[1] as f64 <= (w[0] as f64 + 0.5) * growth + 0.5),
                    "{p:?}"
                );
            }
        }
        let eq = plan_with(8, 60, 0.05, Spending::Equal);
        assert_eq!(eq.looks, [8, 11, 14, 19, 25, 34, 45, 60]);
        assert!(eq.alphas.iter().all(|&a| a * 8.0 <= 0.05 + 1e-15));
        let p = plan(8, 60, 0.05);
        assert_eq!(p.looks, eq.looks);
        // Later looks get more: the borderline cases are decided there.
        assert!(p.alphas.windows(2).all(|w| w[0] < w[1]), "{p:?}");
        assert!(p.alpha_final() > 0.05 / 8.0 * 2.0, "{p:?}");
        assert_eq!(p.look_at(14), Some(2));
        assert_eq!(p.look_at(15), None);
    }

    #[test]
    fn a_plan_cut_short_spends_the_rest_at_its_last_look() {
        let p = plan(8, 60, 0.05);
        let cut = p.ending_at(30);
        assert_eq!(cut.looks, [8, 11, 14, 19, 25, 30]);
        assert_eq!(cut.alphas[..5], p.alphas[..5]);
        let spent: f64 = cut.alphas.iter().sum();
        assert!((spent - 0.05).abs() < 1e-12);
        assert!(cut.alpha_final() > p.alphas[5]);
        // At a planned look: that look gets the rest (its own data, a larger level: still ≤ alpha).
        assert_eq!(p.ending_at(25).looks, [8, 11, 14, 19, 25]);
        assert_eq!(p.ending_at(60), p);
        assert_eq!(p.ending_at(80), p);
    }

    fn decision(request: Option<&str>, metric: Metric, outcome: Outcome) -> Decision {
        Decision {
            scenario: "pkg::checkout".into(),
            request: request.map(str::to_string),
            metric,
            outcome,
            baseline: Some(10.0),
            current: Some(10.5),
            change: Some(0.05),
            change_low: Some(0.01),
            change_high: Some(0.09),
            tolerance: 0.05,
            rounds_baseline: 14,
            rounds_current: 14,
            note: String::new(),
            resolves: None,
        }
    }

    #[test]
    fn stops_on_a_fail_or_when_everything_is_decided() {
        use Outcome::*;
        let p = plan(8, 60, 0.05);
        let d = |o: [Outcome; 3]| {
            vec![
                decision(None, Metric::P50, o[0]),
                decision(None, Metric::P99, o[1]),
                decision(Some("checkout"), Metric::P99, o[2]),
            ]
        };
        assert_eq!(
            should_stop(&d([Pass, Inconclusive, Pass]), 8, &p, false),
            None
        );
        assert_eq!(
            should_stop(&d([Pass, Fail, Inconclusive]), 8, &p, false),
            Some(Stop::Failed)
        );
        assert_eq!(
            should_stop(&d([Pass, Fail, Inconclusive]), 60, &p, true),
            Some(Stop::Failed)
        );
        assert_eq!(
            should_stop(&d([Pass, NotComparable, Pass]), 11, &p, false),
            Some(Stop::Decided)
        );
        assert_eq!(
            should_stop(&d([Pass, Inconclusive, Pass]), 60, &p, false),
            Some(Stop::MaxPairs)
        );
        assert_eq!(
            should_stop(&d([Pass, Inconclusive, Pass]), 30, &p, true),
            Some(Stop::Budget)
        );
        // Too few requests per round: Inconclusive without an estimate, which pairs do not fix.
        let mut short = d([Pass, Inconclusive, Pass]);
        short[1].change = None;
        assert_eq!(should_stop(&short, 8, &p, false), Some(Stop::Decided));
        assert_eq!(should_stop(&[], 8, &p, false), Some(Stop::Decided));
    }

    fn look(decisions: Vec<Decision>, needed: Vec<Option<u64>>, pairs: usize) -> Look {
        Look {
            look: 0,
            pairs,
            alpha: 0.01,
            decisions,
            pairs_needed: needed,
        }
    }

    #[test]
    fn stop_sentences_name_the_checks_and_the_pairs() {
        use Outcome::*;
        let five = Duration::from_secs(300);
        let all = look(
            vec![
                decision(None, Metric::P50, Pass),
                decision(None, Metric::P99, Pass),
            ],
            vec![None, None],
            14,
        );
        assert_eq!(
            describe_stop(Stop::Decided, &all, five),
            "every check decided after 14 pairs"
        );
        let open = look(
            vec![
                decision(None, Metric::P50, Pass),
                decision(Some("checkout"), Metric::P99, Inconclusive),
            ],
            vec![None, Some(60)],
            38,
        );
        assert_eq!(
            describe_stop(Stop::Budget, &open, five),
            "the budget (5m) ran out after 38 pairs; p99 of `checkout` undecided, ~60 pairs would \
             likely decide it"
        );
        assert_eq!(
            describe_stop(Stop::MaxPairs, &open, Duration::from_secs(150)),
            "the last planned look (38 pairs) left checks undecided; p99 of `checkout` undecided, \
             ~60 pairs would likely decide it"
        );
        let several = look(
            vec![
                decision(None, Metric::P95, Inconclusive),
                decision(None, Metric::P99, Inconclusive),
                decision(Some("a"), Metric::P99, Inconclusive),
                decision(Some("b"), Metric::P99, Inconclusive),
                decision(Some("c"), Metric::P99, Inconclusive),
            ],
            vec![None, Some(90), Some(70), Some(200), Some(80)],
            60,
        );
        assert_eq!(
            describe_stop(Stop::Budget, &several, Duration::from_secs(150)),
            "the budget (2m30s) ran out after 60 pairs; p99 of `a` undecided, ~70 pairs would \
             likely decide it; p99 of `c` undecided, ~80 pairs would likely decide it; p99 of the \
             iterations undecided, ~90 pairs would likely decide it; 2 more undecided"
        );
        let failed = look(
            vec![
                decision(None, Metric::P99, Fail),
                decision(Some("checkout"), Metric::P95, Fail),
                decision(Some("checkout"), Metric::P99, Inconclusive),
            ],
            vec![None, None, Some(40)],
            11,
        );
        assert_eq!(
            describe_stop(Stop::Failed, &failed, five),
            "p99 of the iterations and p95 of `checkout` fail after 11 pairs: a regression is \
             decided, no more pairs needed"
        );
        let mut short = decision(None, Metric::P99, Inconclusive);
        short.change = None;
        let stuck = look(
            vec![decision(None, Metric::P50, Pass), short],
            vec![None, None],
            8,
        );
        assert_eq!(
            describe_stop(Stop::Decided, &stuck, five),
            "every check decided after 8 pairs, except p99 of the iterations (more pairs would \
             not help: see the note)"
        );
        // A scenario its cost checks failed: the one look says what the wall clock showed.
        assert_eq!(
            describe_cost_stop(&failed),
            "its cost checks failed before the load, so the wall clock was sampled to the first \
             look only (11 pairs); p99 of the iterations and p95 of `checkout` failed there too"
        );
        assert_eq!(
            describe_cost_stop(&open),
            "its cost checks failed before the load, so the wall clock was sampled to the first \
             look only (38 pairs); p99 of `checkout` undecided, ~60 pairs would likely decide it"
        );
        assert_eq!(
            describe_cost_stop(&all),
            "its cost checks failed before the load, so the wall clock was sampled to the first \
             look only (14 pairs)"
        );
        assert_eq!(human_duration(Duration::from_secs(3900)), "1h5m");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }

    /// Rounds whose iteration p50/p99 are `scale` × (5, 14) ms.
    fn round(scale: f64) -> RoundStats {
        RoundStats {
            iterations: crate::gate::tests::series(scale, 2000, 0, 100.0 / scale),
            requests: Default::default(),
            contention: None,
            lag_p99_ms: None,
        }
    }

    /// Pairs whose head/base ratios are `ratios` (base drifting ±10% between pairs).
    fn pairs(ratios: &[f64]) -> (Vec<RoundStats>, Vec<RoundStats>) {
        let drift = |i: usize| 1.0 + 0.1 * ((i * 7 % 5) as f64 - 2.0) / 2.0;
        let b = (0..ratios.len()).map(|i| round(drift(i))).collect();
        let c = ratios
            .iter()
            .enumerate()
            .map(|(i, r)| round(drift(i) * r))
            .collect();
        (b, c)
    }

    fn scenario<'a>(b: &'a [RoundStats], c: &'a [RoundStats], tol: f64) -> ScenarioPair<'a> {
        ScenarioPair {
            scenario: "pkg::checkout",
            tolerance: tol,
            compare_throughput: false,
            baseline: b,
            current: c,
        }
    }

    fn find(look: &Look, metric: Metric) -> (&Decision, Option<u64>) {
        let i = look
            .decisions
            .iter()
            .position(|d| d.request.is_none() && d.metric == metric)
            .unwrap();
        (&look.decisions[i], look.pairs_needed[i])
    }

    /// ±2% noise on the ratios, deterministic.
    fn noisy(centre: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| centre * (1.0 + 0.02 * ((i * 5 % 7) as f64 - 3.0) / 3.0))
            .collect()
    }

    #[test]
    fn a_look_decides_its_own_pairs_at_its_own_level() {
        let p = plan(4, 30, 0.05);
        // 30 pairs of data, the look at index 1 uses only its own count.
        let (b, c) = pairs(&noisy(1.30, 30));
        let first = decide_look(
            &scenario(&b, &c, 0.05),
            &GateOptions::default(),
            &p,
            1,
            None,
        );
        assert_eq!(first.pairs, p.looks[1]);
        assert_eq!(first.alpha, p.alphas[1]);
        assert!(first
            .decisions
            .iter()
            .all(|d| d.rounds_current == p.looks[1]));
        assert_eq!(find(&first, Metric::P99).0.outcome, Outcome::Fail);
        // An incomplete last pair is left out rather than making everything NotComparable.
        let last = p.looks.len() - 1;
        let whole = decide_look(
            &scenario(&b, &c[..29], 0.05),
            &GateOptions::default(),
            &p,
            last,
            None,
        );
        assert_eq!(whole.pairs, 29);
        assert_eq!(find(&whole, Metric::P99).0.outcome, Outcome::Fail);
    }

    #[test]
    fn an_undecided_check_says_how_many_pairs_would_decide_it() {
        let p = plan(4, 30, 0.05);
        // +7% against a 5% tolerance: at 5 pairs the interval straddles it.
        let (b, c) = pairs(&noisy(1.07, 5));
        let look = decide_look(
            &scenario(&b, &c, 0.05),
            &GateOptions::default(),
            &p,
            1,
            None,
        );
        let (d, needed) = find(&look, Metric::P99);
        assert_eq!(d.outcome, Outcome::Inconclusive, "{d:#?}");
        let needed = needed.expect("a count for an inconclusive check");
        assert!(needed > 5, "{needed}");
        assert!(
            d.note.contains(&format!("about {needed} A/B pairs")),
            "{}",
            d.note
        );
        let stop = should_stop(&look.decisions, 5, &p, true);
        assert_eq!(stop, Some(Stop::Budget));
        let text = describe_stop(Stop::Budget, &look, Duration::from_secs(300));
        assert!(
            text.contains(&format!("~{needed} pairs would likely decide it")),
            "{text}"
        );
    }

    #[test]
    fn a_declared_tolerance_below_the_noise_floor_is_raised_and_says_so() {
        let p = plan(4, 30, 0.05);
        let (b, c) = pairs(&noisy(1.03, 30));
        let floors = NoiseFloor {
            pairs_in_budget: 30,
            alpha_look: p.alpha_final(),
            floor: [("p99".to_string(), 0.041)].into(),
            ..NoiseFloor::default()
        };
        let pair = scenario(&b, &c, 0.02);
        let last = p.looks.len() - 1;
        let plain = decide_look(&pair, &GateOptions::default(), &p, last, None);
        assert_eq!(find(&plain, Metric::P99).0.outcome, Outcome::Fail);
        let held = decide_look(&pair, &GateOptions::default(), &p, last, Some(&floors));
        let (d, _) = find(&held, Metric::P99);
        assert_eq!(d.tolerance, 0.041);
        assert_ne!(d.outcome, Outcome::Fail, "{d:#?}");
        assert!(
            d.note.ends_with(
                "; declared 2%, this machine resolves 4.1% within the budget (perfgate calibrate)"
            ),
            "{}",
            d.note
        );
        // Checks without a floor, or whose floor is below the declared tolerance, are untouched.
        let (p50, _) = find(&held, Metric::P50);
        assert_eq!(p50.tolerance, 0.02);
        assert!(!p50.note.contains("calibrate"));
        // The plain decisions are those of decide_paired at the look's level.
        let direct = crate::gate::decide_paired(
            &[pair],
            &GateOptions {
                alpha: p.alpha_final(),
                ..GateOptions::default()
            },
        );
        // Except for what they resolve: a look projects its noise to the plan's last look.
        let unresolved = |ds: &[Decision]| -> Vec<Decision> {
            ds.iter()
                .map(|d| Decision {
                    resolves: None,
                    ..d.clone()
                })
                .collect()
        };
        assert_eq!(unresolved(&plain.decisions), unresolved(&direct));
        let p99 = find(&plain, Metric::P99).0;
        let sd = decide_paired_checked(&[pair], &GateOptions::default(), &|p, _, _| p.tolerance)
            .into_iter()
            .find(|c| c.decision.metric == Metric::P99 && c.decision.request.is_none())
            .and_then(|c| c.sd)
            .unwrap();
        assert_eq!(
            p99.resolves,
            Some(floor_of(Metric::P99, sd, p.max_pairs(), p.alpha_final()))
        );
        assert_eq!(d.resolves, Some(0.041), "the calibrated floor");
    }

    #[test]
    fn the_noise_floor_follows_the_formula_and_survives_toml() {
        let (b, c) = pairs(&noisy(1.0, 20));
        let aa = scenario(&b, &c, 0.05);
        let p = plan(8, 60, 0.05);
        let floors = noise_floor(&aa, &GateOptions::default(), 60, p.alpha_final());
        assert_eq!(floors.pairs_in_budget, 60);
        let sd = floors.sd["p99"];
        assert_eq!(floors.pairs["p99"], 20);
        let k = t_quantile_upper(p.alpha_final() * (1.0 - OUTLIER_SHARE), 59.0)
            + t_quantile_upper(0.05, 59.0);
        let expect = (k * sd / 60f64.sqrt()).exp_m1();
        assert!((floors.floor["p99"] - expect).abs() < 1e-12);
        assert!(floors.floor["p99"] > 0.0 && floors.floor["p99"] < 0.05);
        // Errors are not a ratio check; throughput only in the closed model.
        assert!(!floors.floor.contains_key("errors"));
        assert!(!floors.floor.contains_key("throughput"));
        assert_eq!(
            NoiseFloor::key(Some("checkout"), Metric::P99),
            "checkout:p99"
        );
        let text = toml::to_string(&floors).unwrap();
        let back: NoiseFloor = toml::from_str(&text).unwrap();
        assert_eq!(back, floors, "{text}");
    }
}
