//! Synthetic rounds and the simulated calibration of the gate.
//!
//! A simulated scenario has four series (the iteration, ~5 ms, and three named requests of 2, 1 and
//! 0.5 ms), lognormal latencies (σ of ln = 0.35: p99 ≈ 2.3× p50), 2000 requests per series and round,
//! a per-round drift shared by all series (σ 2%) plus a per-series drift (σ 1%), 0.2% errors, and
//! closed-model throughput (64 users / mean latency): 17 checks per run (4 series × p50, p95, p99,
//! errors, plus throughput). 3 current rounds against 5 baseline rounds, tolerance 10%, alpha 0.05.
//!
//! Release build, 200 runs per row (`cargo test -p cargo-perfgate --release --lib gate::sim --
//! --include-ignored --nocapture` prints it):
//!
//! | injected slowdown (all series)  | any Fail | iteration p99 Fails | latency+throughput all Pass | all 17 Pass |
//! | ------------------------------- | -------- | ------------------- | --------------------------- | ----------- |
//! | none (A/A)                      |   0.0%   |   0.0%              |  77.5%                      |   0.5%      |
//! | +5% (within the 10% tolerance)  |   0.0%   |   0.0%              |   4.5%                      |   0.0%      |
//! | +10% (exactly the tolerance)    |   1.5%   |   0.0%              |   0.5%                      |   0.0%      |
//! | +15%                            |  50.0%   |  10.0%              |   0%                        |   0%        |
//! | +20%                            |  96.0%   |  38.0%              |   0%                        |   0%        |
//! | +25%                            | 100.0%   |  87.5%              |   0%                        |   0%        |
//! | +30%                            | 100.0%   |  98.0%              |   0%                        |   0%        |
//! | +40%                            | 100.0%   | 100.0%              |   0%                        |   0%        |
//!
//! More rounds (`power_table`): at +15%, the iteration p99 Fails in 13.5% of runs with 5 vs 5 rounds,
//! 52.5% with 10 vs 10, 89.5% with 20 vs 20 (any check: 72%, 97.5%, 100%); unchanged runs never
//! failed and runs at exactly the tolerance failed in 1.5–3.5%. "All 17 Pass" is low because a steady
//! 0.2% error rate on 6000 requests cannot be certified within 0.1 point (those checks are
//! Inconclusive, which is the truth), and +5% cannot be certified below +10% with 3 rounds.
//!
//! The honest limit: with 3 vs 5 rounds the t quantile at the Holm level (≈ α/17, 6 df) is about 4.2,
//! so a p99 whose rounds vary by ~3.7% (2.2% drift plus the sampling noise of 20 tail samples, 2.9%)
//! Fails only when the slowdown clears the tolerance by about 4.2 × 0.73 × 3.7% ≈ 11 points in log
//! terms: +24% for even odds. A bootstrap of the same rounds looks more powerful (p99 Fails in 28% of
//! runs at +15%) only because it is overconfident: it fails 15% of runs that sit exactly at the
//! tolerance (`bootstrap_comparison`), three times the promised 5%.
//!
//! # The sequential A/B mode
//! [`Sim::pair`] simulates an A/B pair from the rounds' summaries (percentiles drawn from the
//! asymptotic law of sample quantiles; raw latencies would be too slow for hundreds of 60-pair runs).
//! [`Sim::with_p99_sd`] sets a round's total noise (sd of the iteration's log p99): sampling first
//! (2.9% for 2000 requests), the rest drift, half of whose variance the two rounds of a pair share.
//! Looks at 8, 11, 14, 19, 25, 34, 45, 60 pairs, tolerance 5%, one scenario at alpha 0.05, 17 checks,
//! no errors; release build, 1000 runs per row (`sequential_spending_table`):
//!
//! | round sd | head side                       | any Fail | its p99 Fails | mean pairs | all checks Pass |
//! | -------- | ------------------------------- | -------- | ------------- | ---------- | --------------- |
//! | 3%       | unchanged (A/A)                 |   0.0%   |   0.0%        |  16.8      | 100%            |
//! | 3%       | +5% everywhere (the tolerance)  |   3.9%   |   0.3%        |  59.0      |   0%            |
//! | 3%       | +10% on the iteration's p99     | 100.0%   | 100.0%        |  18.0      |                 |
//! | 5%       | unchanged (A/A)                 |   0.0%   |   0.0%        |  24.7      | 100%            |
//! | 5%       | +5% everywhere (the tolerance)  |   2.9%   |   0.2%        |  59.3      |   0%            |
//! | 5%       | +10% on the iteration's p99     | 100.0%   | 100.0%        |  26.5      |                 |
//! | 5%       | +30% everywhere                 | 100.0%   | 100.0%        |   8.0      |                 |
//! | 8%       | unchanged (A/A)                 |   0.0%   |   0.0%        |  38.9      |  94.3%          |
//! | 8%       | +5% everywhere (the tolerance)  |   2.1%   |   0.2%        |  59.4      |   0%            |
//! | 8%       | +10% on the iteration's p99     |  86.3%   |  86.3%        |  42.4      |                 |
//!
//! With `alpha / 8` at every look instead: 3.4–4.1% at the tolerance, 80.8% of the 10% tail
//! slowdowns caught at 8% noise, unchanged runs certified 1.5–2 pairs sooner. Without any correction
//! for the looks (alpha at each): 10.7–21.2% of the runs at the tolerance fail. At 8% noise a budget
//! of 100 pairs (looks 8 … 100) catches 98.5% of the 10% tail slowdowns. With 0.2% errors an
//! unchanged run takes 36 pairs (the error checks, certified within 0.1 point, are the last to Pass).
//! A +10% everywhere fails 99–100% of runs after 8–28 pairs on average, mostly through the steadier
//! p50s (the run stops at the first Fail, before the p99s are decided).

//!
//! # Disturbed rounds
//! [`Disturb`] (A/B pairs) and [`simulate_disturbed`] (file mode) multiply every latency of some
//! rounds by a factor drawn from 1.5 to 3, a neighbour having taken the CPU. The robust method of
//! `stats.rs` against the plain t-interval it replaces (`stats::with_plain_t`): per check on pair
//! log ratios (`robust_check_table`, with Yuen's trimmed mean and the signed-rank test), sequential
//! runs (`robust_sequential_table`) and the file mode (`robust_file_table`); their tables are in
//! `stats.rs`'s module comment. The quick tests below assert the same claims on fewer runs.

use perfgate_runtime::format::{ErrorCounts, LatencySummary, Metric, Stats};

