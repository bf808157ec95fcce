//! Merging the shards of one sharded load (`cargo perfgate merge`), without I/O. First the shards
//! must be one run: all `n` of them, once each, of one commit, against one service, with the same
//! scenarios, specs and rounds, in windows that start together; whatever differs is named, with the
//! shard that differs from the others. Then they add up exactly: HDR histograms are added (so every
//! percentile is the one a single generator recording the same starts would report, not an average
//! of percentiles), counts, errors by kind and late/dropped starts are summed, the per-second series
//! summed by second. The SLO checks and the verdict are then the ones a single run gets (`slo`).

use std::collections::{BTreeMap, BTreeSet};

use perfgate_runtime::format::{
    self, DecodeError, LatencySummary, ScenarioResult, SecondSample, Stats, MAX_ERROR_SAMPLES,
};

use crate::error::{Error, Result};
use crate::gate::spec::describe_spec_change;
use crate::gate::RoundStats;
use crate::machine::Fingerprint;
use crate::results::{RunResults, ScenarioRun, ShardHealth, ShardSource};
use crate::shard::ShardId;
use crate::slo::{self, Evidence, Verdict};

/// A shard's document and where it was read from.
pub struct ShardFile {
    pub origin: String,
    pub doc: RunResults,
}

/// The shards added up: what a run of the whole load would have measured.
#[derive(Debug)]
pub struct Merged {
    pub scenarios: Vec<ScenarioRun>,
    pub sources: Vec<ShardSource>,
    /// The first shard's machine (the generators' machines; with `--target-url` the service runs
    /// elsewhere).
    pub environment: Fingerprint,
    pub target_url: Option<String>,
    /// When the earliest shard started (the merged document's start).
    pub started_unix_ms: u64,
    pub build_secs: f64,
    pub load_secs: f64,
}

/// Checks that `files` are the shards of one sharded run and merges them.
pub fn merge(files: &[ShardFile]) -> Result<Merged> {
    let mut shards = check_set(files)?;
    shards.sort_by_key(|(id, _)| id.index);
    let label = |i: usize| format!("shard {} ({})", shards[i].0, shards[i].1.origin);

    same(
        &shards,
        "commit",
        |f| f.doc.environment.git_commit.clone(),
        |c| match c {
            Some(c) => format!("ran commit {}", c.get(..12).unwrap_or(c)),
            None => "ran outside a git repository".to_string(),
        },
    )?;
    same(
        &shards,
        "service",
        |f| f.doc.target_url.clone(),
        |u| format!("drove {}", u.as_deref().unwrap_or("a service of its own")),
    )?;
    let ids =
        |f: &ShardFile| -> Vec<String> { f.doc.scenarios.iter().map(|s| s.id.clone()).collect() };
    same(&shards, "scenarios", ids, |v| {
        format!(
            "ran {}",
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        )
    })?;

    let first = shards[0].1;
    let mut scenarios = Vec::new();
    for k in 0..first.doc.scenarios.len() {
        let parts: Vec<(ShardId, &ShardFile, &ScenarioRun)> = shards
            .iter()
            .map(|(id, f)| (*id, *f, &f.doc.scenarios[k]))
            .collect();
        if let Some(e) = spec_mismatch(&parts) {
            return Err(e);
        }
        check_window(&parts, &label)?;
        scenarios.push(merge_scenario(&parts)?);
    }
    Ok(Merged {
        scenarios,
        sources: shards
            .iter()
            .map(|(id, f)| ShardSource {
                shard: *id,
                file: f.origin.clone(),
                run_id: f.doc.run_id.clone(),
            })
            .collect(),
        environment: first.doc.environment.clone(),
        target_url: first.doc.target_url.clone(),
        started_unix_ms: shards
            .iter()
            .map(|(_, f)| f.doc.started_unix_ms)
            .min()
            .unwrap_or(0),
        build_secs: shards
            .iter()
            .map(|(_, f)| f.doc.build_secs)
            .fold(0.0, f64::max),
        load_secs: shards
            .iter()
            .map(|(_, f)| f.doc.load_secs)
            .fold(0.0, f64::max),
    })
}

