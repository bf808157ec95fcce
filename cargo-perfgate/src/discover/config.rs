//! `[package.metadata.perfgate]` and `[workspace.metadata.perfgate]`: parsed and validated once, each
//! bad key or value an [`Error::Config`] naming it and the accepted form.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::cli::Tier;
use crate::error::{Error, Result};

pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The perfgate section of one package.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackageConfig {
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[package.metadata.perfgate.deps.NAME]`: processes started before the package's services.
    pub deps: BTreeMap<String, DepConfig>,
    /// Path of the baseline file, from the workspace root, as written.
    pub baseline: Option<String>,
    /// `ab = "auto" | "always" | "off"`: when the same-machine A/B mode runs without `--ab`.
    pub ab: AbSetting,
    /// `cost = "auto" | "on" | "off"`: when the cost pass runs without `--cost`.
    pub cost: CostSetting,
    /// `[package.metadata.perfgate.tiers.NAME]`: how each test tier runs this package's scenarios.
    pub tiers: BTreeMap<Tier, TierConfig>,
    /// `targets = ["perf", "lib"]`: the test targets that hold scenarios (None: found by a scan).
    pub targets: Option<Vec<TargetRef>>,
}

/// When `cargo perfgate` runs the cost pass (the service under valgrind) after the load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostSetting {
    /// Only with `--cost`, or for scenarios that declare cost SLOs or have cost figures in the
    /// baseline (the default).
    #[default]
    Off,
    /// Whenever valgrind is installed; without it, a message says how to install it, and it is an
    /// error only where cost SLOs or the baseline's cost figures require the pass.
    Auto,
    /// Always: a missing valgrind is an error.
    On,
}

/// One `tiers.NAME` table, as written (unset keys fall back to the workspace's table, then to
/// [`TierConfig::default_for`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierConfig {
    /// Multiplies each scenario's declared duration and warm-up.
    pub scale: Option<f64>,
    /// Every scenario's measured duration (a scenario's own `soak = "2h"` still wins).
    pub duration: Option<Duration>,
    /// Every scenario's warm-up.
    pub warmup: Option<Duration>,
    /// Rounds per scenario (`--rounds` still wins).
    pub rounds: Option<u32>,
    /// The tier's baseline file, from the workspace root.
    pub baseline: Option<String>,
    /// Stop a scenario whose SLOs are breached beyond recovery.
    pub abort: Option<bool>,
    /// The error rate that, held for `abort_after`, stops a scenario.
    pub abort_errors: Option<f64>,
    pub abort_after: Option<Duration>,
}

impl TierConfig {
    /// The documented defaults of each tier (README, "Test tiers").
    pub fn default_for(tier: Tier) -> TierConfig {
        let base = TierConfig {
            scale: Some(1.0),
            abort: Some(true),
            abort_errors: Some(0.5),
            abort_after: Some(Duration::from_secs(10)),
            ..TierConfig::default()
        };
        match tier {
            Tier::Smoke => base,
            Tier::Nightly => TierConfig {
                scale: Some(3.0),
                rounds: Some(5),
                ..base
            },
            Tier::Soak => TierConfig {
                duration: Some(Duration::from_secs(3600)),
                warmup: Some(Duration::from_secs(300)),
                rounds: Some(1),
                ..base
            },
        }
    }

    /// Each key of `self` that is set, else `fallback`'s.
    pub fn or(&self, fallback: &TierConfig) -> TierConfig {
        TierConfig {
            scale: self.scale.or(fallback.scale),
            duration: self.duration.or(fallback.duration),
            warmup: self.warmup.or(fallback.warmup),
            rounds: self.rounds.or(fallback.rounds),
            baseline: self.baseline.clone().or_else(|| fallback.baseline.clone()),
            abort: self.abort.or(fallback.abort),
            abort_errors: self.abort_errors.or(fallback.abort_errors),
            abort_after: self.abort_after.or(fallback.abort_after),
        }
    }
}

const TIER_FORM: &str = r#"[package.metadata.perfgate.tiers.nightly] with scale = 3.0, duration = "10m", warmup = "30s", rounds = 5, baseline = "perfgate.nightly.toml", abort = true, abort_errors = "50%", abort_after = "10s" (every key optional)"#;

/// `tiers = { NAME = { ... } }`, as in a package's table or the workspace's.
fn parse_tiers(v: Option<&Value>) -> std::result::Result<BTreeMap<Tier, TierConfig>, String> {
    let tiers = perfgate_units::TIERS.join(", ");
    let map = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "`tiers` must be a table of tiers ({tiers}), e.g. `{TIER_FORM}`, found {}",
                kind(other)
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let Some(tier) = Tier::parse(name) else {
            return Err(format!(
                "unknown tier `tiers.{name}`; the tiers are {tiers}"
            ));
        };
        let cfg = parse_tier(v).map_err(|m| format!("in `tiers.{name}`: {m}"))?;
        out.insert(tier, cfg);
    }
    Ok(out)
}

fn parse_tier(v: &Value) -> std::result::Result<TierConfig, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "expected a table like `{TIER_FORM}`, found {}",
            kind(v)
        ));
    };
    let mut cfg = TierConfig::default();
    for (key, v) in m {
        let duration = |key: &str| {
            match v {
            Value::String(s) => perfgate_units::parse_duration(s)
                .filter(|d| !d.is_zero() || key == "warmup")
                .ok_or_else(|| format!("`{key}` must be a duration such as \"30s\", \"10m\" or \"2h\"{}, found \"{s}\"",
                    if key == "warmup" { "" } else { " (more than 0)" })),
            other => Err(format!("`{key}` must be a duration string such as \"30s\" or \"2h\", found {}", show(other))),
        }
        };
        match key.as_str() {
            "scale" => {
                cfg.scale = Some(
                    v.as_f64()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| format!("`scale` multiplies each scenario's declared duration and warm-up: a number greater than 0, e.g. `scale = 3`, found {}", show(v)))?,
                )
            }
            "duration" => cfg.duration = Some(duration(key)?),
            "warmup" => cfg.warmup = Some(duration(key)?),
            "abort_after" => cfg.abort_after = Some(duration(key)?),
            "rounds" => {
                cfg.rounds = Some(
                    v.as_u64()
                        .filter(|n| (1..=100).contains(n))
                        .map(|n| n as u32)
                        .ok_or_else(|| format!("`rounds` must be a whole number from 1 to 100, found {}", show(v)))?,
                )
            }
            "baseline" => cfg.baseline = parse_baseline(Some(v))?,
            "abort" => {
                cfg.abort = Some(v.as_bool().ok_or_else(|| {
                    format!("`abort` must be true or false, found {}", show(v))
                })?)
            }
            "abort_errors" => {
                let pct = match v {
                    Value::String(s) => perfgate_units::parse_percent(s).filter(|p| *p > 0.0 && *p <= 100.0),
                    _ => None,
                };
                cfg.abort_errors = Some(
                    pct.ok_or_else(|| format!("`abort_errors` must be a percentage above 0 and at most 100, e.g. \"50%\", found {}", show(v)))?
                        / 100.0,
                );
            }
            other => {
                return Err(format!(
                    "unknown key `{other}`; the accepted keys are scale, duration, warmup, rounds, baseline, abort, abort_errors, abort_after: `{TIER_FORM}`"
                ))
            }
        }
    }
    Ok(cfg)
}

/// The kinds of target whose test executables can hold scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    /// The library's unit tests.
    Lib,
    /// A binary's unit tests.
    Bin,
    /// An integration test (`tests/NAME.rs`).
    Test,
    Example,
    Bench,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Lib => "lib",
            TargetKind::Bin => "bin",
            TargetKind::Test => "test",
            TargetKind::Example => "example",
            TargetKind::Bench => "bench",
        }
    }
}

/// One entry of `targets`: `"lib"`, `"NAME"` (an integration test) or `"KIND:NAME"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    pub kind: TargetKind,
    /// None for the library (a package has one).
    pub name: Option<String>,
}