use super::sequential::{
    decide_look, floor_of, noise_floor, plan, plan_with, should_stop, NoiseFloor, Plan, Spending,
    Stop,
};
use super::{decide, Decision, GateOptions, Outcome, RoundStats, ScenarioPair};

/// SplitMix64: a tiny, well-mixed, seedable generator (enough for simulations, not for secrets).
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            spare: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 (the normal below takes its log).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, both values of each pair used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let (sin, cos) = (2.0 * std::f64::consts::PI * v).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }

    /// Binomial(n, p) by inverting its CDF with one uniform (fine for the small n·p used here).
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let u = self.uniform();
        let mut pmf = (1.0 - p).powf(n as f64);
        let mut cdf = pmf;
        let mut k = 0;
        while cdf < u && k < n {
            pmf *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
            k += 1;
            cdf += pmf;
        }
        k
    }
}

#[derive(Clone, Debug)]
pub struct Sim {
    pub requests: usize,
    pub sigma_ln: f64,
    pub drift: f64,
    pub own_drift: f64,
    pub error_rate: f64,
    /// Series: None is the iteration, then named requests, with their median in ms.
    pub series: Vec<(Option<&'static str>, f64)>,
    /// A/A pairs only ([`Sim::pair`]): drift shared by the two rounds of a pair (the machine's slow
    /// wander, which pairing cancels); `drift` and `own_drift` are then each round's own.
    pub pair_drift: f64,
    /// A/A and A/B pairs only ([`Sim::pair`]): rounds disturbed by a neighbour.
    pub disturb: Disturb,
}

/// Rounds disturbed by something else on the machine (another job taking the CPU for a while): every
/// latency of the round multiplied by a factor drawn uniformly from 1.5 to 3.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disturb {
    /// The chance that a pair has one of its rounds disturbed.
    pub rate: f64,
    /// Which one: the head's (`Some(true)`), the base's (`Some(false)`), or either (`None`).
    pub head: Option<bool>,
}

/// The log factor of a disturbed round.
fn disturbance(rng: &mut Rng) -> f64 {
    (1.5 + 1.5 * rng.uniform()).ln()
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            requests: 2000,
            sigma_ln: 0.35,
            drift: 0.02,
            own_drift: 0.01,
            error_rate: 0.002,
            series: vec![
                (None, 5.0),
                (Some("predict"), 2.0),
                (Some("catalogue"), 1.0),
                (Some("health"), 0.5),
            ],
            pair_drift: 0.0,
            disturb: Disturb::default(),
        }
    }
}

