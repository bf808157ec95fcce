//! The load engine: open (fixed or ramping rate) and closed models, warmup, the end of the window.
//!
//! Threads: `workers` threads, each with its own current-thread tokio runtime, HTTP client
//! (connection pool), slots and recording shard, so the per-request path never crosses a core: no
//! shared locks, no cross-thread wake-ups, no work stealing. The calling thread only coordinates (the
//! time-series ticker, the end of the run).
//!
//! Open models (like wrk2): worker `k` of `n` owns iterations `k, k+n, k+2n, …` of the schedule;
//! iteration `i` is intended at `t0 + offset(i)`. Each worker's pacer sleeps until then on a timerfd
//! registered with its runtime (nanosecond precision and no slack, where tokio's own timer has a
//! millisecond grain), then spawns the iteration on its runtime. Latency is recorded from the
//! intended start (corrected) and from the iteration's first poll (uncorrected), and the difference,
//! the schedule lag, is recorded too. At most `max_in_flight` iterations run at once (split across
//! workers): a start that finds no free slot waits for one (it starts late, and its corrected latency
//! shows the wait, like a wrk2 connection would), for at most the request timeout and never past the
//! window; then it is dropped.
//!
//! Closed model: `users` loops spread over the workers, each running an iteration, then thinking
//! `think_ms`.
//!
//! Shards (`--shard i/n`): a process runs every n-th start of the whole schedule from start i−1
//! (or every n-th user), and its workers split those in turn, so n shards together send exactly the
//! unsharded schedule, evenly spaced, and a ramp stays a ramp. Threads and slots scale with the
//! share. Shards begin their warm-up at a common wall-clock time.
//!
//! Warmup runs the same load first; nothing it does is recorded. When the measured window ends no
//! iteration starts; those in flight get `timeout_ms` to finish, then are cancelled and counted as
//! timeouts (their latency recorded as the time they had run, a lower bound).

pub(crate) mod cost;
mod idle;
mod pacing;
mod share;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use self::pacing::{PreciseTimer, RateSchedule, PACING_SLACK};
pub(crate) use self::share::Share;
use self::share::{first_and_stride, shard_load, start_instant};
use crate::ctx::{new_state, Ctx, Run};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{
    self, LatencySummary, LoadModel, ScenarioResult, ScenarioSpec, Schedule, ShardId,
    SCHEMA_VERSION,
};
use crate::http::{Bodies, Tls, Transport, DEFAULT_MAX_BUFFERED};
use crate::record::{Recorder, LATE_THRESHOLD};

/// A worker's view of the scenario.
struct Worker<F> {
    run: Arc<Run>,
    f: Arc<F>,
    /// When iterations still running give up: the end of the window plus the grace period.
    give_up: Instant,
}

/// Fraction of late or dropped starts above which a run is marked invalid.
const INVALID_FRACTION: f64 = 0.01;
/// Bounds of the default `max_in_flight` (the peak rate times the timeout, in between): enough for
/// a service several times slower than usual; the cap keeps under common file-descriptor limits.
const MIN_DEFAULT_IN_FLIGHT: u64 = 256;
const MAX_DEFAULT_IN_FLIGHT: u64 = 4096;
/// How long cancelled iterations get to record themselves after the grace period.
const CANCEL_WAIT: Duration = Duration::from_secs(1);
/// The rate one worker thread is given before another is added: one core's worth of HTTP/1.1
/// requests is several times this, so a second thread only comes in when a core is likely short.
const RATE_PER_WORKER: f64 = 5000.0;
/// Closed-model users per worker before another is added.
const USERS_PER_WORKER: u64 = 8;

/// The default bound on concurrent iterations of an open model.
pub fn default_max_in_flight(spec: &ScenarioSpec) -> u64 {
    let peak = match &spec.load {
        LoadModel::Closed { users, .. } => return *users,
        load => peak_rate(load),
    };
    let want = (peak * spec.timeout_ms as f64 / 1000.0).ceil();
    (want as u64).clamp(MIN_DEFAULT_IN_FLIGHT, MAX_DEFAULT_IN_FLIGHT)
}

fn peak_rate(load: &LoadModel) -> f64 {
    match load {
        LoadModel::Open { rate } => *rate,
        LoadModel::Ramping { stages } => stages.iter().map(|s| s.target_rate).fold(0.0, f64::max),
        LoadModel::Closed { .. } => 0.0,
    }
}

