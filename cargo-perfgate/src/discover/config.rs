//! `[package.metadata.perfgate]` and `[workspace.metadata.perfgate]`: parsed and validated once, each
//! bad key or value an [`Error::Config`] naming it and the accepted form.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The perfgate section of one package.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackageConfig {
    pub services: BTreeMap<String, ServiceConfig>,
    /// Path of the baseline file, from the workspace root, as written.
    pub baseline: Option<String>,
    /// `ab = "auto" | "always" | "off"`: when the same-machine A/B mode runs without `--ab`.
    pub ab: AbSetting,
    /// `targets = ["perf", "lib"]`: the test targets that hold scenarios (None: found by a scan).
    pub targets: Option<Vec<TargetRef>>,
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
                "service" | "services" | "baseline" | "ab" | "targets"
            ) {
                return Err(err(format!(
                "unknown key `{key}`; the accepted keys are `service`, `services`, `baseline`, `ab` and `targets`"
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
        cfg.baseline = parse_baseline(section.get("baseline")).map_err(err)?;
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
        Ok(cfg)
    }
}

/// `[workspace.metadata.perfgate]`: what every package of the workspace shares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkspaceConfig {
    /// Path of the baseline file, from the workspace root, for packages that do not set their own.
    pub baseline: Option<String>,
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
        if let Some(key) = section.keys().find(|k| k.as_str() != "baseline") {
            return Err(err(format!(
                "unknown key `{key}`; the accepted key is `baseline` (e.g. `baseline = \"perfgate.baseline.toml\"`); \
                 services are declared per package in [package.metadata.perfgate]"
            )));
        }
        Ok(WorkspaceConfig {
            baseline: parse_baseline(section.get("baseline")).map_err(err)?,
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
    let env = match m.get("env") {
        None => BTreeMap::new(),
        Some(Value::Object(e)) => e
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!(
                    "`env.{k}` must be a string, e.g. `env = {{ {k} = \"1\" }}`, found {}",
                    kind(other)
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
            "`env` must be a table of strings, e.g. `env = {{ RUST_LOG = \"warn\" }}`, found {}",
            kind(other)
        ))
        }
    };
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
    let startup_timeout = match m.get("startup_timeout") {
        None => DEFAULT_STARTUP_TIMEOUT,
        Some(Value::String(s)) => perfgate_units::parse_duration(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("`startup_timeout` must be a positive duration such as \"30s\", \"500ms\" or \"2m\", found \"{s}\""))?,
        Some(other) => return Err(format!("`startup_timeout` must be a duration string such as \"30s\", \"500ms\" or \"2m\", found {}", show(other))),
    };
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
}
