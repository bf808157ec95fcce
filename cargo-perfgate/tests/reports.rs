//! The reports on a run report built in code: JUnit (parsed back), Markdown and the terminal
//! table (snapshots), GitHub annotations, OpenMetrics (validated line by line), the failure webhook
//! (received by a local HTTP server; its URL appears nowhere), and the HTML page (rendered by headless
//! Chromium when it is installed, and the screenshot checked to be a page of charts, not a blank).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use cargo_perfgate::cli::OutputArgs;
use cargo_perfgate::report::table::render_human;
use cargo_perfgate::report::{self as output, github, html, junit, markdown, notify, prometheus};
use cargo_perfgate::results::RunResults;
use cargo_perfgate::secret::Secret;
use perfgate_runtime::format::{
    encode_histogram, new_histogram, ErrorCounts, LatencySummary, LoadModel, ResourceSample,
    ResourceStats, ScenarioResult, ScenarioSpec, Schedule, SecondSample, Stats,
};
use serde_json::json;

fn spec(name: &str, line: u32, slos: serde_json::Value) -> ScenarioSpec {
    ScenarioSpec {
        name: name.into(),
        module_path: "perf".into(),
        file: "tests/perf.rs".into(),
        line,
        load: LoadModel::Open { rate: 200.0 },
        duration_ms: 10_000,
        warmup_ms: 1_000,
        timeout_ms: 10_000,
        max_in_flight: None,
        slos: serde_json::from_value(slos).unwrap(),
        regression_pct: 10.0,
        service: None,
        data: vec![],
        cost_regression_pct: 1.0,
        tiers: Default::default(),
        trends: vec![],
    }
}

/// Latencies spread around `p50` with a tail up to about `max` (µs recorded, ms given).
fn stats(count: u64, p50: f64, p99: f64, errors: u64) -> Stats {
    let mut h = new_histogram();
    for i in 0..count {
        let f = i as f64 / count as f64;
        let ms = if f < 0.5 {
            p50 * (0.5 + f)
        } else if f < 0.99 {
            p50 + (p99 - p50) * (f - 0.5) / 0.49
        } else {
            p99 * (1.0 + (f - 0.99) * 40.0)
        };
        h.record((ms * 1000.0) as u64).unwrap();
    }
    let latency = LatencySummary::from_histogram(&h);
    Stats {
        count,
        errors: ErrorCounts {
            status: errors,
            ..Default::default()
        },
        throughput: count as f64 / 10.0,
        latency: latency.clone(),
        latency_uncorrected: latency,
        histogram: encode_histogram(&h),
        histogram_uncorrected: String::new(),
        error_samples: vec![],
    }
}

fn result(spec: &ScenarioSpec, p50: f64, p99: f64, wobble: f64) -> ScenarioResult {
    let mut requests = BTreeMap::new();
    requests.insert(
        "POST /predict".to_string(),
        stats(2000, p50 * 0.8, p99 * 0.9, 0),
    );
    ScenarioResult {
        schema_version: perfgate_runtime::format::SCHEMA_VERSION,
        perfgate_version: "0.1.0".into(),
        spec: spec.clone(),
        base_url: "http://127.0.0.1:1".into(),
        started_unix_ms: 0,
        measured_secs: 10.0,
        iterations: stats(2000, p50, p99, 3),
        requests,
        schedule: Schedule::default(),
        invalid: None,
        timeseries: (0..10)
            .map(|t| SecondSample {
                t,
                iterations: 200 - (t as u64 % 3) * 2,
                errors: u64::from(t == 4),
                p50_ms: p50,
                p99_ms: p99 * (1.0 + wobble * ((t as f64) * 0.9).sin()),
            })
            .collect(),
        intervals: vec![],
        shard: None,
    }
}

fn resources(cpu: f64, rss_mib: f64) -> ResourceStats {
    ResourceStats {
        cpu_secs: cpu * 11.0,
        cpu_util: cpu,
        peak_rss_bytes: (rss_mib * 1.2 * 1048576.0) as u64,
        mean_rss_bytes: (rss_mib * 1048576.0) as u64,
        max_threads: 4,
        samples: 11,
        timeseries: (0..11)
            .map(|t| ResourceSample {
                t: t as f64,
                cpu_util: cpu * (0.8 + 0.04 * t as f64),
                rss_bytes: ((rss_mib + t as f64) * 1048576.0) as u64,
                fds: 0.0,
                threads: 4.0,
                secs: 1.0,
            })
            .collect(),
        started_unix_ms: 0,
        max_fds: 0,
    }
}

