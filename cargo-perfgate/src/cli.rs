//! The command line: `cargo perfgate [run] [FILTER]` and `cargo perfgate list [FILTER]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;
use crate::shard::{parse_start_at, ShardId};

const AFTER_HELP: &str = "\
Exit codes:
  0    every check passed
  1    the gate failed: an SLO was breached, a regression against the baseline (or the service died)
  2    error: bad input, build or start failure, a scenario without results, no usable git history
       or baseline file (shallow clone without the merge-base, base branch missing, corrupt file)
  3    inconclusive: a measurement is invalid (the load generator could not keep its schedule); with
       --strict also an undecided regression check or no comparable baseline at the merge-base
  130  interrupted (Ctrl-C / SIGTERM); the service and scenario processes are killed first

Results of every run go to target/perfgate/<run-id>/results.json.";

/// Performance as a merge gate: build, start the service, run the `#[perf_test]` scenarios, check SLOs.
#[derive(Parser, Debug)]
#[command(
    name = "cargo-perfgate",
    bin_name = "cargo perfgate",
    version,
    after_help = AFTER_HELP,
    // `cargo perfgate [FILTER]` runs: `run` is the default subcommand.
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Arguments of the default `run` subcommand.
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

// Parsed once per process: boxing the run's arguments would only add noise at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Build, start the service, run the scenarios and check their SLOs (the default).
    Run(RunArgs),
    /// List the scenarios (load model, duration, SLOs) without starting anything.
    List(ListArgs),
    /// Render results files as one self-contained HTML page with charts (the first of several is the
    /// baseline, the last the current run).
    Report(ReportArgs),
    /// Run every scenario several rounds and write the baseline file (commit it on the base branch).
    Record(RecordArgs),
    /// Apply the regression gate to two files offline: BASE and HEAD are results.json files of earlier
    /// runs (BASE may also be a baseline file).
    Compare(CompareArgs),
    /// Measure this machine's noise floor: A/A rounds (the same build on both sides), stored in the
    /// baseline file; `--ab` then never claims to resolve a change below it.
    Calibrate(CalibrateArgs),
    /// Combine the results of the shards of one sharded load (`--shard I/N`) exactly, then check the
    /// SLOs and the gate as for one run (same reports, same exit codes).
    Merge(MergeArgs),
    /// Set up a service package: the perfgate-runtime dev-dependency, the
    /// [package.metadata.perfgate] table and a first scenario in tests/perf.rs (changes nothing that
    /// is already there).
    Init(InitArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct MergeArgs {
    /// Every shard's results file (its `--results-file`, or its run's results.json): all N shards of
    /// one sharded run. A missing shard is an error, never a smaller run.
    #[arg(value_name = "SHARD_RESULTS", required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the merged results document to FILE (it is always written to the run directory).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where the baseline is and how strictly it is judged, as for a run.
    #[command(flatten)]
    pub baseline: BaselineArgs,
    /// Reports for CI: JUnit, Markdown, OpenMetrics, the failure webhook.
    #[command(flatten)]
    pub outputs: OutputArgs,
}

impl MergeArgs {
    /// The gate's options, as a run takes them.
    pub fn gate(&self) -> GateArgs {
        GateArgs {
            baseline: self.baseline.clone(),
            ..GateArgs::default()
        }
    }
}

/// Sharded load: this process runs one share of every scenario's load against a service all
/// shards drive; `cargo perfgate merge` combines their results.
#[derive(Args, Debug, Clone, Default)]
pub struct ShardArgs {
    /// Run shard I of N (1-based): 1/N of every scenario's load, against --target-url, starting at a
    /// time common to all shards (--start-at or --start-barrier). SLOs and the gate are checked by
    /// `cargo perfgate merge`; a shard exits 0 once its results are written.
    #[arg(
        long,
        value_name = "I/N",
        value_parser = ShardId::parse,
        requires = "target_url",
        requires = "start",
        conflicts_with_all = ["ab", "base", "baseline_rev", "baseline_file", "strict", "allow_other_machine"]
    )]
    pub shard: Option<ShardId>,
    /// When the shards' load starts: an RFC 3339 time (`2026-11-27T07:15:00Z`) or Unix seconds, ahead
    /// of every shard's build and at most an hour ahead.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at, requires = "shard", group = "start")]
    pub start_at: Option<u64>,
    /// A directory every shard can write (a shared volume), fresh for each sharded run: the shards
    /// meet there once built and start together.
    #[arg(long, value_name = "DIR", requires = "shard", group = "start")]
    pub start_barrier: Option<PathBuf>,
    /// Also write the results document to FILE (what `cargo perfgate merge` reads from a shard).
    #[arg(long, value_name = "FILE")]
    pub results_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct InitArgs {
    /// The binary that serves [default: the package's only binary, else its `default-run`].
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// The service takes its port as this flag's value (`--port-flag --listen-port`).
    #[arg(long, value_name = "FLAG", allow_hyphen_values = true, conflicts_with_all = ["port_env", "fixed_port"])]
    pub port_flag: Option<String>,
    /// The service reads its port from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "fixed_port")]
    pub port_env: Option<String>,
    /// The service always binds this port (perfgate then uses it, and fails clearly when it is taken).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub fixed_port: Option<u16>,
    /// The path the first scenario requests and readiness is probed on [default: a health or
    /// readiness route found in the sources, else `/`].
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Where perfgate-runtime is [default: beside the perfgate checkout this binary was built from].
    #[arg(long, value_name = "DIR")]
    pub runtime_path: Option<PathBuf>,
    /// Say what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CalibrateArgs {
    /// Calibrate only scenarios whose `package::scenario` name contains this (the others are kept).
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// A/A pairs of rounds per scenario.
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u32).range(3..=200))]
    pub pairs: u32,
    /// The --ab budget the floor is computed for (the change it can resolve shrinks with more pairs).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,
    /// Write (and merge into) this file instead of the configured baseline path.
    #[arg(long, value_name = "PATH")]
    pub baseline_file: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub cost: CostArgs,
    /// With the cost pass: how many times each scenario is measured (the spread of repeated passes
    /// is the cost checks' noise floor).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub cost_passes: u32,
}

