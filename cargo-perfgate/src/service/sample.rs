//! Resource usage of the service's process tree during one scenario, sampled from Linux `/proc`.
//!
//! A thread reads the tree every 100 ms: CPU time (user + system, including reaped children, so work
//! done by short-lived helper processes is not lost), resident memory, threads and open file
//! descriptors. Elsewhere than on Linux the sampler does nothing and [`ResourceSampler::finish`]
//! returns `None`.
//!
//! The readings over time go into a [`Trace`] of at most `MAX_RESOURCE_POINTS` points, each the mean
//! of its readings: three readings a point at first, and when it is full, neighbours merged and
//! twice as many readings per point from then on. Memory stays flat over a soak of hours, and the
//! trace still covers the whole run at even spacing, which is what the leak checks fit.

use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfgate_runtime::format::{ResourceSample, ResourceStats, MAX_RESOURCE_POINTS};

const INTERVAL: Duration = Duration::from_millis(100);

/// Readings averaged into one point of the trace before it first fills.
const READINGS_PER_POINT: u32 = 3;

/// Samples a process tree until [`finish`](ResourceSampler::finish) is called.
pub struct ResourceSampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Option<ResourceStats>>>,
    /// The trace so far, for a watcher while the scenario runs.
    live: Arc<Mutex<Trace>>,
    started_unix_ms: u64,
}

impl ResourceSampler {
    /// Starts sampling `pid` and its descendants (the first sample is taken right away).
    pub fn start(pid: u32) -> ResourceSampler {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let live = Arc::new(Mutex::new(Trace::default()));
        if !cfg!(target_os = "linux") {
            return ResourceSampler {
                stop: None,
                thread: None,
                live,
                started_unix_ms,
            };
        }
        let (tx, rx) = mpsc::channel();
        let trace = live.clone();
        let thread = std::thread::Builder::new()
            .name("perfgate-sampler".into())
            .spawn(move || sample_until_stopped(pid, rx, trace, started_unix_ms))
            .ok();
        ResourceSampler {
            stop: Some(tx),
            thread,
            live,
            started_unix_ms,
        }
    }

