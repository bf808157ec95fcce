//! `run_test` driven through the environment, as `cargo perfgate` and plain `cargo test` do.
//! The environment is process-wide, so these tests run one at a time.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use common::{ok_server, open, serial, serve};
use perfgate_runtime::__private::run_test;
use perfgate_runtime::format::{env, ScenarioResult, ScenarioSpec, SCHEMA_VERSION};
use perfgate_runtime::Ctx;

const ALL: [&str; 6] = [
    env::MODE,
    env::BASE_URL,
    env::OUT,
    env::SCHEMA,
    env::DURATION_MS,
    env::WARMUP_MS,
];

/// Runs `f` with exactly `vars` of the protocol set.
fn with_env<R>(vars: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    for name in ALL {
        std::env::remove_var(name);
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let r = catch_unwind(AssertUnwindSafe(f));
    for name in ALL {
        std::env::remove_var(name);
    }
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn out_path(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("perfgate-runtime-protocol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

async fn hit(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/").send().await?.expect_status(200)?;
    Ok(())
}

fn panic_message(f: impl FnOnce()) -> String {
    let p = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn run_mode_writes_a_result_with_the_overrides_applied() {
    let _serial = serial();
    let url = ok_server();
    let out = out_path("run.json");
    let schema = SCHEMA_VERSION.to_string();
    with_env(
        &[
            (env::MODE, "run"),
            (env::BASE_URL, &url),
            (env::OUT, out.to_str().unwrap()),
            (env::SCHEMA, &schema),
            (env::DURATION_MS, "300"),
            (env::WARMUP_MS, "100"),
        ],
        || run_test(open(100.0, 60_000), hit),
    );
    let r: ScenarioResult = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((r.spec.duration_ms, r.spec.warmup_ms), (300, 100));
    assert_eq!(r.base_url, url);
    assert!(
        (25..=31).contains(&r.iterations.count),
        "{}",
        r.iterations.count
    );
    assert_eq!(r.iterations.errors.total(), 0);
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
        "{left:?}"
    );
}

#[test]
fn describe_mode_writes_the_spec_and_sends_nothing() {
    let _serial = serial();
    let out = out_path("describe.json");
    let mut spec = open(100.0, 1000);
    spec.name = "described".into();
    with_env(
        &[(env::MODE, "describe"), (env::OUT, out.to_str().unwrap())],
        || {
            run_test(spec.clone(), |_ctx: Ctx| async {
                panic!("describe must not run the scenario")
            })
        },
    );
    let read: ScenarioSpec = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(read, spec);
}

#[test]
fn a_schema_mismatch_names_both_versions() {
    let _serial = serial();
    let out = out_path("never.json");
    let msg = panic_message(|| {
        with_env(
            &[
                (env::MODE, "run"),
                (env::BASE_URL, "http://127.0.0.1:1"),
                (env::OUT, out.to_str().unwrap()),
                (env::SCHEMA, "999"),
            ],
            || run_test(open(100.0, 1000), hit),
        )
    });
    assert!(
        msg.contains("schema 999") && msg.contains(&format!("schema {SCHEMA_VERSION}")),
        "{msg}"
    );
    assert!(
        msg.contains("align the perfgate-runtime dependency"),
        "{msg}"
    );
    assert!(!out.exists());
}

#[test]
fn setup_errors_panic_with_a_clear_message() {
    let _serial = serial();
    let out = out_path("bad.json");
    let msg = panic_message(|| {
        with_env(
            &[
                (env::MODE, "run"),
                (env::BASE_URL, "ftp://x"),
                (env::OUT, out.to_str().unwrap()),
            ],
            || run_test(open(100.0, 1000), hit),
        )
    });
    assert!(msg.contains("invalid base URL `ftp://x`"), "{msg}");
    let msg =
        panic_message(|| with_env(&[(env::MODE, "run")], || run_test(open(100.0, 1000), hit)));
    assert!(msg.contains(env::BASE_URL), "{msg}");
    let msg =
        panic_message(|| with_env(&[(env::MODE, "walk")], || run_test(open(100.0, 1000), hit)));
    assert!(msg.contains("walk"), "{msg}");
    let unwritable = "/nonexistent-perfgate-dir/out.json";
    let msg = panic_message(|| {
        with_env(&[(env::MODE, "describe"), (env::OUT, unwritable)], || {
            run_test(open(1.0, 1), hit)
        })
    });
    assert!(
        msg.contains("cannot write /nonexistent-perfgate-dir/out.json"),
        "{msg}"
    );
}

#[test]
fn without_a_mode_it_skips_or_smokes() {
    let _serial = serial();
    // No mode, no service: returns at once, sending nothing.
    let started = std::time::Instant::now();
    with_env(&[], || {
        run_test(open(100.0, 60_000), |_ctx: Ctx| async {
            panic!("must not run")
        })
    });
    assert!(started.elapsed().as_millis() < 500);
    // No mode with a service: a one-second smoke run, whatever the declared duration.
    let url = ok_server();
    let started = std::time::Instant::now();
    with_env(&[(env::BASE_URL, &url)], || {
        run_test(open(50.0, 60_000), hit)
    });
    let took = started.elapsed().as_secs_f64();
    assert!((0.9..3.0).contains(&took), "{took}");
}

#[test]
fn http2_with_prior_knowledge_on_request() {
    let _serial = serial();
    let url = serve(|req| async move { (200, req.version) });
    let version = |vars: &[(&str, &str)]| {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let r = with_env(vars, || {
            perfgate_runtime::__private::run_scenario(&open(20.0, 200), &url, move |ctx: Ctx| {
                let sink = sink.clone();
                async move {
                    let v = ctx.get("/").send().await?.text()?;
                    sink.lock().unwrap().push(v);
                    Ok(())
                }
            })
            .unwrap()
        });
        assert_eq!(
            r.iterations.errors.total(),
            0,
            "{:?}",
            r.iterations.error_samples
        );
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(seen.iter().all(|v| *v == seen[0]), "{seen:?}");
        seen[0].clone()
    };
    assert_eq!(version(&[]), "HTTP/1.1");
    assert_eq!(version(&[(env::HTTP2, "1")]), "HTTP/2.0");
}
