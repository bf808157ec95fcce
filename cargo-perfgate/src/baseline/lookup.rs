//! Finding each package's baseline file at the merge-base (before anything is built, so a git problem
//! costs nothing) and applying the file gate to a finished run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::baseline::{git, BaselineFile, DEFAULT_PATH};
use crate::cli::{GateArgs, Tier};
use crate::discover::{PerfPackage, Workspace};
use crate::error::Result;
use crate::gate::cost::{self, CostBase, CostTolerance};
use crate::gate::file::{judge, GateSummary};
use crate::gate::{Decision, GateFlags};
use crate::machine::Fingerprint;
use crate::results::{self, ScenarioRun};
use crate::ui::Ui;

/// The baseline files of a run: which packages each one serves and what was found at the merge-base.
#[derive(Debug)]
pub struct BaselineGroup {
    /// Absolute path in the working tree.
    pub path: PathBuf,
    pub packages: Vec<String>,
    /// None when not in a git repository and no `--baseline-file` was given.
    pub lookup: Option<git::Lookup>,
    pub file: Option<BaselineFile>,
}

/// What was looked up for a run: where the baseline comes from (resolved once: `--ab` measures the
/// same commit), and each baseline file's group of packages.
#[derive(Debug, Default)]
pub struct Baselines {
    /// None outside a git repository without `--baseline-file`.
    pub source: Option<git::Source>,
    pub groups: Vec<BaselineGroup>,
    /// The tier whose baseline files these are.
    pub tier: Tier,
}

impl Baselines {
    /// Whether any baseline file was found.
    pub fn any_found(&self) -> bool {
        self.groups.iter().any(|g| g.file.is_some())
    }

    /// Whether any baseline file holds latency rounds (a file of cost figures only does not).
    pub fn any_rounds(&self) -> bool {
        self.groups
            .iter()
            .filter_map(|g| g.file.as_ref())
            .any(|f| f.rounds.values().any(|r| !r.is_empty()))
    }

    /// The file that serves `package`, if one was found.
    pub fn file_for(&self, package: &str) -> Option<&BaselineFile> {
        self.groups
            .iter()
            .find(|g| g.packages.iter().any(|p| p == package))
            .and_then(|g| g.file.as_ref())
    }

    /// Whether the baseline holds cost figures for scenario `id` (`package::name`).
    pub fn has_cost(&self, id: &str) -> bool {
        let package = id.split("::").next().unwrap_or_default();
        self.file_for(package)
            .is_some_and(|f| f.cost_of(id).is_some())
    }
}

/// The baseline path of each package in a tier, relative to the workspace root: the tier's own
/// `baseline` (package table, then workspace table); else `baseline` in `[package.metadata.perfgate]`,
/// else in `[workspace.metadata.perfgate]`, else `perfgate.baseline.toml` — as is for the smoke
/// tier, with the tier's name before the extension for the others (`perfgate.baseline.nightly.toml`),
/// since a measurement of one tier is never compared with another's.
pub fn baseline_paths(
    ws: &Workspace,
    packages: &[PerfPackage],
    tier: Tier,
) -> BTreeMap<PathBuf, Vec<String>> {
    let mut out: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for pkg in packages {
        let own = |tiers: &BTreeMap<Tier, crate::discover::config::TierConfig>| {
            tiers.get(&tier).and_then(|t| t.baseline.clone())
        };
        let rel = own(&pkg.config.tiers)
            .or_else(|| own(&ws.config.tiers))
            .unwrap_or_else(|| {
                let base = pkg
                    .config
                    .baseline
                    .clone()
                    .or_else(|| ws.config.baseline.clone())
                    .unwrap_or_else(|| DEFAULT_PATH.to_string());
                tier_file(&base, tier)
            });
        out.entry(ws.root().join(rel))
            .or_default()
            .push(pkg.name.clone());
    }
    out
}

/// `perfgate.baseline.toml` in the smoke tier, `perfgate.baseline.nightly.toml` in the nightly one.
pub fn tier_file(path: &str, tier: Tier) -> String {
    if tier == Tier::Smoke {
        return path.to_string();
    }
    let name_at = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_at..].rfind('.') {
        Some(dot) if dot > 0 => {
            let dot = name_at + dot;
            format!("{}.{tier}{}", &path[..dot], &path[dot..])
        }
        _ => format!("{path}.{tier}"),
    }
}