/// Stats of one series from its raw latencies (ms), as the engine would summarise them.
pub fn stats_from(latencies: &mut [f64], errors: u64, throughput: f64) -> Stats {
    latencies.sort_unstable_by(f64::total_cmp);
    let n = latencies.len();
    let q = |p: f64| latencies[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let latency = LatencySummary {
        count: n as u64,
        min_ms: latencies[0],
        mean_ms: latencies.iter().sum::<f64>() / n as f64,
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: latencies[n - 1],
    };
    Stats {
        count: n as u64,
        errors: ErrorCounts {
            other: errors,
            ..ErrorCounts::default()
        },
        throughput,
        latency_uncorrected: latency.clone(),
        latency,
        ..Stats::default()
    }
}

impl Sim {
    /// One round; every latency of every series multiplied by `1 + slowdown`.
    pub fn round(&self, rng: &mut Rng, slowdown: f64) -> RoundStats {
        self.round_shifted(rng, slowdown, 0.0)
    }

    /// One round whose latencies are also multiplied by `exp(extra)` (a disturbed round).
    fn round_shifted(&self, rng: &mut Rng, slowdown: f64, extra: f64) -> RoundStats {
        let shared = self.drift * rng.normal() + extra;
        let mut round = RoundStats::default();
        let mut buf = vec![0.0; self.requests];
        for &(name, median) in &self.series {
            let centre = median.ln() + shared + self.own_drift * rng.normal() + slowdown.ln_1p();
            for x in buf.iter_mut() {
                *x = (centre + self.sigma_ln * rng.normal()).exp();
            }
            let errors = rng.binomial(self.requests as u64, self.error_rate);
            let mean_s = buf.iter().sum::<f64>() / buf.len() as f64 / 1000.0;
            let stats = stats_from(&mut buf, errors, 64.0 / mean_s);
            match name {
                None => round.iterations = stats,
                Some(n) => {
                    round.requests.insert(n.to_string(), stats);
                }
            }
        }
        round
    }

    pub fn rounds(&self, rng: &mut Rng, n: usize, slowdown: f64) -> Vec<RoundStats> {
        (0..n).map(|_| self.round(rng, slowdown)).collect()
    }
}

/// One simulated comparison: `nb` baseline rounds, `nc` current rounds slowed by `slowdown`, the first
/// `disturbed.0` baseline and `disturbed.1` current rounds disturbed.
pub fn simulate_disturbed(
    sim: &Sim,
    rng: &mut Rng,
    (nb, nc): (usize, usize),
    slowdown: f64,
    tolerance: f64,
    disturbed: (usize, usize),
) -> Vec<Decision> {
    let mut side = |n: usize, slowdown: f64, k: usize| -> Vec<RoundStats> {
        (0..n)
            .map(|i| {
                let extra = if i < k { disturbance(rng) } else { 0.0 };
                sim.round_shifted(rng, slowdown, extra)
            })
            .collect()
    };
    let baseline = side(nb, 0.0, disturbed.0);
    let current = side(nc, slowdown, disturbed.1);
    let pair = ScenarioPair {
        scenario: "sim::scenario",
        tolerance,
        compare_throughput: true,
        baseline: &baseline,
        current: &current,
    };
    decide(&[pair], &GateOptions::default())
}

#[derive(Debug, Default)]
pub struct Tally {
    pub runs: usize,
    pub checks: usize,
    pub any_fail: usize,
    pub p99_fail: usize,
    pub all_pass: usize,
    /// Runs whose latency and throughput checks all Pass (errors aside).
    pub latency_pass: usize,
}

impl Tally {
    fn rate(&self, k: usize) -> f64 {
        k as f64 / self.runs as f64
    }
}

pub fn tally(
    sim: &Sim,
    seed: u64,
    runs: usize,
    rounds: (usize, usize),
    slowdown: f64,
    tolerance: f64,
) -> Tally {
    tally_disturbed(sim, seed, runs, rounds, slowdown, tolerance, (0, 0))
}

/// [`tally`] with disturbed rounds (see [`simulate_disturbed`]).
pub fn tally_disturbed(
    sim: &Sim,
    seed: u64,
    runs: usize,
    rounds: (usize, usize),
    slowdown: f64,
    tolerance: f64,
    disturbed: (usize, usize),
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut t = Tally {
        runs,
        ..Tally::default()
    };
    for _ in 0..runs {
        let d = simulate_disturbed(sim, &mut rng, rounds, slowdown, tolerance, disturbed);
        t.checks = d.len();
        t.any_fail += d.iter().any(|d| d.outcome == Outcome::Fail) as usize;
        t.all_pass += d.iter().all(|d| d.outcome == Outcome::Pass) as usize;
        t.latency_pass += d
            .iter()
            .all(|d| d.metric == Metric::Errors || d.outcome == Outcome::Pass)
            as usize;
        t.p99_fail += d
            .iter()
            .any(|d| d.request.is_none() && d.metric == Metric::P99 && d.outcome == Outcome::Fail)
            as usize;
    }
    t
}

fn print_row(label: &str, t: &Tally) {
    eprintln!(
        "| {label:<32} | {:>5.1}% | {:>5.1}% | {:>5.1}% | {:>5.1}% |",
        t.rate(t.any_fail) * 100.0,
        t.rate(t.p99_fail) * 100.0,
        t.rate(t.latency_pass) * 100.0,
        t.rate(t.all_pass) * 100.0
    );
}

/// The debug-build version: fewer runs, the same claims with room for the smaller sample.
#[test]
fn calibration_quick() {
    let sim = Sim {
        requests: 1000,
        ..Sim::default()
    };
    let aa = tally(&sim, 1, 40, (5, 3), 0.0, 0.10);
    assert_eq!(aa.checks, 17);
    assert!(aa.any_fail <= 2, "{aa:?}");
    let slow = tally(&sim, 2, 40, (5, 3), 0.40, 0.10);
    assert!(slow.p99_fail >= 36, "{slow:?}");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds: run with --release")]
fn calibration_full() {
    let sim = Sim::default();
    let rows = [
        ("none (A/A)", 0.0),
        ("+5% (within the 10% tolerance)", 0.05),
        ("+10% (exactly the tolerance)", 0.10),
        ("+15%", 0.15),
        ("+20%", 0.20),
        ("+25%", 0.25),
        ("+30%", 0.30),
        ("+40%", 0.40),
    ];
    eprintln!("3 current vs 5 baseline rounds:");
    let mut results = Vec::new();
    for (i, (label, slow)) in rows.iter().enumerate() {
        let t = tally(&sim, 100 + i as u64, 200, (5, 3), *slow, 0.10);
        print_row(label, &t);
        results.push(t);
    }
    let [aa, within, boundary, _p15, _p20, p25, _p30, p40] = &results[..] else {
        unreachable!()
    };
    assert!(aa.rate(aa.any_fail) <= 0.05, "A/A false alarms {aa:?}");
    assert!(within.rate(within.any_fail) <= 0.05, "{within:?}");
    // At the boundary Holm's guarantee is exactly alpha; allow two binomial standard errors.
    assert!(boundary.rate(boundary.any_fail) <= 0.08, "{boundary:?}");
    assert!(p25.rate(p25.any_fail) >= 0.95, "{p25:?}");
    assert!(p25.rate(p25.p99_fail) >= 0.80, "{p25:?}");
    assert!(p40.rate(p40.p99_fail) >= 0.95, "{p40:?}");
    // Unchanged runs must mostly pass their latency checks, not only avoid failing.
    assert!(aa.rate(aa.latency_pass) >= 0.70, "{aa:?}");
}

/// How power grows with rounds (printed only: a table for the docs, no claim to assert).
#[test]
#[ignore = "a table for the docs: cargo test --release -- --ignored power_table --nocapture"]
fn power_table() {
    let sim = Sim::default();
    for rounds in [(5, 3), (5, 5), (10, 10), (20, 20)] {
        eprintln!("{} baseline vs {} current rounds:", rounds.0, rounds.1);
        for (i, slow) in [0.0, 0.10, 0.15, 0.20, 0.25].into_iter().enumerate() {
            let t = tally(&sim, 200 + i as u64, 200, rounds, slow, 0.10);
            print_row(&format!("+{:.0}%", slow * 100.0), &t);
        }
    }
}

/// The method the gate does not use, on the same simulated runs: a percentile bootstrap of the ratio
/// of the rounds' medians (B = 2000, resampling rounds within each side), its p-value the resampled
/// fraction at or below 1 + t with the +1 correction, Holm across the 13 latency and throughput
/// checks. Printed only (the evidence behind the module comment of `stats.rs`).
#[test]
#[ignore = "evidence for the docs: cargo test --release -- --ignored bootstrap_comparison --nocapture"]
fn bootstrap_comparison() {
    let sim = Sim::default();
    let median = |v: &mut Vec<f64>| {
        v.sort_unstable_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    for slow in [0.0, 0.10, 0.15, 0.25] {
        let mut rng = Rng::new(300);
        let (mut any_fail, mut p99_fail) = (0, 0);
        let runs = 200;
        for _ in 0..runs {
            let b = sim.rounds(&mut rng, 5, 0.0);
            let c = sim.rounds(&mut rng, 3, slow);
            let mut p = Vec::new();
            for (si, &(name, _)) in sim.series.iter().enumerate() {
                let get = |r: &RoundStats| match name {
                    None => r.iterations.clone(),
                    Some(n) => r.requests[n].clone(),
                };
                let mut metrics = vec![Metric::P50, Metric::P95, Metric::P99];
                if si == 0 {
                    metrics.push(Metric::Throughput);
                }
                for m in metrics {
                    let vb: Vec<f64> = b.iter().map(|r| m.value(&get(r))).collect();
                    let vc: Vec<f64> = c.iter().map(|r| m.value(&get(r))).collect();
                    let mut not_worse = 0;
                    let resamples = 2000;
                    for _ in 0..resamples {
                        let mut rb: Vec<f64> = (0..vb.len())
                            .map(|_| vb[rng.next_u64() as usize % vb.len()])
                            .collect();
                        let mut rc: Vec<f64> = (0..vc.len())
                            .map(|_| vc[rng.next_u64() as usize % vc.len()])
                            .collect();
                        let ratio = median(&mut rc) / median(&mut rb);
                        let ok = if m == Metric::Throughput {
                            ratio >= 0.90
                        } else {
                            ratio <= 1.10
                        };
                        not_worse += ok as usize;
                    }
                    p.push((1 + not_worse) as f64 / (1 + resamples) as f64);
                }
            }
            let (rejected, _) = super::stats::holm(&p, 0.05);
            any_fail += rejected.iter().any(|&r| r) as usize;
            p99_fail += rejected[2] as usize;
        }
        eprintln!(
            "bootstrap, +{:.0}%: runs with any Fail {:.1}%, iteration p99 Fails {:.1}%",
            slow * 100.0,
            any_fail as f64 / runs as f64 * 100.0,
            p99_fail as f64 / runs as f64 * 100.0
        );
    }
}

// The sequential A/B mode (`sequential.rs`): pairs of rounds, looks, early stops.

/// What the head side of an A/B pair changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Change {
    /// Every latency of every series multiplied by `1 + all`.
    pub all: f64,
    /// On top, the iteration's p99 alone multiplied by `1 + iteration_p99` (a tail slowdown: the
    /// p50 and throughput checks, which are less noisy, cannot catch it first).
    pub iteration_p99: f64,
}

/// (p, z_p, φ(z_p)) of the standard normal at the percentiles the gate compares.
const PERCENTILES: [(f64, f64, f64); 3] = [
    (0.50, 0.0, 0.398_942_280),
    (0.95, 1.644_853_627, 0.103_135_700),
    (0.99, 2.326_347_874, 0.026_652_142),
];

impl Sim {
    /// Sd of a round's log p99 from sampling alone: the asymptotic variance of a sample quantile,
    /// p(1 − p) / (n f²), on the log scale of a lognormal.
    pub fn p99_sampling_sd(&self) -> f64 {
        self.sigma_ln * (0.99 * 0.01 / self.requests as f64).sqrt() / PERCENTILES[2].2
    }

    /// The default scenario with drifts set so that a round's log p99 (iteration) varies by `sd` in
    /// all: sampling noise (2.9% for 2000 requests), the rest drift, of whose variance half is shared
    /// by the two rounds of a pair (a CI machine's slow wander), 40% is each round's own (shared by
    /// its series) and 10% each series' own.
    pub fn with_p99_sd(sd: f64) -> Sim {
        let sim = Sim::default();
        let drift = sd.powi(2) - sim.p99_sampling_sd().powi(2);
        assert!(drift >= 0.0, "{sd} is below the sampling noise alone");
        Sim {
            pair_drift: (0.5 * drift).sqrt(),
            drift: (0.4 * drift).sqrt(),
            own_drift: (0.1 * drift).sqrt(),
            ..sim
        }
    }

    /// Sd of a pair's log ratio head/base of the iteration's p99: the noise pairing leaves.
    pub fn p99_paired_sd(&self) -> f64 {
        (2.0 * (self.p99_sampling_sd().powi(2) + self.drift.powi(2) + self.own_drift.powi(2)))
            .sqrt()
    }

    /// One A/B pair (base, head). Simulated from each round's summary rather than raw latencies:
    /// hundreds of runs of up to 60 pairs would take minutes in a debug build otherwise. The
    /// percentiles are drawn from the joint asymptotic law of sample quantiles (normal, correlations
    /// included), so the skew of a p99 of 20 tail samples is left out: the raw-latency calibration
    /// above covers that.
    pub fn pair(&self, rng: &mut Rng, change: Change) -> (RoundStats, RoundStats) {
        let shared = self.pair_drift * rng.normal();
        let (mut on_base, mut on_head) = (0.0, 0.0);
        // No draw at all without disturbances: the undisturbed simulations keep their streams.
        if self.disturb.rate > 0.0 && rng.uniform() < self.disturb.rate {
            let head = self.disturb.head.unwrap_or_else(|| rng.uniform() < 0.5);
            let f = disturbance(rng);
            if head {
                on_head = f;
            } else {
                on_base = f;
            }
        }
        let base = self.summary_round(rng, shared + on_base, Change::default());
        let head = self.summary_round(rng, shared + on_head, change);
        (base, head)
    }

    fn summary_round(&self, rng: &mut Rng, shared: f64, change: Change) -> RoundStats {
        let shift = shared + self.drift * rng.normal() + change.all.ln_1p();
        let n = self.requests as f64;
        let sigma = self.sigma_ln;
        let mut round = RoundStats::default();
        for &(name, median) in &self.series {
            let centre = median.ln() + shift + self.own_drift * rng.normal();
            // Sample quantile p of n draws ≈ z_p + B(p) / (√n φ(z_p)) with B a Brownian bridge,
            // B(p) = W(p) − p W(1), W built from independent increments.
            let (mut w, mut prev, mut at) = (0.0, 0.0, [0.0; 3]);
            for (i, &(p, _, _)) in PERCENTILES.iter().enumerate() {
                w += (p - prev).sqrt() * rng.normal();
                prev = p;
                at[i] = w;
            }
            let w1 = w + (1.0 - prev).sqrt() * rng.normal();
            let q = |i: usize| {
                let (p, z, phi) = PERCENTILES[i];
                (centre + sigma * (z + (at[i] - p * w1) / (n.sqrt() * phi))).exp()
            };
            let fixed = |z: f64| (centre + sigma * z).exp();
            let mut p99 = q(2);
            if name.is_none() {
                p99 *= 1.0 + change.iteration_p99;
            }
            // The mean of n lognormal draws, with its own sampling noise (for throughput).
            let mean_sd = (sigma.powi(2).exp_m1() / n).sqrt();
            let mean_ms = (centre + 0.5 * sigma.powi(2) + mean_sd * rng.normal()).exp();
            let latency = LatencySummary {
                count: self.requests as u64,
                min_ms: fixed(-3.5),
                mean_ms,
                p50_ms: q(0),
                p90_ms: fixed(1.281_551_6),
                p95_ms: q(1),
                p99_ms: p99,
                p999_ms: fixed(3.090_232).max(p99),
                max_ms: fixed(4.0).max(p99),
            };
            let errors = rng.binomial(self.requests as u64, self.error_rate);
            let stats = Stats {
                count: self.requests as u64,
                errors: ErrorCounts {
                    other: errors,
                    ..ErrorCounts::default()
                },
                throughput: 64.0 / (mean_ms / 1000.0),
                latency_uncorrected: latency.clone(),
                latency,
                ..Stats::default()
            };
            match name {
                None => round.iterations = stats,
                Some(n) => {
                    round.requests.insert(n.to_string(), stats);
                }
            }
        }
        round
    }
}

/// Sequential runs: how often they fail, and how many pairs they take.
#[derive(Debug, Default)]
pub struct SeqTally {
    pub runs: usize,
    pub any_fail: usize,
    /// Runs stopping with the iteration's p99 Failed.
    pub p99_fail: usize,
    pub pairs: usize,
    /// Stops by kind: Failed, Decided, Budget, MaxPairs.
    pub stops: [usize; 4],
}

impl SeqTally {
    fn rate(&self, k: usize) -> f64 {
        k as f64 / self.runs as f64
    }

    fn mean_pairs(&self) -> f64 {
        self.pairs as f64 / self.runs as f64
    }
}

/// `runs` A/B runs of one scenario, each sampling pairs up to the plan's looks and stopping where
/// `should_stop` says.
pub fn sequential_tally(
    sim: &Sim,
    seed: u64,
    runs: usize,
    plan: &Plan,
    tolerance: f64,
    change: Change,
    floors: Option<&NoiseFloor>,
) -> SeqTally {
    let mut rng = Rng::new(seed);
    let opts = GateOptions::default();
    let mut t = SeqTally {
        runs,
        ..SeqTally::default()
    };
    for _ in 0..runs {
        let (mut base, mut head) = (Vec::new(), Vec::new());
        for (j, &n) in plan.looks.iter().enumerate() {
            while base.len() < n {
                let (b, h) = sim.pair(&mut rng, change);
                base.push(b);
                head.push(h);
            }
            let pair = ScenarioPair {
                scenario: "sim::ab",
                tolerance,
                compare_throughput: true,
                baseline: &base,
                current: &head,
            };
            let look = decide_look(&pair, &opts, plan, j, floors);
            let Some(stop) = should_stop(&look.decisions, n, plan, false) else {
                continue;
            };
            let failed = |d: &Decision| d.outcome == Outcome::Fail;
            t.any_fail += look.decisions.iter().any(failed) as usize;
            t.p99_fail += look
                .decisions
                .iter()
                .any(|d| d.request.is_none() && d.metric == Metric::P99 && failed(d))
                as usize;
            t.pairs += n;
            t.stops[stop as usize] += 1;
            break;
        }
    }
    t
}

/// The largest count a Binomial(n, p) exceeds with probability below ~1% (normal approximation
/// plus a continuity margin): an observed count above it says the rate is above p.
fn binomial_upper(n: usize, p: f64) -> usize {
    let (n, sd) = (n as f64, (n as f64 * p * (1.0 - p)).sqrt());
    (n * p + 2.33 * sd + 0.5).floor() as usize
}

/// The table behind the choice of looks and alpha spending (`sequential.rs`): both spendings, round
/// noise of 3%, 5% and 8% (sd of a round's log p99), looks from 8 to 60 pairs, tolerance 5%, one
/// scenario at alpha 0.05, 17 checks, no errors (see [`quiet`]); then what the look correction buys
/// at the tolerance, a longer budget for the noisiest machine, and runs with 0.2% errors.
#[test]
#[ignore = "a table for the docs (~3 min): cargo test --release -- --ignored sequential_spending_table --nocapture"]
fn sequential_spending_table() {
    let change = |all, iteration_p99| Change { all, iteration_p99 };
    let rows = [
        ("none (A/A)", change(0.0, 0.0)),
        ("+5% everywhere (the tolerance)", change(0.05, 0.0)),
        ("+10% iteration p99 only", TAIL_10),
        ("+10% everywhere", change(0.10, 0.0)),
        ("+30% everywhere", change(0.30, 0.0)),
    ];
    let header = "| round sd | change | any Fail | p99 Fails | mean pairs | stops F/D/B/M |";
    let row = |sd: f64, label: &str, t: &SeqTally| {
        eprintln!(
            "| {:>3.0}% | {label:<32} | {:>5.1}% | {:>5.1}% | {:>5.1} | {:?} |",
            sd * 100.0,
            t.rate(t.any_fail) * 100.0,
            t.rate(t.p99_fail) * 100.0,
            t.mean_pairs(),
            t.stops
        );
    };
    let runs = 1000;
    for spending in [Spending::Equal, Spending::ByPairs] {
        let plan = plan_with(8, 60, 0.05, spending);
        eprintln!(
            "{spending:?}: looks {:?}, levels {:.4?}",
            plan.looks, plan.alphas
        );
        eprintln!("{header}");
        for sd in [0.03, 0.05, 0.08] {
            for (i, (label, c)) in rows.iter().enumerate() {
                let t = sequential_tally(&quiet(sd), 500 + i as u64, runs, &plan, 0.05, *c, None);
                row(sd, label, &t);
            }
        }
    }
    // Without the correction (alpha at every look): the false alarms it prevents.
    let naive = Plan {
        alphas: vec![0.05; 8],
        alpha_scenario: 0.40,
        ..plan(8, 60, 0.05)
    };
    eprintln!("no look correction:\n{header}");
    for sd in [0.03, 0.05, 0.08] {
        let t = sequential_tally(&quiet(sd), 501, runs, &naive, 0.05, rows[1].1, None);
        row(sd, rows[1].0, &t);
    }
    let long = plan(8, 100, 0.05);
    eprintln!("ByPairs, looks {:?}:\n{header}", long.looks);
    for (i, (label, c)) in rows.iter().enumerate().take(3) {
        let t = sequential_tally(&quiet(0.08), 600 + i as u64, runs, &long, 0.05, *c, None);
        row(0.08, label, &t);
    }
    eprintln!("0.2% errors (200 runs):\n{header}");
    for spending in [Spending::Equal, Spending::ByPairs] {
        let plan = plan_with(8, 60, 0.05, spending);
        let t = sequential_tally(
            &Sim::with_p99_sd(0.05),
            700,
            200,
            &plan,
            0.05,
            rows[0].1,
            None,
        );
        row(0.05, &format!("A/A, {spending:?}"), &t);
    }
}

/// The fast simulations run without errors: the exact error test on the pooled counts of 60 pairs
/// costs ~0.2 s per run in a debug build (its calibration does not depend on the looks anyway: the
/// union bound covers every check alike). The table above has them.
fn quiet(sd: f64) -> Sim {
    Sim {
        error_rate: 0.0,
        ..Sim::with_p99_sd(sd)
    }
}

const TAIL_10: Change = Change {
    all: 0.0,
    iteration_p99: 0.10,
};

#[test]
fn sequential_unchanged_runs_do_not_fail_and_are_certified_early() {
    let plan = plan(8, 60, 0.05);
    let mut fails = 0;
    for (i, sd) in [0.03, 0.05, 0.08].into_iter().enumerate() {
        let t = sequential_tally(
            &quiet(sd),
            10 + i as u64,
            60,
            &plan,
            0.05,
            Change::default(),
            None,
        );
        fails += t.any_fail;
        if sd <= 0.05 {
            // Every check Passes well before the budget: 5% is above what these pairs resolve.
            assert!(t.stops[Stop::Decided as usize] >= 57, "{t:?}");
            assert!(t.mean_pairs() < 35.0, "{t:?}");
        }
    }
    assert!(fails <= binomial_upper(180, 0.05), "{fails} of 180");
}

#[test]
fn sequential_detects_a_10pct_tail_slowdown_against_a_5pct_tolerance() {
    let plan = plan(8, 60, 0.05);
    let t = sequential_tally(&quiet(0.05), 20, 100, &plan, 0.05, TAIL_10, None);
    assert!(t.p99_fail >= 95, "{t:?}");
    assert!(t.mean_pairs() < 45.0, "{t:?}");
}

/// Every check exactly at its tolerance: the case the look correction is for (an unchanged run sits
/// far below the line and hardly ever fails, with or without it).
#[test]
fn sequential_changes_at_the_tolerance_fail_at_most_alpha() {
    let plan = plan(8, 60, 0.05);
    let at = Change {
        all: 0.05,
        ..Change::default()
    };
    let runs = 250;
    let t = sequential_tally(&quiet(0.05), 30, runs, &plan, 0.05, at, None);
    assert!(t.any_fail <= binomial_upper(runs, 0.05), "{t:?}");
}

#[test]
fn sequential_noise_floor_of_simulated_aa_pairs_matches_the_formula() {
    let sim = quiet(0.05);
    let plan = plan(8, 60, 0.05);
    let mut rng = Rng::new(40);
    let expected = floor_of(Metric::P99, sim.p99_paired_sd(), 60, plan.alpha_final());
    let (calibrations, pairs) = (10, 40);
    let mut floors = Vec::new();
    for _ in 0..calibrations {
        let (base, head): (Vec<_>, Vec<_>) = (0..pairs)
            .map(|_| sim.pair(&mut rng, Change::default()))
            .unzip();
        let aa = ScenarioPair {
            scenario: "sim::ab",
            tolerance: 0.05,
            compare_throughput: true,
            baseline: &base,
            current: &head,
        };
        let f = noise_floor(&aa, &GateOptions::default(), 60, plan.alpha_final());
        assert_eq!(f.pairs["p99"], pairs as u64);
        // A p50 is steadier than a p99 of 20 tail samples.
        assert!(f.floor["p50"] < f.floor["p99"], "{f:?}");
        assert!(f.floor.contains_key("predict:p99") && f.floor.contains_key("throughput"));
        floors.push(f.floor["p99"]);
    }
    // Each calibration's sd is within ~11% of the truth (1/√(2·39)); their mean within ~4%.
    let mean = floors.iter().sum::<f64>() / calibrations as f64;
    assert!((mean / expected - 1.0).abs() < 0.10, "{mean} vs {expected}");
    assert!(
        floors.iter().all(|f| (f / expected - 1.0).abs() < 0.35),
        "{floors:?} vs {expected}"
    );
    // 2.9% for 5% round noise (half of its drift variance shared by a pair) over 60 pairs.
    assert!((0.025..0.035).contains(&expected), "{expected}");
}

/// A declared 1% on a machine resolving ~3%: without the floor an unchanged scenario can hardly be
/// certified within the budget; with it (from one simulated calibration of 60 A/A pairs) it mostly is.
#[test]
fn sequential_floor_lets_unchanged_runs_pass_a_too_tight_tolerance() {
    let sim = quiet(0.05);
    let plan = plan(8, 60, 0.05);
    let mut rng = Rng::new(50);
    let (base, head): (Vec<_>, Vec<_>) = (0..60)
        .map(|_| sim.pair(&mut rng, Change::default()))
        .unzip();
    let aa = ScenarioPair {
        scenario: "sim::ab",
        tolerance: 0.01,
        compare_throughput: true,
        baseline: &base,
        current: &head,
    };
    let floors = noise_floor(&aa, &GateOptions::default(), 60, plan.alpha_final());
    assert!(floors.floor["p99"] > 0.02, "{floors:?}");
    let held = sequential_tally(&sim, 51, 40, &plan, 0.01, Change::default(), Some(&floors));
    let plain = sequential_tally(&sim, 51, 40, &plan, 0.01, Change::default(), None);
    assert!(held.stops[Stop::Decided as usize] >= 24, "{held:?}");
    assert!(plain.stops[Stop::Decided as usize] <= 5, "{plain:?}");
    assert_eq!(held.any_fail + plain.any_fail, 0, "{held:?} {plain:?}");
}

// Disturbed rounds: the outlier sequence of `stats.rs` against the plain t-interval.

/// A check's levels at each look of `plan` for a scenario of 17 checks: the Fail test's first Holm
/// step (`alpha_look / 17`, the strictest a Fail meets) and the Pass test's (`alpha_look`).
fn check_levels(plan: &Plan) -> Vec<(usize, f64, f64)> {
    plan.looks
        .iter()
        .zip(&plan.alphas)
        .map(|(&n, &a)| (n, a / 17.0, a))
        .collect()
}

/// One-sided p-values (Fail, Pass) of a check on pair log ratios `d` against the log boundary `b`.
type CheckTest = fn(&[f64], f64) -> (f64, f64);

fn robust_test(d: &[f64], b: f64) -> (f64, f64) {
    super::stats::paired_p_values(d, b)
}

fn plain_t_test(d: &[f64], b: f64) -> (f64, f64) {
    super::stats::with_plain_t(|| super::stats::paired_p_values(d, b))
}

/// Yuen's test on the 20%-trimmed mean (winsorised variance, `h − 1` degrees of freedom, h kept).
fn yuen_test(d: &[f64], b: f64) -> (f64, f64) {
    let n = d.len();
    let mut x = d.to_vec();
    x.sort_unstable_by(f64::total_cmp);
    let g = (0.2 * n as f64).floor() as usize;
    let h = n - 2 * g;
    let trimmed = x[g..n - g].iter().sum::<f64>() / h as f64;
    let w: Vec<f64> = x.iter().map(|&v| v.clamp(x[g], x[n - g - 1])).collect();
    let mw = w.iter().sum::<f64>() / n as f64;
    let sw = (w.iter().map(|v| (v - mw).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = (sw / (h as f64 / n as f64 * (n as f64).sqrt())).max(1e-12);
    let t = (trimmed - b) / se;
    let df = (h - 1) as f64;
    (super::dist::t_sf(t, df), super::dist::t_cdf(t, df))
}

/// The exact one-sided Wilcoxon signed-rank test of the pairs against `b` (its interval is the
/// Hodges–Lehmann one); no ties in simulated data.
fn signed_rank_test(d: &[f64], b: f64) -> (f64, f64) {
    let n = d.len();
    let mut dev: Vec<f64> = d.iter().map(|v| v - b).collect();
    dev.sort_unstable_by(|x, y| x.abs().total_cmp(&y.abs()));
    let w: usize = dev
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.0)
        .map(|(i, _)| i + 1)
        .sum();
    // Number of sign patterns with each rank sum, as probabilities.
    let total = n * (n + 1) / 2;
    let mut pmf = vec![0.0; total + 1];
    pmf[0] = 1.0;
    for k in 1..=n {
        for s in (k..=total).rev() {
            pmf[s] += pmf[s - k];
        }
    }
    let scale = 0.5_f64.powi(n as i32);
    let upper: f64 = pmf[w..].iter().sum::<f64>() * scale;
    let lower: f64 = pmf[..=w].iter().sum::<f64>() * scale;
    (upper, lower)
}

/// Pair log ratios: `theta` plus normal noise of sd `sd`, each pair disturbed with probability
/// `rate` (on the head's side when `head` says so, else either).
fn pair_ratios(
    rng: &mut Rng,
    n: usize,
    theta: f64,
    sd: f64,
    rate: f64,
    head: Option<bool>,
) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let mut d = theta + sd * rng.normal();
            if rate > 0.0 && rng.uniform() < rate {
                let on_head = head.unwrap_or_else(|| rng.uniform() < 0.5);
                let f = disturbance(rng);
                d += if on_head { f } else { -f };
            }
            d
        })
        .collect()
}

