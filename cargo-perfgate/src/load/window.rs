//! A scenario's window as it will run: the declared duration and warmup or their overrides, the time
//! a round takes, the deadline after which it is hung, and the spec parts that make two measurements
//! comparable (which include the effective window).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use perfgate_runtime::format::ScenarioSpec;
use sha2::{Digest, Sha256};

use crate::gate::spec::hex;

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
/// and the SHA-256 of each declared data file (paths relative to the package root).
pub fn spec_parts(
    spec: &ScenarioSpec,
    package_root: &Path,
    window: Window,
) -> BTreeMap<String, String> {
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
    // The cost SLOs are the cost pass's business: adding one keeps the latency baseline comparable.
    let slos: Vec<String> = spec
        .slos
        .iter()
        .filter(|s| !s.metric.is_cost())
        .map(|s| s.describe())
        .collect();
    parts.insert("slos".to_string(), slos.join(", "));
    parts.extend(service_and_data(spec, package_root));
    parts
}

/// What makes two cost passes of a scenario comparable: the iterations before and in the window
/// (the window's fixed overhead is shared among them), the service and the declared data files.
/// Not the load model, durations or SLOs, which the cost pass does not use.
pub fn cost_spec_parts(
    spec: &ScenarioSpec,
    package_root: &Path,
    warmup: u64,
    iterations: u64,
) -> BTreeMap<String, String> {
    let mut parts = service_and_data(spec, package_root);
    parts.insert(
        "cost window".to_string(),
        format!("{warmup} warm-up + {iterations} measured iterations"),
    );
    parts
}

/// The service a scenario runs against and the SHA-256 of each declared data file.
fn service_and_data(spec: &ScenarioSpec, package_root: &Path) -> BTreeMap<String, String> {
    let mut parts = BTreeMap::new();
    parts.insert(
        "service".to_string(),
        spec.service.clone().unwrap_or_default(),
    );
    for d in &spec.data {
        let hash = match std::fs::read(package_root.join(d)) {
            Ok(bytes) => hex(&Sha256::digest(&bytes)),
            Err(e) => format!("unreadable ({})", e.kind()),
        };
        parts.insert(format!("data {d}"), hash);
    }
    parts
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
        let p1 = spec_parts(&spec, dir.path(), w);
        let p1b = spec_parts(&spec, dir.path(), w);
        assert_eq!(spec_hash(&p1), spec_hash(&p1b));
        std::fs::write(dir.path().join("data/req.jsonl"), "b\n").unwrap();
        let p2 = spec_parts(&spec, dir.path(), w);
        assert_ne!(spec_hash(&p1), spec_hash(&p2));
        assert_eq!(
            describe_spec_change(&p1, &p2),
            "data data/req.jsonl changed"
        );
        spec.load = perfgate_runtime::format::LoadModel::Open { rate: 300.0 };
        let p3 = spec_parts(&spec, dir.path(), w);
        assert!(
            describe_spec_change(&p2, &p3).contains("300"),
            "{}",
            describe_spec_change(&p2, &p3)
        );
        // Moving the fn or changing the tolerance keeps it comparable.
        spec.line = 99;
        spec.regression_pct = 20.0;
        assert_eq!(spec_hash(&p3), spec_hash(&spec_parts(&spec, dir.path(), w)));
    }
}