/// The deterministic cost pass: the service under valgrind, instructions, allocations, bytes and
/// syscalls per iteration counted in a window of fixed iterations.
#[derive(Args, Debug, Clone, Default)]
pub struct CostArgs {
    /// Run the cost pass for every scenario, whatever `cost` in [package.metadata.perfgate] says
    /// (an error without valgrind).
    #[arg(long)]
    pub cost: bool,
    /// Skip the cost pass, also where cost SLOs or the baseline's cost figures ask for it.
    #[arg(long, conflicts_with_all = ["cost", "cost_only"])]
    pub no_cost: bool,
    /// Only the cost pass: no load run, no latency checks (implies --cost).
    #[arg(long)]
    pub cost_only: bool,
    /// Iterations in the cost pass's measured window [default: 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub cost_iterations: Option<u64>,
    /// Iterations before the cost pass's window [default: 20].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub cost_warmup: Option<u64>,
}

/// How the regression gate finds the baseline and decides.
#[derive(Args, Debug, Clone, Default)]
pub struct GateArgs {
    /// Rounds per scenario [default: 5 when there is a baseline to compare with, else 1]; with --ab,
    /// the pairs of rounds before the first look [default: 6].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    #[command(flatten)]
    pub baseline: BaselineArgs,
    /// Compare rounds run under contention the baseline did not have (or the other way round) as if
    /// the machine had been alike: for machines whose load is known not to reach the service.
    #[arg(long)]
    pub ignore_contention: bool,
    /// Same-machine A/B: build the merge-base's service too and run HEAD's scenarios against both here,
    /// interleaved (ABBA), sampling until every check is decided or the budget runs out.
    #[arg(long, conflicts_with = "baseline_file")]
    pub ab: bool,
    /// With --ab: the time the load may take in all, split over the scenarios [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,
}

