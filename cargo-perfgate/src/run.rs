//! Running the scenarios: one process at a time against the package's service, each with its own
//! results file and log in the run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfgate_runtime::format::{self, LoadModel, ScenarioResult, ScenarioSpec};

use crate::check::{check_slo, check_slos, verdict, Check, Verdict};
use crate::discover::{clean_env, PerfPackage, Scenario};
use crate::error::{Error, Result};
use crate::procs::{self, ChildGuard};
use crate::report::ScenarioReport;
use crate::sample::Sampler;
use crate::service::{PackageConfig, Restart, Service, ServiceConfig};
use crate::ui::Ui;

/// Lines of a log quoted under an error.
pub const TAIL_LINES: usize = 15;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub target_url: Option<String>,
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    /// Rounds per scenario (0 is taken as 1): the regression gate compares rounds, not single runs.
    pub rounds: usize,
    /// A baseline comparison follows the runs, so a scenario's own line cannot say "pass" yet.
    pub gate_follows: bool,
    /// Numbering of this call's rounds starts after this many (`--ab` runs one round per call, and
    /// each must keep its own results file and log).
    pub first_round: usize,
}

/// A package ready to run: its scenarios (described) and its services' executables.
#[derive(Clone)]
pub struct PackageRun<'a> {
    pub pkg: &'a PerfPackage,
    pub config: PackageConfig,
    pub scenarios: Vec<Scenario>,
    /// Built executables by service name (empty with `--target-url`).
    pub service_exes: BTreeMap<String, PathBuf>,
}