/// Worker threads of the generator: as many as the load needs, at most the cores this process may
/// run on (a generator pinned to one core gets one) and at most 4, to leave cores to the service.
fn worker_threads(load: &LoadModel) -> usize {
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let want = match load {
        LoadModel::Closed { users, .. } => users.div_ceil(USERS_PER_WORKER) as usize,
        load => (peak_rate(load) / RATE_PER_WORKER).ceil() as usize,
    };
    want.clamp(1, cores)
}

/// Checks a spec before any load is sent (the macro checks at compile time; this is for hand-made
/// specs and environment overrides).
pub(crate) fn validate(spec: &ScenarioSpec) -> std::result::Result<(), String> {
    match &spec.load {
        LoadModel::Open { rate } if !(rate.is_finite() && *rate > 0.0) => {
            return Err(format!(
                "rate must be a positive number of iterations per second, got {rate}"
            ))
        }
        LoadModel::Ramping { stages } => {
            if stages.is_empty() {
                return Err("a ramping load needs at least one stage".into());
            }
            if stages
                .iter()
                .any(|s| !(s.target_rate.is_finite() && s.target_rate >= 0.0))
            {
                return Err("stage rates must be finite and not negative".into());
            }
            if stages.iter().all(|s| s.target_rate == 0.0) {
                return Err("a ramping load needs a stage with a positive rate".into());
            }
        }
        LoadModel::Closed { users, .. } if *users == 0 || *users > u64::from(u32::MAX >> 4) => {
            return Err(format!(
                "users must be between 1 and {}, got {users}",
                u32::MAX >> 4
            ))
        }
        _ => {}
    }
    if spec.duration_ms == 0 {
        return Err("the duration must be positive".into());
    }
    if spec.timeout_ms == 0 {
        return Err("the timeout must be positive".into());
    }
    if spec.max_in_flight == Some(0) {
        return Err("max_in_flight must be positive".into());
    }
    Ok(())
}

