//! End to end: `cargo perfgate` on the `basic` fixture (a hyper service with a scenario in `tests/`
//! and one in `src/`), checking exit codes, messages, results files, and that nothing outlives a run.
//!
//! The first test to run builds the fixture's dependencies (tokio, hyper) in release mode into a target
//! dir shared by all of them; the tests take turns ([`common::serial`]).

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use common::{assert_no_leftovers, our_processes, perfgate_files, run, serial, Fixture, Running};

/// The fixture copy used by the tests that do not edit it.
fn basic() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture::new("basic", "basic"))
}

/// What every run must leave behind: the user's own ignored test never ran, no process survived.
fn assert_clean(f: &Fixture, out: &common::Output) {
    assert!(
        !f.marker().exists(),
        "cargo perfgate ran the user's own #[ignore] test\n{}",
        out.show()
    );
    assert_no_leftovers();
}

#[test]
fn a_fast_service_passes_and_both_scenarios_are_reported() {
    let _turn = serial();
    let f = basic();
    let since = SystemTime::now();
    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let all = out.all();
    // `work` lives in tests/perf.rs, `health` in a #[cfg(test)] module of src/main.rs.
    assert!(
        all.contains("work"),
        "the tests/ scenario is missing\n{}",
        out.show()
    );
    assert!(
        all.contains("health"),
        "the src/ scenario is missing\n{}",
        out.show()
    );
    // The report says where the results went; the file is under <target>/perfgate/<run>/.
    let path = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .unwrap_or_else(|| {
            panic!(
                "the report does not say where results.json is\n{}",
                out.show()
            )
        });
    let path = std::path::Path::new(path);
    assert!(
        path.starts_with(common::target_dir().join("perfgate")) && path.ends_with("results.json"),
        "{path:?}"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("results.json parses");
    assert!(
        text.contains("\"work\"") && text.contains("\"health\""),
        "results.json lacks a scenario: {json}"
    );
    // Both load models went through the whole pipeline: `health` is open at 50/s for 1 s.
    let health = json["scenarios"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["result"]["spec"]["name"] == "health"))
        .unwrap_or_else(|| panic!("no result for health: {json}"));
    let result = &health["result"];
    assert_eq!(result["spec"]["load"]["model"], "open", "{result}");
    let n = result["iterations"]["count"].as_u64().unwrap();
    assert!((40..=60).contains(&n), "50/s for 1 s ran {n} iterations");
    assert!(
        result["iterations"]["latency"]["p50_ms"].as_f64().unwrap()
            >= result["iterations"]["latency_uncorrected"]["p50_ms"]
                .as_f64()
                .unwrap(),
        "corrected latency is below the uncorrected one: {result}"
    );
    // The service's output was captured next to the results.
    assert!(
        !perfgate_files(since, |n| n.ends_with(".log")).is_empty(),
        "no service log was written"
    );
    assert_clean(f, &out);
    eprintln!("passing run took {:?}", out.elapsed);
}

#[test]
fn a_slower_service_breaches_the_p99_slo_and_exits_1() {
    let _turn = serial();
    let f = basic();
    let out = run(f.perfgate(&[]).env("FIXTURE_DELAY_MS", "80"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    let all = out.all();
    assert!(
        all.lines()
            .any(|l| l.contains("p99") && (l.contains("40") || l.contains("work"))),
        "no line names the breached p99 SLO\n{}",
        out.show()
    );
    assert!(
        all.contains("work"),
        "the breaching scenario is not named\n{}",
        out.show()
    );
    assert_clean(f, &out);
}

#[test]
fn a_bin_that_does_not_exist_is_an_error_naming_it() {
    let _turn = serial();
    let f = Fixture::new("basic", "bad-bin");
    f.edit_manifest(r#"bin = "fixture-svc""#, r#"bin = "no-such-svc""#);
    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.all().contains("no-such-svc"),
        "the message does not name the bin\n{}",
        out.show()
    );
    assert_clean(&f, &out);
}

#[test]
fn a_service_that_exits_at_start_is_an_error_with_its_log() {
    let _turn = serial();
    let f = basic();
    let out = run(f.perfgate(&[]).env("FIXTURE_EXIT_AT_START", "1"));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    let all = out.all();
    assert!(
        all.contains("refusing to start because FIXTURE_EXIT_AT_START=1"),
        "the service's stderr is not quoted\n{}",
        out.show()
    );
    assert!(
        all.contains("did not start") && all.contains("exited with status 3"),
        "the exit cause is missing\n{}",
        out.show()
    );
    assert_clean(f, &out);
}

#[test]
fn list_shows_both_scenarios_without_starting_the_service() {
    let _turn = serial();
    let f = basic();
    let since = SystemTime::now();
    // Were the service started, it would exit at once and make the run fail.
    let out = run(f.perfgate(&["list"]).env("FIXTURE_EXIT_AT_START", "1"));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let all = out.all();
    assert!(
        all.contains("work") && all.contains("health"),
        "a scenario is missing from the list\n{}",
        out.show()
    );
    assert!(
        perfgate_files(since, |n| n.ends_with(".log")).is_empty(),
        "list wrote a service log"
    );
    assert_clean(f, &out);
}

#[test]
fn ctrl_c_mid_run_exits_130_and_kills_everything() {
    let _turn = serial();
    let f = basic();
    let mut running = Running::spawn(&mut f.perfgate(&[]));
    let pid = running.child.id() as libc::pid_t;
    // Wait until the service is up and a scenario binary is sending load (not merely describing itself).
    let deadline = Instant::now() + common::RUN_TIMEOUT;
    loop {
        let procs = our_processes();
        let service = procs.iter().any(|p| p.cmdline.contains("--port"));
        let scenario = procs
            .iter()
            .any(|p| p.environ.iter().any(|v| v == "PERFGATE_MODE=run"));
        if service && scenario {
            break;
        }
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!(
                "cargo perfgate ended ({status}) before a scenario ran: {}",
                running.wait(Duration::ZERO).show()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no scenario started within {:?}",
            common::RUN_TIMEOUT
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = running.wait(Duration::from_secs(30));
    let took = sent.elapsed();
    assert_eq!(out.code(), Some(130), "{}", out.show());
    assert!(
        out.stderr.contains("interrupted"),
        "no word about the interruption\n{}",
        out.show()
    );
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert_clean(f, &out);
}
