//! The file gate: a run's measured scenarios against a baseline's, each checked for a comparable spec
//! and machine first, then decided together so that Holm covers every check of the run.

use std::collections::BTreeMap;

use perfgate_runtime::format::{LoadModel, Metric, ScenarioSpec};
use serde::{Deserialize, Serialize};

use super::contention::{screen, Screened};
use super::spec::{describe_spec_change, tier_change};
use super::{decide, Decision, GateFlags, GateOptions, Outcome, RoundStats, ScenarioPair};
use crate::machine::{describe_machine, same_machine, Fingerprint};

/// Rounds per scenario of a run compared with a baseline file, unless `--rounds` says otherwise.
/// With [`DEFAULT_RECORD_ROUNDS`] in the baseline, a one-request scenario whose rounds drift by about
/// 1% is caught at +15% against a 10% tolerance in 97.5% of simulated runs (5 against 5 rounds:
/// 89%; 3 against 5: 77%), never failing unchanged (`sim::file_budget_table`, docs/NOISE.md).
pub const DEFAULT_RUN_ROUNDS: usize = 5;

/// Rounds per scenario `cargo perfgate record` takes unless `--rounds` says otherwise: recorded
/// once per merge, so the cheapest place to buy the file mode its power.
pub const DEFAULT_RECORD_ROUNDS: usize = 10;

/// One side of a comparison (a baseline file, or a run): its scenarios' rounds and what makes them
/// comparable.
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// What the side is, for messages: `perfgate.baseline.toml at 1a2b3c (merge-base …)`, a path.
    pub origin: String,
    pub machine: Fingerprint,
    pub scenarios: BTreeMap<String, MeasuredScenario>,
}

#[derive(Debug, Clone, Default)]
pub struct MeasuredScenario {
    pub rounds: Vec<RoundStats>,
    pub spec_hash: Option<String>,
    pub spec_parts: BTreeMap<String, String>,
    pub spec: Option<ScenarioSpec>,
    /// A baseline entry with cost figures only (`record --cost-only`): no latency checks.
    pub cost_only: bool,
}

/// What the gate found for a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct GateSummary {
    /// Where the baseline was read from (or looked for).
    pub baseline: Option<String>,
    /// The commit it was read at.
    pub commit: Option<String>,
    /// Whether a baseline file was found there.
    pub found: bool,
    /// Whether it was recorded on a machine like this one.
    pub same_machine: bool,
    pub fails: usize,
    pub inconclusive: usize,
    pub not_comparable: usize,
    /// Said on stderr and kept here for reports.
    pub warnings: Vec<String>,
    /// Scenarios whose every round ran under contention the baseline did not have (their checks
    /// cannot fail; `ab = "auto"` measures them with `--ab` instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contended: Vec<String>,
}

impl GateSummary {
    /// Counts the outcomes of `decisions` into the summary.
    pub fn count(&mut self, decisions: &[Decision]) {
        for d in decisions {
            match d.outcome {
                Outcome::Fail => self.fails += 1,
                Outcome::Inconclusive => self.inconclusive += 1,
                Outcome::NotComparable => self.not_comparable += 1,
                Outcome::Pass => {}
            }
        }
    }
}

pub(crate) fn not_comparable(
    id: &str,
    note: String,
    tolerance: f64,
    b: usize,
    c: usize,
) -> Decision {
    Decision {
        rounds_baseline: b,
        rounds_current: c,
        ..Decision::not_comparable(id, None, Metric::P99, tolerance, note)
    }
}

/// How far a sub-millisecond latency of an unchanged service moved between two sessions on one
/// machine: up to +0.06 ms for a p50 of ~0.1 ms (the wake-up latency of idle threads, which the
/// machine's state sets, not the code). Rounds of one session cannot show it; a baseline recorded
/// in another session carries it.
pub const DRIFT_FLOOR_MS: f64 = 0.1;

/// A latency check that fails by less than [`DRIFT_FLOOR_MS`] in absolute terms (the lower end of
/// its interval) becomes inconclusive: against a baseline file, such a change is no evidence of a
/// regression; `--ab` measures both sides in one session and can decide it.
fn hold_drift(d: &mut Decision) {
    if d.outcome != Outcome::Fail || !d.metric.is_latency() {
        return;
    }
    let (Some(base), Some(low)) = (d.baseline, d.change_low) else {
        return;
    };
    let at_least = base * low;
    if at_least < DRIFT_FLOOR_MS {
        d.outcome = Outcome::Inconclusive;
        d.note = format!(
            "would be FAIL, but the slowdown is at least {at_least:.3} ms: sub-millisecond latencies \
             drift by up to {DRIFT_FLOOR_MS} ms between sessions on one machine, so against a baseline \
             file it is no evidence of a regression (--ab measures both sides in one session) ({})",
            d.note
        );
    }
}

