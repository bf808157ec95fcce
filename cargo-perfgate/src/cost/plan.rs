//! Whether the cost pass runs, and for which scenarios.
//!
//! Per scenario, the first that applies:
//! - `--no-cost`: never (cost SLOs and the baseline's cost figures are then not checked, with a
//!   warning);
//! - `--cost` or `--cost-only`: required;
//! - `cost = "on"` in the package's `[package.metadata.perfgate]`: required;
//! - cost SLOs declared, or cost figures for it in the baseline: required (they demand it);
//! - `cost = "auto"`: wanted (measured when valgrind is installed; otherwise a message says how to
//!   install it and the run goes on);
//! - otherwise (`cost = "off"`, the default): not measured.
//!
//! A required pass without valgrind (or against `--target-url`, where perfgate does not start the
//! service) is an error that says why it was required and how to install valgrind or skip it.

use std::collections::BTreeSet;

use crate::cli::CostArgs;
use crate::cost::valgrind::{CostError, Valgrind};
use crate::discover::config::CostSetting;
use crate::error::{Error, Result};
use crate::load::PreparedPackage;
use crate::slo::has_cost_slos;
use crate::ui::Ui;

/// Iterations before the window and in it, unless `--cost-warmup` / `--cost-iterations` say
/// otherwise: enough to warm caches and connection state, and a window whose fixed overhead (a few
/// hundred instructions for opening it) is well under the floor, in about a second per scenario
/// under callgrind for a request of ~100k instructions.
pub const DEFAULT_WARMUP: u64 = 20;
pub const DEFAULT_ITERATIONS: u64 = 50;

/// What the cost pass will do in this run.
#[derive(Debug, Clone, Default)]
pub struct CostPlan {
    /// None when nothing is measured.
    pub valgrind: Option<Valgrind>,
    /// `package::name` of each scenario to measure.
    pub scenarios: BTreeSet<String>,
    pub warmup: u64,
    pub iterations: u64,
}

