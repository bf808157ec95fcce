//! The load run: each scenario in its own process, one at a time, against its package's service,
//! for one or more rounds, each round with its own results file and log in the run directory.
//! `window.rs` says how long a round takes (in the run's test tier), `abort.rs` when a round stops
//! early, `rundir.rs` where its files go.

pub mod abort;
pub mod rundir;
pub mod window;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perfgate_runtime::format::{ResourceStats, ScenarioResult, ScenarioSpec};

use crate::cli::{CommonArgs, LoadArgs, Tier};
use crate::discover::build::{build_service_bin, Checkout};
use crate::discover::config::{Restart, ServiceConfig};
use crate::discover::{Discovered, PerfPackage, Scenario, Workspace};
use crate::error::{Error, Result};
use crate::files::LogPump;
use crate::gate::RoundStats;
use crate::machine::{pin, CpuPlan};
use crate::procs::{self, ChildGuard};
use crate::protocol::{self, Mode, ReadError};
use crate::results::{BuildPart, ScenarioRun};
use crate::service::contention::ContentionSampler;
use crate::service::pool::{service_for, Services};
use crate::service::sample::ResourceSampler;
use crate::shard::{now_ms, ShardPlan};
use crate::slo::{self, Evidence, TrendInput, Verdict};
use crate::text::{describe_duration, describe_load, describe_secs, format_utc};
use crate::ui::{progress, Ui, CYAN, GREEN, RED, YELLOW};
use abort::{Abort, Watch};
use window::{spec_parts, TierPlan, Window};

/// Lines of a log quoted under an error.
pub const TAIL_LINES: usize = 15;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub target_url: Option<String>,
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    /// `--ca-cert` and `--max-body-memory`, passed to every scenario binary.
    pub ca_cert: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
    /// Rounds per scenario (0 is taken as 1): the regression gate compares rounds, not single runs.
    pub rounds: usize,
    /// `rounds` is perfgate's default, not the user's `--rounds`: a tier that sets its own replaces it.
    pub rounds_default: bool,
    /// The test tier (how each package's scenarios are windowed is in its [`PreparedPackage`]).
    pub tier: Tier,
    /// A baseline comparison follows the runs, so a scenario's own line cannot say "pass" yet.
    pub gate_follows: bool,
    /// Numbering of this call's rounds starts after this many (`--ab` runs one round per call, and
    /// each must keep its own results file and log).
    pub first_round: usize,
    /// A shard's run (`--shard`): its share of the load, each round at its planned start, and no SLO
    /// checks (the merge checks them on all shards together).
    pub shard: Option<ShardPlan>,
}

impl RunOptions {
    /// A scenario's window under these options, in its package's tier.
    pub fn window(&self, run: &PreparedPackage<'_>, spec: &ScenarioSpec) -> Window {
        Window::of(spec, &run.tier, self.duration, self.warmup)
    }

    /// The rounds of a package's scenarios: `--rounds`, else the tier's, else perfgate's default.
    pub fn rounds_of(&self, run: &PreparedPackage<'_>) -> usize {
        match (self.rounds_default, run.tier.config.rounds) {
            (true, Some(n)) => n as usize,
            _ => self.rounds,
        }
        .max(1)
    }

