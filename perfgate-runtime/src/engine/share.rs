//! A shard's part of a scenario (`--shard i/n`): which starts or users it owns, what its threads and
//! slots scale with, and when its warm-up starts (a wall-clock time common to all shards).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::format::{self, LoadModel, ScenarioSpec, ShardId, MAX_START_AHEAD_SECS};
use crate::record::LATE_THRESHOLD;

/// Which share of a scenario's load this process runs, and when: the whole load from now, or one
/// shard's from a start time common to all shards.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Share {
    pub shard: Option<ShardId>,
    /// Unix milliseconds of the start of the warm-up.
    pub start_at_unix_ms: Option<u64>,
}

/// The part of `spec`'s load that one shard runs, for what scales with it (worker threads, slots):
/// 1/n of the rate, its own users, ⌈max_in_flight / n⌉ of the declared bound or of
/// `default_in_flight`, the whole load's default. The schedule itself stays the whole one, of which
/// the shard takes every n-th start.
pub(super) fn shard_load(
    spec: &ScenarioSpec,
    shard: ShardId,
    default_in_flight: u64,
) -> Result<ScenarioSpec, String> {
    let n = f64::from(shard.count);
    let load = match &spec.load {
        LoadModel::Open { rate } => LoadModel::Open { rate: rate / n },
        LoadModel::Ramping { stages } => LoadModel::Ramping {
            stages: stages
                .iter()
                .map(|s| format::Stage {
                    target_rate: s.target_rate / n,
                    ..s.clone()
                })
                .collect(),
        },
        LoadModel::Closed { users, think_ms } => {
            let mine = shard.share_of(*users);
            if mine == 0 {
                return Err(format!(
                    "users = {users} cannot be split over {} shards: each shard needs at least one user",
                    shard.count
                ));
            }
            LoadModel::Closed {
                users: mine,
                think_ms: *think_ms,
            }
        }
    };
    // The bound is the whole load's, declared or default: n shards together hold as many
    // iterations in flight as one generator would (each shard's own default would be up to n times
    // that, and a stalled service would be flooded with connections).
    let whole = spec.max_in_flight.unwrap_or(default_in_flight);
    Ok(ScenarioSpec {
        load,
        max_in_flight: Some(whole.div_ceil(u64::from(shard.count))),
        ..spec.clone()
    })
}

/// The first start (or user) worker `k` of `workers` owns within a shard, and the stride between
/// its starts: the shard owns every `count`-th item of the whole sequence from its own first, and
/// its workers split those in turn.
pub(super) fn first_and_stride(shard: ShardId, k: u64, workers: u64) -> (u64, u64) {
    let count = u64::from(shard.count);
    (shard.first() + count * k, count * workers)
}

