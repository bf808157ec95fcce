//! A scenario's window as it will run: the declared duration and warmup or their overrides, the time
//! a round takes, the deadline after which it is hung, and the spec parts that make two measurements
//! comparable (which include the effective window).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use perfgate_runtime::format::ScenarioSpec;
use sha2::{Digest, Sha256};

use crate::discover::config::{DepConfig, Ready, Reset};
use crate::discover::PerfPackage;
use crate::gate::spec::hex;
use crate::service::show_command;

/// A scenario's measured duration and warmup as the engine will run them: the overrides of the
/// command line (or a tier), else what the scenario declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub duration_ms: u64,
    pub warmup_ms: u64,
}

impl Window {
    pub fn of(spec: &ScenarioSpec, duration: Option<Duration>, warmup: Option<Duration>) -> Window {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Window {
            duration_ms: duration.map_or(spec.duration_ms, ms),
            warmup_ms: warmup.map_or(spec.warmup_ms, ms),
        }
    }

    /// The load's time: warmup and measured window.
    pub fn load_time(&self) -> Duration {
        Duration::from_millis(self.duration_ms.saturating_add(self.warmup_ms))
    }

    /// The spec as it will run (for what is shown before a round).
    pub fn applied(&self, spec: &ScenarioSpec) -> ScenarioSpec {
        ScenarioSpec {
            duration_ms: self.duration_ms,
            warmup_ms: self.warmup_ms,
            ..spec.clone()
        }
    }
}

/// The longest a round may take before it is considered hung: its load time, twice, plus a request
/// timeout and a minute for starting and writing results.
pub fn deadline(spec: &ScenarioSpec, window: Window) -> Duration {
    window.load_time() * 2 + Duration::from_millis(spec.timeout_ms) + Duration::from_secs(60)
}

/// The time a round likely takes before any was measured: its load plus process start and results
/// (about half a second on a small machine).
pub fn round_estimate(window: Window) -> Duration {
    window.load_time() + Duration::from_millis(500)
}

/// The parts of a scenario that make two measurements comparable, each as a short string: the load model
/// with its effective duration and warmup, the request timeout and in-flight bound, the SLOs, the service,
/// the SHA-256 of each declared data file (paths relative to the package root), and for each dependency of
/// the package its declaration and the SHA-256 of every file its command and steps name or its `data`
/// lists (the seed data), so a baseline is never compared across a change of either.
pub fn spec_parts(
    spec: &ScenarioSpec,
    pkg: &PerfPackage,
    window: Window,
) -> BTreeMap<String, String> {
    let package_root = pkg.root.as_path();
    let Window {
        duration_ms,
        warmup_ms,
    } = window;
    let mut parts = BTreeMap::new();
    parts.insert(
        "load".to_string(),
        serde_json::to_string(&spec.load).unwrap_or_default(),
    );
    parts.insert(
        "window".to_string(),
        format!("duration {duration_ms}ms, warmup {warmup_ms}ms"),
    );
    parts.insert(
        "limits".to_string(),
        format!(
            "timeout {}ms, max_in_flight {}",
            spec.timeout_ms,
            spec.max_in_flight
                .map_or("default".to_string(), |n| n.to_string())
        ),
    );
    let slos: Vec<String> = spec.slos.iter().map(|s| s.describe()).collect();
    parts.insert("slos".to_string(), slos.join(", "));
    parts.insert(
        "service".to_string(),
        spec.service.clone().unwrap_or_default(),
    );
    for d in &spec.data {
        parts.insert(format!("data {d}"), hash_path(package_root, d));
    }
    for dep in pkg.config.deps.values() {
        parts.insert(format!("dep {}", dep.name), describe_dep(dep));
        for f in dep_files(dep, package_root) {
            parts.insert(format!("data {f}"), hash_path(package_root, &f));
        }
    }
    parts
}

/// A dependency as declared: what starts it, how it is set up and reset.
fn describe_dep(dep: &DepConfig) -> String {
    let steps = |s: &[Vec<String>]| {
        s.iter()
            .map(|w| show_command(w))
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "command {}; setup {}; reset {}{}",
        show_command(&dep.command),
        steps(&dep.setup),
        match dep.reset {
            Reset::PerRun => "per-run",
            Reset::PerScenario => "per-scenario",
        },
        if dep.restore.is_empty() {
            String::new()
        } else {
            format!(" with {}", steps(&dep.restore))
        }
    )
}

/// The package's files a dependency reads: its `data` entries, and each word of its command, ready
/// command and steps (or the value of a `--flag=path` word) that names a file in the package.
fn dep_files(dep: &DepConfig, root: &Path) -> Vec<String> {
    let mut files: Vec<String> = dep.data.clone();
    let ready = match &dep.ready {
        Ready::Command(c) => std::slice::from_ref(c),
        _ => &[],
    };
    let words = std::iter::once(&dep.command)
        .chain(ready)
        .chain(&dep.setup)
        .chain(&dep.restore)
        .flatten();
    for w in words {
        let candidates = std::iter::once(w.as_str()).chain(w.split_once('=').map(|(_, v)| v));
        for c in candidates {
            if !c.is_empty()
                && !c.contains('{')
                && Path::new(c).is_relative()
                && root.join(c).is_file()
                && !files.iter().any(|f| f == c)
            {
                files.push(c.to_string());
            }
        }
    }
    files
}

