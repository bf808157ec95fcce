//! Opening and closing the measured window in a running valgrind'd service, with vgdb.
//!
//! Callgrind: the service starts uninstrumented; `instrumentation on` opens the window, `dump
//! <label>` writes everything counted since then to its own file, and `instrumentation off`
//! stops counting until the next window (so several scenarios can share one service).
//! Massif: `xtmemory <file>` at both edges; the window is the difference of the cumulative
//! totals.
//!
//! `zero` is not used: it leaves the per-function syscall counts in place, so the next dump
//! still contains the syscalls made before it.
//!
//! Each vgdb call takes about 0.1 s: the command itself is done within a few milliseconds, then
//! vgdb waits for the interrupted thread to resume. vgdb interrupts the service's blocked system
//! call with ptrace, so the window costs a constant few hundred instructions (the interrupted
//! thread parks again) and needs ptrace to be permitted.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::valgrind::{CostError, CostRun, Tool, CALLGRIND_OUT};

/// Longest wait for one vgdb command before giving up on the window.
pub const VGDB_TIMEOUT: Duration = Duration::from_secs(20);

/// Dump label of window `index`; also the trigger callgrind writes in the dump's header.
pub fn window_label(index: u32) -> String {
    format!("perfgate-window-{index}")
}

/// Sends one monitor command to the valgrind'd process `pid`; returns what it printed.
pub fn vgdb(run: &CostRun, pid: u32, command: &[&str]) -> Result<String, CostError> {
    let words = command.join(" ");
    let fail = |cause: String| CostError::Control {
        command: words.clone(),
        pid,
        cause,
    };
    let mut child = Command::new(&run.valgrind.vgdb)
        .arg(format!("--pid={pid}"))
        .arg(format!("--vgdb-prefix={}", run.vgdb_prefix.display()))
        // Interrupt the blocked service after 1 ms instead of the default 100 ms; 0 would mean
        // never, and an idle service would then never run the command.
        .arg("--max-invoke-ms=1")
        .arg(format!("--cmd-time-out={}", VGDB_TIMEOUT.as_secs()))
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "could not run {}: {e}",
                run.valgrind.vgdb.display()
            ))
        })?;
    // vgdb's own --cmd-time-out covers a service that never runs the command; this covers vgdb.
    let deadline = Instant::now() + VGDB_TIMEOUT + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no answer within {}s; vgdb interrupts the service with ptrace, which \
                     containers without CAP_SYS_PTRACE and kernel.yama.ptrace_scope=3 forbid",
                    VGDB_TIMEOUT.as_secs() + 5
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    // vgdb exits 0 even for a command the tool does not know; the text says so.
    if !status.success() || out.contains("not recognised") || out.contains("unknown command") {
        let text = format!("{} {}", out.trim(), err.trim());
        return Err(fail(format!("{status}: {}", text.trim())));
    }
    Ok(out)
}

/// An open window in one service process.
#[derive(Debug)]
pub struct Window<'a> {
    run: &'a CostRun,
    pid: u32,
    index: u32,
    begin_file: Option<PathBuf>,
    opened: Instant,
}

/// The profile files of one closed window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFiles {
    pub tool: Tool,
    /// Massif: the xtree dump at the window's start (callgrind needs none).
    pub begin: Option<PathBuf>,
    /// Callgrind: the window's dump. Massif: the xtree dump at its end.
    pub end: PathBuf,
    /// Wall time between the two edges (vgdb calls included).
    pub elapsed: Duration,
}

