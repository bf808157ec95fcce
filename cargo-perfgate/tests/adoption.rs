//! End to end: perfgate adopted by a service it did not write. Only the test targets that hold
//! scenarios are built (a library whose unit tests do not compile, a test that is slow to build), and
//! `cargo perfgate init` sets up a fresh `cargo new` axum service that `cargo perfgate` then passes.
//!
//! Both use the shared target dir of the end-to-end tests ([`common::target_dir`]); the axum service
//! compiles axum once per target dir, in release mode.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use common::{assert_no_leftovers, main_workspace, run, serial, target_dir, Fixture};

/// The library's unit tests read a fixture file the package does not ship (as a published crate's
/// often do): they do not compile. The library itself does.
const LIB_WITHOUT_FIXTURE: &str = r#"//! The service's library.
pub fn answer() -> u32 {
    42
}

#[cfg(test)]
mod tests {
    const EXPECTED: &str = include_str!("../fixtures/expected.txt");

    #[test]
    fn answer_matches_the_fixture() {
        assert_eq!(EXPECTED.trim(), super::answer().to_string());
    }
}
"#;

/// A test target that takes long to build (constant evaluation) and holds no scenario.
const SLOW_TEST: &str = r#"#![allow(long_running_const_eval)]
const SPUN: u64 = {
    let mut i = 0u64;
    let mut x = 1u64;
    while i < 200_000_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        i += 1;
    }
    x
};

#[test]
fn spun() {
    assert_ne!(SPUN, 0);
}
"#;

