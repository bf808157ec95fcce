//! Finding valgrind, and the command line that runs the service under it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Oldest valgrind the cost pass accepts: xtree memory profiles (`--xtree-memory`, the
/// `xtmemory` monitor command) and callgrind's `--collect-systime` are both in 3.13.
pub const MIN_VERSION: (u32, u32) = (3, 13);

/// How to install valgrind, for the error messages.
const INSTALL_HINT: &str = "install it with `sudo apt-get install valgrind` (Debian, Ubuntu), \
`sudo dnf install valgrind` (Fedora, RHEL), `sudo pacman -S valgrind` (Arch) or \
`apk add valgrind` (Alpine)";

/// Why the cost pass cannot run or could not read what it measured.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("the cost pass runs the service under valgrind, which was not found on PATH; {INSTALL_HINT}")]
    NotInstalled,
    #[error("valgrind was found ({valgrind}) but not its `vgdb` helper, which the cost pass uses to start and stop measuring; reinstall the distribution's valgrind package ({INSTALL_HINT})", valgrind = .0.display())]
    VgdbMissing(PathBuf),
    #[error("{program} --version failed ({cause}); is valgrind installed correctly? {INSTALL_HINT}", program = .program.display())]
    Unusable { program: PathBuf, cause: String },
    #[error("valgrind {found} is too old for the cost pass, which needs {}.{} or later; {INSTALL_HINT}", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { found: String },
    /// A vgdb command to the valgrind'd service failed or timed out.
    #[error("vgdb `{command}` to the service (pid {pid}) failed: {cause}")]
    Control {
        command: String,
        pid: u32,
        cause: String,
    },
    #[error("valgrind did not write {what} in {dir}", dir = .dir.display())]
    MissingOutput { what: String, dir: PathBuf },
    #[error("{path}: {message}", path = .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl CostError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CostError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A usable valgrind installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valgrind {
    pub program: PathBuf,
    /// The helper that sends monitor commands to a running valgrind.
    pub vgdb: PathBuf,
    /// As printed by `valgrind --version`, e.g. `valgrind-3.19.0`.
    pub version: String,
}

/// Finds valgrind and vgdb on PATH and checks the version.
pub fn detect() -> Result<Valgrind, CostError> {
    detect_on(std::env::var_os("PATH").as_deref())
}

/// [`detect`] with an explicit PATH value.
pub fn detect_on(path_var: Option<&OsStr>) -> Result<Valgrind, CostError> {
    let program = find_on_path("valgrind", path_var).ok_or(CostError::NotInstalled)?;
    // vgdb ships next to valgrind; PATH is the fallback for unusual layouts.
    let vgdb = program
        .parent()
        .map(|dir| dir.join("vgdb"))
        .filter(|p| is_executable(p))
        .or_else(|| find_on_path("vgdb", path_var))
        .ok_or_else(|| CostError::VgdbMissing(program.clone()))?;
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| CostError::Unusable {
            program: program.clone(),
            cause: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(CostError::Unusable {
            program,
            cause: format!("{}: {text}", out.status),
        });
    }
    let Some((major, minor, _)) = parse_version(&text) else {
        return Err(CostError::Unusable {
            program,
            cause: format!("unrecognised version {text:?}"),
        });
    };
    if (major, minor) < MIN_VERSION {
        return Err(CostError::TooOld { found: text });
    }
    Ok(Valgrind {
        program,
        vgdb,
        version: text,
    })
}

