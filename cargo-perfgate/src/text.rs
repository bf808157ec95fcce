//! The words and numbers every report shares: load models, durations, the checks' names, outcomes,
//! changes with their intervals. One spelling, whatever the output.

use perfgate_runtime::format::{format_value, LoadModel, Metric, ScenarioSpec};

use crate::gate::{Decision, Outcome};

/// Gregorian date of a day count since 1970-01-01 (the proleptic calendar arithmetic, by eras of 400 years).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a Gregorian date: the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Unix time in milliseconds as RFC 3339 UTC: `2026-11-27T07:15:00Z` (`.250Z` when not whole).
pub fn format_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let frac = match unix_ms % 1000 {
        0 => String::new(),
        ms => format!(".{ms:03}"),
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An RFC 3339 time (`2026-11-27T07:15:00Z`, `…T08:15:00.5+01:00`; `t` and a space also separate
/// date and time, `z` is `Z`) as Unix milliseconds; None when it is not one or lies before 1970.
pub fn parse_utc(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-');
    let y: i64 = digits(ymd.next()?, 4)?;
    let m: u32 = digits(ymd.next()?, 2)?;
    let d: u32 = digits(ymd.next()?, 2)?;
    // The zone: Z, or ±hh:mm.
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, mm) = zone[1..].split_once(':')?;
        let (h, mm): (i64, i64) = (digits(h, 2)?, digits(mm, 2)?);
        if h > 23 || mm > 59 {
            return None;
        }
        (c, sign * (h * 3600 + mm * 60))
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.splitn(3, ':');
    let hh: i64 = digits(parts.next()?, 2)?;
    let mi: i64 = digits(parts.next()?, 2)?;
    let ss: i64 = digits(parts.next()?, 2)?;
    let ms: i64 = if frac.is_empty() {
        0
    } else if frac.bytes().all(|b| b.is_ascii_digit()) {
        format!("{frac:0<3}")[..3].parse().ok()?
    } else {
        return None;
    };
    let month_days = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m)
        || d == 0
        || d > month_days[m as usize - 1]
        || hh > 23
        || mi > 59
        || ss > 60
    {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mi * 60 + ss - offset_secs;
    u64::try_from(secs * 1000 + ms).ok()
}

/// A number of exactly `len` ASCII digits.
fn digits<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A load model as users declare it: `open 200/s`, `closed 8 users, think 100ms`.
pub fn describe_load(load: &LoadModel) -> String {
    match load {
        LoadModel::Open { rate } => format!("open {}/s", trim_float(*rate)),
        LoadModel::Closed { users, think_ms } if *think_ms > 0 => {
            format!("closed {users} users, think {}", whole_ms(*think_ms))
        }
        LoadModel::Closed { users, .. } => format!("closed {users} users"),
        LoadModel::Ramping { stages } => {
            let s: Vec<String> = stages
                .iter()
                .map(|s| {
                    format!(
                        "{}/s over {}",
                        trim_float(s.target_rate),
                        whole_ms(s.duration_ms)
                    )
                })
                .collect();
            format!("ramp {}", s.join(", "))
        }
    }
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

pub fn describe_duration(spec: &ScenarioSpec) -> String {
    if spec.warmup_ms == 0 {
        format!("{}, no warmup", whole_ms(spec.duration_ms))
    } else {
        format!(
            "{} + {} warmup",
            whole_ms(spec.duration_ms),
            whole_ms(spec.warmup_ms)
        )
    }
}

/// A declared duration as users write it: `20s`, `1500ms`.
fn whole_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `+12.3%`, or percentage points for the error rate.
pub fn format_change(metric: Metric, v: f64) -> String {
    if metric == Metric::Errors {
        format!("{:+.2}pp", v * 100.0)
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

/// A decision's change with its interval: `+12.3% [+8.1%, +16.0%]`.
pub fn describe_change(d: &Decision) -> String {
    match (d.change, d.change_low, d.change_high) {
        (Some(c), Some(lo), Some(hi)) => format!(
            "{} [{}, {}]",
            format_change(d.metric, c),
            format_change(d.metric, lo),
            format_change(d.metric, hi)
        ),
        (Some(c), _, _) => format_change(d.metric, c),
        _ => "-".to_string(),
    }
}

/// A check's tolerance: `10%`, or percentage points for the error rate.
pub fn format_tolerance(d: &Decision) -> String {
    if d.metric == Metric::Errors {
        format!("{:.2}pp", d.tolerance * 100.0)
    } else {
        format!("{:.0}%", d.tolerance * 100.0)
    }
}

/// The outcome of a regression check, one word for every report.
pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "REGRESSED",
        Outcome::Inconclusive => "inconclusive",
        Outcome::NotComparable => "not comparable",
    }
}

/// A value of a decision, `-` when absent.
pub fn decision_value(metric: Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format_value(metric, v))
}

/// One line for a decision: `p99 12.0ms → 14.1ms, +17.5% [+9.0%, +26.0%] (tolerance 10%): REGRESSED`.
pub fn describe_decision(d: &Decision) -> String {
    format!(
        "{} {} → {}, {} (tolerance {}): {}",
        d.check_name(),
        decision_value(d.metric, d.baseline),
        decision_value(d.metric, d.current),
        describe_change(d),
        format_tolerance(d),
        outcome_str(d.outcome)
    )
}

/// Escapes text for XML and HTML (element content and double-quoted attributes).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 (ANSI escapes in a log tail, say).
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_round_trip_and_bad_ones_are_refused() {
        // 2026-11-27 07:15:00 UTC
        let t = 1_795_763_700_000;
        assert_eq!(format_utc(t), "2026-11-27T07:15:00Z");
        assert_eq!(format_utc(t + 250), "2026-11-27T07:15:00.250Z");
        assert_eq!(parse_utc("2026-11-27T07:15:00Z"), Some(t));
        assert_eq!(parse_utc("2026-11-27 07:15:00.25z"), Some(t + 250));
        assert_eq!(parse_utc("2026-11-27T08:15:00+01:00"), Some(t));
        assert_eq!(parse_utc("2026-11-27T02:15:00-05:00"), Some(t));
        assert_eq!(parse_utc("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for day in [-1000, 0, 11_016, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        for bad in [
            "2026-11-27T07:15:00",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "27/11/2026 07:15",
            "2026-11-27T07:15Z",
            "",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