#[test]
fn robust_check_holds_its_level_on_clean_pairs() {
    // At a change of exactly the tolerance (boundary 0), normal pairs: each p-value is valid.
    let mut rng = Rng::new(60);
    let (reps, a) = (6000, 0.01);
    for n in [6, 12, 30] {
        let (mut fail, mut pass) = (0, 0);
        for _ in 0..reps {
            let d = pair_ratios(&mut rng, n, 0.0, 0.05, 0.0, None);
            let (pf, pp) = robust_test(&d, 0.0);
            fail += (pf <= a) as usize;
            pass += (pp <= a) as usize;
        }
        let most = binomial_upper(reps, a);
        assert!(
            fail <= most && pass <= most,
            "n {n}: {fail} / {pass} of {reps}"
        );
    }
}

#[test]
fn one_disturbed_pair_no_longer_blinds_a_check() {
    // 10 pairs within ±1% and one ×2: the plain t cannot certify a 5% tolerance at the first look's
    // level, the robust test sets the pair aside and can; on the clean pairs both agree.
    let mut rng = Rng::new(61);
    let mut d = pair_ratios(&mut rng, 10, 0.0, 0.01, 0.0, None);
    let b = 0.05_f64.ln_1p();
    let level = plan(6, 60, 0.05).alphas[1];
    assert!(robust_test(&d, b).1 <= level && plain_t_test(&d, b).1 <= level);
    d[3] += 2f64.ln();
    assert!(robust_test(&d, b).1 <= level, "{:?}", robust_test(&d, b));
    assert!(plain_t_test(&d, b).1 > 0.1, "{:?}", plain_t_test(&d, b));
    // Nor does it invent a slowdown: the disturbed pair is not evidence of one.
    assert!(robust_test(&d, b).0 > 0.5, "{:?}", robust_test(&d, b));
}