const TARGETS_FORM: &str = r#"targets = ["perf", "lib", "bin:NAME", "example:NAME", "bench:NAME"] (a plain name is an integration test, tests/NAME.rs; "lib" the library's unit tests)"#;

/// Parses one entry of `targets`.
pub fn parse_target_ref(s: &str) -> std::result::Result<TargetRef, String> {
    let bad = || format!("`targets` entry \"{s}\" is not a target: `{TARGETS_FORM}`");
    let (kind, name) = match s.split_once(':') {
        None if s == "lib" => {
            return Ok(TargetRef {
                kind: TargetKind::Lib,
                name: None,
            })
        }
        None => (TargetKind::Test, s),
        Some(("lib", n)) if !n.is_empty() => (TargetKind::Lib, n),
        Some(("bin", n)) => (TargetKind::Bin, n),
        Some(("test", n)) => (TargetKind::Test, n),
        Some(("example", n)) => (TargetKind::Example, n),
        Some(("bench", n)) => (TargetKind::Bench, n),
        Some(_) => return Err(bad()),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(TargetRef {
        kind,
        name: Some(name.to_string()),
    })
}

/// When `cargo perfgate` measures the merge-base on this machine instead of reading the baseline file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AbSetting {
    /// Only with `--ab` (the default).
    #[default]
    Off,
    /// When the baseline file is missing at the merge-base, not comparable (a scenario's spec changed)
    /// or recorded on another machine.
    Auto,
    /// Always, as if `--ab` were given.
    Always,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// The key under `services`, or the bin's name for the single `service = {...}` form.
    pub name: String,
    /// The package's `[[bin]]` to build and start.
    pub bin: String,
    /// Arguments; `{port}` is replaced with the chosen port.
    pub args: Vec<String>,
    /// Added to the inherited environment (`{port}` is replaced here too).
    pub env: BTreeMap<String, String>,
    /// HTTP path that answers 2xx once the service is ready; None: ready when the port accepts.
    pub ready: Option<String>,
    /// A port the service always binds (`port = 8080`) instead of a free one perfgate picks.
    pub port: Option<u16>,
    pub startup_timeout: Duration,
    pub restart: Restart,
    /// Variables of perfgate's environment handed to the service although their names mark them as
    /// credentials (every other one is withheld from every child).
    pub pass_env: Vec<String>,
}

/// When a service is (re)started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Once for the whole run (the default).
    #[default]
    PerRun,
    /// A fresh process for every scenario.
    PerTest,
}

/// A dependency of the package's services (a database, a cache): a process perfgate starts on a free
/// loopback port, waits for, seeds with setup steps, resets and stops, like the service itself.
#[derive(Clone, Debug, PartialEq)]
pub struct DepConfig {
    /// The key under `deps`: `{NAME.port}`, `{NAME.host}`, `{NAME.url}` in the service's args and env.
    pub name: String,
    /// Program and arguments, run without a shell in the package's directory.
    pub command: Vec<String>,
    /// How clients reach it, e.g. `postgres://postgres@{host}:{port}/shop`; default `{host}:{port}`.
    pub url: Option<String>,
    pub ready: Ready,
    /// Added to the inherited environment of the command and its steps.
    pub env: BTreeMap<String, String>,
    /// Steps run once it is ready: what loads the versioned data.
    pub setup: Vec<Vec<String>>,
    /// Steps that bring it back to the state after `setup`, before each scenario with
    /// `reset = "per-scenario"`; without them such a reset starts it afresh (command and setup again).
    pub restore: Vec<Vec<String>>,
    pub reset: Reset,
    /// Files or directories (from the package root) hashed into each scenario's spec besides those the
    /// command and the steps name.
    pub data: Vec<String>,
    /// From start to ready.
    pub startup_timeout: Duration,
    /// For each setup or restore step.
    pub setup_timeout: Duration,
}

