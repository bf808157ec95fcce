//! Where measurements go: one shard per worker thread, merged at the end.
//!
//! A task records into the shard of the thread it is running on (found through a thread-local),
//! so the per-request path takes only an uncontended lock: the only other party is the once-a-second
//! time-series ticker and the final merge. HDR histograms throughout, never sample vectors, so memory
//! stays flat in the length of the run (the time series keeps a small histogram for the few seconds
//! not yet summarised, then only the summary).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{lock, Error, ErrorKind};
use crate::format::{
    self, ErrorCounts, Histogram, IntervalSample, SecondSample, Stats, MAX_ERROR_SAMPLES,
};

/// A start more than this behind its intended time is counted as late. Big enough to tolerate the
/// OS scheduling noise of a shared 2-core CI runner (5 ms flagged 1.5% of starts there under a
/// parallel build, making healthy runs invalid), small against the tens-of-milliseconds SLOs a gate
/// usually checks; the lag is part of every corrected latency anyway, so nothing is hidden.
pub(crate) const LATE_THRESHOLD: Duration = Duration::from_millis(10);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn count_error(errors: &mut ErrorCounts, kind: ErrorKind) {
    let slot = match kind {
        ErrorKind::Connect => &mut errors.connect,
        ErrorKind::Timeout => &mut errors.timeout,
        ErrorKind::Status => &mut errors.status,
        ErrorKind::Check => &mut errors.check,
        ErrorKind::Panic => &mut errors.panic,
        ErrorKind::Other => &mut errors.other,
    };
    *slot += 1;
}

/// One series: the iteration, or one named request / `ctx.time` step.
pub(crate) struct Series {
    count: u64,
    errors: ErrorCounts,
    corrected: Histogram,
    uncorrected: Histogram,
    samples: Vec<String>,
}

impl Series {
    fn new() -> Self {
        Series {
            count: 0,
            errors: ErrorCounts::default(),
            corrected: format::new_histogram(),
            uncorrected: format::new_histogram(),
            samples: Vec::new(),
        }
    }

    fn record(&mut self, corrected: Duration, uncorrected: Duration, error: Option<&Error>) {
        self.count += 1;
        self.corrected.saturating_record(micros(corrected));
        self.uncorrected.saturating_record(micros(uncorrected));
        if let Some(e) = error {
            self.error(e);
        }
    }

    fn error(&mut self, e: &Error) {
        count_error(&mut self.errors, e.kind());
        if self.samples.len() < MAX_ERROR_SAMPLES {
            self.samples.push(e.to_string());
        }
    }

    fn merge(&mut self, other: Series) {
        self.count += other.count;
        self.errors.add(&other.errors);
        // Both histograms auto-resize, so adding cannot fail on range.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        for s in other.samples {
            if self.samples.len() < MAX_ERROR_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    pub(crate) fn stats(&self, measured_secs: f64) -> Stats {
        Stats::of(
            self.count,
            self.errors.clone(),
            measured_secs,
            [&self.corrected, &self.uncorrected],
            self.samples.clone(),
        )
    }
}

/// One second of the measured window, before it is summarised.
struct Second {
    iterations: u64,
    errors: u64,
    latency: Histogram,
}

impl Second {
    fn new() -> Self {
        // Two significant digits are plenty for a chart and keep this histogram ~20 KB.
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds");
        h.auto(true);
        Second {
            iterations: 0,
            errors: 0,
            latency: h,
        }
    }

    fn merge(&mut self, other: &Second) {
        self.iterations += other.iterations;
        self.errors += other.errors;
        let _ = self.latency.add(&other.latency);
    }
}

/// What one worker thread recorded.
pub(crate) struct Shard {
    iterations: Series,
    requests: HashMap<String, Series>,
    lag: Histogram,
    late: u64,
    late_waiting: u64,
    seconds: BTreeMap<u32, Second>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            iterations: Series::new(),
            requests: HashMap::new(),
            lag: format::new_histogram(),
            late: 0,
            late_waiting: 0,
            seconds: BTreeMap::new(),
        }
    }

    fn request(&mut self, name: &str) -> &mut Series {
        // Look up by &str first so the name is allocated once per shard, not per request.
        if !self.requests.contains_key(name) {
            self.requests.insert(name.to_owned(), Series::new());
        }
        self.requests.get_mut(name).expect("inserted above")
    }
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The shard of this thread for the run with the given id (runs in one process, e.g. tests in
    /// parallel, each have their own).
    static SHARD: RefCell<Option<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(None) };
}