/// Sequential runs with the plain t-intervals (the method before), for comparison.
fn sequential_tally_t(
    sim: &Sim,
    seed: u64,
    runs: usize,
    plan: &Plan,
    tolerance: f64,
    change: Change,
) -> SeqTally {
    super::stats::with_plain_t(|| sequential_tally(sim, seed, runs, plan, tolerance, change, None))
}

fn disturbed(sd: f64, rate: f64, head: Option<bool>) -> Sim {
    Sim {
        disturb: Disturb { rate, head },
        ..quiet(sd)
    }
}

#[test]
fn sequential_unchanged_runs_with_disturbed_pairs_still_pass() {
    let plan = plan(8, 60, 0.05);
    let sim = disturbed(0.05, 0.1, None);
    let robust = sequential_tally(&sim, 70, 40, &plan, 0.05, Change::default(), None);
    let t = sequential_tally_t(&sim, 70, 40, &plan, 0.05, Change::default());
    assert_eq!(robust.any_fail + t.any_fail, 0, "{robust:?} {t:?}");
    assert!(robust.stops[Stop::Decided as usize] >= 34, "{robust:?}");
    assert!(t.stops[Stop::Decided as usize] <= 20, "{t:?}");
    assert!(robust.mean_pairs() < t.mean_pairs(), "{robust:?} {t:?}");
}

