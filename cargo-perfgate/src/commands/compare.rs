//! `cargo perfgate compare BASE HEAD`: the file gate over two files offline, as a table, with the exit
//! code of a run. BASE is a results.json or a baseline file; HEAD a results.json (or a baseline file).

use std::path::Path;

use crate::baseline::BaselineFile;
use crate::cli::{CommonArgs, CompareArgs, MessageFormat};
use crate::commands::{print_stdout, stdout_color};
use crate::error::{Error, Result};
use crate::gate::cost::{self, CostBase, CostTolerance};
use crate::gate::file::judge;
use crate::gate::GateFlags;
use crate::report::table::{gate_line, render_regressions};
use crate::results::{self, RunResults, ScenarioRun, RESULTS_SCHEMA_VERSION};
use crate::slo::{self, Evidence, Verdict};
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &CompareArgs, _ui: &Ui) -> Result<i32> {
    let (text, code) = compare(args, common.message_format, stdout_color())?;
    print_stdout(&text)?;
    Ok(code)
}

/// The comparison as text (table or JSON) and its exit code.
pub fn compare(args: &CompareArgs, format: MessageFormat, color: bool) -> Result<(String, i32)> {
    let base_report = read_document(&args.base)?;
    let base = results::measurements(
        &base_report.scenarios,
        &base_report.environment,
        &args.base.display().to_string(),
    );
    let mut report = read_document(&args.head)?;
    let head = results::measurements(
        &report.scenarios,
        &report.environment,
        &args.head.display().to_string(),
    );
    if head.scenarios.is_empty() && report.scenarios.iter().all(|s| s.cost.is_none()) {
        return Err(Error::Usage(format!(
            "{} has no measured scenario to compare",
            args.head.display()
        )));
    }
    let flags = GateFlags {
        strict: args.strict,
        allow_other_machine: args.allow_other_machine,
        ignore_contention: args.ignore_contention,
    };
    let (mut decisions, mut summary) = judge(&base, &head, flags);
    // The cost checks of the scenarios HEAD measured the cost of, against BASE's figures.
    for s in report.scenarios.iter_mut() {
        let Some(h) = s.cost.as_mut() else { continue };
        let b = base_report
            .scenarios
            .iter()
            .find(|b| b.id == s.id)
            .and_then(|b| b.cost.as_ref());
        let base_toolchain = base_report.environment.toolchain();
        let cb = b.map(|b| CostBase {
            figures: b.figures.clone(),
            requests: b.requests.clone(),
            per_request: b.per_request,
            spec_parts: &b.spec_parts,
            toolchain: &base_toolchain,
        });
        let tol = CostTolerance::of(s.spec.as_ref(), None);
        let origin = args.base.display().to_string();
        let (d, attribution) = cost::judge(
            &s.id,
            &origin,
            cb.as_ref(),
            h,
            &report.environment.toolchain(),
            tol,
        );
        h.attribution = attribution;
        summary.count(&d);
        decisions.entry(s.id.clone()).or_default().extend(d);
    }
    report.scenarios.retain(|s| {
        head.scenarios.contains_key(&s.id) || decisions.get(&s.id).is_some_and(|d| !d.is_empty())
    });
    for s in &mut report.scenarios {
        s.regressions = decisions.remove(&s.id).unwrap_or_default();
        // Only the regression checks decide here; the SLOs were the other run's business.
        s.verdict = slo::verdict(&Evidence {
            regressions: &s.regressions,
            ..Default::default()
        });
    }
    let code = slo::exit_code(
        report.scenarios.iter().map(|s| s.verdict),
        Some(&summary),
        false,
        flags.strict,
    );
    report.gate = Some(summary);
    report.exit_code = code;
    let text = match format {
        MessageFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::io("serialising", e.into()))?
                + "\n"
        }
        MessageFormat::Human => {
            let mut out = render_regressions(&report, color);
            if let Some(l) = gate_line(&report) {
                out.push_str(&l);
                out.push('\n');
            }
            out
        }
    };
    Ok((text, code))
}

/// A side of `compare`: a results file, or a baseline file seen as a run of its rounds.
fn read_document(path: &Path) -> Result<RunResults> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let origin = path.display().to_string();
    if text.trim_start().starts_with('{') {
        return RunResults::parse(&text, &origin);
    }
    let file = BaselineFile::parse(&text, &origin)?;
    let scenarios = file
        .scenarios
        .iter()
        .map(|(id, s)| ScenarioRun {
            package: id.split("::").next().unwrap_or_default().to_string(),
            id: id.clone(),
            test_name: String::new(),
            spec: None,
            result: None,
            resources: None,
            checks: Vec::new(),
            verdict: Verdict::Pass,
            error: None,
            log: None,
            wall_secs: 0.0,
            rounds: file.rounds_of(id),
            spec_parts: s.spec_parts.clone(),
            regressions: Vec::new(),
            ab: None,
            contention: Vec::new(),
            cost: s
                .cost
                .as_ref()
                .map(|c| c.measurement(file.cost_functions.get(id))),
            cost_error: None,
            trends: Vec::new(),
            generator: None,
            shards: Vec::new(),
        })
        .collect();
    Ok(RunResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        perfgate_version: file.perfgate_version.clone(),
        run_id: origin,
        started_unix_ms: file.recorded_unix_ms,
        environment: file.machine.clone(),
        target_url: None,
        build_secs: 0.0,
        build_parts: Vec::new(),
        load_secs: 0.0,
        cost_secs: 0.0,
        total_secs: 0.0,
        scenarios,
        exit_code: 0,
        gate: None,
        tier: None,
        shard: None,
        merged_from: Vec::new(),
    })
}
