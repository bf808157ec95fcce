//! Finding the baseline as committed at the merge-base of HEAD and the base branch (git2, never the
//! working tree), and the base branch itself.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, RepositoryOpenFlags};

use crate::error::{Error, Result};

/// CI variables naming the branch a pull/merge request targets, in the order they are tried.
pub const CI_BASE_VARS: &[&str] = &[
    "GITHUB_BASE_REF",                     // GitHub Actions (pull_request events)
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", // GitLab CI
    "BITBUCKET_PR_DESTINATION_BRANCH",     // Bitbucket Pipelines
    "SYSTEM_PULLREQUEST_TARGETBRANCH",     // Azure Pipelines
    "CHANGE_TARGET",                       // Jenkins multibranch
];

/// Tried in order when neither `--base` nor a CI variable names the base branch.
pub const DEFAULT_BASES: &[&str] = &[
    "origin/HEAD",
    "origin/main",
    "origin/master",
    "main",
    "master",
];

/// Where the baseline comes from, after `--baseline-file`, `--baseline-rev` and `--base` were resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Read from this file in the working tree (`--baseline-file`).
    File(PathBuf),
    /// Read from the tree of this commit.
    Commit {
        commit: Oid,
        /// How it was found: `merge-base of HEAD and origin/main`, `--baseline-rev v1.2`.
        how: String,
    },
}

/// The baseline's text and where it was read from, or where it was looked for in vain.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// `perfgate.baseline.toml at 1a2b3c4d (merge-base of HEAD and origin/main)`.
    pub origin: String,
    pub commit: Option<String>,
    pub text: Option<String>,
}

/// Opens the repository containing `dir`, honouring `GIT_DIR` and `GIT_CEILING_DIRECTORIES` as git
/// does. None when `dir` is not in a git repository.
pub fn open(dir: &Path) -> Option<Repository> {
    if let Some(git_dir) = std::env::var_os("GIT_DIR").filter(|d| !d.is_empty()) {
        return Repository::open(git_dir).ok();
    }
    // Discovery stops below each of these, as git's own does.
    let ceilings: Vec<PathBuf> = std::env::var_os("GIT_CEILING_DIRECTORIES")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| p.is_absolute())
                .collect()
        })
        .unwrap_or_default();
    Repository::open_ext(dir, RepositoryOpenFlags::empty(), &ceilings).ok()
}

pub fn not_a_repo_message(dir: &Path) -> String {
    format!(
        "{} is not in a git repository, so there is no committed baseline to compare with; perfgate reads the \
         baseline as committed at the merge-base of HEAD and the base branch. Run it in a git checkout, or \
         name a file with `--baseline-file PATH`",
        dir.display()
    )
}

