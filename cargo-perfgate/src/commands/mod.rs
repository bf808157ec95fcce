//! One file per subcommand; this file holds what every command that runs scenarios does at its end:
//! `results.json`, the table (or the JSON document), and the CI outputs.

pub mod ab;
pub mod calibrate;
pub mod compare;
pub mod init;
pub mod list;
pub mod merge;
pub mod record;
pub mod report;
pub mod run;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use perfgate_runtime::format;

use crate::cli::{CommonArgs, MessageFormat, OutputArgs};
use crate::discover::Workspace;
use crate::error::{Error, Result};
use crate::gate::GateSummary;
use crate::machine::Fingerprint;
use crate::report::table;
use crate::results::{BuildPart, RunResults, ScenarioRun, ShardSource, RESULTS_SCHEMA_VERSION};
use crate::shard::ShardId;
use crate::slo;
use crate::ui::Ui;

/// When a command started, for the results' timings.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub started: Instant,
    pub started_unix_ms: u64,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            started: Instant::now(),
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// What a run measured, before it is concluded.
pub struct Measured {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub clock: Clock,
    pub target_url: Option<String>,
    /// The build's parts; their sum is the build time.
    pub build: Vec<BuildPart>,
    pub load_secs: f64,
    pub cost_secs: f64,
    pub scenarios: Vec<ScenarioRun>,
    pub environment: Fingerprint,
    /// The gate's summary, when there was a baseline to look for or a merge-base measured.
    pub gate: Option<GateSummary>,
    /// The test tier the run was planned for.
    pub tier: Option<crate::cli::Tier>,
    /// The share of the load this run was (`--shard`).
    pub shard: Option<ShardId>,
    /// The shards this run merges (`merge`).
    pub merged_from: Vec<ShardSource>,
    /// Where to write `results.json` once more (`--results-file`, `merge -o`).
    pub results_file: Option<PathBuf>,
}

/// The end of every run: the exit code, `results.json`, the table (or the JSON document), then
/// `after_show` (record's baseline file), then the CI outputs.
pub fn conclude(
    common: &CommonArgs,
    outputs: &OutputArgs,
    ws: &Workspace,
    m: Measured,
    strict: bool,
    ui: &Ui,
    after_show: impl FnOnce(&RunResults) -> Result<()>,
) -> Result<i32> {
    let undecided_trends = m
        .scenarios
        .iter()
        .flat_map(|s| &s.trends)
        .any(|t| !t.implicit && t.outcome == crate::gate::Outcome::Inconclusive);
    let verdicts = m.scenarios.iter().map(|s| s.verdict);
    let exit_code = match m.shard {
        Some(_) => slo::shard_exit_code(verdicts),
        None => slo::exit_code(verdicts, m.gate.as_ref(), undecided_trends, strict),
    };
    let report = RunResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        perfgate_version: format::PERFGATE_VERSION.to_string(),
        run_id: m.run_id,
        started_unix_ms: m.clock.started_unix_ms,
        environment: m.environment,
        target_url: m.target_url,
        build_secs: m.build.iter().map(|p| p.secs).sum(),
        build_parts: m.build,
        load_secs: m.load_secs,
        cost_secs: m.cost_secs,
        total_secs: m.clock.started.elapsed().as_secs_f64(),
        scenarios: m.scenarios,
        exit_code,
        gate: m.gate,
        tier: m.tier.map(|t| t.to_string()),
        shard: m.shard,
        merged_from: m.merged_from,
    };
    show(common, &report, &m.run_dir, ui)?;
    if let Some(path) = &m.results_file {
        report.write(path)?;
        ui.status("Wrote", &format!("results to {}", path.display()));
    }
    after_show(&report)?;
    emit_outputs(common, outputs, ws, &report, ui);
    Ok(exit_code)
}

/// Whether stdout gets colours: the resolved choice (flag, `CARGO_TERM_COLOR`, `NO_COLOR`, TTY).
pub fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = anstream::stdout();
    // A closed pipe (`| head`) is not worth a panic.
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to stdout", e)),
    }
}

/// Writes `results.json` in the run directory and prints the table (or the JSON document).
fn show(common: &CommonArgs, report: &RunResults, run_dir: &Path, ui: &Ui) -> Result<()> {
    let results_path = run_dir.join("results.json");
    report.write(&results_path)?;
    let text = match common.message_format {
        MessageFormat::Json => {
            serde_json::to_string_pretty(report)
                .map_err(|e| Error::io("serialising the results", e.into()))?
                + "\n"
        }
        MessageFormat::Human => table::render_human(report, Some(&results_path), stdout_color()),
    };
    print_stdout(&text)?;
    if common.message_format == MessageFormat::Json && !ui.quiet {
        eprintln!("results: {}", results_path.display());
    }
    if common.message_format == MessageFormat::Json {
        for w in report.gate.iter().flat_map(|g| &g.warnings) {
            ui.warn(w);
        }
    }
    Ok(())
}

/// The CI outputs asked for on the command line (JUnit, Markdown, OpenMetrics, the webhook).
fn emit_outputs(
    common: &CommonArgs,
    outputs: &OutputArgs,
    ws: &Workspace,
    report: &RunResults,
    ui: &Ui,
) {
    let written = crate::report::emit(
        report,
        outputs,
        &crate::report::EmitContext {
            workspace_root: ws.root(),
            package_roots: ws
                .packages
                .iter()
                .map(|p| (p.name.clone(), p.root.clone()))
                .collect(),
            stdout_is_human: common.message_format == MessageFormat::Human,
        },
        ui,
    );
    for (verb, what) in written {
        ui.status(verb, &what);
    }
}