/// `valgrind-3.19.0` (also `valgrind-3.22.0.GIT`, `valgrind-3.16.1-Debian`) → (3, 19, 0).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.trim().strip_prefix("valgrind-")?;
    let mut nums = rest
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next()??;
    let patch = nums.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn find_on_path(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The two valgrind runs of a cost pass: instructions, syscalls, calls (and so allocation
/// counts) come from callgrind; allocated bytes from massif's xtree memory profile, since
/// callgrind does not see allocation sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Callgrind,
    Massif,
}

/// One valgrind'd start of the service: its options, output directory and CPU.
#[derive(Debug, Clone)]
pub struct CostRun {
    pub tool: Tool,
    pub valgrind: Valgrind,
    /// Where the profiles go; created by [`CostRun::new`]'s caller, one per run.
    pub dir: PathBuf,
    /// Prefix of the FIFOs vgdb and valgrind talk through. Under the temporary directory rather
    /// than `dir`: some mounted filesystems (shared folders, network mounts) have no FIFOs.
    pub vgdb_prefix: PathBuf,
    /// The one CPU the service may use, if the machine lets us choose.
    pub cpu: Option<usize>,
}

/// File callgrind writes its dumps next to (`callgrind.out.1`, `.2`, …; this name at exit).
pub const CALLGRIND_OUT: &str = "callgrind.out";

impl CostRun {
    pub fn new(valgrind: &Valgrind, tool: Tool, dir: impl Into<PathBuf>) -> CostRun {
        let dir = dir.into();
        let tool_name = match tool {
            Tool::Callgrind => "callgrind",
            Tool::Massif => "massif",
        };
        CostRun {
            tool,
            valgrind: valgrind.clone(),
            vgdb_prefix: std::env::temp_dir()
                .join(format!("perfgate-vgdb-{}-{tool_name}", std::process::id())),
            dir,
            cpu: pick_cpu(),
        }
    }

    /// Valgrind's options, to go between `valgrind` and the service's executable.
    pub fn valgrind_args(&self) -> Vec<OsString> {
        // -q: only valgrind's errors reach the service's log, not its banner.
        let mut args: Vec<OsString> = vec!["-q".into()];
        let mut opt = |name: &str, value: &OsStr| {
            let mut s = OsString::from(name);
            s.push(value);
            args.push(s);
        };
        opt("--vgdb=", OsStr::new("yes"));
        opt("--vgdb-prefix=", self.vgdb_prefix.as_os_str());
        match self.tool {
            Tool::Callgrind => {
                opt("--tool=", OsStr::new("callgrind"));
                // Startup and warm-up run uninstrumented (several times faster); the window
                // switches instrumentation on, so nothing before it is counted.
                opt("--instr-atstart=", OsStr::new("no"));
                // The sysCount event: system calls per function.
                opt("--collect-systime=", OsStr::new("yes"));
                opt(
                    "--callgrind-out-file=",
                    self.dir.join(CALLGRIND_OUT).as_os_str(),
                );
            }
            Tool::Massif => {
                opt("--tool=", OsStr::new("massif"));
                // Cumulative allocated bytes and blocks per stack, dumped at each window edge.
                opt("--xtree-memory=", OsStr::new("full"));
                opt(
                    "--xtree-memory-file=",
                    self.dir.join("xtmemory.exit.kcg").as_os_str(),
                );
                opt(
                    "--massif-out-file=",
                    self.dir.join("massif.out").as_os_str(),
                );
            }
        }
        args
    }

    /// Program and arguments that run `exe args…` under valgrind.
    pub fn argv(&self, exe: &Path, args: &[OsString]) -> (PathBuf, Vec<OsString>) {
        let mut all = self.valgrind_args();
        all.push(exe.as_os_str().to_owned());
        all.extend(args.iter().cloned());
        (self.valgrind.program.clone(), all)
    }

    /// A command for `exe args…` under valgrind, pinned to [`CostRun::cpu`].
    pub fn command(&self, exe: &Path, args: &[OsString]) -> Command {
        let (program, args) = self.argv(exe, args);
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.pin(&mut cmd);
        cmd
    }

    /// Restricts the spawned process to one CPU. Runtimes that size their thread pools by the
    /// CPUs they may use (tokio, rayon: `available_parallelism`) then start one worker, which
    /// removes the work-stealing and malloc-arena variation that otherwise moves the counts
    /// by up to 1.4% between runs.
    pub fn pin(&self, cmd: &mut Command) {
        if let Some(cpu) = self.cpu {
            pin_to_cpu(cmd, cpu);
        }
    }

    /// How long the service may take to become ready under valgrind: startup is slower (the
    /// tool reads debug information first) and instrumented code runs many times slower.
    pub fn startup_timeout(native: Duration) -> Duration {
        (native * 20).max(Duration::from_secs(60))
    }
}

/// The last CPU this process may run on (the first is where interrupts usually land), or None
/// when the affinity cannot be read.
#[cfg(target_os = "linux")]
pub fn pick_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pick_cpu() -> Option<usize> {
    None
}

#[cfg(target_os = "linux")]
fn pin_to_cpu(cmd: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls sched_setaffinity, which is
    // async-signal-safe; the set is built on the stack.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu(_cmd: &mut Command, _cpu: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_distribution_suffixes() {
        assert_eq!(parse_version("valgrind-3.19.0\n"), Some((3, 19, 0)));
        assert_eq!(parse_version("valgrind-3.22.0.GIT"), Some((3, 22, 0)));
        assert_eq!(parse_version("valgrind-3.16.1-Debian"), Some((3, 16, 1)));
        assert_eq!(parse_version("valgrind-3.7"), Some((3, 7, 0)));
        assert_eq!(parse_version("3.19.0"), None);
        assert_eq!(parse_version("valgrind-x"), None);
    }

    #[test]
    fn missing_valgrind_says_how_to_install_it() {
        let empty = tempfile::tempdir().unwrap();
        let err = detect_on(Some(empty.path().as_os_str())).unwrap_err();
        assert!(matches!(err, CostError::NotInstalled));
        let msg = err.to_string();
        assert!(msg.contains("apt-get install valgrind"), "{msg}");
        assert!(msg.contains("not found on PATH"), "{msg}");
        assert!(matches!(detect_on(None), Err(CostError::NotInstalled)));
    }

    /// Written by a child process: a script this (multi-threaded) test process had open for
    /// writing could be inherited by another test's fork and then fail to run (ETXTBSY).
    fn write_script(path: &Path, body: &str) {
        let ok = Command::new("sh")
            .args(["-c", "printf '%s' \"$1\" > \"$0\" && chmod 755 \"$0\""])
            .arg(path)
            .arg(body)
            .status()
            .unwrap()
            .success();
        assert!(ok, "writing {}", path.display());
    }

    #[test]
    fn valgrind_without_vgdb_or_too_old_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("valgrind");
        write_script(&fake, "#!/bin/sh\necho valgrind-3.12.0\n");
        let err = detect_on(Some(dir.path().as_os_str())).unwrap_err();
        assert!(matches!(err, CostError::VgdbMissing(_)), "{err}");
        assert!(err.to_string().contains("vgdb"));

        let vgdb = dir.path().join("vgdb");
        write_script(&vgdb, "#!/bin/sh\n");
        let err = detect_on(Some(dir.path().as_os_str())).unwrap_err();
        assert!(
            matches!(&err, CostError::TooOld { found } if found == "valgrind-3.12.0"),
            "{err}"
        );
        assert!(err.to_string().contains("3.13 or later"), "{err}");

        write_script(&fake, "#!/bin/sh\necho valgrind-3.19.0\n");
        let found = detect_on(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(found.version, "valgrind-3.19.0");
        assert_eq!(found.vgdb, vgdb);
    }

    fn fake_valgrind() -> Valgrind {
        Valgrind {
            program: PathBuf::from("/usr/bin/valgrind"),
            vgdb: PathBuf::from("/usr/bin/vgdb"),
            version: "valgrind-3.19.0".to_string(),
        }
    }

    #[test]
    fn callgrind_command_line_starts_uninstrumented_and_writes_under_the_run_dir() {
        let run = CostRun::new(&fake_valgrind(), Tool::Callgrind, "/runs/r1");
        let (program, args) = run.argv(
            Path::new("/build/predict-service"),
            &["--port".into(), "4000".into()],
        );
        assert_eq!(program, PathBuf::from("/usr/bin/valgrind"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let prefix = format!("--vgdb-prefix={}", run.vgdb_prefix.display());
        assert_eq!(
            args,
            [
                "-q",
                "--vgdb=yes",
                prefix.as_str(),
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-systime=yes",
                "--callgrind-out-file=/runs/r1/callgrind.out",
                "/build/predict-service",
                "--port",
                "4000",
            ]
        );
    }

    #[test]
    fn massif_command_line_records_xtree_memory() {
        let run = CostRun::new(&fake_valgrind(), Tool::Massif, "/runs/r1");
        let args: Vec<String> = run
            .valgrind_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--tool=massif".to_string()), "{args:?}");
        assert!(
            args.contains(&"--xtree-memory=full".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--xtree-memory-file=/runs/r1/xtmemory.exit.kcg".to_string()),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.contains("callgrind")), "{args:?}");
    }

    #[test]
    fn startup_timeout_grows_under_valgrind() {
        assert_eq!(
            CostRun::startup_timeout(Duration::from_secs(30)),
            Duration::from_secs(600)
        );
        assert_eq!(
            CostRun::startup_timeout(Duration::from_secs(1)),
            Duration::from_secs(60)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinned_command_sees_one_cpu() {
        let Some(cpu) = pick_cpu() else { return };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pin_to_cpu(&mut cmd, cpu);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split_whitespace().last(),
            Some(cpu.to_string().as_str()),
            "{text}"
        );
    }
}
