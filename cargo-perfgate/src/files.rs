//! Files perfgate writes and reads back: atomic replacement (a reader never sees half a file, and
//! nothing the user has is lost to a crash midway), appending, and the tail of a log.

use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::procs;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, creating the
/// directory if needed. The file keeps the mode of the one it replaces, else gets 0644: a report or a
/// results file is read by others (a textfile collector, a CI artifact upload).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    perfgate_runtime::format::write_atomic(path, bytes)
}

/// Appends `text` to `path` (created when missing): `$GITHUB_STEP_SUMMARY` is shared by every step.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The last `lines` lines of a file, reading at most its last 64 KiB, secrets redacted (a log tail goes
/// into reports); empty when it cannot be read.
pub fn tail_lines(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A cut at 64 KiB may split the first line: drop it unless the file was read whole.
    let skip_partial = usize::from(start > 0);
    let from = all.len().saturating_sub(lines).max(skip_partial);
    crate::secret::redact(&all[from..].join("\n"))
}

/// A child's stdout and stderr copied to its log file line by line with secrets redacted: what a
/// child prints goes into reports through log tails, and a log under `target/` is a CI artifact.
#[derive(Debug)]
pub struct LogPump {
    done: Vec<std::sync::mpsc::Receiver<()>>,
}

impl LogPump {
    /// A pump with nothing to copy (a child whose output goes elsewhere).
    pub fn none() -> LogPump {
        LogPump { done: Vec::new() }
    }

    /// Pipes `cmd`'s stdout and stderr (to be pumped once it is spawned).
    pub fn pipe(cmd: &mut std::process::Command) {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    }

    /// Starts copying the spawned child's output to `log`.
    pub fn start(child: &mut std::process::Child, log: &std::fs::File) -> std::io::Result<LogPump> {
        let mut done = Vec::new();
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for reader in [out, err].into_iter().flatten() {
            let file = log.try_clone()?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("perfgate-log".into())
                .spawn(move || {
                    pump(reader, file);
                    let _ = tx.send(());
                })?;
            done.push(rx);
        }
        Ok(LogPump { done })
    }

    /// Waits until everything the child wrote is in the log (its pipes closed), at most `timeout`: a
    /// daemon it left may hold a pipe open.
    pub fn drain(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for rx in &self.done {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let _ = rx.recv_timeout(left);
        }
    }
}

fn pump(reader: Box<dyn Read + Send>, mut file: std::fs::File) {
    use std::io::BufRead as _;
    // A line longer than this is written in pieces (a secret split across two is the price of a
    // bounded buffer for a child that never prints a newline).
    const MAX_LINE: u64 = 64 * 1024;
    let mut reader = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = crate::secret::redact(&String::from_utf8_lossy(&line));
                // Reading goes on even when the log cannot be written: a full pipe would stall
                // the child.
                let _ = file.write_all(text.as_bytes());
            }
        }
    }
}

/// An exclusive advisory lock on `path` (created if missing), held until the returned file is dropped
/// (also when the process dies, so a killed run never leaves it taken). When another process holds
/// it: with `wait`, `on_wait` is called once and this waits until it is free (Ctrl-C interrupts);
/// without, `None`.
pub fn lock_exclusive(
    path: &Path,
    wait: bool,
    on_wait: impl FnOnce(),
) -> Result<Option<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let try_lock = || unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if try_lock() {
        return Ok(Some(file));
    }
    if !wait {
        return Ok(None);
    }
    on_wait();
    loop {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        if try_lock() {
            return Ok(Some(file));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail_lines(&p, 2), "c\nd");
        assert_eq!(tail_lines(&tmp.path().join("none"), 2), "");
    }

    #[test]
    fn a_long_file_is_tailed_from_its_end_without_a_cut_line() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(tail_lines(&p, 2), "line 19998\nline 19999");
        let all = tail_lines(&p, 100_000);
        assert!(
            all.lines().all(|l| l.starts_with("line ")),
            "no partial first line"
        );
    }

    #[test]
    fn atomic_writes_replace_keep_the_mode_and_leave_nothing_behind() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("r.txt");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x").join("lock");
        let held = lock_exclusive(&p, false, || {}).unwrap();
        assert!(held.is_some());
        let mut waited = false;
        assert!(lock_exclusive(&p, false, || waited = true)
            .unwrap()
            .is_none());
        assert!(!waited, "no wait without `wait`");
        drop(held);
        assert!(lock_exclusive(&p, false, || {}).unwrap().is_some());
    }
}
