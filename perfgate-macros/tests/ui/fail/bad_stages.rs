use perfgate_runtime::{perf_test, Ctx};

#[perf_test(stages = [("10s", 100), (30, 500)])]
async fn unit_missing(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(stages = [])]
async fn empty(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
