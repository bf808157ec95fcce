//! How busy the machine was during a round, and the rule, fixed in advance, that says when a round ran
//! under contention its reference did not have. Pure: the readings come from `service/contention.rs`.
//!
//! # Why
//! A latency measured while other work holds the cores is the scheduler's latency, not the service's:
//! a baseline recorded on a quiet machine and a run with two busy loops on both cores differ by +600%
//! at the p95 with no change in the code. Nothing in the latencies tells that apart from a regression,
//! so the signal must come from elsewhere, and not from the latencies, so that setting a round aside on
//! it costs nothing of the gate's false-alarm budget (under "no change", which rounds are set aside
//! does not depend on the latencies compared).
//!
//! # The signals (each round, sampled every 50 ms while it runs)
//! - runnable tasks per core (`procs_running` of /proc/stat, perfgate's sampler not counted): above 1,
//!   tasks queue for a CPU. This is the rule's main signal: it needs no kernel option and reads the
//!   same on a VM, a container and bare metal.
//! - CPU pressure (/proc/pressure/cpu, "some"): the share of the round in which some task waited.
//!   Shown, not ruled on: it is high whenever the generator and the service wake together, and it is
//!   absent on kernels without PSI.
//! - steal (/proc/stat): CPU time the hypervisor gave to another guest.
//! - the service's own wait for a CPU (`/proc/<pid>/task/*/schedstat`): the share of the time its
//!   threads were runnable that they spent waiting in a run queue.
//! - the 1-minute load average at the end of the round (shown: it lags by a minute).
//!
//! # The rule
//! A round ran under contention its reference did not have when, against the reference (the median of
//! the baseline's rounds in the file mode; the other round of the pair in `--ab`), either
//! - the machine was oversubscribed: at least [`SATURATED`] runnable tasks per core, and at least
//!   `1.5 × reference + 0.25`; or
//! - or for a second or more of it: at least 1.5 runnable tasks per core in its busiest second,
//!   and at least `1.5 × reference + 0.5` (a burst shorter than the round); or
//! - the service was starved: waiting for a CPU alone made it at least [`STARVED_SLOWDOWN`] times
//!   slower than in the reference (a request that needs a CPU for `r` takes `r / (1 − w)` when the
//!   service's threads wait a share `w` of their runnable time); or
//! - the hypervisor stole at least `1.5 × reference +` [`STOLEN`] of the CPU time. A hypervisor takes
//!   a vCPU away for whole time slices, so even a small share lands on requests as milliseconds: on
//!   the 2-vCPU development VM, unchanged rounds with 1.5–6% stolen (against 0 when the baseline was
//!   recorded) had the p95 of a sub-millisecond service at 4–10× the baseline's.
//!
//! One busy loop on a 2-core runner leaves a core to the service and the generator (about 0.6 runnable
//! per core) and is not flagged: the gate is expected to decide there. Two busy loops (1.0 and more)
//! are. A machine that was as busy when the baseline was recorded is compared as usual: the rule is
//! about a change of conditions, not about a busy machine as such.

use serde::{Deserialize, Serialize};

use super::RoundStats;
use crate::cost::median;

/// Runnable tasks per core from which the machine is taken as oversubscribed.
pub const SATURATED: f64 = 1.0;

/// How many times slower waiting for a CPU alone may make the service than in the reference before
/// the round is taken as starved (the service ran 80% as much of its runnable time, or less).
pub const STARVED_SLOWDOWN: f64 = 1.25;

/// Share of CPU time stolen by the hypervisor, beyond 1.5× the reference's, from which a round is
/// taken as disturbed.
pub const STOLEN: f64 = 0.01;

/// The machine during one round.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Contention {
    /// Cores the machine has (online), the unit of `runnable_per_core`.
    pub cores: u32,
    /// Mean runnable tasks per core over the round, perfgate's sampler not counted.
    pub runnable_per_core: f64,
    /// The highest of the per-second means (a burst shorter than the round shows here).
    #[serde(default)]
    pub runnable_per_core_peak: f64,
    /// Share of the round in which some task waited for a CPU (PSI "some"), where the kernel has PSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure: Option<f64>,
    /// Share of the machine's CPU time stolen by the hypervisor.
    pub steal: f64,
    /// The 1-minute load average at the end of the round.
    pub load_avg: f64,
    /// Share of its runnable time the service's threads spent waiting for a CPU (schedstat); None
    /// without a service perfgate started, or without schedstat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_wait: Option<f64>,
    /// Seconds the readings cover.
    pub secs: f64,
}

