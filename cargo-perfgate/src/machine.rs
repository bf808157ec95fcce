//! What the numbers were measured on: the machine's fingerprint, and whether two are alike enough to
//! compare measurements.

use std::path::Path;
use std::process::Command;

use perfgate_runtime::format;
use serde::{Deserialize, Serialize};

/// What the numbers were measured on: a baseline from another machine is not comparable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Fingerprint {
    pub cpu_model: Option<String>,
    pub cores: usize,
    pub os: String,
    pub kernel: Option<String>,
    pub rustc: Option<String>,
    pub git_commit: Option<String>,
    pub perfgate_version: String,
}

impl Fingerprint {
    pub fn collect(workspace_root: &Path) -> Fingerprint {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| cpu_model(&s));
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        Fingerprint {
            cpu_model,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            rustc: command_line(Command::new(rustc).arg("-V")),
            git_commit: command_line(
                Command::new("git")
                    .args(["rev-parse", "HEAD"])
                    .current_dir(workspace_root),
            ),
            perfgate_version: format::PERFGATE_VERSION.to_string(),
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Model") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// First line of a command's stdout, None when it cannot run or fails.
fn command_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Whether two fingerprints describe the same machine for the purpose of comparing latencies: CPU model,
/// core count and OS/architecture (not the kernel, compiler, commit or perfgate version).
pub fn same_machine(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.cpu_model == b.cpu_model && a.cores == b.cores && a.os == b.os
}

pub fn describe_machine(f: &Fingerprint) -> String {
    format!(
        "{}, {} core{}, {}",
        f.cpu_model.as_deref().unwrap_or("unknown CPU"),
        f.cores,
        if f.cores == 1 { "" } else { "s" },
        f.os
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_read() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
    }
}
