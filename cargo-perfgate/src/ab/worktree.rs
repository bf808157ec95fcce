//! The merge-base checked out next to the working tree for `--ab`: a linked git worktree under
//! `target/perfgate/ab/`, HEAD detached, removed on every exit path, and removed by the next run if
//! the process was killed ([`clean_stale`]).
//!
//! One name, `perfgate-ab-<pid>-<short sha>[-<n>]`, is used for the directory, git's administrative
//! entry (`<git common dir>/worktrees/<name>`) and the temporary branch libgit2 needs while creating
//! the worktree, so a later run can tell from the pid in it whether its owner is gone.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use git2::build::CheckoutBuilder;
use git2::{BranchType, Oid, Repository, WorktreeAddOptions, WorktreePruneOptions};

use crate::error::{Error, Result};

const PREFIX: &str = "perfgate-ab-";

/// Gives each checkout of this process its own name, also for the same commit twice.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Names whose artifacts this process is creating or holds. With the pid alone, a leftover of an
/// earlier run that had the same pid (common in containers, where pids repeat run after run) would
/// look alive forever.
fn owned() -> MutexGuard<'static, BTreeSet<String>> {
    static OWNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    // A panic elsewhere must not stop cleanup, which runs while unwinding.
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The merge-base checked out as a linked worktree, detached at `commit`; removed on drop.
///
/// Known limitations of libgit2's checkout: submodules are not checked out (their directories stay
/// empty), and external filters do not run (Git LFS files stay pointer files).
#[derive(Debug)]
pub struct BaseCheckout {
    path: PathBuf,
    commit: Oid,
    name: String,
    /// Where `worktrees/<name>` lives, reopened to remove it: no `Repository` is kept, so the
    /// checkout has no lifetime and is `Send`.
    commondir: PathBuf,
    removed: bool,
}

impl BaseCheckout {
    /// Creates `<parent>/perfgate-ab-<pid>-<short sha>` (parent created if needed) as a linked worktree of `repo`,
    /// HEAD detached at `commit`, files checked out. Leaves no branch behind (libgit2's worktree_add wants a
    /// branch: create a temporary one if needed, detach, then delete it), no `locked` file.
    ///
    /// The main working tree, its index and HEAD are not touched, uncommitted changes included.
    /// Submodules are not checked out (see the type's documentation).
    pub fn create(repo: &Repository, commit: Oid, parent: &Path) -> Result<BaseCheckout> {
        create_as(repo, commit, parent, std::process::id())
    }

    /// The worktree's root directory (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn commit(&self) -> Oid {
        self.commit
    }

    /// The worktree's name in git (`git worktree list`), also its directory's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the directory and git's administrative entry (.git/worktrees/<name>), reporting failures.
    pub fn remove(mut self) -> Result<()> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<()> {
        self.removed = true;
        let result = remove_artifacts(None, &self.commondir, &self.name, &self.path);
        // Only now: until the artifacts are gone, `clean_stale` of this process must leave them alone.
        owned().remove(&self.name);
        result.map_err(|problems| {
            Error::Baseline(format!(
                "could not remove the --ab checkout of the merge-base {} at {}: {}. Remove it by hand with \
                 `git worktree remove --force {}` (or delete the directory, then run `git worktree prune`); \
                 the next `cargo perfgate --ab` also removes it",
                short(self.commit),
                self.path.display(),
                problems.join("; "),
                self.path.display()
            ))
        })
    }
}

impl Drop for BaseCheckout {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.remove_now() {
                warn(&e.to_string());
            }
        }
    }
}

