//! The words and numbers every report shares: load models, durations, the checks' names, outcomes,
//! changes with their intervals. One spelling, whatever the output.

use perfgate_runtime::format::{format_value, LoadModel, Metric, ScenarioSpec};

use crate::cost::{CostMeasurement, FunctionChange, PerRequest};
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

/// A declared duration as users write it: `20s`, `1500ms`, `5m`, `2h`.
fn whole_ms(ms: u64) -> String {
    if ms >= 3_600_000 && ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms >= 120_000 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A length of time at a glance: `0.8s`, `45s`, `1m50s`, `2h`, `1h30m`.
pub fn describe_secs(secs: f64) -> String {
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// A confidence level: `99%`, `99.9%`.
pub fn describe_confidence(c: f64) -> String {
    let pct = c * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// The outcome of a trend check, one word for every report.
pub fn trend_outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive | Outcome::NotComparable => "inconclusive",
    }
}

/// `+12.3%`, or percentage points for the error rate; cost figures, which move by hundredths of a
/// percent, with two decimals.
pub fn format_change(metric: Metric, v: f64) -> String {
    if metric == Metric::Errors {
        format!("{:+.2}pp", v * 100.0)
    } else if metric.is_cost() {
        format!("{:+.2}%", v * 100.0)
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

/// A check's tolerance: `10%`, `7.5%`, percentage points for the error rate, and for the counted
/// cost figures (allocations, syscalls) the count per iteration: `+0.5/iter`.
pub fn format_tolerance(d: &Decision) -> String {
    match d.metric {
        Metric::Errors => format!("{:.2}pp", d.tolerance * 100.0),
        Metric::Allocs | Metric::Syscalls => {
            let per = if d.request.is_some() { "req" } else { "iter" };
            let abs = d.tolerance * d.baseline.unwrap_or(0.0);
            format!("+{}/{per}", (abs * 100.0).round() / 100.0)
        }
        _ => {
            let pct = d.tolerance * 100.0;
            let resolves = d
                .resolves
                .map(|r| format!(" (resolves {})", describe_resolution(r)))
                .unwrap_or_default();
            if (pct - pct.round()).abs() < 1e-9 {
                format!("{pct:.0}%{resolves}")
            } else {
                format!("{pct:.1}%{resolves}")
            }
        }
    }
}

/// "4.1%": the smallest change a check resolves, one decimal below 10%.
pub fn describe_resolution(r: f64) -> String {
    let p = r * 100.0;
    if p < 10.0 {
        format!("{p:.1}%")
    } else if p < 1000.0 {
        format!("{p:.0}%")
    } else {
        ">999%".to_string()
    }
}

/// The cost table's columns after the scenario.
pub const COST_COLUMNS: [&str; 4] = ["instructions", "allocs", "alloc bytes", "syscalls"];

/// The rows of a scenario's cost figures: per iteration, then per named request when each was
/// counted in its own window (with one request per iteration they are the iteration's).
pub fn cost_rows(m: &CostMeasurement) -> Vec<(String, [String; 4])> {
    let row = |f: &crate::cost::CostFigures| {
        Metric::COST.map(|metric| {
            f.value(metric)
                .map_or("-".into(), |v| format_value(metric, v))
        })
    };
    let mut out = vec![(format!("per iteration ({})", m.iterations), row(&m.figures))];
    if m.per_request == PerRequest::Windows {
        for (name, f) in &m.requests {
            out.push((format!("per `{name}`"), row(f)));
        }
    }
    out
}

/// `+2.24k instr/iter in app::burn, -120 instr/iter in hyper::…`
pub fn describe_attribution(changes: &[FunctionChange]) -> String {
    changes
        .iter()
        .map(FunctionChange::describe)
        .collect::<Vec<_>>()
        .join(", ")
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
/// `a, b, c`, or `none` for an empty list: how messages list what there is to choose from.
pub fn list_or_none<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

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

/// "1: 0.2× load, PSI 8%, steal 0%, load avg 0.6 · 2: …": the machine during each round, or None
/// when no round was measured.
pub fn machine_per_round(rounds: &[Option<crate::gate::contention::Contention>]) -> Option<String> {
    if rounds.iter().all(Option::is_none) {
        return None;
    }
    Some(
        rounds
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Some(c) => format!("{}: {}", i + 1, c.describe()),
                None => format!("{}: not measured", i + 1),
            })
            .collect::<Vec<_>>()
            .join(" · "),
    )
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
