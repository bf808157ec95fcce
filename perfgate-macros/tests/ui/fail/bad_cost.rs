use perfgate_runtime::{perf_test, Ctx};

// Cost SLOs take counts ("150k"), sizes ("16KiB") and a percentage tolerance; each bad one is
// reported at its own token.
#[perf_test(
    users = 1,
    instructions < "150q",
    allocs < -1,
    alloc_bytes < "16",
    syscalls < "ten",
    instructons < "150k",
    cost_regression = 2,
)]
async fn costly(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