/// The service's URL as the client needs it: `http://host:port`.
/// Checks the base URL's form; whether it is `https://`.
fn check_base_url(base_url: &str) -> std::result::Result<bool, String> {
    let uri: hyper::Uri = base_url
        .parse()
        .map_err(|e| format!("invalid base URL `{base_url}`: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    if !(https || uri.scheme_str() == Some("http")) || uri.host().is_none() {
        return Err(format!(
            "invalid base URL `{base_url}`: expected http://host:port or https://host:port"
        ));
    }
    Ok(https)
}

/// The times of one run, shared by every worker.
#[derive(Clone, Copy)]
struct Window {
    t0: Instant,
    /// When the pacers begin: t0, or later when a shard began after the common start (the warm-up
    /// starts it missed are skipped, not sent at once).
    resume: Instant,
    start: Instant,
    end: Instant,
    timeout: Duration,
}

/// What the pacers report at the end: starts intended in the measured window, of which dropped.
#[derive(Default)]
struct Paced {
    intended: u64,
    dropped: u64,
}

/// Runs the scenario against `base_url` and returns its results. `Err` is a setup failure (bad spec,
/// bad URL, no runtime), never a failing service: those are counted in the results.
pub(crate) fn execute<F, Fut>(
    spec: &ScenarioSpec,
    base_url: &str,
    part: Share,
    f: F,
) -> std::result::Result<ScenarioResult, String>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    validate(spec)?;
    let shard = part.shard.unwrap_or(ShardId::WHOLE);
    // Threads and slots scale with this process's share; the schedule is the whole one.
    let mine = shard_load(spec, shard, default_max_in_flight(spec))?;
    let https = check_base_url(base_url)?;
    let transport = transport_from_env(https)?;
    quiet_worker_panics();
    // The coordinator's and every worker's: one thread each, I/O and timers.
    let new_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the load generator's runtime: {e}"))
    };
    let coordinator = new_runtime()?;
    // Each worker gets at least one slot, so never more workers than slots (max_in_flight = 1 means
    // one iteration at a time, whatever the rate).
    let total_slots = match &mine.load {
        LoadModel::Closed { users, .. } => *users,
        _ => mine
            .max_in_flight
            .unwrap_or_else(|| default_max_in_flight(&mine)),
    }
    .min(Semaphore::MAX_PERMITS as u64)
    .min(u64::from(u32::MAX));
    let n = worker_threads(&mine.load).min(total_slots as usize);
    let runtimes = (0..n)
        .map(|_| new_runtime())
        .collect::<std::result::Result<Vec<_>, String>>()?;

    let warmup = Duration::from_millis(spec.warmup_ms);
    let duration = Duration::from_millis(spec.duration_ms);
    let timeout = Duration::from_millis(spec.timeout_ms);
    let t0 = start_instant(part, warmup)?;
    let window = Window {
        t0,
        resume: t0.max(Instant::now()),
        start: t0 + warmup,
        end: t0 + warmup + duration,
        timeout,
    };
    let seconds = u32::try_from(spec.duration_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    let recorder = Arc::new(Recorder::new(window.start, seconds));
    let started_unix_ms = match part.start_at_unix_ms {
        // Exactly the common window, as every shard writes it.
        Some(ms) => ms + spec.warmup_ms,
        None => (SystemTime::now() + window.start.saturating_duration_since(Instant::now()))
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };

    // Each worker's share of the slots: users, or max_in_flight split evenly (the schedule is too).
    let share = |k: usize| {
        let (base, extra) = (total_slots / n as u64, total_slots % n as u64);
        (base + u64::from((k as u64) < extra)).max(1) as u32
    };
    let slots: Vec<Arc<Semaphore>> = (0..n)
        .map(|k| Arc::new(Semaphore::new(share(k) as usize)))
        .collect();

    let f = Arc::new(f);
    let (exit_tx, exit_rx) = tokio::sync::watch::channel(false);
    let (paced_tx, mut paced_rx) = tokio::sync::mpsc::unbounded_channel::<Paced>();
    let (exited_tx, exited_rx) = std::sync::mpsc::channel::<()>();
    for (k, rt) in runtimes.into_iter().enumerate() {
        let run = Arc::new(Run::new(base_url, timeout, &transport, recorder.clone()));
        let worker = Arc::new(Worker {
            run,
            f: f.clone(),
            give_up: window.end + timeout,
        });
        let (load, slots) = (spec.load.clone(), slots[k].clone());
        let (mut exit, paced, exited) = (exit_rx.clone(), paced_tx.clone(), exited_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(WORKER_THREAD.into())
            .spawn(move || {
                rt.block_on(async move {
                    let first_stride = first_and_stride(shard, k as u64, n as u64);
                    start_worker(worker, load, window, slots, first_stride, paced);
                    let _ = exit.wait_for(|e| *e).await;
                });
                // Whatever is still running (stuck iterations, idle connections) is dropped.
                rt.shutdown_background();
                let _ = exited.send(());
            });
        if let Err(e) = spawned {
            let _ = exit_tx.send(true);
            return Err(format!("cannot start a load generator thread: {e}"));
        }
    }
    drop((paced_tx, exited_tx));

    let paced = coordinator.block_on(async {
        let ticker = tokio::spawn(tick_seconds(recorder.clone()));
        tokio::time::sleep_until(window.end.into()).await;
        // Pacers end with the window (a start waiting for a slot gives up then too); the bound is
        // for a worker stuck in blocking scenario code.
        let mut paced = Paced::default();
        let pacers_done = window.end + timeout + CANCEL_WAIT;
        while let Ok(Some(p)) = tokio::time::timeout_at(pacers_done.into(), paced_rx.recv()).await {
            paced.intended += p.intended;
            paced.dropped += p.dropped;
        }
        // Every slot back means every iteration is over (and recorded). In-flight ones give up at
        // `give_up`; then they get CANCEL_WAIT to record themselves.
        let all_back = async {
            for (k, s) in slots.iter().enumerate() {
                let _ = s.acquire_many(share(k)).await;
            }
        };
        let _ =
            tokio::time::timeout_at((window.end + timeout + CANCEL_WAIT).into(), all_back).await;
        ticker.abort();
        paced
    });
    let _ = exit_tx.send(true);
    // Workers exit at once unless a thread is stuck in blocking code: never wait long for those.
    let exit_by = Instant::now() + CANCEL_WAIT;
    for _ in 0..n {
        let left = exit_by.saturating_duration_since(Instant::now());
        if exited_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    drop(coordinator);
    recorder.summarise_seconds(None);
    let mut result = summarise(
        spec.clone(),
        base_url.to_owned(),
        started_unix_ms,
        &recorder,
        paced,
        total_slots,
    );
    result.shard = part.shard;
    Ok(result)
}

/// How the clients speak, from the protocol's variables. The TLS settings are checked up front
/// when they will be used (an `https://` service) or were given (a CA file): a bad file is one
/// setup error, not an error of every request.
fn transport_from_env(https: bool) -> std::result::Result<Transport, String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let ca_cert = var(format::env::CA_CERT).map(std::path::PathBuf::from);
    let checked = https || ca_cert.is_some();
    let tls = Arc::new(Tls::new(ca_cert));
    if checked {
        tls.check()?;
    }
    let max_buffered = match var(format::env::MAX_BODY_BYTES) {
        None => DEFAULT_MAX_BUFFERED,
        Some(v) => v
            .to_str()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "{}={v:?} is not a positive number of bytes",
                    format::env::MAX_BODY_BYTES
                )
            })?,
    };
    Ok(Transport {
        http2: var(format::env::HTTP2).is_some_and(|v| v == "1" || v == "true"),
        tls,
        bodies: Bodies::new(max_buffered),
    })
}

