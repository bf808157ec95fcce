//! The merge-base's side of `--ab`: its worktree checked out, a lock on the A/B directory, and its
//! services built in a target directory of their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::worktree::BaseCheckout;
use crate::cli::CommonArgs;
use crate::discover::build::{build_service_bin_in, Checkout};
use crate::discover::{Discovered, PerfPackage};
use crate::error::{Error, Result};
use crate::files;
use crate::load::PreparedPackage;
use crate::ui::Ui;

/// The merge-base's copy of a HEAD package: same name and bins, paths inside the worktree.
pub fn base_package(pkg: &PerfPackage, repo_root: &Path, worktree: &Path) -> Result<PerfPackage> {
    let rel = pkg.manifest_path.strip_prefix(repo_root).map_err(|_| {
        Error::Baseline(format!(
            "package `{}` ({}) is outside the git repository at {}, so --ab cannot find it at the merge-base",
            pkg.name,
            pkg.manifest_path.display(),
            repo_root.display()
        ))
    })?;
    let manifest_path = worktree.join(rel);
    if !manifest_path.is_file() {
        return Err(Error::Baseline(format!(
            "package `{}` does not exist at the merge-base ({} is missing there): there is nothing to compare \
             its scenarios with on this machine. Run without --ab (the SLOs are still checked), or select other \
             packages with -p",
            pkg.name,
            rel.display()
        )));
    }
    let root = manifest_path
        .parent()
        .map_or_else(|| worktree.to_path_buf(), Path::to_path_buf);
    Ok(PerfPackage {
        manifest_path,
        root,
        explicit: pkg.explicit,
        ..pkg.clone()
    })
}

/// Where the merge-base's worktrees and its target directory live.
pub fn ab_dirs(perfgate_dir: &Path) -> (PathBuf, PathBuf) {
    (perfgate_dir.join("ab"), perfgate_dir.join("ab-target"))
}

/// The merge-base checked out and its services built: the base side's packages and runs.
pub struct BaseSide {
    /// Held for the run: one `--ab` run at a time uses `target/perfgate/ab/` (its `base` link and the
    /// base target directory).
    _lock: std::fs::File,
    pub checkout: BaseCheckout,
    pub packages: Vec<PerfPackage>,
    pub exes: Vec<BTreeMap<String, PathBuf>>,
}

pub fn prepare_base(
    common: &CommonArgs,
    found: &Discovered,
    runs: &[PreparedPackage<'_>],
    repo: &git2::Repository,
    commit: git2::Oid,
    ui: &Ui,
) -> Result<BaseSide> {
    let (wt_parent, target) = ab_dirs(&found.ws.perfgate_dir());
    for stale in super::worktree::clean_stale(repo, &wt_parent) {
        ui.status("Removed", &format!("stale worktree {}", stale.display()));
    }
    let short = &commit.to_string()[..10];
    std::fs::create_dir_all(&wt_parent)
        .map_err(|e| Error::io(format!("creating {}", wt_parent.display()), e))?;
    let lock_path = wt_parent.join("lock");
    let lock = files::lock_exclusive(&lock_path, true, || {
        ui.status(
            "Waiting",
            &format!("for another --ab run to finish ({})", lock_path.display()),
        )
    })?
    .expect("waited for the lock");
    ui.status(
        "Checkout",
        &format!("merge-base {short} under {}", wt_parent.display()),
    );
    let checkout = BaseCheckout::create(repo, commit, &wt_parent)?;
    let workdir = repo.workdir().ok_or_else(|| {
        Error::Baseline("--ab needs a repository with a working tree (this one is bare)".into())
    })?;
    // Paths as cargo reports them (canonical) against the repository's, which may differ by a symlink.
    let workdir = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    // Cargo names a path package's artifacts after its path: building through a link that always has
    // the same name keeps the base build incremental and `ab-target` from collecting a copy per run.
    let link = wt_parent.join("base");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(checkout.path(), &link)
        .map_err(|e| Error::io(format!("linking {}", link.display()), e))?;
    let mut packages = Vec::new();
    for r in runs {
        packages.push(base_package(r.pkg, &workdir, &link)?);
    }
    // The merge-base's workspace, through the link: its sources are what its binaries must come from.
    let base_root = link.join(found.root().strip_prefix(&workdir).unwrap_or(Path::new("")));
    let base_checkout = Checkout::new(&base_root, &target);
    let mut exes = Vec::new();
    for (r, pkg) in runs.iter().zip(&packages) {
        let mut base_common = common.clone();
        base_common.manifest_path = Some(pkg.manifest_path.clone());
        let mut built = BTreeMap::new();
        for name in r.service_exes.keys() {
            let bin = &r.pkg.config.services[name].bin;
            ui.status(
                "Building",
                &format!(
                    "service `{name}` at the merge-base {short} (bin `{bin}`, release, {})",
                    target.display()
                ),
            );
            let exe = build_service_bin_in(&base_common, &base_checkout, pkg, bin, Some(&target))
                .map_err(|e| match e {
                Error::Build(m) => Error::Build(format!("at the merge-base {short}: {m}")),
                other => other,
            })?;
            built.insert(name.clone(), exe);
        }
        exes.push(built);
    }
    Ok(BaseSide {
        _lock: lock,
        checkout,
        packages,
        exes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(root: &Path) -> PerfPackage {
        PerfPackage {
            name: "shop".into(),
            id: cargo_metadata::PackageId {
                repr: "path+file:///repo/shop#0.1.0".into(),
            },
            manifest_path: root.join("services/shop/Cargo.toml"),
            root: root.join("services/shop"),
            config: Default::default(),
            bins: vec!["shop".into()],
            explicit: true,
            has_unlisted_tests_dir: false,
            targets: Vec::new(),
        }
    }

    #[test]
    fn the_base_package_lives_at_the_same_place_in_the_worktree() {
        let repo = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        let head = pkg(repo.path());
        // Not at the merge-base: said so, with what to do.
        let err = base_package(&head, repo.path(), wt.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist at the merge-base"), "{err}");
        assert!(err.contains("services/shop/Cargo.toml"), "{err}");
        std::fs::create_dir_all(wt.path().join("services/shop")).unwrap();
        std::fs::write(wt.path().join("services/shop/Cargo.toml"), "[package]\n").unwrap();
        let base = base_package(&head, repo.path(), wt.path()).unwrap();
        assert_eq!(
            base.manifest_path,
            wt.path().join("services/shop/Cargo.toml")
        );
        assert_eq!(base.root, wt.path().join("services/shop"));
        assert_eq!(base.bins, head.bins);
        // A package outside the repository cannot be found at the merge-base.
        let elsewhere = tempfile::tempdir().unwrap();
        let err = base_package(&pkg(elsewhere.path()), repo.path(), wt.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the git repository"), "{err}");
    }
}
