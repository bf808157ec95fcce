//! The library behind `cargo perfgate`; `main.rs` only calls [`main_with_args`].
//!
//! Pipeline (docs/ARCHITECTURE.md): cargo metadata → `cargo test --no-run` → list marked tests →
//! describe each scenario → build and start the service → run each scenario in its own process →
//! SLO checks → table / JSON, `results.json`, exit code.

pub mod ab;
pub mod baseline;
pub mod build;
pub mod check;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod discover;
pub mod error;
pub mod gate;
pub mod git;
pub mod output;
pub mod procs;
pub mod report;
pub mod run;
pub mod sample;
pub mod service;
pub mod ui;
pub mod worktree;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cli::{Action, Cli, ColorWhen, CommonArgs, MessageFormat};
use discover::{PerfPackage, Scenario, TestProfile};
use error::{exit, Error, Result};
use report::{Fingerprint, ListedScenario, RunReport};
use run::{PackageRun, RunOptions};
use ui::Ui;

/// Runs `cargo perfgate` with these arguments (argv[0] included) and returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let cli = match Cli::parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors; clap's own usage errors exit 2, as ours do.
            let _ = e.print();
            return if e.use_stderr() {
                exit::ERROR
            } else {
                exit::PASS
            };
        }
    };
    procs::install_signal_handlers();
    let color = match cli.common.color_choice() {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    color.write_global();
    let ui = Ui {
        quiet: cli.common.quiet,
        verbose: cli.common.verbose > 0,
    };
    let outcome = match cli.action() {
        Action::Run(args) => cmd_run(&cli.common, &args, &ui),
        Action::List(args) => cmd_list(&cli.common, args.filter.as_deref(), &ui),
        Action::Report(args) => cmd_report(&cli.common, &args, &ui),
        Action::Record(args) => cmd_record(&cli.common, &args, &ui),
        Action::Calibrate(args) => ab::cmd_calibrate(&cli.common, &args, &ui),
        Action::Compare(args) => {
            compare::cmd_compare(&args, cli.common.message_format, stdout_color())
                .and_then(|(text, code)| print_stdout(&text).map(|()| code))
        }
    };
    match outcome {
        Ok(code) => code,
        Err(Error::Interrupted) => {
            ui.error("interrupted; the service and scenario processes were stopped");
            exit::INTERRUPTED
        }
        Err(e) => {
            ui.error(&e.to_string());
            e.exit_code()
        }
    }
}

/// Whether stdout gets colours: the resolved choice (flag, `CARGO_TERM_COLOR`, `NO_COLOR`, TTY).
fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

pub(crate) fn print_stdout(text: &str) -> Result<()> {
    let mut out = anstream::stdout();
    // A closed pipe (`| head`) is not worth a panic.
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to stdout", e)),
    }
}

/// What discovery found: the packages and their described scenarios (filtered).
pub(crate) struct Discovered {
    meta: cargo_metadata::Metadata,
    packages: Vec<PerfPackage>,
    scenarios: Vec<Scenario>,
    build_secs: f64,
}