/// The SHA-256 of a file, or of a directory's files (their relative paths and contents, in order).
fn hash_path(root: &Path, rel: &str) -> String {
    let path = root.join(rel);
    if path.is_dir() {
        let mut files = Vec::new();
        let mut stack = vec![path.clone()];
        // Bounded by the size of the tree.
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            let name = f
                .strip_prefix(&path)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            h.update(name.as_bytes());
            h.update([0]);
            h.update(hash_path(&path, &name).as_bytes());
            h.update([b'\n']);
        }
        return hex(&h.finalize());
    }
    match std::fs::read(&path) {
        Ok(bytes) => hex(&Sha256::digest(&bytes)),
        Err(e) => format!("unreadable ({})", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::spec::{describe_spec_change, spec_hash};

    #[test]
    fn deadlines_follow_overrides() {
        let sp = crate::slo::tests::spec(vec![]);
        assert_eq!(
            deadline(&sp, Window::of(&sp, None, None)),
            Duration::from_secs(22 + 10 + 60)
        );
        let w = Window::of(&sp, Some(Duration::from_secs(1)), Some(Duration::ZERO));
        assert_eq!(deadline(&sp, w), Duration::from_secs(2 + 10 + 60));
    }

    #[test]
    fn spec_hash_covers_load_slos_and_data_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/req.jsonl"), "a\n").unwrap();
        let mut spec = crate::slo::tests::spec(vec![]);
        let w = Window {
            duration_ms: 1000,
            warmup_ms: 0,
        };
        spec.data = vec!["data/req.jsonl".into()];
        let pkg = PerfPackage::at(dir.path());
        let p1 = spec_parts(&spec, &pkg, w);
        let p1b = spec_parts(&spec, &pkg, w);
        assert_eq!(spec_hash(&p1), spec_hash(&p1b));
        std::fs::write(dir.path().join("data/req.jsonl"), "b\n").unwrap();
        let p2 = spec_parts(&spec, &pkg, w);
        assert_ne!(spec_hash(&p1), spec_hash(&p2));
        assert_eq!(
            describe_spec_change(&p1, &p2),
            "data data/req.jsonl changed"
        );
        spec.load = perfgate_runtime::format::LoadModel::Open { rate: 300.0 };
        let p3 = spec_parts(&spec, &pkg, w);
        assert!(
            describe_spec_change(&p2, &p3).contains("300"),
            "{}",
            describe_spec_change(&p2, &p3)
        );
        // Moving the fn or changing the tolerance keeps it comparable.
        spec.line = 99;
        spec.regression_pct = 20.0;
        assert_eq!(spec_hash(&p3), spec_hash(&spec_parts(&spec, &pkg, w)));
    }

    #[test]
    fn a_dependency_s_setup_files_and_declaration_are_in_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/more")).unwrap();
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("data/seed.sql"), "COPY products 1\n").unwrap();
        std::fs::write(
            dir.path().join("data/schema.sql"),
            "CREATE TABLE products\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("data/more/extra.sql"), "x\n").unwrap();
        std::fs::write(dir.path().join("scripts/db.sh"), "exec postgres\n").unwrap();
        let manifest = dir.path().join("Cargo.toml");
        let meta = serde_json::json!({"perfgate": {"deps": {"db": {
            "command": "scripts/db.sh {dir} {port}",
            "setup": ["psql -p {port} -f data/schema.sql --file=data/seed.sql", "psql -c 'SELECT 1'"],
            "data": ["data/more"],
        }}}});
        let mut pkg = PerfPackage::at(dir.path());
        pkg.config = crate::discover::config::PackageConfig::parse(&manifest, &meta).unwrap();
        let spec = crate::slo::tests::spec(vec![]);
        let w = Window {
            duration_ms: 1000,
            warmup_ms: 0,
        };
        let before = spec_parts(&spec, &pkg, w);
        let files: Vec<&str> = before
            .keys()
            .filter_map(|k| k.strip_prefix("data "))
            .collect();
        assert_eq!(
            files,
            [
                "data/more",
                "data/schema.sql",
                "data/seed.sql",
                "scripts/db.sh"
            ]
        );
        assert!(
            before["dep db"].contains("setup psql"),
            "{}",
            before["dep db"]
        );
        // A change of the seed makes the scenario not comparable, and says why.
        std::fs::write(dir.path().join("data/seed.sql"), "COPY products 2\n").unwrap();
        let after = spec_parts(&spec, &pkg, w);
        assert_ne!(spec_hash(&before), spec_hash(&after));
        assert_eq!(
            describe_spec_change(&before, &after),
            "data data/seed.sql changed"
        );
        // So does one in a file of a declared directory.
        std::fs::write(dir.path().join("data/more/extra.sql"), "y\n").unwrap();
        let again = spec_parts(&spec, &pkg, w);
        assert_eq!(
            describe_spec_change(&after, &again),
            "data data/more changed"
        );
        // And a package without dependencies has no such parts.
        let plain = spec_parts(&spec, &PerfPackage::at(dir.path()), w);
        assert!(!plain
            .keys()
            .any(|k| k.starts_with("dep ") || k.starts_with("data ")));
    }
}
