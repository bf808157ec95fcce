//! Progress on stderr, in cargo's style (a right-aligned status word), so stdout holds only the
//! results (the table, or the JSON document).

use anstyle::{AnsiColor, Style};

use crate::check::Verdict;
use crate::discover::Scenario;
use crate::output::progress;
use crate::report::{describe_duration, describe_load};
use crate::run::RunOptions;
use perfgate_runtime::format::ScenarioSpec;

pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
}

const GREEN: Style = AnsiColor::Green.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const RED: Style = AnsiColor::Red.on_default().bold();

impl Ui {
    fn line(&self, style: Style, word: &str, msg: &str) {
        progress::with_line_cleared(|| anstream::eprintln!("{style}{word:>12}{style:#} {msg}"));
    }

    pub fn status(&self, word: &str, msg: &str) {
        if !self.quiet {
            self.line(GREEN, word, msg);
        }
    }

    /// Warnings are shown even with `--quiet`: they say something is off.
    pub fn warn(&self, msg: &str) {
        progress::with_line_cleared(|| anstream::eprintln!("{YELLOW}warning{YELLOW:#}: {msg}"));
    }

    pub fn error(&self, msg: &str) {
        progress::end();
        anstream::eprintln!("{RED}error{RED:#}: {msg}");
    }

    pub fn scenario_start(&self, s: &Scenario, spec: &ScenarioSpec, opts: &RunOptions) {
        if self.quiet {
            return;
        }
        let mut shown = spec.clone();
        if let Some(d) = opts.duration {
            shown.duration_ms = d.as_millis() as u64;
        }
        if let Some(w) = opts.warmup {
            shown.warmup_ms = w.as_millis() as u64;
        }
        self.line(
            CYAN,
            "Running",
            &format!(
                "{} ({}, {})",
                s.id,
                describe_load(&spec.load),
                describe_duration(&shown)
            ),
        );
        if progress::enabled(self.quiet) {
            let measured = match &shown.load {
                perfgate_runtime::format::LoadModel::Ramping { stages } => stages
                    .iter()
                    .map(|s| s.duration_ms)
                    .sum::<u64>()
                    .max(shown.duration_ms),
                _ => shown.duration_ms,
            };
            progress::begin(
                &s.id,
                &s.file_stem(),
                std::time::Duration::from_millis(measured + shown.warmup_ms),
                opts.rounds,
            );
        }
    }

    /// One line per finished scenario. With a baseline comparison still to come, a scenario whose
    /// SLOs held is only "measured": the gate may fail it, and the table gives the final verdict.
    pub fn scenario_done(&self, r: &crate::report::ScenarioReport, gate_follows: bool) {
        progress::end();
        if self.quiet {
            return;
        }
        let (style, word) = match r.verdict {
            Verdict::Pass if gate_follows => (GREEN, "measured"),
            Verdict::Pass => (GREEN, r.verdict.as_str()),
            Verdict::Invalid => (YELLOW, r.verdict.as_str()),
            Verdict::Fail | Verdict::Error => (RED, r.verdict.as_str()),
        };
        self.line(style, word, &format!("{} in {:.1}s", r.id, r.wall_secs));
    }
}
