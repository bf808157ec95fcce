//! Finding the scenarios: which packages use perfgate, which tests of their binaries are scenarios,
//! and what each scenario declares (its `describe` output).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Metadata, MetadataCommand, Package, TargetKind};
use perfgate_runtime::format::{self, ScenarioSpec};

use crate::build::TestBinary;
use crate::cli::CommonArgs;
use crate::error::{Error, Result};

/// The crate whose presence in a package's dependencies makes it a perfgate package.
pub const RUNTIME_CRATE: &str = "perfgate-runtime";

/// The cargo executable: `$CARGO` when cargo runs us as a subcommand, so the same toolchain builds.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

pub fn metadata(common: &CommonArgs) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo()).no_deps();
    if let Some(m) = &common.manifest_path {
        cmd.manifest_path(m);
    }
    cmd.exec().map_err(|e| Error::Metadata(e.to_string()))
}

/// A workspace member that depends on perfgate-runtime.
#[derive(Debug, Clone)]
pub struct PerfPackage {
    pub name: String,
    pub id: cargo_metadata::PackageId,
    pub manifest_path: PathBuf,
    /// Where its Cargo.toml lives: the cwd of its scenario binaries, as under `cargo test`.
    pub root: PathBuf,
    /// Its `package.metadata` (the `[package.metadata.perfgate]` table is inside).
    pub metadata: serde_json::Value,
    pub bins: Vec<String>,
    /// Named with `-p`: no scenarios in it is an error, not a warning.
    pub explicit: bool,
    /// `autotests = false` is likely when it has a tests/ dir but no test target for it.
    pub has_unlisted_tests_dir: bool,
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
                chosen.push(perf_package(p, false));
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
            chosen.push(perf_package(p, true));
        }
    }
    Ok(chosen)
}

fn perf_package(p: &Package, explicit: bool) -> PerfPackage {
    let manifest_path = PathBuf::from(p.manifest_path.as_std_path());
    let root = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let tests_dir = root.join("tests");
    let has_test_target_in_tests_dir = p.targets.iter().any(|t| {
        t.kind.contains(&TargetKind::Test) && t.src_path.as_std_path().starts_with(&tests_dir)
    });
    PerfPackage {
        name: p.name.to_string(),
        id: p.id.clone(),
        metadata: p.metadata.clone(),
        bins: p
            .targets
            .iter()
            .filter(|t| t.kind.contains(&TargetKind::Bin))
            .map(|t| t.name.clone())
            .collect(),
        explicit,
        has_unlisted_tests_dir: tests_dir.is_dir() && !has_test_target_in_tests_dir,
        manifest_path,
        root,
    }
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
// The names of the perfgate scenarios in a libtest `--list --format terse --ignored` output.
/// Only names whose last segment carries the marker: a user's own ignored tests are never run.
pub fn parse_test_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim_end().strip_suffix(": test"))
        .filter(|name| {
            let last = name.rsplit("::").next().unwrap_or(name);
            last.starts_with(format::TEST_PREFIX)
        })
        .map(str::to_string)
        .collect()
}

/// One scenario: a marked test in a test binary of a package.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub package: String,
    /// The package's root: the scenario's working directory.
    pub cwd: PathBuf,
    pub exe: PathBuf,
    /// The test target (`perf` for tests/perf.rs, the lib's name for src/).
    pub target: String,
    /// The full libtest name, e.g. `tests::__perfgate_checkout`.
    pub test_name: String,
    /// The annotated fn's name.
    pub name: String,
    /// `package::name`, unique in the run (qualified by target and module when it is not).
    pub id: String,
    pub spec: Option<ScenarioSpec>,
}

impl Scenario {
    /// Stem of the scenario's files in the run directory.
    pub fn file_stem(&self) -> String {
        self.id.replace("::", "--")
    }
}

/// Clears the caller's `PERFGATE_*` variables, so only what perfgate sets reaches a scenario.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PERFGATE_") {
            cmd.env_remove(k);
        }
    }
}