impl DepConfig {
    /// The variable that, when set, points at an existing instance instead of starting one:
    /// `PERFGATE_DEP_<NAME>_URL` (the name upper-cased, `-` as `_`).
    pub fn external_var(&self) -> String {
        format!(
            "PERFGATE_DEP_{}_URL",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// When a dependency is ready to be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Its port accepts a connection.
    Tcp,
    /// `GET path` answers 2xx.
    Http(String),
    /// The command exits 0 (e.g. `pg_isready`).
    Command(Vec<String>),
}

/// How often a dependency goes back to the state its setup left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reset {
    /// Set up once for the package's scenarios (the default): right for read-only scenarios.
    #[default]
    PerRun,
    /// Before every scenario but the first, with `restore` (or afresh), and the package's services
    /// restarted: for scenarios that write.
    PerScenario,
}

pub const DEFAULT_DEP_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(300);

const DEP_FORM: &str = r#"[package.metadata.perfgate.deps.NAME] with command = "program {port} {dir}" (required), url = "scheme://{host}:{port}/…", ready = "tcp" | "/healthz" | { command = "…" }, env = { KEY = "VALUE" }, setup = ["step", …], reset = "per-run" | "per-scenario", restore = ["step", …], data = ["path", …], startup_timeout = "60s", setup_timeout = "5m""#;

/// The values a dependency's own command, url, env, ready command and steps may use.
const DEP_PLACEHOLDERS: [&str; 4] = ["port", "host", "dir", "url"];

/// The values of a dependency the service's args and env may use as `{NAME.value}`.
pub const DEP_VALUES: [&str; 3] = ["port", "host", "url"];

const SERVICE_FORM: &str = r#"service = { bin = "NAME", args = ["--port", "{port}"], env = { KEY = "VALUE" }, ready = "/healthz", startup_timeout = "30s", restart = "per-run" | "per-test", pass_env = ["DB_PASSWORD"], port = 8080 } (only `bin` is required; `port` only for a service that cannot be told its port)"#;

impl PackageConfig {
    /// Parses `[package.metadata.perfgate]` out of cargo_metadata's `package.metadata` value.
    /// Nothing declared gives an empty config; any bad shape is an [`Error::Config`] naming the key and the
    /// accepted form.
    pub fn parse(manifest: &Path, metadata: &Value) -> Result<PackageConfig> {
        let err = |msg: String| Error::Config {
            manifest: manifest.to_path_buf(),
            msg,
        };
        let section = match metadata.get("perfgate") {
            None | Some(Value::Null) => return Ok(PackageConfig::default()),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(err(format!(
                    "`package.metadata.perfgate` must be a table, found {}",
                    kind(other)
                )));
            }
        };
        let mut cfg = PackageConfig::default();
        for key in section.keys() {
            if !matches!(
                key.as_str(),
                "service" | "services" | "deps" | "baseline" | "ab" | "cost" | "tiers" | "targets"
            ) {
                return Err(err(format!(
                "unknown key `{key}`; the accepted keys are `service`, `services`, `deps`, `baseline`, `ab`, `cost`, `tiers` and `targets`"
            )));
            }
        }
        if section.contains_key("service") && section.contains_key("services") {
            return Err(err(
            "both `service` and `services` are set; declare one service with `service = { bin = ... }` or \
             several with `[package.metadata.perfgate.services.NAME]`"
                .into(),
        ));
        }
        if let Some(v) = section.get("service") {
            let svc = parse_service(None, v).map_err(|m| err(format!("in `service`: {m}")))?;
            cfg.services.insert(svc.name.clone(), svc);
        }
        if let Some(v) = section.get("services") {
            let Value::Object(map) = v else {
                return Err(err(format!(
                "`services` must be a table of named services, e.g. `services.api = {{ bin = \"api\" }}`, found {}",
                kind(v)
            )));
            };
            for (name, v) in map {
                let svc = parse_service(Some(name), v)
                    .map_err(|m| err(format!("in `services.{name}`: {m}")))?;
                cfg.services.insert(name.clone(), svc);
            }
        }
        if let Some(v) = section.get("deps") {
            let Value::Object(map) = v else {
                return Err(err(format!(
                    "`deps` must be a table of named dependencies: {DEP_FORM}; found {}",
                    kind(v)
                )));
            };
            for (name, v) in map {
                let dep = parse_dep(name, v).map_err(|m| err(format!("in `deps.{name}`: {m}")))?;
                cfg.deps.insert(name.clone(), dep);
            }
        }
        for svc in cfg.services.values() {
            check_service_placeholders(svc, &cfg.deps).map_err(|m| {
                err(if section.contains_key("service") {
                    format!("in `service`: {m}")
                } else {
                    format!("in `services.{}`: {m}", svc.name)
                })
            })?;
        }
        cfg.baseline = parse_baseline(section.get("baseline")).map_err(err)?;
        cfg.tiers = parse_tiers(section.get("tiers")).map_err(err)?;
        cfg.targets = match section.get("targets") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if !a.is_empty() => Some(
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => parse_target_ref(s),
                        other => Err(format!(
                            "`targets` must be an array of target names, found an element that is {}: `{TARGETS_FORM}`",
                            kind(other)
                        )),
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(err)?,
            ),
            Some(Value::Array(_)) => {
                return Err(err(format!(
                    "`targets` is empty: name the targets that hold scenarios (`{TARGETS_FORM}`), or remove the key \
                     to let perfgate find them"
                )))
            }
            Some(other) => {
                return Err(err(format!(
                    "`targets` must be an array of target names, found {}: `{TARGETS_FORM}`",
                    show(other)
                )))
            }
        };
        match section.get("ab") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "auto" => cfg.ab = AbSetting::Auto,
            Some(Value::String(s)) if s == "always" => cfg.ab = AbSetting::Always,
            Some(Value::String(s)) if s == "off" => cfg.ab = AbSetting::Off,
            Some(Value::Bool(b)) => {
                cfg.ab = if *b {
                    AbSetting::Always
                } else {
                    AbSetting::Off
                }
            }
            Some(other) => {
                return Err(err(format!(
                "`ab` must be \"auto\" (measure the merge-base on this machine when the baseline file is \
                 missing, not comparable or from another machine), \"always\" or \"off\", found {}",
                match other {
                    Value::String(s) => format!("\"{s}\""),
                    v => kind(v).to_string(),
                }
            )));
            }
        }
        cfg.cost = match section.get("cost") {
            None | Some(Value::Null) => CostSetting::Off,
            Some(Value::String(s)) if s == "auto" => CostSetting::Auto,
            Some(Value::String(s)) if s == "on" => CostSetting::On,
            Some(Value::String(s)) if s == "off" => CostSetting::Off,
            Some(Value::Bool(true)) => CostSetting::On,
            Some(Value::Bool(false)) => CostSetting::Off,
            Some(other) => {
                return Err(err(format!(
                    "`cost` must be \"auto\" (run the cost pass under valgrind when it is installed), \"on\" \
                     (always; an error without valgrind) or \"off\", found {}",
                    show(other)
                )));
            }
        };
        Ok(cfg)
    }
}