impl Contention {
    /// Why this round ran under contention `reference` did not have, or None. The reason reads
    /// "2.1× oversubscribed (the reference: 0.1×)".
    pub fn exceeds(&self, reference: &Contention) -> Option<String> {
        self.exceeds_with(reference, STARVED_SLOWDOWN)
    }

    /// [`exceeds`](Self::exceeds) with the service's wait read against `starved` (a slowdown).
    fn exceeds_with(&self, reference: &Contention, starved: f64) -> Option<String> {
        let (r, b) = (self.runnable_per_core, reference.runnable_per_core);
        if self.oversubscribed(reference) {
            return Some(format!("{} oversubscribed, against {}", times(r), times(b)));
        }
        if self.oversubscribed_at_peak(reference) {
            return Some(format!(
                "{} oversubscribed for a second or more, against {}",
                times(self.runnable_per_core_peak),
                times(reference.runnable_per_core_peak)
            ));
        }
        if let Some(slower) = self.starved_against(reference).filter(|&x| x >= starved) {
            let (w, wb) = (
                self.service_wait.unwrap_or(0.0),
                reference.service_wait.unwrap_or(0.0),
            );
            return Some(format!(
                "the service ran {:.0}% of the time it was runnable, against {:.0}% (waiting for a \
                 CPU alone makes it {slower:.1}× slower)",
                (1.0 - w) * 100.0,
                (1.0 - wb) * 100.0
            ));
        }
        if self.stolen(reference) {
            return Some(format!(
                "{:.1}% of the CPU stolen by the hypervisor, against {:.1}%",
                self.steal * 100.0,
                reference.steal * 100.0
            ));
        }
        None
    }

    /// More runnable tasks per core than cores, and well beyond the reference's.
    fn oversubscribed(&self, reference: &Contention) -> bool {
        let (r, b) = (self.runnable_per_core, reference.runnable_per_core);
        r >= SATURATED && r >= 1.5 * b + 0.25
    }

    /// A burst shorter than the round: its busiest second oversubscribed beyond the reference's.
    fn oversubscribed_at_peak(&self, reference: &Contention) -> bool {
        let (p, pb) = (
            self.runnable_per_core_peak,
            reference.runnable_per_core_peak,
        );
        p >= SATURATED + 0.5 && p >= 1.5 * pb + 0.5
    }

    /// The hypervisor took the CPU beyond what it took from the reference.
    fn stolen(&self, reference: &Contention) -> bool {
        self.steal >= 1.5 * reference.steal + STOLEN
    }

    /// How many times slower waiting for a CPU alone made the service than in `reference`, when
    /// that is at least [`STARVED_SLOWDOWN`]: a request that needs a CPU for `r` takes `r / (1 − w)`
    /// when its threads wait a share `w` of their runnable time.
    pub fn starved_against(&self, reference: &Contention) -> Option<f64> {
        let (w, wb) = (self.service_wait?, reference.service_wait?);
        let slower = (1.0 - wb).max(0.01) / (1.0 - w).max(0.01);
        (slower >= STARVED_SLOWDOWN).then_some(slower)
    }

    /// The median of each reading over `rounds` (the reference a baseline's rounds make: one disturbed
    /// round of the baseline does not raise the bar); None when no round has readings.
    pub fn median(rounds: &[&Contention]) -> Option<Contention> {
        if rounds.is_empty() {
            return None;
        }
        let med = |f: &dyn Fn(&Contention) -> Option<f64>| -> Option<f64> {
            let v: Vec<f64> = rounds.iter().filter_map(|c| f(c)).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        Some(Contention {
            cores: rounds[0].cores,
            runnable_per_core: med(&|c| Some(c.runnable_per_core)).unwrap_or(0.0),
            runnable_per_core_peak: med(&|c| Some(c.runnable_per_core_peak)).unwrap_or(0.0),
            cpu_pressure: med(&|c| c.cpu_pressure),
            steal: med(&|c| Some(c.steal)).unwrap_or(0.0),
            load_avg: med(&|c| Some(c.load_avg)).unwrap_or(0.0),
            service_wait: med(&|c| c.service_wait),
            secs: med(&|c| Some(c.secs)).unwrap_or(0.0),
        })
    }

    /// "0.4× load, PSI 12%, steal 0%, load avg 1.3, service waited 3%": the round in a few words.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} load", times(self.runnable_per_core))];
        if let Some(p) = self.cpu_pressure {
            parts.push(format!("PSI {:.0}%", p * 100.0));
        }
        parts.push(format!("steal {:.0}%", self.steal * 100.0));
        parts.push(format!("load avg {:.1}", self.load_avg));
        if let Some(w) = self.service_wait {
            parts.push(format!("service waited {:.0}%", w * 100.0));
        }
        parts.join(", ")
    }
}

