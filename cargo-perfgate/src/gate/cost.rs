//! The cost checks: a scenario's cost figures (instructions, allocations, bytes and syscalls per
//! iteration, from the cost pass) against the base's, with three outcomes. Pure: no I/O.
//!
//! The figures are counts, not samples: repeated passes of one build agree to a few hundredths of a
//! percent (instructions) or exactly (allocations, syscalls). So a check is not a statistical test
//! but a comparison with a tolerance, widened on both sides by the figure's noise floor (the spread
//! `cargo perfgate calibrate` measured over repeated passes, else [`DEFAULT_FLOORS`]):
//! - instructions and bytes: the change may be up to the scenario's `cost_regression` (default 1%);
//! - allocations and syscalls: exact counts, so any whole one more per iteration (per request, for
//!   a request's checks) fails: the tolerance is [`COUNT_SLACK`] per iteration;
//! - Fail when the change minus the floor exceeds the tolerance, Pass when the change plus the
//!   floor stays within it, else Inconclusive (the change is within the noise of the tolerance).
//!
//! Holm: the cost checks stay out of the latency checks' family. Their false-alarm rate is not a
//! sampling error to correct for but set by the floor (a tolerance above the measured spread of
//! repeated passes), and adding them to the family would only make every latency check stricter.
//! A run passes when every check of both kinds passes.

use std::collections::BTreeMap;

use perfgate_runtime::format::{format_value, Metric, ScenarioSpec, DEFAULT_COST_REGRESSION_PCT};

use super::spec::{describe_spec_change, spec_hash};
use super::{Decision, Outcome};
use crate::cost::{diff_functions, CostFigures, CostMeasurement, FunctionChange, PerRequest};
use crate::machine::{describe_toolchain, describe_toolchain_change, same_toolchain, Toolchain};

/// Relative noise floors used when `calibrate` has not measured the scenario: repeated passes of
/// predict-service's requests agree to a few hundredths of a percent (instructions), to the byte
/// and exactly (the counts). See [`WINDOW_NOISE`] for what does not scale with the work.
pub const DEFAULT_FLOORS: [(Metric, f64); 4] = [
    (Metric::Instructions, 0.001),
    (Metric::Allocs, 0.0),
    (Metric::AllocBytes, 0.001),
    (Metric::Syscalls, 0.0),
];

/// What a window may count more or less than another of the same build, whatever the work per
/// request: a service that works per second of wall time (hyper renders its Date header, ~640
/// instructions each second) does more of it in a window stretched by a loaded machine, and a
/// thread woken by a timer makes another `epoll_wait`. Spread over the requests the figure divides
/// by, this is the floor's minimum. Measured between passes of predict-service: up to 2,000
/// instructions per window (a lookup made 5 times in its window: 2.8% apart; 50 health checks of
/// 9.7k: 0.14%); the constant leaves half as much again for a more loaded machine.
pub const WINDOW_NOISE: [(Metric, f64); 4] = [
    (Metric::Instructions, 3_000.0),
    (Metric::Allocs, 0.0),
    (Metric::AllocBytes, 0.0),
    (Metric::Syscalls, 2.0),
];

/// The floor of a figure averaged over `count` iterations (or requests) with value `base`, in its
/// unit: the relative floor (calibrated, else the default) or the window's noise spread over
/// `count`, whichever is larger.
pub fn floor_abs(
    floors: Option<&CostFloors>,
    request: Option<&str>,
    metric: Metric,
    base: f64,
    count: u64,
) -> f64 {
    let window = WINDOW_NOISE
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or(0.0, |(_, n)| *n);
    (floor_of(floors, request, metric) * base).max(window / count.max(1) as f64)
}

/// Allocations and syscalls per iteration may rise by less than this and still pass: they are
/// whole counts, so one more per iteration (or per request) is a change in code.
pub const COUNT_SLACK: f64 = 0.5;

/// Functions whose instructions per iteration changed most, kept per scenario.
pub const ATTRIBUTION: usize = 5;

/// Per metric name (`instructions`, `item.allocs`), a relative noise floor (0.0003 = 0.03%).
pub type CostFloors = BTreeMap<String, f64>;

