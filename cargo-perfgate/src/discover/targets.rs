//! Which test targets of a package are built for its scenarios: those named on the command line
//! (`--lib`, `--test NAME`, …, as cargo spells them), else `targets = [...]` in its perfgate table,
//! else those whose sources mention `perf_test` (read, not compiled: `sources.rs`). A service's own
//! unit and integration tests can be many, slow to build, and need what a perf run does not have
//! (fixture files, databases, features); none of them is built unless it may hold a scenario.

use crate::cli::TargetArgs;
use crate::discover::config::{TargetKind, TargetRef};
use crate::discover::sources::crate_sources;
use crate::discover::workspace::{PerfPackage, TestTarget};
use crate::error::{Error, Result};
use crate::text::list_or_none;

/// The identifier whose presence in a target's sources makes it a scenario target.
pub const MARKER: &str = "perf_test";

/// Why a target is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Named on the command line or in `targets`: it must build.
    Named,
    /// Its sources mention `perf_test`: it must build.
    Found,
    /// The scan could not read all of its sources (the reason): built in case, and dropped with a
    /// warning if it does not compile.
    Unsure(String),
    /// Part of a broad selection (`--tests`, `--all-targets`, `--bins`) with no mention of
    /// `perf_test`: built as asked, dropped with a warning if it does not compile.
    Asked,
}

#[derive(Debug, Clone)]
pub struct Selected {
    pub target: TestTarget,
    pub why: Why,
}

impl Selected {
    /// A target that may fail to compile without failing the run: it is not known to hold scenarios.
    pub fn may_fail(&self) -> bool {
        matches!(self.why, Why::Unsure(_) | Why::Asked)
    }
}

/// Where the selection came from, for the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Config,
    Scan,
}

#[derive(Debug, Clone)]
pub struct Selection {
    pub targets: Vec<Selected>,
    pub source: Source,
    /// The package's other test targets, not built.
    pub skipped: Vec<TestTarget>,
}