/// "2.0×": runnable tasks per core.
pub fn times(x: f64) -> String {
    format!("{x:.1}×")
}

/// Which of `rounds` ran under contention `reference` did not have: per round, the reason or None.
/// Rounds without readings are never flagged.
pub fn flag_rounds(rounds: &[Option<&Contention>], reference: &Contention) -> Vec<Option<String>> {
    rounds
        .iter()
        .map(|c| c.and_then(|c| c.exceeds(reference)))
        .collect()
}

/// "the machine was 2.0× oversubscribed during 3 of 3 rounds; the baseline was recorded at 0.1×":
/// the sentence for a scenario whose every current round is flagged, naming the reading that
/// flagged them: the service's own wait ("the service ran 15% of the time it was runnable …"), a
/// busiest second, or the hypervisor's steal when the machine itself was not oversubscribed.
pub fn describe_flagged(
    flagged: &[(usize, &Contention)],
    total: usize,
    reference: &Contention,
    reference_name: &str,
) -> String {
    let worst = flagged
        .iter()
        .map(|(_, c)| c.runnable_per_core)
        .fold(0.0, f64::max);
    let oversubscribed = flagged.iter().any(|(_, c)| c.oversubscribed(reference));
    let starved = flagged
        .iter()
        .filter_map(|(_, c)| Some((c.starved_against(reference)?, c.service_wait?)))
        .fold(None, |acc: Option<(f64, f64)>, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        });
    let peak = flagged
        .iter()
        .filter(|(_, c)| c.oversubscribed_at_peak(reference))
        .map(|(_, c)| c.runnable_per_core_peak)
        .reduce(f64::max);
    let stolen = flagged
        .iter()
        .filter(|(_, c)| c.stolen(reference))
        .map(|(_, c)| c.steal)
        .reduce(f64::max);
    match (oversubscribed, starved, peak, stolen) {
        (false, None, Some(peak), _) => format!(
            "the machine was {} oversubscribed for a second or more during {} of {total} rounds; \
             {reference_name}'s busiest second was at {}",
            times(peak),
            flagged.len(),
            times(reference.runnable_per_core_peak)
        ),
        (false, None, None, Some(stolen)) => format!(
            "the hypervisor stole up to {:.1}% of the CPU during {} of {total} rounds; \
             {reference_name} was recorded at {:.1}%",
            stolen * 100.0,
            flagged.len(),
            reference.steal * 100.0
        ),
        (false, Some((slower, w)), _, _) => format!(
            "the service ran as little as {:.0}% of the time it was runnable during {} of {total} rounds \
             (waiting for a CPU alone made it up to {slower:.1}× slower); {reference_name} ran {:.0}%",
            (1.0 - w) * 100.0,
            flagged.len(),
            (1.0 - reference.service_wait.unwrap_or(0.0)) * 100.0
        ),
        _ => format!(
            "the machine was {} oversubscribed during {} of {total} rounds; {reference_name} was \
             recorded at {}",
            times(worst),
            flagged.len(),
            times(reference.runnable_per_core)
        ),
    }
}

/// A scenario's current rounds after the file gate's screening against the baseline's.
#[derive(Debug, Default)]
pub struct Screened {
    /// The rounds the statistics use: those not flagged, or all of them when every one is.
    pub kept: Vec<RoundStats>,
    /// Said in every check's note when some rounds (not all) were set aside.
    pub note: Option<String>,
    /// Set when most current rounds were flagged: the sentence that says so. A Fail is then no
    /// evidence of a regression (the checks become inconclusive); a Pass still is evidence of none.
    pub all_flagged: Option<String>,
    /// Set when the baseline ran under contention this run did not have (its median against the
    /// run's): a Pass is then no evidence (a slower baseline hides a regression); a Fail still is.
    pub baseline_flagged: Option<String>,
}