fn summarise(
    spec: ScenarioSpec,
    base_url: String,
    started_unix_ms: u64,
    recorder: &Recorder,
    paced: Paced,
    total_slots: u64,
) -> ScenarioResult {
    let totals = recorder.totals();
    let measured_secs = spec.duration_ms as f64 / 1000.0;
    let iterations = totals.iterations.stats(measured_secs);
    let requests = totals
        .requests
        .iter()
        .map(|(name, s)| (name.clone(), s.stats(measured_secs)))
        .collect();
    let schedule = match &spec.load {
        LoadModel::Closed { .. } => Schedule {
            intended: iterations.count,
            lag: LatencySummary::default(),
            lag_histogram: format::encode_histogram(&format::new_histogram()),
            ..Schedule::default()
        },
        _ => Schedule {
            intended: paced.intended,
            late: totals.late,
            late_waiting: totals.late_waiting,
            dropped: paced.dropped,
            lag: LatencySummary::from_histogram(&totals.lag),
            lag_histogram: format::encode_histogram(&totals.lag),
        },
    };
    let invalid = invalid_reason(
        &schedule,
        iterations.count,
        recorder.gave_up_count(),
        total_slots,
    );
    ScenarioResult {
        schema_version: SCHEMA_VERSION,
        perfgate_version: format::PERFGATE_VERSION.to_owned(),
        spec,
        base_url,
        started_unix_ms,
        measured_secs,
        iterations,
        requests,
        schedule,
        invalid,
        timeseries: recorder.timeseries(),
        intervals: recorder.intervals(),
        shard: None,
    }
}

fn invalid_reason(
    schedule: &Schedule,
    finished: u64,
    gave_up: u64,
    max_in_flight: u64,
) -> Option<String> {
    if finished == 0 && gave_up > 0 {
        return Some(format!(
            "no iteration finished in the measured window: {gave_up} iteration{} started before it \
             {} still running when the window and its grace period ended. A scenario step that never \
             returns holds its user: give requests a `timeout` and check what the scenario awaits",
            if gave_up == 1 { "" } else { "s" },
            if gave_up == 1 { "was" } else { "were" },
        ));
    }
    if finished == 0 {
        return Some("no iteration started in the measured window".into());
    }
    let bad = schedule.late + schedule.dropped;
    if schedule.intended == 0 || (bad as f64) <= INVALID_FRACTION * schedule.intended as f64 {
        return None;
    }
    let mut causes = Vec::new();
    let late_waiting = schedule.late_waiting;
    let late_generator = schedule.late - late_waiting;
    if late_generator > 0 {
        causes.push(format!(
            "{late_generator} started more than {} ms late (the generator could not keep up: too few cores?)",
            LATE_THRESHOLD.as_millis()
        ));
    }
    if late_waiting > 0 {
        causes.push(format!("{late_waiting} started late waiting for a free slot (max_in_flight = {max_in_flight} reached)"));
    }
    if schedule.dropped > 0 {
        causes.push(format!(
            "{} were dropped (no free slot in time, max_in_flight = {max_in_flight})",
            schedule.dropped
        ));
    }
    Some(format!(
        "{:.1}% of {} scheduled starts were late or dropped: {}",
        bad as f64 * 100.0 / schedule.intended as f64,
        schedule.intended,
        causes.join("; ")
    ))
}

