//! The slope of a series over time (a service's memory, its open descriptors, a latency per
//! interval) with an interval that holds although neighbouring samples are alike. Pure: no I/O.
//!
//! The estimate is Theil–Sen's: the median of the slopes between every pair of points. A step in
//! the series (an allocator taking a new arena, a pool growing once) or a few wild points move it
//! little, where least squares would follow them.
//!
//! The interval comes from a bootstrap of the residuals that keeps their autocorrelation. The
//! samples are autocorrelated: memory a second from now is memory now plus a little, so a bootstrap
//! that resampled points one by one would treat 100 samples of one slow wander as 100 independent
//! witnesses and give an interval far too narrow. The resamples add the fitted line back, so the
//! interval is that of the slope.
//!
//! Long series are averaged into at most [`MAX_POINTS`] bins first (each resample costs n²/2
//! slopes). The generator is seeded, so one series always gives one answer.
//!
//! Why not a moving-block bootstrap of the residuals: tried first, its 95% interval put a flat
//! AR(1) series with ρ = 0.8 above zero in 9.5% of 100-point series (2.5% nominal), because blocks
//! cut the slow wander a slope is made of. What is used instead is an AR(1) sieve: the residuals'
//! lag-1 autocorrelation ρ (bias-corrected, plus one standard error, since underestimating it is
//! what narrows the interval), their innovations drawn with replacement and run through the same
//! recursion. Checks decide on the 99% interval ([`CONFIDENCE`]).
//!
//! Calibration (`trend_tables`, 1000 series per cell, 99% interval, lower bound above zero):
//!
//! | points | flat, ρ = 0 | 0.5 | 0.8 | 0.9 | rise of 3 sd, ρ = 0 | 0.5 | 0.8 | rise of 10 sd, ρ = 0.8 |
//! | --- | --- | --- | --- | --- | --- | --- | --- | --- |
//! | 30 | 0.9% | 0.9% | 2.5% | 4.9% | 88.8% | 39.5% | 28.9% | 95.0% |
//! | 40 | 0.5% | 0.8% | 2.2% | 4.2% | 95.2% | 49.2% | 30.0% | 93.7% |
//! | 60 | 0.4% | 0.6% | 0.8% | 2.4% | 99.8% | 64.8% | 28.0% | 95.3% |
//!
//! So a false alarm stays below 5% even for a slow wander (ρ = 0.9 between points) at the fewest
//! points, and a leak that moves the series by ten times its noise is found almost always. What a
//! check does with a certain slope (an allowance, and a floor of growth below which a service's own
//! steps explain it) is `slo.rs`'s business.

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// The confidence of the interval a check decides on: it fails only when the whole 99% interval
/// lies above the allowance.
pub const CONFIDENCE: f64 = 0.99;

/// Series longer than this are averaged into this many bins before the fit.
pub const MAX_POINTS: usize = 60;
/// Bootstrap resamples behind an interval.
pub const RESAMPLES: usize = 400;
/// The fewest points a slope is fitted on: with fewer, the autocorrelation is too poorly known and
/// the interval too often too narrow (see the calibration above).
pub const MIN_POINTS: usize = 30;

/// A fitted line with the interval of its slope. Time in seconds, values in the series' unit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Fit {
    /// Units per second.
    pub slope: f64,
    /// The slope's interval at `confidence`.
    pub lo: f64,
    pub hi: f64,
    pub confidence: f64,
    /// The fitted line's value at `t0`.
    pub level: f64,
    /// The span fitted.
    pub t0: f64,
    pub t1: f64,
    /// Points fitted (after binning), and the residuals' lag-1 autocorrelation the interval
    /// allowed for (bias-corrected).
    pub points: usize,
    pub rho: f64,
}

impl Fit {
    /// The fitted line at `t`.
    pub fn at(&self, t: f64) -> f64 {
        self.level + self.slope * (t - self.t0)
    }

    /// The span in seconds.
    pub fn secs(&self) -> f64 {
        self.t1 - self.t0
    }
}

/// Fits `y` against `t` (same length, `t` increasing). None when there are fewer than
/// [`MIN_POINTS`] points (after dropping non-finite values) or no time passes.
pub fn fit(t: &[f64], y: &[f64], confidence: f64, seed: u64) -> Option<Fit> {
    fit_with(t, y, confidence, seed, RESAMPLES)
}

