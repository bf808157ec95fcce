//! The verdict table in GitHub-flavoured Markdown (`--markdown FILE`, `$GITHUB_STEP_SUMMARY`, PR comments).

use std::fmt::Write as _;

use perfgate_runtime::format::format_ms;

use crate::gate::Outcome;
use crate::report::table::summary_line;
use crate::results::RunResults;
use crate::slo::Verdict;
use crate::text::{
    cost_rows, decision_value, describe_attribution, describe_change, format_tolerance,
    outcome_str, COST_COLUMNS,
};

fn verdict_md(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅ pass",
        Verdict::Fail => "❌ **FAIL**",
        Verdict::Invalid => "⚠️ **INVALID**",
        Verdict::Error => "❌ **ERROR**",
    }
}

/// A code span (entities are not decoded inside one, so only pipes and backticks are dealt with).
fn code(s: &str) -> String {
    let s = s.replace('|', "\\|").replace(['\n', '\r'], " ");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Text safe inside a table cell or a list item: no pipes, no newlines, no stray HTML.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

pub fn render(report: &RunResults, run_url: Option<&str>) -> String {
    let mut m = String::new();
    let headline = match report.exit_code {
        0 => "✅ passed",
        1 => "❌ failed",
        3 => "⚠️ inconclusive",
        130 => "⚠️ interrupted",
        _ => "❌ error",
    };
    let _ = writeln!(m, "### perfgate: {headline}\n");
    m.push_str(
        "| scenario | iterations | rate/s | p50 | p99 | errors | CPU | peak RSS | verdict |\n",
    );
    m.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for s in &report.scenarios {
        let mut row = vec![code(&s.id)];
        match &s.result {
            Some(r) => {
                let it = &r.iterations;
                row.push(it.count.to_string());
                row.push(format!("{:.1}", it.throughput));
                row.push(format_ms(it.latency.p50_ms));
                row.push(format_ms(it.latency.p99_ms));
                row.push(format!("{:.2}%", it.error_rate() * 100.0));
            }
            None => row.extend((0..5).map(|_| "-".to_string())),
        }
        match &s.resources {
            Some(res) => {
                row.push(format!("{:.2} cores", res.cpu_util));
                row.push(format!(
                    "{:.1} MiB",
                    res.peak_rss_bytes as f64 / (1024.0 * 1024.0)
                ));
            }
            None => row.extend(["-".to_string(), "-".to_string()]),
        }
        row.push(verdict_md(s.verdict).to_string());
        let _ = writeln!(m, "| {} |", row.join(" | "));
    }

    let mut problems = Vec::new();
    for s in &report.scenarios {
        let at = s
            .spec
            .as_ref()
            .map(|sp| format!(" ({})", code(&format!("{}:{}", sp.file, sp.line))))
            .unwrap_or_default();
        for c in s.checks.iter().filter(|c| !c.passed) {
            problems.push(format!(
                "- {}: SLO {} breached — {}{at}",
                code(&s.id),
                code(&c.description),
                cell(&c.message)
            ));
        }
        if let Some(e) = &s.error {
            let mut lines = e.trim_end().lines();
            let first = lines.next().unwrap_or_default();
            let mut item = format!("- {}: {}{at}", code(&s.id), cell(first));
            // The rest (a log's last lines) as a code block inside the item.
            let rest: Vec<&str> = lines.collect();
            if !rest.is_empty() {
                item.push_str("\n  ~~~text");
                for l in rest {
                    item.push_str("\n  ");
                    item.push_str(&l.replace("~~~", "~ ~ ~"));
                }
                item.push_str("\n  ~~~");
            }
            problems.push(item);
        }
        if s.verdict == Verdict::Invalid {
            if let Some(reason) = s.result.as_ref().and_then(|r| r.invalid.as_deref()) {
                problems.push(format!(
                    "- {}: invalid measurement, neither pass nor fail: {}",
                    code(&s.id),
                    cell(reason)
                ));
            }
        }
    }
    if !problems.is_empty() {
        m.push('\n');
        for p in problems {
            let _ = writeln!(m, "{p}");
        }
    }

    let costed: Vec<_> = report
        .scenarios
        .iter()
        .filter_map(|s| s.cost.as_ref().map(|c| (s, c)))
        .collect();
    if !costed.is_empty() {
        m.push_str("\n#### Cost (valgrind)\n\n");
        let _ = writeln!(m, "| scenario | | {} |", COST_COLUMNS.join(" | "));
        m.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
        for (s, c) in &costed {
            for (i, (label, values)) in cost_rows(c).into_iter().enumerate() {
                let id = if i == 0 { code(&s.id) } else { String::new() };
                let _ = writeln!(m, "| {id} | {} | {} |", cell(&label), values.join(" | "));
            }
        }
    }
    m.push_str(&trends(report));

    let decisions: Vec<_> = report
        .scenarios
        .iter()
        .flat_map(|s| s.regressions.iter().map(move |d| (s, d)))
        .collect();
    if !decisions.is_empty() {
        m.push_str("\n#### Against the baseline\n\n");
        m.push_str("| scenario | metric | baseline | current | change [interval] | tolerance | outcome |\n");
        m.push_str("| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
        for (s, d) in &decisions {
            let outcome = match d.outcome {
                Outcome::Pass => "✅ pass".to_string(),
                Outcome::Fail => "❌ **regression**".to_string(),
                o => format!("⚠️ {}", outcome_str(o)),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                code(&s.id),
                code(&d.check_name()),
                decision_value(d.metric, d.baseline),
                decision_value(d.metric, d.current),
                describe_change(d),
                format_tolerance(d),
                outcome
            );
        }
        // Same-machine A/B: how many pairs each scenario took and why sampling stopped.
        let mut ab_lines = String::new();
        for s in &report.scenarios {
            if let Some(ab) = &s.ab {
                let _ = writeln!(
                    ab_lines,
                    "- {} measured against {} on this machine: {} pair{} of rounds (ABBA); {}",
                    code(&s.id),
                    code(ab.base_commit.get(..10).unwrap_or(&ab.base_commit)),
                    ab.pairs,
                    if ab.pairs == 1 { "" } else { "s" },
                    cell(&ab.stopped)
                );
            }
        }
        // The file gate: how busy the machine was during each round (a disturbed one shows).
        for s in report.scenarios.iter().filter(|s| s.ab.is_none()) {
            if let Some(rounds) = crate::text::machine_per_round(&s.contention) {
                let _ = writeln!(
                    ab_lines,
                    "- {} the machine per round: {}",
                    code(&s.id),
                    cell(&rounds)
                );
            }
        }
        if !ab_lines.is_empty() {
            m.push('\n');
            m.push_str(&ab_lines);
        }
        let mut changed = String::new();
        for (s, c) in &costed {
            if !c.attribution.is_empty() {
                let _ = writeln!(
                    changed,
                    "- {}: instructions per iteration changed most in: {}",
                    code(&s.id),
                    cell(&describe_attribution(&c.attribution))
                );
            }
        }
        if !changed.is_empty() {
            m.push('\n');
            m.push_str(&changed);
        }
        let notes: Vec<_> = decisions
            .iter()
            .filter(|(_, d)| d.outcome != Outcome::Pass && !d.note.is_empty())
            .collect();
        if !notes.is_empty() {
            m.push('\n');
            for (s, d) in notes {
                let _ = writeln!(
                    m,
                    "- {} {}: {}",
                    code(&s.id),
                    code(&d.check_name()),
                    cell(&d.note)
                );
            }
        }
    }

    let mut foot = vec![summary_line(report)];
    if let Some(c) = &report.environment.git_commit {
        foot.push(format!("commit {}", code(&c[..c.len().min(12)])));
    }
    if let Some(u) = run_url {
        foot.push(format!("[run]({u})"));
    }
    let _ = writeln!(m, "\n<sub>{}</sub>", foot.join(" · "));
    m
}

/// The leak and drift checks: slope and interval per hour, the span fitted, the allowance.
fn trends(report: &RunResults) -> String {
    let rows: Vec<_> = report
        .scenarios
        .iter()
        .flat_map(|s| s.trends.iter().map(move |t| (s, t)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut m = String::from("\n#### Leaks and drift\n\n");
    m.push_str(
        "| scenario | check | slope [interval] per hour | fitted over | allowance | outcome |\n",
    );
    m.push_str("| --- | --- | ---: | ---: | ---: | --- |\n");
    let mut notes = Vec::new();
    for (s, t) in rows {
        let metric = t.trend.metric;
        let (slope, over) = (t.slope(), t.fitted_over());
        let allowed = metric.format_rate(t.allowance_per_hour);
        let outcome = match t.outcome {
            Outcome::Pass => "✅ pass".to_string(),
            Outcome::Fail => "❌ **FAIL**".to_string(),
            o => format!("⚠️ {}", crate::text::trend_outcome_str(o)),
        };
        let _ = writeln!(
            m,
            "| {} | {}{} | {slope} | {over} | {} | {outcome} |",
            code(&s.id),
            code(&t.description),
            if t.implicit { " (default)" } else { "" },
            allowed.strip_prefix('+').unwrap_or(&allowed),
        );
        if t.outcome != Outcome::Pass {
            notes.push(format!(
                "- {} {}: {}",
                code(&s.id),
                code(metric.as_str()),
                cell(&t.message)
            ));
        }
    }
    if !notes.is_empty() {
        m.push('\n');
        for n in notes {
            let _ = writeln!(m, "{n}");
        }
    }
    m
}
