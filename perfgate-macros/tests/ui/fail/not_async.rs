use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10)]
fn blocking(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
