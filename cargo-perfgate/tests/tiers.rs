//! End to end: the test tiers on the `basic` fixture, with tier tables of seconds. A soak that fails a
//! descriptor leak (and every report showing the check with its slope and interval), a scenario
//! stopped early when its errors stay above the tier's threshold, and `tier = [...]` with a
//! per-tier window, in `list` and in a run.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_no_leftovers, run, serial, Fixture};
use serde_json::Value;

/// The results document a run wrote (its path is the table's last line).
fn results_of(out: &common::Output) -> (PathBuf, Value) {
    let path = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results path\n{}", out.show()));
    let text = std::fs::read_to_string(path).unwrap();
    (PathBuf::from(path), serde_json::from_str(&text).unwrap())
}

fn scenario<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no scenario {id} in {doc:#}"))
}

fn trend<'a>(s: &'a Value, metric: &str) -> &'a Value {
    s["trends"]
        .as_array()
        .unwrap_or_else(|| panic!("no trend checks in {s:#}"))
        .iter()
        .find(|t| t["trend"]["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} check in {s:#}"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_soak_fails_a_descriptor_leak_and_every_report_shows_its_slope() {
    let _turn = serial();
    let f = Fixture::new("basic", "tiers-soak");
    // Ten seconds is about thirty points of the service's trace: the fewest a slope is fitted on.
    f.edit_manifest(
        "ready = \"/healthz\" }",
        "ready = \"/healthz\" }\ntiers = { soak = { duration = \"10s\", warmup = \"1s\" } }",
    );
    let junit = f.root.join("junit.xml");
    let md = f.root.join("summary.md");
    let out = run(f
        .perfgate(&[
            "--tier",
            "soak",
            "--no-abort",
            "::work",
            "--junit",
            junit.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ])
        .env("FIXTURE_LEAK_FDS", "4"));
    assert_eq!(out.code(), Some(1), "a leak fails the run\n{}", out.show());
    let (path, doc) = results_of(&out);
    assert_eq!(doc["tier"], "soak");
    let work = scenario(&doc, "fixture-svc::work");
    assert_eq!(work["verdict"], "fail", "{work:#}");
    let fds = trend(work, "fds_growth");
    assert_eq!(fds["outcome"], "fail", "{fds:#}");
    let (slope, lo) = (
        fds["per_hour"].as_f64().unwrap(),
        fds["interval_per_hour"][0].as_f64().unwrap(),
    );
    assert!(
        lo > 0.0 && slope >= lo,
        "a certain rise: {slope} [{lo}, …]\n{fds:#}"
    );
    // The service's threads do not grow: that check passes, with an interval of its own.
    assert_eq!(trend(work, "threads_growth")["outcome"], "pass");
    // The window is the soak tier's, from the package's table.
    assert_eq!(
        work["spec_parts"]["window"], "duration 10000ms, warmup 1000ms",
        "{work:#}"
    );
    assert_eq!(work["spec_parts"]["tier"], "soak");
    // The generator's own process was sampled too.
    assert!(
        work["generator"]["timeseries"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{work:#}"
    );

    // The terminal, JUnit and Markdown: the check, its slope and its interval.
    let all = out.all();
    assert!(
        all.contains("✗ fixture-svc::work: fds_growth +") && all.contains("(99%)"),
        "{}",
        out.show()
    );
    let xml = read(&junit);
    assert!(
        xml.contains("name=\"leak: fds_growth &lt; 0/h\"")
            && xml.contains("<failure type=\"leak\" message=\"fds_growth +"),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"leak: threads_growth &lt; 0/h\"")
            && xml.contains("<system-out>threads_growth +0/h [+0/h, +0/h]"),
        "{xml}"
    );
    let summary = read(&md);
    assert!(
        summary.contains("#### Leaks and drift")
            && summary.contains("| `fixture-svc::work` | `fds_growth < 0/h` (default) | +")
            && summary.contains("❌ **FAIL**"),
        "{summary}"
    );

    // The HTML page: the descriptors over time with the fitted line.
    let html = f.root.join("report.html");
    let rep = run(&mut f.perfgate(&[
        "report",
        path.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    assert_eq!(rep.code(), Some(0), "{}", rep.show());
    let page = read(&html);
    assert!(
        page.contains("Service open file descriptors")
            && page.contains("fit +")
            && page.contains("Load generator memory (RSS)")
            && page.contains("fds_growth &lt; 0/h"),
        "the page lacks the descriptor chart or its fitted line"
    );
    assert_no_leftovers();
}

#[test]
fn errors_above_the_tiers_threshold_stop_the_scenario_early() {
    let _turn = serial();
    let f = Fixture::new("basic", "tiers-abort");
    f.edit_manifest(
        "ready = \"/healthz\" }",
        "ready = \"/healthz\" }\ntiers = { smoke = { abort_errors = \"50%\", abort_after = \"2s\" } }",
    );
    // Every `/work` answers 503: the scenario's own check fails each iteration.
    let out = run(f
        .perfgate(&["--duration", "60s", "--warmup", "0s", "::work"])
        .env("FIXTURE_STATUS", "503"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    let (_, doc) = results_of(&out);
    let work = scenario(&doc, "fixture-svc::work");
    let error = work["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("stopped early")
            && error.contains("of 1m")
            && error.contains("errors above 50% of the iterations in each of the last 2 seconds"),
        "{error}"
    );
    assert!(
        work["wall_secs"].as_f64().unwrap() < 50.0,
        "a minute's window was not cut short: {work:#}"
    );
    assert!(out.all().contains("stopped early"), "{}", out.show());
    assert_no_leftovers();
}

#[test]
fn a_scenario_runs_only_in_its_tiers_with_its_own_window_there() {
    let _turn = serial();
    // The fixture's `nightly_only` declares `tier = ["nightly"], nightly = ("1s", "100ms")`.
    let f = Fixture::new("basic", "tiers-only");
    let list = run(&mut f.perfgate(&["list"]));
    assert_eq!(list.code(), Some(0), "{}", list.show());
    // Cells: package, scenario, load, smoke, nightly, soak, SLOs, at.
    let row = |name: &str| -> Vec<String> {
        let line = list
            .stdout
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}\n{}", list.show()));
        line.trim_matches('│')
            .split('┆')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(
        row("nightly_only")[3..6],
        ["-", "1s + 100ms warmup, 5 rounds", "-"],
        "only nightly, with its own window and the tier's rounds\n{}",
        list.stdout
    );
    assert_eq!(
        row("health")[3..6],
        [
            "1s + 200ms warmup",
            "3s + 600ms warmup, 5 rounds",
            "1h + 5m warmup, 1 round"
        ],
        "every tier runs health, nightly three times longer\n{}",
        list.stdout
    );
    // A smoke run leaves it out and says so; with nothing else selected, nothing runs.
    let out = run(&mut f.perfgate(&["nightly_only"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr.contains(
            "Skipping fixture-svc::nightly_only (`tier = [nightly]`: not in the smoke tier)"
        ) && out
            .stderr
            .contains("no selected scenario runs in the smoke tier"),
        "{}",
        out.show()
    );
    // The nightly tier runs it once per round, in its own window (one round here).
    let out = run(&mut f.perfgate(&["--tier", "nightly", "--rounds", "1", "nightly_only"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let (_, doc) = results_of(&out);
    let s = scenario(&doc, "fixture-svc::nightly_only");
    assert_eq!(s["result"]["spec"]["duration_ms"], 1000, "{s:#}");
    assert_eq!(s["result"]["spec"]["warmup_ms"], 100, "{s:#}");
    assert_eq!(s["spec_parts"]["tier"], "nightly");
    assert_no_leftovers();
}