/// Finds and reads every baseline of the run before anything is built, so a git problem is said at once.
pub fn lookup_baselines(ws: &Workspace, args: &GateArgs, tier: Tier, ui: &Ui) -> Result<Baselines> {
    let root = ws.root();
    let repo = git::open(root);
    let source = git::source(
        repo.as_ref(),
        root,
        args.baseline.baseline_file.as_deref(),
        args.baseline.baseline_rev.as_deref(),
        args.baseline.base.as_deref(),
        |k| std::env::var(k).ok(),
    )?;
    let mut groups = Vec::new();
    for (path, pkgs) in baseline_paths(ws, &ws.packages, tier) {
        let mut group = BaselineGroup {
            path: path.clone(),
            packages: pkgs,
            lookup: None,
            file: None,
        };
        if let Some(src) = &source {
            let lookup = git::read(repo.as_ref(), src, &path)?;
            if let Some(text) = &lookup.text {
                group.file = Some(BaselineFile::parse(text, &lookup.origin)?);
            }
            let what = if group.file.is_some() { "" } else { "none at " };
            ui.status("Baseline", &format!("{what}{}", lookup.origin));
            group.lookup = Some(lookup);
        }
        groups.push(group);
    }
    Ok(Baselines {
        source,
        groups,
        tier,
    })
}

/// The gate over a finished run: decisions attached to the scenarios, one summary for all files.
pub fn apply_baselines(
    baselines: &Baselines,
    reports: &mut [ScenarioRun],
    machine: &Fingerprint,
    workspace_root: &Path,
    flags: GateFlags,
) -> GateSummary {
    let mut total = GateSummary {
        found: true,
        same_machine: true,
        ..Default::default()
    };
    let mut origins = Vec::new();
    for g in &baselines.groups {
        let in_group = |r: &ScenarioRun| g.packages.contains(&r.package);
        let (origin, commit) = match &g.lookup {
            Some(l) => (l.origin.clone(), l.commit.clone()),
            None => (g.path.display().to_string(), None),
        };
        origins.push(origin.clone());
        let Some(file) = &g.file else {
            total.found = false;
            let why = match &g.lookup {
                None => git::not_a_repo_message(workspace_root),
                Some(l) => format!(
                    "no baseline file at {}: the regression gate was skipped, SLOs were checked. Record one on \
                     the base branch with `cargo perfgate record{}` and commit {}",
                    l.origin,
                    match baselines.tier {
                        Tier::Smoke => String::new(),
                        t => format!(" --tier {t}"),
                    },
                    g.path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ),
            };
            total.warnings.push(why);
            total.commit = total.commit.or(commit);
            continue;
        };
        let base = file.measurements(&origin);
        let mine: Vec<ScenarioRun> = reports.iter().filter(|r| in_group(r)).cloned().collect();
        let head = results::measurements(&mine, machine, "this run");
        let (mut decisions, s) = judge(&base, &head, flags);
        for r in reports.iter_mut().filter(|r| in_group(r)) {
            let cost = cost_checks(file, &origin, r, machine);
            total.count(&cost);
            decisions.entry(r.id.clone()).or_default().extend(cost);
        }
        results::attach(reports, decisions, in_group);
        total.commit = total.commit.or(commit);
        total.same_machine &= s.same_machine;
        total.fails += s.fails;
        total.inconclusive += s.inconclusive;
        total.not_comparable += s.not_comparable;
        total.warnings.extend(s.warnings);
        total.contended.extend(s.contended);
    }
    total.baseline = Some(origins.join("; "));
    total
}

/// The cost checks of a measured scenario against the file's recorded figures (none when the cost
/// pass did not run for it); the functions that changed most go with its figures.
fn cost_checks(
    file: &BaselineFile,
    origin: &str,
    r: &mut ScenarioRun,
    machine: &Fingerprint,
) -> Vec<Decision> {
    let Some(head) = r.cost.as_mut() else {
        return Vec::new();
    };
    let recorded = file.cost_of(&r.id);
    let base = recorded.map(|c| CostBase {
        figures: c.figures(file.cost_functions.get(&r.id)),
        requests: c.request_figures(),
        per_request: c.per_request,
        spec_parts: &c.spec_parts,
        toolchain: &c.toolchain,
    });
    let tol = CostTolerance::of(r.spec.as_ref(), file.cost_floors(&r.id));
    let (decisions, attribution) = cost::judge(
        &r.id,
        origin,
        base.as_ref(),
        head,
        &machine.toolchain(),
        tol,
    );
    head.attribution = attribution;
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_but_smoke_has_its_own_file_beside_the_configured_one() {
        assert_eq!(
            tier_file("perfgate.baseline.toml", Tier::Smoke),
            "perfgate.baseline.toml"
        );
        assert_eq!(
            tier_file("perfgate.baseline.toml", Tier::Nightly),
            "perfgate.baseline.nightly.toml"
        );
        assert_eq!(
            tier_file("perf/base.toml", Tier::Soak),
            "perf/base.soak.toml"
        );
        assert_eq!(
            tier_file("perf.d/baseline", Tier::Soak),
            "perf.d/baseline.soak"
        );
        assert_eq!(tier_file(".baseline", Tier::Soak), ".baseline.soak");
    }
}
