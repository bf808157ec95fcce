//! End to end: the same-machine A/B mode (`--ab`) in temporary git repositories made of the `basic`
//! fixture. The merge-base's service is built from a worktree and measured next to HEAD's; a branch
//! that makes the service slower in code (the fixture's `WORK_FACTOR`) must fail, an unchanged branch
//! must not (even with a CPU burst in one of its rounds), and an interrupted run must leave neither a
//! worktree nor a process behind.

mod common;

use std::time::Duration;

use common::{assert_no_leftovers, git, run, serial, Fixture, Running};

/// Real CPU work per `/work` request on both sides: a latency made of work, not of scheduling noise.
const WORK_US: &str = "2000";

fn ab_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    ["--ab"].into_iter().chain(window(extra)).collect()
}

/// The scenario, its window and the budget, without `--ab`.
fn window<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [
        "work",
        "--duration",
        "2s",
        "--warmup",
        "300ms",
        "--budget",
        "100s",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect()
}

/// Commits a branch off main that changes `WORK_FACTOR` in the service's code (1.0 keeps it).
fn branch_with_factor(f: &Fixture, branch: &str, factor: &str) {
    git(&f.root, &["checkout", "-q", "main"]);
    git(&f.root, &["checkout", "-q", "-b", branch]);
    let main_rs = f.root.join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    let from = "const WORK_FACTOR: f64 = 1.0;";
    assert!(text.contains(from), "the fixture lost its WORK_FACTOR");
    std::fs::write(
        &main_rs,
        text.replace(from, &format!("const WORK_FACTOR: f64 = {factor};")),
    )
    .unwrap();
    std::fs::write(f.root.join("NOTES.md"), format!("factor {factor}\n")).unwrap();
    git(&f.root, &["add", "-A"]);
    git(
        &f.root,
        &["commit", "-q", "-m", &format!("work factor {factor}")],
    );
}

/// What git and the target dir must not hold after a run: a linked worktree, a temporary branch.
fn assert_no_worktree(f: &Fixture) {
    let list = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert_eq!(
        list.matches("worktree ").count(),
        1,
        "only the main worktree may remain:\n{list}"
    );
    let branches = git(&f.root, &["branch", "--list"]);
    assert!(
        !branches.contains("perfgate-ab"),
        "a temporary branch remained:\n{branches}"
    );
    let admin = f.root.join(".git/worktrees");
    let left: Vec<_> = std::fs::read_dir(&admin)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "git's worktree entries remained: {left:?}");
}

fn results_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line in\n{stdout}"));
    serde_json::from_str(&std::fs::read_to_string(line.trim()).unwrap()).unwrap()
}

