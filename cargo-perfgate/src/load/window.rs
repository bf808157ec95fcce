//! A scenario's window as it will run: the declared duration and warmup, scaled or replaced by the
//! test tier, or the command line's overrides; the time a round takes, the deadline after which it is
//! hung, and the spec parts that make two measurements comparable (which include the effective
//! window and the tier).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use perfgate_runtime::format::ScenarioSpec;
use sha2::{Digest, Sha256};

use crate::cli::Tier;
use crate::discover::config::{
    DepConfig, PackageConfig, Ready, Reset, TierConfig, WorkspaceConfig,
};
use crate::discover::PerfPackage;
use crate::gate::spec::hex;
use crate::service::show_command;

/// How one tier runs one package's scenarios: the package's `tiers.NAME` keys, else the
/// workspace's, else the tier's defaults ([`TierConfig::default_for`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TierPlan {
    pub tier: Tier,
    pub config: TierConfig,
}

impl TierPlan {
    pub fn resolve(tier: Tier, ws: &WorkspaceConfig, pkg: &PackageConfig) -> TierPlan {
        let none = TierConfig::default();
        let config = pkg
            .tiers
            .get(&tier)
            .unwrap_or(&none)
            .or(ws.tiers.get(&tier).unwrap_or(&none))
            .or(&TierConfig::default_for(tier));
        TierPlan { tier, config }
    }

    /// The tier's defaults alone (no tables).
    pub fn default_for(tier: Tier) -> TierPlan {
        TierPlan {
            tier,
            config: TierConfig::default_for(tier),
        }
    }

    /// Whether the scenario runs in this tier (`tier = [...]`).
    pub fn runs(&self, spec: &ScenarioSpec) -> bool {
        spec.tiers.runs_in(self.tier.as_str())
    }
}

impl Default for TierPlan {
    fn default() -> Self {
        TierPlan::default_for(Tier::Smoke)
    }
}

/// A scenario's measured duration and warmup as the engine will run them, and the tier that
/// planned them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub duration_ms: u64,
    pub warmup_ms: u64,
    pub tier: Tier,
}

impl Window {
    /// The one place a scenario's window is decided. Duration: the command line's, else the
    /// scenario's own for the tier (`soak = "2h"`), else the tier's `duration`, else the declared
    /// one times the tier's `scale`. Warm-up: the command line's, else the scenario's own for the
    /// tier (`soak = ("2h", "10m")`), else the tier's `warmup`, else the declared one times `scale`.
    pub fn of(
        spec: &ScenarioSpec,
        plan: &TierPlan,
        duration: Option<Duration>,
        warmup: Option<Duration>,
    ) -> Window {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let scale = plan.config.scale.unwrap_or(1.0);
        let scaled = |v: u64| (v as f64 * scale).round() as u64;
        Window {
            duration_ms: duration
                .map(ms)
                .or_else(|| spec.tiers.duration_ms.get(plan.tier.as_str()).copied())
                .or_else(|| plan.config.duration.map(ms))
                .unwrap_or_else(|| scaled(spec.duration_ms).max(1)),
            warmup_ms: warmup
                .map(ms)
                .or_else(|| spec.tiers.warmup_ms.get(plan.tier.as_str()).copied())
                .or_else(|| plan.config.warmup.map(ms))
                .unwrap_or_else(|| scaled(spec.warmup_ms)),
            tier: plan.tier,
        }
    }

