//! The statistics of the regression gate.
//!
//! # Method
//! A latency check (p50, p95, p99 of a series) takes the metric from each round's own summary, works
//! on logarithms (a slowdown multiplies latencies, and log values of percentiles are close to normal),
//! and estimates the change as the difference of the mean log values of the two sides, i.e. the ratio
//! of the rounds' geometric means. Its uncertainty comes from the rounds themselves: the pooled
//! variance of the log values around their side's mean (both sides run on the same machine with the
//! same load, so they share one round-to-round noise), with `n_b + n_c − 2` degrees of freedom, and a
//! Student-t interval. One-sided p-values test H0 "the change is at most the tolerance" (latency:
//! `ratio ≤ 1 + t`; throughput: `ratio ≥ 1 − t`).
//!
//! Why not a bootstrap of the rounds' medians: with 3 current and 5 baseline rounds a bootstrap has 15
//! distinct ratios and treats the spread of 3 values as the truth. Whenever the rounds happen not to
//! overlap it reports a p-value near 1/(B+1), yet even a permutation test cannot go below 1/C(8,3) =
//! 1/56 there, far above the Holm level α/m ≈ 0.003 of a 15-check run: a bootstrap would fail PRs on
//! luck. The t-interval pays honestly for estimating the noise from 8 rounds (its quantile at 0.003
//! with 6 df is about 4.1, not the normal 2.7) and is exact when log round values are normal; the
//! calibration tests in `sim.rs` check it by simulation, including at the boundary (a change of
//! exactly the tolerance), where a bootstrap's false alarms show: simulated, 15% of runs whose every
//! series is exactly 10% slower fail a 10% tolerance with the bootstrap, 1.5% with this method
//! (`sim::bootstrap_comparison`). Pooling the rounds' histograms and resampling requests would
//! ignore round-to-round drift, the dominant noise on shared CI runners.
//!
//! Rounds disturbed by a neighbour are set aside first (see "Disturbed rounds" below).
//!
//! Assumption worth knowing: one shared noise level. A change that makes rounds much noisier (not
//! only slower) on the side with fewer rounds makes the pooled interval somewhat too narrow (about
//! 17% for a doubled spread on 3 rounds against 5); Welch's interval would avoid that but, with 2–4
//! degrees of freedom, could hardly ever decide anything.
//!
//! For the same reason a percentile is not computed from pooled histograms when rounds are too short:
//! the check is Inconclusive and says how many requests per round it needs ([`required_requests`]).
//!
//! The error rate uses the pooled counts of each side and a one-sided Fisher exact test of
//! H0 "current rate ≤ baseline rate + margin", the margin being applied by shifting the baseline's
//! error count by `margin × attempts` (exact at margin 0; at small rates the shift changes the
//! baseline's variance negligibly). Margin: `max(tolerance × baseline rate, MIN_ERROR_MARGIN)`.
//! Error bursts concentrated in one round are counted as independent errors (a known limitation).
//!
//! Multiplicity: every check of every scenario of a run that yields a p-value is one family; Holm's
//! step-down procedure decides which ones Fail (family-wise false alarms ≤ `alpha`). A check Passes
//! when its one-sided `1 − alpha` bound lies within the tolerance (a run passes only when all its
//! checks pass: an intersection–union test, valid at `alpha` without adjustment); otherwise it is
//! Inconclusive and its note gives the rounds (or requests) that would likely decide it.
//!
//! # Disturbed rounds
//! On a shared CI runner one round now and then is slowed as a whole (another job took the CPU for a
//! few seconds): ×1.5–3 on its latencies. One such pair among 10 widens a paired t-interval several
//! times over (its sd absorbs the outlier), so an unchanged scenario is no longer certified and a real
//! regression no longer caught; in the file mode one disturbed round of 8 does the same.
//!
//! The remedy is to set such rounds aside by a rule fixed in advance, and to pay for the rule out of
//! the check's own level, so that the guarantee stays exact under the t-interval's own assumption
//! (normal log round values) whatever the rule does:
//! - The outlier sequence (generalised ESD): at each step the kept round (pair) furthest from the
//!   others of its side, measured by its studentised deleted residual (Student's t with `m − 1 − sides`
//!   degrees of freedom for a round fixed in advance), with a Bonferroni p-value `π_k` over the rounds
//!   it was the largest of; it is set aside and the next step looks at the rest, so one outlier
//!   cannot hide another. At most `L = ⌈0.3 n⌉` steps, leaving at least 3 pairs (4 rounds in all).
//!   A pair's difference is looked at both ways (either side's round may be the disturbed one); in
//!   the file mode a round only on its worse side (slower, or lower throughput), one-sided: a
//!   neighbour never speeds a round up, and a service whose latency has two modes (a p95 at the knee
//!   between them) has rounds in either; setting the faster ones aside would take the slower mode for
//!   the whole and fail an unchanged run.
//! - A test at level `a` uses the fit (mean, sd, t) on the rounds kept after the largest `k` with
//!   `π_k ≤ 0.1 a / L`, or all rounds when there is none, and holds that fit's t-test to `0.9 a`.
//!   Under the null with normal rounds: P(reject) ≤ P(t on all rounds rejects at 0.9 a) + P(some
//!   π_k ≤ 0.1 a / L) ≤ 0.9 a + 0.1 a. Its p-value is the smallest level at which it rejects, so
//!   Holm, the look spending of `sequential.rs` and the intersection–union Pass are unchanged, and
//!   each end of the interval is the bound that matches it.
//!
//! Why not the rank methods: with n pairs the signed-rank test cannot reach a level below `2^-n`,
//! and the levels here are small (a look's share of alpha, then Holm over 17 checks: 9e-5 to 9e-4 for
//! a Fail with looks from 6 to 60 pairs, 1.5e-3 to 1.5e-2 for a Pass): it cannot Fail at the looks
//! of 6, 8 and 12 pairs (2^-12 = 2.4e-4 is above that look's 1.8e-4) nor Pass at those of 6 and 8
//! (2^-8 = 3.9e-3 against 2.0e-3); at 6 pairs its smallest p is 1.6%.
//! The 3-vs-5 file mode is worse: the Mann–Whitney test's smallest p is 1/56. Where it can reach the
//! level, a disturbance on one side still shifts the pseudo-median that the Hodges–Lehmann interval
//! is centred on. The 20%-trimmed mean with Yuen's interval reaches any level, but at these levels its
//! t approximation is not honest (false alarms 1.2–2.0× the level on clean pairs) and it pays 40% of
//! its degrees of freedom where quantiles are steep. Simulated per check, pairs of sd 5.8% (5% round
//! noise), 5% tolerance, at the levels of `plan(6, 60, 0.05)` (`sim::robust_check_table`; size: 1e6
//! clean normal samples up to 12 pairs, 2e5 beyond):
//!
//! | per check                                     | plain t   | this method | Yuen 20%  | signed-rank |
//! | --------------------------------------------- | --------- | ----------- | --------- | ----------- |
//! | false alarms / level, clean, Fail levels      | 0.92–1.09 | 0.80–1.00   | 1.20–2.01 | 0 below 16 pairs, 0.83–0.97 |
//! | false alarms / level, clean, Pass levels      | 0.98–1.03 | 0.88–0.93   | 1.07–1.64 | 0 below 12 pairs, 0.79–0.99 |
//! | unchanged Passes at 12 / 22 / 31 pairs, clean | 39/87/98% | 37/86/98%   | 29/77/94% | 33/84/97%   |
//! | +10% Fails at 22 / 31 / 43 pairs, clean       | 42/77/95% | 41/76/95%   | 29/60/89% | 39/74/95%   |
//! | unchanged Passes, 10% of pairs disturbed      | 11/12/15% | 28/77/94%   | 19/61/85% | 19/54/77%   |
//! | +10% Fails, 10% of pairs disturbed            | 4/4/3%    | 31/64/88%   | 18/45/75% | 17/40/65%   |
//! | unchanged Passes, 10% on the head's round     | 10/8/4%   | 27/78/93%   | 13/41/63% | 9/23/38%    |
//! | +10% Fails, 10% on the base's round           | 4/4/1%    | 33/63/86%   | 11/25/43% | 6/12/21%    |
//! | unchanged Passes, 20% of pairs disturbed      | 3/3/5%    | 21/63/85%   | 12/42/67% | 12/32/52%   |
//!
//! On clean pairs the method costs what 10% of the level costs (at most 2 points of power); with
//! disturbed pairs it decides nearly as often as the plain t on clean pairs. What it cannot do: set
//! aside a pair off the others by less than about 6–7 times the pairs' noise at 60 pairs, more at few
//! pairs (a ×1.5 round is 7 times the 5.8% here), which then widens the interval as before; decide
//! with 2 of 6 pairs disturbed; or keep a one-sided disturbance of more than 30% of the rounds from
//! reading as a change.
//!
//! Sequential A/B mode (`sim::robust_sequential_table`, `sequential.rs` plan from 8 to 60 pairs, 5%
//! round noise, 17 checks, tolerance 5%, alpha 0.05, 400 runs per row; a disturbed pair has one round,
//! either at random or always the head's, ×1.5–3):
//!
//! | disturbed pairs       | head side                  | method | any Fail | p99 Fails | all Pass | mean pairs |
//! | --------------------- | -------------------------- | ------ | -------- | --------- | -------- | ---------- |
//! | none                  | unchanged                  | t      |   0.0%   |   0.0%    |  99.8%   | 24.8       |
//! | none                  | unchanged                  | robust |   0.0%   |   0.0%    |  99.8%   | 24.8       |
//! | none                  | +5% everywhere (tolerance) | t      |   3.2%   |   0.8%    |   0%     | 59.4       |
//! | none                  | +5% everywhere (tolerance) | robust |   3.0%   |   0.8%    |   0%     | 59.4       |
//! | none                  | +10% iteration p99         | t      |  99.0%   |  99.0%    |          | 28.7       |
//! | none                  | +10% iteration p99         | robust |  99.2%   |  99.2%    |          | 29.1       |
//! | 10%, either round     | unchanged                  | t      |   0.0%   |   0.0%    |  32.5%   | 51.6       |
//! | 10%, either round     | unchanged                  | robust |   0.0%   |   0.0%    | 100.0%   | 27.2       |
//! | 10%, either round     | +5% everywhere (tolerance) | t      |   0.0%   |   0.0%    |   0%     | 60.0       |
//! | 10%, either round     | +5% everywhere (tolerance) | robust |   1.5%   |   0.0%    |   0%     | 59.6       |
//! | 10%, either round     | +10% iteration p99         | t      |  18.0%   |  18.0%    |          | 54.1       |
//! | 10%, either round     | +10% iteration p99         | robust |  99.5%   |  99.5%    |          | 32.6       |
//! | 20%, either round     | unchanged                  | t      |   0.0%   |   0.0%    |  14.2%   | 57.1       |
//! | 20%, either round     | unchanged                  | robust |   0.0%   |   0.0%    |  97.0%   | 31.4       |
//! | 20%, either round     | +5% everywhere (tolerance) | t      |   0.5%   |   0.5%    |   1.0%   | 59.9       |
//! | 20%, either round     | +5% everywhere (tolerance) | robust |   0.8%   |   0.0%    |   0%     | 59.8       |
//! | 20%, either round     | +10% iteration p99         | t      |   4.2%   |   4.2%    |          | 58.6       |
//! | 20%, either round     | +10% iteration p99         | robust |  92.5%   |  92.5%    |          | 37.0       |
//! | 10%, the head's round | unchanged                  | t      |   0.0%   |   0.0%    |   9.5%   | 56.3       |
//! | 10%, the head's round | unchanged                  | robust |   0.0%   |   0.0%    |  99.5%   | 27.9       |
//! | 10%, the head's round | +5% everywhere (tolerance) | t      |  11.5%   |   7.5%    |   0%     | 59.7       |
//! | 10%, the head's round | +5% everywhere (tolerance) | robust |   3.2%   |   0.8%    |   0%     | 59.4       |
//! | 10%, the head's round | +10% iteration p99         | t      |  97.0%   |  97.0%    |          | 48.0       |
//! | 10%, the head's round | +10% iteration p99         | robust |  99.8%   |  99.8%    |          | 31.7       |
//!
//! The last block is the false alarm the plain t has and this method removes: disturbances always on
//! the head's side are, to a mean, a slowdown (10% of rounds ×2.2 on average is +8% in log terms), so
//! at 60 pairs the t fails 11.5% of the runs that sit at the tolerance, beyond alpha.
//!
//! File mode (`sim::robust_file_table`, 3 current vs 5 baseline rounds of raw latencies, tolerance
//! 10%, 200 runs per row): unchanged, every latency and throughput check Passes in 74.0% (t) and 72.5%
//! (robust) of clean runs, 0% and 48.0% with one disturbed current round, 0% and 64.5% with one
//! disturbed baseline round, never a Fail; at +25% some check Fails in 100% of clean runs either
//! way, and with one disturbed baseline round in 0% (t) against 99.0% (robust, the iteration p99 in
//! 67.5%); at exactly the tolerance with one disturbed current round 0% and 1.5% of runs fail. With 8
//! rounds the rule sets a round aside for a Pass when it is off the others of its side by more than
//! about 11–12 times the round noise, for a Fail (level 0.003 at most) by about 20: a ×2 round is 19
//! times a p99's 3.7%, a p50's 2.2% noise makes it 31.
//!
//! # Simulated calibration
//! 3 current vs 5 baseline rounds, 17 checks per run, tolerance 10%, 200 runs per row (details and
//! the full table in `sim.rs`): runs with any Fail 0% unchanged, 0% at +5%, 1.5% at exactly +10%;
//! the iteration's p99 Fails in 10% of runs at +15%, 38% at +20%, 87.5% at +25%, 98% at +30% (some
//! check Fails in 50%, 96%, 100%, 100%). Detecting a 15% slowdown against a 10% tolerance in 95%
//! of runs takes 20–25 rounds a side for a p99 of 2000-request rounds with ~4% round-to-round noise
//! (89.5% at 20 vs 20): no honest method does it with 3 vs 5 rounds.