/// A run with a failing scenario (an SLO breach and a regression), a passing one and an errored one.
/// `p99` of the failing scenario lets the same shape serve as baseline and current.
fn report(run_id: &str, p99: f64, with_regressions: bool) -> RunResults {
    let predict = spec(
        "predict",
        39,
        json!([{"request": null, "metric": "p99", "op": "<", "threshold": 25.0},
               {"request": null, "metric": "errors", "op": "<", "threshold": 0.005}]),
    );
    let health = spec(
        "healthz",
        220,
        json!([{"request": null, "metric": "p99", "op": "<", "threshold": 10.0}]),
    );
    let predict_passed = p99 < 25.0;
    let regressions = if with_regressions {
        json!([
            {"scenario": "svc::predict", "request": null, "metric": "p99", "outcome": "fail",
             "baseline": 22.0, "current": p99, "change": p99 / 22.0 - 1.0, "change_low": 0.21,
             "change_high": 0.49, "tolerance": 0.1, "rounds_baseline": 5, "rounds_current": 5,
             "note": "the whole interval lies above +10%"},
            {"scenario": "svc::predict", "request": "POST /predict", "metric": "p50",
             "outcome": "inconclusive", "baseline": 8.0, "current": 8.3, "change": 0.0375,
             "change_low": -0.06, "change_high": 0.14, "tolerance": 0.1, "rounds_baseline": 5,
             "rounds_current": 5, "note": "too noisy: about 9 rounds would decide it"}
        ])
    } else {
        json!([])
    };
    let scenarios = json!([
        {
            "package": "svc", "id": "svc::predict", "test_name": "__perfgate_predict",
            "spec": predict, "result": result(&predict, 9.0, p99, 0.3),
            "resources": resources(0.6, 48.0),
            "checks": [
                {"slo": predict.slos[0], "description": "p99 < 25.0ms", "measured": p99,
                 "passed": predict_passed,
                 "message": format!("measured {}", perfgate_runtime::format::format_ms(p99))},
                {"slo": predict.slos[1], "description": "errors < 0.50%", "measured": 0.0015,
                 "passed": true, "message": "measured 0.15%"}
            ],
            "verdict": if predict_passed { "pass" } else { "fail" },
            "error": null, "log": null, "wall_secs": 11.5,
            "regressions": regressions
        },
        {
            "package": "svc", "id": "svc::healthz", "test_name": "__perfgate_healthz",
            "spec": health, "result": result(&health, 0.4, 1.2, 0.1),
            "resources": resources(0.1, 40.0),
            "checks": [{"slo": health.slos[0], "description": "p99 < 10.0ms", "measured": 1.2,
                        "passed": true, "message": "measured 1.20ms"}],
            "verdict": "pass", "error": null, "log": null, "wall_secs": 11.0
        },
        {
            "package": "svc", "id": "svc::catalogue", "test_name": "__perfgate_catalogue",
            "spec": spec("catalogue", 80, json!([])), "result": null, "resources": null,
            "checks": [], "verdict": "error",
            "error": "the scenario binary exited with status 101; the last lines of x.log:\npanicked at <boom> & \"quotes\"",
            "log": null, "wall_secs": 0.5
        }
    ]);
    serde_json::from_value(json!({
        "schema_version": 1, "perfgate_version": "0.1.0", "run_id": run_id,
        "started_unix_ms": 1_790_000_000_000u64,
        "environment": {"cpu_model": "Test CPU", "cores": 2, "os": "linux x86_64", "kernel": null,
                        "rustc": null, "git_commit": "0123456789abcdef0123", "perfgate_version": "0.1.0"},
        "target_url": null, "build_secs": 3.0, "load_secs": 23.0, "total_secs": 27.0,
        "scenarios": scenarios,
        "exit_code": if predict_passed { 2 } else { 1 }
    }))
    .unwrap()
}

fn failing() -> RunResults {
    report("20260101-000000-1", 31.2, true)
}

// ---------------------------------------------------------------------------------------------- JUnit

