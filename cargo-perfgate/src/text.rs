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
