//! `cargo perfgate list`: the scenarios with their load model, SLOs and plan in each test tier, without
//! starting anything.

use std::collections::BTreeMap;

use crate::baseline::lookup::baseline_paths;
use crate::baseline::BaselineFile;
use crate::cli::{CommonArgs, ListArgs, MessageFormat, Tier};
use crate::commands::{print_stdout, stdout_color};
use crate::discover::{self, Workspace};
use crate::error::{exit, Error, Result};
use crate::gate::sequential::NoiseFloor;
use crate::load::window::{TierPlan, Window};
use crate::machine::{same_machine, Fingerprint};
use crate::report::table;
use crate::results::{ListedScenario, PlannedRun};
use crate::ui::Ui;

/// The noise floors `cargo perfgate calibrate` stored for this machine in the working tree's baseline
/// files (what the gate can see here); a missing or unreadable file lists none.
fn calibrated_floors(found: &discover::Discovered) -> BTreeMap<String, NoiseFloor> {
    let machine = Fingerprint::collect(found.root());
    baseline_paths(&found.ws, &found.ws.packages, Tier::Smoke)
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
    let tiers: Vec<Tier> = match args.tier {
        Some(t) => vec![t],
        None => Tier::ALL.to_vec(),
    };
    let floors = calibrated_floors(&found);
    let items: Vec<ListedScenario> = found
        .scenarios
        .iter()
        .map(|s| {
            let spec = s.spec.clone().expect("described");
            let pkg = found.ws.packages.iter().find(|p| p.name == s.package);
            let plan = tiers
                .iter()
                .map(|&tier| {
                    let plan = match pkg {
                        Some(p) => TierPlan::resolve(tier, &found.ws.config, &p.config),
                        None => TierPlan::default_for(tier),
                    };
                    let run = plan.runs(&spec).then(|| {
                        let w = Window::of(&spec, &plan, None, None);
                        PlannedRun {
                            duration_ms: w.duration_ms,
                            warmup_ms: w.warmup_ms,
                            rounds: plan.config.rounds,
                        }
                    });
                    (tier.to_string(), run)
                })
                .collect();
            ListedScenario {
                resolves: floors
                    .get(&s.id)
                    .map(|f| f.floor.clone())
                    .unwrap_or_default(),
                package: s.package.clone(),
                id: s.id.clone(),
                test_name: s.test_name.clone(),
                executable: s.exe.clone(),
                spec,
                plan,
            }
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