#[derive(Default, Debug)]
struct Suite {
    name: String,
    attrs: BTreeMap<String, String>,
    cases: Vec<(String, Option<String>, String)>, // (name, failure/error/skipped kind, text)
}

fn parse_junit(xml: &str) -> (BTreeMap<String, String>, Vec<Suite>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut root = BTreeMap::new();
    let mut suites: Vec<Suite> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let attrs = |e: &quick_xml::events::BytesStart<'_>| -> BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect()
    };
    loop {
        let ev = reader.read_event().expect("well-formed XML");
        let (e, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            // Text arrives in pieces: plain runs and entity references (`&lt;`).
            Event::Text(_) | Event::GeneralRef(_) => {
                if matches!(stack.last().map(String::as_str), Some("failure" | "error")) {
                    let text = match &ev {
                        Event::Text(t) => t.decode().unwrap().into_owned(),
                        Event::GeneralRef(r) => match r.decode().unwrap().as_ref() {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => panic!("unexpected entity &{other};"),
                        },
                        _ => unreachable!(),
                    };
                    suites
                        .last_mut()
                        .unwrap()
                        .cases
                        .last_mut()
                        .unwrap()
                        .2
                        .push_str(&text);
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let e = e.unwrap();
        let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
        let parent = stack.last().cloned().unwrap_or_default();
        match name.as_str() {
            "testsuites" => {
                assert!(stack.is_empty());
                root = attrs(&e);
            }
            "testsuite" => {
                assert_eq!(parent, "testsuites");
                let a = attrs(&e);
                suites.push(Suite {
                    name: a["name"].clone(),
                    attrs: a,
                    cases: vec![],
                });
            }
            "testcase" => {
                assert_eq!(parent, "testsuite");
                let a = attrs(&e);
                assert!(a.contains_key("classname") && a.contains_key("time"));
                suites
                    .last_mut()
                    .unwrap()
                    .cases
                    .push((a["name"].clone(), None, String::new()));
            }
            "failure" | "error" | "skipped" => {
                assert_eq!(parent, "testcase", "{name} outside a testcase");
                let a = attrs(&e);
                let case = suites.last_mut().unwrap().cases.last_mut().unwrap();
                assert!(case.1.is_none(), "two outcomes in one testcase");
                case.1 = Some(name.clone());
                case.2 = a.get("message").cloned().unwrap_or_default() + "\n";
            }
            "properties" | "property" => {}
            "system-out" => assert_eq!(parent, "testcase", "system-out outside a testcase"),
            other => panic!("unexpected element <{other}>"),
        }
        if !empty {
            stack.push(name);
        }
    }
    (root, suites)
}

#[test]
fn junit_has_a_testcase_per_scenario_and_check_and_counts_that_match() {
    let r = failing();
    let xml = junit::render(&r);
    let (root, suites) = parse_junit(&xml);
    assert_eq!(suites.len(), r.scenarios.len());
    let mut total = 0;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (suite, s) in suites.iter().zip(&r.scenarios) {
        assert_eq!(suite.name, s.id);
        // The run itself, each SLO check, each regression check.
        let expected = 1 + s.checks.len() + s.regressions.len();
        assert_eq!(suite.cases.len(), expected, "{suite:?}");
        assert_eq!(suite.attrs["tests"], expected.to_string());
        for kind in ["failure", "error", "skipped"] {
            let n = suite
                .cases
                .iter()
                .filter(|c| c.1.as_deref() == Some(kind))
                .count();
            let attr = if kind == "skipped" {
                kind.to_string()
            } else {
                format!("{kind}s")
            };
            assert_eq!(suite.attrs[&attr], n.to_string(), "{kind} in {suite:?}");
            *kinds.entry(kind.into()).or_default() += n;
        }
        total += expected;
    }
    assert_eq!(root["tests"], total.to_string());
    assert_eq!(root["failures"], kinds["failure"].to_string());
    assert_eq!(root["errors"], kinds["error"].to_string());
    assert_eq!(root["skipped"], kinds["skipped"].to_string());
    // predict: the p99 SLO and the p99 regression fail, the p50 regression is inconclusive (skipped).
    assert_eq!(
        (kinds["failure"], kinds["error"], kinds["skipped"]),
        (2, 1, 1)
    );
    let predict = &suites[0];
    let slo = predict
        .cases
        .iter()
        .find(|c| c.0 == "slo: p99 < 25.0ms")
        .unwrap();
    assert_eq!(slo.1.as_deref(), Some("failure"));
    assert!(
        slo.2.contains("measured 31.2ms") && slo.2.contains("tests/perf.rs:39"),
        "{slo:?}"
    );
    let reg = predict
        .cases
        .iter()
        .find(|c| c.0 == "regression: p99")
        .unwrap();
    assert!(
        reg.2.contains("22.0ms → 31.2ms") && reg.2.contains("+41.8% [+21.0%, +49.0%]"),
        "{reg:?}"
    );
    let errored = &suites[2].cases[0];
    assert_eq!(errored.1.as_deref(), Some("error"));
    assert!(
        errored.2.contains("panicked at <boom> & \"quotes\""),
        "{errored:?}"
    );
    // A passing run has no failure at all.
    let ok = junit::render(&report("2", 20.0, false));
    let (root, _) = parse_junit(&ok);
    assert_eq!(root["failures"], "0");
}

// ------------------------------------------------------------------------------- Markdown, terminal

#[test]
fn markdown_snapshot() {
    let md = markdown::render(&failing(), Some("https://ci.example/runs/7"));
    insta::assert_snapshot!("markdown", md);
}

#[test]
fn terminal_snapshot() {
    let text = render_human(
        &failing(),
        Some(Path::new("target/perfgate/r/results.json")),
        false,
    );
    insta::assert_snapshot!("terminal", text);
}

#[test]
fn github_annotations_point_at_the_perf_test_line() {
    let r = failing();
    let text = github::annotations(&r, |s, f| format!("{}/{f}", s.package));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("::error file=svc/tests/perf.rs,line=39,title=perfgate%3A svc%3A%3Apredict breached an SLO::")
            && l.contains("p99 < 25.0ms — measured 31.2ms")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error file=svc/tests/perf.rs,line=39,")
                && l.contains("regressed")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning ") && l.contains("inconclusive")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("line=80,") && l.contains("did not run")),
        "{text}"
    );
    // Multi-line messages stay on one line.
    assert!(lines.iter().all(|l| l.starts_with("::")), "{text}");
    assert!(
        !text.contains("healthz"),
        "a passing scenario is not annotated: {text}"
    );
}

// ------------------------------------------------------------------------------------- OpenMetrics

/// A line-format validator of the OpenMetrics text exposition (the subset perfgate writes: gauges).
fn validate_openmetrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.last(), Some(&""), "ends with a newline");
    let lines = &lines[..lines.len() - 1];
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap();
            let name = parts.next().expect("metadata names a family");
            let value = parts.next().expect("metadata has a value");
            assert!(name_ok(name), "{line}");
            match kw {
                "TYPE" => {
                    assert!(!declared.contains_key(name), "family {name} declared twice");
                    assert!(
                        [
                            "gauge",
                            "counter",
                            "info",
                            "stateset",
                            "histogram",
                            "summary",
                            "unknown"
                        ]
                        .contains(&value),
                        "{line}"
                    );
                    declared.insert(name.to_string(), value.to_string());
                    current = Some(name.to_string());
                }
                "UNIT" => {
                    assert_eq!(current.as_deref(), Some(name), "{line}");
                    assert!(name.ends_with(&format!("_{value}")), "unit suffix: {line}");
                }
                "HELP" => assert_eq!(current.as_deref(), Some(name), "{line}"),
                other => panic!("unknown metadata {other}: {line}"),
            }
            continue;
        }
        // name{label="value",...} value
        let (name, rest) = line.split_at(line.find(['{', ' ']).expect("sample"));
        assert!(name_ok(name), "{line}");
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {line}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                let (i, c) = chars.next().expect("labels close");
                if c == '}' {
                    end = i;
                    break;
                }
                if c == ',' {
                    continue;
                }
                let start = i;
                let mut key_end = i;
                while let Some(&(j, c)) = chars.peek() {
                    if c == '=' {
                        key_end = j;
                        break;
                    }
                    chars.next();
                }
                let key = &r[start..key_end];
                assert!(name_ok(key), "label name {key:?} in {line}");
                chars.next(); // '='
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    let (_, c) = chars.next().expect("label value closes");
                    match c {
                        '"' => break,
                        '\\' => match chars.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            e => panic!("bad escape \\{e} in {line}"),
                        },
                        '\n' => panic!("raw newline"),
                        c => value.push(c),
                    }
                }
                assert!(
                    labels.insert(key.to_string(), value).is_none(),
                    "label twice: {line}"
                );
            }
            rest = &r[end + 1..];
        }
        let value = rest.strip_prefix(' ').expect("one space before the value");
        assert!(!value.contains(' '), "no timestamp expected: {line}");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value {v:?} in {line}")),
        };
        samples.push((name.to_string(), labels, v));
    }
    samples
}