/// [`BaseCheckout::create`] with the pid to put in the name (tests fake other processes with it).
fn create_as(repo: &Repository, commit: Oid, parent: &Path, pid: u32) -> Result<BaseCheckout> {
    let target = repo.find_commit(commit).map_err(|e| {
        Error::Baseline(format!(
            "cannot check out the merge-base {commit} for --ab: it is not in the repository at {} ({}). \
             If the clone is shallow, fetch the history (`git fetch --unshallow`) and retry",
            repo.commondir().display(),
            e.message()
        ))
    })?;
    std::fs::create_dir_all(parent).map_err(|e| {
        Error::io(
            format!(
                "could not create {} for the --ab checkout of the merge-base; make it writable, or set \
                 CARGO_TARGET_DIR to a writable directory",
                parent.display()
            ),
            e,
        )
    })?;
    // libgit2 records the worktree by absolute path; keep ours absolute too so `path()` survives a chdir.
    let parent = std::path::absolute(parent)
        .map_err(|e| Error::io(format!("could not resolve {}", parent.display()), e))?;
    let commondir = repo.commondir().to_path_buf();

    let name = free_name(repo, &commondir, &parent, pid, commit)?;
    owned().insert(name.clone());
    // Built before anything exists on disk: its removal is idempotent, so every early return below
    // (and a panic) removes whatever was created so far, the temporary branch included.
    let checkout = BaseCheckout {
        path: parent.join(&name),
        commit,
        name,
        commondir,
        removed: false,
    };
    let git_err = |what: &str, e: git2::Error| {
        Error::Baseline(format!(
            "could not check out the merge-base {} at {} for --ab: {what} failed: {}. Check that the \
             repository is not locked by another git command (a stale `.lock` file under {}) and that the \
             directory is writable, then retry",
            short(commit),
            checkout.path.display(),
            e.message(),
            checkout.commondir.display()
        ))
    };

    {
        // libgit2 checks out a branch into a new worktree (detached HEAD is not an option), and without
        // one it creates a branch at the main HEAD: give it a branch at the merge-base instead.
        let branch = repo
            .branch(&checkout.name, &target, false)
            .map_err(|e| git_err("creating the temporary branch", e))?;
        let reference = branch.into_reference();
        let mut opts = WorktreeAddOptions::new();
        opts.reference(Some(&reference));
        let wt = repo
            .worktree(&checkout.name, &checkout.path, Some(&opts))
            .map_err(|e| git_err("adding the worktree", e))?;
        let wt_repo =
            Repository::open_from_worktree(&wt).map_err(|e| git_err("opening the worktree", e))?;
        wt_repo
            .set_head_detached(commit)
            .map_err(|e| git_err("detaching the worktree's HEAD", e))?;
        // worktree_add already checked the files out; forcing makes sure they are exactly the commit's.
        wt_repo
            .checkout_head(Some(CheckoutBuilder::new().force()))
            .map_err(|e| git_err("checking out the files", e))?;
    }

    // Not fatal: the checkout is usable, and the branch is ours to delete later.
    if let Err(why) = delete_branch(repo, &checkout.name) {
        warn(&format!(
            "{why}; delete it with `git branch -D {}` (the next `cargo perfgate --ab` also does)",
            checkout.name
        ));
    }
    Ok(checkout)
}

/// A name none of whose artifacts exist yet: a run with the same pid may have left some behind.
fn free_name(
    repo: &Repository,
    commondir: &Path,
    parent: &Path,
    pid: u32,
    commit: Oid,
) -> Result<String> {
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = match n {
            0 => format!("{PREFIX}{pid}-{}", short(commit)),
            n => format!("{PREFIX}{pid}-{}-{n}", short(commit)),
        };
        let taken = exists(&commondir.join("worktrees").join(&name))
            || exists(&parent.join(&name))
            || repo.find_branch(&name, BranchType::Local).is_ok();
        if !taken {
            return Ok(name);
        }
    }
    Err(Error::Baseline(format!(
        "could not find a free name for the --ab checkout under {}: too many `{PREFIX}*` leftovers. \
         Delete that directory and run `git worktree prune`",
        parent.display()
    )))
}