/// The file mode's screening: current rounds that ran under contention the baseline's rounds (their
/// median) did not have are set aside; when they are most of the rounds, the run is taken as
/// contended as a whole. Baselines without readings screen nothing.
pub fn screen(baseline: &[RoundStats], current: &[RoundStats]) -> Screened {
    let refs: Vec<&Contention> = baseline
        .iter()
        .filter_map(|r| r.contention.as_ref())
        .collect();
    let Some(reference) = Contention::median(&refs) else {
        return Screened {
            kept: current.to_vec(),
            ..Default::default()
        };
    };
    let mine: Vec<&Contention> = current
        .iter()
        .filter_map(|r| r.contention.as_ref())
        .collect();
    let baseline_flagged = Contention::median(&mine).and_then(|m| {
        reference.exceeds(&m).map(|why| {
            format!(
                "the baseline was recorded under contention this run did not have ({})",
                why.replace("against", "this run")
            )
        })
    });
    if baseline_flagged.is_some() {
        return Screened {
            kept: current.to_vec(),
            baseline_flagged,
            ..Default::default()
        };
    }
    let flags = flag_rounds(
        &current
            .iter()
            .map(|r| r.contention.as_ref())
            .collect::<Vec<_>>(),
        &reference,
    );
    let flagged: Vec<(usize, &Contention)> = current
        .iter()
        .enumerate()
        .filter(|(i, _)| flags[*i].is_some())
        .filter_map(|(i, r)| Some((i, r.contention.as_ref()?)))
        .collect();
    if flagged.is_empty() {
        return Screened {
            kept: current.to_vec(),
            ..Default::default()
        };
    }
    // Most rounds contended: contention comes in waves, the few rounds between them are no clean
    // sample, and a decision on one or two of them rests on the noise of the baseline alone.
    if 2 * flagged.len() > current.len() {
        return Screened {
            kept: current.to_vec(),
            note: None,
            all_flagged: Some(describe_flagged(
                &flagged,
                current.len(),
                &reference,
                "the baseline",
            )),
            baseline_flagged: None,
        };
    }
    let which: Vec<String> = flagged.iter().map(|(i, _)| (i + 1).to_string()).collect();
    let first = flags.iter().flatten().next().cloned().unwrap_or_default();
    Screened {
        kept: current
            .iter()
            .zip(&flags)
            .filter(|(_, f)| f.is_none())
            .map(|(r, _)| r.clone())
            .collect(),
        note: Some(format!(
            "; set aside: round{} {} of {} ran under contention the baseline did not have ({first})",
            if which.len() == 1 { "" } else { "s" },
            which.join(", "),
            current.len()
        )),
        all_flagged: None,
        baseline_flagged: None,
    }
}

/// The wait-for-a-CPU slowdown between the two rounds of a pair from which the pair is set aside:
/// higher than [`STARVED_SLOWDOWN`], since the reference is one round, not the median of several.
pub const PAIR_STARVED_SLOWDOWN: f64 = 1.5;

/// At most this share of the pairs is set aside on contention: beyond it, unequal contention is
/// the machine's normal state, setting pairs aside would only throw data away, and the statistics'
/// own screening (`stats.rs`) deals with the pairs far off the others.
pub const PAIR_ASIDE_MAX: f64 = 1.0 / 3.0;

/// A round whose load generator started its latest 1% of requests more than this many times the
/// run's typical delay (the median over both sides' rounds), plus [`STALL_MARGIN_MS`], stalled.
pub const STALL_FACTOR: f64 = 2.0;

/// See [`STALL_FACTOR`]: the margin keeps a quiet run's sub-millisecond delays from flagging rounds.
pub const STALL_MARGIN_MS: f64 = 1.0;

/// The run's typical generator delay, and the one beyond which a round stalled; None with fewer
/// than 4 rounds that recorded it.
fn stall_limit(rounds: &[&RoundStats]) -> Option<(f64, f64)> {
    let lags: Vec<f64> = rounds.iter().filter_map(|r| r.lag_p99_ms).collect();
    if lags.len() < 4 {
        return None;
    }
    let typical = median(&lags);
    Some((typical, STALL_FACTOR * typical + STALL_MARGIN_MS))
}