#[test]
fn openmetrics_parses_and_carries_every_scenario() {
    let r = failing();
    let text = prometheus::render(&r, Some("feature/x"));
    let samples = validate_openmetrics(&text);
    for s in &r.scenarios {
        assert!(
            samples
                .iter()
                .any(|(n, l, _)| n == "perfgate_scenario_passed" && l["scenario"] == s.id),
            "{} missing",
            s.id
        );
    }
    let p99 = samples
        .iter()
        .find(|(n, l, _)| {
            n == "perfgate_latency_seconds"
                && l["scenario"] == "svc::predict"
                && l["request"] == prometheus::ITERATION
                && l["quantile"] == "0.99"
        })
        .expect("p99 of predict");
    let expected = r.scenarios[0]
        .result
        .as_ref()
        .unwrap()
        .iterations
        .latency
        .p99_ms
        / 1000.0;
    assert!((p99.2 - expected).abs() < 1e-9, "{p99:?}");
    assert_eq!(p99.1["commit"], "0123456789abcdef0123");
    assert_eq!(p99.1["branch"], "feature/x");
    assert!(samples
        .iter()
        .any(|(n, l, _)| n == "perfgate_throughput_per_second" && l["request"] == "POST /predict"));
    assert!(samples
        .iter()
        .any(|(n, l, v)| n == "perfgate_service_peak_rss_bytes"
            && l["scenario"] == "svc::healthz"
            && *v > 40.0 * 1048576.0));
    assert!(samples
        .iter()
        .any(|(n, l, v)| n == "perfgate_regression_change_ratio"
            && l["metric"] == "p99"
            && *v > 0.4));
    assert!(samples
        .iter()
        .any(|(n, l, v)| n == "perfgate_slo_passed" && l["slo"] == "p99 < 25.0ms" && *v == 0.0));
    // Label values are escaped.
    let mut odd = r.clone();
    odd.scenarios[0].id = "svc::\"quoted\"\\path".into();
    validate_openmetrics(&prometheus::render(&odd, None));
}