use perfgate_runtime::format::{Metric, Stats};

use super::dist::{fisher_one_sided, t_cdf, t_quantile_upper, t_sf};
use super::{Decision, GateOptions, Outcome, RoundStats, ScenarioPair};

/// The latency metrics compared per series.
pub const LATENCY_CHECKS: [Metric; 3] = [Metric::P50, Metric::P95, Metric::P99];

/// The smallest rise of the error rate the gate treats as a regression: 0.1 percentage point, so a
/// baseline without errors does not turn one stray timeout into a failure.
pub const MIN_ERROR_MARGIN: f64 = 0.001;

/// Per-round spread of log values never taken below this: HDR histograms with 3 significant digits
/// quantise values to about 0.1%, so identical rounds do not mean a noise of zero.
const RESOLUTION: f64 = 1e-3;

/// The miss rate the resolution of a check is defined with (95% power).
const RESOLVE_MISS: f64 = 0.05;

/// Latency values below one microsecond (the histograms' unit) are clamped to it before taking logs.
const MIN_MS: f64 = 1e-3;

/// Requests per round a percentile check needs: the tail above the percentile must hold
/// `min_requests_per_round × 1%` samples (2 with the default 200, which makes a p99 need 200,
/// a p95 40), and never fewer than 20 (a p50 of a handful of requests is mostly noise).
pub fn required_requests(metric: Metric, opts: &GateOptions) -> u64 {
    let tail = opts.min_requests_per_round as f64 * 0.01;
    let needed = match quantile(metric) {
        Some(p) => (tail / (1.0 - p)).ceil() as u64,
        None => 0,
    };
    needed.max(opts.min_requests_per_round.min(20))
}

