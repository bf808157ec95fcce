//! Building the scenario binaries and the services with cargo.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Artifact, Message, PackageId, TargetKind as CargoKind};

use crate::cli::CommonArgs;
use crate::discover::stamp;
use crate::discover::targets::{Selected, Selection, Why};
use crate::discover::workspace::cargo;
use crate::discover::workspace::PerfPackage;
use crate::error::{Error, Result};
use crate::procs::ChildGuard;
use crate::ui::Ui;

/// A test executable cargo built (one per test target of a package).
#[derive(Debug, Clone)]
pub struct TestBinary {
    pub package_id: PackageId,
    pub target: String,
    pub exe: PathBuf,
}

/// What a cargo build said: its artifacts, the targets rustc reported errors for, and its status.
struct CargoOutput {
    artifacts: Vec<Artifact>,
    errors: Vec<(PackageId, cargo_metadata::Target)>,
    status: std::process::ExitStatus,
}

/// How every cargo build of perfgate reports: JSON on stdout, diagnostics with their rendered text.
const MESSAGE_FORMAT: &str = "--message-format=json-diagnostic-rendered-ansi";

/// Runs `cmd` (a cargo command with [`MESSAGE_FORMAT`]): the artifacts and the targets with errors are
/// collected from stdout, and each diagnostic's rendered text goes to stderr, so the user sees compile
/// errors as cargo would show them (colours stripped where stderr takes none).
fn run_cargo_json(mut cmd: Command, verbose: bool) -> Result<CargoOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if verbose {
        eprintln!("     Running `{}`", display_command(&cmd));
    }
    // Guarded: an error below (or Ctrl-C) still stops and reaps cargo.
    let mut child = ChildGuard::spawn(&mut cmd)
        .map_err(|e| Error::io(format!("running `{}`", display_command(&cmd)), e))?;
    let stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let mut artifacts = Vec::new();
    let mut errors = Vec::new();
    for msg in Message::parse_stream(BufReader::new(stdout)) {
        match msg {
            Ok(Message::CompilerArtifact(a)) => artifacts.push(a),
            Ok(Message::CompilerMessage(m)) => {
                if let Some(r) = &m.message.rendered {
                    anstream::eprint!("{r}");
                }
                if matches!(
                    m.message.level,
                    DiagnosticLevel::Error | DiagnosticLevel::Ice
                ) {
                    errors.push((m.package_id, m.target));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(Error::io("reading cargo's output", e)),
        }
    }
    let status = child.wait(std::time::Duration::from_millis(50))?;
    Ok(CargoOutput {
        artifacts,
        errors,
        status,
    })
}

pub fn display_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains([' ', '"', '\'']) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn cargo_command(common: &CommonArgs, sub: &str) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.arg(sub);
    if let Some(m) = &common.manifest_path {
        cmd.arg("--manifest-path").arg(m);
    }
    cmd.args(common.feature_flags());
    if common.quiet {
        cmd.arg("--quiet");
    } else if common.verbose > 1 {
        // -vv: cargo's own verbose output (the rustc command lines) too.
        cmd.arg("--verbose");
    }
    if let Some(c) = common.color {
        cmd.arg("--color").arg(match c {
            crate::cli::ColorWhen::Auto => "auto",
            crate::cli::ColorWhen::Always => "always",
            crate::cli::ColorWhen::Never => "never",
        });
    }
    cmd
}

/// What building a package's scenario targets gave.
#[derive(Debug, Default)]
pub struct PackageBuild {
    /// The test executables of the selected targets that compiled.
    pub binaries: Vec<TestBinary>,
    /// The package's binaries cargo built beside them (for its integration tests), by name: the
    /// service, from the same build, when the profile is the release profile.
    pub service_bins: BTreeMap<String, PathBuf>,
}

