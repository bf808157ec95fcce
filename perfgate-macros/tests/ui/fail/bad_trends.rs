use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = 10, rss_growth < "1MiB")]
async fn no_time_unit(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, fds_growth < 5)]
async fn bare_rate(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, p99_drift > "1ms/h")]
async fn lower_bound(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, threads_growth < "2%/h")]
async fn percent_of_threads(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

#[perf_test(rate = 10, pay.rss_growth < "1MiB/h")]
async fn per_request(_ctx: Ctx) -> perfgate_runtime::Result {
    Ok(())
}

fn main() {}
