//! Which checkout a binary was built from. Two checkouts of one workspace that share a target directory
//! (a global `build.target-dir`, git worktrees) produce the same artifact names: cargo hashes a path
//! package relative to its workspace root and judges freshness by mtimes, so it can call the other
//! checkout's binary up to date. Neither cargo's messages nor the dep-info it writes tell the trees
//! apart (both name this checkout's paths).
//!
//! So perfgate writes a stamp beside every binary it builds or checks: the binary's identity (device,
//! inode, size, modification time) and a digest of the sources of the workspace it was built for. A
//! binary whose identity matches its stamp but whose stamp's sources differ from this checkout's was
//! built for another tree: it is rebuilt. A binary cargo just compiled is this checkout's by
//! construction. One nobody stamped (built by a plain `cargo build`) cannot be told: it is taken as it
//! is and stamped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Files larger than this are digested by size only: sources are small, a large file is data.
const MAX_HASHED: u64 = 4 << 20;
/// A tree with more files than this is not digested (the check is skipped, saying so with -v).
const MAX_FILES: usize = 50_000;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Stamp {
    binary: Identity,
    sources: String,
    root: PathBuf,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

fn identity(exe: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(exe).ok()?;
    Some(Identity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

fn stamp_path(exe: &Path) -> PathBuf {
    let mut p = exe.as_os_str().to_owned();
    p.push(".perfgate-stamp");
    PathBuf::from(p)
}

/// Which binaries a digest is for: a service's do not depend on the tests, benches and examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    Service,
    Tests,
}

/// A digest of the workspace's files (relative path and content), the target directory, version
/// control and hidden directories left out, and for a service the test, bench and example trees. A
/// manifest counts without its `metadata` tables (perfgate's configuration builds nothing).
pub fn digest_sources(root: &Path, target_dir: &Path, what: For) -> Option<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                let hidden = name.to_string_lossy().starts_with('.');
                let not_built = what == For::Service
                    && (name == "tests" || name == "benches" || name == "examples");
                if !hidden && !not_built && name != "target" && !path.starts_with(target_dir) {
                    stack.push(path);
                }
            } else if kind.is_file() {
                files.push(path);
                if files.len() > MAX_FILES {
                    return None;
                }
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        let size = std::fs::metadata(&f).map_or(0, |m| m.len());
        if f.file_name().is_some_and(|n| n == "Cargo.toml") {
            h.update(Sha256::digest(manifest_without_metadata(&f).as_bytes()));
        } else if size <= MAX_HASHED {
            if let Ok(bytes) = std::fs::read(&f) {
                h.update(Sha256::digest(&bytes));
            }
        } else {
            h.update(size.to_le_bytes());
        }
    }
    Some(format!("{:x}", h.finalize()))
}

/// A manifest without `[package.metadata]` and `[workspace.metadata]`, as text (the file itself when
/// it does not parse).
fn manifest_without_metadata(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return text;
    };
    for section in ["package", "workspace"] {
        if let Some(toml::Value::Table(t)) = table.get_mut(section) {
            t.remove("metadata");
        }
    }
    toml::to_string(&table).unwrap_or(text)
}

/// What is known of a binary's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built for these sources (stamped, or compiled just now).
    Here,
    /// Built by perfgate for another tree whose sources differ (its root, as stamped).
    Elsewhere(PathBuf),
    /// Nobody stamped it; taken as it is.
    Unknown,
}

/// The origin of `exe`, judged against the sources digest `sources` of the checkout at `root`. In
/// the checkout that built it, cargo's own freshness holds (an edit elsewhere in the tree is no
/// reason to rebuild); another checkout's build counts only if its sources were the same.
pub fn origin(exe: &Path, sources: &str, root: &Path) -> Origin {
    let stamp: Option<Stamp> = std::fs::read(stamp_path(exe))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match (stamp, identity(exe)) {
        (Some(s), Some(id)) if s.binary == id => {
            if s.root == root || s.sources == sources {
                Origin::Here
            } else {
                Origin::Elsewhere(s.root)
            }
        }
        _ => Origin::Unknown,
    }
}

/// Records that `exe`, as it is now, was built for the sources `sources` of the checkout at `root`.
pub fn stamp(exe: &Path, sources: &str, root: &Path) {
    let Some(binary) = identity(exe) else { return };
    let s = Stamp {
        binary,
        sources: sources.to_string(),
        root: root.to_path_buf(),
    };
    if let Ok(bytes) = serde_json::to_vec(&s) {
        // A stamp that cannot be written only loses the check next time.
        let _ = crate::files::write_atomic(&stamp_path(exe), &bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_stamped_for_other_sources_is_from_elsewhere() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let target = tmp.path().join("target");
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join("src")).unwrap();
            std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
            std::fs::create_dir_all(root.join("target/release")).unwrap();
            std::fs::write(root.join("target/release/junk"), "ignored").unwrap();
        }
        std::fs::create_dir_all(&target).unwrap();
        let exe = target.join("svc");
        std::fs::write(&exe, "binary of a").unwrap();
        let digest = |root: &Path| digest_sources(root, &target, For::Tests).unwrap();
        let (da, db) = (digest(&a), digest(&b));
        assert_eq!(da, db, "identical sources, wherever they are");
        assert_eq!(origin(&exe, &da, &a), Origin::Unknown);
        stamp(&exe, &da, &a);
        assert_eq!(origin(&exe, &db, &b), Origin::Here);
        std::fs::write(b.join("src/main.rs"), "fn main() { slower() }").unwrap();
        let db = digest(&b);
        assert_eq!(origin(&exe, &db, &b), Origin::Elsewhere(a.clone()));
        // In the checkout that built it, an edit is cargo's business.
        std::fs::write(a.join("README.md"), "edited").unwrap();
        let da2 = digest(&a);
        assert_ne!(da, da2);
        assert_eq!(origin(&exe, &da2, &a), Origin::Here);
        // Rebuilt (another identity): the old stamp says nothing any more.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&exe, "binary of b, longer").unwrap();
        assert_eq!(origin(&exe, &db, &b), Origin::Unknown);
    }

    #[test]
    fn a_service_digest_ignores_tests_and_perfgate_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let target = root.join("target");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("tests")).unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join("tests/perf.rs"), "// a scenario").unwrap();
        let manifest =
            "[package]\nname = \"svc\"\n[package.metadata.perfgate]\nservice = { bin = \"svc\" }\n";
        std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
        let service = |r: &Path| digest_sources(r, &target, For::Service).unwrap();
        let tests = |r: &Path| digest_sources(r, &target, For::Tests).unwrap();
        let (s0, t0) = (service(root), tests(root));
        std::fs::write(root.join("tests/perf.rs"), "// another scenario").unwrap();
        assert_eq!(service(root), s0);
        assert_ne!(tests(root), t0);
        std::fs::write(
            root.join("Cargo.toml"),
            manifest.replace("\"svc\" }", "\"svc\", ready = \"/\" }"),
        )
        .unwrap();
        assert_eq!(service(root), s0, "perfgate's table builds nothing");
        std::fs::write(
            root.join("Cargo.toml"),
            manifest.replace("name = \"svc\"", "name = \"svc\"\nedition = \"2024\""),
        )
        .unwrap();
        assert_ne!(service(root), s0);
    }
}