#[test]
fn ab_fails_a_slower_commit_and_passes_an_unchanged_one() {
    let _turn = serial();
    let f = Fixture::new("basic", "ab-branches");
    // `ab = "auto"`: with no baseline file at the merge-base, a plain run measures the merge-base.
    f.edit_manifest(
        "ready = \"/healthz\" }",
        "ready = \"/healthz\" }\nab = \"auto\"",
    );
    f.git_init();
    let main_commit = git(&f.root, &["rev-parse", "HEAD"]);

    // Unchanged code (only a note): no regression; the merge-base is named. A neighbour takes both
    // cores for 1.2 s during one round of the run (the first service to reach its 150th request
    // starts two busy threads): the disturbed pair must not turn the unchanged branch into a failure,
    // nor keep it from passing.
    branch_with_factor(&f, "unchanged", "1.0");
    let burst = f.root.parent().unwrap().join("ab-branches-burst");
    let _ = std::fs::remove_file(&burst);
    let out = run(f
        .perfgate(&window(&[]))
        .env("FIXTURE_WORK_US", WORK_US)
        .env("FIXTURE_BURST_FILE", &burst));
    assert!(burst.exists(), "the burst never ran\n{}", out.show());
    assert_eq!(
        out.code(),
        Some(0),
        "an unchanged branch must pass, one disturbed round or not\n{}",
        out.show()
    );
    let all = out.all();
    assert!(
        all.contains(&format!("merge-base {}", &main_commit[..10])),
        "{all}"
    );
    assert!(all.contains("(--ab)"), "{all}");
    assert!(
        all.contains("no baseline file at") && all.contains("`ab = \"auto\"` in fixture-svc"),
        "ab = \"auto\" says why it measured the merge-base\n{all}"
    );
    assert!(!all.contains("REGRESSED"), "{all}");
    let json = results_json(&out.stdout);
    let work = &json["scenarios"][0];
    let ab = &work["ab"];
    let pairs = ab["pairs"].as_u64().expect("pairs");
    assert!(pairs >= 6, "at least the first look's pairs ran: {ab}");
    assert_eq!(
        ab["base_rounds"].as_array().map(Vec::len),
        Some(pairs as usize)
    );
    assert_eq!(
        work["rounds"].as_array().map(Vec::len),
        Some(pairs as usize)
    );
    assert_eq!(ab["base_commit"], main_commit.as_str());
    assert!(
        ab["stopped"].as_str().is_some_and(|s| !s.is_empty()),
        "{ab}"
    );
    assert!(
        work["regressions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["metric"] == "p99")),
        "{work}"
    );
    assert_no_worktree(&f);
    assert_no_leftovers();

    // 50% more CPU work per request, in code: fails, naming the scenario and a latency metric.
    branch_with_factor(&f, "slower", "1.5");
    let out = run(f.perfgate(&ab_args(&[])).env("FIXTURE_WORK_US", WORK_US));
    assert_eq!(
        out.code(),
        Some(1),
        "a slower branch must fail\n{}",
        out.show()
    );
    let all = out.all();
    assert!(all.contains("✗ fixture-svc::work: p"), "{all}");
    assert!(all.contains("REGRESSED"), "{all}");
    let json = results_json(&out.stdout);
    let failed: Vec<&serde_json::Value> = json["scenarios"][0]["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "fail")
        .collect();
    assert!(
        failed
            .iter()
            .any(|d| d["change"].as_f64().is_some_and(|c| c > 0.2)),
        "a failed check shows the slowdown: {failed:?}"
    );
    assert_no_worktree(&f);
    assert_no_leftovers();
}

#[test]
fn ab_interrupted_leaves_no_worktree_and_no_process() {
    let _turn = serial();
    let f = Fixture::new("basic", "ab-interrupt");
    f.git_init();
    branch_with_factor(&f, "feature", "1.0");
    let mut cmd = f.perfgate(&ab_args(&[]));
    cmd.env("FIXTURE_WORK_US", WORK_US);
    let mut running = Running::spawn(&mut cmd);
    let pid = running.child.id() as i32;
    // Wait until rounds are running: both services are up and the worktree exists.
    let deadline = std::time::Instant::now() + common::RUN_TIMEOUT;
    loop {
        let err = std::fs::read_to_string(running.stderr_path()).unwrap_or_default();
        if err.contains("Pair") {
            break;
        }
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!("cargo perfgate ended ({status}) before its first pair:\n{err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pair started:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = running.wait(Duration::from_secs(30));
    assert_eq!(out.code(), Some(130), "{}", out.show());
    assert_no_worktree(&f);
    // No lock file either: git could not add or remove worktrees while one remains.
    assert!(!f.root.join(".git/index.lock").exists());
    assert_no_leftovers();
}

#[test]
fn calibrate_writes_noise_floors_into_the_baseline_file() {
    let _turn = serial();
    let f = Fixture::new("basic", "ab-calibrate");
    let out = run(f
        .perfgate(&[
            "calibrate",
            "work",
            "--pairs",
            "3",
            "--duration",
            "2s",
            "--warmup",
            "300ms",
        ])
        .env("FIXTURE_WORK_US", WORK_US));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(out.stdout.contains("resolves"), "{}", out.show());
    assert!(out.stdout.contains("fixture-svc::work"), "{}", out.show());
    let text = std::fs::read_to_string(f.root.join("perfgate.baseline.toml")).unwrap();
    assert!(text.contains("[calibration]"), "{text}");
    assert!(
        text.contains("[calibration.scenarios.\"fixture-svc::work\".floor]"),
        "{text}"
    );
    assert!(text.contains("pairs = 3"), "{text}");
    // The floor is a positive fraction for the p50 of the iterations.
    let value: toml::Table = text.parse().unwrap();
    let p50 = value["calibration"]["scenarios"]["fixture-svc::work"]["floor"]["p50"]
        .as_float()
        .expect("a p50 floor");
    assert!(p50 > 0.0 && p50 < 1.0, "p50 floor {p50}");
    assert_no_leftovers();
}