/// `cargo test --no-run -p <pkg>` of the selected targets only. A target that may fail (not known
/// to hold scenarios) and does not compile is dropped with a warning and the build is tried again
/// without it; any other failure is an error. Bounded: each retry has one target fewer.
pub fn build_tests(
    common: &CommonArgs,
    checkout: &Checkout,
    pkg: &PerfPackage,
    selection: &Selection,
    profile: &TestProfile,
    ui: &Ui,
) -> Result<PackageBuild> {
    let mut chosen: Vec<Selected> = selection.targets.clone();
    let mut cleaned = false;
    loop {
        if chosen.is_empty() {
            return Ok(PackageBuild::default());
        }
        let mut cmd = cargo_command(common, "test");
        cmd.args(["--no-run", MESSAGE_FORMAT, "-p", &pkg.name]);
        for s in &chosen {
            cmd.args(s.target.cargo_args());
        }
        cmd.args(profile.cargo_args());
        let out = run_cargo_json(cmd, common.verbose > 0)?;
        if out.status.success() {
            if this_checkouts(&out.artifacts, |a| a.profile.test, checkout, true) {
                return Ok(package_build(out.artifacts, pkg, profile, checkout));
            }
            if cleaned {
                return Err(refused());
            }
            clean(
                common,
                std::slice::from_ref(&pkg.name),
                &profile.cargo_args(),
                None,
            )?;
            cleaned = true;
            continue;
        }
        let failed: Vec<&Selected> = chosen
            .iter()
            .filter(|s| {
                out.errors
                    .iter()
                    .any(|(id, t)| *id == pkg.id && s.target.is(t))
            })
            .collect();
        let droppable = !failed.is_empty() && failed.iter().all(|s| s.may_fail());
        if !droppable {
            let what = match failed.iter().find(|s| !s.may_fail()) {
                Some(s) => format!("{} of package `{}`", s.target.describe(), pkg.name),
                None => format!("package `{}`", pkg.name),
            };
            return Err(Error::Build(format!(
                "`cargo test --no-run` of the scenarios' targets failed ({}) at {what}; cargo's errors are above",
                out.status
            )));
        }
        for s in &failed {
            ui.warn(&format!(
                "{} of package `{}` does not compile; it was built because {}, and is left out: it is not \
                 known to hold scenarios (`--test NAME`, `--lib` or `targets = [...]` in \
                 [package.metadata.perfgate] say which targets do)",
                s.target.describe(),
                pkg.name,
                match &s.why {
                    Why::Unsure(w) => format!("perfgate cannot tell ({w})"),
                    _ => "the command line asked for it".to_string(),
                }
            ));
        }
        let dropped: Vec<_> = failed.iter().map(|s| s.target.clone()).collect();
        chosen.retain(|s| !dropped.contains(&s.target));
    }
}

/// The test executables and the service binaries among a package's artifacts.
fn package_build(
    artifacts: Vec<Artifact>,
    pkg: &PerfPackage,
    profile: &TestProfile,
    checkout: &Checkout,
) -> PackageBuild {
    let mut service_bins = BTreeMap::new();
    // Built in perfgate's own profile the bins are not what the user deploys: the service is then
    // built on its own; so it is when a bin here was another checkout's.
    let is_bin = |a: &Artifact| {
        a.package_id == pkg.id && !a.profile.test && a.target.kind.contains(&CargoKind::Bin)
    };
    if *profile == TestProfile::Release && this_checkouts(&artifacts, is_bin, checkout, false) {
        for a in &artifacts {
            if a.package_id == pkg.id && !a.profile.test && a.target.kind.contains(&CargoKind::Bin)
            {
                if let Some(exe) = &a.executable {
                    service_bins.insert(a.target.name.clone(), exe.clone().into_std_path_buf());
                }
            }
        }
    }
    PackageBuild {
        binaries: test_binaries(artifacts, pkg),
        service_bins,
    }
}

/// A command with the same program, arguments, environment and directory (std's is not `Clone`).
fn clone_command(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// The checkout whose sources the binaries must come from: its workspace root and the digests of its
/// sources (the target directory left out), for its services and for its test binaries.
pub struct Checkout {
    root: PathBuf,
    service: Option<String>,
    tests: Option<String>,
}

impl Checkout {
    pub fn new(root: &Path, target_dir: &Path) -> Checkout {
        Checkout {
            root: root.to_path_buf(),
            service: stamp::digest_sources(root, target_dir, stamp::For::Service),
            tests: stamp::digest_sources(root, target_dir, stamp::For::Tests),
        }
    }
}

/// Whether the selected artifacts are this checkout's (stamping them as such); false when one was
/// built by perfgate for another checkout whose sources differ.
fn this_checkouts(
    artifacts: &[Artifact],
    keep: impl Fn(&Artifact) -> bool,
    checkout: &Checkout,
    for_tests: bool,
) -> bool {
    let sources = match for_tests {
        true => &checkout.tests,
        false => &checkout.service,
    };
    let Some(sources) = sources else {
        return true;
    };
    let mut ours = true;
    for a in artifacts.iter().filter(|a| keep(a)) {
        let Some(exe) = &a.executable else { continue };
        let exe = exe.as_std_path();
        // Compiled just now: from these sources by construction.
        let origin = if a.fresh {
            stamp::origin(exe, sources, &checkout.root)
        } else {
            stamp::Origin::Here
        };
        match origin {
            stamp::Origin::Elsewhere(other) => {
                eprintln!(
                    "warning: {} was built from another checkout of this workspace ({}) that shares \
                     the target directory; rebuilding it from {}",
                    exe.display(),
                    other.display(),
                    checkout.root.display()
                );
                ours = false;
            }
            stamp::Origin::Here | stamp::Origin::Unknown => {
                stamp::stamp(exe, sources, &checkout.root)
            }
        }
    }
    ours
}

fn refused() -> Error {
    Error::Build(
        "a binary is still not this checkout's after a rebuild: another checkout of this workspace \
         shares the target directory and builds at the same time. Build with a target directory of \
         its own (`CARGO_TARGET_DIR`)"
            .into(),
    )
}

/// `cargo clean -p <pkg>…` for the profile: what another checkout left under our names goes, so the
/// next build compiles this checkout's sources.
fn clean(
    common: &CommonArgs,
    packages: &[String],
    profile_args: &[String],
    target_dir: Option<&Path>,
) -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.arg("clean");
    if let Some(m) = &common.manifest_path {
        cmd.arg("--manifest-path").arg(m);
    }
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    cmd.args(profile_args).stdin(Stdio::null());
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let mut child = ChildGuard::spawn(&mut cmd)
        .map_err(|e| Error::io(format!("running `{}`", display_command(&cmd)), e))?;
    let status = child.wait(std::time::Duration::from_millis(50))?;
    if !status.success() {
        return Err(Error::Build(format!(
            "`{}` failed ({status})",
            display_command(&cmd)
        )));
    }
    Ok(())
}

