//! `cargo perfgate [run]`: build, start, load, check the SLOs, then the gate: the baseline file at
//! the merge-base, or the same-machine A/B mode when asked for or switched on by `ab = "auto"`.

use std::time::Instant;

use crate::ab;
use crate::baseline::lookup::{apply_baselines, lookup_baselines, Baselines};
use crate::baseline::write::{recorded_cost, write_baselines};
use crate::cli::{CommonArgs, RecordArgs, RunArgs, ShardArgs};
use crate::commands::{conclude, Clock, Measured};
use crate::cost;
use crate::discover::config::AbSetting;
use crate::discover::{self, Workspace};
use crate::error::{Error, Result};
use crate::gate::file::{DEFAULT_RECORD_ROUNDS, DEFAULT_RUN_ROUNDS};
use crate::gate::GateFlags;
use crate::load::{self, rundir, PreparedPackage, RunOptions};
use crate::machine::Fingerprint;
use crate::procs;
use crate::shard::{self, ShardId, ShardPlan};
use crate::text::format_utc;
use crate::ui::{progress, Ui};
use perfgate_runtime::format::LoadModel;

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
    let tier = args.load.tier.unwrap_or_default();
    crate::report::remove_stale(&args.outputs)?;
    if let Some(url) = &args.load.target_url {
        load::check_target_url(url, args.load.allow_remote)?;
    }
    let shard = args.shard.shard;
    if let Some(at) = args.shard.start_at {
        shard::check_start_at(at, shard::now_ms())?;
    }
    let ws = Workspace::load(common)?;
    // Shards of one load on one machine are meant to run together (they would wait for each
    // other at the barrier forever if the run lock kept them apart).
    let _runs = match shard {
        None => Some(load::lock_runs(&ws, args.load.no_wait, ui)?),
        Some(_) => None,
    };
    // The baseline is looked up first: a git problem is said before anything is built. A shard
    // has none: the merge of all shards is gated.
    let baselines = match (record, shard) {
        (None, None) => Some(lookup_baselines(&ws, &args.gate, tier, ui)?),
        _ => None,
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

    // Decided before the load: a cost pass that cannot run is said before minutes of load.
    let recorded = match record {
        Some(r) => recorded_cost(
            &found.ws,
            &found.ws.packages,
            r.baseline_file.as_deref(),
            tier,
        )?,
        None => Default::default(),
    };
    let cost_plan = cost::plan::plan(
        &runs,
        &args.cost,
        &|id| recorded.contains(id) || baselines.as_ref().is_some_and(|b| b.has_cost(id)),
        args.load.target_url.is_some(),
        cost::valgrind::detect,
        ui,
    )?;

    let (run_id, run_dir) = rundir::new_run_dir(&found.ws)?;
    // Several rounds only when there are rounds to compare them with.
    let has_baseline = baselines.as_ref().is_some_and(Baselines::any_rounds);
    let mut opts = RunOptions {
        // The cost pass (its SLOs, its checks) may still fail a scenario whose load passed; a
        // shard's checks are the merge's.
        gate_follows: (record.is_none() && (has_baseline || !cost_plan.scenarios.is_empty()))
            || shard.is_some(),
        first_round: 0,
        target_url: args.load.target_url.clone(),
        duration: args.load.duration,
        warmup: args.load.warmup,
        ca_cert: args.load.ca_cert.clone(),
        max_body_bytes: args.load.max_body_memory,
        rounds: match (record, args.gate.rounds) {
            (Some(r), _) => r.rounds.map_or(DEFAULT_RECORD_ROUNDS, |n| n as usize),
            (None, Some(n)) => n as usize,
            // Several rounds only when there is something to compare them with.
            (None, None) if has_baseline => DEFAULT_RUN_ROUNDS,
            (None, None) => 1,
        },
        rounds_default: match record {
            Some(r) => r.rounds.is_none(),
            None => args.gate.rounds.is_none(),
        },
        tier,
        shard: None,
    };
    if let Some(shard) = shard {
        opts.shard = Some(plan_shard(shard, &args.shard, &runs, &opts, ui)?);
    }
    let load_started = Instant::now();
    let mut scenarios = if args.cost.cost_only {
        load::cost_only_reports(&runs, &opts)
    } else {
        progress::set_scenario_dir(&run_dir.join("scenarios"));
        let scenarios = load::run_all(&runs, &run_dir, &opts, ui);
        progress::cleanup(&run_dir.join("scenarios"));
        scenarios?
    };
    let load_secs = load_started.elapsed().as_secs_f64();
    let cost_secs =
        cost::pass::measure_into(&runs, &cost_plan, &run_dir.join("cost"), &mut scenarios, ui)?;

    let flags = GateFlags {
        strict: args.gate.baseline.strict,
        allow_other_machine: args.gate.baseline.allow_other_machine,
        ignore_contention: args.gate.ignore_contention,
    };
    let gate = baselines
        .as_ref()
        .map(|b| apply_baselines(b, &mut scenarios, &environment, found.root(), flags));
    // Rounds the machine's contention made worthless as evidence: `ab = "auto"` measures the
    // merge-base next to HEAD instead, under the same conditions.
    let can_switch = args.gate.baseline.baseline_file.is_none() && args.load.target_url.is_none();
    if let (Some(baselines), Some(g), true) = (&baselines, &gate, can_switch) {
        if let Some(why) = ab::contended_reason(&g.contended, &runs) {
            ui.warn(&format!(
                "{why}; the file gate's rounds are kept in {}",
                run_dir.display()
            ));
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
    let measured = Measured {
        tier: Some(tier),
        run_id,
        run_dir,
        clock,
        target_url: args.load.target_url.clone(),
        build,
        load_secs,
        cost_secs,
        scenarios,
        environment,
        gate,
        shard,
        merged_from: Vec::new(),
        results_file: args.shard.results_file.clone(),
    };
    conclude(
        common,
        &args.outputs,
        &found.ws,
        measured,
        flags.strict,
        ui,
        |report| match record {
            Some(rec) => write_baselines(&found.ws, &found.ws.packages, rec, report, ui),
            None => Ok(()),
        },
    )
}

/// A shard's plan, once its scenarios are built: each can be split this many ways, the common start
/// (given, or met at the barrier now that this shard is ready), and every round's start from it.
fn plan_shard(
    shard: ShardId,
    args: &ShardArgs,
    runs: &[PreparedPackage<'_>],
    opts: &RunOptions,
    ui: &Ui,
) -> Result<ShardPlan> {
    let scenarios: Vec<_> = runs.iter().flat_map(|r| &r.scenarios).collect();
    let unsplittable: Vec<String> = scenarios
        .iter()
        .filter_map(|s| match s.spec.as_ref().map(|sp| &sp.load) {
            Some(LoadModel::Closed { users, .. }) if shard.share_of(*users) == 0 => {
                Some(format!("{} (users = {users})", s.id))
            }
            _ => None,
        })
        .collect();
    if !unsplittable.is_empty() {
        return Err(Error::Shards(format!(
            "these scenarios have fewer users than there are shards ({}), so some shards would run none: \
             {}; use fewer shards or filter them out",
            shard.count,
            unsplittable.join(", ")
        )));
    }
    let start = match (args.start_at, &args.start_barrier) {
        (Some(at), _) => at,
        (None, Some(dir)) => {
            ui.status(
                "Waiting",
                &format!("shard {shard}: for the other shards at {}", dir.display()),
            );
            shard::meet(dir, shard, shard::BARRIER_TIMEOUT, procs::interrupted)?
        }
        (None, None) => {
            return Err(Error::Usage(
                "--shard needs a common start: --start-at TIME or --start-barrier DIR".into(),
            ))
        }
    };
    ui.status(
        "Waiting",
        &format!(
            "shard {shard}: the load starts at {} (in {:.1} s)",
            format_utc(start),
            start.saturating_sub(shard::now_ms()) as f64 / 1000.0
        ),
    );
    let ids = runs.iter().flat_map(|r| {
        r.scenarios.iter().map(move |s| {
            let spec = s.spec.as_ref().expect("described");
            (s.id.clone(), opts.window(r, spec).load_time())
        })
    });
    // Every shard plans the same rounds: the most any package's tier runs.
    let rounds = runs
        .iter()
        .map(|r| opts.rounds_of(r))
        .max()
        .unwrap_or(opts.rounds);
    Ok(ShardPlan::new(shard, start, ids, rounds))
}