/// Where the baseline is and how strictly it is judged: a run's flags, and `merge`'s.
#[derive(Args, Debug, Clone, Default)]
pub struct BaselineArgs {
    /// The base branch whose merge-base with HEAD holds the baseline [default: $GITHUB_BASE_REF,
    /// $CI_MERGE_REQUEST_TARGET_BRANCH_NAME, …, else origin/HEAD, origin/main, origin/master, main, master].
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Read the baseline as committed at this revision instead of the merge-base.
    #[arg(long, value_name = "REV", conflicts_with = "base")]
    pub baseline_rev: Option<String>,
    /// Read the baseline from this file instead of git.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["base", "baseline_rev"])]
    pub baseline_file: Option<PathBuf>,
    /// Exit 3 when a regression check is inconclusive or there is no comparable baseline.
    #[arg(long)]
    pub strict: bool,
    /// Compare with a baseline recorded on another machine (CPU model, cores, OS) as if it were this one.
    #[arg(long)]
    pub allow_other_machine: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RecordArgs {
    /// Record only scenarios whose `package::scenario` name contains this (the others are kept).
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// Rounds per scenario [default: the tier's, else 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// Remove scenarios from the baseline that this run did not record (removed or renamed ones).
    #[arg(long)]
    pub allow_drop: bool,
    /// Write (and merge into) this file instead of the configured baseline path.
    #[arg(long, value_name = "PATH")]
    pub baseline_file: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub cost: CostArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CompareArgs {
    /// The baseline side: a results.json or a baseline file.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The current side: a results.json (or a baseline file).
    #[arg(value_name = "HEAD")]
    pub head: PathBuf,
    /// Exit 3 when a check is inconclusive or a scenario has no comparable baseline.
    #[arg(long)]
    pub strict: bool,
    /// Compare files recorded on different machines as if they were one.
    #[arg(long)]
    pub allow_other_machine: bool,
    /// Compare rounds run under different contention as if the machine had been alike.
    #[arg(long)]
    pub ignore_contention: bool,
}

/// Where the load goes and for how long: shared by `run` and `record`.
#[derive(Args, Debug, Clone, Default)]
pub struct LoadArgs {
    /// The test tier: how long each scenario runs, how many rounds, and which scenarios run at all
    /// (`tier = [...]`); see the README for each tier's defaults [default: $PERFGATE_TIER, else smoke].
    #[arg(long, value_name = "TIER", env = "PERFGATE_TIER")]
    pub tier: Option<Tier>,
    /// Drive an already running service at this URL instead of building and starting one
    /// (loopback only, unless --allow-remote).
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// Fail at once (exit 2) when another run measures in this target directory, instead of waiting
    /// for it: two runs at once would each measure under the other's load.
    #[arg(long)]
    pub no_wait: bool,
    /// Let --target-url send load to a host other than this machine (a staging service: make sure
    /// it is yours to load).
    #[arg(long, requires = "target_url")]
    pub allow_remote: bool,
    /// Override every scenario's measured duration (e.g. `5s`, `500ms`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Override every scenario's warmup (e.g. `0s`, `1s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// For `https://` targets, trust the CA certificate(s) in this PEM file besides the system's.
    #[arg(long, value_name = "FILE", value_parser = parse_ca_cert)]
    pub ca_cert: Option<PathBuf>,
    /// The most bytes of response bodies the load generator holds at once, over all its requests
    /// (e.g. `512MiB`, `2GiB`); a response that would go over it is an error [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_body_memory: Option<u64>,
    /// Never stop a scenario early, even when its verdict is already certain (errors above the
    /// tier's `abort_errors`, a lost error bound, a certain leak): every window runs to its end.
    #[arg(long)]
    pub no_abort: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Run only scenarios whose `package::scenario` name contains this.
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Reports for CI: JUnit, Markdown, OpenMetrics, the failure webhook.
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// The baseline and the regression gate.
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub cost: CostArgs,
    /// Sharded load.
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// results.json files [default: the latest run's]; with several, the first is the baseline.
    #[arg(value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// Where to write the page (overwritten) [default: report.html next to the last results file].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ListArgs {
    /// List only scenarios whose `package::scenario` name contains this.
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// Show the plan of this tier only [default: every tier's].
    #[arg(long, value_name = "TIER", env = "PERFGATE_TIER")]
    pub tier: Option<Tier>,
}

/// A test tier: the same scenarios at three depths.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Tier {
    /// Every pull request, within minutes: the scenarios as declared.
    #[default]
    Smoke,
    /// Nightly on the main branch: longer windows, more rounds.
    Nightly,
    /// Before a release: an hour or more per scenario, with leak checks always reported.
    Soak,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Smoke, Tier::Nightly, Tier::Soak];

