//! A service's dependencies (`[package.metadata.perfgate.deps.NAME]`): a database, a cache — processes
//! perfgate owns like the service itself (free loopback port, log in the run directory, readiness,
//! SIGTERM → grace → SIGKILL of the whole tree, nothing left on Ctrl-C), plus a temporary directory
//! (`{dir}`, removed at stop), setup steps that load the versioned data once it is ready, and restore
//! steps that bring it back to that state before each scenario (`reset = "per-scenario"`).
//!
//! `PERFGATE_DEP_<NAME>_URL` points at an existing instance instead (a CI service container): nothing is
//! started or stopped, `{url}`, `{host}` and `{port}` come from the variable, and setup runs against it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::discover::config::DepConfig;
use crate::error::{Error, Result};
use crate::files::LogPump;
use crate::procs::{self, ChildGuard};
use crate::service::{command, fill, free_port, open_log, show_command, Probe, Process, Vars};

/// Log lines quoted when a dependency fails.
const TAIL_LINES: usize = 20;

/// A dependency, ready and set up. Dropping it without [`stop`](Dep::stop) still kills and reaps its
/// process, then removes its directory.
#[derive(Debug)]
pub struct Dep {
    name: String,
    /// None when an existing instance is used.
    process: Option<Process>,
    host: String,
    port: u16,
    url: String,
    /// Its `{dir}`: dropped after `process` (fields drop in order), so the process is gone first.
    dir: tempfile::TempDir,
    log_path: PathBuf,
    setup_log: PathBuf,
    /// From start to ready, and the setup steps (for the status line and the report).
    pub ready_secs: f64,
    pub setup_secs: f64,
}

/// The value of `PERFGATE_DEP_<NAME>_URL` when it points at an existing instance.
pub fn external_url(cfg: &DepConfig) -> Option<String> {
    std::env::var(cfg.external_var())
        .ok()
        .filter(|v| !v.trim().is_empty())
}

impl Dep {
    /// Starts `cfg` (or uses the instance its variable names) with its logs in `log_dir`, waits until
    /// it is ready and runs its setup steps in the package's directory `root`.
    pub fn start(cfg: &DepConfig, root: &Path, log_dir: &Path) -> Result<Dep> {
        let what = format!("dependency `{}`", cfg.name);
        let started = Instant::now();
        let log_path = log_dir.join(format!("{}.log", cfg.name));
        let setup_log = log_dir.join(format!("{}.setup.log", cfg.name));
        let dir = tempfile::Builder::new()
            .prefix(&format!("perfgate-{}-", cfg.name))
            .tempdir()
            .map_err(|e| Error::io(format!("creating a temporary directory for {what}"), e))?;
        let external = external_url(cfg);
        let (host, port) = match &external {
            Some(url) => host_port(url).ok_or_else(|| Error::Start {
                what: what.clone(),
                cause: format!(
                    "{} is set but is not a URL with a host and a port (e.g. postgres://user@db.internal:5432/shop)",
                    cfg.external_var()
                ),
                log_tail: String::new(),
            })?,
            None => (
                "127.0.0.1".to_string(),
                free_port().map_err(|e| Error::io("could not find a free loopback port", e))?,
            ),
        };
        let mut vars = Vars::from([
            ("port".to_string(), port.to_string()),
            ("host".to_string(), host.clone()),
            ("dir".to_string(), dir.path().to_string_lossy().into_owned()),
        ]);
        let url = match &external {
            Some(url) => url.clone(),
            None => fill(cfg.url.as_deref().unwrap_or("{host}:{port}"), &vars),
        };
        vars.insert("url".into(), url.clone());

        let mut header = open_log(&log_path)?;
        let process = match external {
            Some(_) => {
                let _ = writeln!(
                    header,
                    "perfgate: using the existing {what} that {} points at (nothing started)",
                    cfg.external_var()
                );
                None
            }
            None => {
                let _ = writeln!(
                    header,
                    "perfgate: starting {what} on {host}:{port}, directory {}: {}",
                    dir.path().display(),
                    show_command(&cfg.command)
                );
                let cmd = command(&cfg.command, &vars, root, &cfg.env);
                Some(Process::spawn(what.clone(), cmd, port, &log_path)?)
            }
        };
        drop(header);
        let mut dep = Dep {
            name: cfg.name.clone(),
            process,
            host,
            port,
            url,
            dir,
            log_path,
            setup_log,
            ready_secs: 0.0,
            setup_secs: 0.0,
        };
        // From here on, an error drops `dep`, which stops the process and removes the directory.
        let probe = Probe {
            ready: &cfg.ready,
            host: &dep.host,
            port: dep.port,
            cwd: root,
            vars: &vars,
            env: &cfg.env,
            log_path: &dep.log_path,
        };
        let hint = format!(
            "raise `startup_timeout` in [package.metadata.perfgate.deps.{}], e.g. `startup_timeout = \"{}s\"`",
            cfg.name,
            (cfg.startup_timeout.as_secs() * 2).max(10)
        );
        match dep.process.as_mut() {
            Some(p) => p.wait_ready(&probe, cfg.startup_timeout, &hint)?,
            None => {
                crate::service::wait_until_ready(&what, &probe, cfg.startup_timeout, &hint, || {
                    None
                })?
            }
        }
        dep.ready_secs = started.elapsed().as_secs_f64();
        let t = Instant::now();
        dep.run_steps(cfg, root, "setup", &cfg.setup, &vars)?;
        dep.setup_secs = t.elapsed().as_secs_f64();
        Ok(dep)
    }

