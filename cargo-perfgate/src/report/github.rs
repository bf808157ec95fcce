//! GitHub Actions workflow commands (`::error file=…,line=…::message`), printed when `GITHUB_ACTIONS=true`
//! so a breached SLO shows up on the pull request's diff at the `#[perf_test]` line.

use std::path::{Path, PathBuf};

use crate::gate::Outcome;
use crate::results::{RunResults, ScenarioRun};
use crate::slo::Verdict;
use crate::text::describe_decision;

/// Escaping of a workflow command's message.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The annotation lines of a report. `resolve(scenario, file!())` gives the path relative to the
/// repository root (GitHub places annotations by it).
pub fn annotations(report: &RunResults, resolve: impl Fn(&ScenarioRun, &str) -> String) -> String {
    let mut out = String::new();
    for s in &report.scenarios {
        let loc = s
            .spec
            .as_ref()
            .map(|sp| format!("file={},line={},", property(&resolve(s, &sp.file)), sp.line))
            .unwrap_or_default();
        let mut push = |level: &str, title: &str, msg: String| {
            out.push_str(&format!(
                "::{level} {loc}title={}::{}\n",
                property(&format!("perfgate: {} {title}", s.id)),
                data(&msg)
            ));
        };
        for c in s.checks.iter().filter(|c| !c.passed) {
            push(
                "error",
                "breached an SLO",
                format!("{}: {} — {}", s.id, c.description, c.message),
            );
        }
        for t in s.trends.iter().filter(|t| t.outcome == Outcome::Fail) {
            push(
                "error",
                "leaks or drifts",
                format!("{}: {}", s.id, t.describe()),
            );
        }
        for d in &s.regressions {
            match d.outcome {
                Outcome::Fail => push(
                    "error",
                    "regressed",
                    format!("{}: {}\n{}", s.id, describe_decision(d), d.note),
                ),
                Outcome::Inconclusive => push(
                    "warning",
                    "is inconclusive",
                    format!("{}: {}\n{}", s.id, describe_decision(d), d.note),
                ),
                Outcome::Pass | Outcome::NotComparable => {}
            }
        }
        match s.verdict {
            Verdict::Error | Verdict::Fail if s.error.is_some() => push(
                "error",
                "did not run",
                format!("{}: {}", s.id, s.error.as_deref().unwrap_or_default()),
            ),
            Verdict::Invalid => push(
                "warning",
                "measured nothing trustworthy",
                format!(
                    "{}: invalid measurement, neither pass nor fail: {}",
                    s.id,
                    s.invalid_reason()
                ),
            ),
            _ => {}
        }
    }
    out
}

/// `git rev-parse --show-toplevel` from `dir`.
pub fn git_toplevel(dir: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(s.trim()))
}

/// A scenario's `file!()` made relative to the repository root. `file!()` is relative to the directory
/// cargo ran rustc in: the workspace root for workspace members, the package root otherwise; whichever
/// names an existing file wins. Falls back to the path as given.
pub fn repo_relative(
    file: &str,
    workspace_root: &Path,
    package_root: Option<&Path>,
    repo_root: &Path,
) -> String {
    let given = Path::new(file);
    let mut candidates = Vec::new();
    if given.is_absolute() {
        candidates.push(given.to_path_buf());
    } else {
        candidates.push(workspace_root.join(given));
        if let Some(p) = package_root {
            candidates.push(p.join(given));
        }
    }
    let repo = repo_root
        .canonicalize()
        .unwrap_or_else(|_| repo_root.to_path_buf());
    for c in candidates {
        let Ok(abs) = c.canonicalize() else { continue };
        if let Ok(rel) = abs.strip_prefix(&repo) {
            return rel.to_string_lossy().replace('\\', "/");
        }
    }
    file.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_workspace_or_package() {
        let repo = tempfile::tempdir().unwrap();
        let ws = repo.path().join("services");
        let pkg = ws.join("shop");
        std::fs::create_dir_all(pkg.join("tests")).unwrap();
        std::fs::write(pkg.join("tests/perf.rs"), "").unwrap();
        // Workspace-relative (a workspace member) and package-relative (a package of its own).
        assert_eq!(
            repo_relative("shop/tests/perf.rs", &ws, Some(&pkg), repo.path()),
            "services/shop/tests/perf.rs"
        );
        assert_eq!(
            repo_relative("tests/perf.rs", &ws, Some(&pkg), repo.path()),
            "services/shop/tests/perf.rs"
        );
        assert_eq!(
            repo_relative("gone.rs", &ws, Some(&pkg), repo.path()),
            "gone.rs"
        );
        assert_eq!(property("a,b:c%"), "a%2Cb%3Ac%25");
        assert_eq!(data("x\ny"), "x%0Ay");
    }
}
