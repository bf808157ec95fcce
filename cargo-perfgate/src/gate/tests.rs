//! Unit tests of the gate's decisions on synthetic rounds (the calibration by simulation is in `sim.rs`).

use perfgate_runtime::format::{ErrorCounts, LatencySummary, Metric, Stats};

use super::sim::{Rng, Sim};
use super::stats::holm;
use super::{
    decide, decide_paired, required_requests, Decision, GateOptions, Outcome, RoundStats,
    ScenarioPair,
};

/// A series whose p50, p95 and p99 are `scale` × (5, 9, 14) ms.
pub(super) fn series(scale: f64, count: u64, errors: u64, throughput: f64) -> Stats {
    let latency = LatencySummary {
        count,
        min_ms: 1.0 * scale,
        mean_ms: 6.0 * scale,
        p50_ms: 5.0 * scale,
        p90_ms: 8.0 * scale,
        p95_ms: 9.0 * scale,
        p99_ms: 14.0 * scale,
        p999_ms: 20.0 * scale,
        max_ms: 30.0 * scale,
    };
    Stats {
        count,
        errors: ErrorCounts {
            status: errors,
            ..ErrorCounts::default()
        },
        throughput,
        latency_uncorrected: latency.clone(),
        latency,
        ..Stats::default()
    }
}

fn round(scale: f64) -> RoundStats {
    RoundStats {
        iterations: series(scale, 2000, 0, 200.0 / scale),
        requests: Default::default(),
        contention: None,
        lag_p99_ms: None,
    }
}

/// Rounds with the given scales (per-round drift is in the scales).
fn rounds(scales: &[f64]) -> Vec<RoundStats> {
    scales.iter().map(|&s| round(s)).collect()
}

const BASE: [f64; 5] = [1.00, 1.02, 0.98, 1.01, 0.99];

fn pair<'a>(b: &'a [RoundStats], c: &'a [RoundStats]) -> ScenarioPair<'a> {
    ScenarioPair {
        scenario: "pkg::checkout",
        tolerance: 0.10,
        compare_throughput: false,
        baseline: b,
        current: c,
    }
}

fn find<'d>(d: &'d [Decision], request: Option<&str>, metric: Metric) -> &'d Decision {
    d.iter()
        .find(|d| d.request.as_deref() == request && d.metric == metric)
        .unwrap_or_else(|| panic!("no {request:?} {metric} decision in {d:#?}"))
}

#[test]
fn unchanged_rounds_pass_with_an_interval_around_zero() {
    let b = rounds(&BASE);
    let c = rounds(&[1.01, 0.99, 1.00]);
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    // p50, p95, p99, errors; no throughput in an open model.
    assert_eq!(d.len(), 4);
    for metric in [Metric::P50, Metric::P95, Metric::P99] {
        let x = find(&d, None, metric);
        assert_eq!(x.outcome, Outcome::Pass, "{x:#?}");
        let (lo, hi) = (x.change_low.unwrap(), x.change_high.unwrap());
        assert!(lo < 0.0 && 0.0 < hi && hi < 0.10, "{x:#?}");
        assert!(lo <= x.change.unwrap() && x.change.unwrap() <= hi);
        assert_eq!((x.rounds_baseline, x.rounds_current), (5, 3));
    }
    let errors = find(&d, None, Metric::Errors);
    assert_eq!(errors.outcome, Outcome::Pass);
    assert_eq!(errors.note, "no errors on either side");
}

#[test]
fn a_clear_slowdown_fails_and_reports_the_geometric_means() {
    let b = rounds(&BASE);
    let c = rounds(&[1.40, 1.42, 1.38]);
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    let p99 = find(&d, None, Metric::P99);
    assert_eq!(p99.outcome, Outcome::Fail, "{p99:#?}");
    assert!(p99.change_low.unwrap() > 0.10 && p99.change_low.unwrap() < 0.40);
    assert!(p99.change_high.unwrap() > 0.40);
    let (b99, c99) = (p99.baseline.unwrap(), p99.current.unwrap());
    assert!((b99 - 14.0).abs() < 0.1 && (c99 - 14.0 * 1.40).abs() < 0.1);
    assert!((c99 / b99 - 1.0 - p99.change.unwrap()).abs() < 1e-12);
    assert!(
        p99.note
            .contains("run-wide confidence, beyond the +10% tolerance"),
        "{}",
        p99.note
    );
}