/// Summarises each second of the measured window shortly after it ends.
async fn tick_seconds(recorder: Arc<Recorder>) {
    let mut progress = std::env::var_os(format::env::OUT)
        .map(|out| Progress::new(format::progress_path(std::path::Path::new(&out))));
    for k in 0..recorder.seconds() {
        // The margin lets iterations that ended just before the boundary record themselves.
        let at = recorder.window_start()
            + Duration::from_secs(u64::from(k) + 1)
            + Duration::from_millis(200);
        tokio::time::sleep_until(at.into()).await;
        recorder.summarise_seconds(Some(k));
        if let (Some(p), Some(second)) = (progress.as_mut(), recorder.second(k)) {
            p.append(&second);
        }
        if k % TRIM_EVERY_SECS == TRIM_EVERY_SECS - 1 {
            release_free_memory();
        }
    }
}

/// Seconds between two [`release_free_memory`] calls.
const TRIM_EVERY_SECS: u32 = 10;

/// Hands the allocator's free pages back to the system. Per-second histograms and response buffers
/// come and go on several threads; glibc keeps what they free in per-thread arenas, so over an
/// hours-long soak the generator's resident memory would ratchet up to its worst moment's instead of
/// following what it holds. On the coordinator thread; a trim there made a few `madvise` calls of
/// tens of microseconds each at 1,000 requests/s.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Live numbers for `cargo perfgate`'s progress line and its early stops: each finished second, one
/// JSON line appended to `format::progress_path` next to the results file, so that a second costs
/// the same at minute 600 as at minute 1. Best effort: a failure costs only the live numbers.
struct Progress {
    /// None once it could not be created or written.
    file: Option<std::fs::File>,
}

impl Progress {
    /// Replaces whatever an earlier round left at `path`.
    fn new(path: std::path::PathBuf) -> Self {
        Progress {
            file: std::fs::File::create(path).ok(),
        }
    }

    fn append(&mut self, second: &format::SecondSample) {
        use std::io::Write as _;
        let (Some(file), Ok(mut line)) = (self.file.as_mut(), serde_json::to_vec(second)) else {
            return;
        };
        line.push(b'\n');
        // One write per line: a reader sees whole lines, and at most a partial last one.
        if file.write_all(&line).is_err() {
            self.file = None;
        }
    }
}

/// Spawns a worker's share of the load on its runtime: its users, or its pacer.
fn start_worker<F, Fut>(
    worker: Arc<Worker<F>>,
    load: LoadModel,
    window: Window,
    slots: Arc<Semaphore>,
    (k, n): (u64, u64),
    paced: tokio::sync::mpsc::UnboundedSender<Paced>,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    tokio::spawn(keep_a_wake_up_planned(worker.give_up + CANCEL_WAIT));
    match load {
        LoadModel::Closed { users, think_ms } => {
            drop(paced);
            let think = Duration::from_millis(think_ms);
            for user in (k..users).step_by(n as usize) {
                let w = worker.clone();
                tokio::spawn(user_loop(w, slots.clone(), user, (k, n), think, window));
            }
        }
        load => {
            let pacer = Pacer {
                schedule: RateSchedule::new(&load, window.start - window.t0),
                window,
                warmup_secs: (window.start - window.t0).as_secs_f64(),
                end_secs: (window.end - window.t0).as_secs_f64(),
            };
            tokio::spawn(async move {
                let p = pacer.run(worker, slots, k, n).await;
                let _ = paced.send(p);
            });
        }
    }
}

/// How often a worker's timer wakes it when nothing else does.
const PLANNED_WAKE_UP: Duration = Duration::from_millis(50);

/// tokio's timer wakes its own thread (an eventfd write, then an extra trip through epoll) whenever a
/// timer is set to expire before the wake-up the driver has planned, and always when none is planned,
/// which is the usual state between two requests of an open model. Every request sets two (its
/// timeout, its iteration's give-up time): measured, about two extra system calls and one extra
/// wake-up per request. A tick every 50 ms keeps an earlier wake-up planned, so setting them is free.
async fn keep_a_wake_up_planned(until: Instant) {
    // Bounded by `until`, a few seconds after the window.
    while Instant::now() < until {
        tokio::time::sleep(PLANNED_WAKE_UP).await;
    }
}

