//! `cargo perfgate report [RESULTS…] [-o FILE]`: one self-contained HTML page.

use std::path::PathBuf;

use crate::cli::{CommonArgs, ReportArgs};
use crate::commands::print_stdout;
use crate::discover::workspace::{metadata, perfgate_dir};
use crate::error::{exit, Error, Result};
use crate::report::{html, latest_results};
use crate::results::RunResults;
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &ReportArgs, _ui: &Ui) -> Result<i32> {
    let files = if args.results.is_empty() {
        let meta = metadata(common)?;
        let dir = perfgate_dir(meta.target_directory.as_std_path());
        vec![latest_results(&dir).ok_or_else(|| {
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
        reports.push(RunResults::read(f)?);
    }
    let ids: Vec<String> = reports.iter().map(|r| r.run_id.clone()).collect();
    let runs: Vec<html::Run> = html::labels(reports.len(), &ids)
        .into_iter()
        .zip(reports)
        .map(|(label, report)| html::Run { label, report })
        .collect();
    let out = args.output.clone().unwrap_or_else(|| {
        files
            .last()
            .and_then(|f| f.parent())
            .map_or_else(|| PathBuf::from("report.html"), |d| d.join("report.html"))
    });
    crate::files::write_atomic(&out, html::render(&runs).as_bytes())
        .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    print_stdout(&format!("report: {}\n", out.display()))?;
    Ok(exit::PASS)
}
