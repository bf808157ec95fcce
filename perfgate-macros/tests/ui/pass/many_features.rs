//! The attribute's whole grammar, in the forms users write it.
use perfgate_runtime::{perf_test, Ctx};

#[perf_test(
    rate = 300, duration = "20s", warmup = "3s", timeout = "2s", max_in_flight = 512,
    p99 < "40ms", p50 <= "8ms", p90 < "0.5s", p95 < "1500us", p99.9 < "100ms", max < "1m",
    mean < "5ms", errors < "0.5%", throughput >= "250/s",
    pay.p99 < "20ms", pay.p99.9 < "60ms", "GET /items/{id}".p50 < "5ms",
    regression = "10%", service = "api", data = ["fixtures/requests.jsonl", "fixtures/users.csv"],
)]
async fn checkout(ctx: Ctx) -> perfgate_runtime::Result {
    let _ = ctx;
    Ok(())
}

#[perf_test(
    rate = 50, tier = ["nightly", "soak"], nightly = "5m", soak = "2h",
    rss_growth < "1MiB/h", fds_growth < 0, threads_growth <= "2/h", p99_drift < "10%/h",
)]
async fn soaked(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 5, tier = "smoke", smoke = "500ms", rss_growth < "5%/h", p99_drift < "1ms/min")]
async fn smoke_only(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(users = 50, think = "100ms", errors < 0.01, throughput > 20)]
async fn browse_plain(_: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(
    users = 50, think = "100ms", errors < 0.01, throughput > 20,
    instructions < "150k", allocs < 40, alloc_bytes < "16KiB", syscalls <= 5,
    item.instructions < "20.5k", cost_regression = "2%",
)]
async fn browse(_: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(stages = [("10s", 100), ("30s", 500), ("5s", 0)], max_in_flight = 64, p999 < "1s")]
pub async fn ramp(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

mod nested {
    use perfgate_runtime::{perf_test, Ctx, Result};

    #[perf_test(rate = 0.5)]
    pub(crate) async fn r#loop(_ctx: Ctx) -> Result {
        Ok(())
    }
}

fn main() {}
