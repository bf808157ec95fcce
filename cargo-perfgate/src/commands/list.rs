//! `cargo perfgate list`: the scenarios with their load model and SLOs, without starting anything.

use crate::cli::{CommonArgs, ListArgs, MessageFormat};
use crate::commands::{print_stdout, stdout_color};
use crate::discover::{self, Workspace};
use crate::error::{exit, Error, Result};
use crate::report::table;
use crate::results::ListedScenario;
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &ListArgs, ui: &Ui) -> Result<i32> {
    let ws = Workspace::load(common)?;
    let found = discover::discover(ws, args.filter.as_deref(), common, ui)?;
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
        MessageFormat::Human => table::render_list(&items, stdout_color()),
    };
    print_stdout(&text)?;
    Ok(exit::PASS)
}