/// Every scenario of `head` against `base`: decisions per scenario id, and the warnings to show.
pub fn judge(
    base: &Measurements,
    head: &Measurements,
    flags: GateFlags,
) -> (BTreeMap<String, Vec<Decision>>, GateSummary) {
    let mut out: BTreeMap<String, Vec<Decision>> = BTreeMap::new();
    let mut summary = GateSummary {
        baseline: Some(base.origin.clone()),
        found: true,
        same_machine: same_machine(&base.machine, &head.machine),
        ..Default::default()
    };
    // (id, tolerance, throughput compared, baseline rounds, current rounds screened)
    let mut todo = Vec::new();
    for (id, cur) in &head.scenarios {
        let spec = cur
            .spec
            .as_ref()
            .or_else(|| base.scenarios.get(id).and_then(|b| b.spec.as_ref()));
        let tolerance = spec.map_or(perfgate_runtime::format::DEFAULT_REGRESSION_PCT, |s| {
            s.regression_pct
        }) / 100.0;
        if base.scenarios.get(id).is_some_and(|b| b.cost_only) {
            continue;
        }
        let Some(old) = base.scenarios.get(id) else {
            out.entry(id.clone()).or_default().push(not_comparable(
                id,
                format!("no baseline for this scenario in {} (a new scenario? it is compared once the baseline is re-recorded on the base branch)", base.origin),
                tolerance,
                0,
                cur.rounds.len(),
            ));
            continue;
        };
        if let (Some(a), Some(b)) = (&old.spec_hash, &cur.spec_hash) {
            if a != b {
                out.entry(id.clone()).or_default().push(not_comparable(
                    id,
                    match tier_change(&old.spec_parts, &cur.spec_parts) {
                        Some((was, now)) => format!(
                            "not comparable: the baseline was measured in the {was} tier and this run in the {now} \
                             tier ({}); compare within one tier: record this tier's baseline with \
                             `cargo perfgate record --tier {now}`",
                            describe_spec_change(&old.spec_parts, &cur.spec_parts)
                        ),
                        None => format!(
                            "not comparable: the scenario changed since the baseline ({}); re-record the baseline",
                            describe_spec_change(&old.spec_parts, &cur.spec_parts)
                        ),
                    },
                    tolerance,
                    old.rounds.len(),
                    cur.rounds.len(),
                ));
                continue;
            }
        }
        if old.rounds.is_empty() {
            out.entry(id.clone()).or_default().push(not_comparable(
                id,
                format!(
                    "the baseline in {} has no rounds for this scenario",
                    base.origin
                ),
                tolerance,
                0,
                cur.rounds.len(),
            ));
            continue;
        }
        let compare_throughput = spec.is_some_and(|s| matches!(s.load, LoadModel::Closed { .. }));
        let screened = if flags.ignore_contention {
            Screened {
                kept: cur.rounds.clone(),
                ..Default::default()
            }
        } else {
            screen(&old.rounds, &cur.rounds)
        };
        todo.push((id, tolerance, compare_throughput, &old.rounds, screened));
    }
    let pairs: Vec<ScenarioPair> = todo
        .iter()
        .map(
            |(id, tolerance, compare_throughput, base, screened)| ScenarioPair {
                scenario: id.as_str(),
                tolerance: *tolerance,
                compare_throughput: *compare_throughput,
                baseline: base,
                current: &screened.kept,
            },
        )
        .collect();
    let mut decisions = if pairs.is_empty() {
        Vec::new()
    } else {
        decide(&pairs, &GateOptions::default())
    };
    for (id, _, _, _, screened) in &todo {
        let mine = decisions.iter_mut().filter(|d| &d.scenario == *id);
        if let Some(why) = &screened.all_flagged {
            for d in mine {
                if d.outcome == Outcome::Fail {
                    d.outcome = Outcome::Inconclusive;
                    d.note = format!(
                        "would be FAIL, but {why}: a round taken under contention the baseline did not \
                         have is no evidence of a regression ({})",
                        d.note
                    );
                } else {
                    d.note.push_str(&format!("; {why}"));
                }
            }
            summary.contended.push((*id).clone());
            summary.warnings.push(format!(
                "{id}: {why}; its regression checks cannot fail on these rounds (rerun on a quieter \
                 machine, or use --ab, which measures the merge-base under the same conditions)"
            ));
        } else if let Some(why) = &screened.baseline_flagged {
            for d in mine {
                if d.outcome == Outcome::Pass && d.metric != Metric::Errors {
                    d.outcome = Outcome::Inconclusive;
                    d.note = format!(
                        "would pass, but {why}: a slower baseline can hide a regression ({})",
                        d.note
                    );
                }
            }
            summary.warnings.push(format!(
                "{id}: {why}; its checks cannot pass on it: re-record the baseline on a machine as \
                 quiet as the CI runner's usual, or use --ab"
            ));
        } else if let Some(note) = &screened.note {
            for d in mine {
                d.note.push_str(note);
            }
        }
    }
    for d in decisions.iter_mut() {
        hold_drift(d);
    }
    let other_machine = !summary.same_machine && !flags.allow_other_machine;
    for mut d in decisions {
        if other_machine && matches!(d.outcome, Outcome::Pass | Outcome::Fail) {
            d.note = format!(
                "would be {} on the same machine; the baseline was recorded on another machine: {}",
                match d.outcome {
                    Outcome::Fail => "FAIL",
                    _ => "pass",
                },
                d.note
            );
            d.outcome = Outcome::Inconclusive;
        }
        out.entry(d.scenario.clone()).or_default().push(d);
    }
    if !summary.same_machine {
        summary.warnings.push(format!(
            "the baseline in {} was recorded on another machine ({}; this one: {}){}",
            base.origin,
            describe_machine(&base.machine),
            describe_machine(&head.machine),
            if flags.allow_other_machine {
                "; compared anyway (--allow-other-machine)"
            } else {
                "; its checks are inconclusive. Re-record the baseline on the CI runner, or pass --allow-other-machine"
            }
        ));
    }
    for ds in out.values() {
        summary.count(ds);
    }
    if summary.inconclusive > 0 && !other_machine {
        summary.warnings.push(format!(
            "{} regression check{} inconclusive: the rounds are too noisy or too few to decide (more rounds with \
             `--rounds N` or a longer `--duration` would help)",
            summary.inconclusive,
            if summary.inconclusive == 1 { " is" } else { "s are" }
        ));
    }
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(hash: &str, rounds: usize, cpu: &str) -> Measurements {
        let mut parts = BTreeMap::new();
        parts.insert("load".to_string(), hash.to_string());
        let mut scenarios = BTreeMap::new();
        scenarios.insert(
            "pkg::a".to_string(),
            MeasuredScenario {
                rounds: vec![RoundStats::default(); rounds],
                spec_hash: Some(crate::gate::spec::spec_hash(&parts)),
                spec_parts: parts,
                spec: Some(crate::slo::tests::spec(vec![])),
                cost_only: false,
            },
        );
        Measurements {
            origin: "base".into(),
            machine: Fingerprint {
                cpu_model: Some(cpu.into()),
                cores: 2,
                ..Default::default()
            },
            scenarios,
        }
    }

    #[test]
    fn changed_specs_and_new_scenarios_are_not_comparable() {
        let (d, s) = judge(
            &side("open 100/s", 5, "x"),
            &side("open 200/s", 3, "x"),
            GateFlags::default(),
        );
        assert_eq!(d["pkg::a"].len(), 1);
        assert_eq!(d["pkg::a"][0].outcome, Outcome::NotComparable);
        assert!(
            d["pkg::a"][0].note.contains("`open 100/s` → `open 200/s`"),
            "{}",
            d["pkg::a"][0].note
        );
        assert_eq!(s.not_comparable, 1);
        assert!(s.same_machine);
        // A baseline of another tier says so, and how to get one of this tier.
        let mut nightly = side("open 100/s", 3, "x");
        let sc = nightly.scenarios.get_mut("pkg::a").unwrap();
        sc.spec_parts.insert("tier".into(), "nightly".into());
        sc.spec_hash = Some(crate::gate::spec::spec_hash(&sc.spec_parts));
        let (d, _) = judge(&side("open 100/s", 5, "x"), &nightly, GateFlags::default());
        let note = &d["pkg::a"][0].note;
        assert!(
            note.contains("measured in the smoke tier and this run in the nightly tier")
                && note.contains("`cargo perfgate record --tier nightly`")
                && note.contains("tier added"),
            "{note}"
        );
        let mut head = side("open 100/s", 3, "x");
        let sc = head.scenarios.remove("pkg::a").unwrap();
        head.scenarios.insert("pkg::new".into(), sc);
        let (d, _) = judge(&side("open 100/s", 5, "x"), &head, GateFlags::default());
        assert!(
            d["pkg::new"][0]
                .note
                .contains("no baseline for this scenario"),
            "{:?}",
            d
        );
        // Another machine is said, whatever else happens.
        let (_, s) = judge(
            &side("open 100/s", 5, "x"),
            &side("open 200/s", 3, "y"),
            GateFlags::default(),
        );
        assert!(
            !s.same_machine && s.warnings.iter().any(|w| w.contains("another machine")),
            "{s:?}"
        );
    }
}
