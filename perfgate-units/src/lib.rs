//! The string forms of perfgate's values: durations (`"1.5s"`), percentages (`"0.5%"`), rates (`"100/s"`),
//! counts (`"150k"`), sizes (`"512KiB"`), rates per hour of a size, count, duration or percentage
//! (`"1MiB/h"`), and the tier names. One grammar for the `#[perf_test]` attribute (at compile time), the
//! `[package.metadata.perfgate]` tables and the command line, so that a value accepted in one place is
//! accepted in all of them. No dependencies: the proc-macro crate compiles it too.

/// Nanoseconds per unit. Every suffix that ends another one comes after it (`ms` and `ns` before `s`,
/// `min` before `m` cannot clash but reads clearer there), since the first suffix that matches wins.
const DURATION_UNITS: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000), // Greek mu, which some keyboards produce instead of the micro sign.
    ("ms", 1_000_000),
    ("min", 60_000_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

pub const DURATION_FORM: &str =
    "a number followed by a unit: ns, us (or µs), ms, s, m (or min) or h, e.g. \"500ms\", \"1.5s\", \"2m\"";

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

    /// As a [`std::time::Duration`], rounded to the nearest nanosecond; None when it does not fit.
    pub fn to_std(self) -> Option<std::time::Duration> {
        let div = 10u128.pow(self.scale);
        let nanos = (self.scaled_nanos + div / 2) / div;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        Some(std::time::Duration::new(
            secs,
            (nanos % 1_000_000_000) as u32,
        ))
    }
}

/// A duration as written in a config file or on the command line (`"30s"`), as a std duration.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    Duration::parse(s.trim())?.to_std()
}

/// Seconds written as a bare number (`"3"`, `"1.5"`), which only the command line accepts (its
/// documented shorthand for `--duration 3s`).
pub fn parse_bare_seconds(s: &str) -> Option<std::time::Duration> {
    Duration::parse(&format!("{}s", s.trim()))?.to_std()
}

/// `"10%"`, `"0.5%"` → the number before the `%` (10.0, 0.5).
pub fn parse_percent(s: &str) -> Option<f64> {
    Decimal::parse(s.strip_suffix('%')?).map(Decimal::to_f64)
}

/// `"100/s"`, `"12.5/s"` → per second.
pub fn parse_per_second(s: &str) -> Option<f64> {
    Decimal::parse(s.strip_suffix("/s")?).map(Decimal::to_f64)
}

/// Count suffixes: thousands, millions, billions (SI, as instruction counts are usually written).
const COUNT_UNITS: [(&str, u32); 4] = [("k", 3), ("K", 3), ("M", 6), ("G", 9)];

pub const COUNT_FORM: &str =
    "a number, optionally followed by k, M or G (thousands, millions, billions), e.g. \"150k\", \"1.5M\" or \"40\"";

/// `"150k"`, `"1.5M"`, `"2G"`, `"40"`, `"12.5"` → the count (150000.0, …). Counts per iteration are
/// averages over a window, so a fraction is allowed.
pub fn parse_count(s: &str) -> Option<f64> {
    let s = s.trim();
    let (number, exp) = COUNT_UNITS
        .iter()
        .find_map(|&(suffix, exp)| s.strip_suffix(suffix).map(|n| (n, exp)))
        .unwrap_or((s, 0));
    let d = Decimal::parse(number)?;
    Some(d.to_f64() * 10f64.powi(exp as i32))
}

/// The test tiers, from the shallowest to the deepest: `--tier`, `PERFGATE_TIER`, the attribute's
/// `tier = [...]` and per-tier durations, and the `tiers` tables all accept these names and no other.
pub const TIERS: [&str; 3] = ["smoke", "nightly", "soak"];

/// Bytes per unit. Longer suffixes first, since the first that matches wins (`MiB` before `B`).
const SIZE_UNITS: [(&str, f64); 10] = [
    ("KiB", 1024.0),
    ("MiB", 1_048_576.0),
    ("GiB", 1_073_741_824.0),
    ("TiB", 1_099_511_627_776.0),
    ("kB", 1_000.0),
    ("KB", 1_000.0),
    ("MB", 1_000_000.0),
    ("GB", 1_000_000_000.0),
    ("TB", 1_000_000_000_000.0),
    ("B", 1.0),
];

pub const BYTES_FORM: &str =
    "a number followed by a unit: B, KiB, MiB, GiB (powers of 1024) or kB, MB, GB (powers of 1000), e.g. \"512KiB\"";

/// The time units a rate may be given per, in seconds.
const PER_UNITS: [(&str, f64); 4] = [("s", 1.0), ("min", 60.0), ("m", 60.0), ("h", 3600.0)];

pub const PER_FORM: &str = "per second, minute or hour: `/s`, `/min` (or `/m`), `/h`";

/// `"512KiB"`, `"1.5MB"` → bytes.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let (number, unit) = SIZE_UNITS
        .iter()
        .find_map(|&(suffix, bytes)| s.strip_suffix(suffix).map(|n| (n, bytes)))?;
    Some(Decimal::parse(number)?.to_f64() * unit)
}

