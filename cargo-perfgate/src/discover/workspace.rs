//! The cargo workspace, read once per run: `cargo metadata`, the members that depend on
//! perfgate-runtime, and each one's perfgate configuration.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, Package, TargetKind as CargoKind};

use crate::cli::CommonArgs;
use crate::discover::config::{PackageConfig, TargetKind, WorkspaceConfig};
use crate::error::{Error, Result};

/// The crate whose presence in a package's dependencies makes it a perfgate package.
pub const RUNTIME_CRATE: &str = "perfgate-runtime";

/// The cargo executable: `$CARGO` when cargo runs us as a subcommand, so the same toolchain builds.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// `cargo metadata --no-deps` of the workspace (`--manifest-path`, else the current directory's).
pub fn metadata(common: &CommonArgs) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo()).no_deps();
    if let Some(m) = &common.manifest_path {
        cmd.manifest_path(m);
    }
    cmd.exec().map_err(Error::Metadata)
}

/// The workspace of a run: its metadata, its own perfgate table and the selected perfgate packages
/// with theirs, every table validated.
#[derive(Debug)]
pub struct Workspace {
    pub meta: Metadata,
    pub config: WorkspaceConfig,
    pub packages: Vec<PerfPackage>,
}

impl Workspace {
    /// Reads the workspace once: `cargo metadata`, the packages selected by `-p` (else every member
    /// that depends on perfgate-runtime), and every perfgate table.
    pub fn load(common: &CommonArgs) -> Result<Workspace> {
        let meta = metadata(common)?;
        let config = WorkspaceConfig::parse(
            meta.workspace_root.join("Cargo.toml").as_std_path(),
            &meta.workspace_metadata,
        )?;
        let packages = select_packages(&meta, &common.packages)?;
        Ok(Workspace {
            meta,
            config,
            packages,
        })
    }

    pub fn root(&self) -> &Path {
        self.meta.workspace_root.as_std_path()
    }

    /// `target/perfgate/`, where every run gets its own directory.
    pub fn perfgate_dir(&self) -> PathBuf {
        perfgate_dir(self.meta.target_directory.as_std_path())
    }
}

/// The target directory's `perfgate/` folder.
pub fn perfgate_dir(target_directory: &Path) -> PathBuf {
    target_directory.join("perfgate")
}

/// A workspace member that depends on perfgate-runtime.
#[derive(Debug, Clone)]
pub struct PerfPackage {
    pub name: String,
    pub id: cargo_metadata::PackageId,
    pub manifest_path: PathBuf,
    /// Where its Cargo.toml lives: the cwd of its scenario binaries, as under `cargo test`.
    pub root: PathBuf,
    /// Its `[package.metadata.perfgate]`, validated.
    pub config: PackageConfig,
    pub bins: Vec<String>,
    /// Named with `-p`: no scenarios in it is an error, not a warning.
    pub explicit: bool,
    /// `autotests = false` is likely when it has a tests/ dir but no test target for it.
    pub has_unlisted_tests_dir: bool,
    /// The targets whose test executables can hold scenarios, in the manifest's order.
    pub targets: Vec<TestTarget>,
}

/// A target of a package that `cargo test` can build as a test executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTarget {
    pub kind: TargetKind,
    pub name: String,
    /// Its root source file.
    pub src_path: PathBuf,
    /// `cargo test` tests it by default (`test = true`: the lib, bins and tests unless turned off).
    pub tested: bool,
}

impl TestTarget {
    /// The cargo flags that select it (`cargo test --lib`, `--test perf`, …).
    pub fn cargo_args(&self) -> Vec<String> {
        match self.kind {
            TargetKind::Lib => vec!["--lib".into()],
            k => vec![format!("--{}", k.as_str()), self.name.clone()],
        }
    }

    /// `lib`, `test perf`, `bin shop`: how messages name it.
    pub fn describe(&self) -> String {
        match self.kind {
            TargetKind::Lib => "lib".into(),
            k => format!("{} {}", k.as_str(), self.name),
        }
    }

    /// Whether cargo's compiler message or artifact target is this one.
    pub fn is(&self, t: &cargo_metadata::Target) -> bool {
        t.name == self.name && kind_of(t) == Some(self.kind)
    }
}

/// The kind of test executable a cargo target builds, if any.
pub fn kind_of(t: &cargo_metadata::Target) -> Option<TargetKind> {
    t.kind.iter().find_map(|k| match k {
        CargoKind::Lib
        | CargoKind::RLib
        | CargoKind::DyLib
        | CargoKind::CDyLib
        | CargoKind::StaticLib
        | CargoKind::ProcMacro => Some(TargetKind::Lib),
        CargoKind::Bin => Some(TargetKind::Bin),
        CargoKind::Test => Some(TargetKind::Test),
        CargoKind::Example => Some(TargetKind::Example),
        CargoKind::Bench => Some(TargetKind::Bench),
        _ => None,
    })
}

