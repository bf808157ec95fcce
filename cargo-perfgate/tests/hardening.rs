//! End to end: what a broken service, a careless configuration or a hostile environment must not get
//! past — a failing scenario never passes, corrupt files are named, secrets stay out of every output,
//! no process outlives a run (even one killed with SIGKILL), runs do not measure each other, load
//! stays on this machine unless allowed, and a binary is never measured from another checkout.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{assert_no_leftovers, our_processes, run, serial, Fixture, Running};

fn basic() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture::new("basic", "hardening"))
}

/// The path a human-format run prints after `results: `.
fn results_path(out: &common::Output) -> std::path::PathBuf {
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line\n{}", out.show()));
    std::path::PathBuf::from(line.trim())
}

#[test]
fn a_scenario_whose_requests_all_fail_fails_without_a_declared_error_slo() {
    let _turn = serial();
    let f = Fixture::new("basic", "hardening-implicit");
    // `work` without its declared error bound: only the implicit check stands between a 404 on
    // every request and a pass.
    f.edit(
        "tests/perf.rs",
        r#"p99 < "40ms", errors < "1%")]"#,
        r#"p99 < "40ms")]"#,
    );
    let out = run(f
        .perfgate(&["work", "--duration", "1s", "--warmup", "0s"])
        .env("FIXTURE_STATUS", "404"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    assert!(
        out.stdout.contains("errors < 1.00% (implicit")
            && out.stdout.contains("an iteration succeeds — all"),
        "{}",
        out.show()
    );
    assert_no_leftovers();
}

#[test]
fn a_corrupt_results_file_is_an_error_naming_the_file_scenario_and_field() {
    let _turn = serial();
    let f = basic();
    let out = run(&mut f.perfgate(&["work", "--duration", "1s", "--warmup", "0s"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let good = results_path(&out);
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    doc["scenarios"][0]["result"]["iterations"]["latency"]["p50_ms"] = serde_json::json!(-1.0);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("base.json");
    std::fs::write(&bad, doc.to_string()).unwrap();
    let out = run(f.perfgate(&["compare"]).arg(&bad).arg(&good));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr
            .contains(&format!("{} is corrupt", bad.display()))
            && out.stderr.contains("fixture-svc::work")
            && out.stderr.contains("iterations.latency.p50_ms` is -1"),
        "{}",
        out.show()
    );
}

#[test]
fn a_misspelt_workspace_key_is_an_error_even_with_a_target_url() {
    let _turn = serial();
    let f = Fixture::new("basic", "hardening-typo");
    f.edit_manifest(
        "[workspace]",
        "[workspace]\nmetadata.perfgate = { baselne = \"b.toml\" }",
    );
    for args in [&[][..], &["--target-url", "http://127.0.0.1:9"][..]] {
        let out = run(&mut f.perfgate(args));
        assert_eq!(out.code(), Some(2), "{}", out.show());
        assert!(
            out.stderr.contains("unknown key `baselne`")
                && out.stderr.contains("[workspace.metadata.perfgate]"),
            "{}",
            out.show()
        );
    }
}

#[test]
fn secrets_reach_no_child_and_no_output() {
    let _turn = serial();
    let f = Fixture::new("basic", "hardening-secrets");
    // The service is handed one credential on purpose (and prints its whole environment).
    f.edit_manifest(
        r#"ready = "/healthz" }"#,
        r#"ready = "/healthz", pass_env = ["FIXTURE_API_KEY"] }"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let (junit, markdown, summary) = (
        dir.path().join("junit.xml"),
        dir.path().join("report.md"),
        dir.path().join("step-summary.md"),
    );
    const GITHUB: &str = "ghs_notarealtoken0123456789";
    const HOOK: &str = "http://127.0.0.1:9/hooks/T0KEN-not-real-4242";
    const HANDED: &str = "sk_test_handed_over_5151";
    let out = run(f
        .perfgate(&["work", "--duration", "1s", "--warmup", "0s"])
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&markdown)
        .env("GITHUB_TOKEN", GITHUB)
        .env("PERFGATE_NOTIFY_URL", HOOK)
        .env("FIXTURE_API_KEY", HANDED)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("FIXTURE_PRINT_ENV", "1")
        // A failing run, so that the webhook is tried and the service's log tail is in the reports.
        .env("FIXTURE_DIE_AFTER", "5"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    let results = results_path(&out);
    let run_dir = results.parent().unwrap();
    let service_log = run_dir.join("fixture-svc.log");
    let log = std::fs::read_to_string(&service_log).unwrap();
    assert!(
        log.contains("FIXTURE_PRINT_ENV=1"),
        "the service printed nothing:\n{log}"
    );
    assert!(
        !log.contains("GITHUB_TOKEN") && !log.contains("PERFGATE_NOTIFY_URL"),
        "the service inherited a secret:\n{log}"
    );
    assert!(
        log.contains("FIXTURE_API_KEY=[redacted]"),
        "the handed-over credential was not redacted in the log:\n{log}"
    );
    let mut files = vec![junit, markdown, summary, results.clone(), service_log];
    for e in std::fs::read_dir(run_dir.join("scenarios")).unwrap() {
        files.push(e.unwrap().path());
    }
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for secret in [GITHUB, HOOK, HANDED, "T0KEN-not-real"] {
            assert!(
                !text.contains(secret),
                "{} holds `{secret}`",
                file.display()
            );
        }
    }
    for secret in [GITHUB, HOOK, HANDED] {
        assert!(!out.all().contains(secret), "the terminal shows `{secret}`");
    }
    assert_no_leftovers();
}

#[test]
fn a_daemon_that_left_the_process_group_does_not_outlive_the_run() {
    let _turn = serial();
    let f = basic();
    let out = run(f
        .perfgate(&["work", "--duration", "1s", "--warmup", "0s"])
        .env("FIXTURE_DAEMON", "1"));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert_no_leftovers();
}

#[test]
fn what_a_killed_run_left_behind_is_stopped_by_the_next_one() {
    let _turn = serial();
    let f = basic();
    let mut running = Running::spawn(
        f.perfgate(&["work", "--duration", "30s", "--warmup", "0s"])
            .env("FIXTURE_DAEMON", "1"),
    );
    let deadline = Instant::now() + common::RUN_TIMEOUT;
    // The daemon and a scenario sending load: the run is in the middle of its work.
    loop {
        let procs = our_processes();
        let daemon = procs.iter().any(|p| p.cmdline.starts_with("sleep 300"));
        let scenario = procs
            .iter()
            .any(|p| p.environ.iter().any(|v| v == "PERFGATE_MODE=run"));
        if daemon && scenario {
            break;
        }
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!(
                "ended ({status}) early: {}",
                running.wait(Duration::ZERO).show()
            );
        }
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.child.kill().unwrap();
    let _ = running.wait(Duration::from_secs(10));
    // PDEATHSIG took the direct children; the daemon left the group and survived.
    std::thread::sleep(Duration::from_millis(300));
    let left = our_processes();
    assert!(
        left.iter().any(|p| p.cmdline.starts_with("sleep 300")),
        "nothing survived the SIGKILL, so nothing tests the clean-up: {:?}",
        left.iter().map(|p| &p.cmdline).collect::<Vec<_>>()
    );
    let out = run(&mut f.perfgate(&["list"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr
            .contains("left behind by an earlier `cargo perfgate` that was killed")
            && out.stderr.contains("sleep 300"),
        "{}",
        out.show()
    );
    assert_no_leftovers();
}

#[test]
fn a_second_run_in_the_same_target_dir_waits_or_with_no_wait_fails() {
    let _turn = serial();
    let f = basic();
    let mut first =
        Running::spawn(&mut f.perfgate(&["work", "--duration", "20s", "--warmup", "0s"]));
    let deadline = Instant::now() + common::RUN_TIMEOUT;
    while !our_processes()
        .iter()
        .any(|p| p.environ.iter().any(|v| v == "PERFGATE_MODE=run"))
    {
        if first.child.try_wait().unwrap().is_some() {
            panic!(
                "the first run ended early: {}",
                first.wait(Duration::ZERO).show()
            );
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(&mut f.perfgate(&["work", "--no-wait"]));
    assert_eq!(second.code(), Some(2), "{}", second.show());
    assert!(
        second.stderr.contains(&format!(
            "another `cargo perfgate` (pid {}) is measuring",
            first.child.id()
        )),
        "{}",
        second.show()
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(first.child.id() as i32, libc::SIGINT) },
        0
    );
    let out = first.wait(Duration::from_secs(30));
    assert_eq!(out.code(), Some(130), "{}", out.show());
    assert_no_leftovers();
}

#[test]
fn a_service_that_dies_mid_run_fails_that_scenario_and_the_others_still_run() {
    let _turn = serial();
    let f = basic();
    let out = run(f
        .perfgate(&["--duration", "1s", "--warmup", "0s"])
        .env("FIXTURE_DIE_AFTER", "20"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    assert!(
        out.stdout
            .contains("fixture-svc::work: failed: service `fixture-svc` died during the scenario: it exited with status 9")
            && out.stdout.contains("dying at request 20"),
        "{}",
        out.show()
    );
    // `health` (in src/) ran against a fresh service and passed.
    let health = out
        .stdout
        .lines()
        .find(|l| l.contains("fixture-svc::health"))
        .unwrap_or_else(|| panic!("no health row\n{}", out.show()));
    assert!(health.contains("pass"), "{}", out.show());
    assert_no_leftovers();
}

#[test]
fn load_goes_to_another_host_only_with_allow_remote() {
    let f = basic();
    for args in [
        &["--target-url", "http://10.11.12.13:8080"][..],
        &["record", "--target-url", "https://staging.example:8443/api"][..],
    ] {
        let started = Instant::now();
        let out = run(&mut f.perfgate(args));
        assert_eq!(out.code(), Some(2), "{}", out.show());
        assert!(
            out.stderr.contains("is not on this machine") && out.stderr.contains("--allow-remote"),
            "{}",
            out.show()
        );
        // Refused before anything is built.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            out.show()
        );
    }
    let out = run(&mut f.perfgate(&["--allow-remote"]));
    assert_eq!(
        out.code(),
        Some(2),
        "--allow-remote without --target-url\n{}",
        out.show()
    );
}

#[test]
fn a_previous_runs_report_never_survives_a_run_that_cannot_write_its_own() {
    let _turn = serial();
    let f = basic();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    std::fs::write(
        &junit,
        "<testsuites><!-- the previous run's verdict --></testsuites>",
    )
    .unwrap();
    let out = run(f.perfgate(&["no-such-scenario"]).arg("--junit").arg(&junit));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        !junit.exists(),
        "the previous run's JUnit file is still there"
    );
}

#[test]
fn a_binary_built_from_another_checkout_is_rebuilt_before_it_is_measured() {
    let _turn = serial();
    // Two copies of one workspace sharing the target directory, B's service different in code but
    // with sources older than A's build: cargo calls A's binary fresh for B.
    let a = Fixture::new("basic", "hardening-copy-a");
    let b = Fixture::new("basic", "hardening-copy-b");
    let main = b.root.join("src/main.rs");
    let mtime = std::fs::metadata(&main).unwrap().modified().unwrap();
    b.edit(
        "src/main.rs",
        r#"println!("fixture-svc listening on 127.0.0.1:{port}");"#,
        r#"println!("fixture-svc (copy B) listening on 127.0.0.1:{port}");"#,
    );
    std::fs::File::options()
        .write(true)
        .open(&main)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = run(&mut a.perfgate(&["work", "--duration", "1s", "--warmup", "0s"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let out = run(&mut b.perfgate(&["work", "--duration", "1s", "--warmup", "0s"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr
            .contains("built from another checkout of this workspace"),
        "{}",
        out.show()
    );
    let log = std::fs::read_to_string(results_path(&out).parent().unwrap().join("fixture-svc.log"))
        .unwrap();
    assert!(
        log.contains("(copy B)"),
        "copy A's binary was measured:\n{log}"
    );
}
