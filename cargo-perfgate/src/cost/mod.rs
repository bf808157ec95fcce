//! The deterministic cost pass: what one iteration of a scenario costs the service, counted
//! under valgrind rather than timed, so the figures repeat whatever else the machine does.
//!
//! How a pass runs (`plan.rs` decides whether and for which scenarios, `pass.rs` runs it):
//! 1. [`valgrind::detect`]; a missing valgrind is an error that says how to install it.
//! 2. Start the service with [`valgrind::CostRun::command`] (callgrind), pinned to one CPU.
//! 3. The scenario binary, in cost mode (the runtime's `engine/cost.rs`), runs W warm-up
//!    iterations with one user, waiting for the service to be idle after each; then
//!    [`window::Window::begin`]; N iterations the same way (with a [`window::Window::mark`] after
//!    each request when the iterations make requests of several names); [`window::Window::end`].
//! 4. The same again under massif for the bytes; [`measure`] turns both windows into
//!    [`CostFigures`] per iteration and per named request; the gate (`gate/cost.rs`) compares
//!    them with the baseline's and [`diff_functions`] names the functions that changed.
//!
//! This file and the parsers and valgrind control it uses depend on nothing else of the crate:
//! the gate and the results document use its types. `plan.rs` and `pass.rs` sit above the
//! service and discovery layers.
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
pub mod pass;
pub mod plan;
pub mod valgrind;
pub mod window;

use std::collections::BTreeMap;
use std::path::Path;

use perfgate_runtime::format::{CostDone, Metric};

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

    /// Adds the counts of a later part of the same window (a window cut by marks).
    pub fn add(&mut self, other: &WindowCounts) {
        self.instructions += other.instructions;
        self.syscalls += other.syscalls;
        self.vdso_calls += other.vdso_calls;
        self.allocs += other.allocs;
        let mut by_name: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for f in self.functions.iter().chain(&other.functions) {
            let e = by_name.entry(f.name.clone()).or_default();
            e.0 += f.self_instructions;
            e.1 += f.inclusive_instructions;
        }
        self.functions = by_name
            .into_iter()
            .map(|(name, (s, i))| FunctionCount {
                name,
                self_instructions: s,
                inclusive_instructions: i,
            })
            .collect();
        self.functions.sort_by(|a, b| {
            b.self_instructions
                .cmp(&a.self_instructions)
                .then_with(|| a.name.cmp(&b.name))
        });
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

/// What the cost pass measured for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostMeasurement {
    pub warmup: u64,
    pub iterations: u64,
    /// Per iteration, over the window.
    pub figures: CostFigures,
    /// Per named request (and `ctx.time` step).
    #[serde(default)]
    pub requests: BTreeMap<String, CostFigures>,
    pub per_request: PerRequest,
    /// Iterations (or requests) that started before the service had gone idle: 0 when the figures
    /// are as repeatable as the method allows.
    pub not_idle: u64,
    /// The service's once-a-second work, taken out of the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockWork>,
    /// Wall time of the scenario's part of the pass (both valgrind runs, the service starts shared
    /// with other scenarios not included), and of the callgrind window alone.
    pub secs: f64,
    pub window_secs: f64,
    /// What makes two cost measurements of the scenario comparable (see `load::window::cost_spec_parts`).
    #[serde(default)]
    pub spec_parts: BTreeMap<String, String>,
    /// The functions whose instructions per iteration changed most against the base (set by the
    /// gate; empty without a base to compare with).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribution: Vec<FunctionChange>,
}

/// How per-request figures were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerRequest {
    /// Each request in a window of its own (the iterations make requests of several names).
    Windows,
    /// One name only: the iteration's figures divided by that name's requests per iteration.
    Attributed,
}

