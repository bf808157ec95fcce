//! The deterministic cost pass: what one iteration of a scenario costs the service, counted
//! under valgrind rather than timed, so the figures repeat whatever else the machine does.
//!
//! How a pass runs (the orchestration lives with the CLI's run loop):
//! 1. [`valgrind::detect`]; a missing valgrind is an error that says how to install it.
//! 2. Start the service with [`valgrind::CostRun::command`] (callgrind), pinned to one CPU.
//! 3. The load generator runs W warm-up iterations with one user, waiting for the service to
//!    be [`idle`] after each; then [`window::Window::begin`]; N iterations the same way;
//!    [`window::Window::end`].
//! 4. [`read_callgrind_window`] → [`WindowCounts`]; the same again under massif for the bytes
//!    ([`read_heap_window`]); [`per_iteration`] → [`CostFigures`]; [`diff_functions`] against
//!    the baseline's figures.
//!
//! Measured on predict-service (POST /predict, ~97k instructions per request; GET /items/{id},
//! ~13k), 200 iterations after 50 of warm-up, 3 runs on a shared 2-core machine and 3 with both
//! cores busy: instructions spread 0.003% (predict) and at most 0.03% (items); syscalls and
//! allocations identical. Without the CPU pin and the idle wait the same runs spread up to 1.4%
//! (instructions) and 12% (syscalls). What remains: hash tables seeded at random per process
//! (probe lengths), and work the service does per wall-clock second (hyper re-renders its Date
//! header: ~640 instructions per second of window, so more per iteration when the machine is
//! slow). Opening a window costs a constant few hundred instructions (see [`window`]).

pub mod callgrind;
pub mod dhat;
pub mod idle;
#[cfg(test)]
mod live;
pub mod valgrind;
pub mod window;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use valgrind::{CostError, CostRun, Tool, Valgrind};
pub use window::{Window, WindowFiles};

/// Allocation entry points of the C library; every heap allocation of the process goes through
/// one of them unless it brings its own allocator.
const LIBC_ALLOCATORS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
];

/// Rust's global-allocator entry points: counted instead when the libc ones are never called
/// (a Rust service with jemalloc or mimalloc as its global allocator).
const RUST_ALLOCATORS: &[&str] = &["__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc"];

/// Calls that are system calls only under valgrind, which gives the process no vDSO; natively
/// they do not enter the kernel, so they are not counted as syscalls.
const VDSO_CALLS: &[&str] = &[
    "clock_gettime",
    "clock_gettime64",
    "gettimeofday",
    "time",
    "getcpu",
    "sched_getcpu",
];

/// Functions with fewer instructions per iteration are left out of [`CostFigures::top_functions`].
pub const MIN_FUNCTION_INSTRUCTIONS: f64 = 0.5;
/// At most this many functions are kept per figure set (largest self cost first).
pub const MAX_FUNCTIONS: usize = 300;

/// What one window counted, over all its iterations and all the service's threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub instructions: u64,
    /// System calls, without [`WindowCounts::vdso_calls`].
    pub syscalls: u64,
    /// clock_gettime and the like, syscalls under valgrind only.
    pub vdso_calls: u64,
    /// Calls to the allocation functions (malloc, calloc, realloc, …).
    pub allocs: u64,
    /// Bytes allocated, from the massif run (None until it is added).
    pub alloc_bytes: Option<u64>,
    /// Blocks allocated, from the massif run (a realloc counts as one).
    pub alloc_blocks: Option<u64>,
    /// Per function, largest self cost first.
    pub functions: Vec<FunctionCount>,
}

/// Instructions of one function (all same-named functions and recursion levels merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCount {
    pub name: String,
    pub self_instructions: u64,
    pub inclusive_instructions: u64,
}

/// The heap activity of one window, from massif's xtree dumps at its edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapWindow {
    pub bytes: u64,
    pub blocks: u64,
}

