//! Discovery: which packages use perfgate (`workspace`), how each declares its service (`config`),
//! which of their test targets can hold scenarios (`targets`, reading sources with `sources`),
//! building those (`build`), and listing and describing the scenarios in them (`scenarios`).

pub mod build;
pub mod config;
pub mod guess;
pub mod scenarios;
pub mod sources;
pub mod stamp;
pub mod targets;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub use scenarios::Scenario;
pub use workspace::{PerfPackage, Workspace};

use crate::cli::{self, CommonArgs};
use crate::error::{Error, Result};
use crate::procs;
use crate::ui::Ui;
use build::TestProfile;

/// What discovery found: the workspace and the described scenarios of its selected packages.
pub struct Discovered {
    pub ws: Workspace,
    pub scenarios: Vec<Scenario>,
    /// Seconds spent building the scenario binaries.
    pub build_secs: f64,
    /// The services' binaries cargo built with the scenarios, by package and bin name (release
    /// profile only): the run can start them without building them again.
    pub service_bins: BTreeMap<(String, String), PathBuf>,
}

impl Discovered {
    pub fn root(&self) -> &std::path::Path {
        self.ws.root()
    }
}

/// Builds the scenario binaries of the workspace's packages, lists their marked tests and describes
/// each scenario that `filter` selects.
pub fn discover(
    ws: Workspace,
    filter: Option<&str>,
    common: &CommonArgs,
    ui: &Ui,
) -> Result<Discovered> {
    let packages = &ws.packages;
    targets::check_command_line(packages, &common.targets)?;
    let root_manifest = ws.root().join("Cargo.toml");
    let manifest_text = std::fs::read_to_string(&root_manifest).unwrap_or_default();
    let profile = TestProfile::choose(&manifest_text, |k| std::env::var(k).ok());
    let checkout = build::Checkout::new(ws.root(), ws.meta.target_directory.as_std_path());
    let mut build_secs = 0.0;
    let mut scenarios = Vec::new();
    let mut service_bins = BTreeMap::new();
    for pkg in packages {
        let selection = targets::select(pkg, &common.targets)?;
        let mut found = Vec::new();
        if !selection.targets.is_empty() {
            ui.status(
                "Building",
                &format!(
                    "scenarios of {}: {}, {}",
                    pkg.name,
                    selection.describe(),
                    profile.describe()
                ),
            );
            let started = Instant::now();
            let built = build::build_tests(common, &checkout, pkg, &selection, &profile, ui)?;
            build_secs += started.elapsed().as_secs_f64();
            for (bin, exe) in built.service_bins {
                service_bins.insert((pkg.name.clone(), bin), exe);
            }
            found = scenarios::list_scenarios(pkg, &built.binaries, ui.verbose)?;
        }
        if found.is_empty() {
            let mut msg = workspace::no_scenarios_message(pkg);
            if selection.targets.is_empty() && selection.source == targets::Source::Scan {
                msg.push_str(&format!(
                    "\nNo test target's sources mention `{}`; if a macro generates your scenarios, name \
                     their target with `--test NAME`/`--lib` or `targets = [\"NAME\"]` in \
                     [package.metadata.perfgate].",
                    targets::MARKER
                ));
            } else if !selection.targets.is_empty() {
                msg.push_str(&format!("\nBuilt: {}.", selection.describe()));
            }
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
        s.spec = Some(scenarios::describe(s, tmp.path(), ui.verbose)?);
    }
    Ok(Discovered {
        ws,
        scenarios,
        build_secs,
        service_bins,
    })
}