    /// The overrides a scenario binary needs to run this window (none when it is the declared one).
    pub fn overrides(&self, spec: &ScenarioSpec) -> (Option<Duration>, Option<Duration>) {
        let differs =
            |mine: u64, declared: u64| (mine != declared).then(|| Duration::from_millis(mine));
        (
            differs(self.duration_ms, spec.duration_ms),
            differs(self.warmup_ms, spec.warmup_ms),
        )
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
    let Window {
        duration_ms,
        warmup_ms,
        tier,
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
    // A measurement of the smoke tier (the default, and every run before tiers existed) carries no
    // tier part, so baselines recorded without `--tier` stay comparable.
    if tier != Tier::Smoke {
        parts.insert("tier".to_string(), tier.as_str().to_string());
    }
    parts.insert(
        "limits".to_string(),
        format!(
            "timeout {}ms, max_in_flight {}",
            spec.timeout_ms,
            spec.max_in_flight
                .map_or("default".to_string(), |n| n.to_string())
        ),
    );
    // The cost SLOs are the cost pass's business: adding one keeps the latency baseline comparable.
    let slos: Vec<String> = spec
        .slos
        .iter()
        .filter(|s| !s.metric.is_cost())
        .map(|s| s.describe())
        .collect();
    parts.insert("slos".to_string(), slos.join(", "));
    parts.extend(service_and_data(spec, pkg));
    parts
}

/// What makes two cost passes of a scenario comparable: the iterations before and in the window
/// (the window's fixed overhead is shared among them), the service and the declared data files.
/// Not the load model, durations or SLOs, which the cost pass does not use.
pub fn cost_spec_parts(
    spec: &ScenarioSpec,
    pkg: &PerfPackage,
    warmup: u64,
    iterations: u64,
) -> BTreeMap<String, String> {
    let mut parts = service_and_data(spec, pkg);
    parts.insert(
        "cost window".to_string(),
        format!("{warmup} warm-up + {iterations} measured iterations"),
    );
    parts
}

/// The service a scenario runs against, the SHA-256 of each declared data file, and the package's
/// dependencies (each declaration and the files it names).
fn service_and_data(spec: &ScenarioSpec, pkg: &PerfPackage) -> BTreeMap<String, String> {
    let package_root = pkg.root.as_path();
    let mut parts = BTreeMap::new();
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
        let smoke = TierPlan::default();
        assert_eq!(
            deadline(&sp, Window::of(&sp, &smoke, None, None)),
            Duration::from_secs(22 + 10 + 60)
        );
        let w = Window::of(
            &sp,
            &smoke,
            Some(Duration::from_secs(1)),
            Some(Duration::ZERO),
        );
        assert_eq!(deadline(&sp, w), Duration::from_secs(2 + 10 + 60));
    }

    #[test]
    fn tiers_scale_or_replace_the_window_in_order() {
        let mut sp = crate::slo::tests::spec(vec![]);
        let w = |sp: &ScenarioSpec, plan: &TierPlan| {
            let w = Window::of(sp, plan, None, None);
            (w.duration_ms, w.warmup_ms)
        };
        // Declared 10 s + 1 s. Smoke runs it as declared, needing no override.
        let smoke = TierPlan::default();
        assert_eq!(w(&sp, &smoke), (10_000, 1_000));
        assert_eq!(
            Window::of(&sp, &smoke, None, None).overrides(&sp),
            (None, None)
        );
        // Nightly scales both by 3.
        let nightly = TierPlan::default_for(Tier::Nightly);
        assert_eq!(w(&sp, &nightly), (30_000, 3_000));
        assert_eq!(
            Window::of(&sp, &nightly, None, None).overrides(&sp),
            (Some(Duration::from_secs(30)), Some(Duration::from_secs(3)))
        );
        // Soak: the tier's hour and five minutes; the scenario's own `soak = "2h"` wins over the
        // tier's duration, and the command line over both.
        let soak = TierPlan::default_for(Tier::Soak);
        assert_eq!(w(&sp, &soak), (3_600_000, 300_000));
        sp.tiers.duration_ms.insert("soak".into(), 7_200_000);
        assert_eq!(w(&sp, &soak), (7_200_000, 300_000));
        sp.tiers.warmup_ms.insert("soak".into(), 30_000);
        assert_eq!(w(&sp, &soak), (7_200_000, 30_000));
        let cli = Window::of(&sp, &soak, Some(Duration::from_secs(120)), None);
        assert_eq!((cli.duration_ms, cli.warmup_ms), (120_000, 30_000));
        // A package's table key by key over the workspace's, over the defaults.
        let mut pkg = PackageConfig::default();
        let mut ws = WorkspaceConfig::default();
        ws.tiers.insert(
            Tier::Nightly,
            TierConfig {
                scale: Some(2.0),
                warmup: Some(Duration::from_secs(7)),
                ..Default::default()
            },
        );
        pkg.tiers.insert(
            Tier::Nightly,
            TierConfig {
                scale: Some(0.5),
                ..Default::default()
            },
        );
        let plan = TierPlan::resolve(Tier::Nightly, &ws, &pkg);
        assert_eq!(w(&sp, &plan), (5_000, 7_000));
        assert_eq!(
            plan.config.rounds,
            Some(5),
            "the default where neither table sets it"
        );
        // Where a scenario runs.
        sp.tiers.only = vec!["nightly".into()];
        assert!(nightly.runs(&sp) && !smoke.runs(&sp));
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
            tier: Tier::Smoke,
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
        assert_eq!(spec_hash(&p3), spec_hash(&spec_parts(&spec, &pkg, w)));
        // Another tier is another measurement, even with the same window; smoke adds no part.
        assert!(!p3.contains_key("tier"));
        let nightly = Window {
            tier: Tier::Nightly,
            ..w
        };
        let p4 = spec_parts(&spec, &pkg, nightly);
        assert_eq!(p4["tier"], "nightly");
        assert_ne!(spec_hash(&p3), spec_hash(&p4));
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
            tier: Tier::Smoke,
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
