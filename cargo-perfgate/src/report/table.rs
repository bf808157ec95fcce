//! The terminal: the results table, the regression table, the summary lines, `list`'s table and
//! `calibrate`'s floors.

use std::path::Path;

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use perfgate_runtime::format::{self, format_ms, ScenarioSpec};

use crate::cost::CostFigures;
use crate::gate::cost::CostFloors;
use crate::gate::sequential::NoiseFloor;
use crate::gate::{Decision, Outcome};
use crate::results::{BuildPart, ListedScenario, RunResults, ScenarioRun};
use crate::slo::Verdict;
use crate::text::{
    cost_rows, describe_attribution, describe_change, describe_duration, describe_load,
    format_tolerance, outcome_str, COST_COLUMNS,
};

pub(crate) fn new_table(color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

fn verdict_cell(v: Verdict) -> Cell {
    let c = Cell::new(v.as_str());
    match v {
        Verdict::Pass => c.fg(Color::Green),
        Verdict::Fail | Verdict::Error => c.fg(Color::Red).add_attribute(Attribute::Bold),
        Verdict::Invalid => c.fg(Color::Yellow).add_attribute(Attribute::Bold),
    }
}

fn num(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// The results table, then a line per failed check, error and invalid measurement, then the summary.
pub fn render_human(report: &RunResults, results_path: Option<&Path>, color: bool) -> String {
    // A run of the cost pass alone (`--cost-only`) has no load figures: its cost table carries
    // the verdicts instead.
    let cost_only = report.scenarios.iter().all(|s| s.result.is_none())
        && report.scenarios.iter().any(|s| s.cost.is_some());
    let mut t = new_table(color);
    t.set_header([
        "scenario",
        "iterations",
        "rate/s",
        "p50",
        "p95",
        "p99",
        "errors",
        "CPU",
        "peak RSS",
        "verdict",
    ]);
    for s in &report.scenarios {
        let mut row = vec![Cell::new(&s.id)];
        match &s.result {
            Some(r) => {
                let it = &r.iterations;
                row.push(num(it.count.to_string()));
                row.push(num(format!("{:.1}", it.throughput)));
                row.push(num(format_ms(it.latency.p50_ms)));
                row.push(num(format_ms(it.latency.p95_ms)));
                row.push(num(format_ms(it.latency.p99_ms)));
                row.push(num(format!("{:.2}%", it.error_rate() * 100.0)));
            }
            None => row.extend((0..6).map(|_| num("-".into()))),
        }
        match &s.resources {
            Some(res) => {
                row.push(num(format!("{:.2} cores", res.cpu_util)));
                row.push(num(format!(
                    "{:.1} MiB",
                    res.peak_rss_bytes as f64 / (1024.0 * 1024.0)
                )));
            }
            None => row.extend([num("-".into()), num("-".into())]),
        }
        row.push(verdict_cell(s.verdict));
        t.add_row(row);
    }
    let mut out = if cost_only {
        String::new()
    } else {
        format!("{t}\n")
    };
    out.push_str(&render_cost(report, color, cost_only));
    let (red, yellow, dim) = if color {
        (
            anstyle::AnsiColor::Red.on_default().bold(),
            anstyle::AnsiColor::Yellow.on_default().bold(),
            anstyle::Style::new().dimmed(),
        )
    } else {
        (
            anstyle::Style::new(),
            anstyle::Style::new(),
            anstyle::Style::new(),
        )
    };
    for s in &report.scenarios {
        let at = s
            .spec
            .as_ref()
            .map(|sp| format!(" ({}:{})", sp.file, sp.line))
            .unwrap_or_default();
        for c in s.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!(
                "{red}✗{red:#} {}: {} — {}{dim}{at}{dim:#}\n",
                s.id, c.description, c.message
            ));
        }
        if let Some(e) = &s.error {
            let label = if s.verdict == Verdict::Error {
                "error"
            } else {
                "failed"
            };
            out.push_str(&format!(
                "{red}✗{red:#} {}: {label}: {}\n",
                s.id,
                indent_tail(e)
            ));
        }
        if s.verdict == Verdict::Invalid {
            if let Some(reason) = s.result.as_ref().and_then(|r| r.invalid.as_deref()) {
                out.push_str(&format!(
                    "{yellow}!{yellow:#} {}: invalid measurement, neither pass nor fail: {reason}\n",
                    s.id
                ));
            }
        }
    }
    out.push_str(&render_trends(report, color));
    out.push_str(&shard_lines(report));
    out.push_str(&render_regressions(report, color));
    out.push_str(&summary_line(report));
    out.push('\n');
    if let Some(line) = gate_line(report) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(p) = results_path {
        out.push_str(&format!("results: {}\n", p.display()));
    }
    out
}