impl WindowCounts {
    /// Counts of one callgrind dump (the window's).
    pub fn from_callgrind(part: &callgrind::Part) -> WindowCounts {
        let sys = part.event_index("sysCount");
        let (mut syscalls, mut vdso_calls) = (0u64, 0u64);
        if let Some(i) = sys {
            for (name, costs) in &part.functions {
                let n = costs.self_cost.get(i).copied().unwrap_or(0);
                if VDSO_CALLS.contains(&name.trim_start_matches('_')) {
                    vdso_calls += n;
                } else {
                    syscalls += n;
                }
            }
        }
        let mut functions: Vec<FunctionCount> = match part.event_index("Ir") {
            Some(i) => part
                .functions
                .iter()
                .map(|(name, c)| FunctionCount {
                    name: name.clone(),
                    self_instructions: c.self_cost.get(i).copied().unwrap_or(0),
                    inclusive_instructions: c.inclusive.get(i).copied().unwrap_or(0),
                })
                .filter(|f| f.self_instructions > 0 || f.inclusive_instructions > 0)
                .collect(),
            None => Vec::new(),
        };
        functions.sort_by(|a, b| {
            b.self_instructions
                .cmp(&a.self_instructions)
                .then_with(|| a.name.cmp(&b.name))
        });
        WindowCounts {
            instructions: part.total("Ir"),
            syscalls,
            vdso_calls,
            allocs: allocation_calls(part),
            alloc_bytes: None,
            alloc_blocks: None,
            functions,
        }
    }

    /// Adds the bytes and blocks of the same window measured under massif.
    pub fn with_heap(mut self, heap: HeapWindow) -> WindowCounts {
        self.alloc_bytes = Some(heap.bytes);
        self.alloc_blocks = Some(heap.blocks);
        self
    }
}

/// Calls into the allocator from outside it (realloc calling malloc is one allocation).
fn allocation_calls(part: &callgrind::Part) -> u64 {
    let count = |names: &[&str], strip: &str| -> u64 {
        let is = |n: &str| names.contains(&n.strip_prefix(strip).unwrap_or(n));
        part.calls
            .iter()
            .filter(|((from, to), _)| is(to) && !is(from))
            .map(|(_, n)| n)
            .sum()
    };
    match count(LIBC_ALLOCATORS, "") {
        0 => count(RUST_ALLOCATORS, "__rustc::"),
        n => n,
    }
}

impl HeapWindow {
    /// The window between two xtree memory dumps of the same process, from their cumulative
    /// `totB` and `totBk` totals.
    pub fn between(begin: &callgrind::Part, end: &callgrind::Part) -> Result<HeapWindow, String> {
        let get = |p: &callgrind::Part, e: &str| {
            p.event_index(e)
                .and_then(|i| p.totals.get(i).copied())
                .ok_or_else(|| format!("no {e} event: not an xtree memory profile"))
        };
        let (b0, b1) = (get(begin, "totB")?, get(end, "totB")?);
        let (k0, k1) = (get(begin, "totBk")?, get(end, "totBk")?);
        if b1 < b0 || k1 < k0 {
            return Err("the end dump has smaller totals than the begin dump".to_string());
        }
        Ok(HeapWindow {
            bytes: b1 - b0,
            blocks: k1 - k0,
        })
    }
}

