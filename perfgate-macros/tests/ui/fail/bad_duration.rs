use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10, duration = "20 seconds")]
async fn spelled_out(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, warmup = 3)]
async fn no_unit(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, timeout = "1.5ms")]
async fn fractional_ms(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