// ----------------------------------------------------------------------------------------- webhook

/// A one-shot HTTP server: returns its URL and a handle yielding (request line, body).
fn one_shot_server(status: u16) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        .unwrap();
        (
            request_line.trim().to_string(),
            String::from_utf8(body).unwrap(),
        )
    });
    (format!("http://127.0.0.1:{port}"), handle)
}

const TOKEN: &str = "T0KEN-s3cr3t-B4ND";

#[test]
fn failure_webhook_is_received_and_its_url_is_never_written() {
    let (base, server) = one_shot_server(200);
    let url = format!("{base}/services/{TOKEN}?x=1");
    let dir = tempfile::tempdir().unwrap();
    let args = OutputArgs {
        junit: Some(dir.path().join("junit.xml")),
        markdown: Some(dir.path().join("perf.md")),
        prometheus: Some(dir.path().join("perf.prom")),
        notify: Some(Secret::from(url.clone())),
        run_url: Some("https://ci.example/runs/7".into()),
    };
    let ui = cargo_perfgate::ui::Ui {
        quiet: true,
        verbose: false,
    };
    let r = failing();
    let written = output::emit(
        &r,
        &args,
        &output::EmitContext {
            workspace_root: dir.path(),
            package_roots: vec![],
            stdout_is_human: true,
        },
        &ui,
    );
    let (request_line, body) = server.join().unwrap();
    assert_eq!(request_line, format!("POST /services/{TOKEN}?x=1 HTTP/1.1"));
    let msg: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains("perfgate failed at `0123456789ab`: 2 of 3 scenarios did not pass"),
        "{text}"
    );
    assert!(
        text.contains("`svc::predict` p99: SLO < 25.0ms → 31.2ms"),
        "{text}"
    );
    assert!(
        text.contains("`svc::predict` p99 22.0ms → 31.2ms, +41.8% [+21.0%, +49.0%]"),
        "{text}"
    );
    assert!(
        text.contains("<https://ci.example/runs/7|run 20260101-000000-1>"),
        "{text}"
    );
    assert!(
        msg["blocks"].as_array().is_some_and(|b| b.len() == 3),
        "{msg}"
    );
    assert!(written.iter().any(|w| w.0 == "Notified"), "{written:?}");
    // The secret is in no report and no message.
    assert_eq!(
        written.len(),
        4,
        "three reports and the notification: {written:?}"
    );
    for (_, w) in &written {
        assert!(!w.contains(TOKEN), "{w}");
    }
    for f in ["junit.xml", "perf.md", "perf.prom"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(
            !text.is_empty() && !text.contains(TOKEN) && !text.contains(&base),
            "{f}"
        );
    }
    assert!(!format!("{args:?}").contains(TOKEN));
}