impl CostPlan {
    pub fn measures(&self, id: &str) -> bool {
        self.valgrind.is_some() && self.scenarios.contains(id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    No,
    Wanted,
    /// Why it is required, for the error without valgrind.
    Required(String),
}

/// Decides the run's cost pass. `baseline_has_cost(id)`: the baseline at the merge-base holds cost
/// figures for the scenario. `detect` finds valgrind (called only when something is to be measured).
pub fn plan(
    runs: &[PreparedPackage<'_>],
    args: &CostArgs,
    baseline_has_cost: &dyn Fn(&str) -> bool,
    target_url: bool,
    detect: impl FnOnce() -> std::result::Result<Valgrind, CostError>,
    ui: &Ui,
) -> Result<CostPlan> {
    let mut wanted = BTreeSet::new();
    let mut required: Vec<String> = Vec::new();
    let mut unchecked = Vec::new();
    let mut with_deps = Vec::new();
    for run in runs {
        for s in &run.scenarios {
            let spec = s.spec.as_ref().expect("described");
            let demand = if has_cost_slos(spec) {
                Some(format!("scenario {} declares cost SLOs", s.id))
            } else if baseline_has_cost(&s.id) {
                Some(format!("the baseline holds cost figures for {}", s.id))
            } else {
                None
            };
            let want = if args.no_cost {
                if demand.is_some() {
                    unchecked.push(s.id.clone());
                }
                Want::No
            } else if args.cost || args.cost_only {
                Want::Required(
                    if args.cost_only {
                        "--cost-only"
                    } else {
                        "--cost"
                    }
                    .into(),
                )
            } else {
                match (run.pkg.config.cost, demand) {
                    (CostSetting::On, _) => {
                        Want::Required(format!("`cost = \"on\"` in {}", run.pkg.name))
                    }
                    (_, Some(why)) => Want::Required(why),
                    (CostSetting::Auto, None) => Want::Wanted,
                    (CostSetting::Off, None) => Want::No,
                }
            };
            // The valgrind'd service would start without its dependencies' placeholders filled.
            if !run.pkg.config.deps.is_empty() {
                match want {
                    Want::Required(why) => {
                        return Err(Error::Cost(format!(
                            "the cost pass does not start a package's dependencies, and package {} has some ({}), but it is required for {} ({why}); pass --no-cost to run without it",
                            run.pkg.name,
                            run.pkg.config.deps.keys().cloned().collect::<Vec<_>>().join(", "),
                            s.id
                        )))
                    }
                    Want::Wanted => with_deps.push(s.id.clone()),
                    Want::No => {}
                }
                continue;
            }
            match want {
                Want::No => continue,
                Want::Wanted => {}
                Want::Required(why) => required.push(why),
            }
            wanted.insert(s.id.clone());
        }
    }
    if !with_deps.is_empty() {
        ui.warn(&format!(
            "the cost pass skips {} (`cost = \"auto\"`): it does not start a package's dependencies",
            with_deps.join(", ")
        ));
    }
    if !unchecked.is_empty() {
        ui.warn(&format!(
            "--no-cost: the cost SLOs and baseline cost figures of {} are not checked",
            unchecked.join(", ")
        ));
    }
    let mut plan = CostPlan {
        valgrind: None,
        scenarios: BTreeSet::new(),
        warmup: args.cost_warmup.unwrap_or(DEFAULT_WARMUP),
        iterations: args.cost_iterations.unwrap_or(DEFAULT_ITERATIONS),
    };
    if wanted.is_empty() {
        return Ok(plan);
    }
    required.dedup();
    let why = |r: &[String]| {
        let mut shown: Vec<&str> = r.iter().take(3).map(String::as_str).collect();
        if r.len() > 3 {
            shown.push("…");
        }
        shown.join("; ")
    };
    if target_url {
        if !required.is_empty() {
            return Err(Error::Cost(format!(
                "the cost pass starts the service under valgrind itself, so it cannot measure the service \
                 at --target-url, but it is required ({}); pass --no-cost to run without it",
                why(&required)
            )));
        }
        ui.status(
            "Cost",
            "skipped: the cost pass starts the service itself, which --target-url does not",
        );
        return Ok(plan);
    }
    match detect() {
        Ok(v) => {
            plan.valgrind = Some(v);
            plan.scenarios = wanted;
        }
        Err(e) if required.is_empty() => {
            ui.warn(&format!(
                "the cost pass was skipped (`cost = \"auto\"`): {e}"
            ));
        }
        Err(e) => {
            return Err(Error::Cost(format!(
                "{e}. The cost pass is required: {}; pass --no-cost to run without it",
                why(&required)
            )))
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::config::PackageConfig;
    use crate::discover::{PerfPackage, Scenario};
    use perfgate_runtime::format::{Metric, Op, Slo};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn pkg(cost: CostSetting) -> PerfPackage {
        PerfPackage {
            name: "svc".into(),
            config: PackageConfig {
                cost,
                ..Default::default()
            },
            bins: vec![],
            explicit: false,
            ..PerfPackage::at(Path::new("/ws/svc"))
        }
    }

    fn scenario(name: &str, cost_slo: bool) -> Scenario {
        let mut spec = crate::slo::tests::spec(vec![]);
        if cost_slo {
            spec.slos.push(Slo {
                request: None,
                metric: Metric::Instructions,
                op: Op::Lt,
                threshold: 150_000.0,
            });
        }
        Scenario {
            package: "svc".into(),
            id: format!("svc::{name}"),
            test_name: format!("__perfgate_{name}"),
            exe: PathBuf::from("/x"),
            cwd: PathBuf::from("/"),
            target: "perf".into(),
            name: name.into(),
            spec: Some(spec),
        }
    }

    fn found() -> std::result::Result<Valgrind, CostError> {
        Ok(Valgrind {
            program: PathBuf::from("/usr/bin/valgrind"),
            vgdb: PathBuf::from("/usr/bin/vgdb"),
            version: "valgrind-3.19.0".into(),
        })
    }

    fn missing() -> std::result::Result<Valgrind, CostError> {
        Err(CostError::NotInstalled)
    }

    const QUIET: Ui = Ui {
        quiet: true,
        verbose: false,
    };

    fn run<'a>(p: &'a PerfPackage, scenarios: Vec<Scenario>) -> PreparedPackage<'a> {
        PreparedPackage {
            pkg: p,
            scenarios,
            service_exes: BTreeMap::new(),
            tier: crate::load::window::TierPlan::default_for(crate::cli::Tier::Smoke),
        }
    }

    #[test]
    fn the_setting_the_flags_and_the_demands_choose_the_scenarios() {
        let no = |_: &str| false;
        let off = pkg(CostSetting::Off);
        let runs = [run(&off, vec![scenario("a", false), scenario("b", true)])];
        // Off: only the scenario with cost SLOs.
        let p = plan(&runs, &CostArgs::default(), &no, false, found, &QUIET).unwrap();
        assert_eq!(p.scenarios.iter().collect::<Vec<_>>(), ["svc::b"]);
        assert_eq!(
            (p.warmup, p.iterations),
            (DEFAULT_WARMUP, DEFAULT_ITERATIONS)
        );
        // A cost baseline demands it too.
        let p = plan(
            &runs,
            &CostArgs::default(),
            &|id| id == "svc::a",
            false,
            found,
            &QUIET,
        )
        .unwrap();
        assert_eq!(p.scenarios.len(), 2);
        // --cost: all; --no-cost: none.
        let all = CostArgs {
            cost: true,
            cost_iterations: Some(7),
            ..Default::default()
        };
        let p = plan(&runs, &all, &no, false, found, &QUIET).unwrap();
        assert_eq!((p.scenarios.len(), p.iterations), (2, 7));
        let none = CostArgs {
            no_cost: true,
            ..Default::default()
        };
        let p = plan(&runs, &none, &no, false, found, &QUIET).unwrap();
        assert!(p.valgrind.is_none() && p.scenarios.is_empty());
        // Auto without any demand: everything when valgrind is there, a warning when not.
        let auto = pkg(CostSetting::Auto);
        let runs = [run(&auto, vec![scenario("a", false)])];
        assert!(plan(&runs, &CostArgs::default(), &no, false, found, &QUIET)
            .unwrap()
            .measures("svc::a"));
        let p = plan(&runs, &CostArgs::default(), &no, false, missing, &QUIET).unwrap();
        assert!(!p.measures("svc::a"));
    }

    #[test]
    fn a_required_pass_without_valgrind_says_why_and_how_to_install_it() {
        let auto = pkg(CostSetting::Auto);
        let runs = [run(&auto, vec![scenario("a", false), scenario("b", true)])];
        let e = plan(
            &runs,
            &CostArgs::default(),
            &|_| false,
            false,
            missing,
            &QUIET,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Cost(_)));
        assert!(msg.contains("apt-get install valgrind"), "{msg}");
        assert!(msg.contains("scenario svc::b declares cost SLOs"), "{msg}");
        assert!(msg.contains("--no-cost"), "{msg}");
        assert_eq!(e.exit_code(), crate::error::exit::ERROR);
        // --target-url cannot be measured: an error only when required.
        let e = plan(&runs, &CostArgs::default(), &|_| false, true, found, &QUIET).unwrap_err();
        assert!(e.to_string().contains("--target-url"), "{e}");
        let plain = [run(&auto, vec![scenario("a", false)])];
        assert!(plan(
            &plain,
            &CostArgs::default(),
            &|_| false,
            true,
            found,
            &QUIET
        )
        .unwrap()
        .scenarios
        .is_empty());
    }
}
