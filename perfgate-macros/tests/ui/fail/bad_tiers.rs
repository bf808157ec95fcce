use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10, tier = ["nighty"])]
async fn misspelt_tier(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, tier = [])]
async fn no_tier(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, tier = ["nightly"], soak = "2h")]
async fn duration_for_a_tier_it_skips(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, soak = "2 hours")]
async fn bad_tier_duration(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