/// Every file is a shard's, all of one count, each number once and none missing.
fn check_set(files: &[ShardFile]) -> Result<Vec<(ShardId, &ShardFile)>> {
    let mut shards = Vec::new();
    for f in files {
        let Some(id) = f.doc.shard else {
            return Err(Error::Shards(format!(
                "{} is not a shard's results: it was written by a run without --shard I/N",
                f.origin
            )));
        };
        shards.push((id, f));
    }
    let Some(&(first, _)) = shards.first() else {
        return Err(Error::Shards("no shard results to merge".into()));
    };
    same(
        &shards,
        "shard count",
        |f| f.doc.shard.map(|s| s.count),
        |n| format!("is one of {} shards", n.unwrap_or(0)),
    )?;
    let mut by_index: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (id, f) in &shards {
        by_index.entry(id.index).or_default().push(&f.origin);
    }
    if let Some((i, twice)) = by_index.iter().find(|(_, v)| v.len() > 1) {
        return Err(Error::Shards(format!(
            "shard {i}/{} appears more than once: {}; merge each shard once",
            first.count,
            twice.join(", ")
        )));
    }
    let missing: Vec<String> = (1..=first.count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{}", first.count))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Shards(format!(
            "shard{} {} {} missing (got {}): a missing shard is an error, never a smaller run; merge all {} \
             shards' results",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            shards
                .iter()
                .map(|(id, f)| format!("{id} from {}", f.origin))
                .collect::<Vec<_>>()
                .join(", "),
            first.count
        )));
    }
    Ok(shards)
}

/// Whether every shard has the same `value`; if not, an error naming the odd ones out: the shards
/// whose value differs from the most common one (shard order breaks a tie).
fn same<T: PartialEq>(
    shards: &[(ShardId, &ShardFile)],
    what: &str,
    value: impl Fn(&ShardFile) -> T,
    describe: impl Fn(&T) -> String,
) -> Result<()> {
    let values: Vec<T> = shards.iter().map(|(_, f)| value(f)).collect();
    let Some(common) = majority(&values) else {
        return Ok(());
    };
    let name = |(id, f): &(ShardId, &ShardFile)| format!("shard {id} ({})", f.origin);
    let odd: Vec<String> = shards
        .iter()
        .zip(&values)
        .filter(|(_, v)| **v != values[common])
        .map(|(s, v)| format!("{} {}", name(s), describe(v)))
        .collect();
    let rest: Vec<String> = shards
        .iter()
        .zip(&values)
        .filter(|(_, v)| **v == values[common])
        .map(|(s, _)| name(s))
        .collect();
    Err(Error::Shards(format!(
        "the shards differ in their {what}: {}, while {} {}; merge only the shards of one sharded run",
        odd.join(", "),
        rest.join(", "),
        describe(&values[common]),
    )))
}

/// The index of the most common value, None when all are equal.
fn majority<T: PartialEq>(values: &[T]) -> Option<usize> {
    if values.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    let count = |v: &T| values.iter().filter(|w| *w == v).count();
    // The first of the most common (max_by_key keeps the last of equals, hence the reversal).
    (0..values.len()).rev().max_by_key(|&i| count(&values[i]))
}

/// Whether a shard ran the scenario with another spec than the others, in words: what changed between
/// the most common spec and the odd shard's.
fn spec_mismatch(parts: &[(ShardId, &ShardFile, &ScenarioRun)]) -> Option<Error> {
    let specs: Vec<_> = parts.iter().map(|(_, _, s)| &s.spec_parts).collect();
    let common = majority(&specs)?;
    let (id, file, odd) = parts
        .iter()
        .find(|(_, _, s)| s.spec_parts != *specs[common])
        .expect("a spec differs");
    Some(Error::Shards(format!(
        "the shards ran {} with different specs: shard {id} ({}) differs from shard {} ({}): {}; merge \
         only the shards of one sharded run",
        odd.id,
        file.origin,
        parts[common].0,
        parts[common].1.origin,
        describe_spec_change(specs[common], &odd.spec_parts)
    )))
}