    /// The trace so far (points as in [`ResourceStats::timeseries`]) and the Unix time (ms) its `t`
    /// counts from.
    pub fn snapshot(&self) -> (Vec<ResourceSample>, u64) {
        let trace = self.live.lock().unwrap_or_else(|e| e.into_inner());
        (trace.points.clone(), self.started_unix_ms)
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
    /// Open file descriptors; None when `/proc/<pid>/fd` could not be read.
    fds: Option<u64>,
}

fn sample_until_stopped(
    pid: u32,
    stop: mpsc::Receiver<()>,
    live: Arc<Mutex<Trace>>,
    started_unix_ms: u64,
) -> Option<ResourceStats> {
    let clk = clock_ticks_per_sec();
    let page = page_size();
    let started = Instant::now();
    let first = read_tree(pid, page)?;
    let mut acc = Accumulator::new(first, clk);
    let lock = || live.lock().unwrap_or_else(|e| e.into_inner());
    lock().begin(first);
    loop {
        // The channel is both the timer and the stop signal, so finish() never waits a full interval.
        let stopping = !matches!(
            stop.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if let Some(r) = read_tree(pid, page) {
            let t = started.elapsed().as_secs_f64();
            acc.record(r);
            lock().add(t, r, acc.last_ticks, acc.clk);
        }
        if stopping {
            break;
        }
    }
    let (ticks, clk) = (acc.last_ticks, acc.clk);
    let mut stats = acc.finish(started.elapsed().as_secs_f64());
    let mut trace = lock();
    trace.close(ticks, clk);
    stats.timeseries = trace.points.clone();
    stats.started_unix_ms = started_unix_ms;
    Some(stats)
}

/// The readings over time, bounded: see the module's comment.
#[derive(Debug, Default)]
struct Trace {
    points: Vec<ResourceSample>,
    /// Readings per point (doubles each time the trace is halved).
    per_point: u32,
    /// The point being filled.
    open: OpenPoint,
}

#[derive(Debug, Default, Clone, Copy)]
struct OpenPoint {
    readings: u32,
    rss: f64,
    fds: f64,
    fds_readings: u32,
    threads: f64,
    /// Time and CPU ticks when the point began.
    start: (f64, u64),
}

impl Trace {
    fn begin(&mut self, first: Reading) {
        self.per_point = READINGS_PER_POINT;
        self.open = OpenPoint {
            start: (0.0, first.cpu_ticks),
            ..OpenPoint::default()
        };
    }

    /// A reading at `t`; `ticks` is the tree's CPU time so far (never decreasing).
    fn add(&mut self, t: f64, r: Reading, ticks: u64, clk: f64) {
        let p = &mut self.open;
        p.readings += 1;
        p.rss += r.rss_bytes as f64;
        p.threads += r.threads as f64;
        if let Some(fds) = r.fds {
            p.fds += fds as f64;
            p.fds_readings += 1;
        }
        if p.readings >= self.per_point {
            self.push(t, ticks, clk);
        }
        if self.points.len() >= MAX_RESOURCE_POINTS {
            self.halve();
        }
    }

    /// Ends the open point (the last one may hold fewer readings).
    fn close(&mut self, ticks: u64, clk: f64) {
        if self.open.readings > 0 {
            let t = self.points.last().map_or(0.0, |p| p.t)
                + self.open.readings as f64 * INTERVAL.as_secs_f64();
            self.push(t, ticks, clk);
        }
    }

    fn push(&mut self, t: f64, ticks: u64, clk: f64) {
        let p = self.open;
        let n = f64::from(p.readings.max(1));
        let secs = (t - p.start.0).max(0.0);
        self.points.push(ResourceSample {
            t,
            cpu_util: if secs > 0.0 {
                ticks.saturating_sub(p.start.1) as f64 / clk / secs
            } else {
                0.0
            },
            rss_bytes: (p.rss / n) as u64,
            fds: if p.fds_readings > 0 {
                p.fds / f64::from(p.fds_readings)
            } else {
                0.0
            },
            threads: p.threads / n,
            secs,
        });
        self.open = OpenPoint {
            start: (t, ticks),
            ..OpenPoint::default()
        };
    }

    /// Merges neighbouring points, each pair into one spanning both.
    fn halve(&mut self) {
        let merged = self
            .points
            .chunks(2)
            .map(|c| match c {
                [a, b] => {
                    let secs = a.secs + b.secs;
                    let w = |x: f64, y: f64| {
                        if secs > 0.0 {
                            (x * a.secs + y * b.secs) / secs
                        } else {
                            (x + y) / 2.0
                        }
                    };
                    ResourceSample {
                        t: b.t,
                        cpu_util: w(a.cpu_util, b.cpu_util),
                        rss_bytes: w(a.rss_bytes as f64, b.rss_bytes as f64) as u64,
                        fds: w(a.fds, b.fds),
                        threads: w(a.threads, b.threads),
                        secs,
                    }
                }
                [a] => a.clone(),
                _ => unreachable!("chunks of two"),
            })
            .collect();
        self.points = merged;
        self.per_point *= 2;
    }
}

/// Turns readings into [`ResourceStats`]; separate from `/proc` so it can be tested with made-up data.
struct Accumulator {
    clk: f64,
    first_ticks: u64,
    last_ticks: u64,
    rss_sum: u128,
    peak_rss: u64,
    max_threads: u64,
    max_fds: u64,
    samples: u64,
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
            max_fds: 0,
            samples: 0,
        };
        acc.record(first);
        acc
    }