impl<'a> Window<'a> {
    /// Opens window `index` (0, 1, … per service process) once the service is idle.
    pub fn begin(run: &'a CostRun, pid: u32, index: u32) -> Result<Window<'a>, CostError> {
        let begin_file = match run.tool {
            Tool::Callgrind => {
                vgdb(run, pid, &["instrumentation", "on"])?;
                None
            }
            Tool::Massif => {
                let file = run.dir.join(format!("xtmemory.{index}.begin.kcg"));
                xtmemory(run, pid, &file)?;
                Some(file)
            }
        };
        Ok(Window {
            run,
            pid,
            index,
            begin_file,
            opened: Instant::now(),
        })
    }

    /// Closes the window (once the service is idle again) and returns its files.
    pub fn end(self) -> Result<WindowFiles, CostError> {
        let run = self.run;
        let end = match run.tool {
            Tool::Callgrind => {
                let label = window_label(self.index);
                vgdb(run, self.pid, &["dump", &label])?;
                vgdb(run, self.pid, &["instrumentation", "off"])?;
                find_dump(&run.dir, &label)?
            }
            Tool::Massif => {
                let file = run.dir.join(format!("xtmemory.{}.end.kcg", self.index));
                xtmemory(run, self.pid, &file)?;
                file
            }
        };
        Ok(WindowFiles {
            tool: run.tool,
            begin: self.begin_file,
            end,
            elapsed: self.opened.elapsed(),
        })
    }
}

fn xtmemory(run: &CostRun, pid: u32, file: &Path) -> Result<(), CostError> {
    let path = file.to_string_lossy();
    // The monitor command line is split at spaces.
    if path.contains(char::is_whitespace) {
        return Err(CostError::Control {
            command: format!("xtmemory {path}"),
            pid,
            cause: "the output path contains a space".to_string(),
        });
    }
    vgdb(run, pid, &["xtmemory", &path])?;
    if !is_complete(file) {
        return Err(CostError::MissingOutput {
            what: format!("a complete {}", file.display()),
            dir: run.dir.clone(),
        });
    }
    Ok(())
}

/// The callgrind dump written for `label` (`callgrind.out.N` whose trigger names it).
pub fn find_dump(dir: &Path, label: &str) -> Result<PathBuf, CostError> {
    let trigger = format!("desc: Trigger: dump {label}");
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CostError::io(format!("reading {}", dir.display()), e))?;
    let prefix = format!("{CALLGRIND_OUT}.");
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dump = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix));
        if is_dump && header_has(&path, &trigger) && is_complete(&path) {
            return Ok(path);
        }
    }
    Err(CostError::MissingOutput {
        what: format!("the dump `{label}`"),
        dir: dir.to_path_buf(),
    })
}

/// Whether the header (first 4 KiB) of a callgrind-format file has the line `wanted`.
fn header_has(path: &Path, wanted: &str) -> bool {
    let mut head = vec![0u8; 4096];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n])
        .lines()
        .any(|l| l.trim_end() == wanted)
}

/// A callgrind-format file ends with its `totals:` line once fully written.
fn is_complete(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| {
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.starts_with("totals:"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_dump_is_found_by_its_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let header = |label: &str| {
            format!(
                "# callgrind format\nversion: 1\npart: 1\ndesc: Trigger: dump {label}\nevents: Ir\n\nfn=f\n0 1\ntotals: 1\n"
            )
        };
        std::fs::write(
            dir.path().join("callgrind.out.1"),
            header("perfgate-window-0"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("callgrind.out.2"),
            header("perfgate-window-1"),
        )
        .unwrap();
        // Still being written: no totals line yet.
        std::fs::write(
            dir.path().join("callgrind.out.3"),
            "desc: Trigger: dump perfgate-window-2\nevents: Ir\nfn=f\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("callgrind.out"),
            header("perfgate-window-1"),
        )
        .unwrap();
        assert_eq!(
            find_dump(dir.path(), &window_label(1)).unwrap(),
            dir.path().join("callgrind.out.2")
        );
        assert!(find_dump(dir.path(), &window_label(2)).is_err());
        let err = find_dump(dir.path(), "perfgate-window-10").unwrap_err();
        assert!(err.to_string().contains("perfgate-window-10"), "{err}");
    }
}