/// `[workspace.metadata.perfgate]`: what every package of the workspace shares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkspaceConfig {
    /// Path of the baseline file, from the workspace root, for packages that do not set their own.
    pub baseline: Option<String>,
    /// The test tiers of every package, under each package's own `tiers` table.
    pub tiers: BTreeMap<Tier, TierConfig>,
}

impl WorkspaceConfig {
    /// Parses `[workspace.metadata.perfgate]` out of cargo_metadata's `workspace_metadata` value, as
    /// strictly as a package's table: a misspelt key must not turn the gate off silently.
    pub fn parse(manifest: &Path, metadata: &Value) -> Result<WorkspaceConfig> {
        let err = |msg: String| Error::Config {
            manifest: manifest.to_path_buf(),
            msg: format!("in [workspace.metadata.perfgate]: {msg}"),
        };
        let section = match metadata.get("perfgate") {
            None | Some(Value::Null) => return Ok(WorkspaceConfig::default()),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(err(format!(
                    "`workspace.metadata.perfgate` must be a table, found {}",
                    kind(other)
                )));
            }
        };
        if let Some(key) = section
            .keys()
            .find(|k| !matches!(k.as_str(), "baseline" | "tiers"))
        {
            return Err(err(format!(
                "unknown key `{key}`; the accepted keys are `baseline` (e.g. `baseline = \"perfgate.baseline.toml\"`) \
                 and `tiers`; services are declared per package in [package.metadata.perfgate]"
            )));
        }
        Ok(WorkspaceConfig {
            baseline: parse_baseline(section.get("baseline")).map_err(err)?,
            tiers: parse_tiers(section.get("tiers")).map_err(err)?,
        })
    }
}

/// `baseline = "path"`: a non-empty string.
fn parse_baseline(v: Option<&Value>) -> std::result::Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "`baseline` must be a path string, e.g. `baseline = \"perfgate.baseline.toml\"`, found {}",
            show(other)
        )),
    }
}

fn parse_service(name: Option<&str>, v: &Value) -> std::result::Result<ServiceConfig, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "expected a table like `{SERVICE_FORM}`, found {}",
            kind(v)
        ));
    };
    for key in m.keys() {
        if !matches!(
            key.as_str(),
            "bin" | "args" | "env" | "ready" | "startup_timeout" | "restart" | "pass_env" | "port"
        ) {
            return Err(format!(
                "unknown key `{key}`; the accepted keys are bin, args, env, ready, startup_timeout, restart, pass_env, port: `{SERVICE_FORM}`"
            ));
        }
    }
    let bin = match (m.get("bin"), name) {
        (Some(Value::String(s)), _) if !s.is_empty() => s.clone(),
        // Under `services.NAME`, the bin defaults to the service's name.
        (None, Some(n)) => n.to_string(),
        (None, None) => return Err(format!("`bin` is required: `{SERVICE_FORM}`")),
        (Some(other), _) => {
            return Err(format!(
                "`bin` must be the name of a [[bin]] target (a string), found {}",
                kind(other)
            ))
        }
    };
    let args = match m.get("args") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`args` must be an array of strings, e.g. `args = [\"--port\", \"{{port}}\"]`, found an element that is {}", kind(other))),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => return Err(format!("`args` must be an array of strings, e.g. `args = [\"--port\", \"{{port}}\"]`, found {}", kind(other))),
    };
    let env = parse_env(m.get("env"))?;
    let ready = match m.get("ready") {
        None => None,
        Some(Value::String(s)) if s.starts_with('/') => Some(s.clone()),
        Some(other) => {
            return Err(format!(
            "`ready` must be an HTTP path starting with `/`, e.g. `ready = \"/healthz\"`, found {}",
            show(other)
        ))
        }
    };
    let startup_timeout = parse_timeout(m, "startup_timeout", DEFAULT_STARTUP_TIMEOUT)?;
    let port = match m.get("port") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(p @ 1..=65535) => Some(p as u16),
            _ => return Err(format!("`port` must be a port number from 1 to 65535, found {n}")),
        },
        Some(other) => {
            return Err(format!(
                "`port` must be the number of the port the service always binds, e.g. `port = 8080`, found {}",
                show(other)
            ))
        }
    };
    let restart = match m.get("restart") {
        None => Restart::PerRun,
        Some(Value::String(s)) if s == "per-run" => Restart::PerRun,
        Some(Value::String(s)) if s == "per-test" => Restart::PerTest,
        Some(other) => {
            return Err(format!(
                "`restart` must be \"per-run\" or \"per-test\", found {}",
                show(other)
            ))
        }
    };
    let pass_env = match m.get("pass_env") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) if !s.is_empty() && !s.contains('=') => Ok(s.clone()),
                other => Err(format!(
                    "`pass_env` must be an array of variable names, e.g. `pass_env = [\"DB_PASSWORD\"]`, found an element that is {}",
                    show(other)
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "`pass_env` must be an array of variable names, e.g. `pass_env = [\"DB_PASSWORD\"]`, found {}",
                show(other)
            ))
        }
    };
    Ok(ServiceConfig {
        name: name.map_or_else(|| bin.clone(), str::to_string),
        bin,
        args,
        env,
        ready,
        port,
        startup_timeout,
        restart,
        pass_env,
    })
}

/// `env = { KEY = "VALUE" }`: a table of strings.
fn parse_env(v: Option<&Value>) -> std::result::Result<BTreeMap<String, String>, String> {
    match v {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(e)) => e
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!(
                    "`env.{k}` must be a string, e.g. `env = {{ {k} = \"1\" }}`, found {}",
                    kind(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`env` must be a table of strings, e.g. `env = {{ RUST_LOG = \"warn\" }}`, found {}",
            kind(other)
        )),
    }
}

/// A positive duration under `key`, or `default` when it is not set.
fn parse_timeout(
    m: &serde_json::Map<String, Value>,
    key: &str,
    default: Duration,
) -> std::result::Result<Duration, String> {
    match m.get(key) {
        None => Ok(default),
        Some(Value::String(s)) => perfgate_units::parse_duration(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("`{key}` must be a positive duration such as \"30s\", \"500ms\" or \"2m\", found \"{s}\"")),
        Some(other) => Err(format!("`{key}` must be a duration string such as \"30s\", \"500ms\" or \"2m\", found {}", show(other))),
    }
}