/// Which service of the package a scenario runs against: `service = "name"`, else the only one.
pub fn service_for<'c>(
    pkg: &PerfPackage,
    config: &'c PackageConfig,
    spec: &ScenarioSpec,
) -> Result<&'c ServiceConfig> {
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
pub(crate) struct Services<'a> {
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
    pub(crate) fn new(log_dir: &'a Path) -> Self {
        Services {
            run_dir: log_dir,
            logs: BTreeMap::new(),
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Stops the package's services (they are not needed any more) and forgets failed starts.
    pub(crate) fn stop_all(&mut self, pkg: &str, ui: &Ui) {
        for (name, svc) in std::mem::take(&mut self.running) {
            if let Err(e) = svc.stop() {
                ui.warn(&format!("stopping service `{name}` of `{pkg}`: {e}"));
            }
        }
        self.failed.clear();
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

/// Runs every scenario of every package; the reports come back in order. Only an interruption (or an
/// I/O failure of the run directory) stops the run: a scenario's failure is in its report.
pub fn run_all(
    runs: &[PackageRun<'_>],
    run_dir: &Path,
    opts: &RunOptions,
    ui: &Ui,
) -> Result<Vec<ScenarioReport>> {
    let mut reports = Vec::new();
    let scenario_dir = run_dir.join("scenarios");
    std::fs::create_dir_all(&scenario_dir)
        .map_err(|e| Error::io(format!("creating {}", scenario_dir.display()), e))?;
    let mut services = Services::new(run_dir);
    for run in runs {
        for scenario in &run.scenarios {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            let report = run_scenario(run, scenario, &scenario_dir, opts, &mut services, ui)?;
            ui.scenario_done(&report, opts.gate_follows);
            reports.push(report);
        }
        services.stop_all(&run.pkg.name, ui);
    }
    Ok(reports)
}

/// A scenario's report before anything was measured (an error until a round says otherwise).
pub(crate) fn empty_report(scenario: &Scenario, spec: &ScenarioSpec) -> ScenarioReport {
    ScenarioReport {
        package: scenario.package.clone(),
        id: scenario.id.clone(),
        test_name: scenario.test_name.clone(),
        spec: Some(spec.clone()),
        result: None,
        resources: None,
        checks: Vec::new(),
        verdict: Verdict::Error,
        error: None,
        log: None,
        wall_secs: 0.0,
        rounds: Vec::new(),
        spec_parts: BTreeMap::new(),
        regressions: Vec::new(),
        ab: None,
    }
}

pub(crate) fn run_scenario(
    run: &PackageRun<'_>,
    scenario: &Scenario,
    scenario_dir: &Path,
    opts: &RunOptions,
    services: &mut Services<'_>,
    ui: &Ui,
) -> Result<ScenarioReport> {
    let spec = scenario
        .spec
        .clone()
        .expect("scenarios are described before they run");
    let started = Instant::now();
    let mut report = empty_report(scenario, &spec);
    ui.scenario_start(scenario, &spec, opts);

    // The service: given, already running, or started now.
    let mut svc_name = None;
    let base_url = match &opts.target_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let cfg = match service_for(run.pkg, &run.config, &spec) {
                Ok(c) => c,
                Err(e) => {
                    report.error = Some(e.to_string());
                    return Ok(finish(report, started));
                }
            };
            if let Some(first) = services.failed.get(&cfg.name) {
                report.error = Some(format!(
                    "not run: service `{}` did not start (see {first})",
                    cfg.name
                ));
                return Ok(finish(report, started));
            }
            if !services.running.contains_key(&cfg.name) {
                let exe = &run.service_exes[&cfg.name];
                let log = services.log_path(&run.pkg.name, &cfg.name);
                ui.status(
                    "Starting",
                    &format!("service `{}` ({})", cfg.name, exe.display()),
                );
                match Service::start(cfg, exe, &run.pkg.root, &log) {
                    Ok(s) => {
                        services.running.insert(cfg.name.clone(), s);
                    }
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e) => {
                        let msg = e.to_string();
                        services
                            .failed
                            .insert(cfg.name.clone(), scenario.id.clone());
                        report.error = Some(msg);
                        return Ok(finish(report, started));
                    }
                }
            }
            svc_name = Some((cfg.name.clone(), cfg.restart));
            services.running[&cfg.name].base_url()
        }
    };

    let sampler = svc_name
        .as_ref()
        .map(|(n, _)| Sampler::start(services.running[n].pid()));
    // Every round against the same service; a round that errors or kills the service ends the scenario.
    let rounds = opts.rounds.max(1);
    let mut results = Vec::new();
    let mut error = None;
    let mut died = None;
    for round in 1..=rounds {
        if round > 1 {
            if procs::interrupted() {
                drop(sampler.and_then(Sampler::finish));
                return Err(Error::Interrupted);
            }
            ui.status("Round", &format!("{round}/{rounds} of {}", scenario.id));
        }
        let outcome = match execute(
            scenario,
            &spec,
            &base_url,
            scenario_dir,
            opts,
            opts.first_round + round,
        ) {
            Ok(o) => o,
            Err(e) => {
                drop(sampler.and_then(Sampler::finish));
                return Err(e);
            }
        };
        if report.log.is_none() {
            report.log = Some(outcome.log.clone());
        }
        // Did the service survive the load?
        if let Some((name, _)) = &svc_name {
            let svc = services.running.get_mut(name).expect("started above");
            if let Some(cause) = svc.exited() {
                let tail = svc.log_tail(TAIL_LINES);
                died = Some(format!(
                    "service `{name}` died during the scenario: it {cause}; the last lines of {}:\n{tail}",
                    svc.log_path().display()
                ));
                // Dropping it reaps it; the next scenario starts a fresh one.
                services.running.remove(name);
            }
        }
        results.extend(outcome.result);
        if outcome.error.is_some() || died.is_some() {
            error = outcome.error;
            break;
        }
    }
    report.resources = sampler.and_then(Sampler::finish);
    if let Some((name, Restart::PerTest)) = &svc_name {
        if let Some(svc) = services.running.remove(name) {
            if let Err(e) = svc.stop() {
                ui.warn(&format!("stopping service `{name}`: {e}"));
            }
        }
    }

    report.checks = median_checks(&spec, &results);
    let invalid = results.iter().any(|r| r.invalid.is_some());
    report.verdict = verdict(error.is_some(), died.is_some(), invalid, &report.checks);
    report.error = match (error, died) {
        (Some(e), Some(d)) => Some(format!("{d}\n{e}")),
        (e, d) => d.or(e),
    };
    let window = |o: Option<Duration>, declared: u64| o.map_or(declared, |d| d.as_millis() as u64);
    report.spec_parts = crate::baseline::spec_parts(
        &spec,
        &run.pkg.root,
        window(opts.duration, spec.duration_ms),
        window(opts.warmup, spec.warmup_ms),
    );
    if results.len() > 1 {
        report.rounds = results
            .iter()
            .map(|r| crate::gate::RoundStats {
                iterations: r.iterations.clone(),
                requests: r.requests.clone(),
            })
            .collect();
    }
    report.result = results.into_iter().next();
    report.wall_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The SLO checks of several rounds: per SLO, the round with the median measured value (a round where it
/// could not be measured wins, so a missing value is never hidden).
pub fn median_checks(spec: &ScenarioSpec, results: &[ScenarioResult]) -> Vec<Check> {
    match results {
        [] => Vec::new(),
        [one] => check_slos(spec, one),
        _ => spec
            .slos
            .iter()
            .map(|slo| {
                let mut checks: Vec<Check> = results.iter().map(|r| check_slo(slo, r)).collect();
                if let Some(missing) = checks.iter().position(|c| c.measured.is_none()) {
                    return checks.swap_remove(missing);
                }
                checks.sort_by(|a, b| {
                    a.measured
                        .unwrap_or(0.0)
                        .total_cmp(&b.measured.unwrap_or(0.0))
                });
                let n = checks.len();
                let mut c = checks.swap_remove(n / 2);
                c.message = format!("{} (median of {n} rounds)", c.message);
                c
            })
            .collect(),
    }
}

fn finish(mut report: ScenarioReport, started: Instant) -> ScenarioReport {
    report.verdict = Verdict::Error;
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}

struct Outcome {
    result: Option<ScenarioResult>,
    /// Why nothing trustworthy was measured.
    error: Option<String>,
    log: PathBuf,
}

/// The longest a scenario may take before it is considered hung: its declared time, twice, plus a
/// request timeout and a minute for starting and writing results.
pub fn deadline(spec: &ScenarioSpec, opts: &RunOptions) -> Duration {
    let declared = match &spec.load {
        LoadModel::Ramping { stages } => stages
            .iter()
            .map(|s| s.duration_ms)
            .sum::<u64>()
            .max(spec.duration_ms),
        _ => spec.duration_ms,
    };
    let duration = opts.duration.map_or(Duration::from_millis(declared), |d| d);
    let warmup = opts.warmup.unwrap_or(Duration::from_millis(spec.warmup_ms));
    (duration + warmup) * 2 + Duration::from_millis(spec.timeout_ms) + Duration::from_secs(60)
}

/// Runs the scenario's process and reads its results. `Err` only when interrupted.
fn execute(
    scenario: &Scenario,
    spec: &ScenarioSpec,
    base_url: &str,
    dir: &Path,
    opts: &RunOptions,
    round: usize,
) -> Result<Outcome> {
    let stem = match round {
        0 | 1 => scenario.file_stem(),
        n => format!("{}.round{n}", scenario.file_stem()),
    };
    let out_path = dir.join(format!("{stem}.json"));
    let log_path = dir.join(format!("{stem}.log"));
    let mut outcome = Outcome {
        result: None,
        error: None,
        log: log_path.clone(),
    };
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => {
            outcome.error = Some(format!("could not create {}: {e}", log_path.display()));
            return Ok(outcome);
        }
    };
    let log_err = log
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", log_path.display()), e))?;
    let mut cmd = Command::new(&scenario.exe);
    cmd.args(["--exact", &scenario.test_name, "--ignored", "--nocapture"])
        .current_dir(&scenario.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    clean_env(&mut cmd);
    cmd.env(format::env::MODE, "run")
        .env(format::env::BASE_URL, base_url)
        .env(format::env::OUT, &out_path)
        .env(format::env::SCHEMA, format::SCHEMA_VERSION.to_string());
    if let Some(d) = opts.duration {
        cmd.env(format::env::DURATION_MS, d.as_millis().to_string());
    }
    if let Some(w) = opts.warmup {
        cmd.env(format::env::WARMUP_MS, w.as_millis().to_string());
    }
    let mut child = match ChildGuard::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(Error::Interrupted),
        Err(e) => {
            outcome.error = Some(format!("could not run {}: {e}", scenario.exe.display()));
            return Ok(outcome);
        }
    };
    let limit = deadline(spec, opts);
    let tail = || {
        let t = scenario_log_tail(&log_path, TAIL_LINES);
        if t.is_empty() {
            format!("(its output, {}, is empty)", log_path.display())
        } else {
            format!("the last lines of {}:\n{t}", log_path.display())
        }
    };
    match child.wait_timeout(Duration::from_millis(20), Some(limit))? {
        None => {
            let _ = child.terminate(Duration::from_secs(2));
            outcome.error = Some(format!(
                "the scenario did not finish within {:.0?} and was killed; {}",
                limit,
                tail()
            ));
            return Ok(outcome);
        }
        Some(status) if !status.success() => {
            outcome.error = Some(format!(
                "the scenario binary {}; {}",
                procs::describe_exit(status),
                tail()
            ));
            return Ok(outcome);
        }
        Some(_) => {}
    }
    match read_result(&out_path) {
        Ok(r) => outcome.result = Some(r),
        Err(ReadError::Missing) => {
            outcome.error = Some(format!(
                "the scenario exited successfully but wrote no results file ({}); was the test renamed or \
                 filtered out since it was listed, or is its perfgate-runtime too old? {}",
                out_path.display(),
                tail()
            ));
        }
        Err(ReadError::Other(e)) => outcome.error = Some(format!("{e}; {}", tail())),
    }
    if let Some(r) = &outcome.result {
        if r.iterations.count == 0 && r.invalid.is_none() {
            outcome.error = Some(format!(
                "the scenario recorded no iteration in its measured window; {}",
                tail()
            ));
        }
    }
    Ok(outcome)
}

enum ReadError {
    Missing,
    Other(String),
}

/// Reads a results file, checking the schema version first so a version mismatch is named as such
/// rather than reported as a parse error.
fn read_result(path: &Path) -> std::result::Result<ScenarioResult, ReadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => {
            return Err(ReadError::Other(format!(
                "could not read {}: {e}",
                path.display()
            )))
        }
    };
    parse_result(&text).map_err(|e| ReadError::Other(format!("{} in {}", e, path.display())))
}

