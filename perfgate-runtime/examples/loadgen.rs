//! Drives perfgate's engine without the CLI, for the benchmark (`bench/bench.py`): one scenario that
//! sends `GET /` and expects 200, then one line of JSON with what the engine reported and what the
//! process spent (CPU seconds and peak RSS from getrusage).
//!
//! `loadgen URL (--rate R | --users U) [--duration-s S] [--warmup-s S] [--max-in-flight N]`

mod common;

use common::rusage;
use perfgate_runtime::__private::run_scenario;
use perfgate_runtime::format::{LoadModel, ScenarioSpec};
use perfgate_runtime::Ctx;

fn usage() -> ! {
    eprintln!("usage: loadgen URL (--rate R | --users U) [--duration-s S] [--warmup-s S] [--max-in-flight N]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        usage()
    };
    let opt = |name: &str| -> Option<f64> {
        let i = args.iter().position(|a| a == name)?;
        Some(args.get(i + 1)?.parse().unwrap_or_else(|_| usage()))
    };
    let load = match (opt("--rate"), opt("--users")) {
        (Some(rate), None) => LoadModel::Open { rate },
        (None, Some(users)) => LoadModel::Closed {
            users: users as u64,
            think_ms: 0,
        },
        _ => usage(),
    };
    let spec = ScenarioSpec {
        name: "loadgen".into(),
        module_path: "loadgen".into(),
        file: file!().into(),
        line: line!(),
        load,
        duration_ms: (opt("--duration-s").unwrap_or(10.0) * 1000.0) as u64,
        warmup_ms: (opt("--warmup-s").unwrap_or(0.0) * 1000.0) as u64,
        timeout_ms: 10_000,
        max_in_flight: opt("--max-in-flight").map(|n| n as u64),
        slos: vec![],
        regression_pct: 10.0,
        service: None,
        data: vec![],
        cost_regression_pct: 1.0,
        tiers: Default::default(),
        trends: vec![],
    };
    let r = run_scenario(&spec, &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?.expect_status(200)?;
        Ok(())
    })
    .unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(1)
    });
    let (cpu_s, max_rss_kb) = rusage();
    let (it, c, u) = (
        &r.iterations,
        &r.iterations.latency,
        &r.iterations.latency_uncorrected,
    );
    let out = serde_json::json!({
        "requests": it.count,
        "errors": it.errors.total(),
        "first_error": it.error_samples.first(),
        "rate": it.throughput,
        "p50_ms": c.p50_ms, "p99_ms": c.p99_ms, "max_ms": c.max_ms,
        "p50_uncorrected_ms": u.p50_ms, "p99_uncorrected_ms": u.p99_ms,
        "lag_p50_ms": r.schedule.lag.p50_ms, "lag_p99_ms": r.schedule.lag.p99_ms,
        "intended": r.schedule.intended, "late": r.schedule.late, "dropped": r.schedule.dropped,
        "invalid": r.invalid,
        "cpu_s": cpu_s,
        "max_rss_kb": max_rss_kb,
    });
    println!("{out}");
}