fn fit_with(t: &[f64], y: &[f64], confidence: f64, seed: u64, resamples: usize) -> Option<Fit> {
    let (t, y): (Vec<f64>, Vec<f64>) = t
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    let (t, y) = bin(&t, &y, MAX_POINTS);
    let n = t.len();
    if n < MIN_POINTS || t[n - 1] <= t[0] {
        return None;
    }
    let t0 = t[0];
    let pairs = Pairs::new(&t);
    let mut buf = Vec::with_capacity(pairs.len());
    let slope = pairs.median_slope(&y, &mut buf);
    let mut offsets: Vec<f64> = t
        .iter()
        .zip(&y)
        .map(|(t, y)| y - slope * (t - t0))
        .collect();
    let level = median(&mut offsets);
    let residuals: Vec<f64> = t
        .iter()
        .zip(&y)
        .map(|(t, y)| y - level - slope * (t - t0))
        .collect();
    let sieve = Sieve::new(&residuals);
    let (lo, hi) = if residuals.iter().all(|e| *e == 0.0) {
        // An exact line (a constant count, most often): nothing to resample.
        (slope, slope)
    } else {
        let mut rng = Rng::new(seed);
        let mut resampled = vec![0.0; n];
        let mut slopes: Vec<f64> = (0..resamples)
            .map(|_| {
                sieve.resample(&mut rng, &mut resampled);
                // The resample is the fitted line plus new residuals; a line's slope adds
                // exactly to every pairwise slope, so only the residuals' slope needs computing.
                slope + pairs.median_slope(&resampled, &mut buf)
            })
            .collect();
        slopes.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let i = ((resamples as f64 + 1.0) * p).floor() as usize;
            slopes[i.clamp(1, resamples) - 1]
        };
        let tail = (1.0 - confidence) / 2.0;
        (q(tail), q(1.0 - tail))
    };
    Some(Fit {
        slope,
        lo: lo.min(slope),
        hi: hi.max(slope),
        confidence,
        level,
        t0,
        t1: t[n - 1],
        points: n,
        rho: sieve.rho,
    })
}

/// Averages consecutive points into `max` bins of (nearly) equal count, when there are more.
fn bin(t: &[f64], y: &[f64], max: usize) -> (Vec<f64>, Vec<f64>) {
    if t.len() <= max {
        return (t.to_vec(), y.to_vec());
    }
    let n = t.len();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (0..max)
        .map(|b| {
            let r = b * n / max..(b + 1) * n / max;
            (mean(&t[r.clone()]), mean(&y[r]))
        })
        .unzip()
}

/// Every pair of points with distinct times, with the inverse of their distance.
struct Pairs(Vec<(u32, u32, f64)>);

impl Pairs {
    fn new(t: &[f64]) -> Pairs {
        let mut out = Vec::with_capacity(t.len() * (t.len() - 1) / 2);
        for i in 0..t.len() {
            for j in i + 1..t.len() {
                let dt = t[j] - t[i];
                if dt > 0.0 {
                    out.push((i as u32, j as u32, 1.0 / dt));
                }
            }
        }
        Pairs(out)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Theil–Sen: the median of the pairwise slopes of `y`.
    fn median_slope(&self, y: &[f64], buf: &mut Vec<f64>) -> f64 {
        buf.clear();
        buf.extend(
            self.0
                .iter()
                .map(|&(i, j, inv)| (y[j as usize] - y[i as usize]) * inv),
        );
        median(buf)
    }
}

/// The middle value (the upper one of an even count), reordering `v`.
fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// An AR(1) sieve of residuals: their lag-1 autocorrelation and the innovations that remain once
/// it is taken out, from which new residual series with the same dependence are drawn.
struct Sieve {
    rho: f64,
    innovations: Vec<f64>,
}

impl Sieve {
    fn new(e: &[f64]) -> Sieve {
        let n = e.len();
        let energy: f64 = e.iter().map(|x| x * x).sum();
        let raw = if energy > 0.0 {
            e.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / energy
        } else {
            0.0
        };
        // The lag-1 estimate is biased towards zero by about (1 + 3ρ)/n in a short series
        // (Kendall), and an underestimate narrows the interval exactly when the wander is slow
        // (the slope's variance grows like (1 + ρ)/(1 − ρ)): so the bias-corrected estimate plus
        // one standard error. A negative correlation is taken as none, which only widens it.
        let rho = if raw > 0.0 {
            let se = ((1.0 - raw * raw) / n as f64).sqrt();
            (raw + (1.0 + 3.0 * raw) / n as f64 + se).min(0.98)
        } else {
            0.0
        };
        let mut innovations: Vec<f64> = e.windows(2).map(|w| w[1] - rho * w[0]).collect();
        let mean = innovations.iter().sum::<f64>() / innovations.len().max(1) as f64;
        innovations.iter_mut().for_each(|z| *z -= mean);
        Sieve { rho, innovations }
    }

