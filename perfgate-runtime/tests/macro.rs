//! The `#[perf_test]` expansion against this runtime, driven as `cargo perfgate` drives it: this
//! test binary runs itself with the protocol's environment, one generated test at a time.

mod common;

use std::path::Path;
use std::process::Command;

use perfgate_runtime::format::{env, LoadModel, ScenarioResult, ScenarioSpec, SCHEMA_VERSION};
use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 50, duration = "300ms", warmup = "0s", p99 < "40ms", errors < "1%")]
async fn declared(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/items/1")
        .name("item")
        .send()
        .await?
        .expect_status(200)?;
    Ok(())
}

#[perf_test(users = 2, think = "10ms", duration = "300ms", warmup = "0s")]
async fn closed(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/").send().await?;
    Ok(())
}

/// Runs one generated test of this binary as the CLI does; returns its stderr.
fn run_self(test: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for name in [
        env::MODE,
        env::BASE_URL,
        env::OUT,
        env::SCHEMA,
        env::DURATION_MS,
        env::WARMUP_MS,
    ] {
        cmd.env_remove(name);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{test} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn temp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("perfgate-runtime-macro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).to_str().unwrap().to_owned()
}

#[test]
fn describe_then_run_through_the_generated_tests() {
    let out = temp("declared.spec.json");
    run_self(
        "__perfgate_declared",
        &[(env::MODE, "describe"), (env::OUT, &out)],
    );
    let spec: ScenarioSpec = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(spec.name, "declared");
    assert_eq!(spec.load, LoadModel::Open { rate: 50.0 });
    assert_eq!((spec.duration_ms, spec.slos.len()), (300, 2));
    assert!(
        Path::new(&spec.file).ends_with("tests/macro.rs"),
        "{}",
        spec.file
    );

    let url = common::ok_server();
    let schema = SCHEMA_VERSION.to_string();
    for (test, name) in [
        ("__perfgate_declared", "item"),
        ("__perfgate_closed", "GET /"),
    ] {
        let out = temp(&format!("{test}.json"));
        let vars = [
            (env::MODE, "run"),
            (env::BASE_URL, url.as_str()),
            (env::OUT, &out),
            (env::SCHEMA, &schema),
        ];
        run_self(test, &vars);
        let r: ScenarioResult = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert!(r.iterations.count >= 5, "{test}: {}", r.iterations.count);
        assert_eq!(
            r.iterations.errors.total(),
            0,
            "{test}: {:?}",
            r.iterations.error_samples
        );
        assert_eq!(r.requests[name].count, r.iterations.count, "{test}");
    }

    // Without the protocol's environment the generated test passes, saying why it did nothing.
    let stderr = run_self("__perfgate_declared", &[]);
    assert!(
        stderr.contains("skipping perfgate scenario `declared`: run it with `cargo perfgate`"),
        "{stderr}"
    );
}