#[test]
fn webhook_failures_are_errors_that_do_not_name_the_url() {
    let (base, server) = one_shot_server(500);
    let url = format!("{base}/hook/{TOKEN}");
    let e = notify::post(&url, &json!({"text": "x"}))
        .unwrap_err()
        .to_string();
    server.join().unwrap();
    assert!(e.contains("HTTP 500") && !e.contains(TOKEN), "{e}");
    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = notify::post(&format!("http://127.0.0.1:{port}/{TOKEN}"), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(!e.contains(TOKEN), "{e}");
    let e = notify::post(&format!("ftp://x/{TOKEN}"), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(!e.contains(TOKEN), "{e}");
}

#[test]
fn a_passing_run_notifies_nobody() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook/{TOKEN}", listener.local_addr().unwrap());
    let mut ok = report("2", 20.0, false);
    ok.scenarios.truncate(2);
    ok.exit_code = 0;
    let args = OutputArgs {
        notify: Some(Secret::from(url)),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let written = output::emit(
        &ok,
        &args,
        &output::EmitContext {
            workspace_root: dir.path(),
            package_roots: vec![],
            stdout_is_human: true,
        },
        &cargo_perfgate::ui::Ui {
            quiet: true,
            verbose: false,
        },
    );
    assert!(written.is_empty(), "{written:?}");
    // emit returned, so a POST would have connected by now: the backlog is empty.
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}

// -------------------------------------------------------------------------------------------- HTML

fn html_page() -> String {
    let runs = vec![
        html::Run {
            label: "baseline".into(),
            report: report("20251231-000000-1", 22.0, false),
        },
        html::Run {
            label: "current".into(),
            report: failing(),
        },
    ];
    html::render(&runs)
}

/// The failing run with its leak checks fitted on a service whose memory climbs 64 KiB every 0.3 s
/// (750 MiB an hour) over a minute while its descriptors stay at 40.
fn leaking() -> RunResults {
    use cargo_perfgate::slo::{trend_checks, TrendInput};
    let mut r = failing();
    let s = &mut r.scenarios[0];
    let mut res = resources(0.6, 48.0);
    res.started_unix_ms = 1_000_000;
    res.max_fds = 40;
    res.timeseries = (1..=200)
        .map(|i: u64| ResourceSample {
            t: i as f64 * 0.3,
            cpu_util: 0.5,
            rss_bytes: (48 << 20) + i * 65536,
            fds: 40.0,
            threads: 4.0,
            secs: 0.3,
        })
        .collect();
    s.trends = trend_checks(
        s.spec.as_ref().unwrap(),
        &TrendInput {
            resources: Some(&res),
            unsampled: "",
            measured: Some((1_000_000, 1_060_000)),
            rounds: &[],
            always: true,
            confidence: 0.99,
        },
    );
    s.resources = Some(res);
    r
}

#[test]
fn leak_checks_show_their_slope_and_interval_in_every_report() {
    let r = leaking();
    let rss = &r.scenarios[0].trends[0];
    assert_eq!(rss.description, "rss_growth < 1.00MiB/h");
    assert_eq!(rss.outcome, cargo_perfgate::gate::Outcome::Fail, "{rss:?}");
    // A straight line: its slope, and an interval of that one value.
    let line = "rss_growth +750MiB/h [+750MiB/h, +750MiB/h] over 59s (99%)";
    assert!(
        rss.message.starts_with(&line["rss_growth ".len()..]),
        "{}",
        rss.message
    );

    let term = render_human(&r, None, false);
    assert!(term.contains(&format!("✗ svc::predict: {line}")), "{term}");
    assert!(
        term.contains("✓ svc::predict: fds_growth +0/h [+0/h, +0/h]"),
        "{term}"
    );

    let xml = junit::render(&r);
    let (_, suites) = parse_junit(&xml);
    let predict = suites.iter().find(|s| s.name == "svc::predict").unwrap();
    let (_, kind, text) = predict
        .cases
        .iter()
        .find(|c| c.0 == "leak: rss_growth < 1.00MiB/h")
        .unwrap_or_else(|| panic!("no leak testcase in {xml}"));
    assert_eq!(kind.as_deref(), Some("failure"));
    assert!(text.contains(line), "{text}");
    assert!(
        xml.contains("<system-out>fds_growth +0/h [+0/h, +0/h] over 59s (99%): within 0/h: pass</system-out>"),
        "a passed check carries its slope: {xml}"
    );
    assert!(predict
        .cases
        .iter()
        .any(|c| c.0 == "drift: p99_drift < 50%/h" && c.1.as_deref() == Some("skipped")));

    let md = markdown::render(&r, None);
    assert!(md.contains("#### Leaks and drift"), "{md}");
    assert!(
        md.contains("| `svc::predict` | `rss_growth < 1.00MiB/h` (default) | +750MiB/h [+750MiB/h, +750MiB/h] | 59s, 60 points, 99% | 1.00MiB/h | ❌ **FAIL** |"),
        "{md}"
    );

    let metrics = validate_openmetrics(&prometheus::render(&r, None));
    let slope = metrics
        .iter()
        .find(|(n, l, _)| {
            n == "perfgate_trend_per_hour" && l["metric"] == "rss_growth" && l["bound"] == "low"
        })
        .expect("the rss slope's lower bound");
    assert!((slope.2 - 750.0 * 1048576.0).abs() < 1e6, "{slope:?}");
    assert!(metrics
        .iter()
        .any(|(n, l, v)| n == "perfgate_trend_passed" && l["metric"] == "fds_growth" && *v == 1.0));

    let annotations = github::annotations(&r, |_, f| f.to_string());
    assert!(
        annotations.contains("::error file=tests/perf.rs,line=39,title=perfgate%3A svc%3A%3Apredict leaks or drifts::svc::predict: rss_growth +750MiB/h [+750MiB/h, +750MiB/h]"),
        "{annotations}"
    );
    assert!(notify::failure_lines(&r)
        .iter()
        .any(|l| l.starts_with("`svc::predict` rss_growth +750MiB/h")));

    let page = html::render(&[html::Run {
        label: "current".into(),
        report: r,
    }]);
    assert!(page.contains("Service open file descriptors"));
    // The fitted lines are drawn: the leak's in red, the flat count's in green.
    assert!(page.contains("fit +750MiB/h (FAIL)") && page.contains("#cf222e"));
    assert!(page.contains("fit +0/h (pass)") && page.contains("#1a7f37"));
    assert!(
        page.contains("+750MiB/h [+750MiB/h, +750MiB/h]"),
        "the check table"
    );
}

#[test]
fn html_report_is_self_contained_with_charts() {
    let page = html_page();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Five charts per scenario with results (the errored one has empty charts, still five frames).
    assert_eq!(page.matches("<svg ").count(), 15);
    assert_eq!(
        page.matches("<polyline").count(),
        2 * 5 * 2,
        "two runs × five charts × two scenarios"
    );
    for title in [
        "Latency by percentile",
        "Throughput per second",
        "p99 latency per second",
        "Service CPU",
        "Service memory (RSS)",
    ] {
        assert!(page.contains(title), "{title}");
    }
    assert!(page.contains("p99.9"), "log-scaled percentile axis");
    assert!(page.contains("stroke-dasharray"), "baseline dashed");
    // Nothing is fetched: no scripts, stylesheets, images or fonts from elsewhere.
    for bad in [
        "<script", "<link", "<img", "@import", "url(", "https://", "src=",
    ] {
        assert!(!page.contains(bad), "{bad}");
    }
    assert!(page.contains("panicked at &lt;boom&gt; &amp; &quot;quotes&quot;"));
    assert!(
        page.contains("+41.8% [+21.0%, +49.0%]"),
        "the regression table"
    );
}

fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|name| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|c| c.is_file())
            })
        })
        .next()
}

