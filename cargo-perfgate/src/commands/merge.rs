//! `cargo perfgate merge SHARD_RESULTS… [-o FILE]`: the shards of one sharded load as one run. The
//! shards are checked and added up (`merge.rs`), then the run ends as every run does: the gate
//! against the baseline at the merge-base (`baseline/lookup.rs`), `results.json`, the table, the CI
//! outputs and the exit code (`conclude`).

use crate::baseline::lookup::{apply_baselines, lookup_baselines};
use crate::cli::{CommonArgs, MergeArgs, Tier};
use crate::commands::{conclude, Clock, Measured};
use crate::discover::Workspace;
use crate::error::Result;
use crate::gate::GateFlags;
use crate::load::rundir;
use crate::merge::{merge, ShardFile};
use crate::results::{BuildPart, RunResults};
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &MergeArgs, ui: &Ui) -> Result<i32> {
    let mut clock = Clock::start();
    let files = args
        .files
        .iter()
        .map(|path| {
            Ok(ShardFile {
                origin: path.display().to_string(),
                doc: RunResults::read(path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut merged = merge(&files)?;
    ui.status(
        "Merged",
        &format!(
            "{} shards: {}",
            merged.sources.len(),
            merged
                .scenarios
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let ws = Workspace::load(common)?;
    let gate_args = args.gate();
    // The shards ran one tier (checked with their specs, which hold it); its baseline gates them.
    let tier = files
        .first()
        .and_then(|f| f.doc.tier.as_deref())
        .and_then(Tier::parse)
        .unwrap_or_default();
    let baselines = lookup_baselines(&ws, &gate_args, tier, ui)?;
    let flags = GateFlags {
        strict: args.baseline.strict,
        allow_other_machine: args.baseline.allow_other_machine,
        ignore_contention: false,
    };
    let gate = apply_baselines(
        &baselines,
        &mut merged.scenarios,
        &merged.environment,
        ws.root(),
        flags,
    );
    let (run_id, run_dir) = rundir::new_run_dir(&ws)?;
    // The merged run started with its earliest shard; its total time is the merge's own.
    clock.started_unix_ms = merged.started_unix_ms;
    let measured = Measured {
        run_id,
        run_dir,
        clock,
        target_url: merged.target_url,
        // The shards built in parallel: the merged run waited for the slowest.
        build: vec![BuildPart {
            part: "the slowest shard".to_string(),
            secs: merged.build_secs,
        }],
        load_secs: merged.load_secs,
        cost_secs: 0.0,
        tier: Some(tier),
        scenarios: merged.scenarios,
        environment: merged.environment,
        gate: Some(gate),
        shard: None,
        merged_from: merged.sources,
        results_file: args.output.clone(),
    };
    conclude(
        common,
        &args.outputs,
        &ws,
        measured,
        flags.strict,
        ui,
        |_| Ok(()),
    )
}