/// Turns the callgrind window (and the massif one, for the bytes) of one scenario into figures per
/// iteration and per named request. `done` is what the scenario sent in the callgrind window; the
/// massif window must have seen the same requests.
pub fn measure(
    done: &CostDone,
    callgrind: &WindowFiles,
    massif: Option<(&CostDone, &WindowFiles)>,
) -> Result<WindowFigures, CostError> {
    let n = done.iterations;
    let mut parts = Vec::new();
    for path in callgrind.marks.iter().chain([&callgrind.end]) {
        parts.push((path.clone(), read_callgrind_window(path)?));
    }
    if !done.marks.is_empty() && done.marks.len() != callgrind.marks.len() {
        return Err(CostError::Parse {
            path: callgrind.end.clone(),
            message: format!(
                "the scenario marked {} requests but {} dumps were taken",
                done.marks.len(),
                callgrind.marks.len()
            ),
        });
    }
    let mut windows: Vec<WindowCounts> = parts[..parts.len() - 1]
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    let clock = clock_work(done, &windows);
    if let Some(c) = &clock {
        for &k in &c.windows {
            let w = &mut windows[k];
            w.instructions = w.instructions.saturating_sub(c.per_tick.round() as u64);
            w.allocs = w.allocs.saturating_sub(c.allocs_per_tick.round() as u64);
        }
    }
    let mut total = WindowCounts::default();
    let mut by_name: BTreeMap<&str, (WindowCounts, u64)> = BTreeMap::new();
    for (k, w) in windows.iter().enumerate() {
        total.add(w);
        if let Some(name) = done.marks.get(k) {
            let e = by_name.entry(name).or_default();
            e.0.add(w);
            e.1 += 1;
        }
    }
    total.add(&parts[parts.len() - 1].1);
    // Bytes per part: differences of the cumulative xtree totals at consecutive edges.
    let mut heap_parts: Option<Vec<HeapWindow>> = None;
    if let Some((mdone, m)) = massif {
        if mdone.marks != done.marks || mdone.requests != done.requests {
            return Err(CostError::Parse {
                path: m.end.clone(),
                message: "the massif run saw other requests than the callgrind run (does the                           scenario depend on time or randomness?)"
                    .to_string(),
            });
        }
        let begin = m.begin.clone().ok_or_else(|| CostError::MissingOutput {
            what: "the xtree dump at the window's start".into(),
            dir: m.end.parent().map(Path::to_path_buf).unwrap_or_default(),
        })?;
        let edges: Vec<&Path> = std::iter::once(begin.as_path())
            .chain(m.marks.iter().map(|p| p.as_path()))
            .chain([m.end.as_path()])
            .collect();
        let mut hp = Vec::new();
        for w in edges.windows(2) {
            hp.push(read_heap_window(w[0], w[1])?);
        }
        let whole = read_heap_window(edges[0], &m.end)?;
        total = total.with_heap(whole);
        heap_parts = Some(hp);
    }
    let figures = per_iteration(&total, n);
    let mut requests = BTreeMap::new();
    // Older runtimes marked only when the iterations made requests of several names.
    let mode = if done.marks.is_empty() || done.requests.len() <= 1 {
        PerRequest::Attributed
    } else {
        PerRequest::Windows
    };
    match mode {
        // Several names without marks (the warm-up saw only one of them): no request's share of
        // the iteration is known, so none gets figures of its own.
        PerRequest::Attributed if done.requests.len() > 1 => {}
        PerRequest::Attributed => {
            for (name, &count) in &done.requests {
                let mut f = per_iteration(&total, count);
                f.top_functions.clear();
                requests.insert(name.clone(), f);
            }
        }
        PerRequest::Windows => {
            for (name, (counts, count)) in &by_name {
                let mut counts = counts.clone();
                if let Some(hp) = &heap_parts {
                    let bytes = done
                        .marks
                        .iter()
                        .zip(hp)
                        .filter(|(m, _)| m == name)
                        .map(|(_, h)| h.bytes)
                        .sum();
                    counts.alloc_bytes = Some(bytes);
                }
                let mut f = per_iteration(&counts, *count);
                f.top_functions.clear();
                requests.insert(name.to_string(), f);
            }
        }
    }
    Ok(WindowFigures {
        figures,
        requests,
        per_request: mode,
        clock: clock.map(|c| ClockWork {
            ticks: c.windows.len() as u64,
            per_tick: c.per_tick,
            allocs_per_tick: c.allocs_per_tick,
        }),
    })
}

