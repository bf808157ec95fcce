//! Same-machine A/B (`cargo perfgate --ab`) and its A/A twin (`cargo perfgate calibrate`).
//!
//! The merge-base is checked out as a linked worktree under `target/perfgate/ab/`, its service built
//! with a target directory of its own (`target/perfgate/ab-target`, so neither build evicts the other),
//! and both services are started on their own ports. HEAD's scenario binaries then drive them in
//! rounds, one service under load at a time, in ABBA order: pair 1 is (base, head), pair 2 (head, base),
//! and so on, so a drift of the machine (a neighbour, thermal state) hits both sides alike and the order
//! of a pair cancels out over two pairs. After each scheduled look the paired gate decides
//! (`gate::sequential`); sampling stops when every check is decided, a check fails, or the scenario's
//! share of the budget is spent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perfgate_runtime::format::{LoadModel, ScenarioResult, ScenarioSpec};

use std::time::SystemTime;

use crate::baseline::BaselineFile;
use crate::check::{verdict, Verdict};
use crate::cli::{CalibrateArgs, CommonArgs, RunArgs};
use crate::compare::{BaselineGroup, GateSummary};
use crate::discover::{PerfPackage, Scenario};
use crate::error::{Error, Result};
use crate::gate::sequential::NoiseFloor;
use crate::gate::sequential::{self, Look, Plan, Stop};
use crate::gate::{Decision, GateOptions, Outcome, RoundStats, ScenarioPair};
use crate::git;
use crate::procs;
use crate::report::{AbRounds, ScenarioReport};
use crate::report::{Fingerprint, RunReport};
use crate::run::{self, PackageRun, RunOptions, Services};
use crate::service::AbSetting;
use crate::ui::Ui;
use crate::worktree::BaseCheckout;
use crate::Discovered;

/// Time the whole `--ab` load may take unless `--budget` says otherwise.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(300);

/// Pairs before the first look unless `--rounds` says otherwise: fewer cannot decide anything at the
/// per-look level (a paired t with 5 degrees of freedom), more waste time on clear cases.
pub const DEFAULT_MIN_PAIRS: usize = 6;

/// Pairs per scenario at most, whatever the budget: beyond this the round-to-round drift, not the
/// sample size, limits what can be resolved.
pub const MAX_PAIRS: usize = 100;

/// What one side of the comparison is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Base,
    Head,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Base => "base",
            Side::Head => "head",
        }
    }
}

/// How the paired rounds of a run are sampled.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// The load of the whole run (both sides, every scenario) may take this long.
    pub budget: Duration,
    /// Pairs before the first look.
    pub min_pairs: usize,
    /// Exactly this many pairs, no looks (calibration).
    pub fixed_pairs: Option<usize>,
    /// Family-wise false-alarm rate of the run, split evenly over its scenarios.
    pub alpha: f64,
    /// `cargo perfgate calibrate`'s floors for this machine, by scenario id.
    pub floors: BTreeMap<String, sequential::NoiseFloor>,
}

/// A scenario measured on both sides.
pub struct Paired {
    /// HEAD's side, as a plain run reports it, with `ab` and `regressions` filled in.
    pub report: ScenarioReport,
    /// The look schedule it was sampled under (for calibration's floor).
    pub plan: Option<Plan>,
}

/// The time a round of this scenario likely takes before any was measured: its window plus process
/// start and results (about half a second on a small machine).
fn round_estimate(spec: &ScenarioSpec, opts: &RunOptions) -> Duration {
    let declared = match &spec.load {
        LoadModel::Ramping { stages } => stages.iter().map(|s| s.duration_ms).sum::<u64>(),
        _ => spec.duration_ms,
    };
    let duration = opts
        .duration
        .unwrap_or(Duration::from_millis(declared.max(spec.duration_ms)));
    let warmup = opts.warmup.unwrap_or(Duration::from_millis(spec.warmup_ms));
    duration + warmup + Duration::from_millis(500)
}

