//! Running the cost pass: per package and service, the service (the same release binary as the
//! load run) started under callgrind, every scenario of the plan driven through its window in turn
//! (windows 0, 1, 2, … of one service process), then the same under massif for the bytes; each
//! scenario's figures from both windows.
//!
//! The scenario binary runs in cost mode (`protocol::Mode::Cost`); this side opens and closes the
//! window with vgdb when the marker files say so (see `perfgate_runtime::format::cost`). Every wait
//! has a deadline and stops when the scenario or the service has gone. A scenario whose pass fails
//! gets the cause (with the log tails); the service is then restarted for the next scenario, so one
//! broken window does not leak into another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perfgate_runtime::format::{cost, format_value, CostDone, Metric};

use super::plan::CostPlan;
use super::valgrind::{CostRun, Tool};
use super::window::{Window, WindowFiles};
use super::{measure, CostMeasurement};
use crate::discover::config::{Restart, ServiceConfig};
use crate::discover::{PerfPackage, Scenario};
use crate::error::{Error, Result};
use crate::files::tail_lines;
use crate::load::window::cost_spec_parts;
use crate::load::PreparedPackage;
use crate::procs::{self, ChildGuard};
use crate::protocol::{self, Mode};
use crate::results::ScenarioRun;
use crate::service::pool::service_for;
use crate::service::{Service, Vars};
use crate::ui::Ui;

/// Longest wait for the warm-up iterations (uninstrumented under callgrind, instrumented under
/// massif) and for the window's iterations.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const WINDOW_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest wait for the scenario to exit once the window is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(1);
/// Log lines quoted under a failed pass.
const TAIL_LINES: usize = 12;

/// One scenario's window under one tool.
struct ToolWindow {
    done: CostDone,
    files: WindowFiles,
    /// Wall time of the scenario under this tool (from its start to its exit).
    secs: f64,
}

/// A scenario's cost figures, or why the pass could not measure them.
pub type Measured = std::result::Result<CostMeasurement, String>;

/// The cost pass of the plan over `reports` (figures and cost SLOs attached, or the error), its
/// files in `dir`; the seconds it took (0 when it did not run).
pub fn measure_into(
    runs: &[PreparedPackage<'_>],
    plan: &CostPlan,
    dir: &Path,
    reports: &mut [ScenarioRun],
    ui: &Ui,
) -> Result<f64> {
    let started = Instant::now();
    attach(run(runs, plan, dir, ui)?, reports);
    Ok(if plan.valgrind.is_some() {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    })
}

/// Attaches each scenario's figures (and cost SLOs), or why there are none, to its report.
pub fn attach(mut measured: BTreeMap<String, Measured>, reports: &mut [ScenarioRun]) {
    for r in reports.iter_mut() {
        if let Some(m) = measured.remove(&r.id) {
            r.attach_cost(m);
        }
    }
}

/// Measures every scenario of the plan; their figures (or why not) by scenario id. `dir` holds the
/// profiles and logs. `Err` only when interrupted or the directory cannot be written.
pub fn run(
    runs: &[PreparedPackage<'_>],
    plan: &CostPlan,
    dir: &Path,
    ui: &Ui,
) -> Result<BTreeMap<String, Measured>> {
    let mut out = BTreeMap::new();
    let Some(valgrind) = &plan.valgrind else {
        return Ok(out);
    };
    for run in runs {
        // In a fixed order: a window's figures can move by a few hundredths of a percent with
        // what the service process did in the windows before it.
        let mut chosen: Vec<&Scenario> = run
            .scenarios
            .iter()
            .filter(|s| plan.measures(&s.id))
            .collect();
        chosen.sort_by(|a, b| a.id.cmp(&b.id));
        // Scenarios of one service share its valgrind'd process (window 0, 1, …), unless the
        // service is restarted per test.
        let mut groups: Vec<(&ServiceConfig, Vec<&Scenario>)> = Vec::new();
        for s in chosen {
            let cfg = match service_for(run.pkg, s.spec.as_ref().expect("described")) {
                Ok(c) => c,
                Err(e) => {
                    out.insert(s.id.clone(), Err(e.to_string()));
                    continue;
                }
            };
            match groups.iter_mut().find(|(c, _)| c.name == cfg.name) {
                Some((_, g)) if cfg.restart == Restart::PerRun => g.push(s),
                _ => groups.push((cfg, vec![s])),
            }
        }
        for (cfg, group) in groups {
            let exe = &run.service_exes[&cfg.name];
            let mut windows: Vec<Vec<std::result::Result<ToolWindow, String>>> = Vec::new();
            for tool in [Tool::Callgrind, Tool::Massif] {
                let ctx = ToolPass {
                    run: CostRun::new(valgrind, tool, dir.join(tool_name(tool))),
                    cfg,
                    exe,
                    root: &run.pkg.root,
                    plan,
                    dir,
                };
                ui.status(
                    "Cost",
                    &format!(
                        "{} under {} ({} warm-up + {} measured iterations per scenario)",
                        group
                            .iter()
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        tool_name(tool),
                        plan.warmup,
                        plan.iterations
                    ),
                );
                windows.push(ctx.measure(&group, ui)?);
            }
            let mut massif = windows.pop().expect("two tools").into_iter();
            let callgrind = windows.pop().expect("two tools").into_iter();
            for (s, cg) in group.iter().zip(callgrind) {
                let ms = massif.next().expect("one window per scenario");
                let m = combine(s, run.pkg, plan, cg, ms);
                if let Ok(m) = &m {
                    ui.status("Measured", &format!("cost of {}: {}", s.id, summary(m)));
                }
                out.insert(s.id.clone(), m);
            }
        }
    }
    Ok(out)
}

fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Callgrind => "callgrind",
        Tool::Massif => "massif",
    }
}