fn read_profile(path: &Path) -> Result<callgrind::Profile, CostError> {
    let bytes =
        std::fs::read(path).map_err(|e| CostError::io(format!("reading {}", path.display()), e))?;
    callgrind::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| CostError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Counts of the callgrind dump at `path` (its last part, the window with the default options).
pub fn read_callgrind_window(path: &Path) -> Result<WindowCounts, CostError> {
    let profile = read_profile(path)?;
    let part = profile.parts.last().ok_or_else(|| CostError::Parse {
        path: path.to_path_buf(),
        message: "no costs in the file".to_string(),
    })?;
    Ok(WindowCounts::from_callgrind(part))
}

/// Bytes and blocks allocated between two massif xtree dumps.
pub fn read_heap_window(begin: &Path, end: &Path) -> Result<HeapWindow, CostError> {
    let first = |path: &Path| -> Result<callgrind::Part, CostError> {
        read_profile(path)?
            .parts
            .into_iter()
            .next()
            .ok_or_else(|| CostError::Parse {
                path: path.to_path_buf(),
                message: "no costs in the file".to_string(),
            })
    };
    HeapWindow::between(&first(begin)?, &first(end)?).map_err(|message| CostError::Parse {
        path: end.to_path_buf(),
        message,
    })
}

/// What one iteration costs the service, averaged over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFigures {
    pub iterations: u64,
    pub instructions: f64,
    pub allocs: f64,
    /// Absent when the massif run was skipped.
    pub alloc_bytes: Option<f64>,
    pub syscalls: f64,
    /// Self instructions per iteration by function, largest first; functions under
    /// [`MIN_FUNCTION_INSTRUCTIONS`] and beyond [`MAX_FUNCTIONS`] are left out.
    pub top_functions: Vec<(String, f64)>,
}

/// Divides a window's counts by its iterations. A window of 0 iterations has no figures: all
/// zero, no functions.
pub fn per_iteration(counts: &WindowCounts, iterations: u64) -> CostFigures {
    if iterations == 0 {
        return CostFigures {
            iterations: 0,
            instructions: 0.0,
            allocs: 0.0,
            alloc_bytes: counts.alloc_bytes.map(|_| 0.0),
            syscalls: 0.0,
            top_functions: Vec::new(),
        };
    }
    let n = iterations as f64;
    let mut top: Vec<(String, f64)> = counts
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.self_instructions as f64 / n))
        .filter(|(_, v)| *v >= MIN_FUNCTION_INSTRUCTIONS)
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(MAX_FUNCTIONS);
    CostFigures {
        iterations,
        instructions: counts.instructions as f64 / n,
        allocs: counts.allocs as f64 / n,
        alloc_bytes: counts.alloc_bytes.map(|b| b as f64 / n),
        syscalls: counts.syscalls as f64 / n,
        top_functions: top,
    }
}

/// How one function's self instructions per iteration changed between two figure sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionChange {
    pub name: String,
    /// 0 when the function is not among the base's functions.
    pub base: f64,
    /// 0 when the function is not among the head's functions.
    pub head: f64,
    /// head − base.
    pub delta: f64,
}

impl FunctionChange {
    /// `+12.3k instr/iter in serde_json::de::…`
    pub fn describe(&self) -> String {
        format!("{} instr/iter in {}", signed_count(self.delta), self.name)
    }
}

