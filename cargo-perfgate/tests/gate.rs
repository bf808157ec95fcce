//! End to end: baselines committed in git and the regression gate, in temporary git repositories made of
//! the `basic` fixture. `work` is the scenario compared (a closed model: a definite pass or fail on a
//! busy machine); runs are kept short with `--duration`, `--warmup` and `--rounds`.
//!
//! The "slower switch" is the fixture's `fixture-delay-ms` file: a branch commits it, as a real branch
//! commits a slower code path.

mod common;

use common::{assert_no_leftovers, git, run, serial, Fixture};

/// The measured window of every run here: long enough for the p99 of a round to hold 200 requests.
const WINDOW: [&str; 4] = ["--duration", "2s", "--warmup", "300ms"];

// The runs compared with a baseline pass `--ignore-contention`: the test machine's load swings
// between the record and the run, which (rightly) makes a run's checks inconclusive; these tests are
// about the baseline's lookup and verdicts (contention has unit tests in `gate/`).

fn args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().copied().chain(WINDOW).collect()
}

fn baseline_path(f: &Fixture) -> std::path::PathBuf {
    f.root.join("perfgate.baseline.toml")
}

#[test]
fn baseline_on_main_then_branches_are_judged_against_the_merge_base() {
    let _turn = serial();
    let f = Fixture::new("basic", "gate-branches");
    f.git_init();

    // main: record the baseline and commit it.
    let out = run(&mut f.perfgate(&args(&["record", "work", "--rounds", "5"])));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(out.stderr.contains("Recorded"), "{}", out.show());
    let text = std::fs::read_to_string(baseline_path(&f)).unwrap();
    assert!(
        text.contains("[scenarios.\"fixture-svc::work\".iterations]"),
        "{text}"
    );
    assert!(text.contains("p99_ms = "), "{text}");
    assert!(text.contains("spec_hash = \"sha256:"), "{text}");
    assert_eq!(
        text.matches("[[rounds.\"fixture-svc::work\"]]").count(),
        5,
        "{text}"
    );
    // Each round keeps how busy the machine was while it ran (the gate compares a run's with it).
    assert_eq!(
        text.matches("[rounds.\"fixture-svc::work\".contention]")
            .count(),
        5,
        "{text}"
    );
    assert!(text.contains("runnable_per_core = "), "{text}");
    // Only the filtered scenario was recorded.
    assert!(!text.contains("fixture-svc::health"), "{text}");
    git(&f.root, &["add", "perfgate.baseline.toml"]);
    git(&f.root, &["commit", "-q", "-m", "perfgate baseline"]);
    let main_commit = git(&f.root, &["rev-parse", "HEAD"]);

    // A branch that changes nothing that matters passes, compared at the merge-base.
    git(&f.root, &["checkout", "-q", "-b", "docs-only"]);
    std::fs::write(f.root.join("NOTES.md"), "nothing that runs\n").unwrap();
    git(&f.root, &["add", "NOTES.md"]);
    git(&f.root, &["commit", "-q", "-m", "docs"]);
    let out = run(&mut f.perfgate(&args(&["work", "--ignore-contention"])));
    assert_eq!(
        out.code(),
        Some(0),
        "an unchanged branch must pass\n{}",
        out.show()
    );
    let all = out.all();
    assert!(
        all.contains(&format!(
            "at {} (merge-base of HEAD and main)",
            &main_commit[..10]
        )),
        "{all}"
    );
    assert!(
        all.contains("change [interval]"),
        "the regression table is shown\n{all}"
    );
    assert!(!all.contains("REGRESSED"), "{all}");
    let results = results_path(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let work = &json["scenarios"][0];
    assert_eq!(
        work["rounds"].as_array().map(Vec::len),
        Some(5),
        "5 rounds by default with a baseline"
    );
    let machine = work["contention"]
        .as_array()
        .expect("the machine per round");
    assert_eq!(machine.len(), 5, "{work}");
    assert!(
        machine.iter().all(
            |c| c["runnable_per_core"].as_f64().is_some_and(|r| r >= 0.0)
                && c["cores"].as_u64().is_some_and(|n| n >= 1)
        ),
        "{machine:?}"
    );
    assert!(
        all.contains("fixture-svc::work: the machine per round: 1: "),
        "the table shows the machine beside each round\n{all}"
    );
    assert!(
        work["regressions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["metric"] == "p50")),
        "{work}"
    );
    assert_eq!(json["gate"]["found"], true);

    // A branch with the slower switch, which also re-records the baseline in its own tree and commits it:
    // still judged against main's file, so it fails, naming the scenario and the metric.
    git(&f.root, &["checkout", "-q", "main"]);
    git(&f.root, &["checkout", "-q", "-b", "slower"]);
    std::fs::write(f.root.join("fixture-delay-ms"), "6\n").unwrap();
    git(&f.root, &["add", "fixture-delay-ms"]);
    git(&f.root, &["commit", "-q", "-m", "a slower path"]);
    let out = run(&mut f.perfgate(&args(&["record", "work", "--rounds", "3"])));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    git(
        &f.root,
        &[
            "commit",
            "-q",
            "-am",
            "hide it: re-record the baseline on the branch",
        ],
    );
    let out = run(&mut f.perfgate(&args(&["work", "--ignore-contention"])));
    assert_eq!(
        out.code(),
        Some(1),
        "a slower branch must fail\n{}",
        out.show()
    );
    let all = out.all();
    assert!(
        all.contains("✗ fixture-svc::work: p50 regressed — "),
        "the failure names the scenario and the metric\n{all}"
    );
    assert!(all.contains("REGRESSED"), "{all}");
    assert!(all.contains("(merge-base of HEAD and main)"), "{all}");
    // Its SLOs held, but the gate was still to come: the live line must not have said "pass".
    assert!(
        out.stderr.contains("measured fixture-svc::work")
            && !out.stderr.contains("pass fixture-svc::work"),
        "{}",
        out.show()
    );
    let slow_results = results_path(&out.stdout);

    // The same decision offline: main's baseline file against the slow run's results.
    let main_file = f.root.join("main.baseline.toml");
    std::fs::write(
        &main_file,
        git(&f.root, &["show", "main:perfgate.baseline.toml"]) + "\n",
    )
    .unwrap();
    // The rounds' statistics alone: how busy the machine was during them is the contention tests'
    // business, and a busy test machine would make this check inconclusive.
    let out = run(&mut f.perfgate(&[
        "compare",
        "--ignore-contention",
        main_file.to_str().unwrap(),
        slow_results.to_str().unwrap(),
    ]));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    assert!(
        out.stdout.contains("fixture-svc::work") && out.stdout.contains("REGRESSED"),
        "{}",
        out.show()
    );
    // Two results files: the unchanged run (HEAD) against the slow one (BASE) is an improvement: it passes.
    let out = run(&mut f.perfgate(&[
        "compare",
        slow_results.to_str().unwrap(),
        results.to_str().unwrap(),
    ]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(!out.stdout.contains("REGRESSED"), "{}", out.show());
    assert_no_leftovers();
}

/// The `results: …` line of a human run.
fn results_path(stdout: &str) -> std::path::PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line in\n{stdout}"));
    std::path::PathBuf::from(line.trim())
}

#[test]
fn no_baseline_at_the_merge_base_passes_with_a_warning_and_strict_exits_3() {
    let _turn = serial();
    let f = Fixture::new("basic", "gate-none");
    f.git_init();
    let commit = git(&f.root, &["rev-parse", "HEAD"]);
    // A baseline in the working tree only (never committed) is not read.
    std::fs::write(baseline_path(&f), "not committed, not read\n").unwrap();
    let out = run(&mut f.perfgate(&["work", "--duration", "500ms", "--warmup", "100ms"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let all = out.all();
    assert!(
        all.contains("no baseline file at perfgate.baseline.toml at"),
        "{all}"
    );
    assert!(
        all.contains(&commit[..10]),
        "the warning names the commit\n{all}"
    );
    assert!(all.contains("cargo perfgate record"), "{all}");
    let out = run(&mut f.perfgate(&[
        "work",
        "--strict",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]));
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert_no_leftovers();
}

/// Every git problem is an error (exit 2) said before anything is built, with what to do.
#[test]
fn git_problems_are_explained_before_building() {
    let _turn = serial();
    let f = Fixture::new("basic", "gate-git-errors");

    // Not a git repository, but a git revision asked for.
    let out = run(&mut f.perfgate(&["--baseline-rev", "HEAD~1"]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("not in a git repository"),
        "{}",
        out.show()
    );
    assert!(out.stderr.contains("--baseline-file"), "{}", out.show());
    assert!(
        !out.stderr.contains("Building"),
        "nothing is built first\n{}",
        out.show()
    );

    // No base branch to be found.
    f.git_init();
    git(&f.root, &["branch", "-q", "-m", "main", "trunk"]);
    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("could not find the base branch"),
        "{}",
        out.show()
    );
    assert!(out.stderr.contains("--base REF"), "{}", out.show());
    let out = run(f.perfgate(&[]).env("GITHUB_BASE_REF", "release-2"));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("`release-2` (from $GITHUB_BASE_REF)"),
        "{}",
        out.show()
    );

    // A corrupt baseline and a newer schema at the merge-base.
    git(&f.root, &["branch", "-q", "-m", "trunk", "main"]);
    std::fs::write(baseline_path(&f), "schema_version = 1\nscenarios = [[[\n").unwrap();
    git(&f.root, &["add", "perfgate.baseline.toml"]);
    git(&f.root, &["commit", "-q", "-m", "broken"]);
    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("is not a valid baseline file"),
        "{}",
        out.show()
    );
    std::fs::write(
        baseline_path(&f),
        "schema_version = 7\nperfgate_version = \"9.1.0\"\n",
    )
    .unwrap();
    git(&f.root, &["commit", "-q", "-am", "from the future"]);
    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr
            .contains("baseline schema 7 (written by perfgate 9.1.0)"),
        "{}",
        out.show()
    );

    // A shallow clone of a branch that does not reach its merge-base with main.
    git(&f.root, &["checkout", "-q", "-b", "feature", "HEAD~2"]);
    for i in 0..3 {
        std::fs::write(f.root.join("NOTES.md"), format!("{i}\n")).unwrap();
        git(&f.root, &["add", "NOTES.md"]);
        git(&f.root, &["commit", "-q", "-m", "feature work"]);
    }
    // The clone's origin/HEAD is the source's checked-out branch: main.
    git(&f.root, &["checkout", "-q", "main"]);
    let clone_parent = tempfile::Builder::new()
        .prefix("shallow")
        .tempdir_in(f.root.parent().unwrap())
        .unwrap();
    let clone = clone_parent.path().join("clone");
    let url = format!("file://{}", f.root.display());
    git(
        clone_parent.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            "--branch",
            "feature",
            &url,
            "clone",
        ],
    );
    let shallow = Fixture { root: clone };
    let out = run(&mut shallow.perfgate(&[]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    let err = &out.stderr;
    assert!(err.contains("shallow clone"), "{}", out.show());
    assert!(
        err.contains("fetch-depth: 0") && err.contains("git fetch --deepen"),
        "{}",
        out.show()
    );
    assert!(
        err.contains("origin/HEAD") || err.contains("origin/main"),
        "{}",
        out.show()
    );
    assert_no_leftovers();
}
