//! The few distributions the gate needs: Student's t (CDF and quantile) and the one-sided Fisher
//! exact test. Hand-written (a log-gamma and an incomplete beta) to keep the
//! crate's build small; tested against tabulated values below.

/// ln Γ(x) for x > 0: shift x up to ≥ 10 with Γ(x+1) = xΓ(x), then Stirling's series (error < 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    debug_assert!(x > 0.0);
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift += x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv
        * (1.0 / 12.0
            - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0))));
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

/// ln C(n, k) for real n ≥ k ≥ 0.
pub fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// The regularised incomplete beta function I_x(a, b).
pub fn inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    // The continued fraction converges fast only below the mean; use the symmetry above it.
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction of I_x(a, b), evaluated with the modified Lentz method.
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut f = d;
    for m in 1..=500 {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        f *= c * d;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = c * d;
        f *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    f
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let tail = 0.5 * inc_beta(df / (df + t * t), df / 2.0, 0.5);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The upper tail P(T ≥ t), computed without the cancellation of `1 − t_cdf` for large t.
pub fn t_sf(t: f64, df: f64) -> f64 {
    t_cdf(-t, df)
}

fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln();
    ln.exp()
}

/// The t with P(T ≥ t) = `upper` (0 < upper < 1): Newton's method on the upper tail, kept inside a
/// bracket that bisection shrinks whenever a Newton step would leave it.
pub fn t_quantile_upper(upper: f64, df: f64) -> f64 {
    assert!(upper > 0.0 && upper < 1.0, "tail probability out of range");
    if upper > 0.5 {
        return -t_quantile_upper(1.0 - upper, df);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_sf(hi, df) > upper {
        lo = hi;
        hi *= 2.0;
        if hi > 1e12 {
            return hi;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..100 {
        let f = t_sf(t, df) - upper;
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        // Relative criterion on the probability: tails of 1e-5 need it.
        if f.abs() <= upper * 1e-12 || hi - lo <= 1e-12 * hi {
            break;
        }
        let next = t + f / t_pdf(t, df);
        t = if next > lo && next < hi {
            next
        } else {
            0.5 * (lo + hi)
        };
    }
    t
}

/// One-sided Fisher exact test on the 2×2 table `[[a, b], [c, d]]`: the probability, with the margins
/// fixed, of a top-left cell at least `a` (`greater`) or at most `a` (`!greater`).
pub fn fisher_one_sided(a: u64, b: u64, c: u64, d: u64, greater: bool) -> f64 {
    let row1 = a + b;
    let col1 = a + c;
    let n = a + b + c + d;
    let col2 = n - col1;
    let lo = row1.saturating_sub(col2);
    let hi = row1.min(col1);
    let ln_total = ln_choose(n as f64, row1 as f64);
    let term = |x: u64| {
        (ln_choose(col1 as f64, x as f64) + ln_choose(col2 as f64, (row1 - x) as f64) - ln_total)
            .exp()
    };
    let p: f64 = if greater {
        (a..=hi).map(term).sum()
    } else {
        (lo..=a).map(term).sum()
    };
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(X ≥ k) for X ~ Binomial(n, p) through the incomplete beta: checks `inc_beta` at integer
    /// arguments against a direct sum.
    fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
        if k == 0 {
            1.0
        } else if k > n {
            0.0
        } else {
            inc_beta(p, k as f64, (n - k + 1) as f64)
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!(ln_gamma(1.0).abs() < 1e-12 && ln_gamma(2.0).abs() < 1e-12);
        assert!(close(ln_gamma(5.0), 24.0_f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
        assert!(close(ln_gamma(101.0), 363.739_375_555_563_5, 1e-12));
    }

    #[test]
    fn t_distribution_matches_tables() {
        // Classic table values: t(0.975; 6) = 2.446912, t(0.995; 2) = 9.924843, t(0.95; 30) = 1.697261.
        assert!(close(t_quantile_upper(0.025, 6.0), 2.446_912, 1e-6));
        assert!(close(t_quantile_upper(0.005, 2.0), 9.924_843, 1e-6));
        assert!(close(t_quantile_upper(0.05, 30.0), 1.697_261, 1e-6));
        assert!(close(t_cdf(2.446_912, 6.0), 0.975, 1e-6));
        assert!(close(t_cdf(0.0, 3.0), 0.5, 1e-12));
        // df = 1 is Cauchy: P(T ≥ t) = 1/2 − atan(t)/π.
        let cauchy = 0.5 - 3.0_f64.atan() / std::f64::consts::PI;
        assert!(close(t_sf(3.0, 1.0), cauchy, 1e-10));
        // Deep tails stay accurate (the Holm levels of a big family).
        let t = t_quantile_upper(1e-5, 6.0);
        assert!(close(t_sf(t, 6.0), 1e-5, 1e-8));
        assert!(t_quantile_upper(0.9, 4.0) < 0.0);
    }

    #[test]
    fn binomial_tail_matches_direct_sum() {
        // 1 − (0.9^10 + 10·0.1·0.9^9 + 45·0.01·0.9^8)
        assert!(close(binomial_sf(3, 10, 0.1), 0.070_190_826_4, 1e-9));
        assert_eq!(binomial_sf(0, 10, 0.3), 1.0);
        assert_eq!(binomial_sf(11, 10, 0.3), 0.0);
        assert!(close(binomial_sf(10, 10, 0.5), 0.5_f64.powi(10), 1e-10));
    }

    #[test]
    fn fisher_matches_known_tables() {
        // The lady tasting tea: [[3, 1], [1, 3]], one-sided p = 17/70.
        assert!(close(
            fisher_one_sided(3, 1, 1, 3, true),
            17.0 / 70.0,
            1e-10
        ));
        assert!(close(
            fisher_one_sided(3, 1, 1, 3, false),
            69.0 / 70.0,
            1e-10
        ));
        // [[10, 0], [0, 10]]: 1 / C(20, 10).
        assert!(close(
            fisher_one_sided(10, 0, 0, 10, true),
            1.0 / 184_756.0,
            1e-9
        ));
        // Equal counts: P(X ≥ a) + P(X ≤ a) = 1 + P(X = a) > 1.
        let up = fisher_one_sided(5, 995, 5, 995, true);
        let down = fisher_one_sided(5, 995, 5, 995, false);
        assert!(up > 0.5 && down > 0.5 && up + down > 1.0);
    }
}