/// The tolerance on the start of the shards' measured windows: a twentieth of the window, between
/// 50 ms and 1 s (clocks of different machines, process start).
fn window_tolerance_ms(measured_secs: f64) -> u64 {
    ((measured_secs * 1000.0 / 20.0) as u64).clamp(50, 1000)
}

/// The shards' measured windows have the same length and start together (within the tolerance of
/// the start most of them share); shards that did not measure are left to the merge, which names
/// them.
fn check_window(
    parts: &[(ShardId, &ShardFile, &ScenarioRun)],
    label: &impl Fn(usize) -> String,
) -> Result<()> {
    let windows: Vec<(usize, &ScenarioResult)> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, (_, _, s))| Some(i).zip(s.result.as_ref()))
        .collect();
    let Some((_, first)) = windows.first() else {
        return Ok(());
    };
    let id = &parts[0].2.id;
    if let Some((i, r)) = windows
        .iter()
        .find(|(_, r)| (r.measured_secs - first.measured_secs).abs() > 1e-6)
    {
        return Err(Error::Shards(format!(
            "the shards measured {id} for different lengths: {} for {:.3} s, {} for {:.3} s",
            label(*i),
            r.measured_secs,
            label(windows[0].0),
            first.measured_secs
        )));
    }
    // The start most shards share (within the tolerance; shard order breaks a tie).
    let tolerance = window_tolerance_ms(first.measured_secs);
    let starts: Vec<u64> = windows.iter().map(|(_, r)| r.started_unix_ms).collect();
    let near = |t: u64| starts.iter().filter(|s| s.abs_diff(t) <= tolerance).count();
    let common = (0..starts.len())
        .rev()
        .max_by_key(|&i| near(starts[i]))
        .map_or(0, |i| starts[i]);
    let odd: Vec<String> = windows
        .iter()
        .filter(|(_, r)| r.started_unix_ms.abs_diff(common) > tolerance)
        .map(|(i, r)| {
            let off = r.started_unix_ms as i64 - common as i64;
            format!(
                "{} started {:+.3} s from the others",
                label(*i),
                off as f64 / 1000.0
            )
        })
        .collect();
    if !odd.is_empty() {
        return Err(Error::Shards(format!(
            "the shards' windows of {id} do not overlap: {} (allowed: {} ms); run the shards with one \
             --start-at or --start-barrier",
            odd.join(", "),
            tolerance
        )));
    }
    Ok(())
}

