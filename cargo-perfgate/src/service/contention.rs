//! Reads how busy the machine is while one round runs (`gate/contention.rs` says what the readings
//! mean and when a round is set aside): runnable tasks every 50 ms, and at both ends of the round the
//! CPU counters, the CPU pressure and the service's wait for a CPU. Linux only; elsewhere
//! [`ContentionSampler::finish`] returns None.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::gate::contention::Contention;

const INTERVAL: Duration = Duration::from_millis(50);

/// Samples the machine until [`finish`](ContentionSampler::finish) is called.
pub struct ContentionSampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Option<Contention>>>,
}

impl ContentionSampler {
    /// Starts sampling; `service` is the pid whose threads' wait for a CPU is measured.
    pub fn start(service: Option<u32>) -> ContentionSampler {
        if !cfg!(target_os = "linux") {
            return ContentionSampler {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("perfgate-contention".into())
            .spawn(move || sample(service, rx))
            .ok();
        ContentionSampler {
            stop: Some(tx),
            thread,
        }
    }

    /// Stops and summarises the round.
    pub fn finish(mut self) -> Option<Contention> {
        drop(self.stop.take());
        self.thread.take()?.join().ok().flatten()
    }
}

impl Drop for ContentionSampler {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// The readings taken at each end of the round.
struct Ends {
    at: Instant,
    cpu: Option<CpuTimes>,
    pressure_us: Option<u64>,
    service: HashMap<u32, (u64, u64)>,
}

fn ends(service: Option<u32>) -> Ends {
    Ends {
        at: Instant::now(),
        cpu: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_cpu_times(&s)),
        pressure_us: std::fs::read_to_string("/proc/pressure/cpu")
            .ok()
            .and_then(|s| parse_pressure_total(&s)),
        service: service.map(schedstat_of).unwrap_or_default(),
    }
}

fn sample(service: Option<u32>, stop: mpsc::Receiver<()>) -> Option<Contention> {
    let cores = online_cores();
    let first = ends(service);
    let mut acc = Runnable::default();
    loop {
        // This thread is running while it reads: it is not one of the tasks that queue.
        if let Some(n) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_procs_running(&s))
        {
            acc.add(first.at.elapsed().as_secs_f64(), n.saturating_sub(1));
        }
        if !matches!(
            stop.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            break;
        }
    }
    let last = ends(service);
    let secs = last.at.duration_since(first.at).as_secs_f64();
    if acc.samples == 0 || secs <= 0.0 {
        return None;
    }
    let steal = match (&first.cpu, &last.cpu) {
        (Some(a), Some(b)) => b.steal_share_since(a),
        _ => 0.0,
    };
    let cpu_pressure = match (first.pressure_us, last.pressure_us) {
        (Some(a), Some(b)) => Some(((b.saturating_sub(a)) as f64 / 1e6 / secs).clamp(0.0, 1.0)),
        _ => None,
    };
    let service_wait = service.and_then(|_| wait_share(&first.service, &last.service));
    let load_avg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let per_core = |x: f64| x / f64::from(cores.max(1));
    // Three decimals: the baseline file stays readable and its diffs calm.
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    Some(Contention {
        cores,
        runnable_per_core: r(per_core(acc.mean())),
        runnable_per_core_peak: r(per_core(acc.peak())),
        cpu_pressure: cpu_pressure.map(r),
        steal: r(steal),
        load_avg,
        service_wait: service_wait.map(r),
        secs: r(secs),
    })
}

/// Runnable counts: their mean, and the highest mean over a second.
#[derive(Default)]
struct Runnable {
    sum: u64,
    samples: u64,
    second: (u64, u64, u64),
    peak: f64,
}

impl Runnable {
    fn add(&mut self, t: f64, n: u64) {
        self.sum += n;
        self.samples += 1;
        let s = t as u64;
        if s != self.second.0 {
            self.close_second();
            self.second = (s, 0, 0);
        }
        self.second.1 += n;
        self.second.2 += 1;
    }

    fn close_second(&mut self) {
        if self.second.2 > 0 {
            self.peak = self.peak.max(self.second.1 as f64 / self.second.2 as f64);
        }
    }

    fn mean(&self) -> f64 {
        self.sum as f64 / self.samples.max(1) as f64
    }

