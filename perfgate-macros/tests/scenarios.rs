//! The expansion end to end, the way `cargo perfgate` sees it: the generated tests are listed as
//! ignored `__perfgate_*` tests, and in describe mode each writes the spec its attribute declares.

use std::path::PathBuf;
use std::process::{Command, Output};

use perfgate_runtime::format::{
    self, Allowance, LoadModel, Metric, Op, ScenarioSpec, Slo, Stage, TierSpec, TrendMetric,
    TrendSlo, DEFAULT_COST_REGRESSION_PCT, DEFAULT_DURATION_MS, DEFAULT_REGRESSION_PCT,
    DEFAULT_TIMEOUT_MS, DEFAULT_WARMUP_MS,
};
use perfgate_runtime::{perf_test, Ctx};

const CHECKOUT_LINE: u32 = line!() + 1;
#[perf_test(
    rate = 300, duration = "20s", warmup = "3s", timeout = "1.5s", max_in_flight = 64,
    p99 < "40ms", errors < "0.5%", throughput >= "100/s", pay.p99.9 <= "250us", "GET /items".p50 < "5ms",
    regression = "7.5%", service = "api", data = ["fixtures/requests.jsonl"],
    tier = ["nightly", "soak"], soak = ("2h", "10m"), nightly = "1m",
    rss_growth < "1MiB/h", fds_growth < 0, p99_drift < "10%/h",
)]
async fn checkout(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

mod nested {
    use perfgate_runtime::{perf_test, Ctx, Result};

    pub const RAMP_LINE: u32 = line!() + 1;
    #[perf_test(stages = [("10s", 100), ("30s", 500.5)], p999 > "1ms")]
    async fn ramp(_ctx: Ctx) -> Result {
        Ok(())
    }

    pub const BROWSE_LINE: u32 = line!() + 1;
    #[perf_test(users = 20, think = "100ms")]
    async fn r#browse(_: Ctx) -> Result {
        Ok(())
    }
}

/// This test binary again, with only the protocol's variables that `env` sets.
fn this_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args);
    for var in [
        format::env::MODE,
        format::env::BASE_URL,
        format::env::OUT,
        format::env::SCHEMA,
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn describe(test: &str) -> ScenarioSpec {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "perfgate-macros-{}-{test}.json",
        std::process::id()
    ));
    this_binary(
        &["--exact", test, "--ignored"],
        &[
            (format::env::MODE, "describe"),
            (format::env::OUT, path.to_str().unwrap()),
        ],
    );
    let json =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{test} wrote no spec: {e}"));
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&json).unwrap()
}

#[test]
fn generated_tests_are_ignored_and_carry_the_prefix() {
    let out = this_binary(&["--list", "--format", "terse", "--ignored"], &[]);
    let mut listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("{}checkout: test", format::TEST_PREFIX),
            format!("nested::{}browse: test", format::TEST_PREFIX),
            format!("nested::{}ramp: test", format::TEST_PREFIX),
        ]
    );
}

#[test]
fn describe_mode_writes_the_declared_spec() {
    let file = file!().to_string();
    assert_eq!(
        describe("__perfgate_checkout"),
        ScenarioSpec {
            name: "checkout".into(),
            module_path: "scenarios".into(),
            file: file.clone(),
            line: CHECKOUT_LINE,
            load: LoadModel::Open { rate: 300.0 },
            duration_ms: 20_000,
            warmup_ms: 3_000,
            timeout_ms: 1_500,
            max_in_flight: Some(64),
            slos: vec![
                Slo {
                    request: None,
                    metric: Metric::P99,
                    op: Op::Lt,
                    threshold: 40.0
                },
                Slo {
                    request: None,
                    metric: Metric::Errors,
                    op: Op::Lt,
                    threshold: 0.005
                },
                Slo {
                    request: None,
                    metric: Metric::Throughput,
                    op: Op::Ge,
                    threshold: 100.0
                },
                Slo {
                    request: Some("pay".into()),
                    metric: Metric::P999,
                    op: Op::Le,
                    threshold: 0.25
                },
                Slo {
                    request: Some("GET /items".into()),
                    metric: Metric::P50,
                    op: Op::Lt,
                    threshold: 5.0
                },
            ],
            regression_pct: 7.5,
            service: Some("api".into()),
            data: vec!["fixtures/requests.jsonl".into()],
            cost_regression_pct: DEFAULT_COST_REGRESSION_PCT,
            tiers: TierSpec {
                only: vec!["nightly".into(), "soak".into()],
                duration_ms: [
                    ("soak".to_string(), 7_200_000),
                    ("nightly".to_string(), 60_000)
                ]
                .into(),
                warmup_ms: [("soak".to_string(), 600_000)].into(),
            },
            trends: vec![
                TrendSlo {
                    metric: TrendMetric::RssGrowth,
                    allowance: Allowance::PerHour(1_048_576.0)
                },
                TrendSlo {
                    metric: TrendMetric::FdsGrowth,
                    allowance: Allowance::PerHour(0.0)
                },
                TrendSlo {
                    metric: TrendMetric::P99Drift,
                    allowance: Allowance::PercentPerHour(10.0)
                },
            ],
        }
    );
    let ramp = describe("nested::__perfgate_ramp");
    assert_eq!(
        ramp,
        ScenarioSpec {
            name: "ramp".into(),
            module_path: "scenarios::nested".into(),
            file: file.clone(),
            line: nested::RAMP_LINE,
            load: LoadModel::Ramping {
                stages: vec![
                    Stage {
                        duration_ms: 10_000,
                        target_rate: 100.0
                    },
                    Stage {
                        duration_ms: 30_000,
                        target_rate: 500.5
                    },
                ],
            },
            // A ramp without `duration` lasts as long as its stages.
            duration_ms: 40_000,
            warmup_ms: DEFAULT_WARMUP_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_in_flight: None,
            slos: vec![Slo {
                request: None,
                metric: Metric::P999,
                op: Op::Gt,
                threshold: 1.0
            }],
            regression_pct: DEFAULT_REGRESSION_PCT,
            service: None,
            data: vec![],
            cost_regression_pct: DEFAULT_COST_REGRESSION_PCT,
            tiers: TierSpec::default(),
            trends: vec![],
        }
    );
    let browse = describe("nested::__perfgate_browse");
    assert_eq!(browse.name, "browse");
    assert_eq!(browse.line, nested::BROWSE_LINE);
    assert_eq!(
        browse.load,
        LoadModel::Closed {
            users: 20,
            think_ms: 100
        }
    );
    assert_eq!(browse.duration_ms, DEFAULT_DURATION_MS);
}

#[test]
fn without_perfgate_the_scenarios_skip_and_pass() {
    let out = this_binary(
        &["--exact", "__perfgate_checkout", "--ignored", "--nocapture"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo perfgate"),
        "the skip says how to run it: {stderr}"
    );
}