/// The `{name}` and `{name.value}` placeholders in `s`, as (byte range of the braces, inner text).
/// Anything else in braces (JSON, a format string) is not a placeholder and stays as written.
pub fn placeholders(s: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = s[from..].find('{').map(|i| from + i) {
        let Some(close) = s[open + 1..].find(['{', '}']).map(|i| open + 1 + i) else {
            break;
        };
        if s.as_bytes()[close] == b'{' {
            from = close;
            continue;
        }
        let inner = &s[open + 1..close];
        let word = |w: &str| {
            w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let is_placeholder = match inner.split_once('.') {
            Some((a, b)) => word(a) && word(b),
            None => word(inner),
        };
        if is_placeholder {
            out.push((open..close + 1, inner));
        }
        from = close + 1;
    }
    out
}

/// A command: a string split into words as a shell would (quotes, backslashes) without running one (no
/// variables, pipes or redirections), or an array of words.
fn parse_command(key: &str, v: &Value) -> std::result::Result<Vec<String>, String> {
    let words = match v {
        Value::String(s) => shlex::split(s).ok_or_else(|| {
            format!("`{key}` has an unterminated quote or a trailing backslash: \"{s}\"")
        })?,
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`{key}` must be a command string or an array of strings, found an element that is {}",
                    kind(other)
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        other => {
            return Err(format!(
                "`{key}` must be a command, e.g. `{key} = \"program --port {{port}}\"` (split into words like a shell, \
                 without one) or an array of words, found {}",
                kind(other)
            ))
        }
    };
    if words.first().map_or(true, |w| w.is_empty()) {
        return Err(format!("`{key}` is an empty command"));
    }
    Ok(words)
}

/// `setup = ["step", ["program", "arg"], …]`: each step a command.
fn parse_steps(key: &str, v: Option<&Value>) -> std::result::Result<Vec<Vec<String>>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| parse_command(&format!("{key}[{i}]"), x))
            .collect(),
        Some(other) => Err(format!(
            "`{key}` must be an array of commands, e.g. `{key} = [\"psql -h {{host}} -p {{port}} -f data/seed.sql\"]`, found {}",
            kind(other)
        )),
    }
}

/// A dependency's own placeholders only: `{port}`, `{host}`, `{dir}` and (outside `url`) `{url}`.
fn check_dep_placeholders(key: &str, s: &str) -> std::result::Result<(), String> {
    for (_, inner) in placeholders(s) {
        if !DEP_PLACEHOLDERS.contains(&inner) || (key == "url" && inner == "url") {
            return Err(format!(
                "`{key}` uses `{{{inner}}}`; a dependency's command, url, env, ready and steps may use {{port}}, \
                 {{host}}, {{dir}} (its temporary directory) and {{url}} (not in `url` itself)"
            ));
        }
    }
    Ok(())
}

fn parse_dep(name: &str, v: &Value) -> std::result::Result<DepConfig, String> {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "the name `{name}` must start with a letter and hold only letters, digits, `_` and `-` (it is used \
             as `{{NAME.port}}` and in PERFGATE_DEP_NAME_URL)"
        ));
    }
    let Value::Object(m) = v else {
        return Err(format!("expected a table: {DEP_FORM}; found {}", kind(v)));
    };
    const KEYS: [&str; 10] = [
        "command",
        "url",
        "ready",
        "env",
        "setup",
        "restore",
        "reset",
        "data",
        "startup_timeout",
        "setup_timeout",
    ];
    if let Some(key) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{key}`; the accepted keys are {}: {DEP_FORM}",
            KEYS.join(", ")
        ));
    }
    let command = match m.get("command") {
        Some(v) => parse_command("command", v)?,
        None => return Err(format!("`command` is required: {DEP_FORM}")),
    };
    let url = match m.get("url") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(format!(
                "`url` must be a string, e.g. `url = \"postgres://postgres@{{host}}:{{port}}/shop\"`, found {}",
                show(other)
            ))
        }
    };
    let ready = match m.get("ready") {
        None => Ready::Tcp,
        Some(Value::String(s)) if s == "tcp" => Ready::Tcp,
        Some(Value::String(s)) if s.starts_with('/') => Ready::Http(s.clone()),
        Some(Value::Object(r)) if r.len() == 1 && r.contains_key("command") => {
            Ready::Command(parse_command("ready.command", &r["command"])?)
        }
        Some(other) => {
            return Err(format!(
                "`ready` must be \"tcp\" (the port accepts a connection, the default), an HTTP path such as \
                 \"/healthz\" (answers 2xx) or {{ command = \"pg_isready -h {{host}} -p {{port}}\" }} (exits 0), found {}",
                show(other)
            ))
        }
    };
    let env = parse_env(m.get("env"))?;
    let setup = parse_steps("setup", m.get("setup"))?;
    let restore = parse_steps("restore", m.get("restore"))?;
    let reset = match m.get("reset") {
        None => Reset::PerRun,
        Some(Value::String(s)) if s == "per-run" => Reset::PerRun,
        Some(Value::String(s)) if s == "per-scenario" => Reset::PerScenario,
        Some(other) => {
            return Err(format!(
                "`reset` must be \"per-run\" (set up once for all scenarios) or \"per-scenario\" (back to the \
                 state after setup before each scenario, for scenarios that write), found {}",
                show(other)
            ))
        }
    };
    if !restore.is_empty() && reset != Reset::PerScenario {
        return Err(
            "`restore` runs before each scenario only with `reset = \"per-scenario\"`; add it, or remove `restore`"
                .into(),
        );
    }
    let data = match m.get("data") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(format!(
                    "`data` must be an array of paths from the package root, e.g. `data = [\"data/\"]`, found an element that is {}",
                    show(other)
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "`data` must be an array of paths from the package root, e.g. `data = [\"data/\"]`, found {}",
                kind(other)
            ))
        }
    };
    let dep = DepConfig {
        name: name.to_string(),
        command,
        url,
        ready,
        env,
        setup,
        restore,
        reset,
        data,
        startup_timeout: parse_timeout(m, "startup_timeout", DEFAULT_DEP_STARTUP_TIMEOUT)?,
        setup_timeout: parse_timeout(m, "setup_timeout", DEFAULT_SETUP_TIMEOUT)?,
    };
    let mut texts: Vec<(String, &str)> = dep
        .command
        .iter()
        .map(|w| ("command".to_string(), w.as_str()))
        .collect();
    if let Some(u) = &dep.url {
        texts.push(("url".into(), u));
    }
    if let Ready::Command(c) = &dep.ready {
        texts.extend(c.iter().map(|w| ("ready.command".to_string(), w.as_str())));
    }
    texts.extend(
        dep.env
            .iter()
            .map(|(k, v)| (format!("env.{k}"), v.as_str())),
    );
    for (key, steps) in [("setup", &dep.setup), ("restore", &dep.restore)] {
        for (i, step) in steps.iter().enumerate() {
            texts.extend(step.iter().map(|w| (format!("{key}[{i}]"), w.as_str())));
        }
    }
    for (key, text) in texts {
        check_dep_placeholders(&key, text)?;
    }
    Ok(dep)
}