    /// The name users write (`perfgate_units::TIERS`).
    pub fn as_str(self) -> &'static str {
        perfgate_units::TIERS[self as usize]
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options shared by every subcommand, spelled as cargo spells them.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Path to Cargo.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package(s) to run (default: every workspace member that depends on perfgate-runtime).
    #[arg(short = 'p', long = "package", global = true, value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Every workspace member that depends on perfgate-runtime (the default).
    #[arg(long, global = true)]
    pub workspace: bool,
    /// Space or comma separated list of features to activate.
    #[arg(short = 'F', long, global = true, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all available features.
    #[arg(long, global = true)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long, global = true)]
    pub no_default_features: bool,
    /// Use verbose output (commands run, cargo's own progress).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only the results (no progress).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring [default: $CARGO_TERM_COLOR, else auto; NO_COLOR is honoured by auto].
    #[arg(long, global = true, value_name = "WHEN")]
    pub color: Option<ColorWhen>,
    /// Which test targets hold the scenarios.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output format: `human` (table) or `json` (the results document on stdout).
    #[arg(long, global = true, value_name = "FMT", default_value = "human")]
    pub message_format: MessageFormat,
}

/// The test targets to build for scenarios, as cargo spells them; none given: `targets` in
/// [package.metadata.perfgate], else the targets whose sources mention `#[perf_test]`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetArgs {
    /// Scenarios in the library's unit tests.
    #[arg(long, global = true, help_heading = "Target Selection")]
    pub lib: bool,
    /// Scenarios in every binary's unit tests.
    #[arg(long, global = true, help_heading = "Target Selection")]
    pub bins: bool,
    /// Scenarios in this integration test (tests/NAME.rs); repeatable.
    #[arg(
        long = "test",
        global = true,
        value_name = "NAME",
        help_heading = "Target Selection"
    )]
    pub test: Vec<String>,
    /// Every target `cargo test` tests (the library, binaries and integration tests).
    #[arg(long, global = true, help_heading = "Target Selection")]
    pub tests: bool,
    /// Every target, examples and benches included.
    #[arg(long, global = true, help_heading = "Target Selection")]
    pub all_targets: bool,
}

impl TargetArgs {
    pub fn any(&self) -> bool {
        self.lib || self.bins || self.tests || self.all_targets || !self.test.is_empty()
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

impl CommonArgs {
    /// The cargo flags that select features, passed through to every cargo build.
    pub fn feature_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.features {
            out.push("--features".to_string());
            out.push(f.clone());
        }
        if self.all_features {
            out.push("--all-features".into());
        }
        if self.no_default_features {
            out.push("--no-default-features".into());
        }
        out
    }

    /// The colour choice: the flag, else `CARGO_TERM_COLOR` (as cargo does), else auto.
    pub fn color_choice(&self) -> ColorWhen {
        if let Some(c) = self.color {
            return c;
        }
        match std::env::var("CARGO_TERM_COLOR").ok().as_deref() {
            Some("always") => ColorWhen::Always,
            Some("never") => ColorWhen::Never,
            _ => ColorWhen::Auto,
        }
    }
}

impl Cli {
    /// Parses `cargo perfgate …` (cargo passes `perfgate` as the first argument) as well as
    /// `cargo-perfgate …` run directly.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        if args.get(1).is_some_and(|a| a == "perfgate") {
            args.remove(1);
        }
        hoist_subcommand(&mut args);
        Cli::try_parse_from(args)
    }

    /// The subcommand to run: the one given, else `run` with the top-level arguments.
    pub fn action(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Run(self.run.clone()))
    }
}