/// Removes worktrees named `perfgate-ab-*` left by runs whose process is gone (SIGKILL): both the directory
/// under `parent` and the admin entry, also when the directory was deleted by hand (prune). Returns what it removed.
/// Must not touch a worktree of a live process (the pid in the name; check with libc::kill(pid, 0)), nor any
/// worktree not named perfgate-ab-*.
///
/// Returned: the worktree directory of each leftover whose directory or git entry was removed (the
/// path the entry recorded when the directory itself was already gone). Leftovers are also found
/// from one side only: a directory under `parent` without a git entry (a fresh clone reusing a
/// cached target directory) and a temporary branch of a run killed while creating its worktree
/// (deleted, not listed). Failures are shown as warnings; nothing here stops the run.
pub fn clean_stale(repo: &Repository, parent: &Path) -> Vec<PathBuf> {
    let commondir = repo.commondir();
    // The directory is listed rather than `repo.worktrees()`, which skips an entry whose files were
    // only partly written (a run killed inside worktree_add).
    let mut names: BTreeSet<String> = dir_names(&commondir.join("worktrees"));
    names.extend(dir_names(parent));
    if let Ok(branches) = repo.branches(Some(BranchType::Local)) {
        for (branch, _) in branches.flatten() {
            if let Ok(Some(name)) = branch.name() {
                names.insert(name.to_string());
            }
        }
    }

    let mut removed = Vec::new();
    for name in names.into_iter().filter(|n| owner_gone(n)) {
        let admin = commondir.join("worktrees").join(&name);
        // Where the entry says the directory is, as long as it is named like ours (it may be under
        // another target directory); else where this run would have put it.
        let dir = repo
            .find_worktree(&name)
            .ok()
            .map(|wt| wt.path().to_path_buf())
            .filter(|p| p.file_name() == Some(name.as_ref()))
            .unwrap_or_else(|| parent.join(&name));
        let had_files = exists(&dir) || exists(&admin);
        match remove_artifacts(Some(repo), commondir, &name, &dir) {
            Ok(()) if had_files => removed.push(dir),
            Ok(()) => {}
            Err(problems) => warn(&format!(
                "could not remove {} left by an earlier `cargo perfgate --ab`: {}. Remove it by hand with \
                 `git worktree remove --force {}` (or delete the directory, then run `git worktree prune`)",
                dir.display(),
                problems.join("; "),
                dir.display()
            )),
        }
    }
    removed
}