/// The floor of `metric` (of `request`, when given): calibrated, else the default.
pub fn floor_of(floors: Option<&CostFloors>, request: Option<&str>, metric: Metric) -> f64 {
    let key = floor_key(request, metric);
    floors
        .and_then(|f| f.get(&key).or_else(|| f.get(metric.as_str())))
        .copied()
        .unwrap_or_else(|| {
            DEFAULT_FLOORS
                .iter()
                .find(|(m, _)| *m == metric)
                .map_or(0.0, |(_, f)| *f)
        })
}

/// `instructions`, or `item.instructions` for a named request.
pub fn floor_key(request: Option<&str>, metric: Metric) -> String {
    match request {
        Some(r) => format!("{r}.{metric}"),
        None => metric.to_string(),
    }
}

/// One side of a cost comparison.
#[derive(Debug, Clone, Copy)]
pub struct CostSide<'a> {
    pub figures: &'a CostFigures,
    pub requests: &'a BTreeMap<String, CostFigures>,
    pub per_request: PerRequest,
}

/// What a scenario's cost checks are held to.
#[derive(Debug, Clone, Copy)]
pub struct CostTolerance<'a> {
    /// `cost_regression` as a fraction (0.01 = 1%).
    pub relative: f64,
    pub floors: Option<&'a CostFloors>,
}

impl<'a> CostTolerance<'a> {
    /// The scenario's declared `cost_regression` (the default without a spec) and its floors.
    pub fn of(spec: Option<&ScenarioSpec>, floors: Option<&'a CostFloors>) -> Self {
        CostTolerance {
            relative: spec.map_or(DEFAULT_COST_REGRESSION_PCT, |s| s.cost_regression_pct) / 100.0,
            floors,
        }
    }
}

/// The base side of a scenario's cost checks: a baseline file's recorded figures, or the
/// merge-base measured in the same run (`--ab`).
#[derive(Debug, Clone)]
pub struct CostBase<'a> {
    pub figures: CostFigures,
    pub requests: BTreeMap<String, CostFigures>,
    pub per_request: PerRequest,
    pub spec_parts: &'a BTreeMap<String, String>,
    pub toolchain: &'a Toolchain,
}

/// A scenario's cost checks against `base` (None: the base has no cost figures for it): first
/// whether the two are comparable at all (the same toolchain, the same cost pass), then
/// [`decide`]. `origin` names the base in notes.
pub fn judge(
    scenario: &str,
    origin: &str,
    base: Option<&CostBase<'_>>,
    head: &CostMeasurement,
    head_toolchain: &Toolchain,
    tol: CostTolerance<'_>,
) -> (Vec<Decision>, Vec<FunctionChange>) {
    let not_comparable = |note: String| {
        (
            vec![Decision::not_comparable(
                scenario,
                None,
                Metric::Instructions,
                tol.relative,
                note,
            )],
            Vec::new(),
        )
    };
    let Some(base) = base else {
        return not_comparable(format!(
            "no cost figures for this scenario in {origin}: its cost is compared once they are recorded \
             on the base branch (`cargo perfgate record`, or `record --cost-only`)"
        ));
    };
    if !same_toolchain(base.toolchain, head_toolchain) {
        return not_comparable(format!(
            "cost not comparable: the baseline's figures were measured with {}, this run with {} ({}). \
             Instruction and allocation counts are compared only under the same compiler, valgrind and C \
             library: re-record the baseline with this toolchain, or measure the merge-base here with `--ab`",
            describe_toolchain(base.toolchain),
            describe_toolchain(head_toolchain),
            describe_toolchain_change(base.toolchain, head_toolchain)
        ));
    }
    if spec_hash(base.spec_parts) != spec_hash(&head.spec_parts) {
        return not_comparable(format!(
            "cost not comparable: the cost pass changed since the baseline ({}); re-record the baseline",
            describe_spec_change(base.spec_parts, &head.spec_parts)
        ));
    }
    decide(
        scenario,
        CostSide {
            figures: &base.figures,
            requests: &base.requests,
            per_request: base.per_request,
        },
        CostSide {
            figures: &head.figures,
            requests: &head.requests,
            per_request: head.per_request,
        },
        tol,
    )
}

