//! The scenarios of a package: which tests of its binaries are scenarios, and what each one declares
//! (its `describe` output).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use perfgate_runtime::format::{self, ScenarioSpec};

use crate::discover::build::TestBinary;
use crate::discover::workspace::PerfPackage;
use crate::error::{Error, Result};
use crate::protocol::{self, Mode, ReadError};

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

/// Lists the scenarios of the given test binaries. `binaries` belong to `pkg`.
pub fn list_scenarios(
    pkg: &PerfPackage,
    binaries: &[TestBinary],
    verbose: bool,
) -> Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for bin in binaries {
        let mut cmd = protocol::list_command(&bin.exe, &pkg.root);
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
            return Err(Error::Discovery(crate::secret::redact(&format!(
                "listing the tests of {} failed ({}):\n{}",
                bin.exe.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))));
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
    let mut cmd = protocol::scenario_command(
        &scenario.exe,
        &scenario.cwd,
        &scenario.test_name,
        &out_path,
        Mode::Describe,
    );
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
    let spec = protocol::read_spec(&out_path);
    let _ = std::fs::remove_file(&out_path);
    let fail = |cause: String| {
        Error::Discovery(crate::secret::redact(&format!(
            "could not read the spec of scenario {}: {cause}\n{}{}",
            scenario.id,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    };
    if !output.status.success() {
        return Err(fail(format!(
            "`{} --exact {}` exited with {}",
            scenario.exe.display(),
            scenario.test_name,
            output.status
        )));
    }
    spec.map_err(|e| match e {
        ReadError::Missing => fail("it wrote no spec file".into()),
        ReadError::Invalid(m) => fail(m),
    })
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
