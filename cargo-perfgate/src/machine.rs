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
    /// `valgrind-3.19.0`, when valgrind is installed: the cost pass's figures depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valgrind: Option<String>,
    /// The C library (`glibc 2.36`): its allocator and string functions are part of every count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libc: Option<String>,
    /// The instruction-set level the CPU offers code that picks its implementation at run time
    /// (glibc's string functions, httparse's SIMD): `x86-64-v3`. AVX-512 counts as v3, since
    /// valgrind does not offer it to the programs it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_level: Option<String>,
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
            valgrind: command_line(Command::new("valgrind").arg("--version")),
            libc: libc_version(),
            cpu_level: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| cpu_level(&s, std::env::consts::ARCH)),
        }
    }
}

/// The x86-64 microarchitecture level of the first CPU's flags (`x86-64-v2`, `x86-64-v3`); the
/// architecture's name elsewhere. v4 (AVX-512) is reported as v3: valgrind hides AVX-512.
fn cpu_level(cpuinfo: &str, arch: &str) -> Option<String> {
    if arch != "x86_64" {
        return Some(arch.to_string());
    }
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))?
        .split_once(':')?
        .1
        .split_whitespace()
        .collect();
    let has = |names: &[&str]| names.iter().all(|n| flags.contains(n));
    let v2 = has(&["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"]);
    let v3 = v2
        && has(&[
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave",
        ]);
    Some(
        match (v2, v3) {
            (_, true) => "x86-64-v3",
            (true, false) => "x86-64-v2",
            _ => "x86-64",
        }
        .to_string(),
    )
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn libc_version() -> Option<String> {
    // SAFETY: gnu_get_libc_version returns a pointer to a static, NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    Some(format!("glibc {}", v.to_string_lossy()))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn libc_version() -> Option<String> {
    None
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

/// What cost figures depend on besides the code: instructions and allocations are the same on any
/// machine of one architecture with the same compiler, valgrind and C library (not the CPU model,
/// core count or kernel).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Toolchain {
    pub os: String,
    pub rustc: Option<String>,
    pub valgrind: Option<String>,
    pub libc: Option<String>,
    #[serde(default)]
    pub cpu_level: Option<String>,
}

impl Fingerprint {
    pub fn toolchain(&self) -> Toolchain {
        Toolchain {
            os: self.os.clone(),
            rustc: self.rustc.clone(),
            valgrind: self.valgrind.clone(),
            libc: self.libc.clone(),
            cpu_level: self.cpu_level.clone(),
        }
    }
}

/// Whether cost figures measured under `a` and `b` are comparable. A compiler or valgrind that
/// could not be identified on either side does not match.
pub fn same_toolchain(a: &Toolchain, b: &Toolchain) -> bool {
    a.rustc.is_some() && a.valgrind.is_some() && a == b
}

fn short_rustc(r: &str) -> &str {
    r.split(" (").next().unwrap_or(r)
}

/// `linux x86_64 (x86-64-v3), rustc 1.95.0, valgrind-3.19.0, glibc 2.36`
pub fn describe_toolchain(t: &Toolchain) -> String {
    format!(
        "{}{}, {}, {}, {}",
        t.os,
        t.cpu_level
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default(),
        t.rustc.as_deref().map_or("unknown rustc", short_rustc),
        t.valgrind.as_deref().unwrap_or("no valgrind"),
        t.libc.as_deref().unwrap_or("unknown C library")
    )
}