/// The merged measurements of a run.
pub(crate) struct Totals {
    pub iterations: Series,
    pub requests: BTreeMap<String, Series>,
    pub lag: Histogram,
    pub late: u64,
    pub late_waiting: u64,
}

/// The recording side of one run.
pub(crate) struct Recorder {
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    window_start: Instant,
    seconds: u32,
    timeline: Mutex<Timeline>,
    /// Iterations that were still running when the run gave up on them, recorded or not (one started
    /// in the warm-up is not): what explains a window with no finished iteration.
    stuck: std::sync::atomic::AtomicU64,
}

impl Recorder {
    /// `seconds`: length of the time series (the measured window, rounded up).
    pub(crate) fn new(window_start: Instant, seconds: u32) -> Self {
        Recorder {
            stuck: std::sync::atomic::AtomicU64::new(0),
            id: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            window_start,
            seconds: seconds.max(1),
            timeline: Mutex::new(Timeline {
                samples: (0..seconds.max(1))
                    .map(|t| {
                        (
                            SecondSample {
                                t,
                                ..Default::default()
                            },
                            false,
                        )
                    })
                    .collect(),
                intervals: Intervals::new(seconds.max(1)),
            }),
        }
    }

    fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        SHARD.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.as_ref().map(|(id, _)| *id) != Some(self.id) {
                let shard = Arc::new(Mutex::new(Shard::new()));
                lock(&self.shards).push(shard.clone());
                *slot = Some((self.id, shard));
            }
            let (_, shard) = slot.as_ref().expect("set above");
            let mut guard = lock(shard);
            f(&mut guard)
        })
    }

    pub(crate) fn iteration(
        &self,
        corrected: Duration,
        uncorrected: Duration,
        end: Instant,
        error: Option<&Error>,
    ) {
        let second = (end.saturating_duration_since(self.window_start).as_secs() as u32)
            .min(self.seconds - 1);
        self.with_shard(|s| {
            s.iterations.record(corrected, uncorrected, error);
            let sec = s.seconds.entry(second).or_insert_with(Second::new);
            sec.iterations += 1;
            sec.errors += u64::from(error.is_some());
            sec.latency.saturating_record(micros(corrected));
        });
    }

    pub(crate) fn request(&self, name: &str, elapsed: Duration, error: Option<&Error>) {
        self.with_shard(|s| s.request(name).record(elapsed, elapsed, error));
    }

    /// A request already counted as sent turned out to be a failure (`expect_status`).
    pub(crate) fn request_failed(&self, name: &str, error: &Error) {
        self.with_shard(|s| s.request(name).error(error));
    }

    /// How late an open-model start was; `waited`: it had to wait for a free slot.
    pub(crate) fn lag(&self, lag: Duration, waited: bool) {
        self.with_shard(|s| {
            s.lag.saturating_record(micros(lag));
            if lag > LATE_THRESHOLD {
                s.late += 1;
                s.late_waiting += u64::from(waited);
            }
        });
    }

    pub(crate) fn window_start(&self) -> Instant {
        self.window_start
    }

    pub(crate) fn seconds(&self) -> u32 {
        self.seconds
    }

    /// Summarises every second up to and including `upto` (all of them with None) and frees their
    /// histograms. Called by the ticker shortly after each second ends, and once at the end.
    pub(crate) fn summarise_seconds(&self, upto: Option<u32>) {
        let mut pending: BTreeMap<u32, Second> = BTreeMap::new();
        let shards = lock(&self.shards).clone();
        for shard in shards {
            let taken = {
                let mut shard = lock(&shard);
                match upto {
                    Some(k) => {
                        let later = shard.seconds.split_off(&(k + 1));
                        std::mem::replace(&mut shard.seconds, later)
                    }
                    None => std::mem::take(&mut shard.seconds),
                }
            };
            for (t, sec) in taken {
                pending.entry(t).or_insert_with(Second::new).merge(&sec);
            }
        }
        let mut guard = lock(&self.timeline);
        let timeline = &mut *guard;
        for (t, sec) in pending {
            let Some((sample, summarised)) = timeline.samples.get_mut(t as usize) else {
                continue;
            };
            sample.iterations += sec.iterations;
            sample.errors += sec.errors;
            timeline.intervals.add(t, &sec);
            // A straggler recorded after its second was summarised adds to the counts only.
            if !*summarised && !sec.latency.is_empty() {
                sample.p50_ms = sec.latency.value_at_quantile(0.50) as f64 / 1000.0;
                sample.p99_ms = sec.latency.value_at_quantile(0.99) as f64 / 1000.0;
            }
            *summarised = true;
        }
        if let Some(k) = upto {
            for (_, summarised) in timeline.samples.iter_mut().take(k as usize + 1) {
                *summarised = true;
            }
        }
        timeline.intervals.close(upto);
    }

    /// The measured window's intervals (see [`format::interval_secs`]), once summarised.
    pub(crate) fn intervals(&self) -> Vec<IntervalSample> {
        lock(&self.timeline)
            .intervals
            .samples
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Second `k` of the measured window as summarised so far.
    pub(crate) fn second(&self, k: u32) -> Option<SecondSample> {
        lock(&self.timeline)
            .samples
            .get(k as usize)
            .map(|(s, _)| s.clone())
    }

    pub(crate) fn timeseries(&self) -> Vec<SecondSample> {
        lock(&self.timeline)
            .samples
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Merges every shard. Tasks still running (stuck after the end) can record afterwards; that is
    /// lost, by design.
    /// An iteration the run gave up on (still running at the end of the window and its grace).
    pub(crate) fn gave_up(&self) {
        self.stuck
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn gave_up_count(&self) -> u64 {
        self.stuck.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals {
            iterations: Series::new(),
            requests: BTreeMap::new(),
            lag: format::new_histogram(),
            late: 0,
            late_waiting: 0,
        };
        let shards = lock(&self.shards).clone();
        for shard in shards {
            let shard = std::mem::replace(&mut *lock(&shard), Shard::new());
            totals.iterations.merge(shard.iterations);
            for (name, series) in shard.requests {
                totals
                    .requests
                    .entry(name)
                    .or_insert_with(Series::new)
                    .merge(series);
            }
            let _ = totals.lag.add(&shard.lag);
            totals.late += shard.late;
            totals.late_waiting += shard.late_waiting;
        }
        totals
    }
}

struct Timeline {
    /// Each second's sample and whether its percentiles are final.
    samples: Vec<(SecondSample, bool)>,
    intervals: Intervals,
}

/// The measured window cut into equal intervals of whole seconds, each with its own percentiles:
/// what a latency drift check fits over an hour without a histogram per second. An interval's
/// histogram is the merge of its seconds' and lives only until its last second is summarised.
struct Intervals {
    secs: u32,
    samples: Vec<(IntervalSample, Slot)>,
}

/// An interval's histogram: made when its first second arrives and freed when it closes, so that a
/// long run holds one or two (the memory of a closed one is reused by the next), not one per interval.
enum Slot {
    Pending,
    Open(Histogram),
    Closed,
}

impl Intervals {
    fn new(seconds: u32) -> Self {
        let secs = format::interval_secs(seconds);
        let samples = (0..seconds.div_ceil(secs))
            .map(|i| {
                let t = i * secs;
                let sample = IntervalSample {
                    t,
                    secs: secs.min(seconds - t),
                    ..Default::default()
                };
                (sample, Slot::Pending)
            })
            .collect();
        Intervals { secs, samples }
    }

    /// Adds second `t`, just merged from the shards.
    fn add(&mut self, t: u32, sec: &Second) {
        let Some((sample, slot)) = self.samples.get_mut((t / self.secs) as usize) else {
            return;
        };
        sample.iterations += sec.iterations;
        sample.errors += sec.errors;
        match slot {
            Slot::Pending => {
                let mut h = Second::new().latency;
                let _ = h.add(&sec.latency);
                *slot = Slot::Open(h);
            }
            Slot::Open(h) => {
                let _ = h.add(&sec.latency);
            }
            // A straggler arriving after its interval closed adds to the counts only.
            Slot::Closed => {}
        }
    }

    /// Computes the percentiles of the intervals whose last second is at most `upto` (all with
    /// None), and frees their histograms.
    fn close(&mut self, upto: Option<u32>) {
        for (sample, slot) in &mut self.samples {
            let last = sample.t + sample.secs.max(1) - 1;
            if upto.is_some_and(|k| last > k) {
                break;
            }
            if let Slot::Open(h) = std::mem::replace(slot, Slot::Closed) {
                if !h.is_empty() {
                    sample.p50_ms = h.value_at_quantile(0.50) as f64 / 1000.0;
                    sample.p99_ms = h.value_at_quantile(0.99) as f64 / 1000.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn seconds_are_summarised_once_and_stragglers_only_add_counts() {
        let start = Instant::now();
        let rec = Recorder::new(start, 3);
        let check = Error::check("bad");
        rec.iteration(10 * MS, 5 * MS, start + 100 * MS, None);
        rec.iteration(30 * MS, 5 * MS, start + 900 * MS, Some(&check));
        rec.iteration(20 * MS, 20 * MS, start + 1500 * MS, None);
        rec.summarise_seconds(Some(0));
        rec.iteration(900 * MS, 900 * MS, start + 999 * MS, None);
        // Past the window: counted in the last second.
        rec.iteration(7 * MS, 7 * MS, start + 10_000 * MS, None);
        rec.summarise_seconds(None);
        let ts = rec.timeseries();
        assert_eq!(ts.len(), 3);
        assert_eq!((ts[0].t, ts[0].iterations, ts[0].errors), (0, 3, 1));
        assert!((ts[0].p99_ms - 30.0).abs() < 0.5, "{}", ts[0].p99_ms);
        assert!((ts[1].p50_ms - 20.0).abs() < 0.5 && ts[1].iterations == 1);
        assert_eq!(ts[2].iterations, 1);

        let intervals = rec.intervals();
        assert_eq!(
            intervals.len(),
            3,
            "one-second intervals for a short window"
        );
        assert_eq!((intervals[0].iterations, intervals[0].errors), (3, 1));
        assert!((intervals[0].p99_ms - 30.0).abs() < 0.5, "{intervals:?}");

        let totals = rec.totals();
        let stats = totals.iterations.stats(3.0);
        assert_eq!((stats.count, stats.errors.check), (5, 1));
        assert_eq!(stats.error_samples, ["check: bad"]);
        assert!((stats.latency.max_ms - 900.0).abs() < 1.0);
        assert!(stats.latency.mean_ms > stats.latency_uncorrected.mean_ms);
    }

    #[test]
    fn long_windows_are_cut_into_about_sixty_intervals_with_their_own_percentiles() {
        let start = Instant::now();
        // 150 s: 3-second intervals, the last one of 3 s too (150 = 50 × 3).
        let rec = Recorder::new(start, 150);
        for s in 0..150u64 {
            // Latency creeps up by 1 ms per 3 s interval.
            let ms = 10 + s / 3;
            rec.iteration(
                Duration::from_millis(ms),
                Duration::from_millis(ms),
                start + Duration::from_millis(s * 1000 + 500),
                None,
            );
        }
        rec.summarise_seconds(Some(5));
        // Only the intervals that have begun hold a histogram, and only until they close.
        let open = |rec: &Recorder| {
            lock(&rec.timeline)
                .intervals
                .samples
                .iter()
                .map(|(_, s)| match s {
                    Slot::Pending => 'p',
                    Slot::Open(_) => 'o',
                    Slot::Closed => 'c',
                })
                .collect::<String>()
        };
        assert_eq!(&open(&rec)[..4], "ccpp");
        rec.summarise_seconds(Some(6));
        assert_eq!(&open(&rec)[..4], "ccop");
        let early = rec.intervals();
        assert!(early[0].p99_ms > 0.0 && early[1].p99_ms > 0.0, "{early:?}");
        assert_eq!(
            early[2].p99_ms, 0.0,
            "interval 2 (seconds 6-8) is still open"
        );
        rec.summarise_seconds(None);
        let iv = rec.intervals();
        assert_eq!(iv.len(), 50);
        assert!(
            iv.iter().all(|i| i.secs == 3 && i.iterations == 3),
            "{iv:?}"
        );
        assert_eq!(iv[10].t, 30);
        assert!((iv[10].p99_ms - 20.0).abs() < 0.5, "{:?}", iv[10]);
        assert!((iv[49].p99_ms - 59.0).abs() < 1.0, "{:?}", iv[49]);
        assert_eq!(format::interval_secs(3600), 60);
        assert_eq!(format::interval_secs(61), 2);
        assert_eq!(format::interval_secs(1), 1);
    }

    #[test]
    fn error_samples_are_capped_and_status_failures_counted_on_the_request() {
        let rec = Recorder::new(Instant::now(), 1);
        for i in 0..10 {
            rec.request(
                "pay",
                MS,
                Some(&Error::new(ErrorKind::Connect, format!("refused {i}"))),
            );
        }
        rec.request("pay", MS, None);
        rec.request_failed(
            "pay",
            &Error::new(ErrorKind::Status, "expected 200, got 500"),
        );
        rec.lag(12 * MS, true);
        rec.lag(12 * MS, false);
        rec.lag(MS, true);
        let totals = rec.totals();
        let pay = totals.requests["pay"].stats(1.0);
        assert_eq!(
            (pay.count, pay.errors.connect, pay.errors.status),
            (11, 10, 1)
        );
        assert_eq!(pay.error_samples.len(), MAX_ERROR_SAMPLES);
        assert_eq!(
            (totals.late, totals.late_waiting, totals.lag.len()),
            (2, 1, 3)
        );
    }
}
