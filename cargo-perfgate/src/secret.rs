//! Values that must never be printed or written anywhere: perfgate's own secrets (the webhook URL of
//! `--notify` / `PERFGATE_NOTIFY_URL`) and the CI's tokens. Two guarantees:
//! - they never reach a child process: [`is_secret_var`] names the variables every child loses
//!   (cargo keeps its own registry tokens), unless a service's `pass_env` hands one over on purpose;
//! - every log tail and child output perfgate copies into a report or the terminal goes through
//!   [`redact`], which replaces the values of those variables (and of `--notify`) with `[redacted]`.

use std::sync::{Mutex, OnceLock};

/// A value that must never be printed (a webhook URL carries its token): `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Variables CI systems put their credentials in, whose names do not end in one of [`SUFFIXES`].
const CI_SECRETS: &[&str] = &[
    "PERFGATE_NOTIFY_URL",
    "CI_JOB_JWT",
    "CI_JOB_JWT_V1",
    "CI_JOB_JWT_V2",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "SYSTEM_ACCESSTOKEN",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "VAULT_ADDR_TOKEN",
];

/// Name endings that mean a credential: `GITHUB_TOKEN`, `CI_JOB_TOKEN`, `ACTIONS_RUNTIME_TOKEN`,
/// `CI_REGISTRY_PASSWORD`, `AWS_SESSION_TOKEN`, `STRIPE_API_KEY`, …
const SUFFIXES: &[&str] = &[
    "_TOKEN",
    "_PASSWORD",
    "_PASSWD",
    "_SECRET",
    "_API_KEY",
    "_APIKEY",
    "_PRIVATE_KEY",
    "_ACCESS_KEY",
    "_CREDENTIALS",
];

/// Whether a variable of this name holds a credential that no child may inherit.
pub fn is_secret_var(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    CI_SECRETS.contains(&upper.as_str())
        || upper == "GH_TOKEN"
        || upper.contains("SECRET")
        || SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// Cargo's own credentials, which the builds it runs need (private registries).
pub fn is_cargo_credential(name: &str) -> bool {
    name == "CARGO_REGISTRY_TOKEN"
        || (name.starts_with("CARGO_REGISTRIES_") && name.ends_with("_TOKEN"))
}

/// The names of this process's variables that no child gets.
pub fn secret_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| is_secret_var(k))
        .collect()
}

/// Takes the secret variables out of a child's environment, except those set on `cmd` explicitly
/// (a service's `pass_env`) and, for cargo itself, its registry tokens.
pub fn scrub(cmd: &mut std::process::Command) {
    let explicit: Vec<std::ffi::OsString> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
    let is_cargo = std::path::Path::new(cmd.get_program())
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("cargo"));
    for name in secret_vars() {
        if explicit.iter().any(|e| e == name.as_str()) || (is_cargo && is_cargo_credential(&name)) {
            continue;
        }
        cmd.env_remove(&name);
    }
}

fn values() -> &'static Mutex<Vec<String>> {
    static VALUES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let mut v: Vec<String> = std::env::vars()
            .filter(|(k, _)| is_secret_var(k))
            .map(|(_, v)| v)
            .collect();
        v.retain(|s| worth_redacting(s));
        Mutex::new(v)
    })
}

/// Short values (`1`, `true`) are not credentials and would garble every text they appear in.
fn worth_redacting(value: &str) -> bool {
    value.trim().len() >= 6
}

/// Adds a value to redact everywhere from now on (the `--notify` URL given on the command line).
pub fn register(value: &str) {
    if worth_redacting(value) {
        let mut v = values().lock().unwrap_or_else(|e| e.into_inner());
        if !v.iter().any(|x| x == value) {
            v.push(value.to_string());
        }
    }
}

/// `text` with every secret value replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let v = values().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    // Longest first, so a value that contains another is replaced whole.
    let mut sorted: Vec<&String> = v.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::from("http://hooks/T0KEN".to_string());
        assert!(!format!("{s:?}").contains("T0KEN"));
        assert_eq!(s.expose(), "http://hooks/T0KEN");
    }

    #[test]
    fn ci_credentials_are_recognised_by_name() {
        for name in [
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "ACTIONS_RUNTIME_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "CI_JOB_TOKEN",
            "CI_JOB_JWT_V2",
            "CI_REGISTRY_PASSWORD",
            "PERFGATE_NOTIFY_URL",
            "AWS_SECRET_ACCESS_KEY",
            "stripe_api_key",
            "CARGO_REGISTRY_TOKEN",
        ] {
            assert!(is_secret_var(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "RUST_LOG",
            "CI",
            "GITHUB_BASE_REF",
            "TOKENIZERS_PARALLELISM",
        ] {
            assert!(!is_secret_var(name), "{name}");
        }
        assert!(is_cargo_credential("CARGO_REGISTRIES_MY_CORP_TOKEN"));
        assert!(!is_cargo_credential("GITHUB_TOKEN"));
    }

    #[test]
    fn registered_values_are_redacted_and_short_ones_ignored() {
        register("https://hooks.example/T0KEN-abcdef");
        register("yes");
        let text = "posting to https://hooks.example/T0KEN-abcdef failed; yes";
        assert_eq!(redact(text), "posting to [redacted] failed; yes");
    }
}