/// What differs between two toolchains, for the "not comparable" note: `rustc 1.94.0 → rustc 1.95.0`.
pub fn describe_toolchain_change(base: &Toolchain, head: &Toolchain) -> String {
    let shown = |v: Option<&str>| {
        v.map(|r| short_rustc(r).to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let mut out = Vec::new();
    // A compiler or valgrind that could not be identified never matches, even "unknown → unknown".
    for (a, b, must_be_known) in [
        (Some(base.os.as_str()), Some(head.os.as_str()), false),
        (base.rustc.as_deref(), head.rustc.as_deref(), true),
        (base.valgrind.as_deref(), head.valgrind.as_deref(), true),
        (base.libc.as_deref(), head.libc.as_deref(), false),
        (base.cpu_level.as_deref(), head.cpu_level.as_deref(), false),
    ] {
        if a != b || (must_be_known && a.is_none()) {
            out.push(format!("{} → {}", shown(a), shown(b)));
        }
    }
    out.join(", ")
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

/// Fewest CPUs with which the service and the load generator get disjoint halves: with fewer, a
/// pinned process could not move off a core a neighbour holds, which costs more than it saves.
pub const PIN_MIN_CPUS: usize = 4;

/// Where the service and the load generator run: disjoint CPU sets, or anywhere (and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuPlan {
    Pinned {
        service: Vec<usize>,
        generator: Vec<usize>,
    },
    Anywhere(String),
}

impl CpuPlan {
    /// The plan for CPUs `allowed` (this process's affinity): the upper half to the service, the
    /// lower half to the generator, from [`PIN_MIN_CPUS`] on; `PERFGATE_PIN=never` turns it off,
    /// `always` pins from 2 CPUs.
    pub fn for_cpus(allowed: &[usize], setting: Option<&str>) -> CpuPlan {
        let min = match setting {
            Some("never") => {
                return CpuPlan::Anywhere("not pinned (PERFGATE_PIN=never)".to_string())
            }
            Some("always") => 2,
            _ => PIN_MIN_CPUS,
        };
        if allowed.len() < min {
            return CpuPlan::Anywhere(format!(
                "service and load generator not pinned: {} CPU{} (disjoint halves need {min}; \
                 PERFGATE_PIN=always pins from 2)",
                allowed.len(),
                if allowed.len() == 1 { "" } else { "s" }
            ));
        }
        let half = allowed.len() / 2;
        CpuPlan::Pinned {
            generator: allowed[..half].to_vec(),
            service: allowed[half..].to_vec(),
        }
    }

    /// This run's plan (computed once).
    pub fn current() -> &'static CpuPlan {
        static PLAN: std::sync::OnceLock<CpuPlan> = std::sync::OnceLock::new();
        PLAN.get_or_init(|| {
            CpuPlan::for_cpus(
                &allowed_cpus(),
                std::env::var("PERFGATE_PIN").ok().as_deref(),
            )
        })
    }

    /// The run header's line: "service on CPUs 2-3, load generator on CPUs 0-1 (disjoint)".
    pub fn describe(&self) -> String {
        match self {
            CpuPlan::Pinned { service, generator } => format!(
                "service on CPU{} {}, load generator on CPU{} {} (pinned, disjoint)",
                if service.len() == 1 { "" } else { "s" },
                cpu_list(service),
                if generator.len() == 1 { "" } else { "s" },
                cpu_list(generator)
            ),
            CpuPlan::Anywhere(why) => why.clone(),
        }
    }

    pub fn service(&self) -> Option<&[usize]> {
        match self {
            CpuPlan::Pinned { service, .. } => Some(service),
            CpuPlan::Anywhere(_) => None,
        }
    }

    pub fn generator(&self) -> Option<&[usize]> {
        match self {
            CpuPlan::Pinned { generator, .. } => Some(generator),
            CpuPlan::Anywhere(_) => None,
        }
    }
}

/// "0-1", "0,2,5-7".
fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The CPUs this process may run on, ascending (every online CPU off Linux).
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                return (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect();
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Makes the process `cmd` starts, and every thread it starts, run only on `cpus` (set between fork
/// and exec, so no thread of it ever runs elsewhere). Nothing off Linux.
pub fn pin(cmd: &mut Command, cpus: &[usize]) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            // SAFETY: CPU_SET bounds-checks against the set's size.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        // SAFETY: the closure runs between fork and exec and only calls sched_setaffinity, which
        // is async-signal-safe; a CPU that went away leaves the process unpinned rather than failing.
        unsafe {
            cmd.pre_exec(move || {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, cpus);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_split_in_disjoint_halves_from_four() {
        let plan = CpuPlan::for_cpus(&[0, 1, 2, 3, 4, 5, 6, 7], None);
        assert_eq!(
            plan.describe(),
            "service on CPUs 4-7, load generator on CPUs 0-3 (pinned, disjoint)"
        );
        let two = CpuPlan::for_cpus(&[0, 1], None);
        assert_eq!(two.service(), None);
        assert!(
            two.describe().contains("not pinned: 2 CPUs"),
            "{}",
            two.describe()
        );
        let forced = CpuPlan::for_cpus(&[0, 3], Some("always"));
        assert_eq!(forced.service(), Some(&[3][..]));
        assert_eq!(forced.generator(), Some(&[0][..]));
        assert!(CpuPlan::for_cpus(&[0, 1, 2, 3], Some("never"))
            .service()
            .is_none());
        assert_eq!(cpu_list(&[0, 2, 5, 6, 7]), "0,2,5-7");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_child_runs_only_on_its_cpus() {
        let cpu = *allowed_cpus().last().expect("some CPU");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pin(&mut cmd, &[cpu]);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split_whitespace().last(),
            Some(cpu.to_string().as_str()),
            "{text}"
        );
    }

    #[test]
    fn toolchains_compare_without_the_machine() {
        let a = Fingerprint {
            cpu_model: Some("AMD EPYC".into()),
            cores: 2,
            os: "linux x86_64".into(),
            rustc: Some("rustc 1.95.0 (abc 2026-01-01)".into()),
            valgrind: Some("valgrind-3.19.0".into()),
            libc: Some("glibc 2.36".into()),
            ..Default::default()
        };
        let other_machine = Fingerprint {
            cpu_model: Some("Intel Xeon".into()),
            cores: 8,
            ..a.clone()
        };
        assert!(same_toolchain(&a.toolchain(), &other_machine.toolchain()));
        let newer = Fingerprint {
            rustc: Some("rustc 1.96.0 (def 2026-03-01)".into()),
            ..a.clone()
        };
        assert!(!same_toolchain(&a.toolchain(), &newer.toolchain()));
        assert_eq!(
            describe_toolchain_change(&a.toolchain(), &newer.toolchain()),
            "rustc 1.95.0 → rustc 1.96.0"
        );
        let no_valgrind = Fingerprint {
            valgrind: None,
            ..a.clone()
        };
        assert!(!same_toolchain(
            &no_valgrind.toolchain(),
            &no_valgrind.toolchain()
        ));
        assert_eq!(
            describe_toolchain(&a.toolchain()),
            "linux x86_64, rustc 1.95.0, valgrind-3.19.0, glibc 2.36"
        );
        let v3 = Fingerprint {
            cpu_level: Some("x86-64-v3".into()),
            ..a.clone()
        };
        let v2 = Fingerprint {
            cpu_level: Some("x86-64-v2".into()),
            ..a.clone()
        };
        assert!(!same_toolchain(&v3.toolchain(), &v2.toolchain()));
        assert_eq!(
            describe_toolchain_change(&v3.toolchain(), &v2.toolchain()),
            "x86-64-v3 → x86-64-v2"
        );
        assert!(describe_toolchain(&v3.toolchain()).starts_with("linux x86_64 (x86-64-v3), "));
    }

    #[test]
    fn cpu_levels_from_flags() {
        let v3 = "flags\t\t: fpu cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 avx avx2 bmi1 bmi2 f16c fma movbe xsave avx512f\n";
        assert_eq!(cpu_level(v3, "x86_64").as_deref(), Some("x86-64-v3"));
        let v2 = "flags\t\t: fpu cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 avx\n";
        assert_eq!(cpu_level(v2, "x86_64").as_deref(), Some("x86-64-v2"));
        assert_eq!(cpu_level("", "aarch64").as_deref(), Some("aarch64"));
        assert_eq!(cpu_level("model name: x\n", "x86_64"), None);
    }

    #[test]
    fn cpu_model_is_read() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
    }
}