#[test]
fn html_report_renders_charts_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        println!("SKIPPED: chromium is not installed (apt-get install -y chromium); the HTML report was not rendered");
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, html_page()).unwrap();
    let shot = dir.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
            &format!("file://{}", page.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Chromium can hang on a broken machine: give up after two minutes rather than block the suite.
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if waited >= 1200 {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium failed or hung: {status:?}"
    );
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!((w, h), (1200, 1600));
    let mut colours = std::collections::HashMap::new();
    let mut blue_rows = std::collections::BTreeSet::new();
    for (i, px) in bytes.chunks(channels).enumerate() {
        let rgb = (px[0], px[1], px[2]);
        *colours.entry(rgb).or_insert(0usize) += 1;
        // The current run's line colour (#1f6feb), anti-aliased.
        if px[2] > 180 && px[0] < 110 && px[1] < 150 && px[1] > 70 {
            blue_rows.insert(i / w);
        }
    }
    // Ink: anything darker than the page's light greys (text, axes, lines, table borders).
    let ink: usize = colours
        .iter()
        .filter(|(c, _)| c.0 < 200 || c.1 < 200 || c.2 < 200)
        .map(|(_, n)| n)
        .sum();
    println!(
        "screenshot {}: {} distinct colours, {:.1}% ink, current-run line on {} rows",
        shot.display(),
        colours.len(),
        100.0 * ink as f64 / (w * h) as f64,
        blue_rows.len()
    );
    assert!(
        colours.len() > 50,
        "a blank or flat page: {} colours",
        colours.len()
    );
    assert!(ink * 100 > w * h, "less than 1% of the page is drawn");
    // The charts are drawn: the current run's line spans many rows (several charts, not one link).
    assert!(
        blue_rows.len() > 150,
        "chart lines on only {} rows",
        blue_rows.len()
    );
}

