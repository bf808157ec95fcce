//! The terminal: the results table, the regression table, the summary lines, `list`'s table and
//! `calibrate`'s floors.

use std::path::Path;

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use perfgate_runtime::format::{self, format_ms};

use crate::gate::sequential::NoiseFloor;
use crate::gate::{Decision, Outcome};
use crate::results::{BuildPart, ListedScenario, RunResults, ScenarioRun};
use crate::slo::Verdict;
use crate::text::{
    describe_change, describe_duration, describe_load, format_tolerance, outcome_str,
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
    let mut out = format!("{t}\n");
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
    if let Some(g) = &report.gate {
        for w in &g.warnings {
            out.push_str(&format!("{yellow}!{yellow:#} {w}\n"));
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
    format!(
        "{} scenario{}: {} · build {:.1}s{} · load {:.1}s · total {:.1}s",
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
    t.set_header(["package", "scenario", "load", "duration", "SLOs", "at"]);
    for s in items {
        let slos: Vec<String> = s.spec.slos.iter().map(|s| s.describe()).collect();
        let name =
            s.id.strip_prefix(&format!("{}::", s.package))
                .unwrap_or(&s.id);
        t.add_row([
            s.package.clone(),
            name.to_string(),
            describe_load(&s.spec.load),
            describe_duration(&s.spec),
            if slos.is_empty() {
                "-".to_string()
            } else {
                slos.join(", ")
            },
            format!("{}:{}", s.spec.file, s.spec.line),
        ]);
    }
    format!(
        "{t}\n{} scenario{}\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::GateSummary;
    use crate::results::tests::report;
    use crate::results::AbRounds;
    use crate::slo::tests::spec;
    use crate::text::format_change;
    use perfgate_runtime::format::{LoadModel, Metric, Op, Slo};
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
        }];
        let out = render_human(&r, None, false);
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
        let item = ListedScenario {
            package: "shop".into(),
            id: "shop::predict".into(),
            test_name: "__perfgate_predict".into(),
            executable: PathBuf::from("/x"),
            spec: sp,
        };
        let out = render_list(&[item], false);
        assert!(
            out.contains("open 200/s") && out.contains("pay.p99 < 20.0ms"),
            "{out}"
        );
        assert!(
            out.contains("tests/perf.rs:12") && out.contains("10s + 1s warmup"),
            "{out}"
        );
    }
}
