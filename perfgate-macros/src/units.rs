//! The string forms of the attribute's values: durations (`"1.5s"`), percentages (`"0.5%"`) and
//! rates (`"100/s"`). Kept free of token types so the rules are easy to test on their own.

/// Nanoseconds per unit, longest suffix first so that `ms` is not read as `m` + `s`.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("μs", 1_000), // Greek mu, which some keyboards produce instead of the micro sign.
];

pub const DURATION_FORM: &str =
    "a number followed by a unit: us (or µs), ms, s, m or h, e.g. \"500ms\", \"1.5s\", \"2m\"";

/// A decimal written as `digits[.digits]`, kept exact: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    fn parse(s: &str) -> Option<Decimal> {
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (s, ""),
        };
        let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        // "1." and ".5" are rejected: the form documented everywhere is digits[.digits].
        if int.is_empty()
            || !digits_ok(int)
            || !digits_ok(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return None;
        }
        // 30 digits keeps `mantissa * unit` (unit < 2^42) far below u128::MAX.
        if int.len() + frac.len() > 30 {
            return None;
        }
        let mut mantissa: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + u128::from(b - b'0');
        }
        Some(Decimal {
            mantissa,
            scale: frac.len() as u32,
        })
    }

    fn to_f64(self) -> f64 {
        // One division of two integers gives the correctly rounded value ("1.1" → 1.1, not 1.1000000000000001).
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }
}

/// A parsed duration, exact in nanoseconds times `10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    scaled_nanos: u128,
    scale: u32,
}

impl Duration {
    pub fn parse(s: &str) -> Option<Duration> {
        let (number, unit) = DURATION_UNITS
            .iter()
            .find_map(|&(suffix, nanos)| s.strip_suffix(suffix).map(|n| (n, nanos)))?;
        let d = Decimal::parse(number)?;
        Some(Duration {
            scaled_nanos: d.mantissa * unit,
            scale: d.scale,
        })
    }

    /// Milliseconds, fractional (SLO thresholds: `"250us"` is 0.25 ms).
    pub fn as_ms_f64(self) -> f64 {
        self.scaled_nanos as f64 / (1_000_000f64 * 10f64.powi(self.scale as i32))
    }

    /// Whole milliseconds, or None when the duration is not a whole number of them (`"1.5ms"`)
    /// or does not fit: the spec's durations are integers and silently rounding would surprise.
    pub fn as_whole_ms(self) -> Option<u64> {
        let per_ms = 1_000_000u128 * 10u128.pow(self.scale);
        if self.scaled_nanos % per_ms != 0 {
            return None;
        }
        u64::try_from(self.scaled_nanos / per_ms).ok()
    }

    pub fn is_zero(self) -> bool {
        self.scaled_nanos == 0
    }
}

/// `"10%"`, `"0.5%"` → the number before the `%` (10.0, 0.5).
pub fn parse_percent(s: &str) -> Option<f64> {
    Decimal::parse(s.strip_suffix('%')?).map(Decimal::to_f64)
}

/// `"100/s"`, `"12.5/s"` → per second.
pub fn parse_per_second(s: &str) -> Option<f64> {
    Decimal::parse(s.strip_suffix("/s")?).map(Decimal::to_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Option<u64> {
        Duration::parse(s).and_then(Duration::as_whole_ms)
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("20s"), Some(20_000));
        assert_eq!(ms("1.5s"), Some(1_500));
        assert_eq!(ms("2m"), Some(120_000));
        assert_eq!(ms("1h"), Some(3_600_000));
        assert_eq!(ms("3000us"), Some(3));
        assert_eq!(ms("3000µs"), Some(3));
        assert_eq!(ms("0s"), Some(0));
        assert_eq!(Duration::parse("250us").unwrap().as_ms_f64(), 0.25);
        assert_eq!(Duration::parse("1.1s").unwrap().as_ms_f64(), 1100.0);
        assert_eq!(Duration::parse("40ms").unwrap().as_ms_f64(), 40.0);
        assert_eq!(Duration::parse("0.1ms").unwrap().as_ms_f64(), 0.1);
    }

    #[test]
    fn durations_that_are_not_whole_milliseconds_have_no_integer_value() {
        assert_eq!(ms("1.5ms"), None);
        assert_eq!(ms("250us"), None);
        assert_eq!(ms("1.0005s"), None);
        assert_eq!(ms("1.0000s"), Some(1000));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "", "10", "ms", "10 ms", "1.s", ".5s", "1..5s", "-1s", "1e3ms", "10sec", "10S", "1,5s",
            "5d",
        ] {
            assert_eq!(Duration::parse(bad), None, "{bad:?} should not parse");
        }
        // Larger than u64 milliseconds: parses, but has no integer value.
        assert_eq!(ms("99999999999999999999999h"), None);
        assert_eq!(Duration::parse("1234567890123456789012345678901s"), None);
    }

    #[test]
    fn percentages_and_rates() {
        assert_eq!(parse_percent("10%"), Some(10.0));
        assert_eq!(parse_percent("0.5%"), Some(0.5));
        assert_eq!(parse_percent("0.5"), None);
        assert_eq!(parse_percent("%"), None);
        assert_eq!(parse_percent("-1%"), None);
        assert_eq!(parse_per_second("100/s"), Some(100.0));
        assert_eq!(parse_per_second("12.5/s"), Some(12.5));
        assert_eq!(parse_per_second("100"), None);
        assert_eq!(parse_per_second("100/m"), None);
    }
}