/// The cost pass's figures (per iteration, and per request when counted in windows of their own),
/// when it ran: what the cost checks compare.
/// With `verdicts`, each scenario's verdict too (and a row for those without figures).
pub fn render_cost(report: &RunResults, color: bool, verdicts: bool) -> String {
    if report.scenarios.iter().all(|s| s.cost.is_none()) {
        return String::new();
    }
    let mut t = new_table(color);
    let mut header = vec!["cost (valgrind)", ""];
    header.extend(COST_COLUMNS);
    if verdicts {
        header.push("verdict");
    }
    t.set_header(header);
    for s in &report.scenarios {
        let rows = match &s.cost {
            Some(m) => cost_rows(m),
            None if verdicts => vec![("-".to_string(), Default::default())],
            None => continue,
        };
        for (i, (label, values)) in rows.into_iter().enumerate() {
            let mut row = vec![
                Cell::new(if i == 0 { s.id.as_str() } else { "" }),
                Cell::new(label),
            ];
            row.extend(
                values
                    .into_iter()
                    .map(|v| num(if v.is_empty() { "-".into() } else { v })),
            );
            if verdicts {
                row.push(if i == 0 {
                    verdict_cell(s.verdict)
                } else {
                    Cell::new("")
                });
            }
            t.add_row(row);
        }
    }
    format!("{t}\n")
}

/// The leak and drift checks, one line each: `✗ shop::predict: rss_growth +412MiB/h [+398MiB/h,
/// +425MiB/h] over 1m50s (99%): rising faster than 1.00MiB/h for certain: …: FAIL`.
pub fn render_trends(report: &RunResults, color: bool) -> String {
    let style = |o: Outcome| match (color, o) {
        (false, _) => anstyle::Style::new(),
        (true, Outcome::Pass) => anstyle::AnsiColor::Green.on_default(),
        (true, Outcome::Fail) => anstyle::AnsiColor::Red.on_default().bold(),
        (true, _) => anstyle::AnsiColor::Yellow.on_default().bold(),
    };
    let mut out = String::new();
    for s in &report.scenarios {
        for c in &s.trends {
            let st = style(c.outcome);
            let mark = match c.outcome {
                Outcome::Pass => "✓",
                Outcome::Fail => "✗",
                _ => "?",
            };
            out.push_str(&format!(
                "{st}{mark}{st:#} {}: {}{}\n",
                s.id,
                c.describe(),
                if c.implicit { " (default bound)" } else { "" }
            ));
        }
    }
    out
}

