use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 100, duration = "10s", users = 20)]
async fn both(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