/// `97.18k instructions, 125.5 allocs (9.08KiB), 3.05 syscalls per iteration; 4.2s`, and the
/// service's once-a-second work taken out, if any (`; 7 changes of second × 985 instructions
/// taken out`).
pub fn summary(m: &CostMeasurement) -> String {
    let f = &m.figures;
    let bytes = f
        .alloc_bytes
        .map(|b| format!(" ({})", format_value(Metric::AllocBytes, b)))
        .unwrap_or_default();
    let clock = m
        .clock
        .as_ref()
        .map(|c| {
            format!(
                "; {} change{} of second × {} instructions taken out",
                c.ticks,
                if c.ticks == 1 { "" } else { "s" },
                format_value(Metric::Instructions, c.per_tick)
            )
        })
        .unwrap_or_default();
    format!(
        "{} instructions, {} allocs{bytes}, {} syscalls per iteration; {:.1}s{clock}",
        format_value(Metric::Instructions, f.instructions),
        format_value(Metric::Allocs, f.allocs),
        format_value(Metric::Syscalls, f.syscalls),
        m.secs
    )
}

/// Both windows of a scenario as its figures.
fn combine(
    s: &Scenario,
    pkg: &PerfPackage,
    plan: &CostPlan,
    callgrind: std::result::Result<ToolWindow, String>,
    massif: std::result::Result<ToolWindow, String>,
) -> Measured {
    let cg = callgrind.map_err(|e| format!("cost pass under callgrind: {e}"))?;
    let ms = massif.map_err(|e| format!("cost pass under massif: {e}"))?;
    let w = measure(&cg.done, &cg.files, Some((&ms.done, &ms.files)))
        .map_err(|e| format!("reading the cost pass's profiles: {e}"))?;
    let spec = s.spec.as_ref().expect("described");
    Ok(CostMeasurement {
        warmup: cg.done.warmup,
        iterations: cg.done.iterations,
        figures: w.figures,
        requests: w.requests,
        per_request: w.per_request,
        not_idle: cg.done.not_idle + ms.done.not_idle,
        clock: w.clock,
        secs: cg.secs + ms.secs,
        window_secs: cg.files.elapsed.as_secs_f64(),
        spec_parts: cost_spec_parts(spec, pkg, plan.warmup, plan.iterations),
        attribution: Vec::new(),
    })
}

/// One service under one valgrind tool, and the scenarios driven against it.
struct ToolPass<'a> {
    run: CostRun,
    cfg: &'a ServiceConfig,
    exe: &'a Path,
    root: &'a Path,
    plan: &'a CostPlan,
    dir: &'a Path,
}

