use perfgate_runtime::{perf_test, Ctx};

// Every bad SLO of an attribute is reported, each at its own token.
#[perf_test(
    rate = 10,
    p42 < "10ms",
    p99 = "40ms",
    p50 < 40,
    errors < "5",
    throughput > "100/m",
    pay.p99.5 < "20ms",
)]
async fn slos(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