/// Every cost check of one scenario, and the functions that changed most. Per named request too
/// (instructions and allocations) when both sides counted each request in its own window.
pub fn decide(
    scenario: &str,
    base: CostSide<'_>,
    head: CostSide<'_>,
    tol: CostTolerance<'_>,
) -> (Vec<Decision>, Vec<FunctionChange>) {
    let mut out = Vec::new();
    let attribution = attribution(base.figures, head.figures, tol);
    for metric in Metric::COST {
        let (Some(b), Some(h)) = (base.figures.value(metric), head.figures.value(metric)) else {
            if head.figures.value(metric).is_some() || base.figures.value(metric).is_some() {
                out.push(Decision::not_comparable(
                    scenario,
                    None,
                    metric,
                    tol.relative,
                    format!(
                        "{metric} was measured on one side only (the bytes come from the massif run)"
                    ),
                ));
            }
            continue;
        };
        let mut d = decide_one(scenario, None, metric, (b, h), head.figures.iterations, tol);
        if metric == Metric::Instructions && d.outcome != Outcome::Pass && !attribution.is_empty() {
            let named: Vec<String> = attribution.iter().take(3).map(|c| c.describe()).collect();
            d.note = format!("{}; largest changes: {}", d.note, named.join(", "));
        }
        out.push(d);
    }
    if base.per_request == PerRequest::Windows && head.per_request == PerRequest::Windows {
        for (name, h) in head.requests {
            let Some(b) = base.requests.get(name) else {
                continue;
            };
            for metric in [Metric::Instructions, Metric::Allocs] {
                let Some((bv, hv)) = b.value(metric).zip(h.value(metric)) else {
                    continue;
                };
                // A request made too rarely in the window for its floor to fall within the
                // tolerance could never pass: its cost is checked with the iteration's only.
                let floor = floor_abs(tol.floors, Some(name), metric, bv, h.iterations);
                let tol_abs = match metric {
                    Metric::Allocs => COUNT_SLACK,
                    _ => tol.relative * bv,
                };
                if floor < tol_abs {
                    out.push(decide_one(
                        scenario,
                        Some(name),
                        metric,
                        (bv, hv),
                        h.iterations,
                        tol,
                    ));
                }
            }
        }
    }
    (out, attribution)
}

/// The functions whose self instructions per iteration changed by more than the noise could
/// explain, largest change first.
fn attribution(
    base: &CostFigures,
    head: &CostFigures,
    tol: CostTolerance<'_>,
) -> Vec<FunctionChange> {
    let noise = floor_abs(
        tol.floors,
        None,
        Metric::Instructions,
        base.instructions,
        head.iterations,
    );
    // Below 0.05% of the iteration a function's change is not worth a line, whatever the floor.
    let threshold = noise.max(base.instructions * 0.0005).max(1.0);
    diff_functions(base, head, ATTRIBUTION * 4)
        .into_iter()
        .filter(|c| c.delta.abs() >= threshold)
        .take(ATTRIBUTION)
        .collect()
}

/// One check: `(base, head)` in the metric's unit per iteration (or per request), averaged over
/// `count` of them in the window.
pub fn decide_one(
    scenario: &str,
    request: Option<&str>,
    metric: Metric,
    (base, head): (f64, f64),
    count: u64,
    tol: CostTolerance<'_>,
) -> Decision {
    let counted = matches!(metric, Metric::Allocs | Metric::Syscalls);
    let tol_abs = if counted {
        COUNT_SLACK
    } else {
        tol.relative * base
    };
    let floor_abs = floor_abs(tol.floors, request, metric, base, count);
    let floor = if base > 0.0 { floor_abs / base } else { 0.0 };
    let delta = head - base;
    let outcome = if delta - floor_abs > tol_abs {
        Outcome::Fail
    } else if delta + floor_abs <= tol_abs {
        Outcome::Pass
    } else {
        Outcome::Inconclusive
    };
    let per = if request.is_some() {
        "request"
    } else {
        "iteration"
    };
    let relative = |x: f64| (base > 0.0).then(|| x / base);
    let allowed = if counted {
        format!("{COUNT_SLACK} more per {per}")
    } else {
        format!("{:.1}%", tol.relative * 100.0)
    };
    let shown = |v: f64| format_value(metric, v);
    let what = match request {
        Some(r) => format!("{metric} per `{r}` request"),
        None => format!("{metric} per iteration"),
    };
    let change =
        relative(delta).map_or_else(|| format!("{:+}", delta), |c| format!("{:+.2}%", c * 100.0));
    let note = match outcome {
        Outcome::Fail => format!(
            "{what} {} → {} ({change}), beyond the tolerance ({allowed}) and its noise floor ({:.3}%)",
            shown(base),
            shown(head),
            floor * 100.0
        ),
        Outcome::Pass => String::new(),
        _ => format!(
            "{what} {} → {} ({change}): within the noise floor ({:.3}%) of the tolerance ({allowed}); \
             `cargo perfgate calibrate` measures the floor on this machine",
            shown(base),
            shown(head),
            floor * 100.0
        ),
    };
    Decision {
        scenario: scenario.to_string(),
        request: request.map(str::to_string),
        metric,
        outcome,
        baseline: Some(base),
        current: Some(head),
        change: relative(delta),
        change_low: relative(delta - floor_abs),
        change_high: relative(delta + floor_abs),
        tolerance: relative(tol_abs).unwrap_or(0.0),
        resolves: Some(floor),
        rounds_baseline: 1,
        rounds_current: 1,
        note,
    }
}