impl ToolPass<'_> {
    /// Each scenario's window, in order.
    fn measure(
        &self,
        group: &[&Scenario],
        ui: &Ui,
    ) -> Result<Vec<std::result::Result<ToolWindow, String>>> {
        std::fs::create_dir_all(&self.run.dir)
            .map_err(|e| Error::io(format!("creating {}", self.run.dir.display()), e))?;
        let mut out = Vec::new();
        let mut svc: Option<Service> = None;
        let mut index = 0u32;
        for s in group {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            if svc.is_none() {
                match self.start() {
                    Ok(started) => {
                        svc = Some(started);
                        index = 0;
                    }
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        continue;
                    }
                }
            }
            let service = svc.as_mut().expect("started above");
            let r = self.drive(service, s, index)?;
            index += 1;
            if r.is_err() {
                // The window may be left open, or the service broken: the next scenario gets a
                // fresh one.
                if let Some(old) = svc.take() {
                    if let Err(e) = old.stop() {
                        ui.warn(&format!("stopping the valgrind'd service: {e}"));
                    }
                }
            }
            out.push(r);
        }
        if let Some(old) = svc {
            if let Err(e) = old.stop() {
                ui.warn(&format!("stopping the valgrind'd service: {e}"));
            }
        }
        Ok(out)
    }

    fn start(&self) -> Result<Service> {
        let cfg = ServiceConfig {
            startup_timeout: CostRun::startup_timeout(self.cfg.startup_timeout),
            ..self.cfg.clone()
        };
        let log = self.dir.join(format!(
            "{}.{}.log",
            self.cfg.name,
            tool_name(self.run.tool)
        ));
        Service::start_with(
            &cfg,
            self.exe,
            self.root,
            &log,
            &Vars::new(),
            Some(&|exe, args| self.run.command(exe, args)),
        )
    }

    /// One scenario's window. `Ok(Err(why))` when it could not be measured; `Err` when interrupted.
    fn drive(
        &self,
        svc: &mut Service,
        s: &Scenario,
        index: u32,
    ) -> Result<std::result::Result<ToolWindow, String>> {
        let started = Instant::now();
        let dir = self.run.dir.join(s.file_stem());
        let log_path = self.run.dir.join(format!("{}.log", s.file_stem()));
        let prepared = (|| {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let log = std::fs::File::create(&log_path)?;
            Ok::<_, std::io::Error>((log.try_clone()?, log))
        })();
        let (log_out, log_err) = match prepared {
            Ok(l) => l,
            Err(e) => return Ok(Err(format!("could not prepare {}: {e}", dir.display()))),
        };
        let base_url = svc.base_url();
        let mut cmd = protocol::scenario_command(
            &s.exe,
            &s.cwd,
            &s.test_name,
            &dir.join("unused.json"),
            Mode::Cost {
                base_url: &base_url,
                dir: &dir,
                warmup: self.plan.warmup,
                iterations: self.plan.iterations,
                service_pid: svc.pid(),
            },
        );
        cmd.stdout(log_out).stderr(log_err);
        let mut child = match ChildGuard::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Err(Error::Interrupted)
            }
            Err(e) => return Ok(Err(format!("could not run {}: {e}", s.exe.display()))),
        };
        let sides = Sides {
            log: &log_path,
            svc_log: svc.log_path().to_path_buf(),
        };
        if let Err(why) = wait_for(&mut child, svc, &dir.join(cost::READY), READY_TIMEOUT)? {
            return Ok(Err(sides.explain(&format!("before the window: {why}"))));
        }
        let mut window = match Window::begin(&self.run, svc.pid(), index) {
            Ok(w) => w,
            Err(e) => return Ok(Err(sides.explain(&e.to_string()))),
        };
        if let Err(e) = touch(&dir.join(cost::GO)) {
            return Ok(Err(e));
        }
        let deadline = Instant::now() + WINDOW_TIMEOUT;
        let mut k = 0u64;
        // Bounded by the deadline.
        loop {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            if dir.join(cost::mark(k)).exists() {
                if let Err(e) = window.mark(k) {
                    return Ok(Err(sides.explain(&e.to_string())));
                }
                if let Err(e) = touch(&dir.join(cost::marked(k))) {
                    return Ok(Err(e));
                }
                k += 1;
                continue;
            }
            if dir.join(cost::DONE).exists() {
                break;
            }
            if let Some(why) = gone(&mut child, svc) {
                return Ok(Err(sides.explain(&format!("in the window: {why}"))));
            }
            if Instant::now() >= deadline {
                return Ok(Err(sides.explain(&format!(
                    "the window's {} iterations did not finish within {}s",
                    self.plan.iterations,
                    WINDOW_TIMEOUT.as_secs()
                ))));
            }
            std::thread::sleep(POLL);
        }
        let files = match window.end() {
            Ok(f) => f,
            Err(e) => return Ok(Err(sides.explain(&e.to_string()))),
        };
        if let Err(e) = touch(&dir.join(cost::CLOSED)) {
            return Ok(Err(e));
        }
        match child.wait_timeout(Duration::from_millis(5), Some(EXIT_TIMEOUT))? {
            Some(status) if status.success() => {}
            Some(status) => {
                return Ok(Err(sides.explain(&format!(
                    "the scenario binary {}",
                    procs::describe_exit(status)
                ))))
            }
            None => {
                return Ok(Err(sides.explain(&format!(
                    "the scenario did not exit within {}s of the window's end",
                    EXIT_TIMEOUT.as_secs()
                ))))
            }
        }
        let done = match protocol::read_cost_done(&dir.join(cost::DONE)) {
            Ok(d) => d,
            Err(e) => return Ok(Err(sides.explain(&e.to_string()))),
        };
        let failed = done.errors.total();
        if failed > 0 {
            return Ok(Err(format!(
                "{failed} of the window's {} iterations failed, so its counts are not the scenario's \
                 (first error: {}); see {}",
                done.iterations,
                done.error_samples.first().map_or("-", String::as_str),
                log_path.display()
            )));
        }
        Ok(Ok(ToolWindow {
            done,
            files,
            secs: started.elapsed().as_secs_f64(),
        }))
    }
}