    /// Runs the restore steps (`reset = "per-scenario"`). With none, the caller starts it afresh.
    pub fn restore(&mut self, cfg: &DepConfig, root: &Path) -> Result<()> {
        let vars = self.own_vars();
        self.run_steps(cfg, root, "restore", &cfg.restore, &vars)
    }

    fn own_vars(&self) -> Vars {
        Vars::from([
            ("port".to_string(), self.port.to_string()),
            ("host".to_string(), self.host.clone()),
            (
                "dir".to_string(),
                self.dir.path().to_string_lossy().into_owned(),
            ),
            ("url".to_string(), self.url.clone()),
        ])
    }

    /// Each step in turn, its output appended to `<name>.setup.log`; the first that fails (or outlives
    /// `setup_timeout`) is an error with that log's tail.
    fn run_steps(
        &mut self,
        cfg: &DepConfig,
        root: &Path,
        which: &str,
        steps: &[Vec<String>],
        vars: &Vars,
    ) -> Result<()> {
        for (i, step) in steps.iter().enumerate() {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            let shown = show_command(step);
            let fail = |cause: String, log: &Path| Error::Start {
                what: format!("dependency `{}`", cfg.name),
                cause: format!(
                    "its {which} step {} of {} (`{shown}`) {cause}; the last lines of {}:",
                    i + 1,
                    steps.len(),
                    log.display()
                ),
                log_tail: crate::files::tail_lines(log, TAIL_LINES),
            };
            let mut log = open_log(&self.setup_log)?;
            let _ = writeln!(log, "perfgate: {which} step {}: {shown}", i + 1);
            let mut cmd = command(step, vars, root, &cfg.env);
            LogPump::pipe(&mut cmd);
            let mut child = match ChildGuard::spawn(&mut cmd) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    return Err(Error::Interrupted)
                }
                Err(e) => return Err(fail(format!("could not run: {e}"), &self.setup_log)),
            };
            let pump = LogPump::start(child.child_mut(), &log)
                .map_err(|e| Error::io(format!("copying the output of `{shown}`"), e))?;
            // What the step printed is in its log before anything quotes it.
            let fail = |cause: String, log: &Path| {
                pump.drain(Duration::from_secs(1));
                fail(cause, log)
            };
            match child.wait_timeout(Duration::from_millis(10), Some(cfg.setup_timeout))? {
                Some(status) if status.success() => {}
                Some(status) => {
                    return Err(fail(procs::describe_exit(status), &self.setup_log));
                }
                None => {
                    let _ = child.terminate(Duration::from_secs(2));
                    return Err(fail(
                        format!(
                            "did not finish within {:?} and was killed (raise `setup_timeout` in \
                             [package.metadata.perfgate.deps.{}] if it needs longer)",
                            cfg.setup_timeout, cfg.name
                        ),
                        &self.setup_log,
                    ));
                }
            }
            // A step that took the dependency down is its failure, not the next step's.
            if let Some(cause) = self.exited() {
                return Err(fail(
                    format!("left it dead: it {cause} (see {})", self.log_path.display()),
                    &self.setup_log,
                ));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `NAME.port`, `NAME.host`, `NAME.url`: what the service's args and env may use.
    pub fn vars(&self) -> Vars {
        Vars::from([
            (format!("{}.port", self.name), self.port.to_string()),
            (format!("{}.host", self.name), self.host.clone()),
            (format!("{}.url", self.name), self.url.clone()),
        ])
    }

    /// Where it runs, for status lines: the address, or the variable it came from (a URL from the
    /// environment may carry a password).
    pub fn describe(&self, cfg: &DepConfig) -> String {
        match &self.process {
            Some(_) => format!("{}:{}", self.host, self.port),
            None => format!("existing instance from {}", cfg.external_var()),
        }
    }

    pub fn is_external(&self) -> bool {
        self.process.is_none()
    }

    /// The cause once its process is dead (never for an existing instance).
    pub fn exited(&mut self) -> Option<String> {
        self.process.as_mut()?.exited()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        crate::files::tail_lines(&self.log_path, TAIL_LINES)
    }

    /// Stops its process (SIGTERM, grace, SIGKILL of the tree) and removes its directory.
    pub fn stop(mut self) -> Result<()> {
        let stopped = self.process.take().map_or(Ok(()), Process::stop);
        let path = self.dir.path().to_path_buf();
        let removed = self
            .dir
            .close()
            .map_err(|e| Error::io(format!("removing {}", path.display()), e));
        stopped.and(removed)
    }
}

/// `(host, port)` of a URL such as `postgres://user:secret@db.internal:5432/shop?sslmode=disable`,
/// `redis://[::1]:6379` or `127.0.0.1:5432`; None without an explicit port.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once("]:")?;
            (h, p)
        }
        None => hostport.rsplit_once(':')?,
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::config::{Ready, Reset};
    use std::collections::BTreeMap;

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    /// A "server" that is only a shell: ready when its marker file exists, its steps append to a file
    /// in its directory.
    fn dep(command: &str) -> DepConfig {
        DepConfig {
            name: "db".into(),
            command: words(command),
            url: Some("fake://{host}:{port}/shop".into()),
            ready: Ready::Command(words("test -e {dir}/up")),
            env: BTreeMap::from([("GREETING".to_string(), "on {port}".to_string())]),
            setup: vec![words("sh -c 'echo seeded >> {dir}/state'")],
            restore: vec![],
            reset: Reset::PerRun,
            data: vec![],
            startup_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
        }
    }

    use crate::procs::running as alive;

    #[test]
    fn starts_waits_sets_up_and_stops_leaving_nothing() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("run");
        let cfg = dep("sh -c 'echo \"$GREETING\"; touch {dir}/up; exec sleep 30'");
        let dep = Dep::start(&cfg, root.path(), &logs).unwrap();
        let dir = dep.dir.path().to_path_buf();
        assert_eq!(
            std::fs::read_to_string(dir.join("state")).unwrap(),
            "seeded\n"
        );
        let vars = dep.vars();
        let port = &vars["db.port"];
        assert_eq!(vars["db.host"], "127.0.0.1");
        assert_eq!(vars["db.url"], format!("fake://127.0.0.1:{port}/shop"));
        let log = std::fs::read_to_string(logs.join("db.log")).unwrap();
        assert!(log.contains(&format!("on {port}")), "{log}");
        assert!(log.contains("perfgate: starting dependency `db`"), "{log}");
        let setup_log = std::fs::read_to_string(logs.join("db.setup.log")).unwrap();
        assert!(setup_log.contains("setup step 1"), "{setup_log}");
        let pid = dep.process.as_ref().unwrap().pid();
        assert!(alive(pid));
        dep.stop().unwrap();
        assert!(!alive(pid), "the dependency's process survived");
        assert!(!dir.exists(), "its directory was left behind");
    }

    #[test]
    fn never_ready_is_a_start_error_with_the_log_tail_and_kills_it() {
        let root = tempfile::tempdir().unwrap();
        let mut cfg = dep("sh -c 'echo pid=$$; echo still recovering; exec sleep 30'");
        cfg.startup_timeout = Duration::from_millis(400);
        let err = Dep::start(&cfg, root.path(), root.path()).unwrap_err();
        assert!(matches!(err, Error::Start { .. }));
        let msg = err.to_string();
        assert!(
            msg.starts_with("dependency `db` did not start: it never became ready")
                && msg.contains("`test -e {dir}/up` did not exit 0")
                && msg.contains("deps.db")
                && msg.contains("still recovering"),
            "{msg}"
        );
        let log = std::fs::read_to_string(root.path().join("db.log")).unwrap();
        let pid: u32 = log
            .lines()
            .find_map(|l| l.strip_prefix("pid="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            !alive(pid),
            "the dependency that never got ready was left running"
        );
    }

    #[test]
    fn a_failed_setup_step_names_the_step_and_quotes_its_output() {
        let root = tempfile::tempdir().unwrap();
        let mut cfg = dep("sh -c 'touch {dir}/up; exec sleep 30'");
        cfg.setup.push(words(
            "sh -c 'echo ERROR: relation \"products\" does not exist >&2; exit 3'",
        ));
        let msg = Dep::start(&cfg, root.path(), root.path())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("its setup step 2 of 2")
                && msg.contains("exited with status 3")
                && msg.contains("relation \"products\" does not exist"),
            "{msg}"
        );
    }

    #[test]
    fn restore_runs_its_steps_against_the_same_instance() {
        let root = tempfile::tempdir().unwrap();
        let mut cfg = dep("sh -c 'touch {dir}/up; exec sleep 30'");
        cfg.reset = Reset::PerScenario;
        cfg.restore = vec![words("sh -c 'echo restored {port} >> {dir}/state'")];
        let mut dep = Dep::start(&cfg, root.path(), root.path()).unwrap();
        dep.restore(&cfg, root.path()).unwrap();
        let state = std::fs::read_to_string(dep.dir.path().join("state")).unwrap();
        assert_eq!(state, format!("seeded\nrestored {}\n", dep.port));
    }

    #[test]
    fn an_existing_instance_from_the_environment_is_used_not_started() {
        let root = tempfile::tempdir().unwrap();
        // A listener plays the existing server; the variable's name is this test's own.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = dep("/nonexistent/never-run");
        cfg.name = "external-test-db".into();
        cfg.ready = Ready::Tcp;
        let var = cfg.external_var();
        assert_eq!(var, "PERFGATE_DEP_EXTERNAL_TEST_DB_URL");
        let url = format!("fake://user:secret@127.0.0.1:{port}/shop");
        std::env::set_var(&var, &url);
        let dep = Dep::start(&cfg, root.path(), root.path());
        std::env::remove_var(&var);
        let dep = dep.unwrap();
        assert!(dep.is_external());
        assert_eq!(dep.vars()["external-test-db.url"], url);
        assert_eq!(dep.vars()["external-test-db.port"], port.to_string());
        assert!(!dep.describe(&cfg).contains("secret"));
        dep.stop().unwrap();
    }

    #[test]
    fn host_and_port_come_out_of_urls() {
        let hp = |u: &str| host_port(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(
            hp("postgres://u:p@db.internal:5432/shop?sslmode=disable").as_deref(),
            Some("db.internal 5432")
        );
        assert_eq!(hp("redis://[::1]:6379").as_deref(), Some("::1 6379"));
        assert_eq!(hp("127.0.0.1:9000").as_deref(), Some("127.0.0.1 9000"));
        assert_eq!(hp("postgres://db.internal/shop"), None);
        assert_eq!(hp("postgres://:5432/shop"), None);
    }
}