#[test]
fn sequential_tail_slowdown_is_caught_despite_disturbed_pairs() {
    let plan = plan(8, 60, 0.05);
    let sim = disturbed(0.05, 0.1, None);
    let robust = sequential_tally(&sim, 71, 40, &plan, 0.05, TAIL_10, None);
    let t = sequential_tally_t(&sim, 71, 40, &plan, 0.05, TAIL_10);
    assert!(robust.p99_fail >= 34, "{robust:?}");
    assert!(t.p99_fail <= 20, "{t:?}");
}

/// The worst case for false alarms: every check exactly at its tolerance and the disturbances all on
/// the head's side, where they look like more slowdown.
#[test]
fn sequential_disturbed_changes_at_the_tolerance_fail_at_most_alpha() {
    let plan = plan(8, 60, 0.05);
    let at = Change {
        all: 0.05,
        ..Change::default()
    };
    let runs = 120;
    let t = sequential_tally(
        &disturbed(0.05, 0.1, Some(true)),
        72,
        runs,
        &plan,
        0.05,
        at,
        None,
    );
    assert!(t.any_fail <= binomial_upper(runs, 0.05), "{t:?}");
}

#[test]
fn file_mode_survives_one_disturbed_round() {
    let sim = Sim {
        requests: 1000,
        ..Sim::default()
    };
    let robust = tally_disturbed(&sim, 73, 30, (5, 3), 0.0, 0.10, (0, 1));
    let t = super::stats::with_plain_t(|| tally_disturbed(&sim, 73, 30, (5, 3), 0.0, 0.10, (0, 1)));
    assert_eq!(robust.any_fail + t.any_fail, 0, "{robust:?} {t:?}");
    eprintln!("{robust:?} {t:?}");
}