/// The logs a failed pass quotes.
struct Sides<'a> {
    log: &'a Path,
    svc_log: PathBuf,
}

impl Sides<'_> {
    fn explain(&self, why: &str) -> String {
        let scenario = protocol::scenario_log_tail(self.log, TAIL_LINES);
        let service = tail_lines(&self.svc_log, TAIL_LINES);
        let mut out = why.to_string();
        if !scenario.trim().is_empty() {
            out.push_str(&format!(
                "\nthe last lines of {}:\n{scenario}",
                self.log.display()
            ));
        }
        if !service.trim().is_empty() {
            out.push_str(&format!(
                "\nthe last lines of {}:\n{service}",
                self.svc_log.display()
            ));
        }
        out
    }
}

/// Why the scenario or the service is no longer there to answer, if so.
fn gone(child: &mut ChildGuard, svc: &mut Service) -> Option<String> {
    match procs::try_reap(child.child_mut()) {
        Ok(Some(status)) => {
            return Some(format!(
                "the scenario binary {}",
                procs::describe_exit(status)
            ))
        }
        Ok(None) => {}
        Err(e) => return Some(format!("the scenario could not be waited for: {e}")),
    }
    svc.exited()
        .map(|cause| format!("the service (under valgrind) {cause}"))
}

/// Waits until `file` exists. `Ok(Err(why))` when the other side went away or the deadline passed.
fn wait_for(
    child: &mut ChildGuard,
    svc: &mut Service,
    file: &Path,
    timeout: Duration,
) -> Result<std::result::Result<(), String>> {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline.
    loop {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        if file.exists() {
            return Ok(Ok(()));
        }
        if let Some(why) = gone(child, svc) {
            return Ok(Err(why));
        }
        if Instant::now() >= deadline {
            return Ok(Err(format!(
                "{} did not appear within {}s",
                file.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// A marker file for the scenario (written atomically; its content does not matter).
fn touch(path: &Path) -> std::result::Result<(), String> {
    crate::files::write_atomic(path, b"")
        .map_err(|e| format!("could not write {}: {e}", path.display()))
}
