use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10)]
async fn no_context() -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10)]
async fn two_args(_ctx: Ctx, _n: u32) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10)]
async fn generic<C>(_ctx: C) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10)]
async fn no_result(_ctx: Ctx) {}

fn main() {}