/// The package's targets that can be built as test executables.
pub fn test_targets(p: &Package) -> Vec<TestTarget> {
    p.targets
        .iter()
        .filter_map(|t| {
            Some(TestTarget {
                kind: kind_of(t)?,
                name: t.name.clone(),
                src_path: t.src_path.clone().into_std_path_buf(),
                tested: t.test,
            })
        })
        .collect()
}

#[cfg(test)]
impl PerfPackage {
    /// A package `shop` at `root` with an empty configuration, for unit tests.
    pub fn at(root: &Path) -> PerfPackage {
        PerfPackage {
            name: "shop".into(),
            id: cargo_metadata::PackageId {
                repr: format!("path+file://{}#shop@0.1.0", root.display()),
            },
            manifest_path: root.join("Cargo.toml"),
            root: root.to_path_buf(),
            config: Default::default(),
            bins: vec!["shop".into()],
            explicit: true,
            has_unlisted_tests_dir: false,
            targets: Vec::new(),
        }
    }
}

pub fn depends_on_runtime(pkg: &Package) -> bool {
    pkg.dependencies.iter().any(|d| d.name == RUNTIME_CRATE)
}

/// The workspace members to run, narrowed by `-p`.
pub fn select_packages(meta: &Metadata, packages: &[String]) -> Result<Vec<PerfPackage>> {
    let members: Vec<&Package> = meta.workspace_packages();
    let mut chosen = Vec::new();
    if packages.is_empty() {
        for p in &members {
            if depends_on_runtime(p) {
                chosen.push(perf_package(p, false)?);
            }
        }
        if chosen.is_empty() {
            return Err(Error::Discovery(format!(
                "no package of the workspace at {} depends on `{RUNTIME_CRATE}`.\n\
                 Add it to the crate of your service: `cargo add --dev {RUNTIME_CRATE}`, then annotate \
                 scenarios with `#[perf_test(...)]` in tests/perf.rs.",
                meta.workspace_root
            )));
        }
        return Ok(chosen);
    }
    for spec in packages {
        let Some(p) = members.iter().find(|p| p.name == *spec) else {
            let names: Vec<&str> = members.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "package `{spec}` is not a member of the workspace (members: {})",
                names.join(", ")
            )));
        };
        if !depends_on_runtime(p) {
            return Err(Error::Discovery(format!(
                "package `{spec}` does not depend on `{RUNTIME_CRATE}`: \
                 `cargo add --dev {RUNTIME_CRATE} -p {spec}` and annotate scenarios with `#[perf_test(...)]`"
            )));
        }
        if !chosen.iter().any(|c: &PerfPackage| c.name == p.name) {
            chosen.push(perf_package(p, true)?);
        }
    }
    Ok(chosen)
}

fn perf_package(p: &Package, explicit: bool) -> Result<PerfPackage> {
    let manifest_path = PathBuf::from(p.manifest_path.as_std_path());
    let root = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let tests_dir = root.join("tests");
    let has_test_target_in_tests_dir = p.targets.iter().any(|t| {
        t.kind.contains(&CargoKind::Test) && t.src_path.as_std_path().starts_with(&tests_dir)
    });
    Ok(PerfPackage {
        name: p.name.to_string(),
        id: p.id.clone(),
        config: PackageConfig::parse(&manifest_path, &p.metadata)?,
        bins: p
            .targets
            .iter()
            .filter(|t| t.kind.contains(&CargoKind::Bin))
            .map(|t| t.name.clone())
            .collect(),
        targets: test_targets(p),
        explicit,
        has_unlisted_tests_dir: tests_dir.is_dir() && !has_test_target_in_tests_dir,
        manifest_path,
        root,
    })
}

/// The message for a package that depends on perfgate-runtime but has no scenario.
pub fn no_scenarios_message(pkg: &PerfPackage) -> String {
    let mut msg = format!(
        "package `{}` depends on `{RUNTIME_CRATE}` but has no `#[perf_test]` scenario",
        pkg.name
    );
    if pkg.has_unlisted_tests_dir {
        msg.push_str(&format!(
            ".\nIts tests/ directory is not built as a test target: with `autotests = false` in {}, \
             add an entry for tests/perf.rs:\n\n    [[test]]\n    name = \"perf\"\n    path = \"tests/perf.rs\"\n",
            pkg.manifest_path.display()
        ));
    } else {
        msg.push_str(
            " (annotate an async fn in tests/*.rs or a #[cfg(test)] module with `#[perf_test(...)]`; \
             with `autotests = false`, tests/perf.rs needs a `[[test]]` entry)",
        );
    }
    msg
}
