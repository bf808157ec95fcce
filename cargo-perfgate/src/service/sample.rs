//! Resource usage of the service's process tree during one scenario, sampled from Linux `/proc`.
//!
//! A thread reads the tree every 100 ms: CPU time (user + system, including reaped children, so work
//! done by short-lived helper processes is not lost), resident memory and threads. Elsewhere than on
//! Linux the sampler does nothing and [`ResourceSampler::finish`] returns `None`.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perfgate_runtime::format::{ResourceSample, ResourceStats};

const INTERVAL: Duration = Duration::from_millis(100);

/// Samples a process tree until [`finish`](ResourceSampler::finish) is called.
pub struct ResourceSampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Option<ResourceStats>>>,
}

impl ResourceSampler {
    /// Starts sampling `pid` and its descendants (the first sample is taken right away).
    pub fn start(pid: u32) -> ResourceSampler {
        if !cfg!(target_os = "linux") {
            return ResourceSampler {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("perfgate-sampler".into())
            .spawn(move || sample_until_stopped(pid, rx))
            .ok();
        ResourceSampler {
            stop: Some(tx),
            thread,
        }
    }

    /// Stops sampling and summarises the window. `None` off Linux, or when the process was never seen.
    pub fn finish(mut self) -> Option<ResourceStats> {
        drop(self.stop.take());
        self.thread.take()?.join().ok().flatten()
    }
}

impl Drop for ResourceSampler {
    fn drop(&mut self) {
        // Closing the channel ends the thread within one interval; nobody waits for it here.
        drop(self.stop.take());
    }
}

/// One reading of the whole tree.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Reading {
    cpu_ticks: u64,
    rss_bytes: u64,
    threads: u64,
}

fn sample_until_stopped(pid: u32, stop: mpsc::Receiver<()>) -> Option<ResourceStats> {
    let clk = clock_ticks_per_sec();
    let page = page_size();
    let started = Instant::now();
    let first = read_tree(pid, page)?;
    let mut acc = Accumulator::new(first, clk);
    loop {
        // The channel is both the timer and the stop signal, so finish() never waits a full interval.
        let stopping = !matches!(
            stop.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if let Some(r) = read_tree(pid, page) {
            acc.add(started.elapsed().as_secs_f64(), r);
        }
        if stopping {
            break;
        }
    }
    Some(acc.finish(started.elapsed().as_secs_f64()))
}

/// Turns readings into [`ResourceStats`]; separate from `/proc` so it can be tested with made-up data.
struct Accumulator {
    clk: f64,
    first_ticks: u64,
    last_ticks: u64,
    rss_sum: u128,
    peak_rss: u64,
    max_threads: u64,
    samples: u64,
    timeseries: Vec<ResourceSample>,
    /// Time and CPU ticks at the last per-second point.
    mark: (f64, u64),
}

impl Accumulator {
    fn new(first: Reading, clk: u64) -> Self {
        let mut acc = Accumulator {
            clk: clk.max(1) as f64,
            first_ticks: first.cpu_ticks,
            last_ticks: first.cpu_ticks,
            rss_sum: 0,
            peak_rss: 0,
            max_threads: 0,
            samples: 0,
            timeseries: Vec::new(),
            mark: (0.0, first.cpu_ticks),
        };
        acc.record(first);
        acc
    }

    fn record(&mut self, r: Reading) {
        self.samples += 1;
        self.rss_sum += u128::from(r.rss_bytes);
        self.peak_rss = self.peak_rss.max(r.rss_bytes);
        self.max_threads = self.max_threads.max(r.threads);
        // A process that exits unreaped takes its CPU time with it: never let the total go backwards.
        self.last_ticks = self.last_ticks.max(r.cpu_ticks);
    }

    fn add(&mut self, t: f64, r: Reading) {
        self.record(r);
        if t - self.mark.0 >= 1.0 {
            let secs = (self.last_ticks - self.mark.1) as f64 / self.clk;
            self.timeseries.push(ResourceSample {
                t,
                cpu_util: secs / (t - self.mark.0),
                rss_bytes: r.rss_bytes,
            });
            self.mark = (t, self.last_ticks);
        }
    }

    fn finish(self, wall: f64) -> ResourceStats {
        let cpu_secs = (self.last_ticks - self.first_ticks) as f64 / self.clk;
        ResourceStats {
            cpu_secs,
            cpu_util: if wall > 0.0 { cpu_secs / wall } else { 0.0 },
            peak_rss_bytes: self.peak_rss,
            mean_rss_bytes: (self.rss_sum / u128::from(self.samples.max(1))) as u64,
            max_threads: self.max_threads,
            samples: self.samples,
            timeseries: self.timeseries,
        }
    }
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Sums the tree rooted at `root`; `None` when the root itself cannot be read (gone).
fn read_tree(root: u32, page: u64) -> Option<Reading> {
    let mut total = Reading::default();
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::new();
    let mut root_seen = false;
    // Bounded: each pid is visited once, and /proc holds finitely many.
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let Some(stat) = read_stat(pid) else { continue };
        if pid == root {
            root_seen = true;
        }
        total.cpu_ticks += stat.cpu_ticks;
        total.threads += stat.threads;
        total.rss_bytes += read_rss_pages(pid).unwrap_or(0) * page;
        stack.extend(crate::procs::children(pid));
    }
    root_seen.then_some(total)
}

struct Stat {
    cpu_ticks: u64,
    threads: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `/proc/<pid>/stat`: the command name is in parentheses and may contain spaces or ')', so fields are
/// counted from the last ')'. After it, index 0 is field 3 (state); utime, stime, cutime, cstime are
/// fields 14–17 and num_threads is field 20.
fn parse_stat(s: &str) -> Option<Stat> {
    let (_, rest) = s.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64)
    };
    if f.first() == Some(&"Z") {
        // A zombie's own times are already final but it holds no memory; count its CPU only.
        return Some(Stat {
            cpu_ticks: num(11)? + num(12)? + num(13)? + num(14)?,
            threads: 0,
        });
    }
    Some(Stat {
        cpu_ticks: num(11)? + num(12)? + num(13)? + num(14)?,
        threads: num(17)?,
    })
}

fn read_rss_pages(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_command_names() {
        let line = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 12 0 999 1000000 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.cpu_ticks, 250 + 50 + 7 + 3);
        assert_eq!(s.threads, 12);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn accumulator_reports_deltas_peaks_and_per_second_points() {
        let mut acc = Accumulator::new(
            Reading {
                cpu_ticks: 1000,
                rss_bytes: 10,
                threads: 2,
            },
            100,
        );
        acc.add(
            0.5,
            Reading {
                cpu_ticks: 1050,
                rss_bytes: 30,
                threads: 4,
            },
        );
        acc.add(
            1.0,
            Reading {
                cpu_ticks: 1100,
                rss_bytes: 20,
                threads: 3,
            },
        );
        // A child exited: the tree's total drops, the CPU it used still counts.
        acc.add(
            1.5,
            Reading {
                cpu_ticks: 1090,
                rss_bytes: 20,
                threads: 3,
            },
        );
        let stats = acc.finish(2.0);
        assert_eq!(stats.cpu_secs, 1.0);
        assert_eq!(stats.cpu_util, 0.5);
        assert_eq!(stats.peak_rss_bytes, 30);
        assert_eq!(stats.mean_rss_bytes, 20);
        assert_eq!(stats.max_threads, 4);
        assert_eq!(stats.samples, 4);
        assert_eq!(stats.timeseries.len(), 1);
        assert_eq!(stats.timeseries[0].cpu_util, 1.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_a_child_that_burns_cpu_and_its_descendants() {
        // The shell forks a busy grandchild, so CPU must be found down the tree.
        let child = crate::procs::ChildGuard::spawn(
            std::process::Command::new("sh").args(["-c", "sh -c 'while :; do :; done' & wait"]),
        )
        .unwrap();
        let sampler = ResourceSampler::start(child.id());
        std::thread::sleep(Duration::from_millis(700));
        let stats = sampler.finish().expect("the child was sampled");
        // Kills the whole group, the busy grandchild included.
        drop(child);
        assert!(stats.cpu_secs > 0.0, "{stats:?}");
        assert!(
            stats.peak_rss_bytes > 0 && stats.mean_rss_bytes > 0,
            "{stats:?}"
        );
        assert!(
            stats.max_threads >= 2,
            "two processes, one thread each: {stats:?}"
        );
        assert!(stats.samples >= 2, "{stats:?}");
    }

    #[test]
    fn a_process_that_does_not_exist_yields_none() {
        // Pid numbers above pid_max (4194304 at most) never exist.
        assert!(ResourceSampler::start(u32::MAX - 1).finish().is_none());
    }
}