pub fn parse_result(text: &str) -> std::result::Result<ScenarioResult, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the results file is not JSON ({e})"))?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(format::SCHEMA_VERSION)) {
        let theirs = value
            .get("perfgate_version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        return Err(format!(
            "the scenario wrote results schema {} (perfgate-runtime {theirs}) but this cargo-perfgate {} reads schema {}; \
             use the same version of both (`cargo install cargo-perfgate --version {theirs}` or update perfgate-runtime)",
            version.map_or("unknown".to_string(), |v| v.to_string()),
            format::PERFGATE_VERSION,
            format::SCHEMA_VERSION
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("the results file does not parse ({e})"))
}

/// The last `n` lines of a file (its last 64 KiB at most), empty when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The end of a scenario's output without libtest's own lines (`running 1 test`, `failures:`, …), with
/// the panic message kept even when a backtrace pushed it out of the last lines.
pub fn scenario_log_tail(path: &Path, n: usize) -> String {
    let all = tail_lines(path, 400);
    let lines: Vec<&str> = all.lines().filter(|l| !is_libtest_noise(l)).collect();
    let start = lines.len().saturating_sub(n);
    let mut out: Vec<&str> = Vec::new();
    if let Some(p) = lines.iter().rposition(|l| l.contains("panicked at")) {
        if p < start {
            out.extend(&lines[p..(p + 2).min(start)]);
            out.push("...");
        }
    }
    out.extend(&lines[start..]);
    out.join("\n")
}