#[test]
fn a_change_near_the_tolerance_is_inconclusive_and_says_what_would_decide_it() {
    let b = rounds(&[1.00, 1.06, 0.95, 1.04, 0.96]);
    let c = rounds(&[1.16, 1.06, 1.12]);
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    let p50 = find(&d, None, Metric::P50);
    assert_eq!(p50.outcome, Outcome::Inconclusive, "{p50:#?}");
    assert!(p50.change_low.unwrap() < 0.10 && p50.change_high.unwrap() > 0.10);
    assert!(
        p50.note
            .contains("rounds on each side would likely decide it"),
        "{}",
        p50.note
    );
}

#[test]
fn throughput_is_compared_in_the_closed_model_only_and_a_drop_fails() {
    let b = rounds(&BASE);
    let c = rounds(&[1.5, 1.52, 1.49]);
    let mut p = pair(&b, &c);
    assert!(decide(&[p], &GateOptions::default())
        .iter()
        .all(|d| d.metric != Metric::Throughput));
    p.compare_throughput = true;
    let d = decide(&[p], &GateOptions::default());
    let t = find(&d, None, Metric::Throughput);
    assert_eq!(t.outcome, Outcome::Fail, "{t:#?}");
    // Throughput is 1/scale here: about −34%, and the worse end is the high one.
    assert!((t.change.unwrap() + 0.335).abs() < 0.001, "{t:#?}");
    assert!(t.change_high.unwrap() < -0.10 && t.change_low.unwrap() < t.change_high.unwrap());
    assert!(t.note.starts_with("33.5% lower; at least"), "{}", t.note);
}

#[test]
fn missing_sides_and_requests_are_not_comparable() {
    let mut b = rounds(&BASE);
    let mut c = rounds(&[1.0, 1.0, 1.0]);
    for r in &mut b {
        r.requests.insert("old".into(), series(1.0, 2000, 0, 10.0));
    }
    for r in &mut c {
        r.requests.insert("new".into(), series(1.0, 2000, 0, 10.0));
    }
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    for metric in [Metric::P50, Metric::P95, Metric::P99, Metric::Errors] {
        let old = find(&d, Some("old"), metric);
        assert_eq!(old.outcome, Outcome::NotComparable);
        assert!(
            old.note.contains("no longer in the current run"),
            "{}",
            old.note
        );
        let new = find(&d, Some("new"), metric);
        assert_eq!(new.outcome, Outcome::NotComparable);
        assert!(new.note.contains("not in the baseline"), "{}", new.note);
    }
    assert_eq!(find(&d, None, Metric::P99).outcome, Outcome::Pass);

    let d = decide(&[pair(&[], &c)], &GateOptions::default());
    assert!(d.iter().all(|d| d.outcome == Outcome::NotComparable));
    assert!(d[0].note.contains("no baseline rounds"), "{}", d[0].note);
}

#[test]
fn too_few_requests_per_round_make_the_tail_inconclusive() {
    let opts = GateOptions::default();
    assert_eq!(required_requests(Metric::P99, &opts), 200);
    assert_eq!(required_requests(Metric::P95, &opts), 40);
    assert_eq!(required_requests(Metric::P50, &opts), 20);
    let short = |s: f64| RoundStats {
        iterations: series(s, 120, 0, 12.0),
        requests: Default::default(),
        contention: None,
        lag_p99_ms: None,
    };
    let b: Vec<RoundStats> = BASE.iter().map(|&s| short(s)).collect();
    let c: Vec<RoundStats> = [1.5, 1.5, 1.5].iter().map(|&s| short(s)).collect();
    let d = decide(&[pair(&b, &c)], &opts);
    let p99 = find(&d, None, Metric::P99);
    assert_eq!(p99.outcome, Outcome::Inconclusive);
    assert!(
        p99.note.contains("at least 200 requests per round") && p99.note.contains("has 120"),
        "{}",
        p99.note
    );
    // The body of the distribution is still measured, and this slowdown is plain.
    assert_eq!(find(&d, None, Metric::P50).outcome, Outcome::Fail);
}

#[test]
fn one_round_per_side_cannot_measure_noise() {
    let b = rounds(&[1.0]);
    let c = rounds(&[2.0]);
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    let p50 = find(&d, None, Metric::P50);
    assert_eq!(p50.outcome, Outcome::Inconclusive);
    assert!(p50.note.contains("at least 3 rounds"), "{}", p50.note);
}

