use perfgate_runtime::perf_test;

#[perf_test(rate = 10)]
struct Checkout;

fn main() {}
