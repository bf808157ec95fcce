//! `cargo perfgate [run]`: build, start, load, check the SLOs, then the gate: the baseline file at
//! the merge-base, or the same-machine A/B mode when asked for or switched on by `ab = "auto"`.

use std::time::Instant;

use crate::ab;
use crate::baseline::lookup::{apply_baselines, lookup_baselines, Baselines};
use crate::baseline::write::write_baselines;
use crate::cli::{CommonArgs, RecordArgs, RunArgs};
use crate::commands::{conclude, Clock, Measured};
use crate::discover::config::AbSetting;
use crate::discover::{self, Workspace};
use crate::error::Result;
use crate::gate::GateFlags;
use crate::load::{self, rundir, RunOptions};
use crate::machine::Fingerprint;
use crate::ui::{progress, Ui};

pub fn run(common: &CommonArgs, args: &RunArgs, ui: &Ui) -> Result<i32> {
    pipeline(common, args, None, ui)
}

/// Build, run, check, and compare with the baseline (or, for `record`, write one).
pub(crate) fn pipeline(
    common: &CommonArgs,
    args: &RunArgs,
    record: Option<&RecordArgs>,
    ui: &Ui,
) -> Result<i32> {
    let clock = Clock::start();
    crate::report::remove_stale(&args.outputs)?;
    if let Some(url) = &args.load.target_url {
        load::check_target_url(url, args.load.allow_remote)?;
    }
    let ws = Workspace::load(common)?;
    let _runs = load::lock_runs(&ws, args.load.no_wait, ui)?;
    // The baseline is looked up first: a git problem is said before anything is built.
    let baselines = match record {
        None => Some(lookup_baselines(&ws, &args.gate, ui)?),
        Some(_) => None,
    };
    let found = discover::discover(ws, args.filter.as_deref(), common, ui)?;
    // The A/B mode builds the merge-base's service on its own (`cargo build`); HEAD's is then built
    // the same way, so the two sides differ by the code only, not by the features dev-dependencies
    // add to a shared build.
    let ab_may_run = args.gate.ab
        || found
            .ws
            .packages
            .iter()
            .any(|p| p.config.ab != AbSetting::Off);
    let (runs, build) = load::prepare(common, &args.load, &found, !ab_may_run, ui)?;
    let environment = Fingerprint::collect(found.root());
    if let Some(baselines) = &baselines {
        if let Some(why) = ab::reason(args, &environment, baselines, &runs) {
            return super::ab::run(
                common,
                args,
                &found,
                &runs,
                baselines,
                &why,
                (clock, build),
                ui,
            );
        }
    }

    let (run_id, run_dir) = rundir::new_run_dir(&found.ws)?;
    let has_baseline = baselines.as_ref().is_some_and(Baselines::any_found);
    let opts = RunOptions {
        gate_follows: record.is_none() && has_baseline,
        first_round: 0,
        target_url: args.load.target_url.clone(),
        duration: args.load.duration,
        warmup: args.load.warmup,
        rounds: match (record, args.gate.rounds) {
            (Some(r), _) => r.rounds as usize,
            (None, Some(n)) => n as usize,
            // Several rounds only when there is something to compare them with.
            (None, None) if has_baseline => 3,
            (None, None) => 1,
        },
    };
    let load_started = Instant::now();
    progress::set_scenario_dir(&run_dir.join("scenarios"));
    let scenarios = load::run_all(&runs, &run_dir, &opts, ui);
    progress::cleanup(&run_dir.join("scenarios"));
    let mut scenarios = scenarios?;
    let load_secs = load_started.elapsed().as_secs_f64();

    let flags = GateFlags {
        strict: args.gate.strict,
        allow_other_machine: args.gate.allow_other_machine,
    };
    let gate = baselines
        .as_ref()
        .map(|b| apply_baselines(b, &mut scenarios, &environment, found.root(), flags));
    let measured = Measured {
        run_id,
        run_dir,
        clock,
        target_url: args.load.target_url.clone(),
        build,
        load_secs,
        scenarios,
        environment,
        gate,
    };
    conclude(
        common,
        &args.outputs,
        &found,
        measured,
        flags.strict,
        ui,
        |report| match record {
            Some(rec) => write_baselines(&found.ws, &found.ws.packages, rec, report, ui),
            None => Ok(()),
        },
    )
}