fn quantile(metric: Metric) -> Option<f64> {
    match metric {
        Metric::P50 => Some(0.50),
        Metric::P90 => Some(0.90),
        Metric::P95 => Some(0.95),
        Metric::P99 => Some(0.99),
        Metric::P999 => Some(0.999),
        _ => None,
    }
}

/// Every check of every scenario of a run, decided together (Holm across all of them). Baseline and
/// current rounds are independent samples.
pub fn decide(pairs: &[ScenarioPair], opts: &GateOptions) -> Vec<Decision> {
    decisions(run(pairs, opts, Design::Independent, &declared))
}

/// The same checks for a same-machine A/B run whose `baseline[i]` and `current[i]` were measured next
/// to each other (ABBA order): each check works on the per-pair log ratios (a paired t-interval with
/// `n − 1` degrees of freedom), which cancels the drift the two rounds of a pair share. A scenario
/// whose sides have different numbers of rounds is NotComparable.
pub fn decide_paired(pairs: &[ScenarioPair], opts: &GateOptions) -> Vec<Decision> {
    decisions(run(pairs, opts, Design::Paired, &declared))
}

/// The paired decisions with what the sequential A/B mode (`sequential.rs`) needs besides them, each
/// check held to the tolerance `tolerance` gives it (e.g. raised to the machine's noise floor).
pub(crate) fn decide_paired_checked(
    pairs: &[ScenarioPair],
    opts: &GateOptions,
    tolerance: Tolerance,
) -> Vec<Checked> {
    run(pairs, opts, Design::Paired, tolerance)
}

/// A decision and the numbers behind it that its note only spells out in words.
pub(crate) struct Checked {
    pub decision: Decision,
    /// For an Inconclusive check that more rounds could settle: the rounds per side (A/B pairs in the
    /// paired design) that would likely decide it.
    pub rounds_needed: Option<u64>,
    /// For a tested latency or throughput check: the per-round spread (sd of the log values, or of
    /// the pairs' log ratios).
    pub sd: Option<f64>,
}

/// The tolerance a check (scenario, request or None for the iteration, metric) is held to.
pub(crate) type Tolerance<'f> = &'f dyn Fn(&ScenarioPair, Option<&str>, Metric) -> f64;

fn declared(pair: &ScenarioPair, _request: Option<&str>, _metric: Metric) -> f64 {
    pair.tolerance
}

fn decisions(checked: Vec<Checked>) -> Vec<Decision> {
    checked.into_iter().map(|c| c.decision).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Design {
    Independent,
    Paired,
}

/// Which series of a round a check reads.
#[derive(Clone, Copy)]
enum Series<'a> {
    Iterations,
    Request(&'a str),
}

impl Series<'_> {
    fn of<'r>(&self, round: &'r RoundStats) -> Option<&'r Stats> {
        match self {
            Series::Iterations => Some(&round.iterations),
            Series::Request(name) => round.requests.get(*name),
        }
    }

    fn request(&self) -> Option<String> {
        match self {
            Series::Iterations => None,
            Series::Request(name) => Some((*name).to_string()),
        }
    }
}

/// What a check found before the family is decided.
enum Evidence {
    /// Decided without a test (missing data, too few requests, no errors at all).
    Done(Outcome, String),
    Ratio(RatioTest),
    Errors(ErrorTest),
}

/// A t-test on log values, oriented so that larger `w` is worse, on all rounds and on the rounds
/// kept after setting aside the most disturbed ones (see the module comment).
struct RatioTest {
    /// `fits[0]` on every round; `fits[k]` with the first k rounds (pairs) of the outlier sequence
    /// set aside, usable at levels of at least its `gate`.
    fits: Vec<Fit>,
    /// The tolerance's boundary on the same scale: ln(1 + t), or −ln(1 − t) for throughput.
    boundary: f64,
    higher_is_worse: bool,
    design: Design,
    /// The share of each level spent on setting rounds aside (0: the plain t-test).
    share: f64,
    /// The fit the estimate, the spread and the rounds-needed note come from: the one with the most
    /// rounds set aside at the run's `alpha`.
    chosen: usize,
}