/// One scenario of every shard, as one: an error when a shard could not measure it, else the shards'
/// rounds added up and checked as a single run's.
fn merge_scenario(parts: &[(ShardId, &ShardFile, &ScenarioRun)]) -> Result<ScenarioRun> {
    let (_, _, first) = parts[0];
    let mut merged = ScenarioRun {
        result: None,
        resources: None,
        checks: Vec::new(),
        verdict: Verdict::Error,
        error: None,
        log: None,
        wall_secs: parts
            .iter()
            .map(|(_, _, s)| s.wall_secs)
            .fold(0.0, f64::max),
        rounds: Vec::new(),
        regressions: Vec::new(),
        ab: None,
        shards: parts.iter().map(|(id, _, s)| health(*id, s)).collect(),
        ..first.clone()
    };
    let unmeasured: Vec<String> = parts
        .iter()
        .filter(|(_, _, s)| s.verdict == Verdict::Error || s.result.is_none())
        .map(|(id, f, s)| {
            format!(
                "shard {id} ({}) could not measure it: {}",
                f.origin,
                s.error.as_deref().unwrap_or("no results")
            )
        })
        .collect();
    if !unmeasured.is_empty() {
        merged.error = Some(unmeasured.join("\n"));
        return Ok(merged);
    }
    let rounds = first.all_rounds().len();
    if let Some((id, f, s)) = parts
        .iter()
        .find(|(_, _, s)| s.all_rounds().len() != rounds)
    {
        return Err(Error::Shards(format!(
            "the shards ran {} for different numbers of rounds: shard {id} ({}) {}, shard {} ({}) {rounds}; \
             give every shard the same --rounds",
            first.id,
            f.origin,
            s.all_rounds().len(),
            parts[0].0,
            parts[0].1.origin
        )));
    }
    let corrupt = |e: DecodeError| Error::Shards(format!("{}: {e}", first.id));
    let results: Vec<&ScenarioResult> = parts
        .iter()
        .filter_map(|(_, _, s)| s.result.as_ref())
        .collect();
    let mut result = merge_results(&results).map_err(corrupt)?;
    let invalid: Vec<String> = parts
        .iter()
        .filter(|(_, _, s)| s.verdict == Verdict::Invalid)
        .map(|(id, _, s)| format!("shard {id}: {}", s.invalid_reason()))
        .collect();
    if !invalid.is_empty() {
        result.invalid = Some(invalid.join("; "));
    }
    // Rounds after the first keep only their counts and histograms: merged as such, and checked
    // like a run's rounds (the median round per SLO).
    let mut checked = vec![result.clone()];
    if !first.rounds.is_empty() {
        let mut all = Vec::new();
        for r in 0..rounds {
            let of_round: Vec<&RoundStats> = parts.iter().map(|(_, _, s)| &s.rounds[r]).collect();
            let (iterations, requests) = merge_series(
                of_round.iter().map(|r| (&r.iterations, &r.requests)),
                result.measured_secs,
            )
            .map_err(corrupt)?;
            all.push(RoundStats {
                iterations,
                requests,
                contention: None,
                // The latest shard's: a stall in any shard's generator delays the merged tail.
                lag_p99_ms: of_round
                    .iter()
                    .filter_map(|r| r.lag_p99_ms)
                    .reduce(f64::max),
            });
        }
        checked = all
            .iter()
            .map(|r| ScenarioResult {
                iterations: r.iterations.clone(),
                requests: r.requests.clone(),
                ..result.clone()
            })
            .collect();
        merged.rounds = all;
    }
    let spec = merged.spec.clone().unwrap_or_else(|| result.spec.clone());
    merged.checks = slo::median_checks(&spec, &checked);
    merged.verdict = slo::verdict(&Evidence {
        invalid: result.invalid.is_some(),
        checks: &merged.checks,
        ..Default::default()
    });
    merged.result = Some(result);
    Ok(merged)
}

fn health(shard: ShardId, s: &ScenarioRun) -> ShardHealth {
    let r = s.result.as_ref();
    ShardHealth {
        shard,
        iterations: r.map_or(0, |r| r.iterations.count),
        intended: r.map_or(0, |r| r.schedule.intended),
        late: r.map_or(0, |r| r.schedule.late),
        dropped: r.map_or(0, |r| r.schedule.dropped),
        lag_p99_ms: r.map_or(0.0, |r| r.schedule.lag.p99_ms),
        invalid: (s.verdict == Verdict::Invalid).then(|| s.invalid_reason().to_string()),
    }
}

/// The shards' results of one round as one: histograms added, counts summed, the window the common
/// one (the earliest start; the check above keeps them together).
pub fn merge_results(results: &[&ScenarioResult]) -> Result<ScenarioResult, DecodeError> {
    let first = results[0];
    let secs = first.measured_secs;
    let (iterations, requests) =
        merge_series(results.iter().map(|r| (&r.iterations, &r.requests)), secs)?;
    let mut lag = format::new_histogram();
    for r in results {
        add(&mut lag, &r.schedule.lag_histogram)?;
    }
    let sum = |f: fn(&ScenarioResult) -> u64| results.iter().map(|r| f(r)).sum::<u64>();
    Ok(ScenarioResult {
        spec: first.spec.clone(),
        base_url: first.base_url.clone(),
        started_unix_ms: results.iter().map(|r| r.started_unix_ms).min().unwrap_or(0),
        measured_secs: secs,
        iterations,
        requests,
        schedule: format::Schedule {
            intended: sum(|r| r.schedule.intended),
            late: sum(|r| r.schedule.late),
            late_waiting: sum(|r| r.schedule.late_waiting),
            dropped: sum(|r| r.schedule.dropped),
            lag: LatencySummary::from_histogram(&lag),
            lag_histogram: format::encode_histogram(&lag),
        },
        invalid: None,
        timeseries: merge_seconds(results.iter().map(|r| r.timeseries.as_slice())),
        shard: None,
        ..first.clone()
    })
}

