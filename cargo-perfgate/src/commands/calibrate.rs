//! `cargo perfgate calibrate`: A/A pairs of the same build on both sides; the floors go to the
//! baseline file (merged, atomically), and a table says what this machine can resolve.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::ab::{self, paired, Sampling};
use crate::baseline::{git, write::write_calibration};
use crate::cli::{fmt_duration, CalibrateArgs, CommonArgs};
use crate::commands::print_stdout;
use crate::discover::{self, Workspace};
use crate::error::{exit, Error, Result};
use crate::gate::GateOptions;
use crate::load::{self, rundir, RunOptions};
use crate::machine::Fingerprint;
use crate::report::table::render_floors;
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
    // The same build on both sides: two instances of each service, each with its own `Services`.
    let twins = runs.clone();
    let (_, run_dir) = rundir::new_run_dir(&found.ws)?;
    let budget = args.budget.unwrap_or(ab::DEFAULT_BUDGET);
    let sampling = Sampling {
        budget: Duration::MAX,
        min_pairs: args.pairs as usize,
        fixed_pairs: Some(args.pairs as usize),
        alpha: GateOptions::default().alpha,
        floors: BTreeMap::new(),
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
    let measured = paired::run_paired(&runs, &twins, &run_dir, &opts, &sampling, "HEAD (A/A)", ui);
    progress::cleanup(&run_dir.join("scenarios"));
    let floors = ab::floors_from(&measured?, budget);

    let machine = Fingerprint::collect(found.root());
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let head = git::open(found.root()).and_then(|r| git::head_commit(&r));
    write_calibration(
        &found.ws,
        args.baseline_file.as_deref(),
        &floors.measured,
        &machine,
        head,
        args.pairs as usize,
        budget.as_secs_f64(),
        now,
        ui,
    )?;
    print_stdout(&render_floors(&floors.rows))?;
    if !floors.failed.is_empty() {
        return Err(Error::Scenario(format!(
            "calibration could not measure: {}",
            floors.failed.join("; ")
        )));
    }
    Ok(exit::PASS)
}