pub(crate) fn discover(common: &CommonArgs, filter: Option<&str>, ui: &Ui) -> Result<Discovered> {
    let meta = discover::metadata(common)?;
    let packages = discover::select_packages(&meta, &common.packages)?;
    let root_manifest = meta.workspace_root.join("Cargo.toml");
    let manifest_text = std::fs::read_to_string(&root_manifest).unwrap_or_default();
    let profile = TestProfile::choose(&manifest_text, |k| std::env::var(k).ok());
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    ui.status(
        "Building",
        &format!("scenarios of {} ({})", names.join(", "), profile.describe()),
    );
    let started = Instant::now();
    let binaries = build::build_tests(common, &packages, &profile)?;
    let build_secs = started.elapsed().as_secs_f64();

    let mut scenarios = Vec::new();
    for pkg in &packages {
        let bins: Vec<_> = binaries
            .iter()
            .filter(|b| b.package_id == pkg.id)
            .cloned()
            .collect();
        let found = discover::list_scenarios(pkg, &bins, ui.verbose)?;
        if found.is_empty() {
            let msg = discover::no_scenarios_message(pkg);
            if pkg.explicit || packages.len() == 1 {
                return Err(Error::Discovery(msg));
            }
            ui.warn(&msg);
        }
        scenarios.extend(
            found
                .into_iter()
                .filter(|s| cli::matches_filter(filter, &s.id)),
        );
    }
    if scenarios.is_empty() {
        return Err(Error::Discovery(match filter {
            Some(f) => format!("no scenario matches `{f}`; `cargo perfgate list` shows them all"),
            None => "no `#[perf_test]` scenario was found".to_string(),
        }));
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    for s in &mut scenarios {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        s.spec = Some(discover::describe(s, tmp.path(), ui.verbose)?);
    }
    Ok(Discovered {
        meta,
        packages,
        scenarios,
        build_secs,
    })
}

fn cmd_list(common: &CommonArgs, filter: Option<&str>, ui: &Ui) -> Result<i32> {
    let found = discover(common, filter, ui)?;
    let items: Vec<ListedScenario> = found
        .scenarios
        .into_iter()
        .map(|s| ListedScenario {
            package: s.package,
            id: s.id,
            test_name: s.test_name,
            executable: s.exe,
            spec: s.spec.expect("described"),
        })
        .collect();
    let text = match common.message_format {
        MessageFormat::Json => {
            serde_json::to_string_pretty(&items)
                .map_err(|e| Error::io("serialising the list", e.into()))?
                + "\n"
        }
        MessageFormat::Human => report::render_list(&items, stdout_color()),
    };
    print_stdout(&text)?;
    Ok(exit::PASS)
}

fn cmd_run(common: &CommonArgs, args: &cli::RunArgs, ui: &Ui) -> Result<i32> {
    run_pipeline(common, args, None, ui)
}

/// `cargo perfgate record`: the run's pipeline with more rounds, no comparison, then the baseline file.
fn cmd_record(common: &CommonArgs, args: &cli::RecordArgs, ui: &Ui) -> Result<i32> {
    let run_args = cli::RunArgs {
        filter: args.filter.clone(),
        load: args.load.clone(),
        ..Default::default()
    };
    run_pipeline(common, &run_args, Some(args), ui)
}

/// Build, run, check (and compare with the baseline, or record one).
fn run_pipeline(
    common: &CommonArgs,
    args: &cli::RunArgs,
    record: Option<&cli::RecordArgs>,
    ui: &Ui,
) -> Result<i32> {
    let started = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if let Some(url) = &args.load.target_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "--target-url `{url}` must be an http:// or https:// URL"
            )));
        }
    }
    // The baseline is looked up first: a git problem is said before anything is built.
    let baselines = match record {
        None => Some(compare::lookup_baselines(common, &args.gate, ui)?),
        Some(_) => None,
    };
    let found = discover(common, args.filter.as_deref(), ui)?;
    let (runs, service_build_secs) = prepare_runs(common, &args.load, &found, ui)?;
    let build_secs = found.build_secs + service_build_secs;
    if record.is_none() {
        if let Some(why) = ab::reason(
            args,
            &found,
            baselines.as_deref().unwrap_or_default(),
            &runs,
        ) {
            return ab::cmd_ab(
                common,
                args,
                &found,
                &runs,
                baselines.as_deref().unwrap_or_default(),
                &why,
                (started, started_unix_ms, build_secs),
                ui,
            );
        }
    }

    let (run_id, run_dir) = new_run_dir(&found)?;
    let has_baseline = baselines.iter().flatten().any(|g| g.file.is_some());
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
    output::progress::set_scenario_dir(&run_dir.join("scenarios"));
    let scenarios = run::run_all(&runs, &run_dir, &opts, ui);
    output::progress::cleanup(&run_dir.join("scenarios"));
    let mut scenarios = scenarios?;
    let load_secs = load_started.elapsed().as_secs_f64();

    let environment = Fingerprint::collect(found.meta.workspace_root.as_std_path());
    let flags = compare::GateFlags {
        strict: args.gate.strict,
        allow_other_machine: args.gate.allow_other_machine,
    };
    let gate = baselines.as_ref().map(|groups| {
        compare::apply_baselines(
            groups,
            &mut scenarios,
            &environment,
            found.meta.workspace_root.as_std_path(),
            flags,
        )
    });
    let exit_code = compare::exit_code(
        check::exit_code(scenarios.iter().map(|s| s.verdict)),
        gate.as_ref(),
        flags,
    );
    let report = RunReport {
        schema_version: report::REPORT_SCHEMA_VERSION,
        perfgate_version: perfgate_runtime::format::PERFGATE_VERSION.to_string(),
        run_id,
        started_unix_ms,
        environment,
        target_url: args.load.target_url.clone(),
        build_secs,
        load_secs,
        total_secs: started.elapsed().as_secs_f64(),
        scenarios,
        exit_code,
        gate,
    };
    show_report(common, &report, &run_dir, ui)?;
    if let Some(rec) = record {
        compare::write_baselines(&found.meta, &found.packages, rec, &report, ui)?;
    }
    emit_outputs(common, &args.outputs, &found, &report, ui);
    Ok(exit_code)
}