/// `{NAME.value}` in a service's args and env must name a declared dependency and one of its values.
fn check_service_placeholders(
    svc: &ServiceConfig,
    deps: &BTreeMap<String, DepConfig>,
) -> std::result::Result<(), String> {
    let texts = svc
        .args
        .iter()
        .map(|a| ("args".to_string(), a))
        .chain(svc.env.iter().map(|(k, v)| (format!("env.{k}"), v)));
    for (key, text) in texts {
        for (_, inner) in placeholders(text) {
            let Some((dep, value)) = inner.split_once('.') else {
                continue;
            };
            if !deps.contains_key(dep) {
                let declared = if deps.is_empty() {
                    "none is declared (`[package.metadata.perfgate.deps.NAME]`)".to_string()
                } else {
                    format!(
                        "the declared ones are {}",
                        deps.keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(format!(
                    "`{key}` uses `{{{inner}}}`, but there is no dependency `{dep}`: {declared}"
                ));
            }
            if !DEP_VALUES.contains(&value) {
                return Err(format!(
                    "`{key}` uses `{{{inner}}}`; a dependency's values are {{{dep}.port}}, {{{dep}.host}} and {{{dep}.url}}"
                ));
            }
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<PackageConfig> {
        PackageConfig::parse(Path::new("/ws/shop/Cargo.toml"), &v)
    }

    fn config_msg(v: Value) -> String {
        match parse(v) {
            Err(Error::Config { manifest, msg }) => {
                assert_eq!(manifest, Path::new("/ws/shop/Cargo.toml"));
                msg
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn the_cost_switch_parses_and_bad_values_say_what_is_accepted() {
        let cost = |v: Value| parse(json!({"perfgate": {"cost": v}})).map(|c| c.cost);
        assert_eq!(cost(json!("auto")).unwrap(), CostSetting::Auto);
        assert_eq!(cost(json!("on")).unwrap(), CostSetting::On);
        assert_eq!(cost(json!(false)).unwrap(), CostSetting::Off);
        assert_eq!(
            parse(json!({"perfgate": {}})).unwrap().cost,
            CostSetting::Off
        );
        let msg = config_msg(json!({"perfgate": {"cost": "always"}}));
        assert!(
            msg.contains("`cost` must be \"auto\"") && msg.contains("\"always\""),
            "{msg}"
        );
    }

    #[test]
    fn the_ab_switch_parses_and_bad_values_say_what_is_accepted() {
        let ab = |v: Value| parse(json!({"perfgate": {"ab": v}})).map(|c| c.ab);
        assert_eq!(ab(json!("auto")).unwrap(), AbSetting::Auto);
        assert_eq!(ab(json!("always")).unwrap(), AbSetting::Always);
        assert_eq!(ab(json!("off")).unwrap(), AbSetting::Off);
        assert_eq!(ab(json!(true)).unwrap(), AbSetting::Always);
        assert_eq!(parse(json!({"perfgate": {}})).unwrap().ab, AbSetting::Off);
        let msg = config_msg(json!({"perfgate": {"ab": "sometimes"}}));
        assert!(msg.contains("`ab` must be \"auto\""), "{msg}");
        assert!(msg.contains("\"sometimes\""), "{msg}");
        let msg = config_msg(json!({"perfgate": {"ab": 3}}));
        assert!(msg.contains("found a number"), "{msg}");
    }

    #[test]
    fn tier_tables_parse_and_bad_values_say_what_is_accepted() {
        let cfg = parse(json!({"perfgate": {"tiers": {
            "nightly": {"scale": 2.5, "rounds": 7, "baseline": "perf/nightly.toml"},
            "soak": {"duration": "2h", "warmup": "0s", "abort": false, "abort_errors": "20%", "abort_after": "30s"}
        }}}))
        .unwrap();
        let nightly = &cfg.tiers[&Tier::Nightly];
        assert_eq!(
            (nightly.scale, nightly.rounds, nightly.baseline.as_deref()),
            (Some(2.5), Some(7), Some("perf/nightly.toml"))
        );
        let soak = &cfg.tiers[&Tier::Soak];
        assert_eq!(soak.duration, Some(Duration::from_secs(7200)));
        assert_eq!(soak.warmup, Some(Duration::ZERO));
        assert_eq!(
            (soak.abort, soak.abort_errors, soak.abort_after),
            (Some(false), Some(0.2), Some(Duration::from_secs(30)))
        );
        // Unset keys fall back, key by key.
        let merged = soak.or(&TierConfig::default_for(Tier::Soak));
        assert_eq!(merged.rounds, Some(1));
        assert_eq!(merged.duration, Some(Duration::from_secs(7200)));
        assert_eq!(TierConfig::default_for(Tier::Smoke).scale, Some(1.0));
        assert_eq!(TierConfig::default_for(Tier::Nightly).rounds, Some(5));
        for (v, says) in [
            (
                json!({"weekly": {}}),
                "unknown tier `tiers.weekly`; the tiers are smoke, nightly, soak",
            ),
            (
                json!({"soak": {"duration": "forever"}}),
                "`duration` must be a duration",
            ),
            (json!({"soak": {"duration": "0s"}}), "(more than 0)"),
            (json!({"soak": {"scale": 0}}), "`scale` multiplies"),
            (json!({"soak": {"rounds": 0}}), "from 1 to 100"),
            (
                json!({"soak": {"abort": "yes"}}),
                "`abort` must be true or false",
            ),
            (
                json!({"soak": {"abort_errors": "150%"}}),
                "`abort_errors` must be a percentage",
            ),
            (json!({"soak": {"length": "1h"}}), "unknown key `length`"),
            (json!({"soak": 3}), "expected a table"),
            (json!("soak"), "`tiers` must be a table"),
        ] {
            let m = config_msg(json!({"perfgate": {"tiers": v}}));
            assert!(m.contains(says), "{m}");
        }
        let ws = WorkspaceConfig::parse(
            Path::new("/ws/Cargo.toml"),
            &json!({"perfgate": {"tiers": {"soak": {"duration": "3h"}}}}),
        )
        .unwrap();
        assert_eq!(
            ws.tiers[&Tier::Soak].duration,
            Some(Duration::from_secs(3 * 3600))
        );
    }

    #[test]
    fn targets_and_port_parse_and_bad_values_say_the_form() {
        let cfg = parse(json!({"perfgate": {
            "targets": ["perf", "lib", "bin:shop", "test:lib", "bench:b"],
            "service": {"bin": "shop", "port": 8080}
        }}))
        .unwrap();
        let t = |kind, name: Option<&str>| TargetRef {
            kind,
            name: name.map(str::to_string),
        };
        assert_eq!(
            cfg.targets.unwrap(),
            [
                t(TargetKind::Test, Some("perf")),
                t(TargetKind::Lib, None),
                t(TargetKind::Bin, Some("shop")),
                t(TargetKind::Test, Some("lib")),
                t(TargetKind::Bench, Some("b")),
            ]
        );
        assert_eq!(cfg.services["shop"].port, Some(8080));
        assert_eq!(parse(json!({"perfgate": {}})).unwrap().targets, None);
        let m = config_msg(json!({"perfgate": {"targets": "perf"}}));
        assert!(
            m.contains("`targets` must be an array") && m.contains("\"perf\""),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"targets": []}}));
        assert!(m.contains("`targets` is empty"), "{m}");
        let m = config_msg(json!({"perfgate": {"targets": ["widget:x"]}}));
        assert!(
            m.contains("\"widget:x\" is not a target") && m.contains("bin:NAME"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"targets": [3]}}));
        assert!(m.contains("a number"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "port": 0}}}));
        assert!(m.contains("from 1 to 65535"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "port": "8080"}}}));
        assert!(
            m.contains("`port` must be the number") && m.contains("\"8080\""),
            "{m}"
        );
    }

    #[test]
    fn nothing_declared_is_an_empty_config() {
        assert_eq!(parse(Value::Null).unwrap(), PackageConfig::default());
        assert_eq!(
            parse(json!({"other-tool": {"x": 1}})).unwrap(),
            PackageConfig::default()
        );
        assert_eq!(
            parse(json!({"perfgate": {}})).unwrap(),
            PackageConfig::default()
        );
    }

    #[test]
    fn parses_the_single_service_form_with_defaults() {
        let cfg = parse(
            json!({"perfgate": {"service": {"bin": "shop"}, "baseline": "perfgate.baseline.toml"}}),
        )
        .unwrap();
        assert_eq!(cfg.baseline.as_deref(), Some("perfgate.baseline.toml"));
        let svc = &cfg.services["shop"];
        assert_eq!(svc.name, "shop");
        assert_eq!(svc.bin, "shop");
        assert!(svc.args.is_empty() && svc.env.is_empty() && svc.ready.is_none());
        assert_eq!(svc.startup_timeout, Duration::from_secs(30));
        assert_eq!(svc.restart, Restart::PerRun);
    }

    #[test]
    fn parses_every_key_and_the_named_services_form() {
        let cfg = parse(json!({"perfgate": {"services": {
            "api": {"bin": "shop", "args": ["--port", "{port}"], "env": {"RUST_LOG": "warn"}, "ready": "/healthz",
                    "startup_timeout": "1.5s", "restart": "per-test"},
            "worker": {}
        }}}))
        .unwrap();
        let api = &cfg.services["api"];
        assert_eq!((api.name.as_str(), api.bin.as_str()), ("api", "shop"));
        assert_eq!(api.args, ["--port", "{port}"]);
        assert_eq!(api.env["RUST_LOG"], "warn");
        assert_eq!(api.ready.as_deref(), Some("/healthz"));
        assert_eq!(api.startup_timeout, Duration::from_millis(1500));
        assert_eq!(api.restart, Restart::PerTest);
        assert_eq!(cfg.services["worker"].bin, "worker");
    }

    #[test]
    fn bad_shapes_name_the_key_and_the_accepted_form() {
        let m = config_msg(json!({"perfgate": {"servce": {}}}));
        assert!(m.contains("`servce`") && m.contains("`service`"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "prot": 1}}}));
        assert!(m.contains("`prot`") && m.contains("startup_timeout"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"args": []}}}));
        assert!(m.contains("`bin` is required"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "args": "--port"}}}));
        assert!(m.contains("`args` must be an array of strings"), "{m}");
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "env": {"N": 4}}}}));
        assert!(m.contains("`env.N` must be a string"), "{m}");
        let m =
            config_msg(json!({"perfgate": {"service": {"bin": "a", "startup_timeout": "soon"}}}));
        assert!(
            m.contains("`startup_timeout`") && m.contains("\"30s\"") && m.contains("soon"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "startup_timeout": 30}}}));
        assert!(
            m.contains("`startup_timeout`") && m.contains("a number"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "restart": "always"}}}));
        assert!(
            m.contains("\"per-run\" or \"per-test\"") && m.contains("always"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a", "ready": "healthz"}}}));
        assert!(
            m.contains("`ready`") && m.contains("starting with `/`"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {"service": {"bin": "a"}, "services": {}}}));
        assert!(m.contains("both `service` and `services`"), "{m}");
        let m = config_msg(json!({"perfgate": "shop"}));
        assert!(m.contains("must be a table"), "{m}");
        let err = parse(json!({"perfgate": {"service": {"bin": 3}}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid [package.metadata.perfgate] in /ws/shop/Cargo.toml")
                && err.contains("in `service`"),
            "{err}"
        );
    }

    #[test]
    fn parses_a_dependency_with_every_key_and_templated_service_env() {
        let cfg = parse(json!({"perfgate": {
            "service": {"bin": "shop", "env": {"DATABASE_URL": "{db.url}", "CACHE": "{cache.host}:{cache.port}"}},
            "deps": {
                "db": {
                    "command": "scripts/postgres.sh {dir} {port}",
                    "url": "postgres://postgres@{host}:{port}/shop",
                    "ready": {"command": "pg_isready -h {host} -p {port}"},
                    "env": {"PGPORT": "{port}"},
                    "setup": ["psql -h {host} -p {port} -c 'CREATE DATABASE shop'", ["psql", "-f", "data/seed.sql"]],
                    "reset": "per-scenario",
                    "restore": ["psql -c 'DROP DATABASE shop WITH (FORCE)'"],
                    "data": ["data/"],
                    "startup_timeout": "90s",
                    "setup_timeout": "2m"
                },
                "cache": {"command": ["redis-server", "--port", "{port}"], "ready": "tcp"}
            }
        }}))
        .unwrap();
        let db = &cfg.deps["db"];
        assert_eq!(db.command, ["scripts/postgres.sh", "{dir}", "{port}"]);
        assert_eq!(
            db.url.as_deref(),
            Some("postgres://postgres@{host}:{port}/shop")
        );
        assert_eq!(
            db.ready,
            Ready::Command(vec![
                "pg_isready".into(),
                "-h".into(),
                "{host}".into(),
                "-p".into(),
                "{port}".into()
            ])
        );
        assert_eq!(db.setup[0][5], "-c");
        assert_eq!(db.setup[0][6], "CREATE DATABASE shop");
        assert_eq!(db.setup[1], ["psql", "-f", "data/seed.sql"]);
        assert_eq!(db.reset, Reset::PerScenario);
        assert_eq!(db.restore.len(), 1);
        assert_eq!(db.data, ["data/"]);
        assert_eq!(db.startup_timeout, Duration::from_secs(90));
        assert_eq!(db.setup_timeout, Duration::from_secs(120));
        assert_eq!(db.external_var(), "PERFGATE_DEP_DB_URL");
        let cache = &cfg.deps["cache"];
        assert_eq!(
            (cache.ready.clone(), cache.reset),
            (Ready::Tcp, Reset::PerRun)
        );
        assert_eq!(cache.startup_timeout, DEFAULT_DEP_STARTUP_TIMEOUT);
        assert_eq!(cfg.deps["cache"].url, None);
        let http = parse(
            json!({"perfgate": {"deps": {"search": {"command": "es", "ready": "/_health"}}}}),
        )
        .unwrap();
        assert_eq!(http.deps["search"].ready, Ready::Http("/_health".into()));
    }

    #[test]
    fn bad_dependencies_name_the_key_and_the_accepted_form() {
        let dep = |d: Value| config_msg(json!({"perfgate": {"deps": {"db": d}}}));
        let m = dep(json!({"command": "pg", "prot": 1}));
        assert!(
            m.contains("in `deps.db`")
                && m.contains("unknown key `prot`")
                && m.contains("startup_timeout"),
            "{m}"
        );
        let m = dep(json!({"url": "x"}));
        assert!(m.contains("`command` is required"), "{m}");
        let m = dep(json!({"command": ""}));
        assert!(m.contains("`command` is an empty command"), "{m}");
        let m = dep(json!({"command": "psql -c 'open"}));
        assert!(m.contains("unterminated quote"), "{m}");
        let m = dep(json!({"command": 3}));
        assert!(m.contains("`command` must be a command"), "{m}");
        let m = dep(json!({"command": "pg", "ready": "pg_isready"}));
        assert!(
            m.contains("`ready` must be \"tcp\"") && m.contains("command = "),
            "{m}"
        );
        let m = dep(json!({"command": "pg", "reset": "always"}));
        assert!(
            m.contains("\"per-run\"") && m.contains("\"per-scenario\"") && m.contains("always"),
            "{m}"
        );
        let m = dep(json!({"command": "pg", "restore": ["psql"]}));
        assert!(
            m.contains("`restore`") && m.contains("reset = \"per-scenario\""),
            "{m}"
        );
        let m = dep(json!({"command": "pg", "setup": "psql -f seed.sql"}));
        assert!(m.contains("`setup` must be an array of commands"), "{m}");
        let m = dep(json!({"command": "pg", "setup": [["psql", 1]]}));
        assert!(m.contains("`setup[0]`"), "{m}");
        let m = dep(json!({"command": "pg --port {prot}"}));
        assert!(
            m.contains("`{prot}`") && m.contains("{port}, {host}, {dir}"),
            "{m}"
        );
        let m = dep(json!({"command": "pg", "url": "pg://{url}"}));
        assert!(m.contains("`url` uses `{url}`"), "{m}");
        let m = dep(json!({"command": "pg", "setup_timeout": "soon"}));
        assert!(m.contains("`setup_timeout`") && m.contains("soon"), "{m}");
        let m = dep(json!({"command": "pg", "data": [""]}));
        assert!(m.contains("`data` must be an array of paths"), "{m}");
        let m = config_msg(json!({"perfgate": {"deps": {"1db": {"command": "pg"}}}}));
        assert!(m.contains("`1db` must start with a letter"), "{m}");
        let m = config_msg(json!({"perfgate": {"deps": ["db"]}}));
        assert!(
            m.contains("`deps` must be a table of named dependencies"),
            "{m}"
        );
        // The service's placeholders must name a declared dependency and one of its values.
        let m = config_msg(json!({"perfgate": {
            "service": {"bin": "shop", "env": {"DATABASE_URL": "{bd.url}"}},
            "deps": {"db": {"command": "pg"}}}}));
        assert!(
            m.contains("in `service`")
                && m.contains("`env.DATABASE_URL` uses `{bd.url}`")
                && m.contains("`db`"),
            "{m}"
        );
        let m = config_msg(json!({"perfgate": {
            "services": {"api": {"args": ["--db", "{db.password}"]}},
            "deps": {"db": {"command": "pg"}}}}));
        assert!(
            m.contains("in `services.api`") && m.contains("{db.port}, {db.host} and {db.url}"),
            "{m}"
        );
        let m =
            config_msg(json!({"perfgate": {"service": {"bin": "shop", "args": ["{db.port}"]}}}));
        assert!(
            m.contains("no dependency `db`") && m.contains("none is declared"),
            "{m}"
        );
    }

    #[test]
    fn placeholders_are_words_in_braces_and_nothing_else() {
        let found = |s: &str| {
            placeholders(s)
                .into_iter()
                .map(|(_, p)| p.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found("postgres://{host}:{port}/{db.name}"),
            ["host", "port", "db.name"]
        );
        assert_eq!(
            found(r#"{"a": 1} {} { port } {{port}} {x.y.z} {1x}"#),
            ["port"]
        );
        assert_eq!(placeholders("a{port}b")[0].0, 1..7);
    }
}
