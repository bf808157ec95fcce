//! Child processes that must never outlive `cargo perfgate`: the service and the scenario binaries.
//!
//! Every child is spawned in its own process group, so a Ctrl-C typed in the terminal reaches only
//! `cargo perfgate` (the foreground group) and we decide how to stop each whole group: SIGTERM, a short
//! grace period, SIGKILL. A global registry holds the group ids of the children not yet reaped; the
//! signal watcher thread terminates all of them, and the main thread, seeing [`interrupted`], unwinds
//! (dropping [`ChildGuard`]s and services, which reap) and exits 130. On Linux each child also gets
//! `PR_SET_PDEATHSIG = SIGKILL`, the last resort when `cargo perfgate` itself is SIGKILLed.
//!
//! Caveat of `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the child exits, so spawn
//! long-lived children from a thread that lives as long as they should (the main thread).
//!
//! A group does not hold every descendant: a service may start a daemon that calls `setsid`, and
//! `PR_SET_PDEATHSIG` covers direct children only. So every child also carries a mark in its
//! environment ([`MARK_VAR`] = `<owner>/<n>`, inherited by its descendants), `cargo perfgate` is a
//! child subreaper (orphaned descendants become its children, to be reaped), and stopping a child kills
//! whatever still carries its mark. A run killed with SIGKILL leaves marked processes whose owner is
//! gone: the next run finds them in `/proc` ([`clean_leftovers`]), stops them and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Grace between SIGTERM and SIGKILL when the user interrupts: long enough for a service to close its
/// listeners, short enough that Ctrl-C feels immediate.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// The environment variable that marks every child and its descendants: `<owner>/<n>`.
pub const MARK_VAR: &str = "PERFGATE_PROCESS";

/// This process as the owner of marks: `<pid>.<start time in clock ticks since boot>`, which a later
/// process with the same pid cannot have.
fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid).unwrap_or(0))
    })
}

/// Field 22 of `/proc/<pid>/stat` (clock ticks after boot) of a live, non-zombie process: a pid the
/// kernel reused has another.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // After the command name, index 0 is field 3 (state), so field 22 is index 19.
    fields.get(19)?.parse().ok()
}

/// Process-group ids (= pids of the group leaders we spawned) not yet reaped, with their marks.
/// Removal happens under the same lock as reaping, so the watcher never signals a pid that the kernel
/// may have reused.
fn registry() -> MutexGuard<'static, BTreeMap<i32, String>> {
    static REG: Mutex<BTreeMap<i32, String>> = Mutex::new(BTreeMap::new());
    // A panic while holding the lock leaves the set itself consistent: keep using it.
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether SIGINT or SIGTERM was received (after [`install_signal_handlers`]).
pub fn interrupted() -> bool {
    flag().load(Ordering::SeqCst)
}

/// SIGINT, SIGTERM and SIGHUP (a closed terminal or CI job) set the [`interrupted`] flag and wake a
/// watcher thread that terminates every registered child group. A second signal while the first is
/// being handled kills everything at once and exits 130. Also makes this process a child subreaper.
/// Idempotent.
pub fn install_signal_handlers() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        #[cfg(target_os = "linux")]
        // SAFETY: prctl with integer arguments; failure only loses the reaping of orphans.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // Set in the handler itself, so the flag is visible before the watcher even wakes.
            if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag())) {
                eprintln!("warning: could not install a handler for signal {sig}: {e}");
            }
        }
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                let spawned = std::thread::Builder::new()
                    .name("perfgate-signals".into())
                    .spawn(move || {
                        let mut seen = 0;
                        for _ in signals.forever() {
                            seen += 1;
                            if seen == 1 {
                                std::thread::spawn(|| terminate_all(INTERRUPT_GRACE));
                            } else {
                                // The user insists: no more grace.
                                kill_all(libc::SIGKILL);
                                std::process::exit(crate::error::exit::INTERRUPTED);
                            }
                        }
                    });
                if let Err(e) = spawned {
                    eprintln!("warning: could not start the signal watcher: {e}");
                }
            }
            Err(e) => eprintln!("warning: could not watch SIGINT/SIGTERM/SIGHUP: {e}"),
        }
    });
}

fn kill_all(sig: i32) {
    for pgid in registry().keys() {
        signal_group(*pgid, sig);
    }
}