#[test]
fn identical_rounds_do_not_divide_by_zero() {
    let b = rounds(&[1.0; 5]);
    let same = decide(&[pair(&b, &rounds(&[1.0; 3]))], &GateOptions::default());
    assert!(same.iter().all(|d| d.outcome == Outcome::Pass), "{same:#?}");
    let slower = decide(&[pair(&b, &rounds(&[1.2; 3]))], &GateOptions::default());
    assert_eq!(find(&slower, None, Metric::P99).outcome, Outcome::Fail);
}

fn with_errors(errors: u64, count: u64) -> RoundStats {
    RoundStats {
        iterations: series(1.0, count, errors, 100.0),
        requests: Default::default(),
        contention: None,
        lag_p99_ms: None,
    }
}

#[test]
fn error_rates_are_tested_on_counts_with_a_margin() {
    let opts = GateOptions::default();
    // 0.1% → 3%: a regression whatever the noise.
    let b = vec![with_errors(2, 2000); 5];
    let c = vec![with_errors(60, 2000); 3];
    let d = decide(&[pair(&b, &c)], &opts);
    let e = find(&d, None, Metric::Errors);
    assert_eq!(e.outcome, Outcome::Fail, "{e:#?}");
    assert!((e.change.unwrap() - 0.029).abs() < 1e-9);
    assert!(e.change_low.unwrap() > e.tolerance && e.change_low.unwrap() < 0.029);
    assert!((e.tolerance - MIN_MARGIN).abs() < 1e-12);

    // One stray error against none: within the 0.1 pp margin.
    let b = vec![with_errors(0, 20_000); 5];
    let c = vec![
        with_errors(0, 20_000),
        with_errors(1, 20_000),
        with_errors(0, 20_000),
    ];
    let e = decide(&[pair(&b, &c)], &opts);
    assert_eq!(find(&e, None, Metric::Errors).outcome, Outcome::Pass);

    // The same rate on both sides at large counts: certified within the margin.
    let b = vec![with_errors(100, 100_000); 5];
    let c = vec![with_errors(100, 100_000); 3];
    let e = decide(&[pair(&b, &c)], &opts);
    let e = find(&e, None, Metric::Errors);
    assert_eq!(e.outcome, Outcome::Pass, "{e:#?}");
    assert!(e.change_low.unwrap() < 0.0 && 0.0 < e.change_high.unwrap());

    // 0.2% → 0.45% on 2000-request rounds: beyond the margin but not surely.
    let b = vec![with_errors(4, 2000); 5];
    let c = vec![with_errors(9, 2000); 3];
    let e = decide(&[pair(&b, &c)], &opts);
    let e = find(&e, None, Metric::Errors);
    assert_eq!(e.outcome, Outcome::Inconclusive, "{e:#?}");
    assert!(e.note.contains("as many requests"), "{}", e.note);
}

const MIN_MARGIN: f64 = super::MIN_ERROR_MARGIN;

#[test]
fn holm_steps_down_and_stops_at_the_first_non_rejection() {
    // m = 4: levels 0.0125, 0.01667, 0.025, 0.05. Bonferroni would reject only 0.001.
    let (rej, level) = holm(&[0.013, 0.5, 0.001, 0.02], 0.05);
    assert_eq!(rej, [true, false, true, true]);
    assert!((level[2] - 0.0125).abs() < 1e-12 && (level[0] - 0.05 / 3.0).abs() < 1e-12);
    assert!((level[3] - 0.025).abs() < 1e-12 && (level[1] - 0.05).abs() < 1e-12);
    // 0.02 > 0.05/3 stops the procedure: the 0.024s are not rejected although 0.024 ≤ 0.05/2.
    let (rej, level) = holm(&[0.024, 0.001, 0.02, 0.024], 0.05);
    assert_eq!(rej, [false, true, false, false]);
    assert!(level
        .iter()
        .enumerate()
        .all(|(i, l)| i == 1 || (l - 0.05 / 3.0).abs() < 1e-12));
    assert_eq!(holm(&[], 0.05).0, Vec::<bool>::new());
}

