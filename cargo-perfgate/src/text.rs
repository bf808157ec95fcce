//! The words and numbers every report shares: load models, durations, the checks' names, outcomes,
//! changes with their intervals. One spelling, whatever the output.

use perfgate_runtime::format::{format_value, LoadModel, Metric, ScenarioSpec};

use crate::gate::{Decision, Outcome};

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
