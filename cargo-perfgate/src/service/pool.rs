//! The services of a run: which one a scenario uses, started lazily, kept while `restart = "per-run"`,
//! and a start failure remembered so it is not retried for every scenario; with them the package's
//! dependencies, started before the first service, reset between scenarios when they say so, and
//! stopped after the last service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perfgate_runtime::format::ScenarioSpec;

use std::time::Instant;

use crate::discover::config::{DepConfig, Reset, ServiceConfig};
use crate::discover::PerfPackage;
use crate::error::{Error, Result};
use crate::service::deps::{external_url, Dep};
use crate::service::{show_command, Service, Vars};
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

/// The services of the run, started lazily and kept per package while `restart = "per-run"`, and
/// the package's dependencies, started before its first service and stopped after its last.
pub struct Services<'a> {
    run_dir: &'a Path,
    /// Log file names by (package, service), unique in the run.
    logs: BTreeMap<(String, String), PathBuf>,
    /// Declared before `deps`: fields drop in order, so on an early return the services, which hold
    /// connections to the dependencies, stop first.
    running: BTreeMap<String, Service>,
    /// A service that did not start is not retried for every scenario: the scenario that reported it,
    /// by service name.
    failed: BTreeMap<String, String>,
    /// The current package's dependencies, by name.
    deps: BTreeMap<String, Dep>,
    /// Why the package's dependencies are not there (not retried for every scenario).
    deps_failed: Option<String>,
    /// The scenario that last used the dependencies: another one resets those with
    /// `reset = "per-scenario"`.
    deps_scenario: Option<String>,
}

impl<'a> Services<'a> {
    /// Services whose logs go to `log_dir`.
    pub fn new(log_dir: &'a Path) -> Self {
        Services {
            run_dir: log_dir,
            logs: BTreeMap::new(),
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
            deps: BTreeMap::new(),
            deps_failed: None,
            deps_scenario: None,
        }
    }

    /// Stops the package's services, then its dependencies (they are not needed any more), and forgets
    /// failed starts.
    pub fn stop_all(&mut self, pkg: &str, ui: &Ui) {
        self.stop_services(pkg, ui);
        for (name, dep) in std::mem::take(&mut self.deps) {
            if let Err(e) = dep.stop() {
                ui.warn(&format!("stopping dependency `{name}` of `{pkg}`: {e}"));
            }
        }
        self.failed.clear();
        self.deps_failed = None;
        self.deps_scenario = None;
    }

    fn stop_services(&mut self, pkg: &str, ui: &Ui) {
        for (name, svc) in std::mem::take(&mut self.running) {
            if let Err(e) = svc.stop() {
                ui.warn(&format!("stopping service `{name}` of `{pkg}`: {e}"));
            }
        }
    }