    fn record(&mut self, r: Reading) {
        self.samples += 1;
        self.rss_sum += u128::from(r.rss_bytes);
        self.peak_rss = self.peak_rss.max(r.rss_bytes);
        self.max_threads = self.max_threads.max(r.threads);
        self.max_fds = self.max_fds.max(r.fds.unwrap_or(0));
        // A process that exits unreaped takes its CPU time with it: never let the total go backwards.
        self.last_ticks = self.last_ticks.max(r.cpu_ticks);
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
            timeseries: Vec::new(),
            started_unix_ms: 0,
            max_fds: self.max_fds,
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
    let mut total = Reading {
        fds: Some(0),
        ..Reading::default()
    };
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
        if stat.threads > 0 {
            // A descriptor table that cannot be read (another user's process) makes the count
            // unknown rather than low.
            total.fds = match (total.fds, count_fds(pid)) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
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

/// Beyond this many descriptors each is counted without looking at its kind (a `readlink` each would
/// cost the sampler more than it is worth: a leak that large fails its check anyway).
const CLASSIFY_FDS_UP_TO: usize = 10_000;

/// The process's open descriptors other than sockets (files, pipes, eventfd, epoll, timerfd, …).
/// Sockets are left out: their number follows the load generator's connection pool (it opens more
/// when the service stalls and closes the surplus only after it sat unused for seconds), not a leak
/// of the service.
fn count_fds(pid: u32) -> Option<u64> {
    let dir = format!("/proc/{pid}/fd");
    let entries: Vec<std::ffi::OsString> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if entries.len() > CLASSIFY_FDS_UP_TO {
        return Some(entries.len() as u64);
    }
    let sockets = entries
        .iter()
        .filter(|name| {
            std::fs::read_link(std::path::Path::new(&dir).join(name)).is_ok_and(|target| {
                target
                    .as_os_str()
                    .as_encoded_bytes()
                    .starts_with(b"socket:")
            })
        })
        .count();
    Some((entries.len() - sockets) as u64)
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

    fn reading(cpu_ticks: u64, rss_bytes: u64, threads: u64) -> Reading {
        Reading {
            cpu_ticks,
            rss_bytes,
            threads,
            fds: Some(threads * 2),
        }
    }

    #[test]
    fn accumulator_reports_deltas_and_peaks() {
        let mut acc = Accumulator::new(reading(1000, 10, 2), 100);
        acc.record(reading(1050, 30, 4));
        acc.record(reading(1100, 20, 3));
        // A child exited: the tree's total drops, the CPU it used still counts.
        acc.record(reading(1090, 20, 3));
        let stats = acc.finish(2.0);
        assert_eq!(stats.cpu_secs, 1.0);
        assert_eq!(stats.cpu_util, 0.5);
        assert_eq!(stats.peak_rss_bytes, 30);
        assert_eq!(stats.mean_rss_bytes, 20);
        assert_eq!(stats.max_threads, 4);
        assert_eq!(stats.max_fds, 8);
        assert_eq!(stats.samples, 4);
    }

    #[test]
    fn the_trace_averages_its_points_and_stays_bounded_over_hours() {
        let mut trace = Trace::default();
        trace.begin(reading(0, 0, 0));
        // Three readings a point: memory 10, 20, 30 → 20; one CPU tick per reading at 10 ticks/s
        // is one core's worth over 0.1 s each.
        for (i, rss) in [10, 20, 30].into_iter().enumerate() {
            let t = (i + 1) as f64 * 0.1;
            trace.add(t, reading(i as u64 + 1, rss, 4), i as u64 + 1, 10.0);
        }
        assert_eq!(trace.points.len(), 1);
        let p = &trace.points[0];
        assert_eq!((p.rss_bytes, p.threads, p.fds), (20, 4.0, 8.0));
        assert!(
            (p.t - 0.3).abs() < 1e-9 && (p.secs - 0.3).abs() < 1e-9,
            "{p:?}"
        );
        assert!((p.cpu_util - 1.0).abs() < 1e-9, "{p:?}");
        // Ten hours of readings every 100 ms: never more than the cap, evenly spread, growing
        // memory still rising point after point.
        let mut ticks = 3;
        for i in 3..360_000u64 {
            ticks += 1;
            let t = (i + 1) as f64 * 0.1;
            trace.add(t, reading(ticks, 1000 + i, 4), ticks, 10.0);
            assert!(trace.points.len() <= MAX_RESOURCE_POINTS);
        }
        trace.close(ticks, 10.0);
        let pts = &trace.points;
        assert!(pts.len() > MAX_RESOURCE_POINTS / 2, "{}", pts.len());
        assert!(pts.windows(2).all(|w| w[1].rss_bytes > w[0].rss_bytes));
        assert!((pts.last().unwrap().t - 36_000.0).abs() < 1.0);
        let spans: Vec<f64> = pts[1..pts.len() - 1].iter().map(|p| p.secs).collect();
        assert!(
            spans.iter().all(|s| (s - spans[0]).abs() < 1e-6),
            "even spacing after halving"
        );
        assert!(pts.iter().all(|p| (p.cpu_util - 1.0).abs() < 1e-6));
    }

    #[test]
    fn counts_its_own_descriptors_but_not_its_sockets() {
        let files: Vec<std::fs::File> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        // Other tests of this binary open and close files concurrently: at least these five.
        let with_files = count_fds(std::process::id()).unwrap();
        assert!(with_files >= 5);
        // A child whose stdin and stderr are sockets and stdout a file.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let b = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let null = std::fs::File::create("/dev/null").unwrap();
        let child = crate::procs::ChildGuard::spawn(
            std::process::Command::new("sleep")
                .arg("5")
                .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(a)))
                .stdout(null)
                .stderr(std::process::Stdio::from(std::os::fd::OwnedFd::from(b))),
        )
        .unwrap();
        // Until it has exec'd, the child still holds a copy of every descriptor of this process.
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // It may also hold what the test harness leaves inheritable (a jobserver pipe, …): every
        // descriptor but the two sockets counts.
        let all = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .unwrap()
            .count() as u64;
        assert!(all >= 3);
        assert_eq!(count_fds(child.id()), Some(all - 2));
        drop(child);
        drop(files);
        assert_eq!(count_fds(u32::MAX - 1), None);
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
        assert!(
            stats.max_fds >= 3,
            "stdin, stdout, stderr at least: {stats:?}"
        );
        assert!(
            !stats.timeseries.is_empty() && stats.started_unix_ms > 0,
            "{stats:?}"
        );
    }

    #[test]
    fn a_process_that_does_not_exist_yields_none() {
        // Pid numbers above pid_max (4194304 at most) never exist.
        assert!(ResourceSampler::start(u32::MAX - 1).finish().is_none());
    }
}