/// The t-interval on one set of rounds.
#[derive(Clone, Debug)]
struct Fit {
    /// Estimated log ratio current/baseline, times +1 when higher is worse, −1 otherwise.
    w: f64,
    se: f64,
    df: f64,
    /// Per-round spread (sd of log values, or of the pairs' log ratios), for the rounds-needed note.
    sd: f64,
    /// Mean log values of the kept rounds of each side (their geometric means).
    mean_b: f64,
    mean_c: f64,
    /// Rounds set aside on each side (pairs in the paired design: both counts are the pairs).
    aside_b: usize,
    aside_c: usize,
    /// The largest factor by which a round set aside was off the others (1 when none is).
    worst: f64,
    /// The smallest level at which the fit may be used: 0 for all rounds; with k rounds set aside,
    /// the Bonferroni p-value of the k-th outlier test divided by the share of the level it may spend
    /// on it (`share / L` for each of the L planned steps).
    gate: f64,
}

impl RatioTest {
    /// The level each fit's own t-test is held to.
    fn t_level(&self, level: f64) -> f64 {
        level * (1.0 - self.share)
    }

    /// The fit a test at each level uses, as (from level, up to level, fit): the one with the most
    /// rounds set aside among those whose gate the level reaches (all rounds below the lowest gate).
    fn regimes(&self) -> Vec<(f64, f64, usize)> {
        let mut starts: Vec<f64> = self.fits.iter().map(|f| f.gate).collect();
        starts.sort_by(f64::total_cmp);
        starts.dedup();
        starts
            .iter()
            .enumerate()
            .map(|(j, &from)| {
                let to = starts.get(j + 1).copied().unwrap_or(f64::INFINITY);
                let k = (0..self.fits.len())
                    .rev()
                    .find(|&k| self.fits[k].gate <= from)
                    .unwrap_or(0);
                (from, to, k)
            })
            .collect()
    }

    /// p-value of H0 "the change is within the tolerance": the smallest level at which the fit that
    /// level uses rejects it with its t-test at `(1 − share) × level`.
    fn p_fail(&self) -> f64 {
        self.p_min(|f| t_sf((f.w - self.boundary) / f.se, f.df))
    }

    /// p-value of H0 "the change is beyond the tolerance".
    fn p_pass(&self) -> f64 {
        self.p_min(|f| t_cdf((f.w - self.boundary) / f.se, f.df))
    }

    fn p_min(&self, p: impl Fn(&Fit) -> f64) -> f64 {
        self.regimes()
            .into_iter()
            .map(|(from, to, k)| {
                let at = from.max(p(&self.fits[k]) / (1.0 - self.share));
                if at < to {
                    at
                } else {
                    1.0
                }
            })
            .fold(1.0, f64::min)
    }

    /// The end of the interval on the worse side, as a relative change: the highest lower bound that
    /// any level up to `level` gives (so that it lies beyond the tolerance exactly when
    /// `p_fail() ≤ level`).
    fn worse_end(&self, level: f64) -> f64 {
        let w = self
            .regimes()
            .into_iter()
            .filter(|r| r.0 <= level)
            .map(|(_, to, k)| {
                let f = &self.fits[k];
                f.w - t_quantile_upper(self.t_level(to.min(level)), f.df) * f.se
            })
            .fold(f64::NEG_INFINITY, f64::max);
        self.to_change(w)
    }

    /// The end on the better side: the lowest upper bound.
    fn better_end(&self, level: f64) -> f64 {
        let w = self
            .regimes()
            .into_iter()
            .filter(|r| r.0 <= level)
            .map(|(_, to, k)| {
                let f = &self.fits[k];
                f.w + t_quantile_upper(self.t_level(to.min(level)), f.df) * f.se
            })
            .fold(f64::INFINITY, f64::min);
        self.to_change(w)
    }

    fn fit(&self) -> &Fit {
        &self.fits[self.chosen]
    }

    fn to_change(&self, w: f64) -> f64 {
        let d = if self.higher_is_worse { w } else { -w };
        d.exp_m1()
    }

    fn se_for(&self, n: f64) -> f64 {
        let sd = self.fit().sd;
        match self.design {
            Design::Independent => sd * (2.0 / n).sqrt(),
            Design::Paired => sd / n.sqrt(),
        }
    }

    fn df_for(&self, n: f64) -> f64 {
        match self.design {
            Design::Independent => 2.0 * n - 2.0,
            Design::Paired => n - 1.0,
        }
    }

    /// The smallest change these rounds tell apart from none with ~95% power at `level`:
    /// `(t_{level} + t_{0.05}) × se` on the log scale, as a slowdown (a drop for throughput).
    fn resolves(&self, level: f64) -> f64 {
        let f = self.fit();
        let k = t_quantile_upper(self.t_level(level), f.df) + t_quantile_upper(RESOLVE_MISS, f.df);
        self.to_change(k * f.se).abs()
    }