fn is_libtest_noise(line: &str) -> bool {
    let t = line.trim();
    t.is_empty()
        || t == "failures:"
        || t == "successes:"
        || t.starts_with("running ")
        || t.starts_with("test result:")
        || t.starts_with("---- ")
        || t.starts_with(format::TEST_PREFIX)
        || t.contains(&format!("::{}", format::TEST_PREFIX)) && !t.contains(' ')
        || (t.starts_with("test ")
            && (t.ends_with(" ... ok")
                || t.ends_with(" ... FAILED")
                || t.ends_with(" ... ignored")))
}

/// `20261127-071500-<pid>` (UTC), sortable and unique per process.
pub fn run_id(now: SystemTime, pid: u32) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{pid}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (the proleptic calendar arithmetic, by eras of 400 years).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Creates `target/perfgate/<run-id>/`, never reusing an existing directory.
pub fn create_run_dir(perfgate_dir: &Path, id: &str) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(perfgate_dir)
        .map_err(|e| Error::io(format!("creating {}", perfgate_dir.display()), e))?;
    for n in 1.. {
        let name = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = perfgate_dir.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((name, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{result, spec};

    #[test]
    fn slos_of_several_rounds_use_the_median_round() {
        use perfgate_runtime::format::{Metric, Op, Slo};
        let sp = spec(vec![Slo {
            request: None,
            metric: Metric::P99,
            op: Op::Lt,
            threshold: 25.0,
        }]);
        // One noisy round above the bound does not fail a scenario whose median round is within it.
        let rounds = [result(&sp, 10.0), result(&sp, 40.0), result(&sp, 12.0)];
        let checks = median_checks(&sp, &rounds);
        assert!(checks[0].passed, "{checks:?}");
        assert_eq!(checks[0].measured, Some(12.0));
        assert!(
            checks[0].message.contains("median of 3 rounds"),
            "{checks:?}"
        );
        let rounds = [result(&sp, 30.0), result(&sp, 40.0), result(&sp, 12.0)];
        assert!(!median_checks(&sp, &rounds)[0].passed);
        assert_eq!(median_checks(&sp, &rounds[..1])[0].measured, Some(30.0));
        assert!(median_checks(&sp, &[]).is_empty());
    }

    #[test]
    fn run_ids_are_utc_timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_763_700); // 2026-11-27 07:15:00 UTC
        assert_eq!(run_id(t, 42), "20261127-071500-42");
        assert_eq!(run_id(UNIX_EPOCH, 1), "19700101-000000-1");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn run_dirs_are_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = create_run_dir(tmp.path(), "x").unwrap();
        let (b, dir) = create_run_dir(tmp.path(), "x").unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("x", "x-2"));
        assert!(dir.is_dir());
    }

    #[test]
    fn results_of_another_schema_are_named() {
        let sp = spec(vec![]);
        let mut value = serde_json::to_value(result(&sp, 10.0)).unwrap();
        assert!(parse_result(&value.to_string()).is_ok());
        value["schema_version"] = 99.into();
        value["perfgate_version"] = "0.9.0".into();
        let e = parse_result(&value.to_string()).unwrap_err();
        assert!(
            e.contains("schema 99")
                && e.contains("0.9.0")
                && e.contains(&format!("reads schema {}", format::SCHEMA_VERSION)),
            "{e}"
        );
        assert!(parse_result("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn deadlines_follow_overrides() {
        let sp = spec(vec![]);
        assert_eq!(
            deadline(&sp, &RunOptions::default()),
            Duration::from_secs(22 + 10 + 60)
        );
        let opts = RunOptions {
            duration: Some(Duration::from_secs(1)),
            warmup: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(deadline(&sp, &opts), Duration::from_secs(2 + 10 + 60));
    }

    #[test]
    fn scenario_tails_drop_libtest_lines_and_keep_the_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        let mut log = String::from(
            "\nrunning 1 test\n\nthread '__perfgate_x' panicked at tests/perf.rs:3:1:\nboom\n",
        );
        for i in 0..30 {
            log.push_str(&format!("  {i}: frame\n"));
        }
        log.push_str("test __perfgate_x ... FAILED\n\nfailures:\n\nfailures:\n    __perfgate_x\n\ntest result: FAILED. 0 passed\n");
        std::fs::write(&p, log).unwrap();
        let t = scenario_log_tail(&p, 3);
        assert_eq!(t, "thread '__perfgate_x' panicked at tests/perf.rs:3:1:\nboom\n...\n  27: frame\n  28: frame\n  29: frame");
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail_lines(&p, 2), "c\nd");
        assert_eq!(tail_lines(&tmp.path().join("none"), 2), "");
    }
}
