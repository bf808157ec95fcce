//! `#[perf_test]`: declares an async fn as a perfgate load scenario.
//!
//! Use it through `perfgate_runtime::perf_test`; the runtime's documentation describes the
//! arguments. The annotated fn is kept as written and a `#[test] #[ignore]` fn named
//! `__perfgate_<name>` is added beside it, which hands the declared spec and the fn to the runtime.

use proc_macro::TokenStream;

mod args;
mod expand;

/// Declares a load scenario:
///
/// ```ignore
/// #[perf_test(rate = 300, duration = "20s", p99 < "40ms", errors < "0.5%")]
/// async fn checkout(ctx: Ctx) -> perfgate_runtime::Result { Ok(()) }
/// ```
///
/// One load model: `rate = N` (open, iterations/s), `stages = [("10s", 100), ("30s", 500)]` (ramping
/// open) or `users = N` (closed, with optional `think = "100ms"`). Settings: `duration`, `warmup`,
/// `timeout` (durations such as `"500ms"`, `"1.5s"`, `"2m"`), `max_in_flight = N` (open models),
/// `regression = "10%"`, `service = "name"`, `data = ["fixtures/requests.jsonl"]`. SLOs:
/// `[REQUEST.]METRIC OP VALUE` with METRIC one of p50, p90, p95, p99, p99.9, max, mean (durations),
/// errors (`"0.5%"` or a fraction), throughput (`"100/s"` or a number), OP one of `<`, `<=`, `>`, `>=`;
/// REQUEST an identifier or a string (`"GET /items".p99 < "5ms"`).
///
/// Test tiers: `tier = ["nightly", "soak"]` (the only tiers it runs in), and its measured duration in a
/// tier, `smoke = "5s"`, `nightly = "5m"`, `soak = "2h"`, or with the warm-up there, `soak = ("2h",
/// "10m")`. Leak and drift bounds, checked on the fitted slope over the run: `rss_growth < "1MiB/h"`
/// (or `"5%/h"`), `fds_growth < 0` (or `"10/h"`), `threads_growth < 0`, `p99_drift < "5ms/h"` (or
/// `"20%/h"`); rates per `/h`, `/min` or `/s`.
#[proc_macro_attribute]
pub fn perf_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr.into(), item.into()).into()
}
