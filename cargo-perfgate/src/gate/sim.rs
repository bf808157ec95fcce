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
//! | none (A/A)                      |   0.0%   |   0.0%              |  79.5%                      |   0.5%      |
//! | +5% (within the 10% tolerance)  |   0.0%   |   0.0%              |   5.0%                      |   0.0%      |
//! | +10% (exactly the tolerance)    |   1.5%   |   0.0%              |   0.5%                      |   0.0%      |
//! | +15%                            |  53.0%   |  10.5%              |   0%                        |   0%        |
//! | +20%                            |  96.5%   |  40.0%              |   0%                        |   0%        |
//! | +25%                            | 100.0%   |  89.0%              |   0%                        |   0%        |
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

use perfgate_runtime::format::{ErrorCounts, LatencySummary, Metric, Stats};

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
        let shared = self.drift * rng.normal();
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

/// One simulated comparison: `nb` baseline rounds, `nc` current rounds slowed by `slowdown`.
pub fn simulate(
    sim: &Sim,
    rng: &mut Rng,
    (nb, nc): (usize, usize),
    slowdown: f64,
    tolerance: f64,
) -> Vec<Decision> {
    let baseline = sim.rounds(rng, nb, 0.0);
    let current = sim.rounds(rng, nc, slowdown);
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
    let mut rng = Rng::new(seed);
    let mut t = Tally {
        runs,
        ..Tally::default()
    };
    for _ in 0..runs {
        let d = simulate(sim, &mut rng, rounds, slowdown, tolerance);
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