/// Removes the directory, then git's entry and the temporary branch. Each step runs only if there
/// is something to remove, so this is safe to repeat. The entry is kept while the directory
/// remains, so that `git worktree remove` still knows it. Returns what failed.
fn remove_artifacts(
    repo: Option<&Repository>,
    commondir: &Path,
    name: &str,
    dir: &Path,
) -> std::result::Result<(), Vec<String>> {
    let mut problems = Vec::new();
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("deleting {}: {e}", dir.display())),
    }
    let admin = commondir.join("worktrees").join(name);
    let opened;
    let repo = match repo {
        Some(repo) => Some(repo),
        None => {
            opened = Repository::open(commondir);
            opened.as_ref().ok()
        }
    };
    if problems.is_empty() && exists(&admin) {
        // working_tree(false): the directory is already gone, and libgit2 would delete whatever
        // path the entry records. valid(true) in case the entry's files are not what it expects.
        let pruned = repo.map(|repo| {
            repo.find_worktree(name).and_then(|wt| {
                wt.prune(Some(
                    WorktreePruneOptions::new().valid(true).working_tree(false),
                ))
            })
        });
        // libgit2 refuses a locked or partly written entry: remove it as the directory it is.
        if exists(&admin) {
            if let Err(e) = std::fs::remove_dir_all(&admin) {
                let libgit2 = match pruned {
                    Some(Err(g)) => format!(" (libgit2: {})", g.message()),
                    _ => String::new(),
                };
                problems.push(format!(
                    "removing git's entry {}: {e}{libgit2}",
                    admin.display()
                ));
            }
        }
    }
    match repo {
        Some(repo) => {
            if let Err(why) = delete_branch(repo, name) {
                problems.push(why);
            }
        }
        None => {
            if exists(&commondir.join("refs/heads").join(name)) {
                problems.push(format!(
                    "could not open the repository at {} to delete the temporary branch {name}",
                    commondir.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Deletes the local branch `name` if it exists.
fn delete_branch(repo: &Repository, name: &str) -> std::result::Result<(), String> {
    match repo.find_branch(name, BranchType::Local) {
        Ok(mut branch) => branch.delete().map_err(|e| {
            format!(
                "could not delete the temporary branch {name}: {}",
                e.message()
            )
        }),
        Err(_) => Ok(()),
    }
}

/// Whether `name` is one of ours and its process is gone.
fn owner_gone(name: &str) -> bool {
    let Some(pid) = pid_in(name) else {
        return false;
    };
    if pid == std::process::id() {
        return !owned().contains(name);
    }
    !process_alive(pid)
}

/// The pid in `perfgate-ab-<pid>-<rest>`; None for any other name.
fn pid_in(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if rest.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // 0 and negative pids would make kill(2) address process groups.
    pid.parse::<u32>()
        .ok()
        .filter(|&p| p > 0 && p <= i32::MAX as u32)
}

fn process_alive(pid: u32) -> bool {
    // Signal 0 only checks: ESRCH means no such process; EPERM means it exists under another user.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Entry names of a directory; empty when it cannot be read (nothing to clean there).
fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Also true for a dangling symlink, which `Path::exists` reports as absent.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn short(commit: Oid) -> String {
    commit.to_string()[..7].to_string()
}

/// On stderr like `Ui::warn`, which is not at hand in `Drop`; write errors are ignored so that
/// cleanup never panics.
fn warn(msg: &str) {
    let style = anstyle::AnsiColor::Yellow.on_default().bold();
    crate::ui::progress::with_line_cleared(|| {
        let _ = writeln!(anstream::stderr(), "{style}warning{style:#}: {msg}");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{Signature, Status, StatusOptions, WorktreeLockStatus};
    use std::fs;

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        repo: Repository,
        first: Oid,
        second: Oid,
        parent: PathBuf,
    }

    fn commit_files(repo: &Repository, files: &[(&str, Option<&str>)], msg: &str) -> Oid {
        let root = repo.workdir().unwrap().to_path_buf();
        let mut index = repo.index().unwrap();
        for (file, content) in files {
            match content {
                Some(text) => {
                    fs::write(root.join(file), text).unwrap();
                    index.add_path(Path::new(file)).unwrap();
                }
                None => {
                    fs::remove_file(root.join(file)).unwrap();
                    index.remove_path(Path::new(file)).unwrap();
                }
            }
        }
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("perfgate test", "test@example.invalid").unwrap();
        let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
        let parents: Vec<_> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .unwrap()
    }

    /// Two commits; the main tree then has an uncommitted edit and an untracked file.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let repo = Repository::init(&root).unwrap();
        let first = commit_files(
            &repo,
            &[
                (".gitignore", Some("/target\n")),
                ("src.txt", Some("first\n")),
                ("only-first.txt", Some("gone later\n")),
            ],
            "first",
        );
        let second = commit_files(
            &repo,
            &[("src.txt", Some("second\n")), ("only-first.txt", None)],
            "second",
        );
        fs::write(root.join("src.txt"), "uncommitted\n").unwrap();
        fs::write(root.join("untracked.txt"), "mine\n").unwrap();
        let parent = root.join("target/perfgate/ab");
        Fixture {
            _tmp: tmp,
            root,
            repo,
            first,
            second,
            parent,
        }
    }

    fn worktree_names(repo: &Repository) -> BTreeSet<String> {
        repo.worktrees()
            .unwrap()
            .iter()
            .flatten()
            .flatten()
            .map(String::from)
            .collect()
    }

    fn branch_names(repo: &Repository) -> BTreeSet<String> {
        repo.branches(None)
            .unwrap()
            .map(|b| b.unwrap().0.name().unwrap().unwrap().to_string())
            .collect()
    }

    fn admin_dir(repo: &Repository, name: &str) -> PathBuf {
        repo.commondir().join("worktrees").join(name)
    }

    /// A pid no process has: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid), "pid {pid} was reused already");
        pid
    }

    /// What a SIGKILLed run leaves: everything but the removal.
    fn leftover(f: &Fixture, commit: Oid, pid: u32) -> (String, PathBuf) {
        let c = create_as(&f.repo, commit, &f.parent, pid).unwrap();
        let out = (c.name().to_string(), c.path().to_path_buf());
        std::mem::forget(c);
        out
    }

    #[test]
    fn checks_out_the_commit_and_leaves_the_main_tree_alone() {
        let f = fixture();
        let branches = branch_names(&f.repo);
        let c = BaseCheckout::create(&f.repo, f.first, &f.parent).unwrap();

        assert_eq!(c.commit(), f.first);
        assert!(c.path().is_absolute());
        assert!(c.path().starts_with(&f.parent));
        let expected = format!("perfgate-ab-{}-{}", std::process::id(), short(f.first));
        assert!(c.name().starts_with(&expected), "{}", c.name());
        assert_eq!(c.path().file_name().unwrap(), c.name());

        assert_eq!(
            fs::read_to_string(c.path().join("src.txt")).unwrap(),
            "first\n"
        );
        assert!(c.path().join("only-first.txt").is_file());
        assert!(!c.path().join("untracked.txt").exists());

        // The worktree: detached at the commit, nothing modified.
        let wt = Repository::open(c.path()).unwrap();
        assert!(wt.is_worktree());
        assert!(wt.head_detached().unwrap());
        assert_eq!(wt.head().unwrap().target(), Some(f.first));
        let mut opts = StatusOptions::new();
        opts.include_untracked(true);
        assert!(wt.statuses(Some(&mut opts)).unwrap().is_empty());

        // The main tree: same HEAD, branch and edits.
        assert!(!f.repo.head_detached().unwrap());
        assert_eq!(f.repo.head().unwrap().target(), Some(f.second));
        assert_eq!(
            fs::read_to_string(f.root.join("src.txt")).unwrap(),
            "uncommitted\n"
        );
        assert_eq!(
            fs::read_to_string(f.root.join("untracked.txt")).unwrap(),
            "mine\n"
        );
        assert!(!f.root.join("only-first.txt").exists());
        assert_eq!(
            f.repo.status_file(Path::new("src.txt")).unwrap(),
            Status::WT_MODIFIED
        );

        // No branch left behind, no lock.
        assert_eq!(branch_names(&f.repo), branches);
        assert!(!admin_dir(&f.repo, c.name()).join("locked").exists());
        assert_eq!(
            f.repo.find_worktree(c.name()).unwrap().is_locked().unwrap(),
            WorktreeLockStatus::Unlocked
        );
        c.remove().unwrap();
    }

    #[test]
    fn remove_deletes_directory_and_entry() {
        let f = fixture();
        let c = BaseCheckout::create(&f.repo, f.first, &f.parent).unwrap();
        let (name, path) = (c.name().to_string(), c.path().to_path_buf());
        assert!(worktree_names(&f.repo).contains(&name));
        assert!(admin_dir(&f.repo, &name).is_dir());

        c.remove().unwrap();
        assert!(!worktree_names(&f.repo).contains(&name));
        assert!(!admin_dir(&f.repo, &name).exists());
        assert!(!path.exists());
        assert!(f.parent.is_dir(), "only the checkout goes, not its parent");
        assert!(!owned().contains(&name));
        // The main tree's edit survives the removal too.
        assert_eq!(
            fs::read_to_string(f.root.join("src.txt")).unwrap(),
            "uncommitted\n"
        );
    }

    #[test]
    fn drop_removes_it_also_when_unwinding() {
        let f = fixture();
        let c = BaseCheckout::create(&f.repo, f.second, &f.parent).unwrap();
        let (name, path) = (c.name().to_string(), c.path().to_path_buf());
        drop(c);
        assert!(!worktree_names(&f.repo).contains(&name));
        assert!(!path.exists());

        let c = BaseCheckout::create(&f.repo, f.second, &f.parent).unwrap();
        let (name, path) = (c.name().to_string(), c.path().to_path_buf());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = c;
            panic!("a failure while the checkout is alive");
        }));
        assert!(panicked.is_err());
        assert!(!worktree_names(&f.repo).contains(&name));
        assert!(!path.exists());
    }

    #[test]
    fn two_checkouts_of_one_commit() {
        let f = fixture();
        let branches = branch_names(&f.repo);
        let a = BaseCheckout::create(&f.repo, f.first, &f.parent).unwrap();
        let b = BaseCheckout::create(&f.repo, f.first, &f.parent).unwrap();
        assert_ne!(a.path(), b.path());
        let names = worktree_names(&f.repo);
        assert!(
            names.contains(a.name()) && names.contains(b.name()),
            "{names:?}"
        );
        assert_eq!(
            fs::read_to_string(b.path().join("src.txt")).unwrap(),
            "first\n"
        );
        assert_eq!(branch_names(&f.repo), branches);
        a.remove().unwrap();
        assert!(
            b.path().join("src.txt").is_file(),
            "removing one keeps the other"
        );
        b.remove().unwrap();
        assert!(worktree_names(&f.repo).is_empty());
    }

    #[test]
    fn clean_stale_removes_dead_runs_only() {
        let f = fixture();
        let (dead_name, dead_path) = leftover(&f, f.first, dead_pid());
        // pid 1 always exists (kill answers 0 or EPERM): another live run.
        let other_live = create_as(&f.repo, f.first, &f.parent, 1).unwrap();
        let mine = BaseCheckout::create(&f.repo, f.first, &f.parent).unwrap();
        // A worktree that is not perfgate's, even with its directory gone, is not ours to prune.
        let foreign_dir = f.root.join("target/elsewhere");
        let head = f.repo.find_commit(f.second).unwrap();
        let branch = f
            .repo
            .branch("feature", &head, false)
            .unwrap()
            .into_reference();
        let mut opts = WorktreeAddOptions::new();
        opts.reference(Some(&branch));
        f.repo
            .worktree("feature", &foreign_dir, Some(&opts))
            .unwrap();
        fs::remove_dir_all(&foreign_dir).unwrap();
        // Named almost like ours, under the parent.
        let odd = f.parent.join("perfgate-ab-notapid-1234567");
        fs::create_dir_all(&odd).unwrap();

        let removed = clean_stale(&f.repo, &f.parent);
        assert_eq!(removed, vec![dead_path.clone()]);
        assert!(!dead_path.exists());
        let names = worktree_names(&f.repo);
        assert!(!names.contains(&dead_name));
        assert!(names.contains(mine.name()) && mine.path().join("src.txt").is_file());
        assert!(names.contains(other_live.name()) && other_live.path().is_dir());
        assert!(names.contains("feature"));
        assert!(odd.is_dir());
        other_live.remove().unwrap();
        mine.remove().unwrap();
    }

    #[test]
    fn clean_stale_prunes_an_entry_whose_directory_was_deleted() {
        let f = fixture();
        let (name, path) = leftover(&f, f.first, dead_pid());
        fs::remove_dir_all(&path).unwrap();
        assert!(worktree_names(&f.repo).contains(&name));

        assert_eq!(clean_stale(&f.repo, &f.parent), vec![path]);
        assert!(!worktree_names(&f.repo).contains(&name));
        assert!(!admin_dir(&f.repo, &name).exists());
        assert!(clean_stale(&f.repo, &f.parent).is_empty(), "nothing left");
    }

    #[test]
    fn clean_stale_removes_a_directory_without_entry_and_a_temporary_branch() {
        let f = fixture();
        let branches = branch_names(&f.repo);
        let pid = dead_pid();
        // A fresh clone reusing a cached target directory: the directory has no entry.
        let (name, path) = leftover(&f, f.first, pid);
        fs::remove_dir_all(admin_dir(&f.repo, &name)).unwrap();
        // A run killed between creating its branch and detaching.
        let killed = format!("perfgate-ab-{pid}-{}-99", short(f.first));
        let target = f.repo.find_commit(f.first).unwrap();
        f.repo.branch(&killed, &target, false).unwrap();

        assert_eq!(clean_stale(&f.repo, &f.parent), vec![path.clone()]);
        assert!(!path.exists());
        assert_eq!(branch_names(&f.repo), branches);
    }

    #[test]
    fn clean_stale_removes_a_leftover_of_an_earlier_process_with_our_pid() {
        let f = fixture();
        let (name, path) = leftover(&f, f.first, std::process::id());
        // Still ours while this process holds it...
        assert!(clean_stale(&f.repo, &f.parent).is_empty());
        assert!(path.is_dir());
        // ...but a name this process does not hold was left by a namesake.
        owned().remove(&name);
        assert_eq!(clean_stale(&f.repo, &f.parent), vec![path.clone()]);
        assert!(!worktree_names(&f.repo).contains(&name));
    }

    #[test]
    fn missing_commit_is_an_error_that_says_what_to_do() {
        let f = fixture();
        let missing = Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        let err = BaseCheckout::create(&f.repo, missing, &f.parent).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Baseline(_)), "{err:?}");
        assert!(
            msg.contains(&missing.to_string()) && msg.contains("git fetch"),
            "{msg}"
        );
        assert!(worktree_names(&f.repo).is_empty());
    }

    #[test]
    fn unwritable_parent_is_an_io_error_and_leaves_nothing() {
        let f = fixture();
        let branches = branch_names(&f.repo);
        let file = f.root.join("target");
        fs::write(&file, "not a directory").unwrap();
        let err = BaseCheckout::create(&f.repo, f.first, &file.join("ab")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("ab"), "{err}");
        assert!(worktree_names(&f.repo).is_empty());
        assert_eq!(branch_names(&f.repo), branches);
    }

    #[test]
    fn names_that_are_not_ours_have_no_pid() {
        assert_eq!(pid_in("perfgate-ab-123-abcdef0"), Some(123));
        assert_eq!(pid_in("perfgate-ab-123-abcdef0-4"), Some(123));
        for name in [
            "perfgate-ab-0-abcdef0",
            "perfgate-ab--1-abcdef0",
            "perfgate-ab-123",
            "perfgate-ab-123-",
            "perfgate-ab-x1-abcdef0",
            "perfgate-ab-99999999999-abcdef0",
            "feature",
        ] {
            assert_eq!(pid_in(name), None, "{name}");
        }
    }
}