/// `+12.3k`, `-1.25M`, `+850`, `-4.5`.
fn signed_count(v: f64) -> String {
    let sign = if v < 0.0 { '-' } else { '+' };
    let a = v.abs();
    let body = if a >= 1e6 {
        format!("{:.2}M", a / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", a / 1e3)
    } else if a >= 1e3 {
        format!("{:.2}k", a / 1e3)
    } else if a >= 10.0 {
        format!("{a:.0}")
    } else {
        format!("{a:.1}")
    };
    format!("{sign}{body}")
}

/// The `n` functions whose self instructions per iteration changed most (by absolute change,
/// then by name); functions that did not change are left out.
pub fn diff_functions(base: &CostFigures, head: &CostFigures, n: usize) -> Vec<FunctionChange> {
    let mut both: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (name, v) in &base.top_functions {
        both.entry(name).or_default().0 += v;
    }
    for (name, v) in &head.top_functions {
        both.entry(name).or_default().1 += v;
    }
    let mut changes: Vec<FunctionChange> = both
        .into_iter()
        .map(|(name, (b, h))| FunctionChange {
            name: name.to_string(),
            base: b,
            head: h,
            delta: h - b,
        })
        .filter(|c| c.delta != 0.0)
        .collect();
    changes.sort_by(|a, b| {
        b.delta
            .abs()
            .total_cmp(&a.delta.abs())
            .then_with(|| a.name.cmp(&b.name))
    });
    changes.truncate(n);
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/cost/testdata")
            .join(name)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn predict_window_counts_and_figures() {
        // POST /predict, 20 iterations (50 warm-up) with instrumentation switched on for the
        // window, trimmed to a few functions; the totals line is the whole window's.
        let counts = read_callgrind_window(&testdata("window-predict.callgrind")).unwrap();
        assert_eq!(counts.instructions, 2_173_514);
        // epoll_wait 21 + recv 20 + writev 20; clock_gettime's 146 are valgrind's doing.
        assert_eq!(counts.syscalls, 61);
        assert_eq!(counts.vdso_calls, 146);
        // 2088 malloc + 422 realloc, all from Rust's allocator shims.
        assert_eq!(counts.allocs, 2_510);
        assert_eq!(counts.alloc_bytes, None);
        assert_eq!(counts.functions[0].name, "_int_malloc");
        assert_eq!(counts.functions[0].self_instructions, 234_861);
        let scores = counts
            .functions
            .iter()
            .find(|f| f.name == "predict_service::model::naive_bayes::NaiveBayes::log_scores")
            .unwrap();
        assert_eq!(scores.self_instructions, 117_545);
        assert_eq!(scores.inclusive_instructions, 1_624_381);

        let fig = per_iteration(&counts, 20);
        assert_eq!(fig.iterations, 20);
        assert!(close(fig.instructions, 108_675.7), "{}", fig.instructions);
        assert!(close(fig.syscalls, 3.05), "{}", fig.syscalls);
        assert!(close(fig.allocs, 125.5), "{}", fig.allocs);
        assert_eq!(fig.alloc_bytes, None);
        assert_eq!(fig.top_functions[0].0, "_int_malloc");
        assert!(close(fig.top_functions[0].1, 11_743.05));
        // clock_gettime@@GLIBC_2.17 is keyed without its symbol version.
        assert!(fig
            .top_functions
            .iter()
            .any(|(n, v)| n == "clock_gettime" && close(*v, 73.0)));
    }

    #[test]
    fn uncompressed_names_and_positions_give_the_same_kind_of_counts() {
        // GET /items/{id}, 5 iterations, --compress-strings=no --compress-pos=no.
        let counts =
            read_callgrind_window(&testdata("window-item-uncompressed.callgrind")).unwrap();
        assert_eq!(counts.instructions, 66_547);
        assert_eq!(counts.syscalls, 15);
        assert_eq!(counts.vdso_calls, 31);
        assert_eq!(counts.allocs, 30);
        let item = counts
            .functions
            .iter()
            .find(|f| f.name == "predict_service::routes::item")
            .unwrap();
        assert_eq!(
            (item.self_instructions, item.inclusive_instructions),
            (914, 20_381)
        );
        let fig = per_iteration(&counts, 5);
        assert!(close(fig.instructions, 13_309.4));
        assert!(close(fig.syscalls, 3.0));
        assert!(close(fig.allocs, 6.0));
    }

    #[test]
    fn heap_window_is_the_difference_of_the_xtree_dumps() {
        // Massif, GET /items/{id}: xtmemory at both edges of a 20-iteration window.
        let heap = read_heap_window(
            &testdata("xtmemory-begin.kcg"),
            &testdata("xtmemory-end.kcg"),
        )
        .unwrap();
        assert_eq!(
            heap,
            HeapWindow {
                bytes: 185_920,
                blocks: 140
            }
        );
        let fig = per_iteration(&WindowCounts::default().with_heap(heap), 20);
        assert_eq!(fig.alloc_bytes, Some(9_296.0));
        // Begin and end swapped: refused, not a huge unsigned number.
        assert!(read_heap_window(
            &testdata("xtmemory-end.kcg"),
            &testdata("xtmemory-begin.kcg")
        )
        .is_err());
        // A callgrind dump is not an xtree profile.
        assert!(read_heap_window(
            &testdata("window-predict.callgrind"),
            &testdata("xtmemory-end.kcg")
        )
        .is_err());
    }

    #[test]
    fn zero_iterations_give_no_figures() {
        let counts = read_callgrind_window(&testdata("window-predict.callgrind")).unwrap();
        let fig = per_iteration(&counts, 0);
        assert_eq!(fig.instructions, 0.0);
        assert!(fig.top_functions.is_empty());
    }

    fn figures(functions: &[(&str, f64)]) -> CostFigures {
        CostFigures {
            iterations: 100,
            instructions: functions.iter().map(|(_, v)| v).sum(),
            allocs: 0.0,
            alloc_bytes: None,
            syscalls: 0.0,
            top_functions: functions.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn diff_orders_by_absolute_change_and_counts_missing_functions_as_zero() {
        let base = figures(&[
            ("serde_json::de::from_slice", 1_000.0),
            ("hyper::proto::h1::role::parse_headers", 500.0),
            ("predict_service::old_helper", 300.0),
            ("memcpy", 40.0),
        ]);
        let head = figures(&[
            ("serde_json::de::from_slice", 13_300.0),
            ("hyper::proto::h1::role::parse_headers", 500.0),
            ("memcpy", 20.0),
            ("predict_service::new_helper", 300.0),
        ]);
        let changes = diff_functions(&base, &head, 10);
        let summary: Vec<(&str, f64)> =
            changes.iter().map(|c| (c.name.as_str(), c.delta)).collect();
        assert_eq!(
            summary,
            [
                ("serde_json::de::from_slice", 12_300.0),
                ("predict_service::new_helper", 300.0),
                ("predict_service::old_helper", -300.0),
                ("memcpy", -20.0),
            ]
        );
        assert_eq!(
            changes[0].describe(),
            "+12.3k instr/iter in serde_json::de::from_slice"
        );
        assert_eq!(
            changes[2].describe(),
            "-300 instr/iter in predict_service::old_helper"
        );
        assert_eq!((changes[1].base, changes[1].head), (0.0, 300.0));
        assert_eq!(diff_functions(&base, &head, 1).len(), 1);
        assert!(diff_functions(&base, &base, 10).is_empty());
    }

    #[test]
    fn diff_of_two_real_windows() {
        // Two consecutive 5-iteration windows of GET /items/{id} in one process.
        let text = std::fs::read_to_string(testdata("combined-item.callgrind")).unwrap();
        let profile = callgrind::parse(&text).unwrap();
        let w0 = WindowCounts::from_callgrind(profile.dump_labelled("w0").unwrap());
        let w1 = WindowCounts::from_callgrind(profile.dump_labelled("w1").unwrap());
        let changes = diff_functions(&per_iteration(&w0, 5), &per_iteration(&w1, 5), 5);
        // One more park of the runtime in the second window: epoll_wait 142 → 149.
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].name, "epoll_wait");
        assert!(close(changes[0].delta, 1.4));
        assert_eq!(changes[0].describe(), "+1.4 instr/iter in epoll_wait");
    }

    #[test]
    fn counts_formatting() {
        assert_eq!(signed_count(12_345.0), "+12.3k");
        assert_eq!(signed_count(-1_250_000.0), "-1.25M");
        assert_eq!(signed_count(1_234.0), "+1.23k");
        assert_eq!(signed_count(850.0), "+850");
        assert_eq!(signed_count(-4.54), "-4.5");
    }

    #[test]
    fn figures_round_trip_through_json() {
        let counts = read_callgrind_window(&testdata("window-predict.callgrind")).unwrap();
        let fig = per_iteration(&counts, 20);
        let json = serde_json::to_string(&fig).unwrap();
        let back: CostFigures = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fig);
    }
}