/// SIGTERM to every registered group; then, after `grace`, SIGKILL to the groups the main thread has
/// not reaped by then, and to the descendants that left them.
fn terminate_all(grace: Duration) {
    {
        // Listed and signalled under the registry's lock, so `terminate` in the main thread either
        // lists a live tree itself or finds this list filled.
        let reg = registry();
        escapees().extend(reg.keys().flat_map(|pgid| descendants(*pgid as u32)));
        for pgid in reg.keys() {
            signal_group(*pgid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !registry().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_all(libc::SIGKILL);
    kill_survivors(&escapees());
}

/// Sends `sig` to the process group `pgid`. Errors (the group is already gone) are irrelevant here.
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Spawns `cmd` in a new process group, marked, and registers it for termination on interrupt.
/// Fails with [`std::io::ErrorKind::Interrupted`] when the user has already interrupted the run.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mark = format!(
        "{}/{}",
        owner(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    crate::secret::scrub(cmd);
    cmd.process_group(0).env(MARK_VAR, &mark);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody will ever signal us.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    // Held across the spawn, so a watcher woken meanwhile sees (and kills) the new group too.
    let mut reg = registry();
    if interrupted() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "interrupted",
        ));
    }
    let child = cmd.spawn()?;
    reg.insert(child.id() as i32, mark);
    Ok(child)
}

/// `try_wait` that unregisters the child once it is reaped (under the registry lock).
pub fn try_reap(child: &mut Child) -> std::io::Result<Option<ExitStatus>> {
    let mut reg = registry();
    let status = child.try_wait()?;
    if status.is_some() {
        reg.remove(&(child.id() as i32));
    }
    Ok(status)
}

/// A live process that carries a mark.
#[derive(Debug, Clone)]
pub struct Marked {
    pub pid: u32,
    pub mark: String,
    pub cmdline: String,
}