/// The iteration series and each named request's, added up over the shards.
fn merge_series<'a>(
    parts: impl Iterator<Item = (&'a Stats, &'a BTreeMap<String, Stats>)> + Clone,
    secs: f64,
) -> Result<(Stats, BTreeMap<String, Stats>), DecodeError> {
    let iterations = merge_stats(parts.clone().map(|(it, _)| it), secs)?;
    let names: BTreeSet<&String> = parts.clone().flat_map(|(_, r)| r.keys()).collect();
    let mut requests = BTreeMap::new();
    for name in names {
        let stats = merge_stats(parts.clone().filter_map(|(_, r)| r.get(name)), secs)?;
        requests.insert(name.clone(), stats);
    }
    Ok((iterations, requests))
}

/// One series of several shards: counts and errors by kind summed, both histograms added, the
/// first error messages kept.
pub fn merge_stats<'a>(
    parts: impl Iterator<Item = &'a Stats>,
    secs: f64,
) -> Result<Stats, DecodeError> {
    let (mut count, mut errors) = (0, format::ErrorCounts::default());
    let (mut corrected, mut uncorrected) = (format::new_histogram(), format::new_histogram());
    let mut samples = Vec::new();
    for s in parts {
        count += s.count;
        errors.add(&s.errors);
        add(&mut corrected, &s.histogram)?;
        add(&mut uncorrected, &s.histogram_uncorrected)?;
        let room = MAX_ERROR_SAMPLES.saturating_sub(samples.len());
        samples.extend(s.error_samples.iter().take(room).cloned());
    }
    Ok(Stats::of(
        count,
        errors,
        secs,
        [&corrected, &uncorrected],
        samples,
    ))
}

fn add(into: &mut format::Histogram, encoded: &str) -> Result<(), DecodeError> {
    into.add(format::decode_histogram(encoded)?)
        .map_err(|e| DecodeError(format!("{e:?}")))
}

