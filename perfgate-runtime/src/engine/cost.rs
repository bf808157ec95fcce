//! Cost mode (`PERFGATE_MODE=cost`): the scenario driven for a fixed number of iterations in a
//! deterministic closed loop, while `cargo perfgate` counts what the service does under valgrind.
//!
//! One user, one connection, one iteration at a time; after every iteration (and, when the
//! iterations make requests of several names, after every request) the engine waits until every
//! thread of the service is asleep ([`idle`]), so each one starts from the same parked state. The
//! window is opened and closed by the CLI; the two sides agree through marker files
//! ([`format::cost`]), each wait bounded by a deadline and given up when the other side is gone.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::idle;
use super::{iteration, quiet_worker_panics, Worker};
use crate::ctx::{new_state, Ctx, Run};
use crate::error::{lock, Result};
use crate::format::{self, cost, env, CostDone, ScenarioSpec, SCHEMA_VERSION};
use crate::record::Recorder;

/// Between two looks at the service's threads: long enough for a thread that was just woken to be
/// seen running, short against a request under valgrind (milliseconds).
const IDLE_GAP: Duration = Duration::from_micros(500);
/// How long the service may stay busy after an iteration before the engine goes on regardless
/// (counted in [`CostDone::not_idle`]): a service with a thread that never sleeps.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the engine waits for the CLI at each step (`go`, a mark's answer, `closed`): vgdb
/// answers in about 0.1 s, but a loaded machine and a service under valgrind can take much longer.
const CLI_TIMEOUT: Duration = Duration::from_secs(300);
/// Between two looks for a marker file.
const POLL: Duration = Duration::from_millis(1);

/// The cost mode's settings, from the protocol's environment.
#[derive(Debug, Clone)]
pub(crate) struct CostConfig {
    pub dir: PathBuf,
    pub warmup: u64,
    pub iterations: u64,
    pub service_pid: u32,
}

impl CostConfig {
    pub(crate) fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        let need = |name: &str| var(name).ok_or_else(|| format!("{name} is not set (cost mode)"));
        let number = |name: &str| -> std::result::Result<u64, String> {
            let v = need(name)?;
            v.trim()
                .parse()
                .map_err(|_| format!("{name}={v:?} is not a whole number"))
        };
        let iterations = number(env::COST_ITERATIONS)?;
        if iterations == 0 {
            return Err(format!("{} must be at least 1", env::COST_ITERATIONS));
        }
        Ok(CostConfig {
            dir: PathBuf::from(need(env::COST_DIR)?),
            warmup: number(env::COST_WARMUP)?,
            iterations,
            service_pid: u32::try_from(number(env::SERVICE_PID)?)
                .map_err(|_| format!("{} is not a process id", env::SERVICE_PID))?,
        })
    }
}

/// The other side of the handshake: the CLI, which started this process and must still be its
/// parent (an orphaned scenario gets another one).
struct Peer {
    dir: PathBuf,
    parent: u32,
    service_pid: u32,
}

