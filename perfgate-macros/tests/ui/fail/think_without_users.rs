use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 50, think = "100ms")]
async fn open(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(users = 5, max_in_flight = 10)]
async fn closed(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