// --------------------------------------------------------------------------------------------- CLI

#[test]
fn report_flags_and_the_report_subcommand_parse() {
    use cargo_perfgate::cli::{Cli, Command};
    let cli = Cli::parse_args([
        "cargo-perfgate",
        "perfgate",
        "--junit",
        "j.xml",
        "--markdown",
        "m.md",
        "--prometheus",
        "p.prom",
        "--notify",
        "http://127.0.0.1:1/T0KEN",
        "--run-url",
        "https://ci/1",
        "checkout",
    ])
    .unwrap();
    let Command::Run(r) = cli.action() else {
        panic!("not a run")
    };
    assert_eq!(r.filter.as_deref(), Some("checkout"));
    assert_eq!(r.outputs.junit, Some(PathBuf::from("j.xml")));
    assert_eq!(r.outputs.markdown, Some(PathBuf::from("m.md")));
    assert_eq!(r.outputs.prometheus, Some(PathBuf::from("p.prom")));
    assert_eq!(
        r.outputs.notify.as_ref().map(|s| s.expose()),
        Some("http://127.0.0.1:1/T0KEN")
    );
    assert!(
        !format!("{cli:?}").contains("T0KEN"),
        "the URL is not in Debug output"
    );
    let cli = Cli::parse_args([
        "cargo-perfgate",
        "perfgate",
        "-p",
        "shop",
        "report",
        "a/results.json",
        "b/results.json",
        "-o",
        "out.html",
    ])
    .unwrap();
    let Command::Report(r) = cli.action() else {
        panic!("not report")
    };
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.output, Some(PathBuf::from("out.html")));
    let help = Cli::parse_args(["cargo-perfgate", "perfgate", "--help"])
        .unwrap_err()
        .to_string();
    for flag in [
        "--junit",
        "--markdown",
        "--prometheus",
        "--notify",
        "--run-url",
        "report",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
