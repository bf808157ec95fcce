//! `cargo perfgate --ab` (or `ab = "auto"`): HEAD against the merge-base, both measured here.

use std::time::Instant;

use crate::ab::{self, paired, Sampling};
use crate::baseline::git;
use crate::baseline::lookup::Baselines;
use crate::cli::{CommonArgs, RunArgs};
use crate::commands::{conclude, Clock, Measured};
use crate::cost;
use crate::discover::Discovered;
use crate::error::{Error, Result};
use crate::gate::GateOptions;
use crate::load::{rundir, PreparedPackage, RunOptions};
use crate::machine::Fingerprint;
use crate::results::{BuildPart, ScenarioRun};
use crate::service::fixed_port_error;
use crate::ui::{progress, Ui};

/// `cargo perfgate --ab` (or `ab = "auto"`): HEAD against the merge-base, both measured here.
#[allow(clippy::too_many_arguments)]
pub fn run(
    common: &CommonArgs,
    args: &RunArgs,
    found: &Discovered,
    runs: &[PreparedPackage<'_>],
    baselines: &Baselines,
    why: &str,
    (clock, mut build): (Clock, Vec<BuildPart>),
    ui: &Ui,
) -> Result<i32> {
    if args.load.target_url.is_some() {
        return Err(Error::Usage(
            "--ab builds and starts the merge-base's service next to HEAD's; it cannot drive a --target-url"
                .into(),
        ));
    }
    let services: Vec<_> = runs.iter().flat_map(|r| r.services()).collect();
    if let Some(e) = fixed_port_error(
        &services,
        "--ab runs the merge-base's and HEAD's services side by side",
    ) {
        return Err(e);
    }
    ab::require_own_deps(runs, "--ab")?;
    let root = found.root();
    let repo = git::open(root).ok_or_else(|| {
        Error::Baseline(format!(
            "{} is not in a git repository: --ab measures the merge-base of HEAD and the base branch, which \
             needs git history. Run it in a git checkout",
            root.display()
        ))
    })?;
    // The merge-base the baseline lookup resolved: one resolution per run.
    let Some(git::Source::Commit { commit, how }) = baselines.source.clone() else {
        return Err(Error::Usage(
            "--ab cannot be combined with --baseline-file".into(),
        ));
    };
    let short = commit.to_string()[..10].to_string();
    // Decided before anything is built: a cost pass that cannot run is said at once.
    let cost_plan = cost::plan::plan(
        runs,
        &args.cost,
        &|id| baselines.has_cost(id),
        false,
        cost::valgrind::detect,
        ui,
    )?;
    ui.status(
        "A/B",
        &format!("HEAD against {short} ({how}), both measured on this machine ({why})"),
    );
    let t = Instant::now();
    let base = ab::base::prepare_base(common, found, runs, &repo, commit, ui)?;
    build.push(BuildPart {
        part: "merge-base service".into(),
        secs: t.elapsed().as_secs_f64(),
    });
    let base_runs: Vec<PreparedPackage<'_>> = runs
        .iter()
        .zip(&base.packages)
        .zip(&base.exes)
        .map(|((r, pkg), exes)| PreparedPackage {
            pkg,
            scenarios: r.scenarios.clone(),
            service_exes: exes.clone(),
            tier: r.tier.clone(),
        })
        .collect();

    let (run_id, run_dir) = rundir::new_run_dir(&found.ws)?;
    let environment = Fingerprint::collect(root);
    // One cost pass per side (the figures are deterministic: no pairs needed), before the load: a
    // scenario they already fail needs no wall-clock verdict, and its share of the budget goes to
    // the others.
    let cost_started = Instant::now();
    let cost_dir = run_dir.join("cost");
    let cost_run = |side: &[PreparedPackage<'_>], name: &str| {
        cost::pass::run(side, &cost_plan, &cost_dir.join(name), ui)
    };
    // (An error drops the worktree's guard, which removes it.)
    let base_cost = cost_run(&base_runs, "base")?;
    let head_cost = cost_run(runs, "head")?;
    let cost_secs = if cost_plan.valgrind.is_some() {
        cost_started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let sampling = Sampling {
        budget: args.gate.budget.unwrap_or(ab::DEFAULT_BUDGET),
        min_pairs: args
            .gate
            .rounds
            .map_or(ab::DEFAULT_MIN_PAIRS, |n| n as usize)
            .max(2),
        fixed_pairs: None,
        alpha: GateOptions::default().alpha,
        floors: ab::floors(baselines, &environment),
        cost_failed: ab::failed_on_cost(
            runs,
            &base_cost,
            &head_cost,
            &environment,
            baselines,
            &short,
        ),
    };
    let opts = RunOptions::one_round(&args.load);
    let load_started = Instant::now();
    let paired = if args.cost.cost_only {
        Ok(Vec::new())
    } else {
        progress::set_scenario_dir(&run_dir.join("scenarios"));
        let paired = paired::run_paired(
            runs,
            &base_runs,
            &run_dir,
            &opts,
            &sampling,
            &commit.to_string(),
            ui,
        );
        progress::cleanup(&run_dir.join("scenarios"));
        paired
    };
    let load_secs = load_started.elapsed().as_secs_f64();
    // The worktree goes before the results are shown: nothing of it outlives the run.
    if let Err(e) = base.checkout.remove() {
        ui.warn(&format!("removing the merge-base's worktree: {e}"));
    }
    let _ = std::fs::remove_file(ab::base::ab_dirs(&found.ws.perfgate_dir()).0.join("base"));
    let mut scenarios: Vec<ScenarioRun> = if args.cost.cost_only {
        crate::load::cost_only_reports(runs, &opts)
    } else {
        paired?.into_iter().map(|p| p.report).collect()
    };
    cost::pass::attach(head_cost, &mut scenarios);
    ab::judge_costs(&mut scenarios, base_cost, &environment, baselines, &short);

    let gate = ab::summary(&scenarios, &short, &how, sampling.budget);
    let measured = Measured {
        run_id,
        run_dir,
        clock,
        target_url: None,
        build,
        load_secs,
        cost_secs,
        scenarios,
        environment,
        gate: Some(gate),
        tier: Some(args.load.tier.unwrap_or_default()),
        shard: None,
        merged_from: Vec::new(),
        results_file: args.shard.results_file.clone(),
    };
    conclude(
        common,
        &args.outputs,
        &found.ws,
        measured,
        args.gate.baseline.strict,
        ui,
        |_| Ok(()),
    )
}