    fn peak(&mut self) -> f64 {
        self.close_second();
        self.peak.max(self.mean())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    fn steal_share_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.steal.saturating_sub(earlier.steal) as f64 / total as f64
    }
}

/// The machine's `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal …
fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
    let total = v.iter().take(8).sum();
    Some(CpuTimes {
        total,
        steal: v.get(7).copied().unwrap_or(0),
    })
}

fn parse_procs_running(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("procs_running "))?
        .trim()
        .parse()
        .ok()
}

/// The "some" line's `total=` (microseconds some task waited for a CPU since boot).
fn parse_pressure_total(psi: &str) -> Option<u64> {
    psi.lines()
        .find(|l| l.starts_with("some "))?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Per thread of `pid`: (ns on a CPU, ns waiting on a run queue), from its schedstat.
fn schedstat_of(pid: u32) -> HashMap<u32, (u64, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            Some((tid, parse_schedstat(&s)?))
        })
        .collect()
}

fn parse_schedstat(s: &str) -> Option<(u64, u64)> {
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// Of the time the threads were runnable between two readings, the share they waited for a CPU.
/// Threads gone by the second reading are left out; new ones count from zero.
fn wait_share(first: &HashMap<u32, (u64, u64)>, last: &HashMap<u32, (u64, u64)>) -> Option<f64> {
    let (mut run, mut wait) = (0u64, 0u64);
    for (tid, &(r1, w1)) in last {
        let (r0, w0) = first.get(tid).copied().unwrap_or((0, 0));
        run += r1.saturating_sub(r0);
        wait += w1.saturating_sub(w0);
    }
    let busy = run + wait;
    // Less than a millisecond runnable: an idle service, nothing to say about its waits.
    (busy >= 1_000_000).then(|| wait as f64 / busy as f64)
}

fn online_cores() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as u32
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_files_it_reads() {
        let stat = "cpu  100 5 50 800 10 1 2 30 0 0\ncpu0 50 2 25 400 5 0 1 15 0 0\nintr 1\nprocs_running 3\nprocs_blocked 0\n";
        let t = parse_cpu_times(stat).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                total: 998,
                steal: 30
            }
        );
        assert_eq!(parse_procs_running(stat), Some(3));
        let later = CpuTimes {
            total: 1098,
            steal: 40,
        };
        assert!((later.steal_share_since(&t) - 0.1).abs() < 1e-12);
        let psi = "some avg10=45.05 avg60=39.19 avg300=43.02 total=970185526\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_pressure_total(psi), Some(970185526));
        assert_eq!(parse_schedstat("2000 6000 12\n"), Some((2000, 6000)));
        assert_eq!(parse_schedstat("x"), None);
    }

    #[test]
    fn the_service_wait_counts_new_threads_and_skips_gone_ones() {
        let first: HashMap<u32, (u64, u64)> =
            [(1, (1_000_000, 0)), (2, (5_000_000, 5_000_000))].into();
        let last: HashMap<u32, (u64, u64)> =
            [(1, (4_000_000, 1_000_000)), (3, (1_000_000, 2_000_000))].into();
        // Thread 1: 3 ms running, 1 ms waiting; thread 3 (new): 1 ms and 2 ms; thread 2 is gone.
        assert_eq!(wait_share(&first, &last), Some(3.0 / 7.0));
        assert_eq!(wait_share(&first, &first), None, "an idle service");
    }

    #[test]
    fn runnable_peaks_are_per_second_means() {
        let mut r = Runnable::default();
        for (t, n) in [(0.1, 1), (0.5, 1), (1.1, 4), (1.6, 6), (2.2, 0)] {
            r.add(t, n);
        }
        assert!((r.mean() - 12.0 / 5.0).abs() < 1e-12);
        assert_eq!(r.peak(), 5.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_round_with_a_busy_service_reads_the_machine() {
        let child = crate::procs::ChildGuard::spawn(
            std::process::Command::new("sh").args(["-c", "while :; do :; done"]),
        )
        .unwrap();
        let sampler = ContentionSampler::start(Some(child.id()));
        std::thread::sleep(Duration::from_millis(400));
        let c = sampler.finish().expect("read on Linux");
        drop(child);
        assert!(c.cores >= 1 && c.secs > 0.3, "{c:?}");
        // The busy child is runnable all along.
        assert!(c.runnable_per_core_peak > 0.0, "{c:?}");
        assert!(
            c.service_wait.is_some_and(|w| (0.0..=1.0).contains(&w)),
            "{c:?}"
        );
    }
}