    /// One round against services perfgate starts (the paired modes run a round per call).
    pub fn one_round(load: &LoadArgs) -> RunOptions {
        RunOptions {
            gate_follows: true,
            duration: load.duration,
            warmup: load.warmup,
            ca_cert: load.ca_cert.clone(),
            max_body_bytes: load.max_body_memory,
            rounds: 1,
            tier: load.tier.unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// The target directory's run lock, held while this run measures: two runs at once would each measure
/// under the other's load. Waits for it (saying so), or with `no_wait` fails.
pub fn lock_runs(ws: &Workspace, no_wait: bool, ui: &Ui) -> Result<std::fs::File> {
    use std::io::Write as _;
    let path = ws.perfgate_dir().join("run.lock");
    let holder = || {
        std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map_or(String::new(), |pid| format!(" (pid {pid})"))
    };
    let mut file = crate::files::lock_exclusive(&path, !no_wait, || {
        ui.status(
            "Waiting",
            &format!(
                "for another `cargo perfgate`{} measuring in {} (--no-wait fails instead)",
                holder(),
                ws.perfgate_dir().display()
            ),
        )
    })?
    .ok_or_else(|| {
        Error::Busy(format!(
            "another `cargo perfgate`{} is measuring in {}: two runs at once would each measure under \
             the other's load. Wait for it, or drop --no-wait to wait automatically",
            holder(),
            ws.perfgate_dir().display()
        ))
    })?;
    // Who holds it, for the message of a run that waits (the lock itself is the flock).
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// A `--target-url` perfgate may send load to: http(s), and on this machine unless `allow_remote`.
pub fn check_target_url(url: &str, allow_remote: bool) -> Result<()> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(Error::Usage(format!(
            "--target-url `{url}` must be an http:// or https:// URL"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(Error::Usage(format!("--target-url `{url}` has no host")));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err(Error::Usage(format!(
            "--target-url `{url}` is not on this machine: perfgate sends load to loopback \
             (127.0.0.1, ::1, localhost) unless told otherwise. If `{host}` is a service you may \
             load, add --allow-remote"
        )));
    }
    Ok(())
}

/// A package ready to run: its scenarios (described) and its services' executables.
#[derive(Clone)]
pub struct PreparedPackage<'a> {
    pub pkg: &'a PerfPackage,
    pub scenarios: Vec<Scenario>,
    /// Built executables by service name (empty with `--target-url`).
    pub service_exes: BTreeMap<String, PathBuf>,
    /// How the run's tier windows this package's scenarios.
    pub tier: TierPlan,
}

impl PreparedPackage<'_> {
    /// The services its scenarios run against.
    pub fn services(&self) -> Vec<&ServiceConfig> {
        self.service_exes
            .keys()
            .filter_map(|n| self.pkg.config.services.get(n))
            .collect()
    }
}

/// The line that says a scenario starts, and its live progress bar.
pub fn announce_start(ui: &Ui, s: &Scenario, spec: &ScenarioSpec, window: Window, rounds: usize) {
    if ui.quiet {
        return;
    }
    let tier = match window.tier {
        Tier::Smoke => String::new(),
        t => format!(", {t} tier"),
    };
    ui.styled(
        CYAN,
        "Running",
        &format!(
            "{} ({}, {}{tier})",
            s.id,
            describe_load(&spec.load),
            describe_duration(&window.applied(spec))
        ),
    );
    if progress::enabled(ui.quiet) {
        progress::begin(&s.id, &s.file_stem(), window.load_time(), rounds);
    }
}

/// One line per finished scenario. With a baseline comparison still to come, a scenario whose
/// SLOs held is only "measured": the gate may fail it, and the table gives the final verdict.
pub fn announce_done(ui: &Ui, r: &ScenarioRun, gate_follows: bool) {
    progress::end();
    let (style, word) = match r.verdict {
        Verdict::Pass if gate_follows => (GREEN, "measured"),
        Verdict::Pass => (GREEN, r.verdict.as_str()),
        Verdict::Invalid => (YELLOW, r.verdict.as_str()),
        Verdict::Fail | Verdict::Error => (RED, r.verdict.as_str()),
    };
    ui.styled(style, word, &format!("{} in {:.1}s", r.id, r.wall_secs));
}

/// Runs every scenario of every package; the reports come back in order. Only an interruption (or an
/// I/O failure of the run directory) stops the run: a scenario's failure is in its report.
pub fn run_all(
    runs: &[PreparedPackage<'_>],
    run_dir: &Path,
    opts: &RunOptions,
    ui: &Ui,
) -> Result<Vec<ScenarioRun>> {
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
            announce_done(ui, &report, opts.gate_follows);
            reports.push(report);
        }
        services.stop_all(&run.pkg.name, ui);
    }
    Ok(reports)
}

/// A scenario's report before anything was measured (an error until a round says otherwise).
pub fn empty_report(scenario: &Scenario, spec: &ScenarioSpec) -> ScenarioRun {
    ScenarioRun {
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
        contention: Vec::new(),
        cost: None,
        cost_error: None,
        trends: Vec::new(),
        generator: None,
        shards: Vec::new(),
    }
}

/// `--cost-only`: a report per scenario with no load run, for the cost pass to fill in.
pub fn cost_only_reports(runs: &[PreparedPackage<'_>], opts: &RunOptions) -> Vec<ScenarioRun> {
    runs.iter()
        .flat_map(|run| {
            run.scenarios
                .iter()
                .map(move |s| cost_only_report(run, s, opts))
        })
        .collect()
}

/// A scenario's report when only the cost pass measures it (`--cost-only`): nothing failed yet.
pub fn cost_only_report(
    run: &PreparedPackage<'_>,
    scenario: &Scenario,
    opts: &RunOptions,
) -> ScenarioRun {
    let spec = scenario
        .spec
        .clone()
        .expect("scenarios are described before they run");
    ScenarioRun {
        verdict: Verdict::Pass,
        spec_parts: spec_parts(&spec, run.pkg, opts.window(run, &spec)),
        ..empty_report(scenario, &spec)
    }
}

pub fn run_scenario(
    run: &PreparedPackage<'_>,
    scenario: &Scenario,
    scenario_dir: &Path,
    opts: &RunOptions,
    services: &mut Services<'_>,
    ui: &Ui,
) -> Result<ScenarioRun> {
    let spec = scenario
        .spec
        .clone()
        .expect("scenarios are described before they run");
    let started = Instant::now();
    let mut report = empty_report(scenario, &spec);
    let window = opts.window(run, &spec);
    let rounds = opts.rounds_of(run);
    announce_start(ui, scenario, &spec, window, rounds);

    // The service: given, already running, or started now.
    let mut svc_name = None;
    let base_url = match &opts.target_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let cfg = match service_for(run.pkg, &spec) {
                Ok(c) => c,
                Err(e) => {
                    report.error = Some(e.to_string());
                    return Ok(finish(report, started));
                }
            };
            let exe = &run.service_exes[&cfg.name];
            match services.ensure(run.pkg, cfg, exe, &scenario.id, ui)? {
                Ok(svc) => {
                    svc_name = Some((cfg.name.clone(), cfg.restart));
                    svc.base_url()
                }
                Err(why) => {
                    report.error = Some(why);
                    return Ok(finish(report, started));
                }
            }
        }
    };

    let sampler = svc_name
        .as_ref()
        .and_then(|(n, _)| services.get_mut(n))
        .map(|svc| ResourceSampler::start(svc.pid()));
    // Every round against the same service; a round that errors, is stopped early or kills the
    // service ends the scenario.
    let mut results = Vec::new();
    let mut contention = Vec::new();
    let mut error = None;
    let mut died = None;
    let service_pid = svc_name
        .as_ref()
        .and_then(|(n, _)| services.get_mut(n))
        .map(|svc| svc.pid());
    // The stop, its Unix time (ms), and when that round's measured window began.
    let mut aborted: Option<(Abort, u64, u64)> = None;
    let mut watched_from = None;
    for round in 1..=rounds {
        if round > 1 {
            if procs::interrupted() {
                drop(sampler.and_then(ResourceSampler::finish));
                return Err(Error::Interrupted);
            }
            ui.status("Round", &format!("{round}/{rounds} of {}", scenario.id));
        }
        let machine = ContentionSampler::start(service_pid);
        let watch = Watch::new(&spec, window, &run.tier, rounds, 0);
        let outcome = match execute(
            scenario,
            &spec,
            &base_url,
            scenario_dir,
            (window, watch, sampler.as_ref()),
            opts,
            opts.first_round + round,
        ) {
            Ok(o) => o,
            Err(e) => {
                drop(sampler.and_then(ResourceSampler::finish));
                return Err(e);
            }
        };
        let machine = machine.finish();
        if report.log.is_none() {
            report.log = Some(outcome.log.clone());
            report.generator = outcome.generator.clone();
        }
        watched_from = watched_from.or(Some(outcome.measured_from_ms));
        // Did the service survive the load?
        if let Some((name, _)) = &svc_name {
            let svc = services.get_mut(name).expect("started above");
            if let Some(cause) = svc.exited() {
                let tail = svc.log_tail(TAIL_LINES);
                died = Some(format!(
                    "service `{name}` died during the scenario: it {cause}; the last lines of {}:\n{tail}",
                    svc.log_path().display()
                ));
                // Dropping it reaps it; the next scenario starts a fresh one.
                services.remove(name);
            }
        }
        if outcome.result.is_some() {
            contention.push(machine);
        }
        results.extend(outcome.result);
        if let Some((stop, at)) = outcome.aborted {
            aborted = Some((stop, at, outcome.measured_from_ms));
            break;
        }
        if outcome.error.is_some() || died.is_some() {
            error = outcome.error;
            break;
        }
    }
    report.resources = sampler.and_then(ResourceSampler::finish);
    if let Some((name, Restart::PerTest)) = &svc_name {
        if let Some(svc) = services.remove(name) {
            if let Err(e) = svc.stop() {
                ui.warn(&format!("stopping service `{name}`: {e}"));
            }
        }
    }

    if opts.shard.is_none() {
        report.checks = slo::median_checks(&spec, &results);
        // Over the rounds measured, or up to the moment a round was stopped.
        let measured = match (&aborted, watched_from) {
            (Some((_, at, _)), Some(from)) => Some((from, *at)),
            _ => slo::measured_span(&results),
        };
        report.trends = slo::trend_checks(
            &spec,
            &TrendInput {
                resources: report.resources.as_ref(),
                unsampled: "--target-url: perfgate does not see the service's process",
                measured,
                rounds: &results,
                always: window.tier == Tier::Soak,
                confidence: crate::gate::trend::CONFIDENCE,
            },
        );
        if let Some((Abort { trend: Some(t), .. }, _, _)) = &aborted {
            // The look that stopped the round decided at a stricter level than the final check: it
            // stands even if the final fit (over the same points) were to say less.
            if let Some(c) = report
                .trends
                .iter_mut()
                .find(|c| c.trend.metric == t.trend.metric)
            {
                if c.outcome != crate::gate::Outcome::Fail {
                    *c = t.clone();
                }
            } else {
                report.trends.push(t.clone());
            }
        }
    }
    report.verdict = slo::verdict(&Evidence {
        error: error.is_some(),
        service_died: died.is_some(),
        aborted: aborted.is_some(),
        invalid: results.iter().any(|r| r.invalid.is_some()),
        checks: &report.checks,
        trends: &report.trends,
        regressions: &[],
    });
    let stopped = aborted.map(|(a, at, from)| {
        format!(
            "stopped early, {} into a measured window of {}: {}",
            describe_secs(at.saturating_sub(from) as f64 / 1000.0),
            describe_secs(window.duration_ms as f64 / 1000.0),
            a.reason
        )
    });
    report.error = match (error, died) {
        (Some(e), Some(d)) => Some(format!("{d}\n{e}")),
        (e, d) => d.or(e),
    }
    .or(stopped);
    report.spec_parts = spec_parts(&spec, run.pkg, window);
    if results.len() > 1 {
        report.rounds = results.iter().map(RoundStats::from).collect();
    }
    if contention.iter().any(Option::is_some) {
        report.contention = contention;
    }
    report.result = results.into_iter().next();
    report.wall_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn finish(mut report: ScenarioRun, started: Instant) -> ScenarioRun {
    report.verdict = Verdict::Error;
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}

struct RoundOutcome {
    result: Option<ScenarioResult>,
    /// Why nothing trustworthy was measured.
    error: Option<String>,
    /// Stopped early: why, and when (Unix ms).
    aborted: Option<(Abort, u64)>,
    log: PathBuf,
    /// The scenario process itself (the load generator) over the round.
    generator: Option<ResourceStats>,
    /// When the measured window began (Unix ms): from the results, else estimated.
    measured_from_ms: u64,
}

/// How often a running round is looked at for a reason to stop it.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Runs the scenario's process and reads its results, watching it for a reason to stop early.
/// `Err` only when interrupted.
fn execute(
    scenario: &Scenario,
    spec: &ScenarioSpec,
    base_url: &str,
    dir: &Path,
    (window, mut watch, service): (Window, Watch<'_>, Option<&ResourceSampler>),
    opts: &RunOptions,
    round: usize,
) -> Result<RoundOutcome> {
    let stem = match round {
        0 | 1 => scenario.file_stem(),
        n => format!("{}.round{n}", scenario.file_stem()),
    };
    let out_path = dir.join(format!("{stem}.json"));
    let log_path = dir.join(format!("{stem}.log"));
    let mut outcome = RoundOutcome {
        result: None,
        error: None,
        aborted: None,
        log: log_path.clone(),
        generator: None,
        measured_from_ms: 0,
    };
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => {
            outcome.error = Some(format!("could not create {}: {e}", log_path.display()));
            return Ok(outcome);
        }
    };
    let shard = match &opts.shard {
        None => None,
        Some(plan) => {
            let Some(at) = plan.start_of(&scenario.id, round - opts.first_round) else {
                outcome.error = Some(format!("round {round} has no planned start"));
                return Ok(outcome);
            };
            let now = now_ms();
            if now > at + window.warmup_ms {
                outcome.error = Some(format!(
                    "shard {}: round {round} was due to start at {}, {:.1} s ago, more than its {:.1} s \
                     warm-up: the shard was not ready in time (the previous round overran, or the \
                     start time was too close)",
                    plan.shard,
                    format_utc(at),
                    (now - at) as f64 / 1000.0,
                    window.warmup_ms as f64 / 1000.0
                ));
                return Ok(outcome);
            }
            Some((plan.shard, at))
        }
    };
    let (duration, warmup) = window.overrides(spec);
    let mode = Mode::Run {
        base_url,
        duration,
        warmup,
        ca_cert: opts.ca_cert.as_deref(),
        max_body_bytes: opts.max_body_bytes,
        shard,
    };
    let mut cmd = protocol::scenario_command(
        &scenario.exe,
        &scenario.cwd,
        &scenario.test_name,
        &out_path,
        mode,
    );
    LogPump::pipe(&mut cmd);
    if let Some(cpus) = CpuPlan::current().generator() {
        pin(&mut cmd, cpus);
    }
    let mut child = match ChildGuard::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(Error::Interrupted),
        Err(e) => {
            outcome.error = Some(format!("could not run {}: {e}", scenario.exe.display()));
            return Ok(outcome);
        }
    };
    let pump = LogPump::start(child.child_mut(), &log).map_err(|e| {
        Error::io(
            format!("copying the output of {}", scenario.exe.display()),
            e,
        )
    })?;
    let wait = shard.map_or(0, |(_, at)| at.saturating_sub(now_ms()));
    // About when the measured window starts (the results say exactly, later).
    outcome.measured_from_ms = now_ms() + wait + window.warmup_ms;
    watch.measured_from_ms = outcome.measured_from_ms;
    let generator = ResourceSampler::start(child.id());
    let limit = window::deadline(spec, window) + Duration::from_millis(wait);
    let tail = || {
        // Its last lines may still be in the pipe.
        pump.drain(Duration::from_secs(1));
        let t = protocol::scenario_log_tail(&log_path, TAIL_LINES);
        if t.is_empty() {
            format!("(its output, {}, is empty)", log_path.display())
        } else {
            format!("the last lines of {}:\n{t}", log_path.display())
        }
    };
    let progress_file = progress::progress_file(&out_path);
    let mut progress = progress::ProgressTail::default();
    let spawned = Instant::now();
    let exited = loop {
        if let Some(status) = child.wait_timeout(Duration::from_millis(20), Some(WATCH_EVERY))? {
            break Some(status);
        }
        if spawned.elapsed() >= limit {
            break None;
        }
        let seconds = progress.poll(&progress_file);
        let trace = service.map(|s| {
            let (timeseries, started_unix_ms) = s.snapshot();
            ResourceStats {
                max_fds: timeseries.iter().map(|p| p.fds as u64).max().unwrap_or(0),
                timeseries,
                started_unix_ms,
                ..Default::default()
            }
        });
        let now = now_ms();
        if let Some(stop) = watch.check(seconds, trace.as_ref(), now) {
            let _ = child.terminate(Duration::from_secs(2));
            outcome.generator = generator.finish();
            outcome.aborted = Some((stop, now));
            return Ok(outcome);
        }
    };
    outcome.generator = generator.finish();
    match exited {
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
    match protocol::read_result(&out_path) {
        Ok(r) => {
            outcome.measured_from_ms = r.started_unix_ms;
            outcome.result = Some(r);
        }
        Err(ReadError::Missing) => {
            outcome.error = Some(format!(
                "the scenario exited successfully but wrote no results file ({}); was the test renamed or \
                 filtered out since it was listed, or is its perfgate-runtime too old? {}",
                out_path.display(),
                tail()
            ));
        }
        Err(ReadError::Invalid(e)) => outcome.error = Some(format!("{e}; {}", tail())),
    }
    if let (Some(r), Some((shard, _))) = (&outcome.result, shard) {
        if r.shard != Some(shard) {
            outcome.error = Some(format!(
                "the scenario's results are not shard {shard}'s: is its perfgate-runtime ({}) older than \
                 this cargo-perfgate ({})?",
                r.perfgate_version,
                perfgate_runtime::format::PERFGATE_VERSION
            ));
            outcome.result = None;
        }
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

/// The packages of a run ready to load: their scenarios and their services built (none with
/// `--target-url`). Every scenario's service is resolved before anything is built, so a bad
/// declaration is said before a long build. With `share`, a service binary cargo already built with
/// the scenarios (release profile) is used as it is: one build, where a build of its own would
/// compile again every crate whose features the dev-dependencies change. Returns the run's build
/// parts (the scenarios' build included) for the summary line.
pub fn prepare<'a>(
    common: &CommonArgs,
    load: &LoadArgs,
    found: &'a Discovered,
    share: bool,
    ui: &Ui,
) -> Result<(Vec<PreparedPackage<'a>>, Vec<BuildPart>)> {
    let mut alone_secs = 0.0;
    let (mut alone, mut shared) = (0, 0);
    let mut runs = Vec::new();
    let tier = load.tier.unwrap_or_default();
    let checkout = Checkout::new(found.root(), found.ws.meta.target_directory.as_std_path());
    for pkg in &found.ws.packages {
        let mut plan = TierPlan::resolve(tier, &found.ws.config, &pkg.config);
        if load.no_abort {
            plan.config.abort = Some(false);
        }
        let (scenarios, skipped): (Vec<Scenario>, Vec<Scenario>) = found
            .scenarios
            .iter()
            .filter(|s| s.package == pkg.name)
            .cloned()
            .partition(|s| plan.runs(s.spec.as_ref().expect("described")));
        for s in &skipped {
            let only = &s.spec.as_ref().expect("described").tiers.only;
            ui.status(
                "Skipping",
                &format!(
                    "{} (`tier = [{}]`: not in the {tier} tier)",
                    s.id,
                    only.join(", ")
                ),
            );
        }
        if scenarios.is_empty() {
            continue;
        }
        let mut service_exes = BTreeMap::new();
        if load.target_url.is_none() {
            // Every scenario must have a service to run against; building only the ones used.
            let mut needed = BTreeMap::new();
            for s in &scenarios {
                let cfg = service_for(pkg, s.spec.as_ref().expect("described"))?;
                needed.insert(cfg.name.clone(), cfg.bin.clone());
            }
            for (name, bin) in needed {
                let built = found.service_bins.get(&(pkg.name.clone(), bin.clone()));
                if let (true, Some(exe)) = (share, built) {
                    shared += 1;
                    service_exes.insert(name, exe.clone());
                    continue;
                }
                ui.status(
                    "Building",
                    &format!("service `{name}` (bin `{bin}` of {}, release)", pkg.name),
                );
                let t = Instant::now();
                service_exes.insert(name, build_service_bin(common, &checkout, pkg, &bin)?);
                alone_secs += t.elapsed().as_secs_f64();
                alone += 1;
            }
        }
        runs.push(PreparedPackage {
            pkg,
            scenarios,
            service_exes,
            tier: plan,
        });
    }
    // The run's header says where the service and the generator run (the noise they make for each
    // other depends on it).
    ui.status("CPUs", &CpuPlan::current().describe());

    if runs.is_empty() && !found.scenarios.is_empty() {
        ui.warn(&format!(
            "no selected scenario runs in the {tier} tier: each declares `tier = [...]` without it \
             (`cargo perfgate list` shows the plan of every tier)"
        ));
    }
    let part = |part: &str, secs: f64| BuildPart {
        part: part.to_string(),
        secs,
    };
    let mut parts = vec![part(
        if shared > 0 && alone == 0 {
            "scenarios and service"
        } else {
            "scenarios"
        },
        found.build_secs,
    )];
    if alone > 0 {
        parts.push(part(
            if alone == 1 { "service" } else { "services" },
            alone_secs,
        ));
    }
    Ok((runs, parts))
}
