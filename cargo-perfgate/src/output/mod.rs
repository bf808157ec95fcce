//! Reports for people and CI systems, rendered from a [`RunReport`]: JUnit XML, Markdown (PR comments
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
pub mod progress;
pub mod prometheus;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use perfgate_runtime::format::{format_value, Metric};

use crate::gate::{Decision, Outcome};
use crate::report::{RunReport, ScenarioReport};

/// The report flags of `cargo perfgate run`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Write a JUnit XML report (one testcase per scenario and check) to FILE (overwritten).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the verdict table as Markdown to FILE (overwritten); it is also appended to
    /// $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write every metric in OpenMetrics text to FILE (overwritten), for a textfile collector or a
    /// Pushgateway.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// On failure, POST a Slack-compatible JSON message to this webhook (a secret: never printed).
    #[arg(
        long,
        value_name = "URL",
        env = "PERFGATE_NOTIFY_URL",
        hide_env_values = true
    )]
    pub notify: Option<Secret>,
    /// Link to this run in notifications [default: from GITHUB_*, CI_JOB_URL or BUILD_URL].
    #[arg(long, value_name = "URL")]
    pub run_url: Option<String>,
}

/// A value that must never be printed (a webhook URL carries its token): `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so a reader
/// never sees half a file. An existing file at `path` is replaced: the user named it.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Temporary files are private (0600); a report is read by others (a textfile collector, a web
    // server): keep the mode of the file it replaces, else make it world-readable like `>` would.
    let perms = match std::fs::metadata(path) {
        Ok(m) => m.permissions(),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::Permissions::from_mode(0o644)
        }
    };
    tmp.as_file().set_permissions(perms)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Appends `text` to `path` (created when missing): `$GITHUB_STEP_SUMMARY` is shared by every step.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The regression decisions of a scenario (empty when there was no baseline to compare with).
pub fn regressions(s: &ScenarioReport) -> Vec<Decision> {
    s.regressions.clone()
}

pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "inconclusive",
        Outcome::NotComparable => "not comparable",
    }
}

/// `pay.p99` or `p99`.
pub fn decision_metric(d: &Decision) -> String {
    match &d.request {
        Some(r) => format!("{r}.{}", d.metric),
        None => d.metric.to_string(),
    }
}

/// A value of a decision, `-` when absent.
pub fn decision_value(metric: Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format_value(metric, v))
}

/// `+12.3% [+4.1%, +20.5%]` (percentage points for `errors`).
pub fn decision_change(d: &Decision) -> String {
    let unit = if d.metric == Metric::Errors {
        "pp"
    } else {
        "%"
    };
    let pct = |v: f64| format!("{:+.1}{unit}", v * 100.0);
    match (d.change, d.change_low, d.change_high) {
        (Some(c), Some(lo), Some(hi)) => format!("{} [{}, {}]", pct(c), pct(lo), pct(hi)),
        (Some(c), _, _) => pct(c),
        _ => "-".to_string(),
    }
}

/// One line for a decision: `p99 12.0ms → 14.1ms, +17.5% [+9.0%, +26.0%] (tolerance 10%): FAIL`.
pub fn describe_decision(d: &Decision) -> String {
    format!(
        "{} {} → {}, {} (tolerance {:.0}%): {}",
        decision_metric(d),
        decision_value(d.metric, d.baseline),
        decision_value(d.metric, d.current),
        decision_change(d),
        d.tolerance * 100.0,
        outcome_str(d.outcome)
    )
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
pub fn failed(report: &RunReport) -> bool {
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
    report: &RunReport,
    args: &OutputArgs,
    ctx: &EmitContext<'_>,
    ui: &crate::ui::Ui,
) -> Vec<(&'static str, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut written = Vec::new();
    let mut write = |path: &Path, what: &str, text: String| match write_atomic(path, &text) {
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
        let resolve = |s: &ScenarioReport, file: &str| {
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

/// Escapes text for XML and HTML (element content and double-quoted attributes).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 (ANSI escapes in a log tail, say).
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
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

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::from("http://hooks/T0KEN".to_string());
        assert!(!format!("{s:?}").contains("T0KEN"));
        assert_eq!(s.expose(), "http://hooks/T0KEN");
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/r.md");
        write_atomic(&p, "one").unwrap();
        write_atomic(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&p),
            0o644,
            "readable by a collector running as another user"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, "three").unwrap();
        assert_eq!(mode(&p), 0o640, "the replaced file's mode is kept");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(
            escape_xml("a<b & \"c\"\u{1b}"),
            "a&lt;b &amp; &quot;c&quot;"
        );
    }
}
