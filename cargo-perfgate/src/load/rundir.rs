//! Run directories: `target/perfgate/<run-id>/`, one per run, never reused.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::discover::Workspace;
use crate::error::{Error, Result};
use crate::text::civil_from_days;

/// `20261127-071500-<pid>` (UTC), sortable and unique per process.
pub fn run_id(now: SystemTime, pid: u32) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{pid}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Creates `target/perfgate/<run-id>/`, never reusing an existing directory.
pub fn create_run_dir(perfgate_dir: &Path, id: &str) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(perfgate_dir)
        .map_err(|e| Error::io(format!("creating {}", perfgate_dir.display()), e))?;
    for n in 1.. {
        let name = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = perfgate_dir.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((name, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    unreachable!("the loop returns")
}

/// A fresh `target/perfgate/<run-id>/` for this run.
pub fn new_run_dir(ws: &Workspace) -> Result<(String, PathBuf)> {
    create_run_dir(
        &ws.perfgate_dir(),
        &run_id(SystemTime::now(), std::process::id()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_ids_are_utc_timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_763_700); // 2026-11-27 07:15:00 UTC
        assert_eq!(run_id(t, 42), "20261127-071500-42");
        assert_eq!(run_id(UNIX_EPOCH, 1), "19700101-000000-1");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn run_dirs_are_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = create_run_dir(tmp.path(), "x").unwrap();
        let (b, dir) = create_run_dir(tmp.path(), "x").unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("x", "x-2"));
        assert!(dir.is_dir());
    }
}