    /// Fills `out` with a new AR(1) series: innovations drawn with replacement, started from the
    /// stationary spread and run in for a while so the start is forgotten.
    fn resample(&self, rng: &mut Rng, out: &mut [f64]) {
        let z = &self.innovations;
        let mut draw = || z[rng.below(z.len())];
        let mut x = draw() / (1.0 - self.rho * self.rho).sqrt();
        for _ in 0..BURN_IN {
            x = self.rho * x + draw();
        }
        for o in out.iter_mut() {
            x = self.rho * x + draw();
            *o = x;
        }
    }
}

/// Steps run before a resampled series starts: ρ^50 is below 0.4 even at ρ = 0.98.
const BURN_IN: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat AR(1) series with unit-variance noise, plus `slope` per step.
    fn ar1(rng: &mut Rng, n: usize, rho: f64, slope: f64) -> (Vec<f64>, Vec<f64>) {
        let scale = (1.0 - rho * rho).sqrt();
        let mut x = rng.normal();
        let t: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let y = t
            .iter()
            .map(|t| {
                x = rho * x + scale * rng.normal();
                x + slope * t
            })
            .collect();
        (t, y)
    }

    /// Of `series` simulated series, how many have their interval's lower bound above zero.
    fn above_zero(
        seed: u64,
        series: usize,
        (n, rho, slope): (usize, f64, f64),
        resamples: usize,
    ) -> usize {
        let mut rng = Rng::new(seed);
        (0..series)
            .filter(|i| {
                let (t, y) = ar1(&mut rng, n, rho, slope);
                fit_with(&t, &y, CONFIDENCE, *i as u64, resamples)
                    .unwrap()
                    .lo
                    > 0.0
            })
            .count()
    }

    #[test]
    fn an_exact_line_has_its_slope_and_an_empty_interval() {
        let t: Vec<f64> = (0..30).map(|i| i as f64 * 0.25).collect();
        let y: Vec<f64> = t.iter().map(|t| 100.0 + 8.0 * t).collect();
        let f = fit(&t, &y, CONFIDENCE, 1).unwrap();
        assert_eq!((f.slope, f.lo, f.hi), (8.0, 8.0, 8.0));
        assert_eq!(f.level, 100.0);
        assert_eq!(f.at(2.0), 116.0);
        assert_eq!((f.points, f.t0, f.t1), (30, 0.0, 7.25));
        // A constant count: zero, exactly.
        let flat = vec![12.0; 30];
        let f = fit(&t, &flat, CONFIDENCE, 1).unwrap();
        assert_eq!((f.slope, f.lo, f.hi), (0.0, 0.0, 0.0));
    }

    #[test]
    fn too_few_points_or_no_time_fit_nothing() {
        let t: Vec<f64> = (0..MIN_POINTS - 1).map(|i| i as f64).collect();
        assert!(fit(&t, &t, CONFIDENCE, 1).is_none());
        let same = vec![5.0; 40];
        assert!(fit(&same, &same, CONFIDENCE, 1).is_none());
        // NaN values are dropped, not fitted.
        let t: Vec<f64> = (0..MIN_POINTS + 1).map(|i| i as f64).collect();
        let mut y = t.clone();
        y[3] = f64::NAN;
        assert_eq!(fit(&t, &y, CONFIDENCE, 1).unwrap().points, MIN_POINTS);
    }