/// The live (not zombie) processes whose mark satisfies `keep`.
/// The pids in `/proc` (empty where there is none).
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn marked(keep: impl Fn(&str) -> bool) -> Vec<Marked> {
    let needle = format!("{MARK_VAR}=");
    let mut out = Vec::new();
    for pid in pids() {
        if pid == std::process::id() || proc_state(pid) == Some('Z') {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let Some(mark) = env
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix(&needle))
        else {
            continue;
        };
        if keep(mark) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            out.push(Marked {
                pid,
                mark: mark.to_string(),
                cmdline,
            });
        }
    }
    out
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// SIGKILLs every live process whose mark satisfies `keep`, a few passes so that one forked meanwhile
/// goes too, and reaps those that were orphaned to this process. Returns what it killed.
fn kill_marked(keep: impl Fn(&str) -> bool) -> Vec<Marked> {
    let mut killed: Vec<Marked> = Vec::new();
    for _ in 0..5 {
        let found = marked(&keep);
        if found.is_empty() {
            break;
        }
        for p in found {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(p.pid as i32, libc::SIGKILL);
            }
            if !killed.iter().any(|k| k.pid == p.pid) {
                killed.push(p);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reap_orphans();
    killed
}

/// Reaps zombies that became this process's children as orphans (it is a subreaper) and that no
/// [`Child`] of ours owns: waiting for any pid would steal a registered child's status.
fn reap_orphans() {
    let me = std::process::id();
    let registered: Vec<i32> = registry().keys().copied().collect();
    for pid in pids().map(|p| p as i32) {
        if registered.contains(&pid) || proc_state(pid as u32) != Some('Z') {
            continue;
        }
        if parent_of(pid as u32) == Some(me) {
            // SAFETY: waitpid on a specific zombie child of ours that nothing else waits for.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
    }
}

/// Stops every process left by this run (a service's daemon that left its group): called when the
/// run ends, whatever way it ends.
pub fn sweep() -> Vec<Marked> {
    let prefix = format!("{}/", owner());
    kill_marked(|m| m.starts_with(&prefix))
}

/// Stops the processes an earlier `cargo perfgate` left behind when it was killed (SIGKILL, a
/// crashed CI runner): marked processes whose owner no longer exists.
pub fn clean_leftovers() -> Vec<Marked> {
    let dead = |mark: &str| {
        let Some((owner, _)) = mark.split_once('/') else {
            return false;
        };
        let Some((pid, start)) = owner.split_once('.') else {
            return false;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            return false;
        };
        start_time(pid) != Some(start)
    };
    kill_marked(dead)
}

/// Descendants of the registered groups' leaders that were listed when the user interrupted, before
/// anything was signalled: once a leader dies, its children are re-parented and no longer found under it.
fn escapees() -> MutexGuard<'static, Vec<Member>> {
    static ESCAPEES: Mutex<Vec<Member>> = Mutex::new(Vec::new());
    ESCAPEES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Direct children of `pid`: the union of `/proc/<pid>/task/*/children` (a child belongs to the thread
/// that forked it). Kernels without that file fall back to scanning every process's parent pid.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut have_children_file = false;
    for task in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            have_children_file = true;
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    if !have_children_file {
        out = pids().filter(|p| parent_of(*p) == Some(pid)).collect();
    }
    out
}

/// Field 4 of `/proc/<pid>/stat`: the parent's pid.
fn parent_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()?
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A process of a tree at the time it was listed: its pid and start time (clock ticks after boot), so a
/// pid the kernel reused since is never signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    pid: u32,
    started: u64,
}

/// Every descendant of `root` (not `root` itself), found down `/proc`'s child lists.
fn descendants(root: u32) -> Vec<Member> {
    let mut out = Vec::new();
    let mut stack = children(root);
    let mut seen = BTreeSet::new();
    // Bounded: each pid is visited once, and /proc holds finitely many.
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(started) = start_time(pid) {
            out.push(Member { pid, started });
        }
        stack.extend(children(pid));
    }
    out
}

/// SIGKILL to the members still alive as the same process (same start time, not a zombie).
fn kill_survivors(members: &[Member]) {
    for m in members {
        if start_time(m.pid) == Some(m.started) {
            // SAFETY: kill(2) has no memory-safety preconditions; the start time was just checked.
            unsafe {
                libc::kill(m.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Stops the child's whole process group: SIGTERM, up to `grace` for the leader to exit, SIGKILL; then
/// reaps the leader and kills whatever else is left in the group or carries the child's mark (a
/// daemon that left the group). Returns the leader's exit status.
///
/// Descendants that left the group and rewrote their environment (a server whose workers call
/// `setsid` and set their process titles, as PostgreSQL's do) are listed before the SIGTERM, left to
/// the leader to stop during the grace, and SIGKILLed if they outlive it.
pub fn terminate(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    let pgid = child.id() as i32;
    let (mark, tree) = {
        let reg = registry();
        let mut tree = descendants(child.id());
        // On an interrupt the watcher may have signalled the leader first; it listed the tree then.
        tree.extend(escapees().iter().copied());
        (reg.get(&pgid).cloned(), tree)
    };
    let status = stop_group(child, grace)?;
    kill_survivors(&tree);
    if let Some(mark) = mark {
        kill_marked(|m| m == mark);
    }
    Ok(status)
}

fn stop_group(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    let pgid = child.id() as i32;
    if let Some(status) = try_reap(child)? {
        signal_group(pgid, libc::SIGKILL);
        return Ok(status);
    }
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = try_reap(child)? {
            // Grandchildren that ignored SIGTERM would otherwise be orphans.
            signal_group(pgid, libc::SIGKILL);
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal_group(pgid, libc::SIGKILL);
    let mut reg = registry();
    let status = child.wait()?;
    reg.remove(&pgid);
    Ok(status)
}

/// Waits for `child`, polling every `poll`. On Ctrl-C/SIGTERM: terminates the child's group, reaps
/// it and returns [`Error::Interrupted`].
pub fn wait_with_interrupt(child: &mut Child, poll: Duration) -> Result<ExitStatus> {
    match wait_with_timeout(child, poll, None)? {
        Some(status) => Ok(status),
        None => unreachable!("no timeout was given"),
    }
}

/// Like [`wait_with_interrupt`], with an optional time limit: `Ok(None)` when `timeout` elapses first
/// (the child is then still running, still registered: kill it with [`terminate`] or drop its guard).
pub fn wait_with_timeout(
    child: &mut Child,
    poll: Duration,
    timeout: Option<Duration>,
) -> Result<Option<ExitStatus>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let poll = poll.clamp(Duration::from_millis(1), Duration::from_millis(500));
    loop {
        if interrupted() {
            let _ = terminate(child, INTERRUPT_GRACE);
            return Err(Error::Interrupted);
        }
        if let Some(status) = try_reap(child)
            .map_err(|e| Error::io(format!("waiting for process {}", child.id()), e))?
        {
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(poll);
    }
}

/// Owns a spawned child and terminates + reaps its group when dropped (early return, `?`, panic).
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    /// [`spawn`] and guard in one step.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        spawn(cmd).map(Self::new)
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is present until drop")
    }

    /// [`wait_with_interrupt`] on the guarded child.
    pub fn wait(&mut self, poll: Duration) -> Result<ExitStatus> {
        wait_with_interrupt(self.child_mut(), poll)
    }

    /// [`wait_with_timeout`] on the guarded child.
    pub fn wait_timeout(
        &mut self,
        poll: Duration,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitStatus>> {
        wait_with_timeout(self.child_mut(), poll, timeout)
    }

    /// Stops the child (SIGTERM, `grace`, SIGKILL) and returns its exit status.
    pub fn terminate(mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        let mut child = self.child.take().expect("the child is present until drop");
        terminate(&mut child, grace)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Already exited: just reaps it (and any leftover group members get SIGKILL).
            let _ = terminate(child, Duration::from_secs(2));
        }
    }
}

/// Whether `pid` is a live process (not a zombie): for tests that check nothing was left running.
#[cfg(test)]
pub fn running(pid: u32) -> bool {
    start_time(pid).is_some()
}

/// Human cause of an exit, to follow "it": "exited with status 3", "was killed by signal 9 (SIGKILL)".
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGHUP => " (SIGHUP)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGQUIT => " (SIGQUIT)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGKILL => " (SIGKILL, e.g. the out-of-memory killer)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {sig}{name}")
        }
        None => format!("ended ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(pid: u32) -> bool {
        registry().contains_key(&(pid as i32))
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn spawned_children_lead_their_own_group_and_are_unregistered_when_reaped() {
        let mut child = spawn(Command::new("sh").args(["-c", "exit 7"])).unwrap();
        let pid = child.id();
        // SAFETY: getpgid has no preconditions.
        let pgid = unsafe { libc::getpgid(pid as i32) };
        // The child may already be a zombie, which still has its group.
        assert!(
            pgid == pid as i32 || pgid == -1,
            "pgid {pgid} for pid {pid}"
        );
        let status = wait_with_interrupt(&mut child, Duration::from_millis(5)).unwrap();
        assert_eq!(status.code(), Some(7));
        assert!(!registered(pid));
        assert_eq!(describe_exit(status), "exited with status 7");
    }

    #[test]
    fn terminate_kills_the_whole_group_even_when_sigterm_is_ignored() {
        // The shell ignores SIGTERM and starts a grandchild that ignores it too.
        let mut child = spawn(
            Command::new("sh")
                .args(["-c", "trap '' TERM; sleep 30 & echo $!; wait"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let started = Instant::now();
        let status = terminate(&mut child, Duration::from_millis(200)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            describe_exit(status).starts_with("was killed by signal 9"),
            "{}",
            describe_exit(status)
        );
        assert!(!registered(child.id()));
        // The grandchild was reparented and reaped by init (or a subreaper): give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && !is_zombie(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(grandchild) || is_zombie(grandchild),
            "grandchild {grandchild} survived"
        );
    }

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn a_guard_reaps_on_drop_and_on_panic() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = guard.id();
        drop(guard);
        assert!(!registered(pid));
        assert!(!alive(pid as i32), "pid {pid} still exists (not reaped)");

        let pid = std::thread::spawn(|| {
            let guard = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
            let pid = guard.id();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _g = guard;
                panic!("scenario code panicked");
            }));
            assert!(r.is_err());
            pid
        })
        .join()
        .unwrap();
        assert!(!registered(pid));
        assert!(!alive(pid as i32));
    }

    #[test]
    fn wait_with_timeout_returns_none_and_leaves_the_child_running() {
        let mut guard = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let r = guard
            .wait_timeout(Duration::from_millis(10), Some(Duration::from_millis(100)))
            .unwrap();
        assert!(r.is_none());
        assert!(registered(guard.id()));
        let status = guard.terminate(Duration::from_secs(2)).unwrap();
        assert!(describe_exit(status).contains("signal 15"));
    }

    #[test]
    fn missing_programs_fail_to_spawn_and_are_not_registered() {
        let err = spawn(&mut Command::new("/nonexistent/perfgate-no-such-program")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