/// Runs one iteration and records it (when measured). `intended`: the start the schedule called for
/// (the actual start in the closed model).
/// `give_up`: a timer at `worker.give_up`, which a closed-model user sets once for all its
/// iterations (setting a timer per iteration is a measurable share of a request's cost).
async fn iteration<F, Fut>(
    worker: &Worker<F>,
    ctx: Ctx,
    intended: Option<Instant>,
    waited: bool,
    mut give_up: Pin<&mut tokio::time::Sleep>,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let start = Instant::now();
    let measured = ctx.measured();
    let outcome = match catch_unwind(AssertUnwindSafe(|| (worker.f)(ctx))) {
        Err(payload) => Err(panic_error(payload)),
        Ok(fut) => {
            let mut fut = pin!(fut);
            // A panic in the scenario is counted, and the run goes on.
            let guarded = std::future::poll_fn(|cx| {
                match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Ready(r)) => Poll::Ready(r),
                    Ok(Poll::Pending) => Poll::Pending,
                    Err(payload) => Poll::Ready(Err(panic_error(payload))),
                }
            });
            // A deadline on the worker's own timer wheel: no shared cancellation signal to register
            // with on every iteration.
            tokio::select! {
                biased;
                r = guarded => r,
                _ = give_up.as_mut() => {
                    worker.run.recorder.gave_up();
                    Err(Error::new(
                        ErrorKind::Timeout,
                        "still running when the measured window and its grace period were over",
                    ))
                }
            }
        }
    };
    if !measured {
        return;
    }
    let end = Instant::now();
    let recorder = &worker.run.recorder;
    if let Some(intended) = intended {
        let lag = start.saturating_duration_since(intended);
        recorder.lag(lag, waited);
    }
    let intended = intended.unwrap_or(start);
    recorder.iteration(end - intended, end - start, end, outcome.as_ref().err());
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into());
    Error::new(
        ErrorKind::Panic,
        format!("the iteration panicked: {message}"),
    )
}