impl Selection {
    /// What is built and why, in a few words: `test perf (its sources mention #[perf_test]; 3
    /// other targets not built: lib, bin svc, test slow)`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .targets
            .iter()
            .map(|s| match &s.why {
                Why::Unsure(why) => {
                    format!("{} (perfgate cannot tell: {why})", s.target.describe())
                }
                _ => s.target.describe(),
            })
            .collect();
        let built = if names.is_empty() {
            "no target".to_string()
        } else {
            names.join(", ")
        };
        let how = match self.source {
            Source::CommandLine => "chosen on the command line",
            Source::Config => "`targets` in [package.metadata.perfgate]",
            Source::Scan => "the targets whose sources mention #[perf_test]",
        };
        let skipped = match self.skipped.len() {
            0 => String::new(),
            n => format!(
                "; {n} other target{} not built: {}",
                if n == 1 { "" } else { "s" },
                self.skipped
                    .iter()
                    .map(TestTarget::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("{built} ({how}{skipped})")
    }
}

/// The targets to build for `pkg`'s scenarios.
pub fn select(pkg: &PerfPackage, cli: &TargetArgs) -> Result<Selection> {
    let (targets, source) = if cli.any() {
        (from_command_line(pkg, cli), Source::CommandLine)
    } else if let Some(refs) = &pkg.config.targets {
        let mut out = Vec::new();
        for r in refs {
            let target = resolve(pkg, r)?;
            if !out.iter().any(|s: &Selected| s.target == target) {
                out.push(Selected {
                    target,
                    why: Why::Named,
                });
            }
        }
        (out, Source::Config)
    } else {
        let found = pkg
            .targets
            .iter()
            .filter(|t| t.tested)
            .filter_map(|t| {
                scan(t).map(|why| Selected {
                    target: t.clone(),
                    why,
                })
            })
            .collect();
        (found, Source::Scan)
    };
    let skipped = pkg
        .targets
        .iter()
        .filter(|t| t.tested && !targets.iter().any(|s| s.target == **t))
        .cloned()
        .collect();
    Ok(Selection {
        targets,
        source,
        skipped,
    })
}

/// Whether the target can hold scenarios, from its sources: `Found`, `Unsure`, or None (it cannot).
fn scan(t: &TestTarget) -> Option<Why> {
    let sources = crate_sources(&t.src_path);
    if sources.mentions(MARKER) {
        Some(Why::Found)
    } else {
        sources.unsure.into_iter().next().map(Why::Unsure)
    }
}

fn from_command_line(pkg: &PerfPackage, cli: &TargetArgs) -> Vec<Selected> {
    let mut out: Vec<Selected> = Vec::new();
    let mut add = |t: &TestTarget, named: bool| {
        if out.iter().any(|s| s.target == *t) {
            return;
        }
        let why = if named {
            Why::Named
        } else {
            scan(t).unwrap_or(Why::Asked)
        };
        out.push(Selected {
            target: t.clone(),
            why,
        });
    };
    for t in &pkg.targets {
        let named = (cli.lib && t.kind == TargetKind::Lib)
            || (t.kind == TargetKind::Test && cli.test.contains(&t.name));
        let broad =
            cli.all_targets || (cli.tests && t.tested) || (cli.bins && t.kind == TargetKind::Bin);
        if named || broad {
            add(t, named);
        }
    }
    out
}

/// The package's target that a `targets` entry names.
fn resolve(pkg: &PerfPackage, r: &TargetRef) -> Result<TestTarget> {
    let found = pkg
        .targets
        .iter()
        .find(|t| t.kind == r.kind && r.name.as_ref().map_or(true, |n| *n == t.name));
    found.cloned().ok_or_else(|| {
        let wanted = match &r.name {
            None => "library".to_string(),
            Some(n) => format!("{} target `{n}`", r.kind.as_str()),
        };
        Error::Config {
            manifest: pkg.manifest_path.clone(),
            msg: format!(
                "`targets` names a {wanted}, which package `{}` does not have (its targets: {})",
                pkg.name,
                list_or_none(pkg.targets.iter().map(TestTarget::describe))
            ),
        }
    })
}

/// A target named on the command line that no selected package has is a mistake, said before
/// anything is built (cargo says the same of `cargo test --test nope`).
pub fn check_command_line(packages: &[PerfPackage], cli: &TargetArgs) -> Result<()> {
    let all: Vec<&TestTarget> = packages.iter().flat_map(|p| &p.targets).collect();
    let names = |kind: TargetKind| {
        list_or_none(
            all.iter()
                .filter(|t| t.kind == kind)
                .map(|t| t.name.as_str()),
        )
    };
    for name in &cli.test {
        if !all
            .iter()
            .any(|t| t.kind == TargetKind::Test && t.name == *name)
        {
            return Err(Error::Usage(format!(
                "--test {name}: no integration test of that name in {} (its tests: {})",
                package_names(packages),
                names(TargetKind::Test)
            )));
        }
    }
    if cli.lib && !all.iter().any(|t| t.kind == TargetKind::Lib) {
        return Err(Error::Usage(format!(
            "--lib: {} has no library target",
            package_names(packages)
        )));
    }
    Ok(())
}

fn package_names(packages: &[PerfPackage]) -> String {
    let v: Vec<String> = packages.iter().map(|p| format!("`{}`", p.name)).collect();
    format!("package {}", v.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn target(root: &Path, kind: TargetKind, name: &str, rel: &str, text: &str) -> TestTarget {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        TestTarget {
            kind,
            name: name.into(),
            src_path: p,
            tested: true,
        }
    }

    fn pkg(root: &Path) -> PerfPackage {
        let targets = vec![
            target(
                root,
                TargetKind::Lib,
                "svc",
                "src/lib.rs",
                "#[cfg(test)] mod tests { const F: &str = include_str!(\"../fixtures/x.json\"); }",
            ),
            target(root, TargetKind::Bin, "svc", "src/main.rs", "fn main() {}"),
            target(
                root,
                TargetKind::Test,
                "perf",
                "tests/perf.rs",
                "use perfgate_runtime::{perf_test, Ctx};\n#[perf_test(rate = 1)] async fn a(ctx: Ctx) {}",
            ),
            target(root, TargetKind::Test, "routes", "tests/routes.rs", "// not a perf_test\n#[test] fn t() {}"),
            target(root, TargetKind::Test, "gen", "tests/gen.rs", "include!(concat!(env!(\"OUT_DIR\"), \"/g.rs\"));"),
        ];
        PerfPackage {
            name: "svc".into(),
            id: cargo_metadata::PackageId {
                repr: "path+file:///svc#0.1.0".into(),
            },
            manifest_path: root.join("Cargo.toml"),
            root: root.to_path_buf(),
            config: Default::default(),
            bins: vec!["svc".into()],
            explicit: false,
            has_unlisted_tests_dir: false,
            targets,
        }
    }

    fn built(s: &Selection) -> Vec<(String, Why)> {
        s.targets
            .iter()
            .map(|t| (t.target.describe(), t.why.clone()))
            .collect()
    }

    #[test]
    fn the_scan_builds_only_targets_that_mention_perf_test_or_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = pkg(dir.path());
        let s = select(&p, &TargetArgs::default()).unwrap();
        assert_eq!(s.source, Source::Scan);
        let b = built(&s);
        assert_eq!(b[0], ("test perf".to_string(), Why::Found));
        assert_eq!(b[1].0, "test gen");
        assert!(
            matches!(&b[1].1, Why::Unsure(w) if w.contains("include!")),
            "{b:?}"
        );
        assert_eq!(b.len(), 2, "{b:?}");
        let d = s.describe();
        assert!(
            d.contains("3 other targets not built: lib, bin svc, test routes"),
            "{d}"
        );
        assert!(s.targets[1].may_fail() && !s.targets[0].may_fail());
    }

    #[test]
    fn the_command_line_and_the_config_choose_instead() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pkg(dir.path());
        let cli = TargetArgs {
            lib: true,
            ..Default::default()
        };
        let s = select(&p, &cli).unwrap();
        assert_eq!(built(&s), [("lib".to_string(), Why::Named)]);
        assert_eq!(s.targets[0].target.cargo_args(), ["--lib"]);

        let cli = TargetArgs {
            tests: true,
            test: vec!["routes".into()],
            ..Default::default()
        };
        let b = built(&select(&p, &cli).unwrap());
        assert_eq!(b.len(), 5, "{b:?}");
        // Named: must build; in a broad selection only the targets that mention perf_test must.
        assert!(b.contains(&("test routes".to_string(), Why::Named)));
        assert!(b.contains(&("test perf".to_string(), Why::Found)));
        assert!(b.contains(&("bin svc".to_string(), Why::Asked)));

        p.config.targets = Some(vec![
            TargetRef {
                kind: TargetKind::Test,
                name: Some("perf".into()),
            },
            TargetRef {
                kind: TargetKind::Lib,
                name: None,
            },
        ]);
        let s = select(&p, &TargetArgs::default()).unwrap();
        assert_eq!(s.source, Source::Config);
        assert_eq!(
            built(&s),
            [
                ("test perf".to_string(), Why::Named),
                ("lib".to_string(), Why::Named)
            ]
        );
        p.config.targets = Some(vec![TargetRef {
            kind: TargetKind::Test,
            name: Some("load".into()),
        }]);
        let e = select(&p, &TargetArgs::default()).unwrap_err().to_string();
        assert!(
            e.contains("test target `load`") && e.contains("its targets: lib, bin svc, test perf"),
            "{e}"
        );

        let cli = TargetArgs {
            test: vec!["nope".into()],
            ..Default::default()
        };
        let e = check_command_line(std::slice::from_ref(&p), &cli)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--test nope") && e.contains("perf, routes, gen"),
            "{e}"
        );
    }
}