#[test]
fn the_family_is_the_whole_run() {
    // A slowdown that Fails on its own becomes Inconclusive among many other checks: the run's
    // false-alarm budget is shared by every check of every scenario.
    let b = rounds(&[1.00, 1.05, 0.95, 1.04, 0.96]);
    let c = rounds(&[1.25, 1.30, 1.20]);
    let alone = decide(&[pair(&b, &c)], &GateOptions::default());
    assert_eq!(
        find(&alone, None, Metric::P50).outcome,
        Outcome::Fail,
        "{alone:#?}"
    );

    let mut others = Vec::new();
    for _ in 0..30 {
        let mut b = rounds(&BASE);
        for r in &mut b {
            r.iterations.errors.status = 1;
        }
        others.push(b);
    }
    let mut pairs = vec![pair(&b, &c)];
    pairs.extend(others.iter().map(|o| pair(o, o)));
    let crowd = decide(&pairs, &GateOptions::default());
    let p50 = &crowd[0];
    assert_eq!(p50.metric, Metric::P50);
    assert_eq!(p50.outcome, Outcome::Inconclusive, "{p50:#?}");
    let alone_low = find(&alone, None, Metric::P50).change_low.unwrap();
    assert!(p50.change_low.unwrap() < alone_low);
}

#[test]
fn intervals_cover_the_true_change() {
    // Simulated p50 rounds with a known 12% slowdown: the interval [worse end at the Holm level,
    // better end at 95%] must contain it in at least 95% − (Holm level) of runs.
    let sim = Sim {
        requests: 500,
        series: vec![(None, 5.0)],
        ..Sim::default()
    };
    let mut rng = Rng::new(42);
    let runs = 150;
    let mut covered = 0;
    for _ in 0..runs {
        let b = sim.rounds(&mut rng, 5, 0.0);
        let c = sim.rounds(&mut rng, 3, 0.12);
        let d = decide(&[pair(&b, &c)], &GateOptions::default());
        let p50 = find(&d, None, Metric::P50);
        if p50.change_low.unwrap() <= 0.12 && 0.12 <= p50.change_high.unwrap() {
            covered += 1;
        }
    }
    assert!(covered >= runs * 90 / 100, "covered {covered} of {runs}");
    assert!(
        covered < runs,
        "an interval that always covers is too wide to be useful"
    );
}

#[test]
fn paired_rounds_cancel_shared_drift() {
    // Drift of ±25% between A/B pairs, a steady 20% slowdown within each pair.
    let drift = [1.0, 1.25, 0.8, 1.1, 0.9];
    let b = rounds(&drift);
    let c: Vec<RoundStats> = drift
        .iter()
        .enumerate()
        .map(|(i, s)| round(s * (1.2 + 0.005 * i as f64)))
        .collect();
    let paired = decide_paired(&[pair(&b, &c)], &GateOptions::default());
    assert_eq!(
        find(&paired, None, Metric::P99).outcome,
        Outcome::Fail,
        "{paired:#?}"
    );
    let unpaired = decide(&[pair(&b, &c)], &GateOptions::default());
    assert_eq!(
        find(&unpaired, None, Metric::P99).outcome,
        Outcome::Inconclusive
    );

    let uneven = decide_paired(&[pair(&b, &c[..3])], &GateOptions::default());
    assert!(uneven.iter().all(|d| d.outcome == Outcome::NotComparable));
    assert!(uneven[0].note.contains("pairs"), "{}", uneven[0].note);
}

#[test]
fn a_disturbed_pair_is_set_aside_and_said_so() {
    // 10 unchanged pairs within ±1% of each other, drifting ±10% between pairs; in pair 4 the head's
    // round was slowed ×1.8 by a neighbour.
    let drift = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.08, 0.92, 1.02, 0.98];
    let b = rounds(&drift);
    let mut c: Vec<RoundStats> = drift
        .iter()
        .enumerate()
        .map(|(i, s)| round(s * (1.0 + 0.01 * ((i * 3 % 5) as f64 - 2.0) / 2.0)))
        .collect();
    c[4] = round(drift[4] * 1.8);
    let d = decide_paired(&[pair(&b, &c)], &GateOptions::default());
    let p99 = find(&d, None, Metric::P99);
    assert_eq!(p99.outcome, Outcome::Pass, "{p99:#?}");
    assert!(p99.change.unwrap().abs() < 0.01, "{p99:#?}");
    assert!(
        p99.note
            .ends_with("; set aside as disturbed: 1 of 10 A/B pairs (up to ×1.80 off the others)"),
        "{}",
        p99.note
    );
    assert!(p99.change_low.unwrap() <= p99.change.unwrap());
    assert!(p99.change.unwrap() <= p99.change_high.unwrap());
    // The plain t would have averaged it in: +6% and an interval far wider than the tolerance.
    let plain =
        super::stats::with_plain_t(|| decide_paired(&[pair(&b, &c)], &GateOptions::default()));
    let p99 = find(&plain, None, Metric::P99);
    assert_eq!(p99.outcome, Outcome::Inconclusive, "{p99:#?}");
    assert!(p99.change.unwrap() > 0.05, "{p99:#?}");
}