/// The test executables among the artifacts, of the package only.
fn test_binaries(artifacts: Vec<Artifact>, pkg: &PerfPackage) -> Vec<TestBinary> {
    let mut binaries: Vec<TestBinary> = artifacts
        .into_iter()
        .filter(|a| a.profile.test && a.package_id == pkg.id)
        .filter_map(|a| {
            Some(TestBinary {
                exe: a.executable?.into_std_path_buf(),
                target: a.target.name,
                package_id: a.package_id,
            })
        })
        .collect();
    // Cargo reports artifacts as its parallel jobs finish; the scenarios' order (which the shards of
    // one load plan their common starts by) must not depend on that.
    binaries.sort_by(|a, b| (&a.target, &a.exe).cmp(&(&b.target, &b.exe)));
    binaries
}

/// `cargo build --release -p <pkg> --bin <bin>`: the service as the user deploys it.
pub fn build_service_bin(
    common: &CommonArgs,
    checkout: &Checkout,
    pkg: &PerfPackage,
    bin: &str,
) -> Result<PathBuf> {
    build_service_bin_in(common, checkout, pkg, bin, None)
}

/// The same, with a target directory of its own when given (`--ab` builds the merge-base's service
/// in `target/perfgate/ab-target`, so the two builds never evict each other's artifacts).
pub fn build_service_bin_in(
    common: &CommonArgs,
    checkout: &Checkout,
    pkg: &PerfPackage,
    bin: &str,
    target_dir: Option<&Path>,
) -> Result<PathBuf> {
    if !pkg.bins.iter().any(|b| b == bin) {
        return Err(Error::Config {
            manifest: pkg.manifest_path.clone(),
            msg: missing_bin_message(pkg, bin),
        });
    }
    let mut cmd = cargo_command(common, "build");
    cmd.args(["--release", MESSAGE_FORMAT, "-p", &pkg.name, "--bin", bin]);
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let build = |cmd: Command| -> Result<Vec<Artifact>> {
        let CargoOutput {
            artifacts, status, ..
        } = run_cargo_json(cmd, common.verbose > 0)?;
        if !status.success() {
            return Err(Error::Build(format!(
                "building the service binary `{bin}` of package `{}` failed ({status}); cargo's errors are above",
                pkg.name
            )));
        }
        Ok(artifacts)
    };
    let is_bin = |a: &Artifact| a.target.name == bin && !a.profile.test;
    let mut artifacts = build(clone_command(&cmd))?;
    if !this_checkouts(&artifacts, is_bin, checkout, false) {
        clean(
            common,
            std::slice::from_ref(&pkg.name),
            &["--release".to_string()],
            target_dir,
        )?;
        artifacts = build(cmd)?;
        if !this_checkouts(&artifacts, is_bin, checkout, false) {
            return Err(refused());
        }
    }
    // Matched by manifest path, not package id: a checkout elsewhere (the merge-base's) has other ids.
    // Only `-p <pkg> --bin <bin>` was asked for, so a single non-test bin of that name is the one even
    // when the path is spelled differently (a symlink on the way).
    let bins: Vec<Artifact> = artifacts
        .into_iter()
        .filter(|a| a.target.name == bin && !a.profile.test && a.executable.is_some())
        .collect();
    let chosen = match bins
        .iter()
        .position(|a| a.manifest_path.as_std_path() == pkg.manifest_path)
    {
        Some(i) => Some(&bins[i]),
        None if bins.len() == 1 => bins.first(),
        None => None,
    };
    chosen
        .and_then(|a| a.executable.clone())
        .map(|p| p.into_std_path_buf())
        .ok_or_else(|| Error::Build(missing_bin_message(pkg, bin)))
}

