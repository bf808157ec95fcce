//! The open models' timing: when each start is due (the rate schedule, integrated) and a wait until
//! then with sub-millisecond precision (a timerfd on Linux).

use std::time::{Duration, Instant};

use crate::format::LoadModel;

/// The least time between two wake-ups of a pacer. Zero: every start is woken for at its intended
/// time. Measured at 10,000/s on a 2-core VM: 100–200 µs cut the generator's CPU per request by
/// about a quarter (fewer idle/wake cycles, the dominant cost there) but raised the median schedule
/// lag from ~30 µs to 75–140 µs, and with it every corrected latency; precision comes first.
pub(super) const PACING_SLACK: Duration = Duration::ZERO;

/// Below this, the pacer spins rather than sleeps: a wake-up from the kernel costs about as much.
const SPIN: Duration = Duration::from_micros(10);

/// Sleeps until an instant with the precision of a timerfd (Linux), inside a tokio runtime: the
/// runtime keeps serving I/O meanwhile. Elsewhere, or if a timerfd cannot be had, tokio's timer
/// (millisecond grain; the schedule lag records what that costs).
pub(super) struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl PreciseTimer {
    pub(super) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: timerfd_create returns a new descriptor we own, or -1.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            let fd = (raw >= 0)
                .then(|| unsafe { OwnedFd::from_raw_fd(raw) })
                .and_then(|fd| {
                    // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
                    unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(
                            fd,
                            tokio::io::Interest::READABLE,
                        )
                    }
                    .ok()
                });
            PreciseTimer { fd }
        }
        #[cfg(not(target_os = "linux"))]
        PreciseTimer {}
    }

    pub(super) async fn sleep_until(&mut self, at: Instant) {
        // At most a few passes: each one either returns or waits for the timer it armed.
        for _ in 0..4 {
            let now = Instant::now();
            if at <= now {
                return;
            }
            let left = at - now;
            if left <= SPIN {
                let spin_until = Instant::now() + SPIN;
                while Instant::now() < at.min(spin_until) {
                    std::hint::spin_loop();
                }
                return;
            }
            #[cfg(target_os = "linux")]
            if let Some(fd) = &self.fd {
                use std::os::fd::AsRawFd;
                let spec = libc::itimerspec {
                    it_interval: libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    },
                };
                // SAFETY: a valid timerfd and itimerspec; relative time, no old value wanted.
                let armed = unsafe {
                    libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut())
                };
                if armed == 0 {
                    if let Ok(mut ready) = fd.readable().await {
                        // No read(2): arming resets the expiry count, and every expiry is a new
                        // edge for the (edge-triggered) reactor. One system call per start saved.
                        ready.clear_ready();
                        continue;
                    }
                }
                self.fd = None;
            }
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

/// When each iteration of an open model is due: a piecewise-linear rate over time, integrated.
#[derive(Debug)]
pub(super) struct RateSchedule {
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
    pub(super) fn new(load: &LoadModel, warmup: Duration) -> Self {
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
    pub(super) fn offset(&mut self, i: u64) -> Option<f64> {
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
}
