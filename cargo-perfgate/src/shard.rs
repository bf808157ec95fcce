//! Sharded load (`--shard i/n`): when the shards start, the same on every one of them. A common start
//! time comes from `--start-at` or from a barrier directory the shards meet in; from it, each round of
//! each scenario gets a start of its own, computed alike on every shard (so one shard's slow round
//! does not shift the others' windows), and the scenario binary waits for it before its warm-up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use perfgate_runtime::format::ShardId;
use perfgate_runtime::format::MAX_START_AHEAD_SECS;

use crate::error::{Error, Result};
use crate::text::{format_utc, parse_utc};

/// The time between two rounds' windows: the next scenario process starts in it. Lateness beyond it
/// (a round whose iterations ran to their timeout) only shortens the next round's warm-up, up to
/// the warm-up's length; the measured windows stay aligned.
pub const ROUND_GAP: Duration = Duration::from_secs(3);

/// After the last shard reached the barrier: time for every shard to notice (they look every
/// [`BARRIER_POLL`]) and spawn its first scenario, on machines whose clocks may differ a little.
pub const BARRIER_MARGIN: Duration = Duration::from_secs(5);
const BARRIER_POLL: Duration = Duration::from_millis(200);

/// How long a shard waits at the barrier for the others: their builds may take minutes.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `--start-at`: an RFC 3339 time (`2026-11-27T07:15:00Z`) or Unix seconds (`date +%s` + a margin),
/// as Unix milliseconds.
pub fn parse_start_at(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let secs = t.parse::<f64>().ok().filter(|v| {
        v.is_finite() && *v > 0.0 && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    match secs {
        Some(v) => Ok((v * 1000.0).round() as u64),
        None => parse_utc(t).ok_or_else(|| {
            format!(
                "`{s}` is not a start time: write an RFC 3339 time (`{}`, from `date -u -d '+5 min' \
                 +%Y-%m-%dT%H:%M:%SZ`) or Unix seconds (`$(( $(date +%s) + 300 ))`)",
                format_utc(now_ms() / 1000 * 1000 + 300_000)
            )
        }),
    }
}

/// A common start time must lie ahead, by at most [`MAX_START_AHEAD_SECS`]: checked when the command
/// starts, before anything is built.
pub fn check_start_at(start_ms: u64, now_ms: u64) -> Result<()> {
    let at = format_utc(start_ms);
    if start_ms <= now_ms {
        return Err(Error::Shards(format!(
            "--start-at {at} passed {:.1} s ago (the clock says {}): choose a time after every shard has \
             built its scenarios, e.g. a few minutes ahead",
            (now_ms - start_ms) as f64 / 1000.0,
            format_utc(now_ms)
        )));
    }
    if start_ms - now_ms > MAX_START_AHEAD_SECS * 1000 {
        return Err(Error::Shards(format!(
            "--start-at {at} is {:.0} min ahead, more than the {} min allowed (the clock says {}); is the \
             date or the time zone wrong?",
            (start_ms - now_ms) as f64 / 60_000.0,
            MAX_START_AHEAD_SECS / 60,
            format_utc(now_ms)
        )));
    }
    Ok(())
}

/// What a shard runs when: every round of every scenario, in the order of the run, starts a fixed
/// time after the previous one's start (its warm-up and window, then [`ROUND_GAP`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPlan {
    pub shard: ShardId,
    /// Unix milliseconds of the start of each round's warm-up, by scenario id (round 1 first).
    pub starts: BTreeMap<String, Vec<u64>>,
}

impl ShardPlan {
    /// `scenarios`: each scenario's id and the time a round of it takes (warm-up and window), in
    /// the order the run takes them.
    pub fn new(
        shard: ShardId,
        start_ms: u64,
        scenarios: impl IntoIterator<Item = (String, Duration)>,
        rounds: usize,
    ) -> ShardPlan {
        let mut at = start_ms;
        let mut starts = BTreeMap::new();
        for (id, load_time) in scenarios {
            let slot = u64::try_from((load_time + ROUND_GAP).as_millis()).unwrap_or(u64::MAX);
            let mine: Vec<u64> = (0..rounds.max(1))
                .map(|_| {
                    let t = at;
                    at = at.saturating_add(slot);
                    t
                })
                .collect();
            starts.insert(id, mine);
        }
        ShardPlan { shard, starts }
    }

    /// When round `round` (1-based) of scenario `id` starts.
    pub fn start_of(&self, id: &str, round: usize) -> Option<u64> {
        self.starts.get(id)?.get(round.checked_sub(1)?).copied()
    }
}

/// The barrier: this shard says it is ready (`shard-<i>-of-<n>.ready` in `dir`, holding the time),
/// waits until all `n` are, and returns the common start: the last one's ready time plus
/// [`BARRIER_MARGIN`]. Every shard reads the same files, so every shard computes the same time.
/// `interrupted` is polled while waiting; `timeout` bounds the wait.
pub fn meet(
    dir: &Path,
    shard: ShardId,
    timeout: Duration,
    interrupted: impl Fn() -> bool,
) -> Result<u64> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(|e| io("creating the barrier directory", e))?;
    let mine = dir.join(ready_name(shard.index, shard.count));
    if mine.exists() {
        return Err(Error::Shards(format!(
            "{} already exists: shard {shard} was here before (an earlier run, or two shards with one \
             number); give every sharded run a fresh barrier directory, e.g. named after the CI run or \
             the Job",
            mine.display()
        )));
    }
    let ready = now_ms();
    crate::files::write_atomic(&mine, format!("{ready}\n").as_bytes())
        .map_err(|e| io("writing to the barrier directory", e))?;
    let deadline = std::time::Instant::now() + timeout;
    // Bounded by the timeout.
    loop {
        let seen = read_barrier(dir, shard.count)?;
        if let Some(stale) = seen
            .iter()
            .find(|(_, t)| **t + (timeout.as_millis() as u64) < ready)
        {
            return Err(Error::Shards(format!(
                "{} in {} was written at {}, long before this shard: it belongs to an earlier run; give \
                 every sharded run a fresh barrier directory",
                ready_name(*stale.0, shard.count),
                dir.display(),
                format_utc(*stale.1)
            )));
        }
        if seen.len() as u32 == shard.count {
            let last = seen.values().copied().max().unwrap_or(ready);
            return Ok(last + BARRIER_MARGIN.as_millis() as u64);
        }
        if interrupted() {
            return Err(Error::Interrupted);
        }
        if std::time::Instant::now() >= deadline {
            let missing: Vec<String> = (1..=shard.count)
                .filter(|i| !seen.contains_key(i))
                .map(|i| format!("{i}/{}", shard.count))
                .collect();
            return Err(Error::Shards(format!(
                "shard{} {} did not reach the barrier in {} within {:.0} min; did {} start, with \
                 --start-barrier on the same shared directory?",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                dir.display(),
                timeout.as_secs_f64() / 60.0,
                if missing.len() == 1 { "it" } else { "they" }
            )));
        }
        std::thread::sleep(BARRIER_POLL);
    }
}