#[test]
fn a_disturbed_current_round_is_set_aside_in_the_file_mode() {
    let b = rounds(&BASE);
    let c = rounds(&[1.01, 0.99, 2.0]);
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    let p50 = find(&d, None, Metric::P50);
    assert_eq!(p50.outcome, Outcome::Pass, "{p50:#?}");
    assert!(
        p50.note
            .contains("set aside as disturbed: 1 of 3 current rounds"),
        "{}",
        p50.note
    );
    assert_eq!((p50.rounds_baseline, p50.rounds_current), (5, 3));
}

#[test]
fn decisions_keep_scenario_and_request_names_in_a_stable_order() {
    let mut b = rounds(&BASE);
    let mut c = rounds(&[1.0, 1.0, 1.0]);
    for r in b.iter_mut().chain(c.iter_mut()) {
        r.requests.insert("pay".into(), series(0.5, 2000, 0, 100.0));
        r.requests
            .insert("cart".into(), series(0.2, 2000, 0, 100.0));
    }
    let mut p = pair(&b, &c);
    p.compare_throughput = true;
    let d = decide(&[p], &GateOptions::default());
    let keys: Vec<(Option<&str>, Metric)> =
        d.iter().map(|d| (d.request.as_deref(), d.metric)).collect();
    use Metric::*;
    assert_eq!(
        keys,
        [
            (None, P50),
            (None, P95),
            (None, P99),
            (None, Errors),
            (None, Throughput),
            (Some("cart"), P50),
            (Some("cart"), P95),
            (Some("cart"), P99),
            (Some("cart"), Errors),
            (Some("pay"), P50),
            (Some("pay"), P95),
            (Some("pay"), P99),
            (Some("pay"), Errors),
        ]
    );
    assert!(d.iter().all(|d| d.scenario == "pkg::checkout"));
}

/// Rounds at `scales` measured with `load` runnable tasks per core.
fn contended(scales: &[f64], load: f64) -> Vec<RoundStats> {
    scales
        .iter()
        .map(|&s| RoundStats {
            contention: Some(super::contention::Contention {
                cores: 2,
                runnable_per_core: load,
                ..Default::default()
            }),
            ..round(s)
        })
        .collect()
}

fn measured(rounds: Vec<RoundStats>) -> super::file::Measurements {
    let mut scenarios = std::collections::BTreeMap::new();
    scenarios.insert(
        "pkg::checkout".to_string(),
        super::file::MeasuredScenario {
            rounds,
            ..Default::default()
        },
    );
    super::file::Measurements {
        origin: "base".into(),
        scenarios,
        ..Default::default()
    }
}

#[test]
fn a_saturated_machine_never_fails_a_run_against_a_quiet_baseline() {
    let base = measured(contended(&BASE, 0.1));
    // Every round 6× slower with two busy loops on the cores: the p95 of the runner.
    let head = measured(contended(&[6.0, 6.2, 5.9], 1.1));
    let (d, s) = super::file::judge(&base, &head, super::GateFlags::default());
    let checks = &d["pkg::checkout"];
    assert!(
        checks.iter().all(|d| d.outcome != Outcome::Fail),
        "{checks:#?}"
    );
    let p95 = checks.iter().find(|d| d.metric == Metric::P95).unwrap();
    assert_eq!(p95.outcome, Outcome::Inconclusive);
    assert!(
        p95.note.starts_with("would be FAIL, but the machine was 1.1× oversubscribed during 3 of 3 rounds; the baseline was recorded at 0.1×"),
        "{}",
        p95.note
    );
    assert_eq!(s.contended, vec!["pkg::checkout".to_string()]);
    assert!(
        s.warnings.iter().any(|w| w.contains("--ab")),
        "{:?}",
        s.warnings
    );

    // One contended round of three is set aside, and the other two decide: a real slowdown fails.
    let mut head = contended(&[1.5, 1.52, 1.49], 0.1);
    head[1] = contended(&[9.0], 1.4).remove(0);
    let (d, s) = super::file::judge(&base, &measured(head), super::GateFlags::default());
    let p50 = d["pkg::checkout"]
        .iter()
        .find(|d| d.metric == Metric::P50)
        .unwrap();
    assert_eq!(p50.outcome, Outcome::Fail, "{p50:#?}");
    assert_eq!(p50.rounds_current, 2);
    assert!(
        p50.note
            .contains("set aside: round 2 of 3 ran under contention"),
        "{}",
        p50.note
    );
    assert!(s.contended.is_empty());

    // The same machine as busy when the baseline was recorded: compared as usual.
    let (d, _) = super::file::judge(
        &measured(contended(&BASE, 1.2)),
        &measured(contended(&[1.5, 1.52, 1.49], 1.3)),
        super::GateFlags::default(),
    );
    assert!(d["pkg::checkout"]
        .iter()
        .any(|d| d.outcome == Outcome::Fail));
}

