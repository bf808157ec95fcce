//! Building the scenario binaries and the services with cargo.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Artifact, Message, PackageId};

use crate::cli::CommonArgs;
use crate::discover::{cargo, PerfPackage, TestProfile};
use crate::error::{Error, Result};
use crate::procs::ChildGuard;

/// A test executable cargo built (one per test target of a package).
#[derive(Debug, Clone)]
pub struct TestBinary {
    pub package_id: PackageId,
    pub target: String,
    pub exe: PathBuf,
}

/// Runs `cmd` (a cargo command with `--message-format=json-render-diagnostics`): cargo's diagnostics go
/// through to stderr, so the user sees compile errors as usual, and the artifacts are collected from stdout.
fn run_cargo_json(
    mut cmd: Command,
    verbose: bool,
) -> Result<(Vec<Artifact>, std::process::ExitStatus)> {
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
    for msg in Message::parse_stream(BufReader::new(stdout)) {
        match msg {
            Ok(Message::CompilerArtifact(a)) => artifacts.push(a),
            Ok(_) => {}
            Err(e) => return Err(Error::io("reading cargo's output", e)),
        }
    }
    let status = child.wait(std::time::Duration::from_millis(50))?;
    Ok((artifacts, status))
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

/// `cargo test --no-run` for the packages: their test executables (`profile.test`), by package.
pub fn build_tests(
    common: &CommonArgs,
    packages: &[PerfPackage],
    profile: &TestProfile,
) -> Result<Vec<TestBinary>> {
    let mut cmd = cargo_command(common, "test");
    cmd.args(["--no-run", "--message-format=json-render-diagnostics"]);
    for p in packages {
        cmd.arg("-p").arg(&p.name);
    }
    cmd.args(profile.cargo_args());
    let (artifacts, status) = run_cargo_json(cmd, common.verbose > 0)?;
    if !status.success() {
        return Err(Error::Build(format!(
            "`cargo test --no-run` for {} failed ({status}); cargo's errors are above",
            packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(test_binaries(artifacts, packages))
}

/// The test executables among the artifacts, of the selected packages only.
pub fn test_binaries(artifacts: Vec<Artifact>, packages: &[PerfPackage]) -> Vec<TestBinary> {
    artifacts
        .into_iter()
        .filter(|a| a.profile.test && packages.iter().any(|p| p.id == a.package_id))
        .filter_map(|a| {
            Some(TestBinary {
                exe: a.executable?.into_std_path_buf(),
                target: a.target.name,
                package_id: a.package_id,
            })
        })
        .collect()
}

/// `cargo build --release -p <pkg> --bin <bin>`: the service as the user deploys it.
pub fn build_service_bin(common: &CommonArgs, pkg: &PerfPackage, bin: &str) -> Result<PathBuf> {
    build_service_bin_in(common, pkg, bin, None)
}

/// The same, with a target directory of its own when given (`--ab` builds the merge-base's service
/// in `target/perfgate/ab-target`, so the two builds never evict each other's artifacts).
pub fn build_service_bin_in(
    common: &CommonArgs,
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
    cmd.args([
        "--release",
        "--message-format=json-render-diagnostics",
        "-p",
        &pkg.name,
        "--bin",
        bin,
    ]);
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let (artifacts, status) = run_cargo_json(cmd, common.verbose > 0)?;
    if !status.success() {
        return Err(Error::Build(format!(
            "building the service binary `{bin}` of package `{}` failed ({status}); cargo's errors are above",
            pkg.name
        )));
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

/// The target directory's `perfgate/` folder, where every run gets its own directory.
pub fn perfgate_dir(target_directory: &Path) -> PathBuf {
    target_directory.join("perfgate")
}
