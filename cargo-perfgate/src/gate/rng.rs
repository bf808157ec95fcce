//! The seeded generator of the gate's resampling and of its simulations.

/// SplitMix64: a tiny, well-mixed, seedable generator (enough for resampling and simulations, not
/// for secrets). Seeded, so every decision made with it repeats on the same input.
pub struct Rng {
    state: u64,
    #[cfg_attr(not(test), allow(dead_code))]
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

    /// Uniform in `0..n` (n > 0), by a 128-bit multiply: no modulo bias worth naming.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in (0, 1), never 0 (the normal below takes its log).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    #[cfg(test)]
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

    #[cfg(test)]
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
