//! `cargo perfgate calibrate`: A/A pairs of the same build on both sides, and repeated cost passes
//! where the cost pass runs; the floors go to the baseline file (merged, atomically), and tables
//! say what this machine can resolve.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::ab::{self, paired, Sampling};
use crate::baseline::git;
use crate::baseline::write::{recorded_cost, write_calibration, Calibrated};
use crate::cli::{fmt_duration, CalibrateArgs, CommonArgs};
use crate::commands::print_stdout;
use crate::cost;
use crate::discover::{self, Workspace};
use crate::error::{exit, Error, Result};
use crate::gate::cost::{floors_from_passes, CostFloors};
use crate::gate::GateOptions;
use crate::load::{self, rundir, RunOptions};
use crate::machine::Fingerprint;
use crate::report::table::{render_cost_floors, render_floors};
use crate::service::fixed_port_error;
use crate::ui::{progress, Ui};

pub fn run(common: &CommonArgs, args: &CalibrateArgs, ui: &Ui) -> Result<i32> {
    if args.load.target_url.is_some() {
        return Err(Error::Usage(
            "calibrate starts two instances of the service itself; it cannot drive a --target-url"
                .into(),
        ));
    }
    let ws = Workspace::load(common)?;
    let _runs = load::lock_runs(&ws, args.load.no_wait, ui)?;
    let found = discover::discover(ws, args.filter.as_deref(), common, ui)?;
    let (runs, _) = load::prepare(common, &args.load, &found, true, ui)?;
    let services: Vec<_> = runs.iter().flat_map(|r| r.services()).collect();
    if let Some(e) = fixed_port_error(
        &services,
        "calibrate runs two instances of a service side by side",
    ) {
        return Err(e);
    }
    ab::require_own_deps(&runs, "calibrate")?;
    let recorded = recorded_cost(
        &found.ws,
        &found.ws.packages,
        args.baseline_file.as_deref(),
        args.load.tier.unwrap_or_default(),
    )?;
    let cost_plan = cost::plan::plan(
        &runs,
        &args.cost,
        &|id| recorded.contains(id),
        false,
        cost::valgrind::detect,
        ui,
    )?;
    // The same build on both sides: two instances of each service, each with its own `Services`.
    let twins = runs.clone();
    let (_, run_dir) = rundir::new_run_dir(&found.ws)?;
    let budget = args.budget.unwrap_or(ab::DEFAULT_BUDGET);
    let floors = if args.cost.cost_only {
        ab::Floors::default()
    } else {
        let sampling = Sampling {
            budget: Duration::MAX,
            min_pairs: args.pairs as usize,
            fixed_pairs: Some(args.pairs as usize),
            alpha: GateOptions::default().alpha,
            floors: BTreeMap::new(),
            cost_failed: Default::default(),
        };
        let opts = RunOptions::one_round(&args.load);
        ui.status(
            "Calibrate",
            &format!(
                "{} A/A pairs per scenario (two instances of the same build), floors for a {} --ab budget",
                args.pairs,
                fmt_duration(budget)
            ),
        );
        progress::set_scenario_dir(&run_dir.join("scenarios"));
        let measured =
            paired::run_paired(&runs, &twins, &run_dir, &opts, &sampling, "HEAD (A/A)", ui);
        progress::cleanup(&run_dir.join("scenarios"));
        ab::floors_from(&measured?, budget)
    };
    let (cost_floors, cost_failed, cost_rows) = cost_floors(&runs, &cost_plan, args, &run_dir, ui)?;

    let machine = Fingerprint::collect(found.root());
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let head = git::open(found.root()).and_then(|r| git::head_commit(&r));
    write_calibration(
        &found.ws,
        args.baseline_file.as_deref(),
        &Calibrated {
            floors: &floors.measured,
            cost: &cost_floors,
            machine: &machine,
            head_commit: head,
            pairs: args.pairs as usize,
            budget_secs: budget.as_secs_f64(),
            now_unix_ms: now,
            tier: args.load.tier.unwrap_or_default(),
        },
        ui,
    )?;
    if !args.cost.cost_only {
        print_stdout(&render_floors(&floors.rows))?;
    }
    if !cost_rows.is_empty() {
        print_stdout(&render_cost_floors(&cost_rows))?;
    }
    let failed: Vec<String> = floors.failed.into_iter().chain(cost_failed).collect();
    if !failed.is_empty() {
        return Err(Error::Scenario(format!(
            "calibration could not measure: {}",
            failed.join("; ")
        )));
    }
    Ok(exit::PASS)
}

/// The cost pass `--cost-passes` times: per scenario, the spread of its figures (the cost checks'
/// noise floor), the scenarios that could not be measured, and the table's rows (scenario, its
/// `cost_regression`, the figures' median pass, the floors).
#[allow(clippy::type_complexity)]
fn cost_floors(
    runs: &[load::PreparedPackage<'_>],
    plan: &cost::plan::CostPlan,
    args: &CalibrateArgs,
    run_dir: &std::path::Path,
    ui: &Ui,
) -> Result<(
    BTreeMap<String, CostFloors>,
    Vec<String>,
    Vec<(String, f64, cost::CostFigures, CostFloors)>,
)> {
    let mut passes: BTreeMap<String, Vec<cost::CostMeasurement>> = BTreeMap::new();
    let mut failed = Vec::new();
    if plan.valgrind.is_none() {
        return Ok((BTreeMap::new(), failed, Vec::new()));
    }
    for p in 0..args.cost_passes {
        ui.status(
            "Calibrate",
            &format!("cost pass {} of {}", p + 1, args.cost_passes),
        );
        let dir = run_dir.join("cost").join(format!("pass-{}", p + 1));
        for (id, m) in cost::pass::run(runs, plan, &dir, ui)? {
            match m {
                Ok(m) => passes.entry(id).or_default().push(m),
                Err(e) => failed.push(format!("{id} (cost pass {}): {e}", p + 1)),
            }
        }
    }
    let mut floors = BTreeMap::new();
    let mut rows = Vec::new();
    for run in runs {
        for s in &run.scenarios {
            let Some(ms) = passes.get(&s.id) else {
                continue;
            };
            let sides: Vec<_> = ms.iter().map(|m| (&m.figures, &m.requests)).collect();
            let Some(f) = floors_from_passes(&sides) else {
                continue;
            };
            let tolerance = s
                .spec
                .as_ref()
                .map_or(0.0, |sp| sp.cost_regression_pct / 100.0);
            rows.push((s.id.clone(), tolerance, ms[0].figures.clone(), f.clone()));
            floors.insert(s.id.clone(), f);
        }
    }
    Ok((floors, failed, rows))
}