/// Runs every scenario of `head` (and the same scenario of `base`, by position) in paired rounds.
/// `head` and `base` hold the same packages in the same order; their scenarios are HEAD's (the
/// binaries that drive the load), their services each side's own.
pub fn run_paired(
    head: &[PackageRun<'_>],
    base: &[PackageRun<'_>],
    run_dir: &Path,
    opts: &RunOptions,
    sampling: &Sampling,
    base_commit: &str,
    ui: &Ui,
) -> Result<Vec<Paired>> {
    let started = Instant::now();
    let total: usize = head.iter().map(|r| r.scenarios.len()).sum();
    let alpha_scenario = sampling.alpha / total.max(1) as f64;
    let head_dir = run_dir.join("scenarios").join("head");
    let base_dir = run_dir.join("scenarios").join("base");
    let base_logs = run_dir.join("base");
    for d in [&head_dir, &base_dir, &base_logs] {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let mut out = Vec::new();
    let mut done = 0usize;
    for (h, b) in head.iter().zip(base) {
        let mut head_services = Services::new(run_dir);
        let mut base_services = Services::new(&base_logs);
        for scenario in &h.scenarios {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            // The scenario's share of what is left: unused time of an early-decided scenario goes to
            // the later ones.
            let left = sampling.budget.saturating_sub(started.elapsed());
            let share = left / (total - done).max(1) as u32;
            let sides = SideRuns {
                head: (h, &mut head_services, &head_dir),
                base: (b, &mut base_services, &base_dir),
            };
            let paired = run_one(
                scenario,
                sides,
                opts,
                sampling,
                share,
                alpha_scenario,
                base_commit,
                ui,
            )?;
            ui.scenario_done(&paired.report, false);
            out.push(paired);
            done += 1;
        }
        head_services.stop_all(&h.pkg.name, ui);
        base_services.stop_all(&b.pkg.name, ui);
    }
    Ok(out)
}

type SideRun<'r, 'a, 's> = (&'r PackageRun<'a>, &'r mut Services<'s>, &'r Path);

struct SideRuns<'r, 'a, 's> {
    head: SideRun<'r, 'a, 's>,
    base: SideRun<'r, 'a, 's>,
}

/// One side's rounds of a scenario.
#[derive(Default)]
struct Rounds {
    results: Vec<ScenarioResult>,
    /// The first round's report (log, resources): what the scenario's row shows.
    first: Option<ScenarioReport>,
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    scenario: &Scenario,
    sides: SideRuns<'_, '_, '_>,
    opts: &RunOptions,
    sampling: &Sampling,
    share: Duration,
    alpha_scenario: f64,
    base_commit: &str,
    ui: &Ui,
) -> Result<Paired> {
    let spec = scenario
        .spec
        .clone()
        .expect("scenarios are described before they run");
    let started = Instant::now();
    ui.scenario_start(scenario, &spec, opts);
    let estimate = round_estimate(&spec, opts);
    let (plan, max_pairs) = match sampling.fixed_pairs {
        Some(n) => (None, n),
        None => {
            let affordable = (share.as_secs_f64() / (2.0 * estimate.as_secs_f64())) as usize;
            let max_pairs = affordable.clamp(sampling.min_pairs, MAX_PAIRS);
            (
                Some(sequential::plan(
                    sampling.min_pairs,
                    max_pairs,
                    alpha_scenario,
                )),
                max_pairs,
            )
        }
    };
    let consts = Consts {
        tolerance: spec.regression_pct / 100.0,
        compare_throughput: matches!(spec.load, LoadModel::Closed { .. }),
    };
    let quiet = Ui {
        quiet: true,
        verbose: ui.verbose,
    };
    let mut head = Rounds::default();
    let mut base = Rounds::default();
    let mut failure: Option<(Side, ScenarioReport)> = None;
    let mut last: Option<Look> = None;
    let stopped;
    let mut pairs = 0usize;
    loop {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        let elapsed = started.elapsed();
        if pairs >= max_pairs {
            // Only calibration gets here (a plan stops at its last look).
            stopped = format!("{pairs} A/A pairs were run");
            break;
        }
        // Another pair would overrun the scenario's share of the budget (a pair's time as measured).
        if let Some(plan) = &plan {
            if pairs >= sampling.min_pairs && elapsed + elapsed / pairs as u32 > share {
                let l = match last.take() {
                    Some(l) if l.pairs == pairs => l,
                    // One last look at what there is, with the alpha the plan had left for the looks
                    // that will not happen.
                    _ => last_look(plan, pairs, &scenario.id, &head, &base, &consts, sampling).1,
                };
                stopped = sequential::describe_stop(Stop::Budget, &l, sampling.budget);
                last = Some(l);
                break;
            }
        }
        let order = if pairs % 2 == 0 {
            [Side::Base, Side::Head]
        } else {
            [Side::Head, Side::Base]
        };
        ui.status(
            "Pair",
            &format!(
                "{} of {} ({} then {})",
                pairs + 1,
                scenario.id,
                order[0].name(),
                order[1].name()
            ),
        );
        for side in order {
            let (run, services, dir) = match side {
                Side::Head => (sides.head.0, &mut *sides.head.1, sides.head.2),
                Side::Base => (sides.base.0, &mut *sides.base.1, sides.base.2),
            };
            let round_opts = RunOptions {
                rounds: 1,
                first_round: pairs,
                gate_follows: true,
                ..opts.clone()
            };
            let r = run::run_scenario(run, scenario, dir, &round_opts, services, &quiet)?;
            let rounds = match side {
                Side::Head => &mut head,
                Side::Base => &mut base,
            };
            // An error, an invalid round, or a service that died under the load (a Fail with an
            // error) ends the scenario: its rounds cannot be paired as measured.
            let broken =
                matches!(r.verdict, Verdict::Error | Verdict::Invalid) || r.error.is_some();
            match (&r.result, broken) {
                (None, _) | (_, true) => {
                    failure = Some((side, r));
                    break;
                }
                (Some(result), false) => {
                    rounds.results.push(result.clone());
                    if rounds.first.is_none() {
                        rounds.first = Some(r);
                    }
                }
            }
        }
        if failure.is_some() {
            stopped = "a round could not be measured".to_string();
            break;
        }
        pairs += 1;
        let Some(plan) = &plan else { continue };
        if let Some(k) = plan.look_at(pairs) {
            let l = look(&scenario.id, &head, &base, &consts, plan, k, sampling);
            let per_pair = started.elapsed() / pairs as u32;
            let spent = started.elapsed() + per_pair > share;
            let mut stop = sequential::should_stop(&l.decisions, pairs, plan, spent);
            let mut l = l;
            if stop == Some(Stop::Budget) {
                // This look is the last: decide it with all the alpha the later looks would have had.
                let (cut, last) =
                    last_look(plan, pairs, &scenario.id, &head, &base, &consts, sampling);
                l = last;
                stop = match sequential::should_stop(&l.decisions, pairs, &cut, true) {
                    Some(Stop::MaxPairs) => Some(Stop::Budget),
                    other => other,
                };
            }
            if let Some(stop) = stop {
                stopped = sequential::describe_stop(stop, &l, sampling.budget);
                last = Some(l);
                break;
            }
            ui.status(
                "Look",
                &format!(
                    "{} after {pairs} pairs: {} of {} checks decided",
                    scenario.id,
                    l.decisions
                        .iter()
                        .filter(|d| d.outcome != Outcome::Inconclusive)
                        .count(),
                    l.decisions.len()
                ),
            );
            last = Some(l);
        }
    }
    let decisions = last.map(|l| l.decisions).unwrap_or_default();
    Ok(Paired {
        report: assemble(
            scenario,
            &spec,
            head,
            base,
            failure,
            decisions,
            AbRounds {
                base_commit: base_commit.to_string(),
                pairs,
                base_rounds: Vec::new(),
                stopped,
                secs: started.elapsed().as_secs_f64(),
            },
            &sides.head.0.pkg.root,
            opts,
        ),
        plan,
    })
}

fn to_rounds(results: &[ScenarioResult]) -> Vec<RoundStats> {
    results
        .iter()
        .map(|r| RoundStats {
            iterations: r.iterations.clone(),
            requests: r.requests.clone(),
        })
        .collect()
}

/// The look at `pairs` when the budget ends it: the plan cut there, every bit of alpha it had left
/// for later looks spent on this one.
fn last_look(
    plan: &Plan,
    pairs: usize,
    id: &str,
    head: &Rounds,
    base: &Rounds,
    consts: &Consts,
    sampling: &Sampling,
) -> (Plan, Look) {
    let cut = plan.ending_at(pairs);
    let l = look(id, head, base, consts, &cut, cut.looks.len() - 1, sampling);
    (cut, l)
}

/// What the checks of a scenario are held to.
struct Consts {
    tolerance: f64,
    compare_throughput: bool,
}

fn look(
    id: &str,
    head: &Rounds,
    base: &Rounds,
    consts: &Consts,
    plan: &Plan,
    k: usize,
    sampling: &Sampling,
) -> Look {
    let current = to_rounds(&head.results);
    let baseline = to_rounds(&base.results);
    let pair = ScenarioPair {
        scenario: id,
        tolerance: consts.tolerance,
        compare_throughput: consts.compare_throughput,
        baseline: &baseline,
        current: &current,
    };
    sequential::decide_look(
        &pair,
        &GateOptions::default(),
        plan,
        k,
        sampling.floors.get(id),
    )
}

/// HEAD's side as the scenario's report, with the base side and the decisions attached.
#[allow(clippy::too_many_arguments)]
fn assemble(
    scenario: &Scenario,
    spec: &ScenarioSpec,
    head: Rounds,
    base: Rounds,
    failure: Option<(Side, ScenarioReport)>,
    decisions: Vec<Decision>,
    mut ab: AbRounds,
    head_root: &Path,
    opts: &RunOptions,
) -> ScenarioReport {
    let mut report = head
        .first
        .clone()
        .unwrap_or_else(|| run::empty_report(scenario, spec));
    report.checks = run::median_checks(spec, &head.results);
    let (errored, died, invalid) = match &failure {
        Some((_, r)) => (
            r.verdict == Verdict::Error || (r.result.is_none() && r.error.is_none()),
            r.verdict == Verdict::Fail && r.error.is_some(),
            r.verdict == Verdict::Invalid,
        ),
        None => (false, false, false),
    };
    report.verdict = verdict(errored, died, invalid, &report.checks);
    if let Some((side, r)) = failure {
        let what = match side {
            Side::Head => "HEAD's service",
            Side::Base => "the merge-base's service",
        };
        report.error = Some(match r.error {
            Some(e) => format!("against {what}: {e}"),
            None => format!("against {what}: {}", r.invalid_reason()),
        });
        if report.result.is_none() {
            report.result = r.result;
        }
        if report.log.is_none() {
            report.log = r.log;
        }
    }
    let window = |o: Option<Duration>, declared: u64| o.map_or(declared, |d| d.as_millis() as u64);
    report.spec_parts = crate::baseline::spec_parts(
        spec,
        head_root,
        window(opts.duration, spec.duration_ms),
        window(opts.warmup, spec.warmup_ms),
    );
    report.rounds = to_rounds(&head.results);
    report.result = report.result.or_else(|| head.results.first().cloned());
    ab.base_rounds = to_rounds(&base.results);
    report.wall_secs = ab.secs;
    if report.verdict == Verdict::Pass && decisions.iter().any(|d| d.outcome == Outcome::Fail) {
        report.verdict = Verdict::Fail;
    }
    report.regressions = decisions;
    report.ab = Some(ab);
    report
}

/// The merge-base's copy of a HEAD package: same name and bins, paths inside the worktree.
pub fn base_package(pkg: &PerfPackage, repo_root: &Path, worktree: &Path) -> Result<PerfPackage> {
    let rel = pkg.manifest_path.strip_prefix(repo_root).map_err(|_| {
        Error::Baseline(format!(
            "package `{}` ({}) is outside the git repository at {}, so --ab cannot find it at the merge-base",
            pkg.name,
            pkg.manifest_path.display(),
            repo_root.display()
        ))
    })?;
    let manifest_path = worktree.join(rel);
    if !manifest_path.is_file() {
        return Err(Error::Baseline(format!(
            "package `{}` does not exist at the merge-base ({} is missing there): there is nothing to compare \
             its scenarios with on this machine. Run without --ab (the SLOs are still checked), or select other \
             packages with -p",
            pkg.name,
            rel.display()
        )));
    }
    let root = manifest_path
        .parent()
        .map_or_else(|| worktree.to_path_buf(), Path::to_path_buf);
    Ok(PerfPackage {
        manifest_path,
        root,
        explicit: pkg.explicit,
        ..pkg.clone()
    })
}

/// Where the merge-base's worktrees and its target directory live.
pub fn ab_dirs(perfgate_dir: &Path) -> (PathBuf, PathBuf) {
    (perfgate_dir.join("ab"), perfgate_dir.join("ab-target"))
}

/// `5m`, `90s`, `2m30s`: how a budget is written on the command line.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// Why this run measures the merge-base on this machine, or None for the baseline file's gate.
pub(crate) fn reason(
    args: &RunArgs,
    found: &Discovered,
    baselines: &[BaselineGroup],
    runs: &[PackageRun<'_>],
) -> Option<String> {
    if args.gate.ab {
        return Some("--ab".to_string());
    }
    if args.load.target_url.is_some() || args.gate.baseline_file.is_some() {
        return None;
    }
    if let Some(r) = runs.iter().find(|r| r.config.ab == AbSetting::Always) {
        return Some(format!(
            "`ab = \"always\"` in [package.metadata.perfgate] of {}",
            r.pkg.name
        ));
    }
    let machine = Fingerprint::collect(found.meta.workspace_root.as_std_path());
    for r in runs.iter().filter(|r| r.config.ab == AbSetting::Auto) {
        // Outside git there is no merge-base to measure: the plain run says so and checks the SLOs.
        let Some(group) = baselines
            .iter()
            .find(|g| g.packages.contains(&r.pkg.name) && g.lookup.is_some())
        else {
            continue;
        };
        let auto = |why: String| Some(format!("{why} (`ab = \"auto\"` in {})", r.pkg.name));
        let Some(file) = &group.file else {
            return auto(format!(
                "no baseline file at {}",
                group
                    .lookup
                    .as_ref()
                    .map_or_else(|| group.path.display().to_string(), |l| l.origin.clone())
            ));
        };
        if !crate::baseline::same_machine(&file.machine, &machine) {
            return auto(format!(
                "the baseline was recorded on another machine ({})",
                crate::baseline::describe_machine(&file.machine)
            ));
        }
        for s in &r.scenarios {
            let spec = s.spec.as_ref().expect("described");
            let window =
                |o: Option<Duration>, declared: u64| o.map_or(declared, |d| d.as_millis() as u64);
            let parts = crate::baseline::spec_parts(
                spec,
                &r.pkg.root,
                window(args.load.duration, spec.duration_ms),
                window(args.load.warmup, spec.warmup_ms),
            );
            let hash = crate::baseline::spec_hash(&parts);
            match file.scenarios.get(&s.id) {
                None => return auto(format!("scenario {} is not in the baseline", s.id)),
                Some(b) if b.spec_hash != hash => {
                    return auto(format!("scenario {} changed since the baseline", s.id))
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// The floors `cargo perfgate calibrate` stored for this machine, from the first baseline file that
/// has them.
fn floors(baselines: &[BaselineGroup], machine: &Fingerprint) -> BTreeMap<String, NoiseFloor> {
    baselines
        .iter()
        .filter_map(|g| g.file.as_ref()?.calibration.as_ref())
        .filter(|c| crate::baseline::same_machine(&c.machine, machine))
        .flat_map(|c| c.scenarios.clone())
        .collect()
}

/// The merge-base checked out and its services built: the base side's packages and runs.
struct BaseSide {
    /// Held for the run: one `--ab` run at a time uses `target/perfgate/ab/` (its `base` link and the
    /// base target directory).
    _lock: std::fs::File,
    checkout: BaseCheckout,
    packages: Vec<PerfPackage>,
    exes: Vec<BTreeMap<String, PathBuf>>,
}

fn prepare_base(
    common: &CommonArgs,
    found: &Discovered,
    runs: &[PackageRun<'_>],
    repo: &git2::Repository,
    commit: git2::Oid,
    ui: &Ui,
) -> Result<BaseSide> {
    let perfgate_dir = crate::build::perfgate_dir(found.meta.target_directory.as_std_path());
    let (wt_parent, target) = ab_dirs(&perfgate_dir);
    for stale in crate::worktree::clean_stale(repo, &wt_parent) {
        ui.status("Removed", &format!("stale worktree {}", stale.display()));
    }
    let short = &commit.to_string()[..10];
    std::fs::create_dir_all(&wt_parent)
        .map_err(|e| Error::io(format!("creating {}", wt_parent.display()), e))?;
    let lock = lock_dir(&wt_parent, ui)?;
    ui.status(
        "Checkout",
        &format!("merge-base {short} under {}", wt_parent.display()),
    );
    let checkout = BaseCheckout::create(repo, commit, &wt_parent)?;
    let workdir = repo.workdir().ok_or_else(|| {
        Error::Baseline("--ab needs a repository with a working tree (this one is bare)".into())
    })?;
    // Paths as cargo reports them (canonical) against the repository's, which may differ by a symlink.
    let workdir = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    // Cargo names a path package's artifacts after its path: building through a link that always has
    // the same name keeps the base build incremental and `ab-target` from collecting a copy per run.
    let link = wt_parent.join("base");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(checkout.path(), &link)
        .map_err(|e| Error::io(format!("linking {}", link.display()), e))?;
    let mut packages = Vec::new();
    for r in runs {
        packages.push(base_package(r.pkg, &workdir, &link)?);
    }
    let mut exes = Vec::new();
    for (r, pkg) in runs.iter().zip(&packages) {
        let mut base_common = common.clone();
        base_common.manifest_path = Some(pkg.manifest_path.clone());
        let mut built = BTreeMap::new();
        for name in r.service_exes.keys() {
            let bin = &r.config.services[name].bin;
            ui.status(
                "Building",
                &format!(
                    "service `{name}` at the merge-base {short} (bin `{bin}`, release, {})",
                    target.display()
                ),
            );
            let exe = crate::build::build_service_bin_in(&base_common, pkg, bin, Some(&target))
                .map_err(|e| match e {
                    Error::Build(m) => Error::Build(format!("at the merge-base {short}: {m}")),
                    other => other,
                })?;
            built.insert(name.clone(), exe);
        }
        exes.push(built);
    }
    Ok(BaseSide {
        _lock: lock,
        checkout,
        packages,
        exes,
    })
}

/// Takes `<dir>/lock` (flock), waiting with a word when another `--ab` run holds it.
fn lock_dir(dir: &Path, ui: &Ui) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        ui.status(
            "Waiting",
            &format!("for another --ab run to finish ({})", path.display()),
        );
        loop {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            // SAFETY: as above.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(file)
}

/// `cargo perfgate --ab` (or `ab = "auto"`): HEAD against the merge-base, both measured here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_ab(
    common: &CommonArgs,
    args: &RunArgs,
    found: &Discovered,
    runs: &[PackageRun<'_>],
    baselines: &[BaselineGroup],
    why: &str,
    (started, started_unix_ms, mut build_secs): (Instant, u64, f64),
    ui: &Ui,
) -> Result<i32> {
    if args.load.target_url.is_some() {
        return Err(Error::Usage(
            "--ab builds and starts the merge-base's service next to HEAD's; it cannot drive a --target-url"
                .into(),
        ));
    }
    let root = found.meta.workspace_root.as_std_path();
    let repo = git::open(root).ok_or_else(|| {
        Error::Baseline(format!(
            "{} is not in a git repository: --ab measures the merge-base of HEAD and the base branch, which \
             needs git history. Run it in a git checkout",
            root.display()
        ))
    })?;
    let Some(git::Source::Commit { commit, how }) = git::source(
        Some(&repo),
        root,
        None,
        args.gate.baseline_rev.as_deref(),
        args.gate.base.as_deref(),
        |k| std::env::var(k).ok(),
    )?
    else {
        return Err(Error::Usage(
            "--ab cannot be combined with --baseline-file".into(),
        ));
    };
    let short = commit.to_string()[..10].to_string();
    ui.status(
        "A/B",
        &format!("HEAD against {short} ({how}), both measured on this machine ({why})"),
    );
    let t = Instant::now();
    let base = prepare_base(common, found, runs, &repo, commit, ui)?;
    build_secs += t.elapsed().as_secs_f64();
    let base_runs: Vec<PackageRun<'_>> = runs
        .iter()
        .zip(&base.packages)
        .zip(&base.exes)
        .map(|((r, pkg), exes)| PackageRun {
            pkg,
            config: r.config.clone(),
            scenarios: r.scenarios.clone(),
            service_exes: exes.clone(),
        })
        .collect();

    let (run_id, run_dir) = crate::new_run_dir(found)?;
    let environment = Fingerprint::collect(root);
    let sampling = Sampling {
        budget: args.gate.budget.unwrap_or(DEFAULT_BUDGET),
        min_pairs: args
            .gate
            .rounds
            .map_or(DEFAULT_MIN_PAIRS, |n| n as usize)
            .max(2),
        fixed_pairs: None,
        alpha: GateOptions::default().alpha,
        floors: floors(baselines, &environment),
    };
    let opts = RunOptions {
        gate_follows: true,
        first_round: 0,
        target_url: None,
        duration: args.load.duration,
        warmup: args.load.warmup,
        rounds: 1,
    };
    let load_started = Instant::now();
    crate::output::progress::set_scenario_dir(&run_dir.join("scenarios"));
    let paired = run_paired(
        runs,
        &base_runs,
        &run_dir,
        &opts,
        &sampling,
        &commit.to_string(),
        ui,
    );
    crate::output::progress::cleanup(&run_dir.join("scenarios"));
    // The worktree goes before the results are shown: nothing of it outlives the run.
    if let Err(e) = base.checkout.remove() {
        ui.warn(&format!("removing the merge-base's worktree: {e}"));
    }
    let perfgate_dir = crate::build::perfgate_dir(found.meta.target_directory.as_std_path());
    let _ = std::fs::remove_file(ab_dirs(&perfgate_dir).0.join("base"));
    let scenarios: Vec<ScenarioReport> = paired?.into_iter().map(|p| p.report).collect();
    let load_secs = load_started.elapsed().as_secs_f64();

    let flags = crate::compare::GateFlags {
        strict: args.gate.strict,
        allow_other_machine: args.gate.allow_other_machine,
    };
    let gate = summary(&scenarios, &short, &how, sampling.budget);
    let exit_code = crate::compare::exit_code(
        crate::check::exit_code(scenarios.iter().map(|s| s.verdict)),
        Some(&gate),
        flags,
    );
    let report = RunReport {
        schema_version: crate::report::REPORT_SCHEMA_VERSION,
        perfgate_version: perfgate_runtime::format::PERFGATE_VERSION.to_string(),
        run_id,
        started_unix_ms,
        environment,
        target_url: None,
        build_secs,
        load_secs,
        total_secs: started.elapsed().as_secs_f64(),
        scenarios,
        exit_code,
        gate: Some(gate),
    };
    crate::show_report(common, &report, &run_dir, ui)?;
    crate::emit_outputs(common, &args.outputs, found, &report, ui);
    Ok(exit_code)
}

/// The gate's summary of an A/B run: where the base side came from and the outcomes' counts.
fn summary(scenarios: &[ScenarioReport], short: &str, how: &str, budget: Duration) -> GateSummary {
    let mut g = GateSummary {
        baseline: Some(format!(
            "{short} ({how}), built and measured on this machine (--ab)"
        )),
        commit: Some(short.to_string()),
        found: true,
        same_machine: true,
        ..Default::default()
    };
    for d in scenarios.iter().flat_map(|s| &s.regressions) {
        match d.outcome {
            Outcome::Fail => g.fails += 1,
            Outcome::Inconclusive => g.inconclusive += 1,
            Outcome::NotComparable => g.not_comparable += 1,
            Outcome::Pass => {}
        }
    }
    // Sampling stops at the first regression, leaving the other checks open: no advice needed then.
    if g.inconclusive > 0 && g.fails == 0 {
        g.warnings.push(format!(
            "{} regression check{} undecided within the budget ({}); each one's note says how many pairs \
             would likely decide it (`--budget`)",
            g.inconclusive,
            if g.inconclusive == 1 { " is" } else { "s are" },
            fmt_duration(budget),
        ));
    }
    g
}

/// `cargo perfgate calibrate`: A/A pairs of the same build on both sides; the floors go to the
/// baseline file (merged, atomically), and a table says what this machine can resolve.
pub fn cmd_calibrate(common: &CommonArgs, args: &CalibrateArgs, ui: &Ui) -> Result<i32> {
    if args.load.target_url.is_some() {
        return Err(Error::Usage(
            "calibrate starts two instances of the service itself; it cannot drive a --target-url"
                .into(),
        ));
    }
    let found = crate::discover(common, args.filter.as_deref(), ui)?;
    let (runs, _) = crate::prepare_runs(common, &args.load, &found, ui)?;
    // The same build on both sides: two instances of each service, each with its own `Services`.
    let twins = runs.clone();
    let (_, run_dir) = crate::new_run_dir(&found)?;
    let budget = args.budget.unwrap_or(DEFAULT_BUDGET);
    let sampling = Sampling {
        budget: Duration::MAX,
        min_pairs: args.pairs as usize,
        fixed_pairs: Some(args.pairs as usize),
        alpha: GateOptions::default().alpha,
        floors: BTreeMap::new(),
    };
    let opts = RunOptions {
        gate_follows: true,
        first_round: 0,
        target_url: None,
        duration: args.load.duration,
        warmup: args.load.warmup,
        rounds: 1,
    };
    ui.status(
        "Calibrate",
        &format!(
            "{} A/A pairs per scenario (two instances of the same build), floors for a {} --ab budget",
            args.pairs,
            fmt_duration(budget)
        ),
    );
    crate::output::progress::set_scenario_dir(&run_dir.join("scenarios"));
    let paired = run_paired(&runs, &twins, &run_dir, &opts, &sampling, "HEAD (A/A)", ui);
    crate::output::progress::cleanup(&run_dir.join("scenarios"));
    let paired = paired?;

    let machine = Fingerprint::collect(found.meta.workspace_root.as_std_path());
    let total = paired.len().max(1);
    let alpha_scenario = GateOptions::default().alpha / total as f64;
    let mut measured: BTreeMap<String, NoiseFloor> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for p in &paired {
        let r = &p.report;
        let Some(ab) = &r.ab else { continue };
        if !matches!(r.verdict, Verdict::Pass | Verdict::Fail) || ab.pairs < 3 {
            failed.push(format!(
                "{}: {}",
                r.id,
                r.error.clone().unwrap_or_else(|| "not measured".into())
            ));
            continue;
        }
        // The pairs an --ab run of the whole selection could afford for this scenario.
        let per_pair = ab.secs / ab.pairs as f64;
        let share = budget.as_secs_f64() / total as f64;
        let in_budget = ((share / per_pair) as usize).clamp(DEFAULT_MIN_PAIRS, MAX_PAIRS);
        let plan = sequential::plan(DEFAULT_MIN_PAIRS, in_budget, alpha_scenario);
        let alpha_look = plan.alpha_final();
        let spec = r.spec.as_ref().expect("described");
        let pair = ScenarioPair {
            scenario: &r.id,
            tolerance: spec.regression_pct / 100.0,
            compare_throughput: matches!(spec.load, LoadModel::Closed { .. }),
            baseline: &ab.base_rounds,
            current: &r.rounds,
        };
        let floor = sequential::noise_floor(&pair, &GateOptions::default(), in_budget, alpha_look);
        rows.push((
            r.id.clone(),
            spec.regression_pct / 100.0,
            in_budget,
            floor.clone(),
        ));
        measured.insert(r.id.clone(), floor);
    }

    // Into each package's baseline file (or --baseline-file), keeping what this run did not measure.
    let groups: BTreeMap<PathBuf, Vec<String>> = match &args.baseline_file {
        Some(f) => [(
            f.clone(),
            found.packages.iter().map(|p| p.name.clone()).collect(),
        )]
        .into(),
        None => crate::compare::baseline_paths(&found.meta, &found.packages),
    };
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for (path, pkgs) in groups {
        let mine: BTreeMap<String, NoiseFloor> = measured
            .iter()
            .filter(|(id, _)| {
                pkgs.iter()
                    .any(|p| id.split("::").next() == Some(p.as_str()))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let old = BaselineFile::read(&path)?;
        let mut file = old.clone().unwrap_or_else(|| {
            let head = git::open(found.meta.workspace_root.as_std_path())
                .and_then(|r| git::head_commit(&r));
            BaselineFile::new(machine.clone(), head, now)
        });
        let mut scenarios = file
            .calibration
            .take()
            .filter(|c| crate::baseline::same_machine(&c.machine, &machine))
            .map(|c| c.scenarios)
            .unwrap_or_default();
        scenarios.extend(mine);
        file.calibration = Some(crate::baseline::Calibration {
            machine: machine.clone(),
            recorded_unix_ms: now,
            pairs: args.pairs as usize,
            budget_secs: budget.as_secs_f64(),
            scenarios,
        });
        file.write_atomic(&path)?;
        ui.status(
            "Calibrated",
            &format!("noise floors written to {}", path.display()),
        );
    }
    crate::print_stdout(&render_floors(&rows))?;
    if !failed.is_empty() {
        return Err(Error::Scenario(format!(
            "calibration could not measure: {}",
            failed.join("; ")
        )));
    }
    Ok(crate::error::exit::PASS)
}

/// The calibration's table: per scenario and check, the pair-to-pair noise and the smallest change an
/// `--ab` run within the budget can resolve, against the declared tolerance.
fn render_floors(rows: &[(String, f64, usize, NoiseFloor)]) -> String {
    let mut t = crate::report::new_table(false);
    t.set_header([
        "scenario",
        "check",
        "noise (sd per pair)",
        "resolves",
        "declared",
        "",
    ]);
    let mut below = 0;
    for (id, declared, in_budget, floor) in rows {
        for (key, f) in &floor.floor {
            let sd = floor.sd.get(key).copied().unwrap_or(f64::NAN);
            let note = if *f > *declared {
                below += 1;
                format!(
                    "declared below the floor: --ab holds it to {:.1}%",
                    f * 100.0
                )
            } else {
                String::new()
            };
            t.add_row(vec![
                id.clone(),
                key.clone(),
                format!("{:.1}%", sd * 100.0),
                format!("{:.1}% ({in_budget} pairs)", f * 100.0),
                format!("{:.0}%", declared * 100.0),
                note,
            ]);
        }
    }
    let mut out = format!("{t}\n");
    if below > 0 {
        out.push_str(&format!(
            "{below} check{} declare{} a tolerance below what this machine resolves within the budget; a larger \
             --budget, longer rounds (--duration) or a quieter machine would lower the floor\n",
            if below == 1 { "" } else { "s" },
            if below == 1 { "s" } else { "" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(root: &Path) -> PerfPackage {
        PerfPackage {
            name: "shop".into(),
            id: cargo_metadata::PackageId {
                repr: "path+file:///repo/shop#0.1.0".into(),
            },
            manifest_path: root.join("services/shop/Cargo.toml"),
            root: root.join("services/shop"),
            metadata: serde_json::Value::Null,
            bins: vec!["shop".into()],
            explicit: true,
            has_unlisted_tests_dir: false,
        }
    }

    #[test]
    fn a_service_that_died_on_one_side_fails_the_scenario_and_names_the_side() {
        let head_report = crate::report::tests::report().scenarios.remove(0);
        // SLOs the head's round meets: only the death can fail the scenario.
        let mut spec = head_report.spec.clone().unwrap();
        spec.slos[0].threshold = 1000.0;
        let scenario = Scenario {
            package: head_report.package.clone(),
            id: head_report.id.clone(),
            test_name: head_report.test_name.clone(),
            exe: PathBuf::from("/bin/true"),
            cwd: PathBuf::from("/"),
            target: "perf".into(),
            name: "predict".into(),
            spec: Some(spec.clone()),
        };
        let head = Rounds {
            results: vec![head_report.result.clone().unwrap()],
            first: Some(head_report.clone()),
        };
        let mut died = head_report.clone();
        died.verdict = Verdict::Fail;
        died.error =
            Some("service `predict-service` died during the scenario: it was killed".into());
        let ab = || AbRounds {
            base_commit: "1a2b3c4d5e".into(),
            pairs: 0,
            base_rounds: vec![],
            stopped: "a round could not be measured".into(),
            secs: 1.0,
        };
        let opts = RunOptions::default();
        let r = assemble(
            &scenario,
            &spec,
            head,
            Rounds::default(),
            Some((Side::Base, died)),
            vec![],
            ab(),
            Path::new("/"),
            &opts,
        );
        assert_eq!(r.verdict, Verdict::Fail);
        let err = r.error.unwrap();
        assert!(
            err.starts_with("against the merge-base's service: service `predict-service` died"),
            "{err}"
        );
        // A round without results is an error, not a failure of the service.
        let mut empty = head_report.clone();
        empty.result = None;
        empty.error = None;
        empty.verdict = Verdict::Error;
        let r = assemble(
            &scenario,
            &spec,
            Rounds::default(),
            Rounds::default(),
            Some((Side::Head, empty)),
            vec![],
            ab(),
            Path::new("/"),
            &opts,
        );
        assert_eq!(r.verdict, Verdict::Error);
    }

    #[test]
    fn budgets_print_as_written_on_the_command_line() {
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn the_base_package_lives_at_the_same_place_in_the_worktree() {
        let repo = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        let head = pkg(repo.path());
        // Not at the merge-base: said so, with what to do.
        let err = base_package(&head, repo.path(), wt.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist at the merge-base"), "{err}");
        assert!(err.contains("services/shop/Cargo.toml"), "{err}");
        std::fs::create_dir_all(wt.path().join("services/shop")).unwrap();
        std::fs::write(wt.path().join("services/shop/Cargo.toml"), "[package]\n").unwrap();
        let base = base_package(&head, repo.path(), wt.path()).unwrap();
        assert_eq!(
            base.manifest_path,
            wt.path().join("services/shop/Cargo.toml")
        );
        assert_eq!(base.root, wt.path().join("services/shop"));
        assert_eq!(base.bins, head.bins);
        // A package outside the repository cannot be found at the merge-base.
        let elsewhere = tempfile::tempdir().unwrap();
        let err = base_package(&pkg(elsewhere.path()), repo.path(), wt.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the git repository"), "{err}");
    }

    #[test]
    fn the_summary_counts_outcomes_and_advises_only_without_a_failure() {
        let mut report = crate::report::tests::report();
        let d = |outcome| Decision {
            scenario: "predict-service::predict".into(),
            request: None,
            metric: perfgate_runtime::format::Metric::P99,
            outcome,
            baseline: Some(10.0),
            current: Some(10.5),
            change: Some(0.05),
            change_low: Some(-0.01),
            change_high: Some(0.11),
            tolerance: 0.10,
            rounds_baseline: 6,
            rounds_current: 6,
            note: String::new(),
        };
        report.scenarios[0].regressions = vec![d(Outcome::Inconclusive), d(Outcome::Pass)];
        let how = "merge-base of HEAD and main";
        let g = summary(&report.scenarios, "1a2b3c4d5e", how, DEFAULT_BUDGET);
        assert_eq!((g.fails, g.inconclusive), (0, 1));
        assert_eq!(g.commit.as_deref(), Some("1a2b3c4d5e"));
        assert!(g.baseline.as_deref().unwrap().contains("(--ab)"));
        assert!(
            g.warnings[0].contains("undecided within the budget (5m)"),
            "{:?}",
            g.warnings
        );
        // Sampling stops at the first failure: the open checks need no advice then.
        report.scenarios[0].regressions.push(d(Outcome::Fail));
        let g = summary(&report.scenarios, "1a2b3c4d5e", how, DEFAULT_BUDGET);
        assert_eq!((g.fails, g.inconclusive), (1, 1));
        assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    }
}