/// The per-check evidence behind the choice of method (`stats.rs`): on clean normal pair log ratios,
/// each method's rate of p-values at or below the first look's levels and the last's (Fail: the
/// first Holm step `alpha_look / 17`; Pass: `alpha_look`), as a multiple of the level; then how often
/// a check of sd 5.8% (pairs at 5% round noise) Passes a 5% tolerance unchanged, and Fails it at
/// +10%, clean and with disturbed pairs (`rate` of the pairs, either side; "head": the side that
/// hurts), at each look of `plan(6, 60, 0.05)`.
#[test]
#[ignore = "a table for the docs (~1 min): cargo test --release -- --ignored robust_check_table --nocapture"]
fn robust_check_table() {
    let plan = plan(6, 60, 0.05);
    let methods: [(&str, CheckTest); 4] = [
        ("t", plain_t_test),
        ("robust", robust_test),
        ("yuen 20%", yuen_test),
        ("signed-rank", signed_rank_test),
    ];
    let mut rng = Rng::new(80);
    eprintln!("size on clean normal pairs, rate / level (Fail level, Pass level):");
    for &(n, fail_level, pass_level) in &check_levels(&plan) {
        let reps = if n <= 12 { 1_000_000 } else { 200_000 };
        let samples: Vec<Vec<f64>> = (0..reps)
            .map(|_| pair_ratios(&mut rng, n, 0.0, 1.0, 0.0, None))
            .collect();
        let mut line = format!("| {n:>2} pairs | {fail_level:.1e} / {pass_level:.1e} |");
        for (name, test) in &methods {
            let (mut f, mut p) = (0, 0);
            for d in &samples {
                let (pf, pp) = test(d, 0.0);
                // Both tails, each at its level: twice the draws.
                f += (pf <= fail_level) as usize + (pp <= fail_level) as usize;
                p += (pf <= pass_level) as usize + (pp <= pass_level) as usize;
            }
            let rate = |k: usize, a: f64| k as f64 / (2.0 * reps as f64) / a;
            line.push_str(&format!(
                " {name} {:.2} / {:.2} |",
                rate(f, fail_level),
                rate(p, pass_level)
            ));
        }
        eprintln!("{line}");
    }
    let b = 0.05_f64.ln_1p();
    let sd = 0.058;
    for (label, rate, head_pass, head_fail) in [
        ("clean", 0.0, None, None),
        ("10% of pairs, either side", 0.1, None, None),
        (
            "10% of pairs, the side that hurts",
            0.1,
            Some(true),
            Some(false),
        ),
        ("20% of pairs, either side", 0.2, None, None),
    ] {
        eprintln!("{label}: unchanged Passes / +10% Fails");
        for &(n, fail_level, pass_level) in &check_levels(&plan) {
            let reps = 4000;
            let mut line = format!("| {n:>2} pairs |");
            let aa: Vec<Vec<f64>> = (0..reps)
                .map(|_| pair_ratios(&mut rng, n, 0.0, sd, rate, head_pass))
                .collect();
            let slow: Vec<Vec<f64>> = (0..reps)
                .map(|_| pair_ratios(&mut rng, n, 0.10_f64.ln_1p(), sd, rate, head_fail))
                .collect();
            for (name, test) in &methods {
                let pass = aa.iter().filter(|d| test(d, b).1 <= pass_level).count();
                let fail = slow.iter().filter(|d| test(d, b).0 <= fail_level).count();
                line.push_str(&format!(
                    " {name} {:>3.0}% / {:>3.0}% |",
                    pass as f64 / reps as f64 * 100.0,
                    fail as f64 / reps as f64 * 100.0
                ));
            }
            eprintln!("{line}");
        }
    }
}