/// Splits `"<amount>/<unit>"` into the amount and how many of `unit` make an hour.
fn per_hour(s: &str) -> Option<(&str, f64)> {
    let (amount, unit) = s.rsplit_once('/')?;
    let secs = PER_UNITS.iter().find(|(u, _)| *u == unit)?.1;
    Some((amount, 3600.0 / secs))
}

/// `"1MiB/h"`, `"200KB/min"` → bytes per hour.
pub fn parse_bytes_per_hour(s: &str) -> Option<f64> {
    let (amount, factor) = per_hour(s)?;
    Some(parse_bytes(amount)? * factor)
}

/// `"10/h"`, `"1/min"` → a count per hour.
pub fn parse_count_per_hour(s: &str) -> Option<f64> {
    let (amount, factor) = per_hour(s)?;
    Some(Decimal::parse(amount)?.to_f64() * factor)
}

/// `"5ms/h"`, `"1ms/min"` → milliseconds per hour.
pub fn parse_duration_per_hour(s: &str) -> Option<f64> {
    let (amount, factor) = per_hour(s)?;
    Some(Duration::parse(amount)?.as_ms_f64() * factor)
}

/// `"10%/h"`, `"0.5%/min"` → percent per hour.
pub fn parse_percent_per_hour(s: &str) -> Option<f64> {
    let (amount, factor) = per_hour(s)?;
    Some(parse_percent(amount)? * factor)
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
    fn nanoseconds_minutes_and_std_durations() {
        assert_eq!(ms("2min"), Some(120_000));
        assert_eq!(ms("5000000ns"), Some(5));
        assert_eq!(
            parse_duration("1.5s"),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            parse_duration(" 30s "),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("250us"),
            Some(std::time::Duration::from_micros(250))
        );
        assert_eq!(
            parse_duration("1h"),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration("30"),
            None,
            "bare numbers are the command line's only"
        );
        assert_eq!(
            parse_bare_seconds("3"),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(
            parse_bare_seconds("0.5"),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(parse_bare_seconds("3s"), None);
        assert_eq!(parse_duration("99999999999999999999999h"), None);
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

    #[test]
    fn counts_and_byte_sizes() {
        assert_eq!(parse_count("150k"), Some(150_000.0));
        assert_eq!(parse_count("1.5M"), Some(1_500_000.0));
        assert_eq!(parse_count("2G"), Some(2e9));
        assert_eq!(parse_count("40"), Some(40.0));
        assert_eq!(parse_count("12.5"), Some(12.5));
        assert_eq!(parse_count(" 97k "), Some(97_000.0));
        assert_eq!(parse_count("150K"), Some(150_000.0));
        for bad in ["", "k", "150 k", "-1", "1e5", "150kb", "1.k", "15x"] {
            assert_eq!(parse_count(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn sizes_and_rates_per_hour() {
        assert_eq!(parse_bytes("512KiB"), Some(524_288.0));
        assert_eq!(parse_bytes("1.5MB"), Some(1_500_000.0));
        assert_eq!(parse_bytes("1MiB"), Some(1_048_576.0));
        assert_eq!(parse_bytes("2kB"), Some(2000.0));
        assert_eq!(parse_bytes("10B"), Some(10.0));
        for bad in [
            "", "1", "512", "KiB", "16 KiB", "16kib", "-1B", "1.B", "MiB", "1 MiB", "1mib",
            "-1MiB", "1Mb", "1.MiB",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad:?} should not parse");
        }
        assert_eq!(parse_bytes_per_hour("1MiB/h"), Some(1_048_576.0));
        assert_eq!(parse_bytes_per_hour("1KB/min"), Some(60_000.0));
        assert_eq!(parse_bytes_per_hour("1KB/m"), Some(60_000.0));
        assert_eq!(parse_bytes_per_hour("1B/s"), Some(3600.0));
        assert_eq!(parse_bytes_per_hour("1MiB"), None);
        assert_eq!(parse_bytes_per_hour("1MiB/day"), None);
        assert_eq!(parse_count_per_hour("10/h"), Some(10.0));
        assert_eq!(parse_count_per_hour("1/min"), Some(60.0));
        assert_eq!(parse_count_per_hour("0.5/s"), Some(1800.0));
        assert_eq!(parse_count_per_hour("10"), None);
        assert_eq!(parse_count_per_hour("ten/h"), None);
        assert_eq!(parse_duration_per_hour("5ms/h"), Some(5.0));
        assert_eq!(parse_duration_per_hour("1ms/min"), Some(60.0));
        assert_eq!(parse_duration_per_hour("5/h"), None);
        assert_eq!(parse_percent_per_hour("10%/h"), Some(10.0));
        assert_eq!(parse_percent_per_hour("0.5%/min"), Some(30.0));
        assert_eq!(parse_percent_per_hour("10%"), None);
        assert_eq!(TIERS, ["smoke", "nightly", "soak"]);
    }
}
