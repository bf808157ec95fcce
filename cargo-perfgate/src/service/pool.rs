//! The services of a run: which one a scenario uses, started lazily, kept while `restart = "per-run"`,
//! and a start failure remembered so it is not retried for every scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfgate_runtime::format::ScenarioSpec;

use crate::discover::config::ServiceConfig;
use crate::discover::PerfPackage;
use crate::error::{Error, Result};
use crate::service::Service;
use crate::ui::Ui;

/// Which service of the package a scenario runs against: `service = "name"`, else the only one.
pub fn service_for<'p>(pkg: &'p PerfPackage, spec: &ScenarioSpec) -> Result<&'p ServiceConfig> {
    let config = &pkg.config;
    let names = || {
        config
            .services
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &spec.service {
        Some(name) => config.services.get(name).ok_or_else(|| {
            Error::Discovery(format!(
                "scenario `{}` ({}:{}) asks for service `{name}`, but package `{}` declares {}",
                spec.name,
                spec.file,
                spec.line,
                pkg.name,
                if config.services.is_empty() { "none".to_string() } else { names() }
            ))
        }),
        None if config.services.len() == 1 => Ok(config.services.values().next().expect("one service")),
        None if config.services.is_empty() => Err(Error::Discovery(missing_service_message(pkg))),
        None => Err(Error::Discovery(format!(
            "package `{}` declares several services ({}); say which one scenario `{}` ({}:{}) uses with \
             `#[perf_test(service = \"...\", ...)]`",
            pkg.name,
            names(),
            spec.name,
            spec.file,
            spec.line
        ))),
    }
}

pub fn missing_service_message(pkg: &PerfPackage) -> String {
    let bin = pkg
        .bins
        .first()
        .cloned()
        .unwrap_or_else(|| pkg.name.clone());
    format!(
        "package `{}` has perfgate scenarios but no service to run them against. Say how to start it in {}:\n\n\
         \x20   [package.metadata.perfgate]\n\
         \x20   service = {{ bin = \"{bin}\", args = [\"--port\", \"{{port}}\"], ready = \"/healthz\" }}\n\n\
         (`{{port}}` is replaced with a free port, also passed as $PORT), or drive a service that is already \
         running with `cargo perfgate --target-url http://127.0.0.1:8080`.",
        pkg.name,
        pkg.manifest_path.display()
    )
}

/// The services of the run, started lazily and kept per package while `restart = "per-run"`.
pub struct Services<'a> {
    run_dir: &'a Path,
    /// Log file names by (package, service), unique in the run.
    logs: BTreeMap<(String, String), PathBuf>,
    running: BTreeMap<String, Service>,
    /// A service that did not start is not retried for every scenario: the scenario that reported it,
    /// by service name.
    failed: BTreeMap<String, String>,
}

impl<'a> Services<'a> {
    /// Services whose logs go to `log_dir`.
    pub fn new(log_dir: &'a Path) -> Self {
        Services {
            run_dir: log_dir,
            logs: BTreeMap::new(),
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Stops the package's services (they are not needed any more) and forgets failed starts.
    pub fn stop_all(&mut self, pkg: &str, ui: &Ui) {
        for (name, svc) in std::mem::take(&mut self.running) {
            if let Err(e) = svc.stop() {
                ui.warn(&format!("stopping service `{name}` of `{pkg}`: {e}"));
            }
        }
        self.failed.clear();
    }

    /// The running service `cfg` of `pkg`, started now if it is not running. `Ok(Err(why))` when it
    /// did not start, now or for an earlier scenario (which is not retried); `Err` only when
    /// interrupted.
    pub fn ensure(
        &mut self,
        pkg: &PerfPackage,
        cfg: &ServiceConfig,
        exe: &Path,
        scenario_id: &str,
        ui: &Ui,
    ) -> Result<std::result::Result<&mut Service, String>> {
        if let Some(first) = self.failed.get(&cfg.name) {
            return Ok(Err(format!(
                "not run: service `{}` did not start (see {first})",
                cfg.name
            )));
        }
        if !self.running.contains_key(&cfg.name) {
            let log = self.log_path(&pkg.name, &cfg.name);
            ui.status(
                "Starting",
                &format!("service `{}` ({})", cfg.name, exe.display()),
            );
            match Service::start(cfg, exe, &pkg.root, &log) {
                Ok(s) => {
                    self.running.insert(cfg.name.clone(), s);
                }
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) => {
                    self.failed
                        .insert(cfg.name.clone(), scenario_id.to_string());
                    return Ok(Err(e.to_string()));
                }
            }
        }
        Ok(Ok(self.running.get_mut(&cfg.name).expect("running")))
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Service> {
        self.running.get_mut(name)
    }

    /// Takes a service out of the pool (dropping it stops it).
    pub fn remove(&mut self, name: &str) -> Option<Service> {
        self.running.remove(name)
    }

    fn log_path(&mut self, pkg: &str, svc: &str) -> PathBuf {
        let taken: Vec<PathBuf> = self.logs.values().cloned().collect();
        let run_dir = self.run_dir;
        self.logs
            .entry((pkg.to_string(), svc.to_string()))
            .or_insert_with(|| {
                let plain = run_dir.join(format!("{svc}.log"));
                if taken.contains(&plain) {
                    run_dir.join(format!("{pkg}--{svc}.log"))
                } else {
                    plain
                }
            })
            .clone()
    }
}
