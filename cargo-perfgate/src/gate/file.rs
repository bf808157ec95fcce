//! The file gate: a run's measured scenarios against a baseline's, each checked for a comparable spec
//! and machine first, then decided together so that Holm covers every check of the run.

use std::collections::BTreeMap;

use perfgate_runtime::format::{LoadModel, Metric, ScenarioSpec};
use serde::{Deserialize, Serialize};

use super::spec::describe_spec_change;
use super::{decide, Decision, GateFlags, GateOptions, Outcome, RoundStats, ScenarioPair};
use crate::machine::{describe_machine, same_machine, Fingerprint};

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
    let mut pairs = Vec::new();
    for (id, cur) in &head.scenarios {
        let spec = cur
            .spec
            .as_ref()
            .or_else(|| base.scenarios.get(id).and_then(|b| b.spec.as_ref()));
        let tolerance = spec.map_or(perfgate_runtime::format::DEFAULT_REGRESSION_PCT, |s| {
            s.regression_pct
        }) / 100.0;
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
                    format!(
                        "not comparable: the scenario changed since the baseline ({}); re-record the baseline",
                        describe_spec_change(&old.spec_parts, &cur.spec_parts)
                    ),
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
        pairs.push(ScenarioPair {
            scenario: id.as_str(),
            tolerance,
            compare_throughput,
            baseline: &old.rounds,
            current: &cur.rounds,
        });
    }
    let decisions = if pairs.is_empty() {
        Vec::new()
    } else {
        decide(&pairs, &GateOptions::default())
    };
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
        for d in ds {
            match d.outcome {
                Outcome::Fail => summary.fails += 1,
                Outcome::Inconclusive => summary.inconclusive += 1,
                Outcome::NotComparable => summary.not_comparable += 1,
                Outcome::Pass => {}
            }
        }
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