/// The table in `stats.rs`'s module comment for the sequential A/B mode: plain t against the robust
/// method, clean and with disturbed pairs, at 5% round noise, looks from 8 to 60 pairs, tolerance 5%,
/// 17 checks, one scenario at alpha 0.05.
#[test]
#[ignore = "a table for the docs (~4 min): cargo test --release -- --ignored robust_sequential_table --nocapture"]
fn robust_sequential_table() {
    let plan = plan(8, 60, 0.05);
    let at = Change {
        all: 0.05,
        ..Change::default()
    };
    let runs = 400;
    eprintln!(
        "| disturbed pairs | head side | method | any Fail | p99 Fails | every check Passes | mean pairs |"
    );
    for (label, rate, side) in [
        ("none", 0.0, None),
        ("10%, either round", 0.1, None),
        ("20%, either round", 0.2, None),
        ("10%, the head's round", 0.1, Some(true)),
    ] {
        let sim = disturbed(0.05, rate, side);
        for (i, (what, c)) in [
            ("unchanged", Change::default()),
            ("+5% everywhere (the tolerance)", at),
            ("+10% iteration p99", TAIL_10),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 900 + i as u64;
            let t = sequential_tally_t(&sim, seed, runs, &plan, 0.05, c);
            let r = sequential_tally(&sim, seed, runs, &plan, 0.05, c, None);
            for (method, x) in [("t", &t), ("robust", &r)] {
                eprintln!(
                    "| {label:<22} | {what:<30} | {method:<6} | {:>5.1}% | {:>5.1}% | {:>5.1}% | {:>4.1} |",
                    x.rate(x.any_fail) * 100.0,
                    x.rate(x.p99_fail) * 100.0,
                    x.rate(x.stops[Stop::Decided as usize]) * 100.0,
                    x.mean_pairs()
                );
            }
        }
    }
}

/// The same for the file mode: 3 current rounds against 5 baseline rounds, tolerance 10%, raw
/// latencies, 17 checks, alpha 0.05; one round disturbed on the side that hurts.
#[test]
#[ignore = "a table for the docs (~1 min): cargo test --release -- --ignored robust_file_table --nocapture"]
fn robust_file_table() {
    let sim = Sim::default();
    let runs = 200;
    eprintln!(
        "| change | disturbed | method | any Fail | p99 Fails | latency+throughput all Pass |"
    );
    for (i, (what, slow, dist)) in [
        ("unchanged", 0.0, (0, 0)),
        ("unchanged", 0.0, (0, 1)),
        ("unchanged", 0.0, (1, 0)),
        ("+10% (the tolerance)", 0.10, (0, 1)),
        ("+25%", 0.25, (0, 0)),
        ("+25%", 0.25, (1, 0)),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 950 + i as u64;
        let label = match dist {
            (0, 0) => "none",
            (0, _) => "1 current round",
            _ => "1 baseline round",
        };
        let t = super::stats::with_plain_t(|| {
            tally_disturbed(&sim, seed, runs, (5, 3), slow, 0.10, dist)
        });
        let r = tally_disturbed(&sim, seed, runs, (5, 3), slow, 0.10, dist);
        for (method, x) in [("t", &t), ("robust", &r)] {
            eprintln!(
                "| {what:<20} | {label:<16} | {method:<6} | {:>5.1}% | {:>5.1}% | {:>5.1}% |",
                x.rate(x.any_fail) * 100.0,
                x.rate(x.p99_fail) * 100.0,
                x.rate(x.latency_pass) * 100.0
            );
        }
    }
}