impl Peer {
    fn new(cfg: &CostConfig) -> Peer {
        Peer {
            dir: cfg.dir.clone(),
            parent: parent_pid(),
            service_pid: cfg.service_pid,
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::result::Result<(), String> {
        let path = self.dir.join(name);
        format::write_atomic(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Waits for the CLI's file `name`; an error when it does not come in time or the CLI is gone.
    fn wait_for(&self, name: &str) -> std::result::Result<(), String> {
        let path = self.dir.join(name);
        let deadline = Instant::now() + CLI_TIMEOUT;
        // Bounded by the deadline.
        loop {
            if path.exists() {
                return Ok(());
            }
            if parent_pid() != self.parent {
                return Err(format!(
                    "cargo perfgate went away while this scenario waited for `{name}`"
                ));
            }
            if !process_alive(self.service_pid) {
                return Err(format!(
                    "the service (pid {}) exited while this scenario waited for `{name}`",
                    self.service_pid
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "cargo perfgate did not answer within {}s (waiting for {})",
                    CLI_TIMEOUT.as_secs(),
                    path.display()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the service is idle; false when it stayed busy past [`IDLE_TIMEOUT`].
    fn settle(&self) -> bool {
        idle::wait_idle(self.service_pid, IDLE_GAP, IDLE_TIMEOUT).unwrap_or(false)
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() || !cfg!(target_os = "linux")
}

/// The request boundaries of the window: names seen in the warm-up decide whether each request
/// gets a window of its own (several names) or the iteration's figures are the request's. A
/// window per request costs the service a wake-up from vgdb each (a system call and a few hundred
/// instructions), which a scenario of one request name is spared.
struct Marks {
    peer: Peer,
    seen: Mutex<BTreeSet<String>>,
    per_request: AtomicBool,
    next: AtomicU64,
    names: Mutex<Vec<String>>,
    /// When the engine went on after each mark: about when the next request was sent.
    resumed_us: Mutex<Vec<u64>>,
    /// When the last request before the window (the warm-up's) was answered.
    before_us: AtomicU64,
    not_idle: AtomicU64,
    /// The first failure of the handshake: the iterations stop at the next boundary.
    failed: Mutex<Option<String>>,
}

impl Marks {
    fn after_request(&self, name: &str, measured: bool) {
        if !measured {
            self.before_us.store(unix_us(), Ordering::Relaxed);
            if !lock(&self.seen).contains(name) {
                lock(&self.seen).insert(name.to_owned());
            }
            return;
        }
        if !self.per_request.load(Ordering::Relaxed) || lock(&self.failed).is_some() {
            return;
        }
        if !self.peer.settle() {
            self.not_idle.fetch_add(1, Ordering::Relaxed);
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let step = self
            .peer
            .write(&cost::mark(k), name.as_bytes())
            .and_then(|()| self.peer.wait_for(&cost::marked(k)));
        match step {
            Ok(()) => {
                lock(&self.names).push(name.to_owned());
                lock(&self.resumed_us).push(unix_us());
            }
            Err(e) => {
                lock(&self.failed).get_or_insert(e);
            }
        }
    }

    fn failure(&self) -> std::result::Result<(), String> {
        match lock(&self.failed).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Drives the cost mode's iterations against `base_url`, in step with the CLI. `Err` is a setup or
/// handshake failure; a failing service is counted in the done file instead.
pub(crate) fn execute<F, Fut>(
    spec: &ScenarioSpec,
    base_url: &str,
    f: F,
    cfg: &CostConfig,
) -> std::result::Result<(), String>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let https = super::check_base_url(base_url)?;
    let transport = super::transport_from_env(https)?;
    quiet_worker_panics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let timeout = Duration::from_millis(spec.timeout_ms);
    let marks = Arc::new(Marks {
        peer: Peer::new(cfg),
        seen: Mutex::new(BTreeSet::new()),
        per_request: AtomicBool::new(false),
        next: AtomicU64::new(0),
        names: Mutex::new(Vec::new()),
        resumed_us: Mutex::new(Vec::new()),
        before_us: AtomicU64::new(0),
        not_idle: AtomicU64::new(0),
        failed: Mutex::new(None),
    });
    let recorder = Arc::new(Recorder::new(Instant::now(), 1));
    let hook = marks.clone();
    let run = Run::new(base_url, timeout, &transport, recorder.clone()).with_after_request(
        Arc::new(move |name: &str, measured: bool| hook.after_request(name, measured)),
    );
    let total = cfg.warmup + cfg.iterations;
    // Every iteration's requests time out; this bounds a scenario stuck in anything else.
    let give_up =
        Instant::now() + timeout * u32::try_from(total.saturating_mul(4)).unwrap_or(u32::MAX);
    let worker = Worker {
        run: Arc::new(run),
        f: Arc::new(f),
        give_up,
    };
    // One user: its state lasts across iterations, as in the closed model.
    let state = new_state();
    let one = |i: u64, measured: bool| {
        let ctx = Ctx::new(worker.run.clone(), i, 0, measured, state.clone());
        rt.block_on(async {
            let give_up = pin!(tokio::time::sleep_until(worker.give_up.into()));
            iteration(&worker, ctx, None, false, give_up).await;
        });
        if !marks.peer.settle() {
            marks.not_idle.fetch_add(1, Ordering::Relaxed);
        }
    };
    for i in 0..cfg.warmup {
        one(i, false);
    }
    let seen: Vec<String> = lock(&marks.seen).iter().cloned().collect();
    marks.per_request.store(seen.len() > 1, Ordering::Relaxed);
    let ready = serde_json::json!({ "requests": seen, "per_request": seen.len() > 1 });
    marks
        .peer
        .write(cost::READY, ready.to_string().as_bytes())?;
    marks.peer.wait_for(cost::GO)?;
    let window_start_us = unix_us();
    for i in cfg.warmup..total {
        one(i, true);
        marks.failure()?;
    }
    let totals = recorder.totals();
    let it = totals.iterations.stats(1.0);
    let names = lock(&marks.names).clone();
    // Request k goes out as the engine goes on after mark k − 1 (the first at `go`).
    let mut sent_us = vec![window_start_us];
    sent_us.extend(lock(&marks.resumed_us).iter().copied());
    sent_us.truncate(names.len());
    let done = CostDone {
        schema_version: SCHEMA_VERSION,
        perfgate_version: format::PERFGATE_VERSION.to_owned(),
        warmup: cfg.warmup,
        iterations: it.count,
        errors: it.errors,
        error_samples: it.error_samples,
        requests: totals
            .requests
            .iter()
            .map(|(name, s)| (name.clone(), s.stats(1.0).count))
            .collect(),
        marks: names,
        sent_us,
        before_us: marks.before_us.load(Ordering::Relaxed),
        not_idle: marks.not_idle.load(Ordering::Relaxed),
    };
    let json = serde_json::to_vec_pretty(&done).map_err(|e| e.to_string())?;
    marks.peer.write(cost::DONE, &json)?;
    // The connection stays open until the window is closed: its end is not the window's business.
    marks.peer.wait_for(cost::CLOSED)?;
    drop(worker);
    drop(rt);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_protocol_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let ok = vars(&[
            (env::COST_DIR, "/tmp/x"),
            (env::COST_WARMUP, "20"),
            (env::COST_ITERATIONS, "50"),
            (env::SERVICE_PID, "4242"),
        ]);
        let cfg = CostConfig::from_env(&ok).unwrap();
        assert_eq!(
            (cfg.dir, cfg.warmup, cfg.iterations, cfg.service_pid),
            (PathBuf::from("/tmp/x"), 20, 50, 4242)
        );
        let missing = vars(&[(env::COST_DIR, "/tmp/x"), (env::COST_WARMUP, "20")]);
        let e = CostConfig::from_env(&missing).unwrap_err();
        assert!(e.contains(env::COST_ITERATIONS), "{e}");
        let zero = vars(&[
            (env::COST_DIR, "/tmp/x"),
            (env::COST_WARMUP, "0"),
            (env::COST_ITERATIONS, "0"),
            (env::SERVICE_PID, "1"),
        ]);
        assert!(CostConfig::from_env(&zero)
            .unwrap_err()
            .contains("at least 1"));
        let bad = vars(&[
            (env::COST_DIR, "/tmp/x"),
            (env::COST_WARMUP, "ten"),
            (env::COST_ITERATIONS, "5"),
            (env::SERVICE_PID, "1"),
        ]);
        assert!(CostConfig::from_env(&bad).unwrap_err().contains("\"ten\""));
    }
}