#[test]
fn a_sub_millisecond_slowdown_against_a_baseline_file_is_no_evidence() {
    // p50, p95, p99 of 0.10, 0.18, 0.28 ms, then 50% slower: only the p99's +0.14 ms clears the
    // between-session drift.
    let base = measured(rounds(&[0.020, 0.0202, 0.0198, 0.0201, 0.0199]));
    let head = measured(rounds(&[0.030, 0.0302, 0.0299]));
    let (d, _) = super::file::judge(&base, &head, super::GateFlags::default());
    let get = |m: Metric| {
        d["pkg::checkout"]
            .iter()
            .find(|d| d.metric == m)
            .unwrap()
            .clone()
    };
    for m in [Metric::P50, Metric::P95] {
        let x = get(m);
        assert_eq!(x.outcome, Outcome::Inconclusive, "{x:#?}");
        assert!(
            x.note
                .starts_with("would be FAIL, but the slowdown is at least 0.0")
                && x.note.contains("--ab"),
            "{}",
            x.note
        );
    }
    assert_eq!(get(Metric::P99).outcome, Outcome::Fail);
    // The same relative slowdown of a service ten times slower fails on every percentile.
    let base = measured(rounds(&[0.20, 0.202, 0.198, 0.201, 0.199]));
    let head = measured(rounds(&[0.30, 0.302, 0.299]));
    let (d, _) = super::file::judge(&base, &head, super::GateFlags::default());
    assert!(d["pkg::checkout"]
        .iter()
        .filter(|d| d.metric.is_latency())
        .all(|d| d.outcome == Outcome::Fail));
}

#[test]
fn a_request_that_is_the_whole_iteration_is_not_checked_twice() {
    let with = |scales: &[f64], name: &str, per_iteration: u64| -> Vec<RoundStats> {
        rounds(scales)
            .into_iter()
            .map(|mut r| {
                let n = r.iterations.count * per_iteration;
                r.requests.insert(name.into(), series(1.0, n, 0, 10.0));
                r
            })
            .collect()
    };
    let (b, c) = (
        with(&BASE, "GET /work", 1),
        with(&[1.0, 1.0, 1.0], "GET /work", 1),
    );
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    assert!(d.iter().all(|d| d.request.is_none()), "{d:#?}");
    assert_eq!(
        d.len(),
        4,
        "p50, p95, p99 and errors of the iterations only"
    );
    // Two calls of it per iteration: a series of its own.
    let (b, c) = (
        with(&BASE, "GET /work", 2),
        with(&[1.0, 1.0, 1.0], "GET /work", 2),
    );
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    assert_eq!(d.iter().filter(|d| d.request.is_some()).count(), 4);
}

#[test]
fn the_faster_rounds_of_a_two_mode_latency_are_not_set_aside() {
    // Measured on the fixture (a p95 at the knee between "served at once" and "waited for a core"):
    // the baseline's 10 rounds all fell in the faster mode, the unchanged run's 5 in both. Setting the
    // two faster current rounds aside (and the baseline's fastest) turned this into "+37%, at least
    // +31%": a false alarm. A neighbour never speeds a round up, so only slower rounds may go.
    let b: Vec<f64> = [4.18, 4.15, 3.36, 4.13, 3.89, 4.08, 4.20, 4.16, 3.98, 4.16]
        .iter()
        .map(|v| v / 4.1)
        .collect();
    let c: Vec<f64> = [4.12, 5.55, 5.66, 4.29, 5.67]
        .iter()
        .map(|v| v / 4.1)
        .collect();
    let (b, c) = (rounds(&b), rounds(&c));
    let d = decide(&[pair(&b, &c)], &GateOptions::default());
    for decision in &d {
        assert_ne!(decision.outcome, Outcome::Fail, "{decision:#?}");
        assert!(!decision.note.contains("set aside"), "{}", decision.note);
    }
    // The mirror case is an improvement, never a failure either way.
    let d = decide(&[pair(&c, &b)], &GateOptions::default());
    assert!(d.iter().all(|d| d.outcome != Outcome::Fail), "{d:#?}");
}
