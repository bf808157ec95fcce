//! End to end: the cost pass (the fixture's service under valgrind) in temporary git repositories.
//! A baseline of cost figures is recorded on main; a branch that adds work to the service in code
//! must fail on instructions and name the function, an unchanged one must pass, in file mode and
//! with `--ab`; without valgrind the run says how to install it. Windows are short (a few
//! iterations): the repeatability of the figures is measured by `scripts/calibrate-cost.sh`.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_no_leftovers, git, run, serial, Fixture};

/// A short window, quick under valgrind, long enough that the window's own noise (3,000
/// instructions, spread over its iterations) stays well within the 1% tolerance.
const WINDOW: [&str; 4] = ["--cost-iterations", "30", "--cost-warmup", "3"];

fn valgrind_installed() -> bool {
    std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `work --cost-only` with the short window, plus `extra`.
fn cost_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    ["work", "--cost-only"]
        .into_iter()
        .chain(WINDOW)
        .chain(extra.iter().copied())
        .collect()
}

/// Commits a branch off main whose `/work` does `rounds` rounds of `burn` (2000 on main).
fn branch_with_rounds(f: &Fixture, branch: &str, rounds: u64) {
    f.branch_replacing(
        branch,
        "const WORK_ROUNDS: u64 = 2000;",
        &format!("const WORK_ROUNDS: u64 = {rounds};"),
        &format!("work rounds {rounds}"),
    );
}

fn results_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line in\n{stdout}"));
    serde_json::from_str(&std::fs::read_to_string(line.trim()).unwrap()).unwrap()
}

/// The outcome of the `instructions` check of the first scenario.
fn instructions_outcome(json: &serde_json::Value) -> String {
    json["scenarios"][0]["regressions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["metric"] == "instructions"))
        .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no instructions check in {json}"))
}

#[test]
fn a_commit_adding_work_fails_on_instructions_naming_the_function() {
    if !valgrind_installed() {
        eprintln!("skipped: valgrind is not installed (apt-get install valgrind)");
        return;
    }
    let _turn = serial();
    let f = Fixture::new("basic", "cost-branches");
    f.git_init();

    // main: record the cost figures only and commit them.
    let out = run(&mut f.perfgate(&[
        "record",
        "work",
        "--cost-only",
        WINDOW[0],
        WINDOW[1],
        WINDOW[2],
        WINDOW[3],
    ]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let baseline = std::fs::read_to_string(f.root.join("perfgate.baseline.toml")).unwrap();
    assert!(
        baseline.contains("[scenarios.\"fixture-svc::work\".cost]")
            && baseline.contains("instructions = ")
            && baseline.contains("[cost_functions.\"fixture-svc::work\"]")
            && baseline.contains("fixture_svc::burn"),
        "{baseline}"
    );
    assert!(
        !baseline.contains("[[rounds."),
        "cost only: no latency rounds\n{baseline}"
    );
    git(&f.root, &["add", "perfgate.baseline.toml"]);
    git(&f.root, &["commit", "-q", "-m", "cost baseline"]);

    // Only a note changed: every cost check passes.
    branch_with_rounds(&f, "unchanged", 2000);
    let out = run(&mut f.perfgate(&cost_args(&[])));
    assert_eq!(
        out.code(),
        Some(0),
        "an unchanged branch must pass\n{}",
        out.show()
    );
    let json = results_json(&out.stdout);
    assert_eq!(instructions_outcome(&json), "pass");
    assert!(out.stdout.contains("cost (valgrind)"), "{}", out.stdout);

    // Twice the work in `burn`: REGRESSED on instructions, the function named.
    branch_with_rounds(&f, "more-work", 4000);
    let out = run(&mut f.perfgate(&cost_args(&[])));
    assert_eq!(out.code(), Some(1), "more work must fail\n{}", out.show());
    let all = out.all();
    assert!(all.contains("REGRESSED"), "{all}");
    assert!(
        all.contains("instructions regressed") && all.contains("instr/iter in fixture_svc::burn"),
        "the regression names the function\n{all}"
    );
    let json = results_json(&out.stdout);
    assert_eq!(instructions_outcome(&json), "fail");
    let top = &json["scenarios"][0]["cost"]["attribution"][0];
    assert_eq!(top["name"], "fixture_svc::burn", "{json}");
    assert!(top["delta"].as_f64().unwrap() > 5_000.0, "{top}");
    // Allocations did not change: that check passes.
    let allocs = json["scenarios"][0]["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metric"] == "allocs")
        .unwrap()
        .clone();
    assert_eq!(allocs["outcome"], "pass", "{allocs}");

    // --ab: one cost pass per side decides, the merge-base built from a worktree.
    let out = run(&mut f.perfgate(&cost_args(&["--ab"])));
    assert_eq!(out.code(), Some(1), "--ab must fail it too\n{}", out.show());
    assert!(out.all().contains("fixture_svc::burn"), "{}", out.all());

    // With the load: the cost passes run first, and a scenario they fail is sampled to its first
    // look only (2 pairs here), whatever the budget left.
    let out = run(&mut f.perfgate(
        &["work", "--ab", "--rounds", "2", "--budget", "3m"]
            .into_iter()
            .chain(WINDOW)
            .collect::<Vec<_>>(),
    ));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    let json = results_json(&out.stdout);
    let ab = &json["scenarios"][0]["ab"];
    assert_eq!(ab["pairs"], 2, "{ab}");
    let stopped = ab["stopped"].as_str().unwrap_or_default();
    assert!(
        stopped.contains("its cost checks failed before the load"),
        "{stopped}"
    );
    assert_eq!(instructions_outcome(&json), "fail");
    assert_no_leftovers();
}

/// A directory holding links to everything in `dir` but valgrind's programs.
fn without_valgrind(dir: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name == "valgrind" || name == "vgdb" {
            continue;
        }
        let _ = std::os::unix::fs::symlink(e.path(), into.join(&name));
    }
    into.to_path_buf()
}

#[test]
fn without_valgrind_the_run_says_how_to_install_it() {
    let _turn = serial();
    let f = Fixture::new("basic", "cost-no-valgrind");
    // The same PATH with valgrind's directory replaced by one without it.
    let links = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .enumerate()
        .map(|(i, d)| {
            if d.join("valgrind").exists() || d.join("vgdb").exists() {
                without_valgrind(&d, &links.path().join(i.to_string()))
            } else {
                d
            }
        })
        .collect();
    let path = std::env::join_paths(dirs).unwrap();

    // Asked for: an error (exit 2) that says how to install it and why it was needed.
    let out = run(f.perfgate(&["work", "--cost"]).env("PATH", &path));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    let all = out.all();
    assert!(
        all.contains("apt-get install valgrind")
            && all.contains("--cost")
            && all.contains("--no-cost"),
        "{all}"
    );
    assert!(
        !all.contains("Running"),
        "said before any load is sent\n{all}"
    );

    // `cost = "auto"` and nothing demands it: the run goes on, saying how to install it.
    f.edit_manifest(
        "ready = \"/healthz\" }",
        "ready = \"/healthz\" }\ncost = \"auto\"",
    );
    let out = run(f
        .perfgate(&["work", "--duration", "1s", "--warmup", "0s"])
        .env("PATH", &path));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr.contains("the cost pass was skipped")
            && out.stderr.contains("apt-get install valgrind"),
        "{}",
        out.stderr
    );
    assert_no_leftovers();
}