    /// Rounds per side (pairs in the paired design) at which the interval, at `level`, would likely
    /// clear the tolerance if the estimate stays where it is (the width scales as 1/√n).
    fn rounds_needed(&self, level: f64) -> Option<u64> {
        let gap = (self.fit().w - self.boundary).abs();
        let level = self.t_level(level);
        let decides = |n: u64| {
            let n = n as f64;
            t_quantile_upper(level, self.df_for(n)) * self.se_for(n) < gap
        };
        const MAX: u64 = 1000;
        if gap <= 0.0 || !decides(MAX) {
            return None;
        }
        // The width falls monotonically with n: bisect.
        let (mut lo, mut hi) = (2_u64, MAX);
        if decides(lo) {
            return Some(lo);
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if decides(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// "; set aside as disturbed: 1 of 12 A/B pairs (up to ×2.1 off the others)", or nothing.
    fn aside_note(&self, rounds_b: usize, rounds_c: usize) -> String {
        let f = self.fit();
        if f.aside_b + f.aside_c == 0 {
            return String::new();
        }
        let what = match self.design {
            Design::Paired => format!("{} of {rounds_c} A/B pairs", f.aside_c),
            Design::Independent => {
                let side = |k: usize, n: usize, name: &str| {
                    (k > 0).then(|| format!("{k} of {n} {name} rounds"))
                };
                [
                    side(f.aside_b, rounds_b, "baseline"),
                    side(f.aside_c, rounds_c, "current"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and ")
            }
        };
        format!(
            "; set aside as disturbed: {what} (up to ×{:.2} off the others)",
            f.worst
        )
    }
}

/// Pooled error counts of the two sides.
struct ErrorTest {
    errors_c: u64,
    count_c: u64,
    errors_b: u64,
    count_b: u64,
}

impl ErrorTest {
    fn rate_b(&self) -> f64 {
        self.errors_b as f64 / self.count_b as f64
    }

    fn rate_c(&self) -> f64 {
        self.errors_c as f64 / self.count_c as f64
    }

    /// The table for H "rate_c − rate_b = delta": the baseline's errors shifted up by `delta` (or the
    /// current's up by −delta when negative), so both rows have the same rate under H.
    fn shifted(&self, delta: f64) -> (u64, u64) {
        if delta >= 0.0 {
            let c = (self.errors_b as f64 + delta * self.count_b as f64).round() as u64;
            (self.errors_c, c.min(self.count_b))
        } else {
            let a = (self.errors_c as f64 - delta * self.count_c as f64).round() as u64;
            (a.min(self.count_c), self.errors_b)
        }
    }

    /// p-value of H0 "rate_c − rate_b ≤ delta" (small: the current is worse by more than delta).
    fn p_above(&self, delta: f64) -> f64 {
        let (a, c) = self.shifted(delta);
        fisher_one_sided(a, self.count_c - a, c, self.count_b - c, true)
    }

    /// p-value of H0 "rate_c − rate_b ≥ delta".
    fn p_below(&self, delta: f64) -> f64 {
        let (a, c) = self.shifted(delta);
        fisher_one_sided(a, self.count_c - a, c, self.count_b - c, false)
    }

    /// Bounds of the difference by inverting the tests (bisection; `p_above` grows with delta,
    /// `p_below` falls), over the differences the baseline's rate allows.
    fn worse_end(&self, level: f64) -> f64 {
        let (mut lo, mut hi) = (-self.rate_b(), 1.0 - self.rate_b());
        if self.p_above(lo) > level {
            return lo;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.p_above(mid) <= level {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn better_end(&self, level: f64) -> f64 {
        let (mut lo, mut hi) = (-self.rate_b(), 1.0 - self.rate_b());
        if self.p_below(hi) > level {
            return hi;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.p_below(mid) <= level {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// How many times the requests would likely decide it (normal approximation, width ∝ 1/√n).
    fn scale_needed(&self, level: f64, margin: f64) -> Option<f64> {
        let (pb, pc) = (self.rate_b(), self.rate_c());
        let gap = (pc - pb - margin).abs();
        let se = (pb * (1.0 - pb) / self.count_b as f64 + pc * (1.0 - pc) / self.count_c as f64)
            .max(1e-18)
            .sqrt();
        let z = t_quantile_upper(level, 1e6);
        (gap > 0.0).then(|| ((z * se / gap).powi(2)).max(1.0))
    }
}

/// A check waiting for the family's decision.
struct Pending {
    decision: Decision,
    evidence: Evidence,
    /// The errors check's margin (its tolerance as a fraction).
    margin: f64,
}

fn run(
    pairs: &[ScenarioPair],
    opts: &GateOptions,
    design: Design,
    tolerance: Tolerance,
) -> Vec<Checked> {
    let mut pending = Vec::new();
    for pair in pairs {
        scenario_checks(pair, opts, design, tolerance, &mut pending);
    }

    let tested: Vec<(usize, f64)> = pending
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let pv = match &p.evidence {
                Evidence::Ratio(r) => r.p_fail(),
                Evidence::Errors(e) => e.p_above(p.margin),
                Evidence::Done(..) => return None,
            };
            Some((i, pv))
        })
        .collect();
    let p: Vec<f64> = tested.iter().map(|t| t.1).collect();
    let (rejected, holm_level) = holm(&p, opts.alpha);
    let mut level = vec![opts.alpha; pending.len()];
    let mut fails = vec![false; pending.len()];
    for (k, &(i, _)) in tested.iter().enumerate() {
        level[i] = holm_level[k];
        fails[i] = rejected[k];
    }
    let alpha = opts.alpha;

    pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| finish(p, fails[i], level[i], alpha))
        .collect()
}

/// Holm's step-down procedure: which hypotheses it rejects at family-wise level `alpha`, and the level
/// each one is compared with. Sorted ascending, the k-th smallest p-value (k from 0) is rejected when
/// it and every smaller one satisfy p ≤ alpha / (m − k). A hypothesis not rejected gets the level of
/// the step where the procedure stopped, so that "its interval at that level excludes H0" and
/// "Holm rejects it" coincide. Ties keep their input order.
pub(crate) fn holm(p: &[f64], alpha: f64) -> (Vec<bool>, Vec<f64>) {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut rejected_count = 0;
    while rejected_count < m && p[order[rejected_count]] <= alpha / (m - rejected_count) as f64 {
        rejected_count += 1;
    }
    let mut rejected = vec![false; m];
    let mut level = vec![alpha; m];
    for (rank, &i) in order.iter().enumerate() {
        rejected[i] = rank < rejected_count;
        level[i] = alpha / (m - rank.min(rejected_count)) as f64;
    }
    (rejected, level)
}

fn finish(p: Pending, fail: bool, level: f64, alpha: f64) -> Checked {
    let Pending {
        mut decision,
        evidence,
        margin,
    } = p;
    let (mut rounds_needed, mut sd) = (None, None);
    let conf = confidence(level);
    match evidence {
        Evidence::Done(outcome, note) => {
            decision.outcome = outcome;
            decision.note = note;
        }
        Evidence::Ratio(r) => {
            sd = Some(r.fit().sd);
            decision.resolves = Some(r.resolves(level));
            let (worse, better) = (r.worse_end(level), r.better_end(alpha));
            let (low, high) = if r.higher_is_worse {
                (worse, better)
            } else {
                (better, worse)
            };
            decision.change_low = Some(low);
            decision.change_high = Some(high);
            let tol = pct(decision.tolerance);
            let change = decision.change.unwrap_or(0.0);
            let (dir, beyond) = if r.higher_is_worse {
                ("slower", format!("+{tol}"))
            } else {
                ("lower", format!("−{tol}"))
            };
            if fail {
                decision.outcome = Outcome::Fail;
                let bound = if r.higher_is_worse { low } else { high };
                decision.note = format!(
                    "{:.1}% {dir}; at least {:.1}% {dir} with {conf} run-wide confidence, beyond the \
                     {beyond} tolerance",
                    change.abs() * 100.0,
                    bound.abs() * 100.0,
                );
            } else if r.p_pass() <= alpha {
                decision.outcome = Outcome::Pass;
                decision.note = format!(
                    "within the {beyond} tolerance: {} at worst ({} confidence)",
                    signed_pct(if r.higher_is_worse { high } else { low }),
                    confidence(alpha)
                );
            } else {
                decision.outcome = Outcome::Inconclusive;
                let leaning_fail = r.fit().w > r.boundary;
                let needed = r.rounds_needed(if leaning_fail { level } else { alpha });
                rounds_needed = needed;
                let unit = match r.design {
                    Design::Independent => "rounds on each side",
                    Design::Paired => "A/B pairs",
                };
                let budget = match needed {
                    Some(n) => format!(
                        "about {n} {unit} would likely decide it (round-to-round noise ±{:.1}%)",
                        r.fit().sd * 100.0
                    ),
                    None => "the change sits at the tolerance: more rounds would hardly settle it"
                        .to_string(),
                };
                decision.note = format!(
                    "the interval {}…{} straddles the {beyond} tolerance; {budget}",
                    signed_pct(low),
                    signed_pct(high)
                );
            }
            let aside = r.aside_note(decision.rounds_baseline, decision.rounds_current);
            decision.note.push_str(&aside);
        }
        Evidence::Errors(e) => {
            let (low, high) = (e.worse_end(level), e.better_end(alpha));
            decision.change_low = Some(low);
            decision.change_high = Some(high);
            let pp = |x: f64| format!("{:+.2} pp", x * 100.0);
            let tol = format!("{:.2} pp", margin * 100.0);
            if fail {
                decision.outcome = Outcome::Fail;
                decision.note = format!(
                    "error rate up {}; at least {} with {conf} run-wide confidence, beyond the +{tol} \
                     tolerated",
                    pp(e.rate_c() - e.rate_b()),
                    pp(low),
                );
            } else if e.p_below(margin) <= alpha {
                decision.outcome = Outcome::Pass;
                decision.note = format!(
                    "within the +{tol} tolerated: {} at worst ({} confidence)",
                    pp(high),
                    confidence(alpha)
                );
            } else {
                decision.outcome = Outcome::Inconclusive;
                let leaning_fail = e.rate_c() - e.rate_b() > margin;
                let scale = e.scale_needed(if leaning_fail { level } else { alpha }, margin);
                // More rounds of the same length bring proportionally more requests.
                let rounds = decision.rounds_baseline.max(decision.rounds_current) as f64;
                rounds_needed = scale.map(|k| (k * rounds).ceil() as u64);
                let budget = match scale {
                    Some(k) => format!(
                        "about {:.0}× as many requests would likely decide it",
                        k.ceil()
                    ),
                    None => "the change sits at the tolerance".to_string(),
                };
                decision.note = format!(
                    "the interval {}…{} straddles the +{tol} tolerated; {budget}",
                    pp(low),
                    pp(high)
                );
            }
        }
    }
    Checked {
        decision,
        rounds_needed,
        sd,
    }
}

fn confidence(level: f64) -> String {
    let c = (1.0 - level) * 100.0;
    if c >= 99.95 {
        format!("{c:.2}%")
    } else {
        format!("{c:.1}%")
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn signed_pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn scenario_checks(
    pair: &ScenarioPair,
    opts: &GateOptions,
    design: Design,
    tolerance: Tolerance,
    out: &mut Vec<Pending>,
) {
    let mut requests: Vec<&str> = pair
        .baseline
        .iter()
        .chain(pair.current)
        .flat_map(|r| r.requests.keys().map(String::as_str))
        .collect();
    requests.sort_unstable();
    requests.dedup();
    if duplicates_iterations(pair, &requests) {
        // One request per iteration: its checks would test the iteration's numbers again, and each
        // would take a share of the run's false-alarm budget for nothing.
        requests.clear();
    }

    let series =
        std::iter::once(Series::Iterations).chain(requests.into_iter().map(Series::Request));
    for s in series {
        let mut metrics: Vec<Metric> = LATENCY_CHECKS.to_vec();
        metrics.push(Metric::Errors);
        if pair.compare_throughput && matches!(s, Series::Iterations) {
            metrics.push(Metric::Throughput);
        }
        for metric in metrics {
            let tolerance = tolerance(pair, s.request().as_deref(), metric);
            out.push(check(pair, opts, design, s, metric, tolerance));
        }
    }
}

/// Whether the scenario's only named request is its iteration: one such request per iteration in
/// every round of both sides.
fn duplicates_iterations(pair: &ScenarioPair, requests: &[&str]) -> bool {
    let [name] = requests else {
        return false;
    };
    pair.baseline.iter().chain(pair.current).all(|r| {
        r.requests
            .get(*name)
            .is_some_and(|s| s.count == r.iterations.count)
    })
}

/// The rounds of each side holding the series; in the paired design, the pairs where both do.
fn rounds<'r>(
    pair: &ScenarioPair<'r>,
    design: Design,
    s: Series,
) -> Result<(Vec<&'r Stats>, Vec<&'r Stats>), String> {
    let what = match s {
        Series::Iterations => "this scenario".to_string(),
        Series::Request(name) => format!("request `{name}`"),
    };
    if pair.baseline.is_empty() {
        return Err("no baseline rounds for this scenario".into());
    }
    if pair.current.is_empty() {
        return Err("no current rounds for this scenario".into());
    }
    if design == Design::Paired && pair.baseline.len() != pair.current.len() {
        return Err(format!(
            "A/B rounds must come in pairs: {} baseline vs {} current",
            pair.baseline.len(),
            pair.current.len()
        ));
    }
    let (b, c): (Vec<&Stats>, Vec<&Stats>) = match design {
        Design::Independent => (
            pair.baseline.iter().filter_map(|r| s.of(r)).collect(),
            pair.current.iter().filter_map(|r| s.of(r)).collect(),
        ),
        Design::Paired => pair
            .baseline
            .iter()
            .zip(pair.current)
            .filter_map(|(b, c)| Some((s.of(b)?, s.of(c)?)))
            .unzip(),
    };
    let in_b = pair.baseline.iter().any(|r| s.of(r).is_some());
    let in_c = pair.current.iter().any(|r| s.of(r).is_some());
    match (in_b, in_c) {
        (false, _) => Err(format!("{what} is not in the baseline (new?)")),
        (_, false) => Err(format!("{what} is no longer in the current run")),
        _ if b.is_empty() => Err(format!(
            "{what} never ran in the same A/B pair on both sides"
        )),
        _ => Ok((b, c)),
    }
}

fn check(
    pair: &ScenarioPair,
    opts: &GateOptions,
    design: Design,
    s: Series,
    metric: Metric,
    tolerance: f64,
) -> Pending {
    let mut decision =
        Decision::not_comparable(pair.scenario, s.request(), metric, tolerance, String::new());
    let (b, c) = match rounds(pair, design, s) {
        Ok(bc) => bc,
        Err(why) => {
            return Pending {
                decision,
                evidence: Evidence::Done(Outcome::NotComparable, why),
                margin: 0.0,
            }
        }
    };
    decision.rounds_baseline = b.len();
    decision.rounds_current = c.len();
    let mut margin = 0.0;
    let evidence = match metric {
        Metric::Errors => {
            let sum = |side: &[&Stats]| -> (u64, u64) {
                // Errors beyond the attempts would be corrupt input; never let them underflow.
                side.iter().fold((0, 0), |(e, n), st| {
                    (e + st.errors.total().min(st.count), n + st.count)
                })
            };
            let ((errors_b, count_b), (errors_c, count_c)) = (sum(&b), sum(&c));
            if count_b == 0 || count_c == 0 {
                let side = if count_b == 0 {
                    "baseline"
                } else {
                    "current run"
                };
                Evidence::Done(
                    Outcome::NotComparable,
                    format!("no attempts recorded in the {side}"),
                )
            } else {
                let e = ErrorTest {
                    errors_c,
                    count_c,
                    errors_b,
                    count_b,
                };
                margin = (tolerance * e.rate_b()).max(MIN_ERROR_MARGIN);
                decision.tolerance = margin;
                decision.baseline = Some(e.rate_b());
                decision.current = Some(e.rate_c());
                decision.change = Some(e.rate_c() - e.rate_b());
                if errors_b == 0 && errors_c == 0 {
                    decision.change_low = Some(0.0);
                    decision.change_high = Some(0.0);
                    Evidence::Done(Outcome::Pass, "no errors on either side".into())
                } else {
                    Evidence::Errors(e)
                }
            }
        }
        _ => ratio_check(tolerance, opts, design, metric, &b, &c, &mut decision),
    };
    Pending {
        decision,
        evidence,
        margin,
    }
}

fn ratio_check(
    tolerance: f64,
    opts: &GateOptions,
    design: Design,
    metric: Metric,
    b: &[&Stats],
    c: &[&Stats],
    decision: &mut Decision,
) -> Evidence {
    let higher_is_worse = metric != Metric::Throughput;
    if metric.is_latency() {
        let needed = required_requests(metric, opts);
        let fewest = b
            .iter()
            .chain(c)
            .map(|s| s.latency.count)
            .min()
            .unwrap_or(0);
        if fewest < needed {
            return Evidence::Done(
                Outcome::Inconclusive,
                format!(
                    "{metric} needs at least {needed} requests per round and the shortest round has \
                     {fewest}: raise the rate or the duration (rounds are not pooled, which would hide \
                     round-to-round drift)"
                ),
            );
        }
    } else if b
        .iter()
        .chain(c)
        .any(|s| !s.throughput.is_finite() || s.throughput <= 0.0)
    {
        return Evidence::Done(
            Outcome::Inconclusive,
            "a round has no throughput (no completed iterations)".into(),
        );
    }
    let log = |s: &&Stats| metric.value(s).max(MIN_MS).ln();
    let yb: Vec<f64> = b.iter().map(log).collect();
    let yc: Vec<f64> = c.iter().map(log).collect();
    let full_df = match design {
        Design::Independent => (yb.len() + yc.len()) as f64 - 2.0,
        Design::Paired => yb.len() as f64 - 1.0,
    };
    if full_df < 1.0 {
        let d = mean(&yc) - mean(&yb);
        decision.baseline = Some(mean(&yb).exp());
        decision.current = Some(mean(&yc).exp());
        decision.change = Some(d.exp_m1());
        let need = match design {
            Design::Independent => "at least 3 rounds in all",
            Design::Paired => "at least 2 A/B pairs",
        };
        return Evidence::Done(
            Outcome::Inconclusive,
            format!(
                "round-to-round noise cannot be measured from one round per side: needs {need}"
            ),
        );
    }
    let t = tolerance;
    let boundary = if higher_is_worse {
        t.ln_1p()
    } else if t < 1.0 {
        -(-t).ln_1p()
    } else {
        f64::INFINITY
    };
    let share = outlier_share();
    let fits = fits(design, &yb, &yc, higher_is_worse, share);
    // The estimate: the most rounds set aside at the run's alpha, the loosest level any of this
    // check's decisions is taken at.
    let chosen = (0..fits.len())
        .rev()
        .find(|&k| fits[k].gate <= opts.alpha)
        .unwrap_or(0);
    let f = &fits[chosen];
    decision.baseline = Some(f.mean_b.exp());
    decision.current = Some(f.mean_c.exp());
    decision.change = Some((f.mean_c - f.mean_b).exp_m1());
    Evidence::Ratio(RatioTest {
        fits,
        boundary,
        higher_is_worse,
        design,
        share,
        chosen,
    })
}

/// The p-values (Fail, Pass) of a latency check on A/B pairs whose log ratios head/base are `diffs`,
/// against a tolerance of `boundary` on the log scale: the per-check test alone, for simulations.
#[cfg(test)]
pub(crate) fn paired_p_values(diffs: &[f64], boundary: f64) -> (f64, f64) {
    let zeros = vec![0.0; diffs.len()];
    let share = outlier_share();
    let r = RatioTest {
        fits: fits(Design::Paired, &zeros, diffs, true, share),
        boundary,
        higher_is_worse: true,
        design: Design::Paired,
        share,
        chosen: 0,
    };
    (r.p_fail(), r.p_pass())
}

/// The share of a check's level spent on setting disturbed rounds aside (see the module comment).
pub(crate) const OUTLIER_SHARE: f64 = 0.1;

/// At most this fraction of the rounds (pairs) is set aside, and never so many that fewer than 3
/// pairs, or 4 rounds in all, remain.
const MAX_ASIDE: f64 = 0.3;

#[cfg(test)]
thread_local! {
    static PLAIN_T: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the plain t-intervals (no round set aside, no share spent on it) on this thread:
/// the method before, for the simulated comparison.
#[cfg(test)]
pub(crate) fn with_plain_t<R>(f: impl FnOnce() -> R) -> R {
    PLAIN_T.with(|p| p.set(true));
    let out = f();
    PLAIN_T.with(|p| p.set(false));
    out
}

fn outlier_share() -> f64 {
    #[cfg(test)]
    if PLAIN_T.with(|p| p.get()) {
        return 0.0;
    }
    OUTLIER_SHARE
}

/// The planned length of the outlier sequence for `n` pairs (paired) or `n` rounds in all
/// (independent): fixed by the counts alone, before any value is seen, since it splits the share.
fn planned_steps(design: Design, n: usize) -> usize {
    let keep = match design {
        Design::Paired => 3,
        Design::Independent => 4,
    };
    ((MAX_ASIDE * n as f64).ceil() as usize).min(n.saturating_sub(keep))
}

/// The fit on every round, then one per step of the outlier sequence with the rounds set aside so far.
fn fits(design: Design, yb: &[f64], yc: &[f64], higher_is_worse: bool, share: f64) -> Vec<Fit> {
    // Paired: either side's round may be the disturbed one. Independent: only a round worse than its
    // side's others (see "Disturbed rounds" above).
    let (points, groups, worse): (Vec<(usize, f64)>, usize, Option<f64>) = match design {
        Design::Paired => (
            yc.iter().zip(yb).map(|(c, b)| (0, c - b)).collect(),
            1,
            None,
        ),
        Design::Independent => (
            yb.iter()
                .map(|&y| (0, y))
                .chain(yc.iter().map(|&y| (1, y)))
                .collect(),
            2,
            Some(if higher_is_worse { 1.0 } else { -1.0 }),
        ),
    };
    let steps = if share > 0.0 {
        planned_steps(design, points.len())
    } else {
        0
    };
    let mut kept = vec![true; points.len()];
    let mut out = vec![fit(design, yb, yc, &kept, higher_is_worse)];
    let mut worst: f64 = 0.0;
    for step in outlier_sequence(&points, groups, worse, steps) {
        kept[step.index] = false;
        worst = worst.max(step.residual);
        let mut f = fit(design, yb, yc, &kept, higher_is_worse);
        f.worst = worst.exp();
        f.gate = step.p * steps as f64 / share;
        out.push(f);
    }
    out
}

/// The t-interval on the kept rounds: `kept` indexes the pairs (paired), or the baseline rounds then
/// the current ones (independent).
fn fit(design: Design, yb: &[f64], yc: &[f64], kept: &[bool], higher_is_worse: bool) -> Fit {
    let pick = |v: &[f64], keep: &[bool]| -> Vec<f64> {
        v.iter()
            .zip(keep)
            .filter(|(_, &k)| k)
            .map(|(&y, _)| y)
            .collect()
    };
    let (kb, kc) = match design {
        Design::Paired => (pick(yb, kept), pick(yc, kept)),
        Design::Independent => (pick(yb, &kept[..yb.len()]), pick(yc, &kept[yb.len()..])),
    };
    let (mb, mc) = (mean(&kb), mean(&kc));
    let (d, sd, se, df) = match design {
        Design::Independent => {
            let df = (kb.len() + kc.len()) as f64 - 2.0;
            let sd = (sum_sq(&kb, mb) + sum_sq(&kc, mc)) / df;
            let sd = sd.sqrt().max(RESOLUTION);
            let se = sd * (1.0 / kb.len() as f64 + 1.0 / kc.len() as f64).sqrt();
            (mc - mb, sd, se, df)
        }
        Design::Paired => {
            let diffs: Vec<f64> = kc.iter().zip(&kb).map(|(c, b)| c - b).collect();
            let d = mean(&diffs);
            let df = diffs.len() as f64 - 1.0;
            let sd = (sum_sq(&diffs, d) / df).sqrt().max(RESOLUTION);
            (d, sd, sd / (diffs.len() as f64).sqrt(), df)
        }
    };
    Fit {
        w: if higher_is_worse { d } else { -d },
        se,
        df,
        sd,
        mean_b: mb,
        mean_c: mc,
        aside_b: yb.len() - kb.len(),
        aside_c: yc.len() - kc.len(),
        worst: 1.0,
        gate: 0.0,
    }
}

/// One step of the outlier sequence.
struct Step {
    /// The point set aside (index into the points).
    index: usize,
    /// Its Bonferroni p-value: the chance, were every kept round a plain normal draw, that some
    /// kept round would lie this far off the others.
    p: f64,
    /// How far it lay off the mean of the others of its group, in log terms.
    residual: f64,
}

/// The generalised extreme studentised deviate sequence: at each of `steps` steps, the kept point
/// furthest from the others of its group, in units of the spread of all other kept points (its
/// studentised deleted residual, exactly Student's t with `m − 1 − groups` degrees of freedom for a
/// point fixed in advance, m points kept), Bonferroni-corrected over the points it was the largest
/// of; then it is set aside and the next step looks at the rest. Setting the most extreme point
/// aside first and testing each step on the rest is what keeps one outlier from hiding another.
/// `points`: (group, value), groups numbered from 0. `worse`: `Some(sign)` looks only at points off
/// the others in that direction (a one-sided test), `None` at both.
fn outlier_sequence(
    points: &[(usize, f64)],
    groups: usize,
    worse: Option<f64>,
    steps: usize,
) -> Vec<Step> {
    // Centred per group, so that sums of squares do not cancel.
    let centre: Vec<f64> = (0..groups)
        .map(|g| {
            let v: Vec<f64> = points.iter().filter(|p| p.0 == g).map(|p| p.1).collect();
            if v.is_empty() {
                0.0
            } else {
                mean(&v)
            }
        })
        .collect();
    let points: Vec<(usize, f64)> = points.iter().map(|&(g, y)| (g, y - centre[g])).collect();
    let tails = if worse.is_some() { 1.0 } else { 2.0 };
    let mut kept = vec![true; points.len()];
    let mut out = Vec::new();
    for _ in 0..steps {
        let (mut count, mut sum, mut sq) =
            (vec![0usize; groups], vec![0.0; groups], vec![0.0; groups]);
        for (&(g, y), _) in points.iter().zip(&kept).filter(|(_, &k)| k) {
            count[g] += 1;
            sum[g] += y;
            sq[g] += y * y;
        }
        let ss = |n: usize, s: f64, q: f64| {
            if n == 0 {
                0.0
            } else {
                (q - s * s / n as f64).max(0.0)
            }
        };
        let ss_all: f64 = (0..groups).map(|g| ss(count[g], sum[g], sq[g])).sum();
        let m: usize = count.iter().sum();
        // Without the point: m − 1 values around `groups` means.
        let df = m as f64 - 1.0 - groups as f64;
        if df < 1.0 {
            break;
        }
        let mut eligible = 0;
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, &(g, y)) in points.iter().enumerate() {
            // A group's last round has no others to be compared with.
            if !kept[i] || count[g] < 2 {
                continue;
            }
            eligible += 1;
            let n = (count[g] - 1) as f64;
            let s = sum[g] - y;
            let rest = ss_all - ss(count[g], sum[g], sq[g]) + ss(count[g] - 1, s, sq[g] - y * y);
            // Never below the histograms' resolution: identical rounds are no licence to set one aside.
            let sd = (rest.max(0.0) / df).sqrt().max(RESOLUTION);
            let signed = y - s / n;
            if worse.is_some_and(|sign| signed * sign <= 0.0) {
                continue;
            }
            let residual = signed.abs();
            let t = residual / (sd * (1.0 + 1.0 / n).sqrt());
            if best.map_or(true, |b| t > b.1) {
                best = Some((i, t, residual));
            }
        }
        let Some((index, t, residual)) = best else {
            break;
        };
        kept[index] = false;
        out.push(Step {
            index,
            p: (tails * eligible as f64 * t_sf(t, df)).min(1.0),
            residual,
        });
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn sum_sq(v: &[f64], m: f64) -> f64 {
    v.iter().map(|x| (x - m).powi(2)).sum()
}
