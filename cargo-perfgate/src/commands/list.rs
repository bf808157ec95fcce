//! `cargo perfgate list`: the scenarios with their load model and SLOs, without starting anything.

use std::collections::BTreeMap;

use crate::baseline::lookup::baseline_paths;
use crate::baseline::BaselineFile;
use crate::cli::{CommonArgs, ListArgs, MessageFormat};
use crate::commands::{print_stdout, stdout_color};
use crate::discover::{self, Workspace};
use crate::error::{exit, Error, Result};
use crate::gate::sequential::NoiseFloor;
use crate::machine::{same_machine, Fingerprint};
use crate::report::table;
use crate::results::ListedScenario;
use crate::ui::Ui;

/// The noise floors `cargo perfgate calibrate` stored for this machine in the working tree's baseline
/// files (what the gate can see here); a missing or unreadable file lists none.
fn calibrated_floors(found: &discover::Discovered) -> BTreeMap<String, NoiseFloor> {
    let machine = Fingerprint::collect(found.root());
    baseline_paths(&found.ws, &found.ws.packages)
        .into_keys()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            BaselineFile::parse(&text, &path.display().to_string()).ok()
        })
        .filter_map(|f| f.calibration)
        .filter(|c| same_machine(&c.machine, &machine))
        .flat_map(|c| c.scenarios)
        .collect()
}

pub fn run(common: &CommonArgs, args: &ListArgs, ui: &Ui) -> Result<i32> {
    let ws = Workspace::load(common)?;
    let found = discover::discover(ws, args.filter.as_deref(), common, ui)?;
    let floors = calibrated_floors(&found);
    let items: Vec<ListedScenario> = found
        .scenarios
        .into_iter()
        .map(|s| ListedScenario {
            resolves: floors
                .get(&s.id)
                .map(|f| f.floor.clone())
                .unwrap_or_default(),
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
        MessageFormat::Human => table::render_list(&items, stdout_color()),
    };
    print_stdout(&text)?;
    Ok(exit::PASS)
}