/// Writes `results.json` in the run directory and prints the table (or the JSON document).
pub(crate) fn show_report(
    common: &CommonArgs,
    report: &RunReport,
    run_dir: &std::path::Path,
    ui: &Ui,
) -> Result<()> {
    let results_path = run_dir.join("results.json");
    report::write_json_atomic(&results_path, report)?;
    let text = match common.message_format {
        MessageFormat::Json => {
            serde_json::to_string_pretty(report)
                .map_err(|e| Error::io("serialising the results", e.into()))?
                + "\n"
        }
        MessageFormat::Human => report::render_human(report, Some(&results_path), stdout_color()),
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
pub(crate) fn emit_outputs(
    common: &CommonArgs,
    outputs: &output::OutputArgs,
    found: &Discovered,
    report: &RunReport,
    ui: &Ui,
) {
    let written = output::emit(
        report,
        outputs,
        &output::EmitContext {
            workspace_root: found.meta.workspace_root.as_std_path(),
            package_roots: found
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

/// A fresh `target/perfgate/<run-id>/` for this run.
pub(crate) fn new_run_dir(found: &Discovered) -> Result<(String, PathBuf)> {
    run::create_run_dir(
        &build::perfgate_dir(found.meta.target_directory.as_std_path()),
        &run::run_id(SystemTime::now(), std::process::id()),
    )
}

/// Service configuration and builds, checked for every package before anything slow happens.
pub(crate) fn prepare_runs<'a>(
    common: &CommonArgs,
    load: &cli::LoadArgs,
    found: &'a Discovered,
    ui: &Ui,
) -> Result<(Vec<PackageRun<'a>>, f64)> {
    let mut build_secs = 0.0;

    // Service configuration, checked for every package before anything slow happens.
    let mut runs = Vec::new();
    for pkg in &found.packages {
        let scenarios: Vec<Scenario> = found
            .scenarios
            .iter()
            .filter(|s| s.package == pkg.name)
            .cloned()
            .collect();
        if scenarios.is_empty() {
            continue;
        }
        // With --target-url nothing is started, so the service declaration is not needed (nor checked).
        let config = match load.target_url {
            Some(_) => service::PackageConfig::default(),
            None => service::parse_metadata(&pkg.manifest_path, &pkg.metadata)?,
        };
        let mut service_exes = BTreeMap::new();
        if load.target_url.is_none() {
            // Every scenario must have a service to run against; building only the ones used.
            let mut needed = BTreeMap::new();
            for s in &scenarios {
                let cfg = run::service_for(pkg, &config, s.spec.as_ref().expect("described"))?;
                needed.insert(cfg.name.clone(), cfg.bin.clone());
            }
            let t = Instant::now();
            for (name, bin) in needed {
                ui.status(
                    "Building",
                    &format!("service `{name}` (bin `{bin}` of {}, release)", pkg.name),
                );
                service_exes.insert(name, build::build_service_bin(common, pkg, &bin)?);
            }
            build_secs += t.elapsed().as_secs_f64();
        }
        runs.push(PackageRun {
            pkg,
            config,
            scenarios,
            service_exes,
        });
    }

    Ok((runs, build_secs))
}

/// `cargo perfgate report [RESULTS…] [-o FILE]`: the HTML page.
fn cmd_report(common: &CommonArgs, args: &cli::ReportArgs, _ui: &Ui) -> Result<i32> {
    let files = if args.results.is_empty() {
        let meta = discover::metadata(common)?;
        let dir = build::perfgate_dir(meta.target_directory.as_std_path());
        vec![output::latest_results(&dir).ok_or_else(|| {
            Error::Usage(format!(
                "no results under {}; run `cargo perfgate` first or name results.json files",
                dir.display()
            ))
        })?]
    } else {
        args.results.clone()
    };
    let mut reports = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
        let r: RunReport = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is not a perfgate results.json: {e}",
                f.display()
            ))
        })?;
        reports.push(r);
    }
    let ids: Vec<String> = reports.iter().map(|r| r.run_id.clone()).collect();
    let runs: Vec<output::html::Run> = output::html::labels(reports.len(), &ids)
        .into_iter()
        .zip(reports)
        .map(|(label, report)| output::html::Run { label, report })
        .collect();
    let out = args.output.clone().unwrap_or_else(|| {
        files
            .last()
            .and_then(|f| f.parent())
            .map_or_else(|| PathBuf::from("report.html"), |d| d.join("report.html"))
    });
    output::write_atomic(&out, &output::html::render(&runs))
        .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    print_stdout(&format!("report: {}\n", out.display()))?;
    Ok(exit::PASS)
}
