use perfgate_runtime::{perf_test, Ctx};

#[perf_test(duration = "10s", p99 < "40ms")]
async fn idle(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