/// The base branch: `--base`, else a CI variable, else the first of [`DEFAULT_BASES`] that exists.
/// Returns the commit and the name it was found by.
pub fn resolve_base(
    repo: &Repository,
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Oid, String)> {
    if let Some(b) = explicit {
        return resolve_rev(repo, b)
            .map(|oid| (oid, b.to_string()))
            .ok_or_else(|| {
                Error::Baseline(format!(
                    "the base `{b}` (from --base) is not a commit, branch or tag of this repository{}",
                    fetch_hint(repo, b)
                ))
            });
    }
    for var in CI_BASE_VARS {
        let Some(name) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let name = name.trim();
        for candidate in [format!("origin/{name}"), name.to_string()] {
            if let Some(oid) = resolve_rev(repo, &candidate) {
                return Ok((oid, candidate));
            }
        }
        return Err(Error::Baseline(format!(
            "the base branch `{name}` (from ${var}) is not in this clone: neither `origin/{name}` nor `{name}` \
             exists. Fetch it (`git fetch origin {name}`; on GitHub Actions `actions/checkout` with \
             `fetch-depth: 0`), or pass `--base REF`"
        )));
    }
    for candidate in DEFAULT_BASES {
        if let Some(oid) = resolve_rev(repo, candidate) {
            return Ok((oid, candidate.to_string()));
        }
    }
    Err(Error::Baseline(format!(
        "could not find the base branch: none of {} exists in this repository. Pass it with `--base REF` \
         (e.g. `--base origin/develop`), or fetch it (`git fetch origin main`)",
        DEFAULT_BASES
            .iter()
            .map(|b| format!("`{b}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn fetch_hint(repo: &Repository, rev: &str) -> String {
    if repo.is_shallow() {
        format!(
            "; this is a shallow clone, so it may just not be fetched: `git fetch origin {rev}` or \
             `git fetch --unshallow` (GitHub Actions: `fetch-depth: 0`)"
        )
    } else {
        format!("; fetch it first (`git fetch origin {rev}`)")
    }
}

/// A revision as `git rev-parse REV^{commit}` would resolve it.
pub fn resolve_rev(repo: &Repository, rev: &str) -> Option<Oid> {
    let obj = repo.revparse_single(rev).ok()?;
    obj.peel_to_commit().ok().map(|c| c.id())
}

/// The merge-base of HEAD and `base`. A shallow clone that lacks it is named as such, with the fix.
pub fn merge_base(repo: &Repository, base: Oid, base_name: &str) -> Result<Oid> {
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .ok_or_else(|| {
            Error::Baseline(
                "HEAD does not point at a commit (an empty repository?); commit first, or name the baseline \
                 with `--baseline-file PATH`"
                    .into(),
            )
        })?;
    match repo.merge_base(head.id(), base) {
        Ok(oid) => Ok(oid),
        Err(_) if repo.is_shallow() => Err(Error::Baseline(format!(
            "this is a shallow clone and it does not contain the merge-base of HEAD and `{base_name}`, where the \
             baseline is read. Fetch more history: `git fetch --deepen=100 origin` (or `git fetch --unshallow`); \
             on GitHub Actions set `fetch-depth: 0` on actions/checkout, on GitLab `GIT_DEPTH: 0`"
        ))),
        Err(e) => Err(Error::Baseline(format!(
            "HEAD and `{base_name}` have no common ancestor ({}); pass the right base with `--base REF`, or a \
             commit with `--baseline-rev REV`",
            e.message()
        ))),
    }
}

/// Where to read the baseline from: `--baseline-file`, else `--baseline-rev`, else the merge-base of HEAD
/// and the base branch.
pub fn source(
    repo: Option<&Repository>,
    workspace_root: &Path,
    baseline_file: Option<&Path>,
    baseline_rev: Option<&str>,
    base: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Source>> {
    if let Some(f) = baseline_file {
        return Ok(Some(Source::File(f.to_path_buf())));
    }
    let Some(repo) = repo else {
        if baseline_rev.is_some() || base.is_some() {
            return Err(Error::Baseline(not_a_repo_message(workspace_root)));
        }
        return Ok(None);
    };
    if let Some(rev) = baseline_rev {
        let commit = resolve_rev(repo, rev).ok_or_else(|| {
            Error::Baseline(format!(
                "`{rev}` (from --baseline-rev) is not a commit, branch or tag of this repository{}",
                fetch_hint(repo, rev)
            ))
        })?;
        return Ok(Some(Source::Commit {
            commit,
            how: format!("--baseline-rev {rev}"),
        }));
    }
    let (base_oid, base_name) = resolve_base(repo, base, env)?;
    let commit = merge_base(repo, base_oid, &base_name)?;
    Ok(Some(Source::Commit {
        commit,
        how: format!("merge-base of HEAD and {base_name}"),
    }))
}

/// Reads `path` (absolute, in the working tree) from `source`: the file itself, or the blob at that path
/// in the commit's tree.
pub fn read(repo: Option<&Repository>, source: &Source, path: &Path) -> Result<Lookup> {
    match source {
        Source::File(f) => {
            let text = match std::fs::read_to_string(f) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Baseline(format!(
                        "the baseline file {} (from --baseline-file) does not exist",
                        f.display()
                    )))
                }
                Err(e) => return Err(Error::io(format!("reading {}", f.display()), e)),
            };
            Ok(Lookup {
                origin: f.display().to_string(),
                commit: None,
                text,
            })
        }
        Source::Commit { commit, how } => {
            let repo = repo.expect("a commit source comes from a repository");
            let rel = repo_relative(repo, path)?;
            let short = commit.to_string()[..10].to_string();
            let origin = format!("{} at {short} ({how})", rel.display());
            let c = repo.find_commit(*commit).map_err(|e| {
                Error::Baseline(format!("could not read commit {short}: {}", e.message()))
            })?;
            let tree = c.tree().map_err(|e| {
                Error::Baseline(format!(
                    "could not read the tree of {short}: {}",
                    e.message()
                ))
            })?;
            let text = match tree.get_path(&rel) {
                Ok(entry) => {
                    let blob = entry
                        .to_object(repo)
                        .and_then(|o| o.peel_to_blob())
                        .map_err(|e| {
                            Error::Baseline(format!("{origin} is not a file: {}", e.message()))
                        })?;
                    Some(String::from_utf8(blob.content().to_vec()).map_err(|_| {
                        Error::Baseline(format!(
                            "{origin} is not UTF-8 text: not a baseline file; re-create it with `cargo perfgate record`"
                        ))
                    })?)
                }
                Err(_) => None,
            };
            Ok(Lookup {
                origin,
                commit: Some(commit.to_string()),
                text,
            })
        }
    }
}

/// `path` relative to the repository's working directory, with `/` separators as git trees use.
fn repo_relative(repo: &Repository, path: &Path) -> Result<PathBuf> {
    let workdir = repo.workdir().ok_or_else(|| {
        Error::Baseline("the repository is bare; run perfgate in a checkout".into())
    })?;
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let workdir = canon(workdir);
    // The file may not exist in the working tree (deleted on this branch): canonicalise its directory.
    let abs = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => canon(dir).join(name),
        _ => canon(path),
    };
    abs.strip_prefix(&workdir)
        .map(Path::to_path_buf)
        .map_err(|_| {
            Error::Baseline(format!(
                "the baseline path {} is outside the git repository at {}; keep it in the repository, or \
                 use `--baseline-file PATH`",
                path.display(),
                workdir.display()
            ))
        })
}

/// The commit HEAD points at, if any.
pub fn head_commit(repo: &Repository) -> Option<String> {
    repo.head()
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn repo_with_history() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::write(d.join("perfgate.baseline.toml"), "on main\n").unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "baseline"]);
        git(d, &["checkout", "-q", "-b", "feature"]);
        std::fs::write(d.join("perfgate.baseline.toml"), "edited on the branch\n").unwrap();
        git(d, &["commit", "-q", "-am", "edit"]);
        git(d, &["checkout", "-q", "main"]);
        std::fs::write(d.join("other"), "later on main\n").unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "main moves on"]);
        git(d, &["checkout", "-q", "feature"]);
        // Uncommitted too: never read.
        std::fs::write(d.join("perfgate.baseline.toml"), "working tree\n").unwrap();
        dir
    }

    #[test]
    fn reads_the_file_at_the_merge_base_not_the_branch_or_working_tree() {
        let dir = repo_with_history();
        let repo = open(dir.path()).unwrap();
        let src = source(Some(&repo), dir.path(), None, None, None, |_| None)
            .unwrap()
            .unwrap();
        let Source::Commit { how, .. } = &src else {
            panic!("{src:?}")
        };
        assert_eq!(how, "merge-base of HEAD and main");
        let l = read(
            Some(&repo),
            &src,
            &dir.path().join("perfgate.baseline.toml"),
        )
        .unwrap();
        assert_eq!(l.text.as_deref(), Some("on main\n"));
        assert!(
            l.origin.starts_with("perfgate.baseline.toml at "),
            "{}",
            l.origin
        );
        // A file that is not in the tree is "no baseline", not an error.
        let l = read(Some(&repo), &src, &dir.path().join("nothing.toml")).unwrap();
        assert_eq!(l.text, None);
        // --baseline-rev reads that commit.
        let src = source(Some(&repo), dir.path(), None, Some("feature"), None, |_| {
            None
        })
        .unwrap()
        .unwrap();
        let l = read(
            Some(&repo),
            &src,
            &dir.path().join("perfgate.baseline.toml"),
        )
        .unwrap();
        assert_eq!(l.text.as_deref(), Some("edited on the branch\n"));
    }

    #[test]
    fn ci_variables_and_missing_bases_are_explained() {
        let dir = repo_with_history();
        let repo = open(dir.path()).unwrap();
        let (_, name) = resolve_base(&repo, None, |k| {
            (k == "GITHUB_BASE_REF").then(|| "main".to_string())
        })
        .unwrap();
        assert_eq!(name, "main");
        let e = resolve_base(&repo, None, |k| {
            (k == "CI_MERGE_REQUEST_TARGET_BRANCH_NAME").then(|| "release".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`release`") && e.contains("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
            "{e}"
        );
        let e = resolve_base(&repo, Some("nope"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`nope` (from --base)"), "{e}");
        git(dir.path(), &["branch", "-q", "-m", "main", "trunk"]);
        let e = resolve_base(&repo, None, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("--base REF") && e.contains("`origin/HEAD`"),
            "{e}"
        );
    }

    #[test]
    fn outside_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        // Keep a repository around the temp dir (if any) from being found.
        let inside = dir.path().join("ws");
        std::fs::create_dir(&inside).unwrap();
        let repo = Repository::open_ext(
            &inside,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&Path>(),
        )
        .ok();
        assert!(repo.is_none());
        assert_eq!(
            source(None, &inside, None, None, None, |_| None).unwrap(),
            None
        );
        let e = source(None, &inside, None, Some("v1"), None, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not in a git repository") && e.contains("--baseline-file"),
            "{e}"
        );
    }
}