/// The per-second series summed by second. A second's p50 and p99 are the highest shard's: its
/// histogram is not kept, and that bound never hides a slow second (the window's percentiles are
/// exact).
fn merge_seconds<'a>(series: impl Iterator<Item = &'a [SecondSample]>) -> Vec<SecondSample> {
    let mut by_second: BTreeMap<u32, SecondSample> = BTreeMap::new();
    for samples in series {
        for s in samples {
            let m = by_second.entry(s.t).or_insert_with(|| SecondSample {
                t: s.t,
                ..Default::default()
            });
            m.iterations += s.iterations;
            m.errors += s.errors;
            m.p50_ms = m.p50_ms.max(s.p50_ms);
            m.p99_ms = m.p99_ms.max(s.p99_ms);
        }
    }
    by_second.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::report;
    use crate::slo::tests::{result, spec};
    use perfgate_runtime::format::{ErrorCounts, Metric, Op, Slo};

    const SECS: f64 = 10.0;

    /// A series recorded from these latencies (microseconds), as the runtime would summarise it.
    fn series(us: &[u64], errors: ErrorCounts, samples: &[&str]) -> Stats {
        let mut h = format::new_histogram();
        for v in us {
            h.record(*v).unwrap();
        }
        let samples = samples.iter().map(|s| s.to_string()).collect();
        Stats::of(us.len() as u64, errors, SECS, [&h, &h], samples)
    }

    /// The latencies of a run with a stall: mostly ~1 ms, and a tail one shard alone would show.
    fn latencies(n: u64, seed: u64) -> Vec<u64> {
        (0..n)
            .map(|i| {
                let x = (i * 7919 + seed * 104_729) % 10_007;
                if x < 150 {
                    200_000 + x * 2_000
                } else {
                    600 + x % 900
                }
            })
            .collect()
    }

    fn p99_slo(ms: f64) -> Slo {
        Slo {
            request: None,
            metric: Metric::P99,
            op: Op::Lt,
            threshold: ms,
        }
    }

    /// Shard `index` of `count`: a document with one scenario whose iterations took `us`.
    fn shard_doc(index: u32, count: u32, us: &[u64]) -> ShardFile {
        let sp = spec(vec![p99_slo(250.0)]);
        let mut res = result(&sp, 1.0);
        res.started_unix_ms = 1_795_763_701_000;
        res.iterations = series(us, ErrorCounts::default(), &[]);
        res.requests.clear();
        res.requests.insert(
            "GET /".into(),
            series(&us[..us.len() / 2], ErrorCounts::default(), &[]),
        );
        res.schedule.intended = us.len() as u64;
        res.shard = Some(ShardId { index, count });
        let mut doc = report();
        doc.scenarios.truncate(1);
        let s = &mut doc.scenarios[0];
        s.result = Some(res);
        s.checks.clear();
        s.verdict = Verdict::Pass;
        s.spec_parts = [("load".to_string(), "open 200/s".to_string())].into();
        doc.shard = Some(ShardId { index, count });
        doc.environment.git_commit = Some("a1b2c3d4e5f6a7b8".into());
        doc.target_url = Some("http://127.0.0.1:8080".into());
        doc.run_id = format!("run-{index}");
        ShardFile {
            origin: format!("shard-{index}.json"),
            doc,
        }
    }

    fn three() -> Vec<ShardFile> {
        (1..=3)
            .map(|i| shard_doc(i, 3, &latencies(3000, u64::from(i))))
            .collect()
    }

    fn error_of(files: &[ShardFile]) -> String {
        merge(files).expect_err("the merge must refuse").to_string()
    }

    #[test]
    fn merged_percentiles_are_those_of_one_histogram_of_every_sample() {
        let files = three();
        let merged = merge(&files).unwrap();
        let s = &merged.scenarios[0];
        let r = s.result.as_ref().unwrap();
        // One histogram of all 9,000 samples, as a single generator would have recorded them.
        let mut one = format::new_histogram();
        for i in 1..=3 {
            for v in latencies(3000, i) {
                one.record(v).unwrap();
            }
        }
        let exact = LatencySummary::from_histogram(&one);
        assert_eq!(r.iterations.latency, exact);
        assert_eq!(r.iterations.count, 9000);
        assert_eq!(r.schedule.intended, 9000);
        assert!((r.iterations.throughput - 900.0).abs() < 1e-9);
        assert_eq!(r.requests["GET /"].count, 4500);
        assert_eq!(
            format::decode_histogram(&r.iterations.histogram)
                .unwrap()
                .len(),
            9000
        );
        // Averaging the shards' p99s, as a tool without histograms would, is not the same number.
        let mean_p99: f64 = files
            .iter()
            .map(|f| {
                f.doc.scenarios[0]
                    .result
                    .as_ref()
                    .unwrap()
                    .iterations
                    .latency
                    .p99_ms
            })
            .sum::<f64>()
            / 3.0;
        assert_ne!(mean_p99, exact.p99_ms);
        // The gate's view: the SLO is checked on the merged p99, and each shard is named with its health.
        // The declared p99 SLO, then the implicit error and success checks every run gets.
        assert_eq!(s.checks.len(), 3, "{:?}", s.checks);
        assert_eq!(s.checks[0].measured, Some(exact.p99_ms));
        assert!(s.checks[1].implicit && s.checks[1].passed);
        // The tail (1.5% of starts, 200–500 ms) puts the p99 near 400 ms: the SLO (< 250 ms) fails.
        assert!(exact.p99_ms > 250.0, "{exact:?}");
        assert_eq!(s.verdict, Verdict::Fail);
        assert_eq!(
            s.shards.iter().map(|h| h.shard.index).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(merged.sources[2].file, "shard-3.json");
        assert_eq!(r.shard, None);
    }

    #[test]
    fn counts_errors_lateness_and_seconds_are_summed() {
        let errs = |status, timeout| ErrorCounts {
            status,
            timeout,
            ..Default::default()
        };
        let a = series(&[1000; 10], errs(2, 1), &["status: 500", "timeout"]);
        let b = series(&[3000; 30], errs(0, 4), &["t1", "t2", "t3", "t4"]);
        let m = merge_stats([&a, &b].into_iter(), SECS).unwrap();
        assert_eq!(m.count, 40);
        assert_eq!(m.errors, errs(2, 5));
        assert_eq!(m.error_samples.len(), MAX_ERROR_SAMPLES);
        // 3 significant digits: 3,000 µs reads as 3.001 ms.
        assert!((m.latency.p50_ms - 3.0).abs() < 0.01, "{:?}", m.latency);
        assert!((m.latency.min_ms - 1.0).abs() < 0.01, "{:?}", m.latency);
        let mut files = three();
        for (k, f) in files.iter_mut().enumerate() {
            let r = f.doc.scenarios[0].result.as_mut().unwrap();
            r.schedule.late = k as u64;
            r.schedule.dropped = 1;
            r.timeseries = vec![
                SecondSample {
                    t: 0,
                    iterations: 100,
                    errors: 1,
                    p50_ms: 1.0 + k as f64,
                    p99_ms: 5.0,
                },
                SecondSample {
                    t: 1,
                    iterations: 50,
                    errors: 0,
                    p50_ms: 1.0,
                    p99_ms: 500.0 * k as f64,
                },
            ];
        }
        let merged = merge(&files).unwrap();
        let r = merged.scenarios[0].result.as_ref().unwrap();
        assert_eq!((r.schedule.late, r.schedule.dropped), (3, 3));
        assert_eq!(r.timeseries.len(), 2);
        assert_eq!(
            (r.timeseries[0].iterations, r.timeseries[0].errors),
            (300, 3)
        );
        assert_eq!(r.timeseries[0].p50_ms, 3.0);
        assert_eq!(r.timeseries[1].p99_ms, 1000.0);
    }

    #[test]
    fn a_missing_duplicate_or_foreign_shard_is_refused() {
        let mut files = three();
        files.remove(1);
        let e = error_of(&files);
        assert!(
            e.contains("shard 2/3 is missing") && e.contains("never a smaller run"),
            "{e}"
        );
        let mut files = three();
        files[2] = shard_doc(1, 3, &latencies(3000, 9));
        let e = error_of(&files);
        assert!(e.contains("shard 1/3 appears more than once"), "{e}");
        let mut files = three();
        files[1] = shard_doc(2, 4, &latencies(3000, 2));
        let e = error_of(&files);
        assert!(
            e.contains("shard count") && e.contains("shard 2/4 (shard-2.json) is one of 4 shards"),
            "{e}"
        );
        let mut files = three();
        files[0].doc.shard = None;
        let e = error_of(&files);
        assert!(e.contains("shard-1.json is not a shard's results"), "{e}");
        assert!(error_of(&[]).contains("no shard results"));
    }

    #[test]
    fn shards_of_another_commit_spec_service_or_window_are_named() {
        let mut files = three();
        files[2].doc.environment.git_commit = Some("ffffffffffffffff".into());
        let e = error_of(&files);
        assert!(
            e.contains("commit: shard 3/3 (shard-3.json) ran commit ffffffffffff")
                && e.contains(
                    "shard 1/3 (shard-1.json), shard 2/3 (shard-2.json) ran commit a1b2c3d4e5f6"
                ),
            "{e}"
        );
        let mut files = three();
        files[0].doc.target_url = Some("http://127.0.0.1:9".into());
        let e = error_of(&files);
        assert!(
            e.contains("shard 1/3 (shard-1.json) drove http://127.0.0.1:9"),
            "{e}"
        );
        let mut files = three();
        files[1].doc.scenarios[0]
            .spec_parts
            .insert("load".into(), "open 300/s".into());
        let e = error_of(&files);
        assert!(
            e.contains("shard 2/3 (shard-2.json) differs from shard 1/3") && e.contains("300"),
            "{e}"
        );
        let mut files = three();
        files[1].doc.scenarios[0].id = "predict-service::other".into();
        let e = error_of(&files);
        assert!(e.contains("scenarios: shard 2/3"), "{e}");
        // 10 s windows: 500 ms apart is too far; 20 ms is a clock's difference.
        let mut files = three();
        files[2].doc.scenarios[0]
            .result
            .as_mut()
            .unwrap()
            .started_unix_ms += 20;
        assert!(merge(&files).is_ok());
        files[0].doc.scenarios[0]
            .result
            .as_mut()
            .unwrap()
            .started_unix_ms -= 600;
        let e = error_of(&files);
        assert!(
            e.contains("windows") && e.contains("shard 1/3 (shard-1.json) started -0.600 s"),
            "{e}"
        );
        let mut files = three();
        files[1].doc.scenarios[0]
            .result
            .as_mut()
            .unwrap()
            .measured_secs = 5.0;
        assert!(error_of(&files).contains("different lengths"));
        let mut files = three();
        let s = &mut files[1].doc.scenarios[0];
        s.rounds = vec![RoundStats::from(s.result.as_ref().unwrap()); 3];
        assert!(error_of(&files).contains("different numbers of rounds"));
    }

    #[test]
    fn an_invalid_or_unmeasured_shard_makes_the_merge_invalid_or_an_error() {
        let mut files = three();
        let s = &mut files[1].doc.scenarios[0];
        s.verdict = Verdict::Invalid;
        s.result.as_mut().unwrap().invalid = Some("2.0% of 3000 scheduled starts were late".into());
        let merged = merge(&files).unwrap();
        let m = &merged.scenarios[0];
        assert_eq!(m.verdict, Verdict::Invalid);
        assert_eq!(
            m.result.as_ref().unwrap().invalid.as_deref(),
            Some("shard 2/3: 2.0% of 3000 scheduled starts were late")
        );
        assert!(m.shards[1].invalid.is_some() && m.shards[0].invalid.is_none());
        let mut files = three();
        let s = &mut files[2].doc.scenarios[0];
        s.verdict = Verdict::Error;
        s.result = None;
        s.error = Some("the scenario binary exited with code 101".into());
        let merged = merge(&files).unwrap();
        let m = &merged.scenarios[0];
        assert_eq!(m.verdict, Verdict::Error);
        assert!(m.result.is_none());
        assert!(
            m.error.as_deref().unwrap().contains(
                "shard 3/3 (shard-3.json) could not measure it: the scenario binary exited with code 101"
            ),
            "{:?}",
            m.error
        );
    }

    #[test]
    fn rounds_merge_round_by_round_and_the_median_round_is_checked() {
        let mut files = three();
        for f in &mut files {
            let s = &mut f.doc.scenarios[0];
            let r = s.result.as_ref().unwrap();
            let slow = RoundStats {
                iterations: series(&[400_000; 100], ErrorCounts::default(), &[]),
                requests: BTreeMap::new(),
                contention: None,
                lag_p99_ms: None,
            };
            // Rounds 1 and 3 are fast, round 2 slow everywhere: the median round passes.
            s.rounds = vec![RoundStats::from(r), slow, RoundStats::from(r)];
        }
        let merged = merge(&files).unwrap();
        let m = &merged.scenarios[0];
        assert_eq!(m.rounds.len(), 3);
        assert_eq!(m.rounds[1].iterations.count, 300);
        assert_eq!(m.rounds[0].iterations.count, 9000);
        assert!(
            m.checks[0].message.contains("median of 3 rounds"),
            "{:?}",
            m.checks
        );
        assert_eq!(
            m.checks[0].measured,
            Some(m.rounds[0].iterations.latency.p99_ms)
        );
    }
}