/// One closed-model user. Iterations are numbered per worker with a stride of the worker count, so
/// numbers are unique without a counter shared across cores.
async fn user_loop<F, Fut>(
    worker: Arc<Worker<F>>,
    slots: Arc<Semaphore>,
    user: u64,
    (k, n): (u64, u64),
    think: Duration,
    window: Window,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let state = new_state();
    let mut give_up = pin!(tokio::time::sleep_until(worker.give_up.into()));
    tokio::time::sleep_until(window.t0.into()).await;
    // Bounded by the window: every pass checks the clock.
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        let Ok(permit) = slots.acquire().await else {
            break;
        };
        let index = k + n * NEXT_LOCAL.with(|c| c.replace(c.get() + 1));
        let ctx = Ctx::new(
            worker.run.clone(),
            index,
            user,
            now >= window.start,
            state.clone(),
        );
        iteration(&worker, ctx, None, false, give_up.as_mut()).await;
        drop(permit);
        if !think.is_zero() {
            let wake = (Instant::now() + think).min(window.end);
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

thread_local! {
    /// The closed model's per-worker iteration counter (a worker is one thread and runs one run).
    static NEXT_LOCAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// An open model's pacer: one per worker, owning every n-th start of the schedule.
struct Pacer {
    schedule: RateSchedule,
    window: Window,
    warmup_secs: f64,
    end_secs: f64,
}

impl Pacer {
    async fn run<F, Fut>(
        mut self,
        worker: Arc<Worker<F>>,
        slots: Arc<Semaphore>,
        k: u64,
        n: u64,
    ) -> Paced
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result> + Send + 'static,
    {
        let mut timer = PreciseTimer::new();
        let mut paced = Paced::default();
        let window = self.window;
        // Bounded: offsets grow with i and the loop ends at the end of the window.
        let mut i = k;
        // Set while the pacer is catching up after waiting for a slot: the starts it delayed are
        // late because of the bound, not because the generator is short of CPU.
        let mut behind_a_wait = false;
        let mut last_wake = window.t0;
        // Begun after the common start: the warm-up starts already due are skipped rather than
        // sent at once (bounded by the warm-up's starts).
        let missed = (window.resume - window.t0)
            .as_secs_f64()
            .min(self.warmup_secs);
        while self.schedule.offset(i).is_some_and(|o| o < missed) {
            i += n;
        }
        while let Some(offset) = self.schedule.offset(i) {
            if offset >= self.end_secs {
                break;
            }
            let index = i;
            i += n;
            let at = window.t0 + Duration::from_secs_f64(offset);
            let measured = offset >= self.warmup_secs;
            paced.intended += u64::from(measured);
            if at > Instant::now() {
                // On time again: any lateness from here on is not a slot's doing.
                behind_a_wait = false;
                // At most one wake-up per `slack`: the starts due meanwhile go together, each
                // still measured from its own intended time.
                timer.sleep_until(at.max(last_wake + PACING_SLACK)).await;
                last_wake = Instant::now();
            }
            if Instant::now() >= window.end {
                // Behind schedule when the window closed: what is left never starts.
                paced.dropped += u64::from(measured);
                continue;
            }
            let (permit, waited) = match slots.clone().try_acquire_owned() {
                Ok(p) => (Some(p), behind_a_wait),
                Err(TryAcquireError::Closed) => break,
                Err(TryAcquireError::NoPermits) => {
                    // Later starts wait behind this one, as requests queue behind a busy wrk2
                    // connection; their corrected latency includes the wait.
                    let deadline = (at + window.timeout).min(window.end);
                    let permit =
                        tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned())
                            .await
                            .ok()
                            .and_then(|r| r.ok());
                    behind_a_wait = true;
                    (permit, true)
                }
            };
            let Some(permit) = permit else {
                paced.dropped += u64::from(measured);
                continue;
            };
            let ctx = Ctx::new(worker.run.clone(), index, index, measured, new_state());
            // Boxed: the iteration's future is several KB (the scenario's own future inside),
            // and spawning it unboxed copies it whole more than once per start.
            tokio::spawn(Box::pin(start(worker.clone(), ctx, at, waited, permit)));
        }
        paced
    }
}

async fn start<F, Fut>(
    worker: Arc<Worker<F>>,
    ctx: Ctx,
    at: Instant,
    waited: bool,
    permit: OwnedSemaphorePermit,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let give_up = pin!(tokio::time::sleep_until(worker.give_up.into()));
    iteration(&worker, ctx, Some(at), waited, give_up).await;
    drop(permit);
}

pub(crate) const WORKER_THREAD: &str = "perfgate-worker";

/// Panics in scenarios are counted and their messages kept in the results; printing thousands of
/// them from the generator's threads would bury everything else, so only the first is printed, and
/// without a backtrace: capturing one (RUST_BACKTRACE=1 in a debug build) can take the worker thread
/// away from its schedule for most of a second.
fn quiet_worker_panics() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Once;
    static INSTALL: Once = Once::new();
    static PRINTED: AtomicBool = AtomicBool::new(false);
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(WORKER_THREAD) {
                previous(info);
            } else if !PRINTED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "perfgate: an iteration panicked: {info}\n\
                     perfgate: further panics in this scenario are counted, not printed"
                );
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_one_json_line_per_second_read_back_whole_lines_only() {
        let dir = std::env::temp_dir().join(format!("perfgate-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json.progress");
        // A stale file from an earlier round is replaced, not appended to.
        std::fs::write(&path, "[]").unwrap();
        let mut p = Progress::new(path.clone());
        let second = |t: u32| format::SecondSample {
            t,
            iterations: 10 + u64::from(t),
            errors: u64::from(t % 2),
            p50_ms: 0.5,
            p99_ms: 2.0,
        };
        p.append(&second(0));
        p.append(&second(1));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2);
        let (read, used) = format::parse_progress(&bytes);
        assert_eq!((read, used), (vec![second(0), second(1)], bytes.len()));
        let (read, used) = format::parse_progress(&bytes[..bytes.len() - 3]);
        assert_eq!(read, vec![second(0)], "the cut last line is left for later");
        assert_eq!(&bytes[used..used + 6], b"{\"t\":1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_in_flight_scales_with_rate_and_timeout() {
        let mut spec = ScenarioSpec {
            name: "x".into(),
            module_path: "m".into(),
            file: "f".into(),
            line: 1,
            load: LoadModel::Open { rate: 100.0 },
            duration_ms: 1000,
            warmup_ms: 0,
            timeout_ms: 10_000,
            max_in_flight: None,
            slos: vec![],
            regression_pct: 10.0,
            service: None,
            data: vec![],
            cost_regression_pct: 1.0,
            tiers: Default::default(),
            trends: vec![],
        };
        assert_eq!(default_max_in_flight(&spec), 1000);
        spec.load = LoadModel::Open { rate: 5.0 };
        assert_eq!(default_max_in_flight(&spec), MIN_DEFAULT_IN_FLIGHT);
        spec.load = LoadModel::Open { rate: 100_000.0 };
        assert_eq!(default_max_in_flight(&spec), MAX_DEFAULT_IN_FLIGHT);
    }
}
