//! The load engine: open (fixed or ramping rate) and closed models, warmup, the end of the window.
//!
//! Open models: a pacer thread owns the schedule. Iteration `i` is intended at `t0 + offset(i)`; the
//! pacer sleeps on the OS timer (tens of microseconds of precision, where tokio's timer has a
//! millisecond) and spawns the iteration as a task. Latency is recorded from the intended start
//! (corrected) and from the task's first poll (uncorrected), and the difference, the schedule lag,
//! is recorded too. At most `max_in_flight` iterations run at once: a start that finds no free slot
//! waits for one (it starts late, and its corrected latency shows the wait, like a wrk2 connection
//! would), for at most the request timeout and never past the window; then it is dropped.
//!
//! Closed model: `users` loops, each running an iteration, then thinking `think_ms`.
//!
//! Warmup runs the same load first; nothing it does is recorded. When the measured window ends no
//! iteration starts; those in flight get `timeout_ms` to finish, then are cancelled and counted as
//! timeouts (their latency recorded as the time they had run, a lower bound).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::client::{build_client, new_state, Ctx, HttpClient};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{
    self, LatencySummary, LoadModel, ScenarioResult, ScenarioSpec, Schedule, SCHEMA_VERSION,
};
use crate::record::{Recorder, LATE_THRESHOLD};

/// What every iteration of one run shares.
pub(crate) struct Run {
    pub(crate) client: HttpClient,
    pub(crate) base_url: String,
    pub(crate) timeout: Duration,
    pub(crate) recorder: Recorder,
    /// Set when the window is over and the grace period too: iterations still running give up.
    stop: watch::Receiver<bool>,
    /// Numbers the closed model's iterations across users, in start order.
    next_iteration: AtomicU64,
}

/// Fraction of late or dropped starts above which a run is marked invalid.
const INVALID_FRACTION: f64 = 0.01;
/// Bounds of the default `max_in_flight` (the peak rate times the timeout, in between): enough for
/// a service several times slower than usual; the cap keeps under common file-descriptor limits.
const MIN_DEFAULT_IN_FLIGHT: u64 = 256;
const MAX_DEFAULT_IN_FLIGHT: u64 = 4096;
/// How long cancelled iterations get to record themselves after the grace period.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// The default bound on concurrent iterations of an open model.
pub fn default_max_in_flight(spec: &ScenarioSpec) -> u64 {
    let peak = match &spec.load {
        LoadModel::Open { rate } => *rate,
        LoadModel::Ramping { stages } => stages.iter().map(|s| s.target_rate).fold(0.0, f64::max),
        LoadModel::Closed { users, .. } => return *users,
    };
    let want = (peak * spec.timeout_ms as f64 / 1000.0).ceil();
    (want as u64).clamp(MIN_DEFAULT_IN_FLIGHT, MAX_DEFAULT_IN_FLIGHT)
}

/// Worker threads of the generator's runtime: enough for the HTTP work of a single-machine gate,
/// few enough to leave cores to the service it measures.
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
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

/// Runs the scenario against `base_url` and returns its results. `Err` is a setup failure (bad spec,
/// bad URL, no runtime), never a failing service: those are counted in the results.
pub(crate) fn execute<F, Fut>(
    spec: &ScenarioSpec,
    base_url: &str,
    f: F,
) -> std::result::Result<ScenarioResult, String>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    validate(spec)?;
    let uri: hyper::Uri = base_url
        .parse()
        .map_err(|e| format!("invalid base URL `{base_url}`: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "invalid base URL `{base_url}`: expected http://host:port"
        ));
    }
    quiet_worker_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name(WORKER_THREAD)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;
    let result = runtime.block_on(drive(spec.clone(), base_url.to_owned(), Arc::new(f)));
    // An iteration stuck in blocking code must not hang the test process.
    runtime.shutdown_background();
    Ok(result)
}