    /// The running service `cfg` of `pkg`, started now if it is not running (with the package's
    /// dependencies, started or reset first). `Ok(Err(why))` when it did not start, now or for an
    /// earlier scenario (which is not retried); `Err` only when interrupted.
    pub fn ensure(
        &mut self,
        pkg: &PerfPackage,
        cfg: &ServiceConfig,
        exe: &Path,
        scenario_id: &str,
        ui: &Ui,
    ) -> Result<std::result::Result<&mut Service, String>> {
        if let Err(why) = self.ensure_deps(pkg, scenario_id, ui)? {
            return Ok(Err(why));
        }
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
            let vars: Vars = self.deps.values().flat_map(Dep::vars).collect();
            match Service::start(cfg, exe, &pkg.root, &log, &vars) {
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

    /// The package's dependencies ready for `scenario_id`: started on first use; still alive; reset
    /// (with the package's services stopped, as they hold connections to, and caches of, the old state)
    /// when another scenario used them and `reset = "per-scenario"`.
    fn ensure_deps(
        &mut self,
        pkg: &PerfPackage,
        scenario_id: &str,
        ui: &Ui,
    ) -> Result<std::result::Result<(), String>> {
        let declared = &pkg.config.deps;
        if declared.is_empty() {
            return Ok(Ok(()));
        }
        if let Some(why) = &self.deps_failed {
            return Ok(Err(format!("not run: {why}")));
        }
        let outcome = if self.deps.is_empty() {
            self.start_deps(pkg, declared.values(), ui)
        } else {
            self.check_and_reset_deps(pkg, scenario_id, ui)
        };
        match outcome {
            Ok(()) => {
                self.deps_scenario = Some(scenario_id.to_string());
                Ok(Ok(()))
            }
            Err(Error::Interrupted) => Err(Error::Interrupted),
            Err(e) => {
                // The others are of no use without it; the services go too.
                self.stop_all(&pkg.name, ui);
                let why = e.to_string();
                self.deps_failed = Some(format!(
                    "the dependencies of `{}` are not there (see {scenario_id})",
                    pkg.name
                ));
                Ok(Err(why))
            }
        }
    }

    fn start_deps<'c>(
        &mut self,
        pkg: &PerfPackage,
        cfgs: impl Iterator<Item = &'c DepConfig>,
        ui: &Ui,
    ) -> Result<()> {
        for cfg in cfgs {
            ui.status(
                "Starting",
                &format!(
                    "dependency `{}` ({})",
                    cfg.name,
                    match external_url(cfg) {
                        Some(_) =>
                            format!("the existing instance {} points at", cfg.external_var()),
                        None => show_command(&cfg.command),
                    }
                ),
            );
            let dep = Dep::start(cfg, &pkg.root, self.run_dir)?;
            ui.status(
                "Ready",
                &format!(
                    "dependency `{}` at {} in {:.2}s, set up ({} step{}) in {:.2}s",
                    cfg.name,
                    dep.describe(cfg),
                    dep.ready_secs,
                    cfg.setup.len(),
                    if cfg.setup.len() == 1 { "" } else { "s" },
                    dep.setup_secs
                ),
            );
            self.deps.insert(cfg.name.clone(), dep);
        }
        Ok(())
    }

    fn check_and_reset_deps(
        &mut self,
        pkg: &PerfPackage,
        scenario_id: &str,
        ui: &Ui,
    ) -> Result<()> {
        for dep in self.deps.values_mut() {
            if let Some(cause) = dep.exited() {
                return Err(Error::Start {
                    what: format!("dependency `{}`", dep.name()),
                    cause: format!(
                        "it {cause} after an earlier scenario; the last lines of {}:",
                        dep.log_path().display()
                    ),
                    log_tail: dep.log_tail(),
                });
            }
        }
        let another = self
            .deps_scenario
            .as_deref()
            .is_some_and(|last| last != scenario_id);
        let to_reset: Vec<&DepConfig> = pkg
            .config
            .deps
            .values()
            .filter(|c| another && c.reset == Reset::PerScenario)
            .collect();
        if to_reset.is_empty() {
            return Ok(());
        }
        self.stop_services(&pkg.name, ui);
        for cfg in to_reset {
            let t = Instant::now();
            let how = if cfg.restore.is_empty() {
                // No restore steps: afresh, command and setup again.
                if let Some(old) = self.deps.remove(&cfg.name) {
                    old.stop()?;
                }
                let dep = Dep::start(cfg, &pkg.root, self.run_dir)?;
                self.deps.insert(cfg.name.clone(), dep);
                "restarted and set up".to_string()
            } else {
                let dep = self.deps.get_mut(&cfg.name).expect("started");
                dep.restore(cfg, &pkg.root)?;
                format!(
                    "restored ({} step{})",
                    cfg.restore.len(),
                    if cfg.restore.len() == 1 { "" } else { "s" }
                )
            };
            ui.status(
                "Reset",
                &format!(
                    "dependency `{}` for {scenario_id}: {how} in {:.2}s",
                    cfg.name,
                    t.elapsed().as_secs_f64()
                ),
            );
        }
        Ok(())
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
