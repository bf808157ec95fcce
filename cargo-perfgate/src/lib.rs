//! The library behind `cargo perfgate`; `main.rs` only calls [`main_with_args`].
//!
//! One folder per area, arrows one way (docs/ARCHITECTURE.md): `commands/` at the top calls `ab/`,
//! `load/`, `baseline/`, `report/`, which call `service/` and `discover/`; at the bottom lie the pure
//! parts (`gate/`, `slo`, `protocol`, `machine`) and the plumbing (`error`, `cli`, `ui/`, `procs`,
//! `files`, `secret`).

pub mod ab;
pub mod baseline;
pub mod cli;
pub mod commands;
pub mod cost;
pub mod discover;
pub mod error;
pub mod files;
pub mod gate;
pub mod load;
pub mod machine;
pub mod merge;
pub mod procs;
pub mod protocol;
pub mod report;
pub mod results;
pub mod secret;
pub mod service;
pub mod shard;
pub mod slo;
pub mod text;
pub mod ui;

/// The file parsers' entry points for the fuzz targets (`fuzz/`). Not a stable API.
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz;

use std::ffi::OsString;

use cli::{Cli, ColorWhen, Command};
use error::exit;
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
    if let cli::Command::Run(run) = cli.action() {
        if let Some(url) = &run.outputs.notify {
            secret::register(url.expose());
        }
    }
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
    for p in procs::clean_leftovers() {
        ui.warn(&format!(
            "stopped process {} (`{}`), left behind by an earlier `cargo perfgate` that was killed",
            p.pid, p.cmdline
        ));
    }
    let common = &cli.common;
    let outcome = match cli.action() {
        Command::Run(args) => commands::run::run(common, &args, &ui),
        Command::List(args) => commands::list::run(common, &args, &ui),
        Command::Report(args) => commands::report::run(common, &args, &ui),
        Command::Record(args) => commands::record::run(common, &args, &ui),
        Command::Calibrate(args) => commands::calibrate::run(common, &args, &ui),
        Command::Compare(args) => commands::compare::run(common, &args, &ui),
        Command::Merge(args) => commands::merge::run(common, &args, &ui),
        Command::Init(args) => commands::init::run(common, &args, &ui),
    };
    // Whatever a service started and left behind (a daemon that left its process group) goes too.
    for p in procs::sweep() {
        if ui.verbose {
            ui.status(
                "Stopped",
                &format!("process {} (`{}`), left by a service", p.pid, p.cmdline),
            );
        }
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            ui.error(&e.to_string());
            e.exit_code()
        }
    }
}