/// Options that take a value as the next argument (so that value is not mistaken for a subcommand).
const OPTIONS_WITH_VALUE: &[&str] = &[
    "--manifest-path",
    "-p",
    "--package",
    "-F",
    "--features",
    "--color",
    "--message-format",
    "--target-url",
    "--duration",
    "--warmup",
    "--ca-cert",
    "--max-body-memory",
    "--junit",
    "--markdown",
    "--prometheus",
    "--notify",
    "--run-url",
    "-o",
    "--output",
    "--rounds",
    "--base",
    "--baseline-rev",
    "--baseline-file",
    "--budget",
    "--pairs",
    "--cost-iterations",
    "--cost-warmup",
    "--cost-passes",
    "--tier",
    "--shard",
    "--start-at",
    "--start-barrier",
    "--results-file",
    "--test",
    "--bin",
    "--port-flag",
    "--port-env",
    "--fixed-port",
    "--path",
    "--runtime-path",
];

/// Moves a subcommand written after global options (`--manifest-path X list`) to the front: clap's
/// default-subcommand mode would otherwise read it as the `run` filter.
fn hoist_subcommand(args: &mut Vec<OsString>) {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--" {
            return;
        }
        if a.starts_with('-') {
            i += if OPTIONS_WITH_VALUE.contains(&a.as_ref()) {
                2
            } else {
                1
            };
            continue;
        }
        if matches!(
            a.as_ref(),
            "list" | "run" | "report" | "record" | "compare" | "calibrate" | "merge" | "init"
        ) {
            let sub = args.remove(i);
            args.insert(1, sub);
        }
        return;
    }
}

/// A duration on the command line: the grammar of the attribute and the config (`500ms`, `5s`, `2m`,
/// `1h`), or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    perfgate_units::parse_duration(s)
        .or_else(|| perfgate_units::parse_bare_seconds(s))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a duration; write {} (or a bare number of seconds)",
                perfgate_units::DURATION_FORM
            )
        })
}

/// `--ca-cert FILE`: an existing file that holds a PEM certificate, made absolute (the scenario
/// binaries run in their package's directory).
fn parse_ca_cert(s: &str) -> Result<PathBuf, String> {
    let path = std::path::absolute(s).map_err(|e| format!("`{s}`: {e}"))?;
    let text = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("`{s}` does not exist"),
        _ => format!("cannot read `{s}`: {e}"),
    })?;
    if !text
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(format!(
            "`{s}` holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CA's \
             certificate in PEM"
        ));
    }
    Ok(path)
}

/// A size in bytes with its unit: `512MiB`, `2GiB`, `64KiB`, `1GB`, `1000000B`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = (&t[..split], t[split..].trim());
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{s}` is not a size; write a number and a unit: B, KiB, MiB, GiB (or KB, MB, GB), \
                 e.g. 512MiB"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}` is not a positive size that fits in 64 bits"))
}

/// Whether a scenario named `package::scenario` is selected by `filter` (a substring).
pub fn matches_filter(filter: Option<&str>, id: &str) -> bool {
    match filter {
        Some(f) => id.contains(f),
        None => true,
    }
}

/// The report flags of `cargo perfgate run`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Write a JUnit XML report (one testcase per scenario and check) to FILE (overwritten).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the verdict table as Markdown to FILE (overwritten); it is also appended to
    /// $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write every metric in OpenMetrics text to FILE (overwritten), for a textfile collector or a
    /// Pushgateway.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// On failure, POST a Slack-compatible JSON message to this webhook (a secret: never printed).
    #[arg(
        long,
        value_name = "URL",
        env = "PERFGATE_NOTIFY_URL",
        hide_env_values = true
    )]
    pub notify: Option<Secret>,
    /// Link to this run in notifications [default: from GITHUB_*, CI_JOB_URL or BUILD_URL].
    #[arg(long, value_name = "URL")]
    pub run_url: Option<String>,
}

