//! Waiting until a process is idle: every thread asleep, and none of them ran in between two
//! looks at /proc.
//!
//! The load generator waits for this after each iteration of the cost pass. Without it, the
//! service sometimes reads the next request before it parks (one fewer `epoll_wait`, a
//! different path through the runtime), and how often depends on the machine's load: on
//! predict-service pinned to one CPU, instructions per iteration moved by up to 0.1% and
//! syscalls by up to 0.7% between runs. With it, every iteration starts from the same parked
//! state: instructions repeat to within 0.03% and syscalls exactly.
//!
//! Linux only (/proc); elsewhere [`wait_idle`] returns at once.

use std::time::{Duration, Instant};

/// One thread as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadState {
    pub tid: u32,
    /// `R` running, `S` sleeping, `D` disk wait, `T` stopped, …
    pub state: char,
    /// Grows every time the thread runs: schedstat's timeslice count, or the context switches
    /// of `status` when schedstat is not there.
    pub activity: u64,
}

/// The state letter of `/proc/<pid>/task/<tid>/stat` (after the parenthesised command name,
/// which may itself contain spaces and parentheses).
pub fn parse_stat_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Timeslices run, the third field of `/proc/<pid>/task/<tid>/schedstat`.
pub fn parse_schedstat(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(2)?.parse().ok()
}

/// Voluntary plus involuntary context switches from `/proc/<pid>/task/<tid>/status`.
pub fn parse_status_switches(status: &str) -> Option<u64> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// Every thread of `pid`, sorted by tid.
#[cfg(target_os = "linux")]
pub fn threads(pid: u32) -> std::io::Result<Vec<ThreadState>> {
    let base = std::path::PathBuf::from(format!("/proc/{pid}/task"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&base)? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        // A thread that exits between read_dir and here is simply not counted.
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let Some(state) = parse_stat_state(&stat) else {
            continue;
        };
        let activity = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| parse_schedstat(&s))
            .or_else(|| {
                std::fs::read_to_string(dir.join("status"))
                    .ok()
                    .and_then(|s| parse_status_switches(&s))
            })
            .unwrap_or(0);
        out.push(ThreadState {
            tid,
            state,
            activity,
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// Whether two looks at the same process, `gap` apart, show it idle: every live thread
/// sleeping in both, the same threads, and none of them scheduled in between.
pub fn is_idle(before: &[ThreadState], after: &[ThreadState]) -> bool {
    let live = |t: &&ThreadState| !matches!(t.state, 'Z' | 'X');
    let sleeping = |ts: &[ThreadState]| ts.iter().filter(live).all(|t| t.state == 'S');
    !after.is_empty()
        && sleeping(before)
        && sleeping(after)
        && before.iter().filter(live).eq(after.iter().filter(live))
}

/// Polls every `gap` until [`is_idle`] holds; false when `timeout` passes first.
#[cfg(target_os = "linux")]
pub fn wait_idle(pid: u32, gap: Duration, timeout: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut before = threads(pid)?;
    loop {
        std::thread::sleep(gap);
        let after = threads(pid)?;
        if is_idle(&before, &after) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        before = after;
    }
}

#[cfg(not(target_os = "linux"))]
pub fn wait_idle(_pid: u32, _gap: Duration, _timeout: Duration) -> std::io::Result<bool> {
    let _ = Instant::now();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, state: char, activity: u64) -> ThreadState {
        ThreadState {
            tid,
            state,
            activity,
        }
    }

    #[test]
    fn proc_fields_parse() {
        // The main thread of predict-service under callgrind, idle (stat shortened).
        let stat =
            "31293 (callgrind-amd64) S 1 31290 16543 0 -1 4194304 11545 0 1 0 23 2 0 0 20 0 2 0";
        assert_eq!(parse_stat_state(stat), Some('S'));
        // Command names may hold spaces and parentheses.
        assert_eq!(parse_stat_state("7 (a) b) (R) R 1 2"), Some('R'));
        assert_eq!(parse_stat_state("garbage"), None);
        assert_eq!(parse_schedstat("265987821 5315656 91\n"), Some(91));
        assert_eq!(parse_schedstat("265987821"), None);
        let status = "Name:\tcallgrind-amd64\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t72\nnonvoluntary_ctxt_switches:\t19\n";
        assert_eq!(parse_status_switches(status), Some(91));
        assert_eq!(parse_status_switches("Name:\tx\n"), None);
    }

    #[test]
    fn idle_needs_every_thread_asleep_and_unscheduled() {
        let a = [t(1, 'S', 10), t(2, 'S', 7)];
        assert!(is_idle(&a, &a));
        // Thread 2 ran in between, even though it is asleep again.
        assert!(!is_idle(&a, &[t(1, 'S', 10), t(2, 'S', 8)]));
        assert!(!is_idle(&a, &[t(1, 'S', 10), t(2, 'R', 7)]));
        assert!(!is_idle(
            &[t(1, 'D', 10), t(2, 'S', 7)],
            &[t(1, 'D', 10), t(2, 'S', 7)]
        ));
        // A thread started in between.
        assert!(!is_idle(&a, &[t(1, 'S', 10), t(2, 'S', 7), t(3, 'S', 1)]));
        // A zombie thread does not keep the process busy.
        let z = [t(1, 'S', 10), t(2, 'Z', 7)];
        assert!(is_idle(&z, &[t(1, 'S', 10), t(2, 'Z', 9)]));
        assert!(!is_idle(&[], &[]));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sleeping_child_is_idle_and_a_spinning_one_is_not() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let gap = Duration::from_millis(2);
        let idle = wait_idle(sleeper.id(), gap, Duration::from_secs(5)).unwrap();
        let busy = wait_idle(spinner.id(), gap, Duration::from_millis(200)).unwrap();
        let _ = sleeper.kill();
        let _ = spinner.kill();
        let _ = sleeper.wait();
        let _ = spinner.wait();
        assert!(idle);
        assert!(!busy);
    }
}