    #[test]
    fn a_step_and_outliers_barely_move_the_estimate() {
        // One early step (an allocator growing its arena) in a flat series: least squares would
        // report a steep slope; Theil–Sen stays near zero and its interval says so.
        let t: Vec<f64> = (0..MAX_POINTS).map(|i| i as f64).collect();
        let y: Vec<f64> = t.iter().map(|&t| if t < 6.0 { 0.0 } else { 1.0 }).collect();
        let f = fit(&t, &y, CONFIDENCE, 7).unwrap();
        assert!(f.slope.abs() < 1e-9, "{f:?}");
        let mut y: Vec<f64> = t.iter().map(|t| 2.0 * t).collect();
        for i in [5, 30, 47] {
            y[i] += 1e6;
        }
        let f = fit(&t, &y, CONFIDENCE, 7).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn long_series_are_binned_and_fits_repeat() {
        let t: Vec<f64> = (0..1000).map(|i| i as f64 * 0.1).collect();
        let mut rng = Rng::new(3);
        let y: Vec<f64> = t.iter().map(|t| 50.0 + 0.5 * t + rng.normal()).collect();
        let a = fit(&t, &y, CONFIDENCE, 11).unwrap();
        assert_eq!(a.points, MAX_POINTS);
        assert!(
            a.lo < 0.5 && 0.5 < a.hi && a.lo > 0.4 && a.hi < 0.6,
            "{a:?}"
        );
        assert_eq!(
            a,
            fit(&t, &y, CONFIDENCE, 11).unwrap(),
            "seeded: the same answer"
        );
    }

    #[test]
    fn the_sieve_finds_the_autocorrelation() {
        let mut rng = Rng::new(5);
        let (_, white) = ar1(&mut rng, 60, 0.0, 0.0);
        let (_, slow) = ar1(&mut rng, 60, 0.9, 0.0);
        assert!(Sieve::new(&white).rho < 0.3, "{}", Sieve::new(&white).rho);
        assert!(Sieve::new(&slow).rho > 0.6, "{}", Sieve::new(&slow).rho);
        assert_eq!(Sieve::new(&[0.0; 10]).rho, 0.0);
    }

    #[test]
    fn false_alarms_on_flat_autocorrelated_series_stay_near_the_nominal_rate() {
        // 100 flat series per case (fewer resamples than a run uses, to keep the suite fast). The
        // calibration table puts the rate near 1% here (the one-sided nominal rate is 0.5%); 6 or
        // more of 100 would mean a rate well above 2% (binomial tail below 1%).
        for (n, rho) in [(30, 0.0), (40, 0.5), (60, 0.8)] {
            let alarms = above_zero(100, 100, (n, rho, 0.0), 200);
            assert!(
                alarms < 6,
                "rho {rho}, n {n}: {alarms} of 100 flat series alarmed"
            );
        }
    }

    #[test]
    fn slopes_are_found() {
        // A rise of 4 noise standard deviations over the series in independent noise, and of 6 in
        // a moderate wander: found in most series.
        for (n, rho, rise) in [(30, 0.0, 4.0), (60, 0.5, 6.0)] {
            let found = above_zero(200, 60, (n, rho, rise / n as f64), 200);
            assert!(found >= 45, "rho {rho}, n {n}: found in {found} of 60");
        }
    }

    /// `cargo test -p cargo-perfgate --release --lib trend_tables -- --ignored --nocapture`
    #[test]
    #[ignore = "calibration tables: minutes in a debug build"]
    fn trend_tables() {
        println!("false alarms (lower bound > 0) of 1000 flat AR(1) series, 99% interval:");
        for n in [30, 40, 60] {
            for rho in [0.0, 0.5, 0.8, 0.9] {
                let a = above_zero(1, 1000, (n, rho, 0.0), RESAMPLES);
                println!("  n {n:3}  rho {rho:.1}: {:.1}%", a as f64 / 10.0);
            }
        }
        println!("power (lower bound > 0) of 1000 series rising k noise sd over the series:");
        for n in [30, 40, 60] {
            for rho in [0.0, 0.5, 0.8] {
                for k in [1.0, 3.0, 10.0] {
                    let a = above_zero(2, 1000, (n, rho, k / n as f64), RESAMPLES);
                    println!(
                        "  n {n:3}  rho {rho:.1}  rise {k:4}: {:.1}%",
                        a as f64 / 10.0
                    );
                }
            }
        }
    }
}