/// The `--ab` screening, on signals that are not the latencies compared (so at no cost in alpha):
/// - a pair whose two rounds ran under unequal contention (one exceeds the other by the rule) is set
///   aside; pairs equally contended are kept, which is what pairing is for;
/// - so is a pair with a round in which the machine stalled: the load generator started its latest
///   1% of requests far later than in the run's typical round. A stall of tens of milliseconds
///   (on the development VM it mostly follows the hypervisor's steal, though not in every such
///   round) puts every request it delays into the tail, and a p99 of 2000 requests is the 20th
///   slowest: on the 2-core VM under one busy loop such rounds had their p99 at 0.4–2.6× their
///   partner's while the generator's own p99 delay went from ~1.5 ms to 4–8 ms, and the others
///   agreed within a few percent.
///
/// When more than [`PAIR_ASIDE_MAX`] of the pairs would go, none does. Returns the kept pairs and,
/// when any was set aside (or too many would have been), the note for the checks.
pub fn screen_pairs(
    baseline: &[RoundStats],
    current: &[RoundStats],
) -> (Vec<RoundStats>, Vec<RoundStats>, Option<String>) {
    let mut kept_b = Vec::new();
    let mut kept_c = Vec::new();
    let mut why = Vec::new();
    let stall = stall_limit(&baseline.iter().chain(current).collect::<Vec<_>>());
    for (i, (b, c)) in baseline.iter().zip(current).enumerate() {
        let unequal = match (&b.contention, &c.contention) {
            (Some(cb), Some(cc)) => cc
                .exceeds_with(cb, PAIR_STARVED_SLOWDOWN)
                .map(|w| format!("pair {}: the head's round {w}", i + 1))
                .or_else(|| {
                    cb.exceeds_with(cc, PAIR_STARVED_SLOWDOWN)
                        .map(|w| format!("pair {}: the base's round {w}", i + 1))
                }),
            _ => None,
        };
        let stalled = || {
            let (typical, limit) = stall?;
            [("head", c), ("base", b)]
                .into_iter()
                .find_map(|(side, r)| {
                    let lag = r.lag_p99_ms.filter(|&l| l > limit)?;
                    Some(format!(
                    "pair {}: the {side}'s round stalled (the generator started its latest 1% of \
                     requests {lag:.1} ms late or more, against {typical:.1} ms in this run's \
                     typical round)",
                    i + 1
                ))
                })
        };
        match unequal.or_else(stalled) {
            Some(w) => why.push(w),
            None => {
                kept_b.push(b.clone());
                kept_c.push(c.clone());
            }
        }
    }
    let n = baseline.len().min(current.len());
    if why.len() as f64 > PAIR_ASIDE_MAX * n as f64 {
        let note = format!(
            "; contention differed between the rounds of {} of {n} pairs, or one of them stalled: \
             too many to set aside (all kept)",
            why.len()
        );
        return (baseline[..n].to_vec(), current[..n].to_vec(), Some(note));
    }
    let note = (!why.is_empty()).then(|| {
        format!(
            "; set aside: {} of {n} pairs whose rounds ran under unequal contention or stalled ({}{})",
            why.len(),
            why[..why.len().min(3)].join("; "),
            if why.len() > 3 {
                format!("; {} more", why.len() - 3)
            } else {
                String::new()
            }
        )
    });
    (kept_b, kept_c, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(r: f64) -> Contention {
        Contention {
            cores: 2,
            runnable_per_core: r,
            runnable_per_core_peak: r,
            steal: 0.0,
            load_avg: 2.0 * r,
            secs: 2.0,
            ..Default::default()
        }
    }

    #[test]
    fn two_busy_loops_on_a_quiet_baseline_are_flagged_one_is_not() {
        let quiet = at(0.1);
        // Two busy loops on 2 cores: one runnable task per core and the service's.
        let why = at(1.1).exceeds(&quiet).expect("flagged");
        assert_eq!(why, "1.1× oversubscribed, against 0.1×");
        // One busy loop leaves a core: the gate decides as usual.
        assert_eq!(at(0.6).exceeds(&quiet), None);
        // A baseline recorded on a machine as busy: the same conditions, compared as usual.
        assert_eq!(at(1.3).exceeds(&at(1.2)), None);
        // Twice as busy as a busy baseline is a change of conditions.
        assert!(at(2.4).exceeds(&at(1.2)).is_some());
    }

    #[test]
    fn a_starved_service_and_stolen_time_are_flagged_too() {
        let quiet = Contention {
            service_wait: Some(0.05),
            ..at(0.2)
        };
        let starved = Contention {
            service_wait: Some(0.6),
            ..at(0.7)
        };
        let why = starved.exceeds(&quiet).unwrap();
        assert!(
            why.contains("ran 40% of the time it was runnable, against 95%"),
            "{why}"
        );
        // On a machine busy all along, the share the service runs decides: 34% against 15% of its
        // runnable time is 2.3× slower with the same number of tasks per core.
        let busy = |r: f64, w: f64| Contention {
            service_wait: Some(w),
            ..at(r)
        };
        assert_eq!(
            busy(6.6, 0.85)
                .starved_against(&busy(5.9, 0.66))
                .map(|x| (x * 10.0).round() / 10.0),
            Some(2.3)
        );
        let all = describe_flagged(
            &[(0, &busy(6.6, 0.85))],
            1,
            &busy(5.9, 0.66),
            "the baseline",
        );
        assert_eq!(
            all,
            "the service ran as little as 15% of the time it was runnable during 1 of 1 rounds \
             (waiting for a CPU alone made it up to 2.3× slower); the baseline ran 34%"
        );
        assert_eq!(busy(6.0, 0.70).exceeds(&busy(5.9, 0.66)), None);
        // Without the reference's reading there is nothing to compare the wait with.
        let old = at(0.2);
        assert_eq!(starved.exceeds(&old), None);
        let stolen = Contention {
            steal: 0.15,
            ..at(0.2)
        };
        assert!(stolen
            .exceeds(&quiet)
            .unwrap()
            .contains("15.0% of the CPU stolen"));
        // Measured on an idle VM whose host was busy: 1.7–5.9% stolen against none made a
        // sub-millisecond service's p95 4–10× the baseline's. Half a point is not flagged, and a
        // machine that always has some steal is compared with its own.
        let steal = |s: f64| Contention {
            steal: s,
            ..at(0.2)
        };
        assert!(steal(0.017).exceeds(&steal(0.0)).is_some());
        assert_eq!(steal(0.005).exceeds(&steal(0.0)), None);
        assert_eq!(steal(0.03).exceeds(&steal(0.02)), None);
        assert!(steal(0.05).exceeds(&steal(0.02)).is_some());
        // A quiet machine whose host took the CPU is not called oversubscribed.
        let (a, b) = (steal(0.062), steal(0.034));
        assert_eq!(
            describe_flagged(&[(0, &a), (1, &b)], 2, &steal(0.002), "the baseline"),
            "the hypervisor stole up to 6.2% of the CPU during 2 of 2 rounds; the baseline was \
             recorded at 0.2%"
        );
        let burst = Contention {
            runnable_per_core_peak: 1.8,
            ..at(0.4)
        };
        assert_eq!(
            describe_flagged(&[(0, &burst)], 1, &at(0.2), "the baseline"),
            "the machine was 1.8× oversubscribed for a second or more during 1 of 1 rounds; the \
             baseline's busiest second was at 0.2×"
        );
    }

    #[test]
    fn the_median_reference_ignores_one_disturbed_baseline_round() {
        let rounds = [at(0.1), at(0.2), at(2.5), at(0.1), at(0.15)];
        let refs: Vec<&Contention> = rounds.iter().collect();
        let m = Contention::median(&refs).unwrap();
        assert_eq!(m.runnable_per_core, 0.15);
        assert!(at(1.1).exceeds(&m).is_some());
        assert!(Contention::median(&[]).is_none());
        let flags = flag_rounds(&[Some(&at(1.2)), None, Some(&at(0.3))], &m);
        assert_eq!(flags.iter().filter(|f| f.is_some()).count(), 1);
        let hot = at(2.0);
        let text = describe_flagged(
            &[(0, &hot), (1, &hot), (2, &hot)],
            3,
            &at(0.1),
            "the baseline",
        );
        assert_eq!(
            text,
            "the machine was 2.0× oversubscribed during 3 of 3 rounds; the baseline was recorded at 0.1×"
        );
    }

    fn round(c: Option<f64>) -> RoundStats {
        RoundStats {
            contention: c.map(at),
            ..Default::default()
        }
    }

    #[test]
    fn the_file_screen_sets_aside_contended_rounds_and_says_when_all_were() {
        let base: Vec<RoundStats> = [0.1, 0.2, 0.1, 0.1, 0.2].map(|r| round(Some(r))).to_vec();
        let s = screen(
            &base,
            &[round(Some(0.2)), round(Some(1.8)), round(Some(0.1))],
        );
        assert_eq!(s.kept.len(), 2);
        assert!(s.all_flagged.is_none());
        let note = s.note.unwrap();
        assert!(note.contains("round 2 of 3 ran under contention"), "{note}");
        // Two of three: the run is contended as a whole (the round between is no clean sample).
        let s = screen(
            &base,
            &[round(Some(2.0)), round(Some(0.2)), round(Some(1.6))],
        );
        assert!(s.all_flagged.unwrap().contains("during 2 of 3 rounds"));
        let s = screen(
            &base,
            &[round(Some(2.0)), round(Some(2.0)), round(Some(1.6))],
        );
        assert_eq!(s.kept.len(), 3);
        assert_eq!(
            s.all_flagged.as_deref(),
            Some("the machine was 2.0× oversubscribed during 3 of 3 rounds; the baseline was recorded at 0.1×")
        );
        // A baseline recorded on a busier machine than this run's: its passes prove nothing.
        let busy: Vec<RoundStats> = [1.6, 1.5, 1.7, 1.6, 1.4].map(|r| round(Some(r))).to_vec();
        let s = screen(
            &busy,
            &[round(Some(0.2)), round(Some(0.1)), round(Some(0.2))],
        );
        assert_eq!(
            s.baseline_flagged.as_deref(),
            Some("the baseline was recorded under contention this run did not have (1.6× oversubscribed, this run 0.2×)")
        );
        assert_eq!(s.kept.len(), 3);
        // A baseline without readings (recorded by an older perfgate) screens nothing.
        let old: Vec<RoundStats> = (0..5).map(|_| round(None)).collect();
        let s = screen(&old, &[round(Some(2.0))]);
        assert!(s.note.is_none() && s.all_flagged.is_none() && s.kept.len() == 1);
    }

    #[test]
    fn the_pair_screen_keeps_equally_contended_pairs() {
        let b = [
            round(Some(0.2)),
            round(Some(1.5)),
            round(Some(0.3)),
            round(Some(1.6)),
        ];
        let c = [
            round(Some(1.6)),
            round(Some(1.5)),
            round(Some(0.2)),
            round(None),
        ];
        let (kb, kc, note) = screen_pairs(&b, &c);
        assert_eq!((kb.len(), kc.len()), (3, 3));
        // Most pairs unequal: the machine's normal state, nothing set aside.
        let c2 = [
            round(Some(1.6)),
            round(Some(0.2)),
            round(Some(0.2)),
            round(None),
        ];
        let (kb2, _, note2) = screen_pairs(&b, &c2);
        assert_eq!(kb2.len(), 4);
        let note2 = note2.unwrap();
        assert!(
            note2.contains("2 of 4 pairs") && note2.contains("too many to set aside"),
            "{note2}"
        );
        let note = note.unwrap();
        assert!(
            note.contains("1 of 4 pairs")
                && note.contains("pair 1: the head's round 1.6× oversubscribed"),
            "{note}"
        );
    }

    #[test]
    fn a_pair_with_a_round_the_machine_stalled_in_is_set_aside() {
        let lagged = |lag: Option<f64>| RoundStats {
            lag_p99_ms: lag,
            ..round(Some(0.6))
        };
        // Typical 1.5 ms: a round at 4.0 ms is within 2 × 1.5 + 1; one at 7.9 ms stalled.
        let b: Vec<RoundStats> = [1.4, 1.5, 7.9, 1.6, 1.5, 1.3]
            .map(|l| lagged(Some(l)))
            .to_vec();
        let c: Vec<RoundStats> = [1.5, 4.0, 1.4, 1.6, 1.5, 1.5]
            .map(|l| lagged(Some(l)))
            .to_vec();
        let (kb, kc, note) = screen_pairs(&b, &c);
        assert_eq!((kb.len(), kc.len()), (5, 5));
        assert!(!kb.iter().any(|r| r.lag_p99_ms == Some(7.9)));
        let note = note.unwrap();
        assert!(
            note.contains("1 of 6 pairs")
                && note.contains("pair 3: the base's round stalled")
                && note.contains("7.9 ms late or more, against 1.5 ms"),
            "{note}"
        );
        // Without enough rounds that recorded it (a closed model, older files), nothing is judged.
        let c_closed: Vec<RoundStats> = (0..6).map(|_| lagged(None)).collect();
        let few: Vec<RoundStats> = b[..3].to_vec();
        let (kb, _, note) = screen_pairs(&few, &c_closed[..3]);
        assert_eq!((kb.len(), note), (3, None));
    }
}
