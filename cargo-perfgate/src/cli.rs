//! The command line: `cargo perfgate [run] [FILTER]` and `cargo perfgate list [FILTER]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

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
    /// Set up a service package: the perfgate-runtime dev-dependency, the
    /// [package.metadata.perfgate] table and a first scenario in tests/perf.rs (changes nothing that
    /// is already there).
    Init(InitArgs),
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
}

/// How the regression gate finds the baseline and decides.
#[derive(Args, Debug, Clone, Default)]
pub struct GateArgs {
    /// Rounds per scenario [default: 3 when there is a baseline to compare with, else 1]; with --ab,
    /// the pairs of rounds before the first look [default: 6].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
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
    /// Same-machine A/B: build the merge-base's service too and run HEAD's scenarios against both here,
    /// interleaved (ABBA), sampling until every check is decided or the budget runs out.
    #[arg(long, conflicts_with = "baseline_file")]
    pub ab: bool,
    /// With --ab: the time the load may take in all, split over the scenarios [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RecordArgs {
    /// Record only scenarios whose `package::scenario` name contains this (the others are kept).
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// Rounds per scenario.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Remove scenarios from the baseline that this run did not record (removed or renamed ones).
    #[arg(long)]
    pub allow_drop: bool,
    /// Write (and merge into) this file instead of the configured baseline path.
    #[arg(long, value_name = "PATH")]
    pub baseline_file: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
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
}

/// Where the load goes and for how long: shared by `run` and `record`.
#[derive(Args, Debug, Clone, Default)]
pub struct LoadArgs {
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
            "list" | "run" | "report" | "record" | "compare" | "calibrate" | "init"
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
                assert_eq!(r.rounds, 7);
                assert!(r.allow_drop);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse(&["cargo-perfgate", "record"]).action(), Command::Record(r) if r.rounds == 5)
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
                assert_eq!(r.gate.base.as_deref(), Some("origin/develop"));
                assert_eq!(r.gate.rounds, Some(4));
                assert!(r.gate.strict && r.gate.allow_other_machine);
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
    fn budgets_print_as_written_on_the_command_line() {
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
    }
}
