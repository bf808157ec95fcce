use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10, durration = "5s")]
async fn typo(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, concurrency = 4)]
async fn unknown(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