/// What [`measure`] makes of a scenario's windows.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFigures {
    pub figures: CostFigures,
    pub requests: BTreeMap<String, CostFigures>,
    pub per_request: PerRequest,
    /// The service's once-a-second work, taken out of the figures (see [`clock_work`]).
    pub clock: Option<ClockWork>,
}

/// Work a service does once per second of wall time, whatever its load: hyper formats its `Date`
/// header again when the second has changed (about 950 instructions on predict-service). Counted
/// as it is, it would grow the figures with the window's wall time: on a loaded machine each
/// window takes longer, and more of them include a change of second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockWork {
    /// Changes of second during the window, each taken out of one request's window.
    pub ticks: u64,
    /// Instructions taken out per change.
    pub per_tick: f64,
    /// Allocations taken out per change.
    #[serde(default)]
    pub allocs_per_tick: f64,
}

/// Where the clock's work fell and what it cost, when the windows show it clearly.
struct Ticks {
    /// The window that took each change of second.
    windows: Vec<usize>,
    per_tick: f64,
    allocs_per_tick: f64,
}

/// Finds the service's once-a-second work in the request windows. A change of second between two
/// requests' arrivals falls in the window of the later one (the first of the window counts from the
/// warm-up's last request), or, within [`TICK_MARGIN_US`] after a request was sent, possibly in
/// that request's own; of those, the window whose instructions exceed most the median of its
/// request's windows without a change took it. The cost of a change is the median of those
/// excesses, used only when it stands out from the spread of the windows without one (otherwise
/// the service has no such work, or too little to tell from its requests' own variation, and
/// nothing is taken out). None without the runtime's times (older runtimes).
fn clock_work(done: &CostDone, windows: &[WindowCounts]) -> Option<Ticks> {
    let n = done.marks.len();
    let sent = &done.sent_us;
    if n == 0 || sent.len() != n || windows.len() != n || sent.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    let second = |us: u64| us / 1_000_000;
    let from = if done.before_us > 0 && done.before_us <= sent[0] {
        done.before_us
    } else {
        sent[0]
    };
    let changes: Vec<Vec<usize>> = (second(from) + 1..=second(sent[n - 1]))
        .filter_map(|s| {
            let at = s * 1_000_000;
            let k = sent.iter().position(|&t| t >= at)?;
            let early = k > 0 && at - sent[k - 1] < TICK_MARGIN_US;
            Some(if early { vec![k, k - 1] } else { vec![k] })
        })
        .collect();
    let ticked: Vec<bool> = (0..n)
        .map(|k| changes.iter().any(|c| c.contains(&k)))
        .collect();
    // Each request's typical window: the median of its windows without a change, or of all of
    // them when fewer than three are without one (a rare request on a loaded machine).
    let typical = |value: &dyn Fn(&WindowCounts) -> f64| -> BTreeMap<&str, f64> {
        let mut by_name: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for k in 0..n {
            let e = by_name.entry(&done.marks[k]).or_default();
            e.1.push(value(&windows[k]));
            if !ticked[k] {
                e.0.push(value(&windows[k]));
            }
        }
        by_name
            .iter()
            .map(|(k, (quiet, all))| (*k, median(if quiet.len() >= 3 { quiet } else { all })))
            .collect()
    };
    let medians = typical(&|w| w.instructions as f64);
    let excess = |k: usize| {
        medians
            .get(done.marks[k].as_str())
            .map(|m| windows[k].instructions as f64 - m)
    };
    let mut took = Vec::new();
    let mut excesses = Vec::new();
    for c in &changes {
        let Some((k, e)) = c
            .iter()
            .filter_map(|&k| excess(k).map(|e| (k, e)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            // No request window around it (a change after the last response's margin).
            continue;
        };
        took.push(k);
        excesses.push(e);
    }
    let spread: Vec<f64> = (0..n)
        .filter(|&k| !ticked[k])
        .filter_map(|k| excess(k).map(f64::abs))
        .collect();
    if excesses.len() < MIN_TICKS || spread.len() < MIN_STEADY_WINDOWS {
        return None;
    }
    let per_tick = median(&excesses);
    if per_tick <= TICK_OVER_SPREAD * median(&spread).max(1.0) {
        return None;
    }
    // What else a change costs, where it took place: hyper's allocates the new header once.
    let alloc_medians = typical(&|w| w.allocs as f64);
    let allocs: Vec<f64> = took
        .iter()
        .map(|&k| windows[k].allocs as f64 - alloc_medians[done.marks[k].as_str()])
        .collect();
    Some(Ticks {
        windows: took,
        per_tick,
        allocs_per_tick: median(&allocs).max(0.0),
    })
}

/// The median of the finite values (the mean of the middle two of an even count; 0 for none).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A change of second this soon after a request was sent may still have come before the service
/// read it: its work then falls in that request's window rather than the next one's.
const TICK_MARGIN_US: u64 = 10_000;
/// Fewest changes of second, and request windows without one, to measure the clock's work from.
const MIN_TICKS: usize = 3;
const MIN_STEADY_WINDOWS: usize = 5;
/// The clock's work is taken out only when a change costs this many times the median distance of
/// the windows without one from their request's median.
const TICK_OVER_SPREAD: f64 = 5.0;

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

impl CostFigures {
    /// The figure a cost metric names; None for the bytes when massif did not run, and for the
    /// metrics the cost pass does not measure.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Instructions => Some(self.instructions),
            Metric::Allocs => Some(self.allocs),
            Metric::AllocBytes => self.alloc_bytes,
            Metric::Syscalls => Some(self.syscalls),
            _ => None,
        }
    }
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
///
/// Each side lists only its largest functions, so a function missing from one side cost at most
/// that side's smallest listed value there: it counts as 0 when the other side's value is larger
/// (a function that appeared or grew into the list), and is left out when it is not (nothing can be
/// said about it).
pub fn diff_functions(base: &CostFigures, head: &CostFigures, n: usize) -> Vec<FunctionChange> {
    let cut = |f: &CostFigures| {
        f.top_functions
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min)
    };
    let (base_cut, head_cut) = (cut(base), cut(head));
    let mut both: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for (name, v) in &base.top_functions {
        let e = both.entry(name).or_default();
        e.0 = Some(e.0.unwrap_or(0.0) + v);
    }
    for (name, v) in &head.top_functions {
        let e = both.entry(name).or_default();
        e.1 = Some(e.1.unwrap_or(0.0) + v);
    }
    let mut changes: Vec<FunctionChange> = both
        .into_iter()
        .filter_map(|(name, sides)| {
            let (b, h) = match sides {
                (Some(b), Some(h)) => (b, h),
                (None, Some(h)) if h > base_cut || base.top_functions.is_empty() => (0.0, h),
                (Some(b), None) if b > head_cut || head.top_functions.is_empty() => (b, 0.0),
                _ => return None,
            };
            Some(FunctionChange {
                name: name.to_string(),
                base: b,
                head: h,
                delta: h - b,
            })
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
        // Missing from the base, whose list ends at 40: 10 in head says nothing about a change.
        let mut small = head.clone();
        small.top_functions.push(("tiny".into(), 10.0));
        assert!(diff_functions(&base, &small, 10)
            .iter()
            .all(|c| c.name != "tiny"));
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

    fn write_part(dir: &Path, name: &str, ir: u64, sys: u64, mallocs: u64) -> std::path::PathBuf {
        let path = dir.join(name);
        let text = format!(
            "# callgrind format\nversion: 1\npart: 1\nevents: Ir sysCount\n\
             fn=(1) handle\n0 {ir} {sys}\ncfn=(2) malloc\ncalls={mallocs} 0\n0 {mallocs} 0\n\
             fn=(2)\n0 {mallocs} 0\n\ntotals: {} {sys}\n",
            ir + mallocs
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn write_xtree(dir: &Path, name: &str, bytes: u64, blocks: u64) -> std::path::PathBuf {
        let path = dir.join(name);
        let text = format!(
            "# callgrind format\nversion: 1\ncreator: xtree-1\npart: 1\n\
             events: curB curBk totB totBk totFdB totFdBk\nfn=(1) main\n0 0 0 {bytes} {blocks} 0 0\n\
             totals: 0 0 {bytes} {blocks} 0 0\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn done(iterations: u64, requests: &[(&str, u64)], marks: &[&str]) -> CostDone {
        CostDone {
            schema_version: perfgate_runtime::format::SCHEMA_VERSION,
            perfgate_version: "0.1.0".into(),
            warmup: 2,
            iterations,
            errors: Default::default(),
            error_samples: vec![],
            requests: requests.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            marks: marks.iter().map(|m| m.to_string()).collect(),
            sent_us: Vec::new(),
            before_us: 0,
            not_idle: 0,
        }
    }

    #[test]
    fn each_request_counted_in_its_own_window_and_the_iteration_in_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Two iterations: item, then item and item_missing; the rest of the window after them.
        let callgrind = WindowFiles {
            tool: Tool::Callgrind,
            begin: None,
            marks: vec![
                write_part(d, "m0", 1000, 4, 7),
                write_part(d, "m1", 1100, 4, 7),
                write_part(d, "m2", 900, 4, 12),
            ],
            end: write_part(d, "end", 50, 1, 0),
            elapsed: std::time::Duration::from_millis(300),
        };
        let massif = WindowFiles {
            tool: Tool::Massif,
            begin: Some(write_xtree(d, "x0", 1_000, 10)),
            marks: vec![
                write_xtree(d, "x1", 2_000, 17),
                write_xtree(d, "x2", 3_000, 24),
                write_xtree(d, "x3", 4_500, 36),
            ],
            end: write_xtree(d, "x4", 4_500, 36),
            elapsed: std::time::Duration::from_millis(300),
        };
        let seen = done(
            2,
            &[("item", 2), ("item_missing", 1)],
            &["item", "item", "item_missing"],
        );
        let WindowFigures {
            figures: fig,
            requests,
            per_request: mode,
            clock,
        } = measure(&seen, &callgrind, Some((&seen, &massif))).unwrap();
        assert_eq!((mode, clock), (PerRequest::Windows, None));
        // (1007 + 1107 + 912 + 50) / 2 iterations, 26 allocations / 2, 3,500 bytes / 2.
        assert!(close(fig.instructions, 1538.0), "{fig:?}");
        assert!(
            close(fig.allocs, 13.0) && fig.alloc_bytes == Some(1750.0),
            "{fig:?}"
        );
        assert!(close(fig.syscalls, 6.5), "{fig:?}");
        let item = &requests["item"];
        assert!(
            close(item.instructions, 1057.0) && close(item.allocs, 7.0),
            "{item:?}"
        );
        assert_eq!(item.alloc_bytes, Some(1000.0));
        let missing = &requests["item_missing"];
        assert!(close(missing.instructions, 912.0) && close(missing.allocs, 12.0));
        assert_eq!(missing.alloc_bytes, Some(1500.0));
        // The massif run must have seen the same requests.
        let other = done(2, &[("item", 3)], &["item", "item", "item"]);
        assert!(measure(&seen, &callgrind, Some((&other, &massif))).is_err());
    }

    #[test]
    fn one_request_name_is_attributed_and_several_without_marks_get_no_figures() {
        let dir = tempfile::tempdir().unwrap();
        let callgrind = WindowFiles {
            tool: Tool::Callgrind,
            begin: None,
            marks: vec![],
            end: write_part(dir.path(), "end", 10_000, 30, 40),
            elapsed: std::time::Duration::from_millis(100),
        };
        let one = done(10, &[("POST /predict", 10)], &[]);
        let w = measure(&one, &callgrind, None).unwrap();
        let (fig, requests, mode) = (w.figures, w.requests, w.per_request);
        assert_eq!(mode, PerRequest::Attributed);
        assert!(close(fig.instructions, 1004.0) && fig.alloc_bytes.is_none());
        assert!(close(requests["POST /predict"].instructions, 1004.0));
        let two = done(10, &[("a", 10), ("b", 2)], &[]);
        let requests = measure(&two, &callgrind, None).unwrap().requests;
        assert!(requests.is_empty(), "{requests:?}");
    }

    /// Request windows shaped like item_lookup's on this machine (~14.8k instructions, a tenth of
    /// the requests ~14.3k, one window ~900 more every time), plus ~950 in the window that took a
    /// change of second (hyper's `Date` header): one window in eight on an idle machine, one in two
    /// on a loaded one. `late`: changes falling this long before a response go to the next window.
    fn clock_windows(
        d: &Path,
        gap_us: u64,
        per_tick: u64,
        late_us: u64,
        times: bool,
    ) -> (WindowFigures, f64) {
        let n = 40;
        let names: Vec<&str> = (0..n)
            .map(|k| if k % 10 == 9 { "miss" } else { "item" })
            .collect();
        let base = |k: usize| match names[k] {
            "miss" => 14_300,
            _ if k == 6 => 15_700,
            _ => 14_800 + (k as u64 % 3) * 40,
        };
        let start = 1_700_000_000_450_000;
        let sent: Vec<u64> = (0..n as u64).map(|k| start + k * gap_us).collect();
        let before = start - gap_us;
        // Each change of second goes to the first request sent after it, or to the one before
        // when it came less than `late_us` after that one was sent.
        let mut ticked = vec![false; n];
        for s in before / 1_000_000 + 1..=sent[n - 1] / 1_000_000 {
            let at = s * 1_000_000;
            let mut k = sent.iter().position(|&t| t >= at).unwrap();
            if k > 0 && at - sent[k - 1] < late_us {
                k -= 1;
            }
            ticked[k] = true;
        }
        let extra: Vec<u64> = ticked
            .iter()
            .map(|&t| if t { per_tick } else { 0 })
            .collect();
        let tag = format!("{gap_us}-{per_tick}-{late_us}");
        let marks = (0..n)
            .map(|k| {
                // A change also allocates once (hyper's new header).
                let allocs = 7 + u64::from(ticked[k] && per_tick > 0);
                write_part(d, &format!("m{k}-{tag}"), base(k) + extra[k], 4, allocs)
            })
            .collect();
        let callgrind = WindowFiles {
            tool: Tool::Callgrind,
            begin: None,
            marks,
            end: write_part(d, &format!("end-{tag}"), 800, 1, 0),
            elapsed: std::time::Duration::from_secs(2),
        };
        let mut seen = done(n as u64, &[("item", 36), ("miss", 4)], &names);
        if times {
            seen.before_us = before;
            seen.sent_us = sent;
        }
        // Each window also counts its 7 calls to malloc.
        let truth = ((0..n).map(|k| base(k) + 7).sum::<u64>() + 800) as f64 / n as f64;
        (measure(&seen, &callgrind, None).unwrap(), truth)
    }

    #[test]
    fn the_services_once_a_second_work_is_taken_out_of_its_windows() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.0002;
        let (idle, truth) = clock_windows(d, 120_000, 950, 0, true);
        let (loaded, _) = clock_windows(d, 490_000, 950, 0, true);
        let (late, _) = clock_windows(d, 490_000, 950, 5_000, true);
        for (what, w) in [("idle", &idle), ("loaded", &loaded), ("late", &late)] {
            let c = w.clock.as_ref().unwrap_or_else(|| panic!("{what}: {w:?}"));
            assert!((900.0..=1000.0).contains(&c.per_tick), "{what}: {c:?}");
            assert_eq!(c.allocs_per_tick, 1.0, "{what}: {c:?}");
            assert!(close(w.figures.allocs, 7.0), "{what}: {w:?}");
            assert!(
                near(w.figures.instructions, truth),
                "{what}: {w:?} vs {truth}"
            );
        }
        assert_eq!(
            (idle.clock.unwrap().ticks, loaded.clock.unwrap().ticks),
            (5, 20)
        );
        assert!(near(loaded.requests["miss"].instructions, 14_307.0));
        // Counted as they are (an older runtime reports no times), the loaded windows are 20 × 951
        // instructions (the change and its allocation) more over 40 iterations.
        let (as_counted, _) = clock_windows(d, 490_000, 950, 0, false);
        assert_eq!(as_counted.clock, None);
        assert!(close(as_counted.figures.allocs, 7.5));
        assert!(close(
            as_counted.figures.instructions - truth,
            20.0 * 951.0 / 40.0
        ));
        // A service without such work: nothing is taken out.
        let (none, _) = clock_windows(d, 490_000, 0, 0, true);
        assert_eq!(none.clock, None);
        assert!(close(none.figures.instructions, truth));
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
