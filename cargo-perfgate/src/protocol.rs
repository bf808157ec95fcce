//! The protocol between cargo-perfgate and a scenario binary (a libtest harness whose marked tests call
//! perfgate-runtime): how one is launched to list, describe or run its scenarios, and how its files are
//! read back. Nothing passes through stdout, which libtest prints its own lines on; the binary writes
//! JSON files named by `PERFGATE_OUT`, and a schema version on both sides names a mismatch as such.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use perfgate_runtime::format::{self, ScenarioResult, ScenarioSpec};
use serde::de::DeserializeOwned;

use crate::files::tail_lines;
use crate::gate::RoundStats;

/// Clears the caller's `PERFGATE_*` variables, so only what perfgate sets reaches a scenario, and
/// the secrets no child gets.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PERFGATE_") {
            cmd.env_remove(k);
        }
    }
    crate::secret::scrub(cmd);
}

/// `<exe> --list --format terse --ignored`: every test of the binary, marked or not.
pub fn list_command(exe: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--list", "--format", "terse", "--ignored"])
        .current_dir(cwd)
        .stdin(Stdio::null());
    clean_env(&mut cmd);
    cmd
}

/// What a scenario binary is asked to do.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Write the scenario's spec; send nothing.
    Describe,
    /// Drive the service at `base_url` and write a [`ScenarioResult`]; the overrides replace the
    /// declared measured window.
    Run {
        base_url: &'a str,
        duration: Option<Duration>,
        warmup: Option<Duration>,
    },
}

/// One marked test of one scenario binary, in its own process: `<exe> --exact <name> --ignored
/// --nocapture`, in the package's directory (as under `cargo test`), writing its JSON to `out`.
pub fn scenario_command(
    exe: &Path,
    cwd: &Path,
    test_name: &str,
    out: &Path,
    mode: Mode,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test_name, "--ignored", "--nocapture"])
        .current_dir(cwd)
        .stdin(Stdio::null());
    clean_env(&mut cmd);
    cmd.env(format::env::OUT, out)
        .env(format::env::SCHEMA, format::SCHEMA_VERSION.to_string());
    match mode {
        Mode::Describe => {
            cmd.env(format::env::MODE, "describe");
        }
        Mode::Run {
            base_url,
            duration,
            warmup,
        } => {
            cmd.env(format::env::MODE, "run")
                .env(format::env::BASE_URL, base_url);
            if let Some(d) = duration {
                cmd.env(format::env::DURATION_MS, d.as_millis().to_string());
            }
            if let Some(w) = warmup {
                cmd.env(format::env::WARMUP_MS, w.as_millis().to_string());
            }
        }
    }
    cmd
}

/// Why a scenario binary's file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The binary exited without writing it (`--exact` with a name that no longer exists passes).
    #[error("no file was written")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

/// Reads a scenario's results file (schema checked first, then every number).
pub fn read_result(path: &Path) -> Result<ScenarioResult, ReadError> {
    let r: ScenarioResult = read_json(path, "results", true)?;
    RoundStats::from(&r).validate().map_err(|e| {
        ReadError::Invalid(format!(
            "the scenario wrote impossible results in {} ({e})",
            path.display()
        ))
    })?;
    Ok(r)
}

/// Reads a scenario's spec file (schema checked first).
pub fn read_spec(path: &Path) -> Result<ScenarioSpec, ReadError> {
    read_json(path, "spec", false)
}

fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    versioned: bool,
) -> Result<T, ReadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => {
            return Err(ReadError::Invalid(format!(
                "could not read {}: {e}",
                path.display()
            )))
        }
    };
    parse(&text, what, versioned).map_err(|e| match e {
        ReadError::Invalid(m) => ReadError::Invalid(format!("{m} in {}", path.display())),
        other => other,
    })
}

/// Parses a document the scenario binary wrote, checking the schema version first so that a version
/// mismatch is named as such rather than reported as a parse error. A results file carries its
/// version (`versioned`); a spec does not.
pub fn parse<T: DeserializeOwned>(text: &str, what: &str, versioned: bool) -> Result<T, ReadError> {
    let invalid = ReadError::Invalid;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the {what} file is not JSON ({e})")))?;
    let theirs = value
        .get("perfgate_version")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    let mismatch = |version: String| {
        format!(
            "the scenario wrote {what} schema {version} (perfgate-runtime {theirs}) but this cargo-perfgate {} \
             reads schema {}; use the same version of both (`cargo install cargo-perfgate --version {theirs}` \
             or update perfgate-runtime)",
            format::PERFGATE_VERSION,
            format::SCHEMA_VERSION
        )
    };
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if versioned && version != Some(u64::from(format::SCHEMA_VERSION)) {
        return Err(invalid(mismatch(
            version.map_or("unknown".into(), |v| v.to_string()),
        )));
    }
    serde_json::from_value(value).map_err(|e| {
        invalid(format!(
            "the {what} file does not parse ({e}); is its perfgate-runtime ({theirs}) of another version than \
             this cargo-perfgate ({})?",
            format::PERFGATE_VERSION
        ))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::tests::{result, spec};

    #[test]
    fn results_of_another_schema_are_named() {
        let sp = spec(vec![]);
        let mut value = serde_json::to_value(result(&sp, 10.0)).unwrap();
        assert!(parse::<ScenarioResult>(&value.to_string(), "results", true).is_ok());
        value["schema_version"] = 99.into();
        value["perfgate_version"] = "0.9.0".into();
        let e = parse::<ScenarioResult>(&value.to_string(), "results", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("schema 99")
                && e.contains("0.9.0")
                && e.contains(&format!("reads schema {}", format::SCHEMA_VERSION)),
            "{e}"
        );
        assert!(parse::<ScenarioResult>("{", "results", true)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
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
}