async fn drive<F, Fut>(spec: ScenarioSpec, base_url: String, f: Arc<F>) -> ScenarioResult
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let warmup = Duration::from_millis(spec.warmup_ms);
    let duration = Duration::from_millis(spec.duration_ms);
    let timeout = Duration::from_millis(spec.timeout_ms);
    let http2 = std::env::var(format::env::HTTP2).is_ok_and(|v| v == "1" || v == "true");
    // A little slack so the first intended start is not already late while things spin up.
    let t0 = Instant::now() + Duration::from_millis(10);
    let window_start = t0 + warmup;
    let window_end = window_start + duration;
    let seconds = u32::try_from(spec.duration_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = Arc::new(Run {
        client: build_client(timeout, http2),
        base_url: base_url.trim_end_matches('/').to_owned(),
        timeout,
        recorder: Recorder::new(window_start, seconds),
        stop: stop_rx,
        next_iteration: AtomicU64::new(0),
    });
    let started_unix_ms = (SystemTime::now()
        + window_start.saturating_duration_since(Instant::now()))
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_millis() as u64);
    let ticker = tokio::spawn(tick_seconds(run.clone()));

    let (slots, total_slots, pacing) = match &spec.load {
        LoadModel::Closed { users, think_ms } => {
            let users = *users as u32;
            let slots = Arc::new(Semaphore::new(users as usize));
            for user in 0..users {
                let window = (t0, window_start, window_end);
                let loop_ = user_loop(
                    run.clone(),
                    f.clone(),
                    slots.clone(),
                    u64::from(user),
                    *think_ms,
                    window,
                );
                tokio::spawn(loop_);
            }
            (slots, users, None)
        }
        load => {
            let max = spec
                .max_in_flight
                .unwrap_or_else(|| default_max_in_flight(&spec));
            let max = max
                .min(Semaphore::MAX_PERMITS as u64)
                .min(u64::from(u32::MAX)) as u32;
            let slots = Arc::new(Semaphore::new(max as usize));
            let plan = Pacer {
                schedule: RateSchedule::new(load, warmup),
                t0,
                warmup_secs: warmup.as_secs_f64(),
                end_secs: (warmup + duration).as_secs_f64(),
                window_end,
                drop_after: timeout,
            };
            let (run2, f2, slots2) = (run.clone(), f.clone(), slots.clone());
            let pacer = tokio::task::spawn_blocking(move || plan.run(run2, f2, slots2));
            (slots, max, Some(pacer))
        }
    };

    tokio::time::sleep_until(window_end.into()).await;
    let (intended, dropped) = match pacing {
        Some(pacer) => pacer.await.unwrap_or_default(),
        None => (0, 0),
    };
    // Every slot back means every iteration is over; in-flight ones get the request timeout.
    let drained = tokio::time::timeout(timeout, slots.acquire_many(total_slots))
        .await
        .is_ok();
    if !drained {
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(CANCEL_WAIT, slots.acquire_many(total_slots)).await;
    }
    slots.close();
    ticker.abort();
    run.recorder.summarise_seconds(None);

    let totals = run.recorder.totals();
    let measured_secs = duration.as_secs_f64();
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
            intended,
            late: totals.late,
            dropped,
            lag: LatencySummary::from_histogram(&totals.lag),
            lag_histogram: format::encode_histogram(&totals.lag),
        },
    };
    let invalid = invalid_reason(
        &schedule,
        totals.late_waiting,
        iterations.count,
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
        timeseries: run.recorder.timeseries(),
    }
}

fn invalid_reason(
    schedule: &Schedule,
    late_waiting: u64,
    started: u64,
    max_in_flight: u32,
) -> Option<String> {
    if started == 0 {
        return Some("no iteration started in the measured window".into());
    }
    let bad = schedule.late + schedule.dropped;
    if schedule.intended == 0 || (bad as f64) <= INVALID_FRACTION * schedule.intended as f64 {
        return None;
    }
    let mut causes = Vec::new();
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
async fn tick_seconds(run: Arc<Run>) {
    let recorder = &run.recorder;
    for k in 0..recorder.seconds() {
        // The margin lets iterations that ended just before the boundary record themselves.
        let at = recorder.window_start()
            + Duration::from_secs(u64::from(k) + 1)
            + Duration::from_millis(200);
        tokio::time::sleep_until(at.into()).await;
        recorder.summarise_seconds(Some(k));
    }
}

/// Runs one iteration and records it (when measured). `intended`: the start the schedule called for
/// (the actual start in the closed model).
async fn iteration<F, Fut>(
    run: Arc<Run>,
    f: Arc<F>,
    ctx: Ctx,
    intended: Option<Instant>,
    waited: bool,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let start = Instant::now();
    let measured = ctx.measured();
    let outcome = match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
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
            let mut stop = run.stop.clone();
            tokio::select! {
                biased;
                r = guarded => r,
                _ = stop.wait_for(|stopped| *stopped) => Err(Error::new(
                    ErrorKind::Timeout,
                    "still running when the measured window and its grace period were over",
                )),
            }
        }
    };
    if !measured {
        return;
    }
    let end = Instant::now();
    if let Some(intended) = intended {
        let lag = start.saturating_duration_since(intended);
        run.recorder.lag(lag, waited);
    }
    let intended = intended.unwrap_or(start);
    run.recorder
        .iteration(end - intended, end - start, end, outcome.as_ref().err());
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

