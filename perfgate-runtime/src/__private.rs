//! The entry point `#[perf_test]` expands to, and the protocol with `cargo perfgate`.

use std::future::Future;
use std::path::Path;

use crate::ctx::Ctx;
use crate::engine::{self, Share};
use crate::error::Result;
use crate::format::{self, env, ScenarioResult, ScenarioSpec, ShardId, SCHEMA_VERSION};

/// Length of the smoke run of `cargo test -- --ignored` with `PERFGATE_BASE_URL` set.
const SMOKE_MS: u64 = 1000;

/// Called by the test `#[perf_test]` generates. What it does depends on `PERFGATE_MODE` (see
/// `format::env`); setup errors panic with a message, which fails the test and the CLI reports it.
pub fn run_test<F, Fut>(spec: ScenarioSpec, f: F)
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let name = spec.name.clone();
    match var(env::MODE).as_deref() {
        Some("describe") => {
            let out = var(env::OUT)
                .unwrap_or_else(|| panic!("perfgate: {} is not set (describe mode)", env::OUT));
            write_json(Path::new(&out), &spec);
        }
        Some(mode @ ("run" | "shard")) => {
            if let Some(schema) = var(env::SCHEMA) {
                check_schema(&schema);
            }
            let base_url = var(env::BASE_URL)
                .unwrap_or_else(|| panic!("perfgate: {} is not set ({mode} mode)", env::BASE_URL));
            let out = var(env::OUT)
                .unwrap_or_else(|| panic!("perfgate: {} is not set ({mode} mode)", env::OUT));
            let spec = apply_overrides(spec, &var);
            let share = read_share(mode == "shard", &var);
            let result = engine::execute(&spec, &base_url, share, f)
                .unwrap_or_else(|e| panic!("perfgate scenario `{name}`: {e}"));
            write_json(Path::new(&out), &result);
        }
        Some("cost") => {
            if let Some(schema) = var(env::SCHEMA) {
                check_schema(&schema);
            }
            let base_url = var(env::BASE_URL)
                .unwrap_or_else(|| panic!("perfgate: {} is not set (cost mode)", env::BASE_URL));
            let cfg = engine::cost::CostConfig::from_env(&var)
                .unwrap_or_else(|e| panic!("perfgate: {e}"));
            engine::cost::execute(&spec, &base_url, f, &cfg)
                .unwrap_or_else(|e| panic!("perfgate scenario `{name}` (cost pass): {e}"));
        }
        Some(other) => panic!(
            "perfgate: unknown {}={other:?} (expected `run`, `shard`, `describe` or `cost`)",
            env::MODE
        ),
        None => match var(env::BASE_URL) {
            None => eprintln!("skipping perfgate scenario `{name}`: run it with `cargo perfgate`"),
            Some(base_url) => {
                let spec = ScenarioSpec {
                    duration_ms: SMOKE_MS,
                    warmup_ms: 0,
                    ..spec
                };
                let result = engine::execute(&spec, &base_url, Share::default(), f)
                    .unwrap_or_else(|e| panic!("perfgate scenario `{name}`: {e}"));
                eprintln!("{}", smoke_summary(&result));
            }
        },
    }
}

/// Runs a scenario against `base_url` and returns its results, without the environment protocol.
/// For tests of perfgate itself and tools embedding the engine.
pub fn run_scenario<F, Fut>(
    spec: &ScenarioSpec,
    base_url: &str,
    f: F,
) -> std::result::Result<ScenarioResult, String>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    engine::execute(spec, base_url, Share::default(), f)
}

/// Runs shard `shard` of a scenario's load against `base_url`, its warm-up starting at
/// `start_at_unix_ms` (or now), as `PERFGATE_MODE=shard` does. For tests of perfgate itself.
pub fn run_shard<F, Fut>(
    spec: &ScenarioSpec,
    base_url: &str,
    shard: ShardId,
    start_at_unix_ms: Option<u64>,
    f: F,
) -> std::result::Result<ScenarioResult, String>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let share = Share {
        shard: Some(shard),
        start_at_unix_ms,
    };
    engine::execute(spec, base_url, share, f)
}

/// The share of the load the environment asks for: in `shard` mode `PERFGATE_SHARD` (required),
/// and in either mode the common start time, if any.
fn read_share(sharded: bool, var: &dyn Fn(&str) -> Option<String>) -> Share {
    let shard = sharded.then(|| {
        let v = var(env::SHARD)
            .unwrap_or_else(|| panic!("perfgate: {} is not set (shard mode)", env::SHARD));
        ShardId::parse(&v).unwrap_or_else(|e| panic!("perfgate: {}: {e}", env::SHARD))
    });
    let start_at_unix_ms = var(env::START_AT_MS).map(|v| {
        v.trim().parse::<u64>().unwrap_or_else(|_| {
            panic!(
                "perfgate: {}={v:?} is not a Unix time in milliseconds",
                env::START_AT_MS
            )
        })
    });
    Share {
        shard,
        start_at_unix_ms,
    }
}

fn check_schema(schema: &str) {
    if schema.trim().parse::<u32>().ok() != Some(SCHEMA_VERSION) {
        panic!(
            "perfgate: cargo-perfgate reads results schema {schema}, but this scenario was built with \
             perfgate-runtime {} (schema {SCHEMA_VERSION}); align the perfgate-runtime dependency with the \
             installed cargo-perfgate",
            format::PERFGATE_VERSION
        );
    }
}

fn apply_overrides(mut spec: ScenarioSpec, var: &dyn Fn(&str) -> Option<String>) -> ScenarioSpec {
    let ms = |name: &str| {
        var(name).map(|v| {
            v.trim().parse::<u64>().unwrap_or_else(|_| {
                panic!("perfgate: {name}={v:?} is not a number of milliseconds")
            })
        })
    };
    if let Some(d) = ms(env::DURATION_MS) {
        spec.duration_ms = d;
    }
    if let Some(w) = ms(env::WARMUP_MS) {
        spec.warmup_ms = w;
    }
    spec
}

/// Atomically (`format::write_atomic`): the CLI never reads half a file.
fn write_json(path: &Path, value: &impl serde::Serialize) {
    let json = serde_json::to_vec_pretty(value).expect("results serialise");
    if let Err(e) = format::write_atomic(path, &json) {
        panic!("perfgate: cannot write {}: {e}", path.display());
    }
}

fn smoke_summary(r: &ScenarioResult) -> String {
    let it = &r.iterations;
    let mut line = format!(
        "perfgate smoke `{}`: {} iterations in {:.1}s, {} errors, p50 {}, p99 {}",
        r.spec.name,
        it.count,
        r.measured_secs,
        it.errors.total(),
        format::format_ms(it.latency.p50_ms),
        format::format_ms(it.latency.p99_ms),
    );
    if let Some(first) = it.error_samples.first() {
        line.push_str(&format!(" (first error: {first})"));
    }
    line
}