/// Executables of the `slow` test target built since `since`.
fn slow_builds(since: SystemTime) -> Vec<std::path::PathBuf> {
    let deps = target_dir().join("release/deps");
    std::fs::read_dir(&deps)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("slow-"))
                        && std::fs::metadata(p)
                            .and_then(|m| m.modified())
                            .is_ok_and(|m| m >= since)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn only_the_targets_that_hold_scenarios_are_built() {
    let _turn = serial();
    let f = Fixture::new("basic", "targets");
    f.write("src/lib.rs", LIB_WITHOUT_FIXTURE);
    f.write("tests/slow.rs", SLOW_TEST);

    // The default: the sources say which targets hold scenarios; the lib's unit tests and the slow
    // test are not built, so the run passes, and the service comes from the same build. Only the
    // closed-model scenario runs: what is built does not depend on the filter, and an open model's
    // schedule can be declared invalid on a loaded machine (one late start in 50).
    let since = SystemTime::now();
    let out = run(&mut f.perfgate(&["work"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr.contains(
            "Building scenarios of fixture-svc: bin fixture-svc, test perf (the targets whose sources \
             mention #[perf_test]; 2 other targets not built: lib, test slow)"
        ),
        "{}",
        out.show()
    );
    assert!(
        !out.stderr.contains("expected.txt"),
        "the lib's unit tests were compiled\n{}",
        out.show()
    );
    assert!(
        !out.stderr.contains("Building service"),
        "the service was built a second time\n{}",
        out.show()
    );
    assert!(
        out.stdout.contains("(scenarios and service)"),
        "{}",
        out.show()
    );
    assert!(slow_builds(since).is_empty(), "tests/slow.rs was built");
    assert!(!f.marker().exists(), "the user's own ignored test ran");
    assert_no_leftovers();

    // `--lib` brings the unit tests back: named, a target that does not compile fails the run.
    let out = run(&mut f.perfgate(&["list", "--lib"]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("at lib of package `fixture-svc`")
            && out.stderr.contains("expected.txt"),
        "{}",
        out.show()
    );

    // A broad selection: a target in it that is not known to hold scenarios and does not compile is
    // left out with a warning, and the rest is built. (The slow test goes first: `--tests` has it.)
    std::fs::remove_file(f.root.join("tests/slow.rs")).unwrap();
    let out = run(&mut f.perfgate(&["list", "--tests"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr.contains(
            "lib of package `fixture-svc` does not compile; it was built because the command line asked \
             for it, and is left out"
        ),
        "{}",
        out.show()
    );
    assert!(
        out.stdout.contains("work") && out.stdout.contains("health"),
        "{}",
        out.show()
    );

    // With the fixture there and a scenario in the unit tests, `targets` in the manifest builds
    // the lib's unit tests and the perf test, and nothing else.
    f.write("fixtures/expected.txt", "42\n");
    f.write(
        "src/lib.rs",
        &format!(
            "{LIB_WITHOUT_FIXTURE}\n#[cfg(test)]\nmod perf {{\n    \
             #[perfgate_runtime::perf_test(users = 1, duration = \"1s\", p99 < \"1s\")]\n    \
             async fn from_unit_tests(ctx: perfgate_runtime::Ctx) -> perfgate_runtime::Result {{\n        \
             ctx.get(\"/healthz\").send().await?.expect_status(200)?;\n        Ok(())\n    }}\n}}\n"
        ),
    );
    f.edit_manifest(
        "[package.metadata.perfgate]\n",
        "[package.metadata.perfgate]\ntargets = [\"perf\", \"lib\"]\n",
    );
    let out = run(&mut f.perfgate(&["list"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr.contains(
            "test perf, lib (`targets` in [package.metadata.perfgate]; 1 other target not built: \
             bin fixture-svc)"
        ),
        "{}",
        out.show()
    );
    assert!(
        out.stdout.contains("from_unit_tests") && out.stdout.contains("work"),
        "{}",
        out.show()
    );
}

/// The `cargo new` service of the README's axum example, reading its port from $PORT.
const AXUM_MAIN: &str = r#"use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    let app = Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/healthz", get(|| async { "ok" }));
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_string());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
"#;

fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo")
}

#[test]
fn init_sets_up_a_fresh_axum_service_that_then_passes() {
    let _turn = serial();
    let f = Fixture::outside("init-axum");
    let parent = f.root.parent().unwrap();
    let name = f.root.file_name().unwrap().to_str().unwrap();
    let out = cargo(
        parent,
        &["new", "--vcs", "none", "--bin", "--name", "axum-svc", name],
    );
    assert!(out.status.success(), "cargo new: {out:?}");
    f.write("src/main.rs", AXUM_MAIN);
    // tokio's features are those the other fixtures' builds already have, so the shared target dir
    // holds one tokio.
    f.edit_manifest(
        "[dependencies]\n",
        "[dependencies]\naxum = \"0.8\"\ntokio = { version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }\n",
    );
    // The workspace's lock pins the crates it shares with this package to the versions the other
    // fixtures built; cargo resolves the rest (axum), from its cache when it can.
    std::fs::copy(
        main_workspace().join("Cargo.lock"),
        f.root.join("Cargo.lock"),
    )
    .unwrap();
    if !cargo(&f.root, &["metadata", "--offline", "--format-version", "1"])
        .status
        .success()
    {
        let out = cargo(&f.root, &["metadata", "--format-version", "1"]);
        assert!(out.status.success(), "resolving axum: {out:?}");
    }
    let before = std::fs::read_to_string(f.manifest()).unwrap();

    let out = run(&mut f.perfgate(&["init"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    for said in [
        "Added perfgate-runtime to [dev-dependencies] (path = ",
        "[package.metadata.perfgate]: service = { bin = \"axum-svc\", ready = \"/healthz\" } (port: $PORT",
        "seen in src/main.rs: \"PORT\"",
        "tests/perf.rs: scenario `healthz`, GET /healthz (seen in src/main.rs: \"/healthz\")",
    ] {
        assert!(out.stderr.contains(said), "`{said}` is missing\n{}", out.show());
    }
    let manifest = std::fs::read_to_string(f.manifest()).unwrap();
    assert!(
        manifest.starts_with(&before),
        "init rewrote what was there:\n{manifest}"
    );
    assert!(
        manifest.contains(
            "[package.metadata.perfgate]\nservice = { bin = \"axum-svc\", ready = \"/healthz\" }"
        ),
        "{manifest}"
    );
    let scenario = std::fs::read_to_string(f.root.join("tests/perf.rs")).unwrap();
    assert!(
        scenario.contains("async fn healthz(ctx: Ctx)"),
        "{scenario}"
    );

    // Twice: nothing changes.
    let out = run(&mut f.perfgate(&["init"]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(out.stderr.contains("nothing to change"), "{}", out.show());
    assert_eq!(std::fs::read_to_string(f.manifest()).unwrap(), manifest);
    assert_eq!(
        std::fs::read_to_string(f.root.join("tests/perf.rs")).unwrap(),
        scenario
    );

    let out = run(&mut f.perfgate(&[]));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stdout.contains("axum-svc::healthz") && out.stdout.contains("1 passed"),
        "{}",
        out.show()
    );
    assert!(
        out.stdout.contains("(scenarios and service)"),
        "{}",
        out.show()
    );
    assert_no_leftovers();
}