/// The repeatability of repeated cost passes of one build: per check, the largest relative
/// distance of a pass from their median, doubled (a single pass's figure may sit anywhere in that
/// range, and so may the base's). None for fewer than two passes.
pub fn floors_from_passes(
    passes: &[(&CostFigures, &BTreeMap<String, CostFigures>)],
) -> Option<CostFloors> {
    if passes.len() < 2 {
        return None;
    }
    let mut out = CostFloors::new();
    let spread = |values: Vec<f64>| -> Option<f64> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        if median <= 0.0 {
            return Some(0.0);
        }
        let far = v.iter().map(|x| (x - median).abs()).fold(0.0, f64::max);
        Some(2.0 * far / median)
    };
    for metric in Metric::COST {
        if let Some(f) = spread(passes.iter().filter_map(|(f, _)| f.value(metric)).collect()) {
            out.insert(floor_key(None, metric), f);
        }
        let names: std::collections::BTreeSet<&String> =
            passes.iter().flat_map(|(_, r)| r.keys()).collect();
        for name in names {
            let values = passes
                .iter()
                .filter_map(|(_, r)| r.get(name).and_then(|f| f.value(metric)))
                .collect();
            if let Some(f) = spread(values) {
                out.insert(floor_key(Some(name), metric), f);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(instructions: f64, allocs: f64, functions: &[(&str, f64)]) -> CostFigures {
        CostFigures {
            iterations: 50,
            instructions,
            allocs,
            alloc_bytes: Some(9296.0),
            syscalls: 3.0,
            top_functions: functions.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    const TOL: CostTolerance<'static> = CostTolerance {
        relative: 0.01,
        floors: None,
    };

    fn side<'a>(f: &'a CostFigures, r: &'a BTreeMap<String, CostFigures>) -> CostSide<'a> {
        CostSide {
            figures: f,
            requests: r,
            per_request: PerRequest::Attributed,
        }
    }

    #[test]
    fn two_percent_more_instructions_fail_a_one_percent_tolerance_and_name_the_function() {
        let none = BTreeMap::new();
        let base = figures(
            100_000.0,
            125.5,
            &[("hyper::parse", 40_000.0), ("app::burn", 1_000.0)],
        );
        let head = figures(
            102_000.0,
            125.5,
            &[("hyper::parse", 40_010.0), ("app::burn", 3_000.0)],
        );
        let (d, attribution) = decide("pkg::s", side(&base, &none), side(&head, &none), TOL);
        let instr = d.iter().find(|d| d.metric == Metric::Instructions).unwrap();
        assert_eq!(instr.outcome, Outcome::Fail);
        assert!((instr.change.unwrap() - 0.02).abs() < 1e-12);
        assert!((instr.tolerance - 0.01).abs() < 1e-12);
        assert!(
            instr
                .note
                .contains("largest changes: +2.00k instr/iter in app::burn"),
            "{}",
            instr.note
        );
        // The 10 instructions of hyper::parse are below the noise: not named.
        assert_eq!(attribution.len(), 1, "{attribution:?}");
        for m in [Metric::Allocs, Metric::AllocBytes, Metric::Syscalls] {
            assert_eq!(
                d.iter().find(|d| d.metric == m).unwrap().outcome,
                Outcome::Pass
            );
        }
    }

    #[test]
    fn one_more_allocation_per_iteration_fails_however_many_there_are() {
        let none = BTreeMap::new();
        let base = figures(100_000.0, 125.5, &[]);
        let head = figures(100_050.0, 126.5, &[]);
        let (d, _) = decide("pkg::s", side(&base, &none), side(&head, &none), TOL);
        let allocs = d.iter().find(|d| d.metric == Metric::Allocs).unwrap();
        assert_eq!(allocs.outcome, Outcome::Fail, "{allocs:?}");
        assert!(
            allocs.note.contains("0.5 more per iteration"),
            "{}",
            allocs.note
        );
        assert_eq!(
            d.iter()
                .find(|d| d.metric == Metric::Instructions)
                .unwrap()
                .outcome,
            Outcome::Pass
        );
        // A fraction of an allocation (one iteration in fifty) passes.
        let head = figures(100_000.0, 125.52, &[]);
        let (d, _) = decide("pkg::s", side(&base, &none), side(&head, &none), TOL);
        assert_eq!(
            d.iter()
                .find(|d| d.metric == Metric::Allocs)
                .unwrap()
                .outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn a_change_within_the_floor_of_the_tolerance_is_inconclusive() {
        let floors: CostFloors = [("instructions".to_string(), 0.002)].into();
        let tol = CostTolerance {
            relative: 0.01,
            floors: Some(&floors),
        };
        let d = decide_one(
            "s",
            None,
            Metric::Instructions,
            (100_000.0, 101_100.0),
            50,
            tol,
        );
        assert_eq!(d.outcome, Outcome::Inconclusive, "{d:?}");
        assert!(d.note.contains("within the noise floor"), "{}", d.note);
        assert!((d.change_low.unwrap() - 0.009).abs() < 1e-9);
        assert!((d.change_high.unwrap() - 0.013).abs() < 1e-9);
        assert_eq!(
            decide_one(
                "s",
                None,
                Metric::Instructions,
                (100_000.0, 101_300.0),
                50,
                tol
            )
            .outcome,
            Outcome::Fail
        );
        assert_eq!(
            decide_one(
                "s",
                None,
                Metric::Instructions,
                (100_000.0, 100_700.0),
                50,
                tol
            )
            .outcome,
            Outcome::Pass
        );
        // Less work is never a regression.
        assert_eq!(
            decide_one(
                "s",
                None,
                Metric::Instructions,
                (100_000.0, 50_000.0),
                50,
                tol
            )
            .outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn requests_counted_in_their_own_windows_get_their_own_checks() {
        let mut base_r = BTreeMap::new();
        base_r.insert("item".to_string(), figures(12_000.0, 6.0, &[]));
        base_r.insert("item_missing".to_string(), figures(9_000.0, 4.0, &[]));
        let mut head_r = base_r.clone();
        head_r.get_mut("item").unwrap().allocs = 7.0;
        let (b, h) = (figures(13_000.0, 6.4, &[]), figures(13_000.0, 7.4, &[]));
        fn windows<'a>(f: &'a CostFigures, r: &'a BTreeMap<String, CostFigures>) -> CostSide<'a> {
            CostSide {
                figures: f,
                requests: r,
                per_request: PerRequest::Windows,
            }
        }
        let (d, _) = decide("pkg::s", windows(&b, &base_r), windows(&h, &head_r), TOL);
        let failed: Vec<String> = d
            .iter()
            .filter(|d| d.outcome == Outcome::Fail)
            .map(Decision::check_name)
            .collect();
        assert_eq!(failed, ["allocs", "item.allocs"]);
        assert_eq!(d.len(), 4 + 2 * 2);
        // Made 3 times in the window: its instructions' floor (1,000 of 9,000) is wider than the
        // tolerance, so only its allocations get a check of their own.
        for r in [&mut base_r, &mut head_r] {
            r.get_mut("item_missing").unwrap().iterations = 3;
        }
        let (d, _) = decide("pkg::s", windows(&b, &base_r), windows(&h, &head_r), TOL);
        let names: Vec<String> = d.iter().map(Decision::check_name).collect();
        assert!(
            !names.contains(&"item_missing.instructions".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"item_missing.allocs".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn another_toolchain_or_cost_pass_is_not_comparable_and_says_what_changed() {
        let parts: BTreeMap<String, String> = [(
            "cost window".to_string(),
            "20 warm-up + 50 measured iterations".to_string(),
        )]
        .into();
        let tc = Toolchain {
            os: "linux x86_64".into(),
            rustc: Some("rustc 1.95.0 (x 2026-01-01)".into()),
            valgrind: Some("valgrind-3.19.0".into()),
            libc: Some("glibc 2.36".into()),
            cpu_level: Some("x86-64-v3".into()),
        };
        let head = CostMeasurement {
            warmup: 20,
            iterations: 50,
            figures: figures(100_000.0, 125.5, &[]),
            requests: BTreeMap::new(),
            per_request: PerRequest::Attributed,
            not_idle: 0,
            clock: None,
            secs: 3.0,
            window_secs: 1.0,
            spec_parts: parts.clone(),
            attribution: vec![],
        };
        let base = CostBase {
            figures: figures(100_000.0, 125.5, &[]),
            requests: BTreeMap::new(),
            per_request: PerRequest::Attributed,
            spec_parts: &parts,
            toolchain: &tc,
        };
        let (d, _) = judge("s", "b.toml", Some(&base), &head, &tc, TOL);
        assert!(d.iter().all(|d| d.outcome == Outcome::Pass), "{d:?}");
        let newer = Toolchain {
            rustc: Some("rustc 1.96.0 (y 2026-03-01)".into()),
            ..tc.clone()
        };
        let (d, _) = judge("s", "b.toml", Some(&base), &head, &newer, TOL);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].outcome, Outcome::NotComparable);
        assert!(
            d[0].note.contains("cost not comparable")
                && d[0].note.contains("rustc 1.95.0 → rustc 1.96.0"),
            "{}",
            d[0].note
        );
        let other: BTreeMap<String, String> = [(
            "cost window".to_string(),
            "20 warm-up + 10 measured iterations".to_string(),
        )]
        .into();
        let changed = CostBase {
            spec_parts: &other,
            ..base.clone()
        };
        let (d, _) = judge("s", "b.toml", Some(&changed), &head, &tc, TOL);
        assert!(d[0].note.contains("cost window"), "{}", d[0].note);
        let (d, _) = judge("s", "b.toml", None, &head, &tc, TOL);
        assert!(
            d[0].note
                .contains("no cost figures for this scenario in b.toml"),
            "{}",
            d[0].note
        );
    }

    #[test]
    fn floors_of_repeated_passes() {
        let none = BTreeMap::new();
        let a = figures(100_000.0, 125.5, &[]);
        let b = figures(100_010.0, 125.5, &[]);
        let c = figures(99_995.0, 125.5, &[]);
        let floors = floors_from_passes(&[(&a, &none), (&b, &none), (&c, &none)]).unwrap();
        assert!((floors["instructions"] - 0.0002).abs() < 1e-9, "{floors:?}");
        assert_eq!(floors["allocs"], 0.0);
        assert!(floors_from_passes(&[(&a, &none)]).is_none());
        assert_eq!(
            floor_of(Some(&floors), None, Metric::Instructions),
            floors["instructions"]
        );
        assert_eq!(floor_of(None, Some("x"), Metric::Instructions), 0.001);
    }

    #[test]
    fn a_request_made_a_few_times_in_the_window_has_a_wider_floor() {
        // 3,000 instructions of window noise over 5 requests of 14k: 4.3%, over 50 iterations of
        // 106k: the relative 0.1%.
        assert!((floor_abs(None, None, Metric::Instructions, 14_000.0, 5) - 600.0).abs() < 1e-9);
        assert!((floor_abs(None, None, Metric::Instructions, 106_000.0, 50) - 106.0).abs() < 1e-9);
        // The lookup measured 2.8% apart in two passes of one build: not a regression (and not
        // certified either: the floor is wider than the tolerance).
        let d = decide_one(
            "s",
            Some("item_missing"),
            Metric::Instructions,
            (14_090.0, 14_490.0),
            5,
            TOL,
        );
        assert_eq!(d.outcome, Outcome::Inconclusive, "{d:?}");
        // Syscalls: an extra epoll_wait in a window of 50 is noise; one more per request is not.
        let d = decide_one("s", None, Metric::Syscalls, (3.04, 3.06), 50, TOL);
        assert_eq!(d.outcome, Outcome::Pass);
        let d = decide_one("s", None, Metric::Syscalls, (3.04, 4.04), 50, TOL);
        assert_eq!(d.outcome, Outcome::Fail);
    }
}