async fn user_loop<F, Fut>(
    run: Arc<Run>,
    f: Arc<F>,
    slots: Arc<Semaphore>,
    user: u64,
    think_ms: u64,
    (t0, window_start, window_end): (Instant, Instant, Instant),
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    let state = new_state();
    let think = Duration::from_millis(think_ms);
    tokio::time::sleep_until(t0.into()).await;
    loop {
        let now = Instant::now();
        if now >= window_end {
            break;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let index = run.next_iteration.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx::new(run.clone(), index, user, now >= window_start, state.clone());
        iteration(run.clone(), f.clone(), ctx, None, false).await;
        drop(permit);
        if !think.is_zero() {
            let wake = (Instant::now() + think).min(window_end);
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// The open models' pacer: owns the schedule, runs on a blocking thread.
struct Pacer {
    schedule: RateSchedule,
    t0: Instant,
    warmup_secs: f64,
    end_secs: f64,
    window_end: Instant,
    drop_after: Duration,
}

impl Pacer {
    /// Returns (starts intended in the measured window, of which dropped).
    fn run<F, Fut>(mut self, run: Arc<Run>, f: Arc<F>, slots: Arc<Semaphore>) -> (u64, u64)
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::current();
        let (mut intended, mut dropped) = (0u64, 0u64);
        for i in 0u64.. {
            let Some(offset) = self.schedule.offset(i) else {
                break;
            };
            if offset >= self.end_secs {
                break;
            }
            let at = self.t0 + Duration::from_secs_f64(offset);
            let measured = offset >= self.warmup_secs;
            intended += u64::from(measured);
            let now = Instant::now();
            if at > now {
                // The OS timer: precise to tens of microseconds, and no core spent spinning.
                std::thread::sleep(at - now);
            }
            if Instant::now() >= self.window_end {
                // Behind schedule when the window closed: what is left never starts.
                dropped += u64::from(measured);
                continue;
            }
            let (permit, waited) = match slots.clone().try_acquire_owned() {
                Ok(p) => (Some(p), false),
                Err(TryAcquireError::Closed) => break,
                Err(TryAcquireError::NoPermits) => (self.wait_for_slot(&handle, &slots, at), true),
            };
            let Some(permit) = permit else {
                dropped += u64::from(measured);
                continue;
            };
            let ctx = Ctx::new(run.clone(), i, i, measured, new_state());
            handle.spawn(start(run.clone(), f.clone(), ctx, at, waited, permit));
        }
        (intended, dropped)
    }

    fn wait_for_slot(
        &self,
        handle: &tokio::runtime::Handle,
        slots: &Arc<Semaphore>,
        at: Instant,
    ) -> Option<OwnedSemaphorePermit> {
        let deadline = (at + self.drop_after).min(self.window_end);
        if Instant::now() >= deadline {
            return None;
        }
        handle
            .block_on(tokio::time::timeout_at(
                deadline.into(),
                slots.clone().acquire_owned(),
            ))
            .ok()
            .and_then(|r| r.ok())
    }
}

async fn start<F, Fut>(
    run: Arc<Run>,
    f: Arc<F>,
    ctx: Ctx,
    at: Instant,
    waited: bool,
    permit: OwnedSemaphorePermit,
) where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send + 'static,
{
    iteration(run, f, ctx, Some(at), waited).await;
    drop(permit);
}

/// When each iteration of an open model is due: a piecewise-linear rate over time, integrated.
#[derive(Debug)]
pub(crate) struct RateSchedule {
    segments: Vec<Segment>,
    /// The segment the last lookup ended in (lookups only move forward).
    current: usize,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Start time (seconds since t0), length (infinite for the last one) and rates at both ends.
    start: f64,
    len: f64,
    from: f64,
    to: f64,
    /// Iterations due before this segment.
    before: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        if self.len.is_infinite() {
            if self.to > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        } else {
            (self.from + self.to) / 2.0 * self.len
        }
    }

    /// The time into the segment by which `n` iterations are due: solves
    /// `from·t + (to − from)·t²/(2·len) = n` in the form that stays accurate when the slope is ~0.
    fn time_of(&self, n: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        let slope = if self.len.is_infinite() {
            0.0
        } else {
            (self.to - self.from) / self.len
        };
        let disc = (self.from * self.from + 2.0 * slope * n).max(0.0);
        let denom = self.from + disc.sqrt();
        if denom > 0.0 {
            2.0 * n / denom
        } else {
            0.0
        }
    }
}

impl RateSchedule {
    /// The open model at a constant rate; ramping stages start from rate 0 when the measured window
    /// starts, after a warmup at the first stage's target rate (a ramp that starts at 0 would warm
    /// nothing up).
    pub(crate) fn new(load: &LoadModel, warmup: Duration) -> Self {
        let mut segments = Vec::new();
        let mut t = 0.0;
        let mut before = 0.0;
        let mut push = |len: f64, from: f64, to: f64| {
            let s = Segment {
                start: t,
                len,
                from,
                to,
                before,
            };
            before += s.count();
            t += len;
            segments.push(s);
        };
        match load {
            LoadModel::Open { rate } => push(f64::INFINITY, *rate, *rate),
            LoadModel::Ramping { stages } => {
                let warm = warmup.as_secs_f64();
                if warm > 0.0 {
                    let first = stages.first().map_or(0.0, |s| s.target_rate);
                    push(warm, first, first);
                }
                let mut rate = 0.0;
                for stage in stages {
                    push(stage.duration_ms as f64 / 1000.0, rate, stage.target_rate);
                    rate = stage.target_rate;
                }
                // After the last stage the rate holds (the window may be longer than the stages).
                push(f64::INFINITY, rate, rate);
            }
            LoadModel::Closed { .. } => push(f64::INFINITY, 0.0, 0.0),
        }
        RateSchedule {
            segments,
            current: 0,
        }
    }

    /// Seconds after t0 at which iteration `i` is due; None when no more are.
    pub(crate) fn offset(&mut self, i: u64) -> Option<f64> {
        let n = i as f64;
        while self.current < self.segments.len() {
            let s = self.segments[self.current];
            if n < s.before + s.count() {
                return Some(s.start + s.time_of(n - s.before));
            }
            self.current += 1;
        }
        None
    }
}

pub(crate) const WORKER_THREAD: &str = "perfgate-worker";

/// Panics in scenarios are counted and their messages kept in the results; printing thousands of
/// them from the generator's threads would bury everything else, so only the first is printed.
fn quiet_worker_panics() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Once;
    static INSTALL: Once = Once::new();
    static PRINTED: AtomicBool = AtomicBool::new(false);
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current().name() == Some(WORKER_THREAD);
            if !ours || !PRINTED.swap(true, Ordering::Relaxed) {
                previous(info);
                if ours {
                    eprintln!("perfgate: further panics in this scenario are counted, not printed");
                }
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Stage;

    fn offsets(load: &LoadModel, warmup_ms: u64, until: f64) -> Vec<f64> {
        let mut s = RateSchedule::new(load, Duration::from_millis(warmup_ms));
        (0..)
            .map_while(|i| s.offset(i).filter(|&o| o < until))
            .collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let o = offsets(&LoadModel::Open { rate: 100.0 }, 0, 1.0);
        assert_eq!(o.len(), 100);
        assert!((o[1] - 0.01).abs() < 1e-9 && (o[99] - 0.99).abs() < 1e-9);
    }

    #[test]
    fn ramp_integrates_the_rate() {
        // 0 → 100/s over 2 s is 100 iterations, then 100/s flat.
        let load = LoadModel::Ramping {
            stages: vec![Stage {
                duration_ms: 2000,
                target_rate: 100.0,
            }],
        };
        let o = offsets(&load, 0, 2.0);
        assert!((99..=101).contains(&o.len()), "{}", o.len());
        // Half the iterations by t = √2 s (the integral is quadratic), and gaps shrink.
        assert!((o[50] - 2f64.sqrt()).abs() < 0.02, "{}", o[50]);
        assert!(o[10] - o[9] > o[90] - o[89]);
        let o = offsets(&load, 0, 3.0);
        assert!((199..=201).contains(&o.len()), "{}", o.len());
        // With a warmup at the first target: 50 in 0.5 s, then the ramp from 0.
        let o = offsets(&load, 500, 0.5);
        assert_eq!(o.len(), 50);
    }

    #[test]
    fn ramp_down_to_zero_ends() {
        let load = LoadModel::Ramping {
            stages: vec![
                Stage {
                    duration_ms: 1000,
                    target_rate: 10.0,
                },
                Stage {
                    duration_ms: 1000,
                    target_rate: 0.0,
                },
            ],
        };
        let o = offsets(&load, 0, 100.0);
        assert!((9..=11).contains(&o.len()), "{}", o.len());
        assert!(o.iter().all(|&t| t <= 2.0));
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
        };
        assert_eq!(default_max_in_flight(&spec), 1000);
        spec.load = LoadModel::Open { rate: 5.0 };
        assert_eq!(default_max_in_flight(&spec), MIN_DEFAULT_IN_FLIGHT);
        spec.load = LoadModel::Open { rate: 100_000.0 };
        assert_eq!(default_max_in_flight(&spec), MAX_DEFAULT_IN_FLIGHT);
    }
}