pub fn missing_bin_message(pkg: &PerfPackage, bin: &str) -> String {
    let bins = if pkg.bins.is_empty() {
        "it has no binary target".to_string()
    } else {
        format!("its binary targets: {}", pkg.bins.join(", "))
    };
    format!("the service binary `{bin}` is not a binary target of package `{}` ({bins}); set `bin` to one of them", pkg.name)
}

/// The profile that builds the scenario binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestProfile {
    Release,
    /// perfgate's own profile, defined on the command line.
    Own,
}

/// Name of perfgate's own profile. Not `perfgate`: cargo puts a profile's output in `target/<profile>/`,
/// which is where the runs' results go.
pub const OWN_PROFILE: &str = "perfgate-build";

impl TestProfile {
    /// Choose from the workspace's `[profile.release]` (the root manifest; profiles elsewhere are ignored
    /// by cargo) and the `CARGO_PROFILE_RELEASE_*` variables.
    ///
    /// Fat LTO and one codegen unit make a release build of a real service take minutes, and test
    /// targets cannot use `panic = "abort"`, so with any of those a `--release` test build recompiles
    /// every dependency a second time. Then the scenarios use an optimised profile without them; the
    /// service itself is still built with the user's release profile (what they deploy).
    pub fn choose(root_manifest: &str, env: impl Fn(&str) -> Option<String>) -> TestProfile {
        let release = root_manifest
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("profile")?.get("release")?.as_table().cloned())
            .unwrap_or_default();
        let lto = release.get("lto").map(|v| match v {
            toml::Value::Boolean(b) => *b,
            toml::Value::String(s) => s != "off" && s != "false",
            _ => true,
        });
        let lto = env("CARGO_PROFILE_RELEASE_LTO")
            .map(|s| s != "off" && s != "false")
            .or(lto);
        let cgu1 = env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS")
            .map(|s| s.trim() == "1")
            .or_else(|| {
                release
                    .get("codegen-units")
                    .and_then(|v| v.as_integer())
                    .map(|n| n == 1)
            });
        let abort = env("CARGO_PROFILE_RELEASE_PANIC")
            .or_else(|| {
                release
                    .get("panic")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .is_some_and(|p| p == "abort");
        if lto.unwrap_or(false) || cgu1.unwrap_or(false) || abort {
            TestProfile::Own
        } else {
            TestProfile::Release
        }
    }

    pub fn cargo_args(&self) -> Vec<String> {
        match self {
            TestProfile::Release => vec!["--release".into()],
            TestProfile::Own => {
                let mut v = Vec::new();
                for c in [
                    format!("profile.{OWN_PROFILE}.inherits=\"release\""),
                    format!("profile.{OWN_PROFILE}.lto=false"),
                    format!("profile.{OWN_PROFILE}.codegen-units=16"),
                    format!("profile.{OWN_PROFILE}.panic=\"unwind\""),
                ] {
                    v.push("--config".into());
                    v.push(c);
                }
                v.push("--profile".into());
                v.push(OWN_PROFILE.into());
                v
            }
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            TestProfile::Release => "release profile",
            TestProfile::Own => {
                "profile perfgate-build: release without the workspace's LTO, codegen-units = 1 or panic = abort"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_follows_the_release_profile() {
        let none = |_: &str| None;
        assert_eq!(
            TestProfile::choose("[package]\nname = \"x\"\n", none),
            TestProfile::Release
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\ndebug = true\n", none),
            TestProfile::Release
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\nlto = false\n", none),
            TestProfile::Release
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\nlto = \"off\"\n", none),
            TestProfile::Release
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\nlto = \"fat\"\n", none),
            TestProfile::Own
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\nlto = true\n", none),
            TestProfile::Own
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\ncodegen-units = 1\n", none),
            TestProfile::Own
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\ncodegen-units = 4\n", none),
            TestProfile::Release
        );
        assert_eq!(
            TestProfile::choose("[profile.release]\npanic = \"abort\"\n", none),
            TestProfile::Own
        );
        let env = |k: &str| (k == "CARGO_PROFILE_RELEASE_LTO").then(|| "off".to_string());
        assert_eq!(
            TestProfile::choose("[profile.release]\nlto = \"fat\"\n", env),
            TestProfile::Release
        );
        let args = TestProfile::Own.cargo_args();
        assert!(args.contains(&"--profile".to_string()) && args.contains(&OWN_PROFILE.to_string()));
        assert!(args.iter().any(|a| a.ends_with("panic=\"unwind\"")));
        assert_eq!(TestProfile::Release.cargo_args(), ["--release"]);
    }
}