/// The instant the warm-up starts: in 10 ms (threads spin up meanwhile), or at the common start
/// time, which may lie at most `MAX_START_AHEAD_SECS` ahead (waited for, and said so) or have
/// passed by no more than the warm-up (the warm-up is then shorter: the measured window stays the
/// one every shard shares).
pub(super) fn start_instant(share: Share, warmup: Duration) -> Result<Instant, String> {
    let Some(ms) = share.start_at_unix_ms else {
        return Ok(Instant::now() + Duration::from_millis(10));
    };
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let who = share
        .shard
        .map_or("the load".to_string(), |s| format!("shard {s}"));
    match at.duration_since(now_wall) {
        Ok(wait) if wait > Duration::from_secs(MAX_START_AHEAD_SECS) => Err(format!(
            "the start time (unix {ms} ms) is {:.0} s ahead, more than the {MAX_START_AHEAD_SECS} s allowed; \
             is a clock or the date wrong?",
            wait.as_secs_f64()
        )),
        Ok(wait) => {
            eprintln!(
                "perfgate: {who} waits {:.3} s for the common start (unix {ms} ms) before its warm-up",
                wait.as_secs_f64()
            );
            Ok(now + wait)
        }
        Err(e) => {
            let late = e.duration();
            if late > warmup + LATE_THRESHOLD {
                return Err(format!(
                    "the common start (unix {ms} ms) passed {:.3} s ago, more than the {:.3} s warm-up: \
                     {who} would miss part of the measured window; start the shards earlier or \
                     choose a later start time",
                    late.as_secs_f64(),
                    warmup.as_secs_f64()
                ));
            }
            if late > LATE_THRESHOLD {
                eprintln!(
                    "perfgate: {who} began {:.3} s after the common start (unix {ms} ms): its warm-up is that much shorter",
                    late.as_secs_f64()
                );
            }
            now.checked_sub(late)
                .ok_or_else(|| "the common start lies before this machine's clock began".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pacing::RateSchedule;

    /// Every start (or user) of the whole sequence, as the workers of every shard own them.
    fn owners(count: u32, workers: u64, total: u64) -> Vec<Vec<(u32, u64)>> {
        let mut owned = vec![Vec::new(); total as usize];
        for index in 1..=count {
            let shard = ShardId { index, count };
            for k in 0..workers {
                let (first, stride) = first_and_stride(shard, k, workers);
                for i in (first..total).step_by(stride as usize) {
                    owned[i as usize].push((index, k));
                }
            }
        }
        owned
    }

    #[test]
    fn shards_and_their_workers_own_every_start_exactly_once() {
        for (count, workers) in [(1, 1), (3, 1), (3, 2), (4, 3), (7, 4)] {
            let owned = owners(count, workers, 1000);
            assert!(
                owned.iter().all(|o| o.len() == 1),
                "{count} shards of {workers} workers"
            );
            // Shard i owns exactly the starts i−1, i−1+n, …
            for (i, o) in owned.iter().enumerate() {
                assert_eq!(u64::from(o[0].0 - 1), i as u64 % u64::from(count));
            }
        }
        // Closed model: 10 users over 3 shards are 4, 3 and 3.
        let shares: Vec<u64> = (1..=3)
            .map(|index| ShardId { index, count: 3 }.share_of(10))
            .collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(ShardId { index: 3, count: 3 }.share_of(2), 0);
    }

    #[test]
    fn merged_shard_starts_are_the_unsharded_schedule() {
        // 3 shards at 6,000/s in all: each one's starts are 1/2000 s apart, shifted by a third of
        // that per shard, so together they are 1/6000 s apart like one generator's.
        let load = LoadModel::Open { rate: 6000.0 };
        let mut merged = Vec::new();
        for index in 1..=3 {
            let shard = ShardId { index, count: 3 };
            let (first, stride) = first_and_stride(shard, 0, 1);
            let mut schedule = RateSchedule::new(&load, Duration::ZERO);
            let mine: Vec<f64> = (0..2000)
                .map(|j| schedule.offset(first + j * stride).unwrap())
                .collect();
            assert!(mine
                .windows(2)
                .all(|w| (w[1] - w[0] - 1.0 / 2000.0).abs() < 1e-9));
            assert!((mine[0] - f64::from(index - 1) / 6000.0).abs() < 1e-12);
            merged.extend(mine);
        }
        merged.sort_by(f64::total_cmp);
        assert_eq!(merged.len(), 6000);
        assert!(merged
            .windows(2)
            .all(|w| (w[1] - w[0] - 1.0 / 6000.0).abs() < 1e-9));
    }

    #[test]
    fn a_shard_scales_threads_and_slots_to_its_share() {
        let spec = ScenarioSpec {
            name: "x".into(),
            module_path: "m".into(),
            file: "f".into(),
            line: 1,
            load: LoadModel::Open { rate: 6000.0 },
            duration_ms: 1000,
            warmup_ms: 0,
            timeout_ms: 10_000,
            max_in_flight: Some(100),
            slos: vec![],
            regression_pct: 10.0,
            service: None,
            data: vec![],
            cost_regression_pct: 1.0,
            tiers: Default::default(),
            trends: vec![],
        };
        let third = ShardId { index: 2, count: 3 };
        let mine = shard_load(&spec, third, 4096).unwrap();
        assert_eq!(mine.load, LoadModel::Open { rate: 2000.0 });
        assert_eq!(mine.max_in_flight, Some(34));
        // The default bound too is the whole load's, split: 4,096 at 6,000/s for 10 s.
        let default = ScenarioSpec {
            max_in_flight: None,
            ..spec.clone()
        };
        assert_eq!(
            shard_load(&default, third, 4096).unwrap().max_in_flight,
            Some(1366)
        );
        let closed = ScenarioSpec {
            load: LoadModel::Closed {
                users: 2,
                think_ms: 0,
            },
            ..spec
        };
        assert_eq!(
            shard_load(&closed, third, 2).unwrap().load,
            LoadModel::Closed {
                users: 1,
                think_ms: 0
            }
        );
        let e = shard_load(&closed, ShardId { index: 3, count: 3 }, 2).unwrap_err();
        assert!(e.contains("users = 2 cannot be split over 3 shards"), "{e}");
    }

    #[test]
    fn start_times_are_bounded_both_ways() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let at = |ms: u64| Share {
            shard: Some(ShardId { index: 1, count: 2 }),
            start_at_unix_ms: Some(ms),
        };
        let warmup = Duration::from_secs(1);
        // Ahead: waited for.
        let t = start_instant(at(now_ms + 2000), warmup).unwrap();
        assert!(t > Instant::now() + Duration::from_millis(1500));
        // Passed within the warm-up: starts in the past, so the measured window is the common one.
        let t = start_instant(at(now_ms - 500), warmup).unwrap();
        assert!(t < Instant::now() - Duration::from_millis(400));
        // Passed beyond the warm-up, or too far ahead: errors that say so.
        let e = start_instant(at(now_ms - 5000), warmup).unwrap_err();
        assert!(e.contains("passed") && e.contains("shard 1/2"), "{e}");
        let e = start_instant(at(now_ms + (MAX_START_AHEAD_SECS + 60) * 1000), warmup).unwrap_err();
        assert!(e.contains("ahead"), "{e}");
    }
}
