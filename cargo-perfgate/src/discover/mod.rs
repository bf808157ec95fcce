//! Discovery: which packages use perfgate (`workspace`), how each declares its service (`config`),
//! building their test binaries (`build`), and listing and describing the scenarios in them
//! (`scenarios`).

pub mod build;
pub mod config;
pub mod scenarios;
pub mod stamp;
pub mod workspace;

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
    let root_manifest = ws.root().join("Cargo.toml");
    let manifest_text = std::fs::read_to_string(&root_manifest).unwrap_or_default();
    let profile = TestProfile::choose(&manifest_text, |k| std::env::var(k).ok());
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    ui.status(
        "Building",
        &format!("scenarios of {} ({})", names.join(", "), profile.describe()),
    );
    let started = Instant::now();
    let checkout = build::Checkout::new(ws.root(), ws.meta.target_directory.as_std_path());
    let binaries = build::build_tests(common, &checkout, packages, &profile)?;
    let build_secs = started.elapsed().as_secs_f64();

    let mut scenarios = Vec::new();
    for pkg in packages {
        let bins: Vec<_> = binaries
            .iter()
            .filter(|b| b.package_id == pkg.id)
            .cloned()
            .collect();
        let found = scenarios::list_scenarios(pkg, &bins, ui.verbose)?;
        if found.is_empty() {
            let msg = workspace::no_scenarios_message(pkg);
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
    })
}