/// Lists the scenarios of the given test binaries. `binaries` belong to `pkg`.
pub fn list_scenarios(
    pkg: &PerfPackage,
    binaries: &[TestBinary],
    verbose: bool,
) -> Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for bin in binaries {
        let mut cmd = Command::new(&bin.exe);
        cmd.args(["--list", "--format", "terse", "--ignored"])
            .current_dir(&pkg.root)
            .stdin(Stdio::null());
        clean_env(&mut cmd);
        if verbose {
            eprintln!(
                "     Running `{} --list --format terse --ignored`",
                bin.exe.display()
            );
        }
        let output = cmd
            .output()
            .map_err(|e| Error::io(format!("running {}", bin.exe.display()), e))?;
        if !output.status.success() {
            return Err(Error::Discovery(format!(
                "listing the tests of {} failed ({}):\n{}",
                bin.exe.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        for test_name in parse_test_list(&String::from_utf8_lossy(&output.stdout)) {
            let last = test_name.rsplit("::").next().unwrap_or(&test_name);
            let name = last
                .strip_prefix(format::TEST_PREFIX)
                .unwrap_or(last)
                .to_string();
            out.push(Scenario {
                package: pkg.name.clone(),
                cwd: pkg.root.clone(),
                exe: bin.exe.clone(),
                target: bin.target.clone(),
                id: format!("{}::{name}", pkg.name),
                name,
                test_name,
                spec: None,
            });
        }
    }
    disambiguate(&mut out);
    Ok(out)
}

/// Two scenarios with one fn name in a package (in tests/ and src/, or two modules) get the target and
/// module in their id, so their names and files stay apart.
fn disambiguate(scenarios: &mut [Scenario]) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in scenarios.iter() {
        *counts.entry(s.id.clone()).or_default() += 1;
    }
    let mut seen = BTreeSet::new();
    for s in scenarios.iter_mut() {
        if counts[&s.id] > 1 {
            let path = s
                .test_name
                .rsplit_once("::")
                .map(|(m, _)| format!("{m}::"))
                .unwrap_or_default();
            s.id = format!("{}::{}::{path}{}", s.package, s.target, s.name);
        }
        // Still equal (same target and module cannot happen in Rust, but be safe for files).
        let mut id = s.id.clone();
        let mut n = 2;
        while !seen.insert(id.clone()) {
            id = format!("{}#{n}", s.id);
            n += 1;
        }
        s.id = id;
    }
}

/// Runs a scenario binary in describe mode and reads the spec it declares.
pub fn describe(scenario: &Scenario, tmp: &Path, verbose: bool) -> Result<ScenarioSpec> {
    let out_path = tmp.join(format!("{}.spec.json", scenario.file_stem()));
    let mut cmd = Command::new(&scenario.exe);
    cmd.args(["--exact", &scenario.test_name, "--ignored", "--nocapture"])
        .current_dir(&scenario.cwd)
        .stdin(Stdio::null());
    clean_env(&mut cmd);
    cmd.env(format::env::MODE, "describe")
        .env(format::env::OUT, &out_path)
        .env(format::env::SCHEMA, format::SCHEMA_VERSION.to_string());
    if verbose {
        eprintln!(
            "  Describing {} (`{} --exact {}`)",
            scenario.id,
            scenario.exe.display(),
            scenario.test_name
        );
    }
    let output = cmd
        .output()
        .map_err(|e| Error::io(format!("running {}", scenario.exe.display()), e))?;
    let text = std::fs::read_to_string(&out_path);
    let _ = std::fs::remove_file(&out_path);
    let fail = |cause: String| {
        Error::Discovery(format!(
            "could not read the spec of scenario {}: {cause}\n{}{}",
            scenario.id,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    };
    if !output.status.success() {
        return Err(fail(format!(
            "`{} --exact {}` exited with {}",
            scenario.exe.display(),
            scenario.test_name,
            output.status
        )));
    }
    let text = text.map_err(|e| fail(format!("it wrote no spec file ({e})")))?;
    serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "its spec does not parse ({e}); is its perfgate-runtime ({}) of another version than this cargo-perfgate ({})?",
            schema_hint(&text),
            format::PERFGATE_VERSION
        ))
    })
}

fn schema_hint(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("perfgate_version")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown version".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keeps_only_marked_tests() {
        let out = "\
tests::__perfgate_checkout: test
tests::slow_user_test: test
__perfgate_top: test
my_mod::not__perfgate_x: test
__perfgate_mod::inner: test
benches::__perfgate_bench: bench

3 tests, 1 benchmark
";
        assert_eq!(
            parse_test_list(out),
            ["tests::__perfgate_checkout", "__perfgate_top"]
        );
        assert!(parse_test_list("0 tests, 0 benchmarks\n").is_empty());
    }

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

    fn scenario(target: &str, test_name: &str) -> Scenario {
        let last = test_name.rsplit("::").next().unwrap();
        let name = last.strip_prefix(format::TEST_PREFIX).unwrap().to_string();
        Scenario {
            package: "shop".into(),
            cwd: PathBuf::new(),
            exe: PathBuf::new(),
            target: target.into(),
            test_name: test_name.into(),
            id: format!("shop::{name}"),
            name,
            spec: None,
        }
    }

    #[test]
    fn duplicate_names_are_qualified() {
        let mut s = vec![
            scenario("perf", "__perfgate_checkout"),
            scenario("shop", "tests::__perfgate_checkout"),
            scenario("perf", "__perfgate_browse"),
        ];
        disambiguate(&mut s);
        let ids: Vec<&str> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "shop::perf::checkout",
                "shop::shop::tests::checkout",
                "shop::browse"
            ]
        );
        assert_eq!(s[0].file_stem(), "shop--perf--checkout");
    }
}