/// The regression checks: one row per scenario and check, then a line per regression and warning.
pub fn render_regressions(report: &RunResults, color: bool) -> String {
    let rows: Vec<(&ScenarioRun, &Decision)> = report
        .scenarios
        .iter()
        .flat_map(|s| s.regressions.iter().map(move |d| (s, d)))
        .collect();
    let (red, yellow) = if color {
        (
            anstyle::AnsiColor::Red.on_default().bold(),
            anstyle::AnsiColor::Yellow.on_default().bold(),
        )
    } else {
        (anstyle::Style::new(), anstyle::Style::new())
    };
    let mut out = String::new();
    let compared: Vec<_> = rows
        .iter()
        .filter(|(_, d)| d.outcome != Outcome::NotComparable)
        .collect();
    if !compared.is_empty() {
        let mut t = new_table(color);
        t.set_header([
            "scenario",
            "check",
            "baseline",
            "current",
            "change [interval]",
            "tolerance",
            "verdict",
        ]);
        for (s, d) in &compared {
            let value =
                |v: Option<f64>| v.map_or("-".to_string(), |v| format::format_value(d.metric, v));
            let verdict = Cell::new(outcome_str(d.outcome));
            let verdict = match d.outcome {
                Outcome::Pass => verdict.fg(Color::Green),
                Outcome::Fail => verdict.fg(Color::Red).add_attribute(Attribute::Bold),
                _ => verdict.fg(Color::Yellow),
            };
            t.add_row(vec![
                Cell::new(&s.id),
                Cell::new(d.check_name()),
                num(value(d.baseline)),
                num(value(d.current)),
                num(describe_change(d)),
                num(format_tolerance(d)),
                verdict,
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    for (s, d) in &rows {
        let at = s
            .spec
            .as_ref()
            .map(|sp| format!(" ({}:{})", sp.file, sp.line))
            .unwrap_or_default();
        match d.outcome {
            Outcome::Fail => out.push_str(&format!(
                "{red}✗{red:#} {}: {} regressed — {}{at}\n",
                s.id,
                d.check_name(),
                d.note
            )),
            Outcome::NotComparable => {
                out.push_str(&format!("{yellow}!{yellow:#} {}: {}\n", s.id, d.note))
            }
            _ => {}
        }
    }
    for s in &report.scenarios {
        if let Some(changes) = s
            .cost
            .as_ref()
            .map(|c| &c.attribution)
            .filter(|a| !a.is_empty())
        {
            out.push_str(&format!(
                "  {}: instructions per iteration changed most in: {}\n",
                s.id,
                describe_attribution(changes)
            ));
        }
    }
    for s in &report.scenarios {
        if let Some(ab) = &s.ab {
            out.push_str(&format!(
                "  {}: {} pair{} of rounds against {} (ABBA), {:.0}s; {}\n",
                s.id,
                ab.pairs,
                if ab.pairs == 1 { "" } else { "s" },
                ab.base_commit.get(..10).unwrap_or(&ab.base_commit),
                ab.secs,
                ab.stopped
            ));
        }
    }
    out.push_str(&render_machine(report));
    if let Some(g) = &report.gate {
        for w in &g.warnings {
            out.push_str(&format!("{yellow}!{yellow:#} {w}\n"));
        }
    }
    out
}

/// How busy the machine was during each round of each scenario compared with a baseline file, so a
/// disturbed round is visible beside the verdicts (`--ab` names only the pairs it set aside, in the
/// checks' notes: it runs too many rounds for a line).
pub fn render_machine(report: &RunResults) -> String {
    let mut out = String::new();
    for s in report.scenarios.iter().filter(|s| s.ab.is_none()) {
        if s.regressions.is_empty() {
            continue;
        }
        if let Some(rounds) = crate::text::machine_per_round(&s.contention) {
            out.push_str(&format!("  {}: the machine per round: {rounds}\n", s.id));
        }
    }
    out
}

/// `baseline: perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main): 1 regressed, 2 inconclusive`
pub fn gate_line(report: &RunResults) -> Option<String> {
    let g = report.gate.as_ref()?;
    let origin = g.baseline.as_deref().unwrap_or("none");
    if !g.found {
        return Some(format!("baseline: none ({origin})"));
    }
    let checks: usize = report.scenarios.iter().map(|s| s.regressions.len()).sum();
    Some(format!(
        "baseline: {origin}: {checks} regression check{}, {} regressed, {} inconclusive, {} not comparable",
        if checks == 1 { "" } else { "s" },
        g.fails,
        g.inconclusive,
        g.not_comparable
    ))
}

/// A shard's run, or a merge of shards: which share this was, and each shard generator's health
/// (late and dropped starts of its schedule), so an overloaded shard is seen for what it is.
pub fn shard_lines(report: &RunResults) -> String {
    let mut out = String::new();
    let late = |late: u64, dropped: u64, intended: u64| {
        let pct = if intended == 0 {
            0.0
        } else {
            (late + dropped) as f64 * 100.0 / intended as f64
        };
        format!("{late} late and {dropped} dropped of {intended} starts ({pct:.2}%)")
    };
    if let Some(shard) = report.shard {
        out.push_str(&format!(
            "shard {shard}: 1/{} of each scenario's load; the SLOs and the gate are checked when all shards' \
             results are merged (`cargo perfgate merge`)\n",
            shard.count
        ));
        for s in &report.scenarios {
            if let Some(r) = &s.result {
                let sc = &r.schedule;
                out.push_str(&format!(
                    "  {}: {}, schedule lag p99 {}\n",
                    s.id,
                    late(sc.late, sc.dropped, sc.intended),
                    format_ms(sc.lag.p99_ms)
                ));
            }
        }
    }
    if !report.merged_from.is_empty() {
        let from: Vec<String> = report
            .merged_from
            .iter()
            .map(|m| format!("{} {}", m.shard, m.file))
            .collect();
        out.push_str(&format!(
            "merged {} shards: {}\n",
            from.len(),
            from.join(", ")
        ));
        for s in &report.scenarios {
            for h in &s.shards {
                out.push_str(&format!(
                    "  {} shard {}: {} iterations, {}{}\n",
                    s.id,
                    h.shard,
                    h.iterations,
                    late(h.late, h.dropped, h.intended),
                    if h.invalid.is_some() {
                        " — INVALID"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    out
}

/// Continuation lines of a multi-line cause, indented under the scenario's line.
fn indent_tail(s: &str) -> String {
    s.trim_end().replace('\n', "\n    ")
}

pub fn summary_line(report: &RunResults) -> String {
    let count = |v: Verdict| report.scenarios.iter().filter(|s| s.verdict == v).count();
    let mut parts = vec![
        format!("{} passed", count(Verdict::Pass)),
        format!("{} failed", count(Verdict::Fail)),
    ];
    if count(Verdict::Invalid) > 0 {
        parts.push(format!("{} invalid", count(Verdict::Invalid)));
    }
    if count(Verdict::Error) > 0 {
        let n = count(Verdict::Error);
        parts.push(format!("{n} error{}", if n == 1 { "" } else { "s" }));
    }
    let cost = if report.cost_secs > 0.0 {
        format!(" · cost {:.1}s", report.cost_secs)
    } else {
        String::new()
    };
    format!(
        "{} scenario{}: {} · build {:.1}s{} · load {:.1}s{cost} · total {:.1}s",
        report.scenarios.len(),
        if report.scenarios.len() == 1 { "" } else { "s" },
        parts.join(", "),
        report.build_secs,
        build_parts(&report.build_parts),
        report.load_secs,
        report.total_secs
    )
}

/// ` (scenarios 40.1s, service 20.9s)`, or ` (scenarios and service)` for one build.
fn build_parts(parts: &[BuildPart]) -> String {
    match parts {
        [] => String::new(),
        [one] => format!(" ({})", one.part),
        many => format!(
            " ({})",
            many.iter()
                .map(|p| format!("{} {:.1}s", p.part, p.secs))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn render_list(items: &[ListedScenario], color: bool) -> String {
    let mut t = new_table(color);
    let calibrated = items.iter().any(|s| !s.resolves.is_empty());
    // The tiers planned (every item has the same ones); without a plan, the declared window.
    let tiers: Vec<String> = items
        .first()
        .map(|s| {
            crate::cli::Tier::ALL
                .iter()
                .map(|t| t.to_string())
                .filter(|t| s.plan.contains_key(t))
                .collect()
        })
        .unwrap_or_default();
    let mut header = vec!["package".to_string(), "scenario".into(), "load".into()];
    if tiers.is_empty() {
        header.push("duration".into());
    }
    header.extend(tiers.iter().cloned());
    header.extend(["SLOs".to_string(), "at".into()]);
    if calibrated {
        header.push("--ab resolves".into());
    }
    t.set_header(header);
    for s in items {
        let slos: Vec<String> = s
            .spec
            .slos
            .iter()
            .map(|s| s.describe())
            .chain(s.spec.trends.iter().map(|t| t.describe()))
            .collect();
        let name =
            s.id.strip_prefix(&format!("{}::", s.package))
                .unwrap_or(&s.id);
        let mut row = vec![
            s.package.clone(),
            name.to_string(),
            describe_load(&s.spec.load),
        ];
        if tiers.is_empty() {
            row.push(describe_duration(&s.spec));
        }
        for tier in &tiers {
            row.push(match s.plan.get(tier).and_then(Option::as_ref) {
                None => "-".to_string(),
                Some(p) => {
                    let window = describe_duration(&ScenarioSpec {
                        duration_ms: p.duration_ms,
                        warmup_ms: p.warmup_ms,
                        ..s.spec.clone()
                    });
                    match p.rounds {
                        Some(n) => format!("{window}, {n} round{}", if n == 1 { "" } else { "s" }),
                        None => window,
                    }
                }
            });
        }
        row.push(if slos.is_empty() {
            "-".to_string()
        } else {
            slos.join(", ")
        });
        row.push(format!("{}:{}", s.spec.file, s.spec.line));
        if calibrated {
            row.push(describe_floors(&s.resolves));
        }
        t.add_row(row);
    }
    let note = if tiers.is_empty() {
        String::new()
    } else {
        "\n`-`: not in that tier (`tier = [...]`); without a number of rounds, 1, or 5 when there is a baseline to \
         compare with (`--tier NAME` picks a tier; `[package.metadata.perfgate.tiers.NAME]` changes one)"
            .to_string()
    };
    let mut out = format!(
        "{t}\n{} scenario{}{note}\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    );
    if !calibrated {
        out.push_str(
            "what the gate can resolve on this machine: run `cargo perfgate calibrate` (each run's table \
             also shows it per check)\n",
        );
    }
    out
}

/// "p50 2.1%, p99 6.3%": the iteration's latency floors first, then the rest, or "-".
fn describe_floors(floors: &std::collections::BTreeMap<String, f64>) -> String {
    if floors.is_empty() {
        return "-".to_string();
    }
    let mut keys: Vec<&String> = floors.keys().collect();
    keys.sort_by_key(|k| (k.contains(':'), !k.starts_with('p'), k.as_str()));
    keys.iter()
        .map(|k| format!("{k} {}", crate::text::describe_resolution(floors[*k])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The calibration's table: per scenario and check, the pair-to-pair noise and the smallest change an
/// `--ab` run within the budget can resolve, against the declared tolerance.
pub fn render_floors(rows: &[(String, f64, usize, NoiseFloor)]) -> String {
    let mut t = new_table(false);
    t.set_header([
        "scenario",
        "check",
        "noise (sd per pair)",
        "resolves",
        "declared",
        "",
    ]);
    let mut below = 0;
    for (id, declared, in_budget, floor) in rows {
        for (key, f) in &floor.floor {
            let sd = floor.sd.get(key).copied().unwrap_or(f64::NAN);
            let note = if *f > *declared {
                below += 1;
                format!(
                    "declared below the floor: --ab holds it to {:.1}%",
                    f * 100.0
                )
            } else {
                String::new()
            };
            t.add_row(vec![
                id.clone(),
                key.clone(),
                format!("{:.1}%", sd * 100.0),
                format!("{:.1}% ({in_budget} pairs)", f * 100.0),
                format!("{:.0}%", declared * 100.0),
                note,
            ]);
        }
    }
    let mut out = format!("{t}\n");
    if below > 0 {
        out.push_str(&format!(
            "{below} check{} declare{} a tolerance below what this machine resolves within the budget; a larger \
             --budget, longer rounds (--duration) or a quieter machine would lower the floor\n",
            if below == 1 { "" } else { "s" },
            if below == 1 { "s" } else { "" },
        ));
    }
    out
}

/// `calibrate`'s cost floors: per scenario and figure, the spread of repeated cost passes against
/// the tolerance the checks use.
pub fn render_cost_floors(rows: &[(String, f64, CostFigures, CostFloors)]) -> String {
    use perfgate_runtime::format::Metric;
    let mut t = new_table(false);
    t.set_header([
        "scenario",
        "cost check",
        "figure",
        "noise floor",
        "tolerance",
    ]);
    for (id, tolerance, figures, floors) in rows {
        for metric in Metric::COST {
            let Some(v) = figures.value(metric) else {
                continue;
            };
            let floor = floors.get(metric.as_str()).copied().unwrap_or(0.0);
            let tol = match metric {
                Metric::Allocs | Metric::Syscalls => {
                    format!("+{}/iter", crate::gate::cost::COUNT_SLACK)
                }
                _ => format!("{:.1}%", tolerance * 100.0),
            };
            t.add_row(vec![
                id.clone(),
                metric.to_string(),
                format::format_value(metric, v),
                format!("{:.4}%", floor * 100.0),
                tol,
            ]);
        }
    }
    format!(
        "{t}\nthe noise floor is twice the largest distance of a pass from the median of the passes; a cost \
         check fails when its change minus the floor exceeds the tolerance\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::GateSummary;

    #[test]
    fn the_machine_is_shown_beside_each_round_of_a_compared_scenario() {
        let mut r = report();
        let busy = |load: f64| crate::gate::contention::Contention {
            cores: 2,
            runnable_per_core: load,
            cpu_pressure: Some(0.5),
            steal: 0.02,
            load_avg: 2.0 * load,
            ..Default::default()
        };
        r.scenarios[0].contention = vec![Some(busy(0.2)), None, Some(busy(1.1))];
        // Without a comparison there is nothing to explain.
        assert!(!render_human(&r, None, false).contains("the machine per round"));
        r.scenarios[0].regressions = vec![crate::gate::file::not_comparable(
            "predict-service::predict",
            "x".into(),
            0.1,
            5,
            3,
        )];
        let out = render_human(&r, None, false);
        assert!(
            out.contains(
                "predict-service::predict: the machine per round: 1: 0.2× load, PSI 50%, steal 2%, \
                 load avg 0.4 · 2: not measured · 3: 1.1× load, PSI 50%, steal 2%, load avg 2.2"
            ),
            "{out}"
        );
        let md = crate::report::markdown::render(&r, None);
        assert!(md.contains("the machine per round: 1: 0.2× load"), "{md}");
    }
    use crate::results::tests::report;
    use crate::results::AbRounds;
    use crate::slo::tests::spec;
    use crate::text::format_change;
    use perfgate_runtime::format::{LoadModel, Metric, Op, Slo};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[test]
    fn an_ab_scenario_says_its_pairs_and_why_sampling_stopped() {
        let mut r = report();
        r.scenarios[0].ab = Some(AbRounds {
            base_commit: "1a2b3c4d5e6f7a8b9c0d".into(),
            pairs: 14,
            base_rounds: vec![],
            stopped: "every check decided after 14 pairs".into(),
            secs: 77.0,
        });
        r.scenarios[0].regressions = vec![Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric: Metric::P99,
            outcome: Outcome::Pass,
            baseline: Some(10.0),
            current: Some(10.1),
            change: Some(0.01),
            change_low: Some(-0.02),
            change_high: Some(0.04),
            tolerance: 0.10,
            rounds_baseline: 14,
            rounds_current: 14,
            note: String::new(),
            resolves: Some(0.041),
        }];
        let out = render_human(&r, None, false);
        assert!(out.contains("10% (resolves 4.1%)"), "{out}");
        assert!(
            out.contains("predict-service::predict: 14 pairs of rounds against 1a2b3c4d5e (ABBA), 77s; every check decided after 14 pairs"),
            "{out}"
        );
        let md = crate::report::markdown::render(&r, None);
        assert!(
            md.contains("14 pairs of rounds (ABBA); every check decided after 14 pairs"),
            "{md}"
        );
        let html = crate::report::html::render(&[crate::report::html::Run {
            label: "current".into(),
            report: r.clone(),
        }]);
        assert!(
            html.contains("14 pairs of rounds in ABBA order; every check decided after 14 pairs"),
            "{html}"
        );
    }

    fn cost_measurement() -> crate::cost::CostMeasurement {
        use crate::cost::{CostFigures, CostMeasurement, FunctionChange, PerRequest};
        let figures = |instructions: f64, allocs: f64| CostFigures {
            iterations: 50,
            instructions,
            allocs,
            alloc_bytes: Some(9296.0),
            syscalls: 3.05,
            top_functions: vec![],
        };
        CostMeasurement {
            warmup: 20,
            iterations: 50,
            figures: figures(99_420.0, 126.5),
            requests: [
                ("item".to_string(), figures(14_710.0, 7.0)),
                ("item_missing".to_string(), figures(14_220.0, 12.0)),
            ]
            .into(),
            per_request: PerRequest::Windows,
            not_idle: 0,
            clock: None,
            secs: 3.2,
            window_secs: 1.1,
            spec_parts: std::collections::BTreeMap::new(),
            attribution: vec![FunctionChange {
                name: "predict_service::routes::extra_work".into(),
                base: 0.0,
                head: 2_240.0,
                delta: 2_240.0,
            }],
        }
    }

    #[test]
    fn the_cost_pass_has_its_table_its_checks_and_the_functions_that_changed() {
        let mut r = report();
        r.scenarios[0].cost = Some(cost_measurement());
        r.cost_secs = 31.5;
        r.scenarios[0].regressions = vec![Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric: Metric::Instructions,
            outcome: Outcome::Fail,
            baseline: Some(97_180.0),
            current: Some(99_420.0),
            change: Some(0.023),
            change_low: Some(0.022),
            change_high: Some(0.024),
            tolerance: 0.01,
            resolves: None,
            rounds_baseline: 1,
            rounds_current: 1,
            note:
                "instructions per iteration 97.18k → 99.42k (+2.30%), beyond the tolerance (1.0%)"
                    .into(),
        }];
        let out = render_human(&r, None, false);
        assert!(
            out.contains("cost (valgrind)") && out.contains("per iteration (50)"),
            "{out}"
        );
        assert!(
            out.contains("99.42k") && out.contains("126.5") && out.contains("9.08KiB"),
            "{out}"
        );
        assert!(out.contains("per `item_missing`"), "{out}");
        assert!(
            out.contains("instructions per iteration changed most in: +2.24k instr/iter in predict_service::routes::extra_work"),
            "{out}"
        );
        assert!(out.contains("+2.30% [+2.20%, +2.40%]"), "{out}");
        assert!(out.contains("· cost 31.5s ·"), "{out}");
        // The load table is there (the run measured latency); a cost-only run shows its verdicts
        // in the cost table instead.
        assert!(out.contains("rate/s"), "{out}");
        let mut only = r.clone();
        for s in &mut only.scenarios {
            s.result = None;
        }
        let out = render_human(&only, None, false);
        assert!(
            !out.contains("rate/s") && out.contains("┆ verdict"),
            "{out}"
        );
        let md = crate::report::markdown::render(&r, None);
        assert!(
            md.contains("#### Cost (valgrind)") && md.contains("99.42k"),
            "{md}"
        );
        assert!(
            md.contains("+2.24k instr/iter in predict_service::routes::extra_work"),
            "{md}"
        );
        let html = crate::report::html::render(&[crate::report::html::Run {
            label: "current".into(),
            report: r.clone(),
        }]);
        assert!(
            html.contains("cost (valgrind)") && html.contains("99.42k"),
            "{html}"
        );
        assert!(
            html.contains("predict_service::routes::extra_work"),
            "{html}"
        );
        let junit = crate::report::junit::render(&r);
        assert!(
            junit.contains("regression: instructions") && junit.contains("+2.30%"),
            "{junit}"
        );
    }

    #[test]
    fn the_summary_line_names_the_build_parts() {
        let mut r = report();
        assert!(
            summary_line(&r).contains("· build 3.0s · load"),
            "{}",
            summary_line(&r)
        );
        r.build_parts = vec![BuildPart {
            part: "scenarios and service".into(),
            secs: 3.0,
        }];
        assert!(
            summary_line(&r).contains("· build 3.0s (scenarios and service) · load"),
            "{}",
            summary_line(&r)
        );
        r.build_parts = vec![
            BuildPart {
                part: "scenarios".into(),
                secs: 2.0,
            },
            BuildPart {
                part: "service".into(),
                secs: 1.0,
            },
        ];
        assert!(
            summary_line(&r).contains("· build 3.0s (scenarios 2.0s, service 1.0s) · load"),
            "{}",
            summary_line(&r)
        );
        // A results file of an older version has no parts and still reads.
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("build_parts");
        let old = RunResults::parse(&v.to_string(), "old.json").unwrap();
        assert!(old.build_parts.is_empty());
    }

    #[test]
    fn regressions_are_tabled_and_named() {
        let mut r = report();
        let d = |metric, outcome, change: Option<f64>, note: &str| Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric,
            outcome,
            baseline: Some(10.0),
            current: change.map(|c| 10.0 * (1.0 + c)),
            change,
            change_low: change.map(|c| c - 0.05),
            change_high: change.map(|c| c + 0.05),
            tolerance: 0.10,
            rounds_baseline: 5,
            rounds_current: 3,
            note: note.into(),
            resolves: None,
        };
        r.scenarios[0].regressions = vec![
            d(
                Metric::P99,
                Outcome::Fail,
                Some(0.30),
                "at least 25% slower",
            ),
            d(Metric::P50, Outcome::Inconclusive, Some(0.08), "too noisy"),
        ];
        r.scenarios[1].regressions = vec![d(
            Metric::P99,
            Outcome::NotComparable,
            None,
            "not comparable: the scenario changed since the baseline (load: `a` → `b`)",
        )];
        r.gate = Some(GateSummary {
            baseline: Some(
                "perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main)".into(),
            ),
            found: true,
            same_machine: true,
            fails: 1,
            inconclusive: 1,
            not_comparable: 1,
            warnings: vec!["1 regression check is inconclusive".into()],
            ..Default::default()
        });
        let out = render_human(&r, None, false);
        assert!(out.contains("change [interval]"), "{out}");
        assert!(out.contains("+30.0% [+25.0%, +35.0%]"), "{out}");
        assert!(
            out.contains("REGRESSED") && out.contains("inconclusive"),
            "{out}"
        );
        assert!(
            out.contains("✗ predict-service::predict: p99 regressed — at least 25% slower (tests/perf.rs:12)"),
            "{out}"
        );
        assert!(
            out.contains("! predict-service::catalogue: not comparable"),
            "{out}"
        );
        assert!(
            out.contains("! 1 regression check is inconclusive"),
            "{out}"
        );
        assert!(
            out.contains("baseline: perfgate.baseline.toml at 1a2b3c4d5e (merge-base of HEAD and main): 3 regression checks, 1 regressed, 1 inconclusive, 1 not comparable"),
            "{out}"
        );
        // Without regressions, no second table.
        assert!(!render_human(&report(), None, false).contains("change [interval]"));
        assert_eq!(format_change(Metric::Errors, 0.002), "+0.20pp");
    }

    #[test]
    fn table_shows_the_breach_and_the_error() {
        let r = report();
        let out = render_human(&r, Some(Path::new("target/perfgate/x/results.json")), false);
        assert!(out.contains("predict-service::predict"), "{out}");
        assert!(out.contains("31.2ms"), "{out}");
        assert!(out.contains("FAIL"), "{out}");
        assert!(out.contains("ERROR"), "{out}");
        assert!(
            out.contains("✗ predict-service::predict: p99 < 25.0ms — measured 31.2ms"),
            "{out}"
        );
        assert!(out.contains("panicked at boom"), "{out}");
        assert!(
            out.contains("0.50 cores") && out.contains("64.0 MiB"),
            "{out}"
        );
        assert!(
            out.contains("2 scenarios: 0 passed, 1 failed, 1 error · build 3.0s · load 11.0s"),
            "{out}"
        );
        assert!(
            out.contains("results: target/perfgate/x/results.json"),
            "{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "no colour codes when colour is off: {out}"
        );
        assert!(render_human(&r, None, true).contains('\u{1b}'));
    }

    #[test]
    fn load_models_and_list() {
        assert_eq!(
            describe_load(&LoadModel::Open { rate: 200.0 }),
            "open 200/s"
        );
        assert_eq!(
            describe_load(&LoadModel::Closed {
                users: 8,
                think_ms: 0
            }),
            "closed 8 users"
        );
        let sp = spec(vec![Slo {
            request: Some("pay".into()),
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 20.0,
        }]);
        let mut item = ListedScenario {
            package: "shop".into(),
            id: "shop::predict".into(),
            test_name: "__perfgate_predict".into(),
            executable: PathBuf::from("/x"),
            spec: sp,
            resolves: Default::default(),
            plan: BTreeMap::new(),
        };
        let out = render_list(std::slice::from_ref(&item), false);
        assert!(out.contains("run `cargo perfgate calibrate`"), "{out}");
        let calibrated = ListedScenario {
            resolves: [("p99".to_string(), 0.063), ("p50".to_string(), 0.021)].into(),
            ..item.clone()
        };
        let with = render_list(&[calibrated], false);
        assert!(
            with.contains("--ab resolves") && with.contains("p50 2.1%, p99 6.3%"),
            "{with}"
        );
        assert!(
            out.contains("open 200/s") && out.contains("pay.p99 < 20.0ms"),
            "{out}"
        );
        assert!(
            out.contains("tests/perf.rs:12") && out.contains("10s + 1s warmup"),
            "{out}"
        );
        // With a plan: a column per tier, `-` where it does not run.
        let planned = |d, w, r| {
            Some(crate::results::PlannedRun {
                duration_ms: d,
                warmup_ms: w,
                rounds: r,
            })
        };
        item.plan = BTreeMap::from([
            ("smoke".to_string(), None),
            ("nightly".to_string(), planned(30_000, 3_000, Some(5))),
            ("soak".to_string(), planned(7_200_000, 300_000, Some(1))),
        ]);
        item.spec.trends.push(perfgate_runtime::format::TrendSlo {
            metric: perfgate_runtime::format::TrendMetric::RssGrowth,
            allowance: perfgate_runtime::format::Allowance::PerHour(1_048_576.0),
        });
        let out = render_list(&[item], false);
        let header = out.lines().nth(1).unwrap();
        assert!(
            header.find("smoke") < header.find("nightly")
                && header.find("nightly") < header.find("soak"),
            "tiers in their order, shallow to deep: {header}"
        );
        for s in [
            "nightly",
            "30s + 3s warmup, 5 rounds",
            "2h + 5m warmup, 1 round",
            "rss_growth < 1.00MiB/h",
            "not in that tier",
        ] {
            assert!(out.contains(s), "{s:?} missing:\n{out}");
        }
        assert!(!out.contains("duration"), "{out}");
    }
}
