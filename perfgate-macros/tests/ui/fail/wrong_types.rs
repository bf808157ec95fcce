// The attribute cannot see types: a fn of the right shape but wrong types is left to the compiler,
// whose errors point at the scenario's name.
use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10)]
async fn wrong_argument(_ctx: u32) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10)]
async fn wrong_result(_ctx: Ctx) -> Result<(), String> {
    Ok(())
}

fn main() {}