/// `5m`, `90s`, `2m30s`: how a budget is written on the command line.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::parse_args(args.iter().copied()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn both_argv_forms_parse_the_same() {
        let a = parse(&["cargo-perfgate", "perfgate", "checkout", "-p", "shop"]);
        let b = parse(&["cargo-perfgate", "checkout", "-p", "shop"]);
        for cli in [a, b] {
            match cli.action() {
                Command::Run(r) => assert_eq!(r.filter.as_deref(), Some("checkout")),
                other => panic!("{other:?}"),
            }
            assert_eq!(cli.common.packages, ["shop"]);
        }
    }

    #[test]
    fn run_is_the_default_and_explicit_subcommands_work() {
        assert!(
            matches!(parse(&["cargo-perfgate", "perfgate"]).action(), Command::Run(r) if r.filter.is_none())
        );
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "run",
            "pay",
            "--target-url",
            "http://127.0.0.1:8080",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert_eq!(r.filter.as_deref(), Some("pay"));
                assert_eq!(r.load.target_url.as_deref(), Some("http://127.0.0.1:8080"));
                assert_eq!(r.load.duration, Some(Duration::from_secs(2)));
                assert_eq!(r.load.warmup, Some(Duration::from_millis(500)));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "list",
            "--message-format",
            "json",
            "shop",
        ]);
        assert!(matches!(cli.action(), Command::List(l) if l.filter.as_deref() == Some("shop")));
        assert_eq!(cli.common.message_format, MessageFormat::Json);
    }

    #[test]
    fn cargo_style_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--manifest-path",
            "x/Cargo.toml",
            "-p",
            "a",
            "--package",
            "b",
            "--features",
            "f1,f2",
            "--no-default-features",
            "--color",
            "never",
            "-vv",
        ]);
        assert_eq!(cli.common.packages, ["a", "b"]);
        assert_eq!(
            cli.common.manifest_path,
            Some(PathBuf::from("x/Cargo.toml"))
        );
        assert_eq!(
            cli.common.feature_flags(),
            ["--features", "f1,f2", "--no-default-features"]
        );
        assert_eq!(cli.common.color_choice(), ColorWhen::Never);
        assert_eq!(cli.common.verbose, 2);
        assert!(Cli::parse_args(["cargo-perfgate", "-q", "-v"]).is_err());
        assert!(Cli::parse_args(["cargo-perfgate", "--color", "sometimes"]).is_err());
    }

    #[test]
    fn subcommand_after_global_options_is_still_a_subcommand() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--manifest-path",
            "x/Cargo.toml",
            "list",
        ]);
        assert!(matches!(cli.action(), Command::List(l) if l.filter.is_none()));
        assert_eq!(
            cli.common.manifest_path,
            Some(PathBuf::from("x/Cargo.toml"))
        );
        let cli = parse(&["cargo-perfgate", "-p", "list", "run", "pay"]);
        assert!(matches!(cli.action(), Command::Run(r) if r.filter.as_deref() == Some("pay")));
        assert_eq!(cli.common.packages, ["list"]);
    }

    #[test]
    fn ab_and_calibrate_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--ab",
            "--budget",
            "90s",
            "checkout",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert!(r.gate.ab);
                assert_eq!(r.gate.budget, Some(Duration::from_secs(90)));
                assert_eq!(r.filter.as_deref(), Some("checkout"));
            }
            other => panic!("{other:?}"),
        }
        // --ab reads the merge-base from git: a baseline file cannot stand in for it.
        assert!(Cli::parse_args(["cargo-perfgate", "--ab", "--baseline-file", "b.toml"]).is_err());
        let cli = parse(&[
            "cargo-perfgate",
            "-p",
            "shop",
            "calibrate",
            "--pairs",
            "5",
            "pay",
        ]);
        match cli.action() {
            Command::Calibrate(c) => {
                assert_eq!(c.pairs, 5);
                assert_eq!(c.filter.as_deref(), Some("pay"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse(&["cargo-perfgate", "calibrate"]).action(), Command::Calibrate(c) if c.pairs == 12)
        );
        assert!(Cli::parse_args(["cargo-perfgate", "calibrate", "--pairs", "2"]).is_err());
    }

    #[test]
    fn record_compare_and_gate_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--manifest-path",
            "x/Cargo.toml",
            "record",
            "work",
            "--rounds",
            "7",
            "--allow-drop",
        ]);
        match cli.action() {
            Command::Record(r) => {
                assert_eq!(r.filter.as_deref(), Some("work"));
                assert_eq!(r.rounds, Some(7));
                assert!(r.allow_drop);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse(&["cargo-perfgate", "record"]).action(), Command::Record(r) if r.rounds.is_none())
        );
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "compare",
            "a.json",
            "b.json",
            "--strict",
        ]);
        assert!(
            matches!(cli.action(), Command::Compare(c) if c.base == std::path::Path::new("a.json") && c.strict)
        );
        let cli = parse(&[
            "cargo-perfgate",
            "--base",
            "origin/develop",
            "--rounds",
            "4",
            "--strict",
            "--allow-other-machine",
            "pay",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert_eq!(r.filter.as_deref(), Some("pay"));
                assert_eq!(r.gate.baseline.base.as_deref(), Some("origin/develop"));
                assert_eq!(r.gate.rounds, Some(4));
                assert!(r.gate.baseline.strict && r.gate.baseline.allow_other_machine);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::parse_args(["cargo-perfgate", "--rounds", "0"]).is_err());
        assert!(Cli::parse_args([
            "cargo-perfgate",
            "--base",
            "main",
            "--baseline-file",
            "b.toml"
        ])
        .is_err());
    }

    #[test]
    fn cost_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--cost-only",
            "--cost-iterations",
            "10",
            "--cost-warmup",
            "0",
            "predict",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert!(r.cost.cost_only && !r.cost.cost && !r.cost.no_cost);
                assert_eq!(
                    (r.cost.cost_iterations, r.cost.cost_warmup),
                    (Some(10), Some(0))
                );
                assert_eq!(r.filter.as_deref(), Some("predict"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::parse_args(["cargo-perfgate", "--cost", "--no-cost"]).is_err());
        assert!(Cli::parse_args(["cargo-perfgate", "--cost-iterations", "0"]).is_err());
        let cli = parse(&["cargo-perfgate", "record", "--cost-only"]);
        assert!(matches!(cli.action(), Command::Record(r) if r.cost.cost_only));
        let cli = parse(&[
            "cargo-perfgate",
            "calibrate",
            "--cost-only",
            "--cost-passes",
            "4",
        ]);
        assert!(
            matches!(cli.action(), Command::Calibrate(c) if c.cost.cost_only && c.cost_passes == 4)
        );
    }

    #[test]
    fn the_tier_flag_parses_its_three_names_only() {
        let cli = parse(&["cargo-perfgate", "--tier", "nightly", "checkout"]);
        match cli.action() {
            Command::Run(r) => {
                assert_eq!(r.load.tier, Some(Tier::Nightly));
                assert_eq!(r.filter.as_deref(), Some("checkout"));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&["cargo-perfgate", "--tier", "soak", "record"]);
        assert!(matches!(cli.action(), Command::Record(r) if r.load.tier == Some(Tier::Soak)));
        let cli = parse(&["cargo-perfgate", "list", "--tier", "smoke"]);
        assert!(matches!(cli.action(), Command::List(l) if l.tier == Some(Tier::Smoke)));
        assert!(Cli::parse_args(["cargo-perfgate", "--tier", "weekly"]).is_err());
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
        }
        assert_eq!(Tier::Soak.to_string(), "soak");
    }

    #[test]
    fn shard_and_merge_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--shard",
            "2/3",
            "--target-url",
            "http://127.0.0.1:8080",
            "--start-at",
            "2026-11-27T07:15:00Z",
            "--results-file",
            "shard-2.json",
            "checkout",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert_eq!(r.shard.shard, Some(ShardId { index: 2, count: 3 }));
                assert_eq!(r.shard.start_at, Some(1_795_763_700_000));
                assert_eq!(r.shard.results_file, Some(PathBuf::from("shard-2.json")));
                assert_eq!(r.filter.as_deref(), Some("checkout"));
            }
            other => panic!("{other:?}"),
        }
        let url = ["--target-url", "http://127.0.0.1:1"];
        let with = |extra: &[&str]| {
            let mut a = vec!["cargo-perfgate"];
            a.extend_from_slice(extra);
            Cli::parse_args(a)
        };
        // A shard needs the service all shards drive, and a common start: one of the two.
        assert!(with(&["--shard", "1/2", "--start-at", "1795763700"]).is_err());
        assert!(with(&["--shard", "1/2", url[0], url[1]]).is_err());
        assert!(with(&["--shard", "1/2", url[0], url[1], "--start-barrier", "b"]).is_ok());
        assert!(with(&[
            "--shard",
            "1/2",
            url[0],
            url[1],
            "--start-barrier",
            "b",
            "--start-at",
            "1795763700"
        ])
        .is_err());
        // The gate is the merge's: a shard refuses its flags, and the start needs a shard.
        assert!(with(&[
            "--shard",
            "1/2",
            url[0],
            url[1],
            "--start-barrier",
            "b",
            "--strict"
        ])
        .is_err());
        assert!(with(&["--start-at", "1795763700"]).is_err());
        assert!(with(&["--shard", "3/2", url[0], url[1], "--start-barrier", "b"]).is_err());
        let cli = parse(&[
            "cargo-perfgate",
            "merge",
            "s1.json",
            "s2.json",
            "-o",
            "merged.json",
            "--baseline-file",
            "b.toml",
            "--strict",
            "--junit",
            "j.xml",
        ]);
        match cli.action() {
            Command::Merge(m) => {
                assert_eq!(m.files.len(), 2);
                assert_eq!(m.output, Some(PathBuf::from("merged.json")));
                let g = m.gate();
                assert!(g.baseline.strict && !g.ab && g.rounds.is_none());
                assert_eq!(g.baseline.baseline_file, Some(PathBuf::from("b.toml")));
                assert_eq!(m.outputs.junit, Some(PathBuf::from("j.xml")));
            }
            other => panic!("{other:?}"),
        }
        assert!(with(&["merge"]).is_err());
    }

    #[test]
    fn target_selection_and_init_options_parse() {
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--test",
            "perf",
            "--lib",
            "--test",
            "load",
            "list",
        ]);
        assert!(matches!(cli.action(), Command::List(_)));
        assert_eq!(cli.common.targets.test, ["perf", "load"]);
        assert!(cli.common.targets.lib && cli.common.targets.any());
        assert!(!parse(&["cargo-perfgate", "perfgate"]).common.targets.any());
        let cli = parse(&[
            "cargo-perfgate",
            "perfgate",
            "--manifest-path",
            "x/Cargo.toml",
            "init",
            "--bin",
            "shop",
            "--port-flag",
            "--listen-port",
            "--dry-run",
        ]);
        match cli.action() {
            Command::Init(i) => {
                assert_eq!(i.bin.as_deref(), Some("shop"));
                assert_eq!(i.port_flag.as_deref(), Some("--listen-port"));
                assert!(i.dry_run);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::parse_args([
            "cargo-perfgate",
            "init",
            "--port-env",
            "P",
            "--fixed-port",
            "80"
        ])
        .is_err());
        assert!(Cli::parse_args(["cargo-perfgate", "init", "--fixed-port", "0"]).is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let e = Cli::parse_args(["cargo-perfgate", "perfgate", "--help"]).unwrap_err();
        let help = e.to_string();
        assert!(help.contains("Exit codes"), "{help}");
        assert!(help.contains("130"), "{help}");
    }

    #[test]
    fn durations_and_filters() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(matches_filter(None, "shop::checkout"));
        assert!(matches_filter(Some("shop::check"), "shop::checkout"));
        assert!(!matches_filter(Some("pay"), "shop::checkout"));
    }

    #[test]
    fn sizes_and_ca_files() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64kib"), Ok(64 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in ["256", "MiB", "0MiB", "1.5GiB", "-1MiB", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let flag = ca.to_str().unwrap();
        let cli = parse(&[
            "cargo-perfgate",
            "--ca-cert",
            flag,
            "--max-body-memory",
            "1GiB",
        ]);
        match cli.action() {
            Command::Run(r) => {
                assert_eq!(r.load.ca_cert.as_deref(), Some(ca.as_path()));
                assert_eq!(r.load.max_body_memory, Some(1 << 30));
            }
            other => panic!("{other:?}"),
        }
        let missing = tmp.path().join("missing.pem");
        let e = Cli::parse_args(["cargo-perfgate", "--ca-cert", missing.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(&ca, "a key, not a certificate").unwrap();
        let e = Cli::parse_args(["cargo-perfgate", "--ca-cert", flag])
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn budgets_print_as_written_on_the_command_line() {
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
    }
}