fn ready_name(index: u32, count: u32) -> String {
    format!("shard-{index}-of-{count}.ready")
}

/// The ready times in the barrier directory, by shard index; files of another shard count are an
/// error (two sharded runs sharing a directory).
fn read_barrier(dir: &Path, count: u32) -> Result<BTreeMap<u32, u64>> {
    let mut seen = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::io(
            format!("reading the barrier directory {}", dir.display()),
            e,
        )
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((i, n)) = name
            .strip_prefix("shard-")
            .and_then(|r| r.strip_suffix(".ready"))
            .and_then(|r| r.split_once("-of-"))
        else {
            continue;
        };
        let (Ok(i), Ok(n)) = (i.parse::<u32>(), n.parse::<u32>()) else {
            continue;
        };
        if n != count {
            return Err(Error::Shards(format!(
                "{} holds {name}, a shard of {n}, but this shard is one of {count}: give every sharded run \
                 a barrier directory of its own",
                dir.display()
            )));
        }
        // Written atomically: a file that does not parse is not ours to wait for.
        if let Some(t) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            seen.insert(i, t);
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_parse_in_both_forms_and_are_bounded() {
        assert_eq!(parse_start_at("1795763700"), Ok(1_795_763_700_000));
        assert_eq!(parse_start_at("1795763700.5"), Ok(1_795_763_700_500));
        assert_eq!(
            parse_start_at("2026-11-27T07:15:00Z"),
            Ok(1_795_763_700_000)
        );
        let e = parse_start_at("in five minutes").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("date +%s"), "{e}");
        assert!(parse_start_at("-5").is_err() && parse_start_at("1e9").is_err());
        let now = 1_795_763_700_000;
        assert!(check_start_at(now + 60_000, now).is_ok());
        let past = check_start_at(now - 2_000, now).unwrap_err().to_string();
        assert!(past.contains("passed 2.0 s ago"), "{past}");
        let far = check_start_at(now + 2 * 3_600_000, now)
            .unwrap_err()
            .to_string();
        assert!(far.contains("120 min ahead"), "{far}");
    }

    #[test]
    fn every_shard_plans_the_same_rounds() {
        let shard = ShardId { index: 2, count: 3 };
        let scenarios = || {
            vec![
                ("p::a".to_string(), Duration::from_millis(2_300)),
                ("p::b".to_string(), Duration::from_secs(11)),
            ]
        };
        let plan = ShardPlan::new(shard, 1_000_000, scenarios(), 2);
        assert_eq!(plan.start_of("p::a", 1), Some(1_000_000));
        assert_eq!(plan.start_of("p::a", 2), Some(1_005_300));
        assert_eq!(plan.start_of("p::b", 1), Some(1_010_600));
        assert_eq!(plan.start_of("p::b", 2), Some(1_024_600));
        assert_eq!(plan.start_of("p::b", 3), None);
        assert_eq!(plan.start_of("p::c", 1), None);
        // Another shard of the same run plans the same times.
        let other = ShardPlan::new(ShardId { index: 1, count: 3 }, 1_000_000, scenarios(), 2);
        assert_eq!(other.starts, plan.starts);
    }

    #[test]
    fn shards_meet_at_the_barrier_and_agree_on_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("barrier");
        let never = || false;
        // Two shards of three arrived earlier.
        std::fs::create_dir_all(&dir).unwrap();
        let t = now_ms();
        std::fs::write(dir.join("shard-1-of-3.ready"), format!("{}\n", t - 900)).unwrap();
        std::fs::write(dir.join("shard-3-of-3.ready"), format!("{}\n", t - 400)).unwrap();
        let me = ShardId { index: 2, count: 3 };
        let start = meet(&dir, me, Duration::from_secs(5), never).unwrap();
        let mine: u64 = std::fs::read_to_string(dir.join("shard-2-of-3.ready"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(start, mine + BARRIER_MARGIN.as_millis() as u64);
        // The same shard again: an earlier run's directory.
        let e = meet(&dir, me, Duration::from_secs(5), never)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fresh barrier directory"), "{e}");
        // A shard of another count.
        let e = meet(
            &dir,
            ShardId { index: 1, count: 2 },
            Duration::from_secs(5),
            never,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a shard of 3"), "{e}");
        // Alone, with a short timeout: the missing shards are named.
        let lonely = tmp.path().join("lonely");
        let e = meet(
            &lonely,
            ShardId { index: 1, count: 3 },
            Duration::ZERO,
            never,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("shards 2/3, 3/3 did not reach the barrier"),
            "{e}"
        );
        // Interrupted while waiting.
        let quit = tmp.path().join("quit");
        let e = meet(
            &quit,
            ShardId { index: 1, count: 2 },
            Duration::from_secs(60),
            || true,
        );
        assert!(matches!(e, Err(Error::Interrupted)));
        // A leftover from long ago.
        let old = tmp.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("shard-2-of-2.ready"), "1000\n").unwrap();
        let e = meet(
            &old,
            ShardId { index: 1, count: 2 },
            Duration::from_secs(60),
            never,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("earlier run"), "{e}");
    }
}
