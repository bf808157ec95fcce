//! Reports for people and CI systems, rendered from a [`RunResults`]: JUnit XML, Markdown (PR comments
//! and `$GITHUB_STEP_SUMMARY`), GitHub annotations, OpenMetrics text, a Slack-compatible webhook, the
//! self-contained HTML page of `cargo perfgate report`, and the live progress line.
//!
//! Every renderer is a pure function of the report (tested on reports built in code); writing files and
//! talking to the network happen in [`emit`] and [`notify`].

pub mod github;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod notify;
pub mod prometheus;
pub mod table;

use std::path::{Path, PathBuf};

use crate::cli::OutputArgs;
use crate::error::{Error, Result};
use crate::files::{append, write_atomic};
use crate::results::{RunResults, ScenarioRun};

/// Removes the report files a previous run wrote where this run will write its own, before anything
/// else: a run that stops early (an error, Ctrl-C) or cannot write a report must not leave an old
/// verdict for CI to read as this run's.
pub fn remove_stale(args: &OutputArgs) -> Result<()> {
    for path in [&args.junit, &args.markdown, &args.prometheus]
        .into_iter()
        .flatten()
    {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "removing the previous report {} (CI would read it as this run's)",
                        path.display()
                    ),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// A link to this CI run: `--run-url`, else GitHub Actions', GitLab's or Jenkins' own variables.
pub fn run_url(explicit: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(u) = explicit {
        return Some(u.to_string());
    }
    if let (Some(server), Some(repo), Some(id)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        return Some(format!(
            "{}/{repo}/actions/runs/{id}",
            server.trim_end_matches('/')
        ));
    }
    var("CI_JOB_URL")
        .or_else(|| var("BUILD_URL"))
        .filter(|s| !s.is_empty())
}

/// The newest `<run>/results.json` under `target/perfgate` (run ids sort by time).
pub fn latest_results(perfgate_dir: &Path) -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(perfgate_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("results.json"))
        .filter(|p| p.is_file())
        .collect();
    runs.sort();
    runs.pop()
}

/// Whether the run failed: the gate failed (an SLO, a regression, the service died) or a scenario
/// could not be measured. An inconclusive run (exit 3) is not a failure to be notified of.
pub fn failed(report: &RunResults) -> bool {
    use crate::error::exit;
    report.exit_code == exit::FAIL || report.exit_code == exit::ERROR
}

/// What [`emit`] needs besides the report.
pub struct EmitContext<'a> {
    /// Scenario `file!()` paths resolve against these (workspace root first, then package roots).
    pub workspace_root: &'a Path,
    pub package_roots: Vec<(String, PathBuf)>,
    /// Human output on stdout: GitHub annotations go there, else to stderr.
    pub stdout_is_human: bool,
}

/// Writes the reports asked for, prints GitHub annotations and sends the notification. Failures are
/// warnings: a report that cannot be written never changes the verdict. Returns what was done, as
/// (status word, message) for the progress output.
pub fn emit(
    report: &RunResults,
    args: &OutputArgs,
    ctx: &EmitContext<'_>,
    ui: &crate::ui::Ui,
) -> Vec<(&'static str, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut written = Vec::new();
    let mut write =
        |path: &Path, what: &str, text: String| match write_atomic(path, text.as_bytes()) {
            Ok(()) => written.push(("Wrote", format!("{what} report {}", path.display()))),
            Err(e) => ui.warn(&format!(
                "could not write the {what} report {}: {e}",
                path.display()
            )),
        };
    if let Some(p) = &args.junit {
        write(p, "junit", junit::render(report));
    }
    let md = markdown::render(report, run_url(args.run_url.as_deref(), env).as_deref());
    if let Some(p) = &args.markdown {
        write(p, "markdown", md.clone());
    }
    if let Some(p) = &args.prometheus {
        let branch = prometheus::detect_branch(ctx.workspace_root);
        write(
            p,
            "prometheus",
            prometheus::render(report, branch.as_deref()),
        );
    }
    if let Some(summary) = env("GITHUB_STEP_SUMMARY") {
        if let Err(e) = append(Path::new(&summary), &format!("{md}\n")) {
            ui.warn(&format!(
                "could not append to $GITHUB_STEP_SUMMARY ({summary}): {e}"
            ));
        }
    }
    if env("GITHUB_ACTIONS").as_deref() == Some("true") {
        let repo_root = env("GITHUB_WORKSPACE")
            .map(PathBuf::from)
            .or_else(|| github::git_toplevel(ctx.workspace_root))
            .unwrap_or_else(|| ctx.workspace_root.to_path_buf());
        let resolve = |s: &ScenarioRun, file: &str| {
            let pkg_root = ctx
                .package_roots
                .iter()
                .find(|(n, _)| *n == s.package)
                .map(|(_, r)| r.as_path());
            github::repo_relative(file, ctx.workspace_root, pkg_root, &repo_root)
        };
        let text = github::annotations(report, resolve);
        if !text.is_empty() {
            if ctx.stdout_is_human {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
        }
    }
    if failed(report) {
        if let Some(url) = &args.notify {
            let link = run_url(args.run_url.as_deref(), env);
            let payload = notify::payload(report, link.as_deref());
            match notify::post(url.expose(), &payload) {
                Ok(()) => written.push(("Notified", "the webhook of the failure".to_string())),
                // The error never carries the URL (see notify::post).
                Err(e) => ui.warn(&format!("the failure notification was not delivered: {e}")),
            }
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_urls_come_from_the_flag_or_the_ci() {
        let none = |_: &str| None;
        assert_eq!(
            run_url(Some("https://x/1"), none).as_deref(),
            Some("https://x/1")
        );
        assert_eq!(run_url(None, none), None);
        let gh = |k: &str| match k {
            "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
            "GITHUB_REPOSITORY" => Some("o/r".to_string()),
            "GITHUB_RUN_ID" => Some("42".to_string()),
            _ => None,
        };
        assert_eq!(
            run_url(None, gh).as_deref(),
            Some("https://github.com/o/r/actions/runs/42")
        );
        let gl = |k: &str| (k == "CI_JOB_URL").then(|| "https://gitlab/j/7".to_string());
        assert_eq!(run_url(None, gl).as_deref(), Some("https://gitlab/j/7"));
    }
}
