//! The processes perfgate owns for a run: the service under test (its declaration in
//! `[package.metadata.perfgate]`) and its dependencies (`deps.rs`), with one lifecycle shared by both:
//! a free loopback port, a start without a shell in a process group of its own, output appended to a
//! log, a readiness probe (TCP, HTTP or a command), and SIGTERM → grace → SIGKILL of the whole tree.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod contention;
pub mod deps;
pub mod pool;
pub mod sample;

use crate::discover::config::{placeholders, Ready, ServiceConfig};
use crate::error::{Error, Result};
use crate::files::LogPump;
use crate::procs::{self, ChildGuard};

/// Between SIGTERM and SIGKILL when stopping a service normally.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Log lines quoted in a start error.
const TAIL_LINES: usize = 20;

/// The values of the `{…}` placeholders in args, env and commands: a service's `port`, a
/// dependency's `port`, `host`, `dir` and `url`, and `NAME.port`, `NAME.host`, `NAME.url` of each
/// dependency of the service's package.
pub type Vars = BTreeMap<String, String>;

/// `s` with every placeholder that has a value replaced; others stay as written.
pub fn fill(s: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (range, inner) in placeholders(s) {
        if let Some(v) = vars.get(inner) {
            out.push_str(&s[last..range.start]);
            out.push_str(v);
            last = range.end;
        }
    }
    out.push_str(&s[last..]);
    out
}

/// The command `words` (placeholders filled) run in `cwd` with `env` added and the caller's
/// `PERFGATE_*` variables removed (perfgate's own secrets never reach a child). A relative program path
/// (`scripts/db.sh`) is taken from `cwd`; a bare name is looked up on PATH.
pub fn command(
    words: &[String],
    vars: &Vars,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Command {
    let program = fill(&words[0], vars);
    let program = if program.contains('/') && Path::new(&program).is_relative() {
        cwd.join(program).into_os_string()
    } else {
        program.into()
    };
    let mut cmd = Command::new(program);
    cmd.args(words[1..].iter().map(|w| fill(w, vars)))
        .current_dir(cwd)
        // Its own process group has no terminal to read from; a read would stop it (SIGTTIN).
        .stdin(Stdio::null());
    crate::protocol::clean_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k, fill(v, vars))));
    cmd
}

/// The command as written in the configuration (placeholders unfilled, so a password in a URL from the
/// environment never reaches a log).
pub fn show_command(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", w.replace('\'', "'\\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a readiness probe checks, and how to reach it.
pub struct Probe<'a> {
    pub ready: &'a Ready,
    pub host: &'a str,
    pub port: u16,
    /// For a ready command: its directory, placeholder values and environment.
    pub cwd: &'a Path,
    pub vars: &'a Vars,
    pub env: &'a BTreeMap<String, String>,
    /// Where a ready command's output goes.
    pub log_path: &'a Path,
}

/// A process perfgate started. Dropping it without [`stop`](Process::stop) still kills and reaps it.
#[derive(Debug)]
pub struct Process {
    /// "service `api`", "dependency `db`": how errors name it.
    what: String,
    /// Copies its output to the log, redacted.
    pump: LogPump,
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    /// Set once the process is known to be dead (its cause), so later calls give the same answer.
    exit_cause: Option<String>,
}

impl Process {
    /// Starts `cmd` with its stdout and stderr appended to `log_path`.
    pub fn spawn(what: String, mut cmd: Command, port: u16, log_path: &Path) -> Result<Process> {
        let log = open_log(log_path)?;
        LogPump::pipe(&mut cmd);
        let mut child = match procs::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Err(Error::Interrupted)
            }
            Err(e) => {
                return Err(Error::Start {
                    what,
                    cause: format!("could not run {}: {e}", cmd.get_program().to_string_lossy()),
                    log_tail: String::new(),
                })
            }
        };
        let pump = LogPump::start(&mut child, &log).map_err(|e| {
            Error::io(
                format!(
                    "copying the output of {}",
                    cmd.get_program().to_string_lossy()
                ),
                e,
            )
        })?;
        Ok(Process {
            what,
            pump,
            child: Some(child),
            port,
            log_path: log_path.to_path_buf(),
            exit_cause: None,
        })
    }

    /// Probes until ready, the process exits, `timeout` passes (an error naming `hint`, what to raise),
    /// or the user interrupts.
    pub fn wait_ready(&mut self, probe: &Probe<'_>, timeout: Duration, hint: &str) -> Result<()> {
        let what = self.what.clone();
        wait_until_ready(&what, probe, timeout, hint, || {
            let cause = self.exited();
            // Its last lines may still be in the pipe; the error quotes them.
            if cause.is_some() {
                self.pump.drain(Duration::from_secs(1));
            }
            cause
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The cause ("exited with status 101", "killed by signal 9 (SIGKILL, …)") once the process is dead.
    pub fn exited(&mut self) -> Option<String> {
        if self.exit_cause.is_none() {
            let child = self.child.as_mut()?;
            match procs::try_reap(child) {
                Ok(Some(status)) => self.exit_cause = Some(procs::describe_exit(status)),
                Ok(None) => {}
                Err(e) => self.exit_cause = Some(format!("could not be waited for: {e}")),
            }
        }
        self.exit_cause.clone()
    }

    /// The last lines of its log; once it has exited, with everything it wrote before (its output
    /// goes through a pipe, which may still hold the last lines).
    pub fn log_tail(&self, lines: usize) -> String {
        if self.exit_cause.is_some() {
            self.pump.drain(Duration::from_secs(1));
        }
        crate::files::tail_lines(&self.log_path, lines)
    }

    /// SIGTERM to its process group, up to 5 s to exit, then SIGKILL (its whole tree); reaps it.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
            .map_err(|e| Error::io(format!("stopping {}", self.what), e))
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(mut child) = self.child.take() {
            let status = procs::terminate(&mut child, STOP_GRACE)?;
            self.exit_cause
                .get_or_insert_with(|| procs::describe_exit(status));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The probe loop of [`Process::wait_ready`], also for an instance perfgate did not start (`exited`
/// then never says it died).
pub fn wait_until_ready(
    what: &str,
    probe: &Probe<'_>,
    timeout: Duration,
    hint: &str,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if procs::interrupted() {
            return Err(Error::Interrupted);
        }
        if let Some(cause) = exited() {
            return Err(Error::Start {
                what: what.to_string(),
                cause: format!(
                    "it {cause} before becoming ready; the last lines of {}:",
                    probe.log_path.display()
                ),
                log_tail: crate::files::tail_lines(probe.log_path, TAIL_LINES),
            });
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = remaining
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(10));
        let last = match probe_once(probe, budget) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            let check = match probe.ready {
                Ready::Http(p) => format!("GET {p} did not answer 2xx"),
                Ready::Tcp => format!("port {} did not accept connections", probe.port),
                Ready::Command(c) => format!("`{}` did not exit 0", show_command(c)),
            };
            return Err(Error::Start {
                what: what.to_string(),
                cause: format!(
                    "it never became ready: {check} within {timeout:?} (last attempt: {last}). If it needs longer, \
                     {hint}. The last lines of {}:",
                    probe.log_path.display()
                ),
                log_tail: crate::files::tail_lines(probe.log_path, TAIL_LINES),
            });
        }
        std::thread::sleep(PROBE_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// A running service. Dropping it without [`stop`](Service::stop) still kills and reaps it.
#[derive(Debug)]
pub struct Service {
    name: String,
    process: Process,
}

/// Makes the command that runs a service's executable with its arguments (placeholders filled): a
/// wrapper around it (the cost pass runs it under valgrind, pinned its own way).
pub type Launch<'a> = &'a dyn Fn(&Path, &[OsString]) -> Command;

/// Pins a service or a dependency to the CPUs the run's plan gives services (none on a small machine).
pub fn pin_to_service_cpus(cmd: &mut Command) {
    if let Some(cpus) = crate::machine::CpuPlan::current().service() {
        crate::machine::pin(cmd, cpus);
    }
}

impl Service {
    /// Starts `exe` for `cfg` on a free loopback port and waits until it is ready. Its stdout and
    /// stderr are appended to `log_path`; `deps` are the values of its dependencies' placeholders.
    pub fn start(
        cfg: &ServiceConfig,
        exe: &Path,
        cwd: &Path,
        log_path: &Path,
        deps: &Vars,
    ) -> Result<Service> {
        Self::start_with(cfg, exe, cwd, log_path, deps, None)
    }

    /// [`Service::start`] with the command made by `launch`; the rest of the lifecycle (port,
    /// environment, readiness, log, stop) is the same.
    pub fn start_with(
        cfg: &ServiceConfig,
        exe: &Path,
        cwd: &Path,
        log_path: &Path,
        deps: &Vars,
        launch: Option<Launch<'_>>,
    ) -> Result<Service> {
        let what = format!("service `{}`", cfg.name);
        if !exe.is_file() {
            return Err(Error::Start {
                what,
                cause: format!(
                    "its executable {} does not exist (is `{}` a [[bin]] target of the package, and did it build?)",
                    exe.display(),
                    cfg.bin
                ),
                log_tail: String::new(),
            });
        }
        let port = match cfg.port {
            Some(p) => fixed_port(p).map_err(|cause| Error::Start {
                what: what.clone(),
                cause,
                log_tail: String::new(),
            })?,
            None => free_port().map_err(|e| Error::io("could not find a free loopback port", e))?,
        };
        let mut vars = deps.clone();
        vars.insert("port".into(), port.to_string());
        let words: Vec<String> = std::iter::once(exe.to_string_lossy().into_owned())
            .chain(cfg.args.iter().cloned())
            .collect();
        let mut cmd = command(&words, &vars, cwd, &cfg.env);
        match launch {
            None => pin_to_service_cpus(&mut cmd),
            Some(launch) => {
                let args: Vec<OsString> = cmd.get_args().map(OsString::from).collect();
                let mut wrapped = launch(Path::new(cmd.get_program()), &args);
                wrapped.current_dir(cwd).stdin(Stdio::null());
                crate::protocol::clean_env(&mut wrapped);
                for (k, v) in cmd.get_envs() {
                    if let Some(v) = v {
                        wrapped.env(k, v);
                    }
                }
                cmd = wrapped;
            }
        }
        cmd.env("PORT", port.to_string())
            // Handed over on purpose: explicitly set, so the scrubbing of credentials keeps them.
            .envs(
                cfg.pass_env
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            );
        let mut process = Process::spawn(what, cmd, port, log_path)?;
        let ready = cfg.ready.clone().map_or(Ready::Tcp, Ready::Http);
        let probe = Probe {
            ready: &ready,
            host: "127.0.0.1",
            port,
            cwd,
            vars: &vars,
            env: &cfg.env,
            log_path,
        };
        let hint = format!(
            "raise `startup_timeout` in [package.metadata.perfgate], e.g. `service = {{ bin = \"{}\", startup_timeout = \"{}s\", ... }}`",
            cfg.bin,
            (cfg.startup_timeout.as_secs() * 2).max(10)
        );
        // On an error, dropping `process` kills and reaps it.
        process.wait_ready(&probe, cfg.startup_timeout, &hint)?;
        Ok(Service {
            name: cfg.name.clone(),
            process,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The cause ("exited with status 101", "killed by signal 9 (SIGKILL, …)") once the process is dead.
    pub fn exited(&mut self) -> Option<String> {
        self.process.exited()
    }

    /// The last `lines` lines of the service's log (stdout and stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// SIGTERM to its process group, up to 5 s to exit, then SIGKILL; reaps it.
    pub fn stop(self) -> Result<()> {
        self.process.stop()
    }
}

/// A port the kernel just handed out on loopback. Another process could take it before the service
/// binds it; the window is small, and the service then fails to start with a clear error.
/// A service's fixed `port`, checked free before the service is started: a port someone else
/// holds would otherwise make perfgate load that other process, or read as a service that never
/// got ready.
fn fixed_port(port: u16) -> std::result::Result<u16, String> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(port),
        Err(e) => Err(format!(
            "its fixed port {port} (`port = {port}` in [package.metadata.perfgate]) is not free on 127.0.0.1: {e}. \
             Another program (or an instance of the service left running) holds it; `ss -ltnp 'sport = :{port}'` \
             shows which. Stop it and run again, or let perfgate pick a free port: have the service take it \
             from a flag (`args = [\"--port\", \"{{port}}\"]`), the PORT variable or another one \
             (`env = {{ APP_PORT = \"{{port}}\" }}`), and remove `port`"
        )),
    }
}

/// The services of a run that bind a fixed port, by name: they cannot run twice at a time, as the
/// A/B mode and `calibrate` run two instances side by side.
pub fn fixed_port_error(services: &[&ServiceConfig], why: &str) -> Option<Error> {
    let fixed: Vec<String> = services
        .iter()
        .filter_map(|s| s.port.map(|p| format!("`{}` (port {p})", s.name)))
        .collect();
    (!fixed.is_empty()).then(|| {
        Error::Usage(format!(
            "{why}, each on a port of its own, but service {} always binds the same port. Have it take \
             its port from a flag (`args = [\"--port\", \"{{port}}\"]`) or a variable (PORT, or `env = {{ \
             APP_PORT = \"{{port}}\" }}`) and remove `port`",
            fixed.join(", ")
        ))
    })
}

pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Opens `path` for appending, creating it and its directory.
pub fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("could not create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("could not open the log {}", path.display()), e))
}

/// One readiness attempt within `budget`.
fn probe_once(p: &Probe<'_>, budget: Duration) -> std::result::Result<(), String> {
    match p.ready {
        Ready::Command(words) => probe_command(p, words, budget),
        Ready::Tcp | Ready::Http(_) => {
            let addr = (p.host, p.port)
                .to_socket_addrs()
                .map_err(|e| format!("resolving {}: {e}", p.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", p.host))?;
            let path = match p.ready {
                Ready::Http(path) => Some(path.as_str()),
                _ => None,
            };
            probe(addr, path, budget)
        }
    }
}

/// A ready command: exit 0 within `budget`. Its output goes to the log.
fn probe_command(
    p: &Probe<'_>,
    words: &[String],
    budget: Duration,
) -> std::result::Result<(), String> {
    let mut cmd = command(words, p.vars, p.cwd, p.env);
    let log = open_log(p.log_path).map_err(|e| e.to_string())?;
    LogPump::pipe(&mut cmd);
    let mut child = ChildGuard::spawn(&mut cmd)
        .map_err(|e| format!("could not run `{}`: {e}", show_command(words)))?;
    let _pump = LogPump::start(child.child_mut(), &log).map_err(|e| e.to_string())?;
    match child.wait_timeout(Duration::from_millis(10), Some(budget)) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!(
            "`{}` {}",
            show_command(words),
            procs::describe_exit(status)
        )),
        Ok(None) => Err(format!(
            "`{}` did not finish within {budget:?}",
            show_command(words)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One readiness attempt within `budget`: the port accepts, and with a path, `GET path` answers 2xx.
fn probe(
    addr: SocketAddr,
    path: Option<&str>,
    budget: Duration,
) -> std::result::Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, budget).map_err(|e| format!("connect: {e}"))?;
    let Some(path) = path else { return Ok(()) };
    let _ = stream.set_read_timeout(Some(budget));
    let _ = stream.set_write_timeout(Some(budget));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: cargo-perfgate\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("sending GET {path}: {e}"))?;
    // Only the status line matters; it fits in the first read or two.
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the answer to GET {path}: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            if (200..300).contains(&code) {
                Ok(())
            } else {
                Err(format!("GET {path} answered {code}"))
            }
        }
        _ if buf.is_empty() => Err(format!("GET {path}: connection closed without an answer")),
        _ => Err(format!(
            "GET {path}: not an HTTP answer: {:?}",
            status_line.chars().take(60).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::config::Restart;
    use std::collections::BTreeMap;

    fn cfg(bin: &str, args: &[&str], ready: Option<&str>, timeout: Duration) -> ServiceConfig {
        ServiceConfig {
            name: "svc".into(),
            bin: bin.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::from([("GREETING".to_string(), "hello on {port}".to_string())]),
            ready: ready.map(str::to_string),
            startup_timeout: timeout,
            restart: Restart::PerRun,
            pass_env: vec![],
            port: None,
        }
    }

    use crate::procs::running as alive;

    #[test]
    fn a_fixed_port_is_used_and_a_taken_one_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        // A port that is free now (taken from the OS, then released).
        let port = free_port().unwrap();
        let mut c = cfg(
            "sh",
            &["-c", "echo \"port=$PORT arg={port}\"; exit 3"],
            None,
            Duration::from_secs(10),
        );
        c.port = Some(port);
        let _ = Service::start(&c, &sh(), dir.path(), &log, &Vars::new()).unwrap_err();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains(&format!("port={port} arg={port}")),
            "{logged}"
        );

        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let second = dir.path().join("2.log");
        let msg = Service::start(&c, &sh(), dir.path(), &second, &Vars::new())
            .unwrap_err()
            .to_string();
        drop(holder);
        assert!(
            msg.contains(&format!("its fixed port {port}")) && msg.contains("remove `port`"),
            "{msg}"
        );
        assert!(!second.exists(), "nothing was started");
        let e = fixed_port_error(&[&c], "--ab runs both sides' services side by side").unwrap();
        assert!(
            e.to_string()
                .contains(&format!("service `svc` (port {port})")),
            "{e}"
        );
        c.port = None;
        assert!(fixed_port_error(&[&c], "x").is_none());
    }

    fn sh() -> PathBuf {
        PathBuf::from("/bin/sh")
    }

    #[test]
    fn a_service_that_exits_early_reports_its_status_and_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/svc.log");
        let c = cfg(
            "sh",
            &[
                "-c",
                "echo \"$GREETING port=$PORT\"; echo 'fatal: bad config' >&2; exit 3",
            ],
            None,
            Duration::from_secs(10),
        );
        let err = Service::start(&c, &sh(), dir.path(), &log, &Vars::new()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Start { .. }));
        assert!(
            msg.contains("service `svc` did not start") && msg.contains("exited with status 3"),
            "{msg}"
        );
        assert!(msg.contains("fatal: bad config"), "{msg}");
        // {port} is substituted in env values and PORT is set.
        let logged = std::fs::read_to_string(&log).unwrap();
        // Stdout and stderr reach the log through separate pipes: their lines may interleave.
        let port: &str = logged
            .lines()
            .find(|l| l.contains("port="))
            .unwrap()
            .rsplit_once("port=")
            .unwrap()
            .1;
        let greeting = format!("hello on {port} port={port}");
        assert!(logged.lines().any(|l| l == greeting), "{logged}");
    }

    #[test]
    fn a_service_that_never_gets_ready_times_out_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        // Writes its pid, then never listens.
        let c = cfg(
            "sh",
            &["-c", "echo pid=$$; echo still booting; exec sleep 30"],
            None,
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let msg = Service::start(&c, &sh(), dir.path(), &log, &Vars::new())
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            msg.contains("never became ready") && msg.contains("startup_timeout"),
            "{msg}"
        );
        assert!(msg.contains("still booting"), "{msg}");
        let logged = std::fs::read_to_string(&log).unwrap();
        let pid: u32 = logged
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("pid=")
            .parse()
            .unwrap();
        assert!(!alive(pid), "the service {pid} was left running");
    }

    #[test]
    fn a_missing_executable_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg("shopp", &[], None, Duration::from_secs(1));
        let msg = Service::start(
            &c,
            &dir.path().join("release/shopp"),
            dir.path(),
            &dir.path().join("l.log"),
            &Vars::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("release/shopp")
                && msg.contains("does not exist")
                && msg.contains("`shopp`"),
            "{msg}"
        );
    }

    /// A tiny HTTP server in the test process, answering 503 until `delay_ready` has passed.
    fn http_server(
        status: &'static str,
        delay_ready: Duration,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let started = Instant::now();
            l.set_nonblocking(true).unwrap();
            // Bounded: serves for at most 5 s.
            while started.elapsed() < Duration::from_secs(5) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let st = if started.elapsed() < delay_ready {
                            "503 Service Unavailable"
                        } else {
                            status
                        };
                        let _ = write!(
                            s,
                            "HTTP/1.1 {st}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        (port, h)
    }

    #[test]
    fn probes_wait_for_a_2xx() {
        let (port, _h) = http_server("200 OK", Duration::from_millis(300));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let first = probe(addr, Some("/healthz"), Duration::from_secs(1)).unwrap_err();
        assert!(first.contains("answered 503"), "{first}");
        let deadline = Instant::now() + Duration::from_secs(4);
        while probe(addr, Some("/healthz"), Duration::from_secs(1)).is_err() {
            assert!(Instant::now() < deadline, "never saw a 200");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(probe(addr, None, Duration::from_secs(1)).is_ok());
        let (port, _h) = http_server("404 Not Found", Duration::ZERO);
        let e = probe(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Some("/nope"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("404"), "{e}");
    }

    #[test]
    fn start_stop_and_drop_reap_the_whole_group() {
        // No server binary can be assumed (python, nc): the "service" is a shell that logs its port and
        // sleeps, and the test binds that port itself, which is all the port-accept readiness looks at.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        let c = cfg(
            "sh",
            &["-c", "echo port={port}; sleep 30 & exec sleep 30"],
            None,
            Duration::from_secs(10),
        );
        let log2 = log.clone();
        let binder = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                if let Some(port) = std::fs::read_to_string(&log2).ok().and_then(|s| {
                    s.lines()
                        .next()
                        .and_then(|l| l.strip_prefix("port=")?.parse::<u16>().ok())
                }) {
                    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
                    std::thread::sleep(Duration::from_secs(2));
                    drop(l);
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let mut svc = Service::start(&c, &sh(), dir.path(), &log, &Vars::new()).unwrap();
        assert!(svc.base_url().starts_with("http://127.0.0.1:"));
        assert_eq!(svc.exited(), None);
        let pid = svc.pid();
        assert!(alive(pid));
        assert!(svc.log_tail(5).starts_with("port="));
        svc.stop().unwrap();
        assert!(!alive(pid));
        binder.join().unwrap();
    }

    #[test]
    fn exited_reports_a_crash_after_start() {
        let dir = tempfile::tempdir().unwrap();
        let (port, _h) = http_server("200 OK", Duration::ZERO);
        // The service is the sleeper; readiness is answered by the in-process server it "owns".
        let mut svc = Service {
            name: "svc".into(),
            process: Process {
                what: "service `svc`".into(),
                pump: LogPump::none(),
                child: Some(
                    procs::spawn(Command::new("sh").args(["-c", "sleep 0.2; kill -9 $$"])).unwrap(),
                ),
                port,
                log_path: dir.path().join("none.log"),
                exit_cause: None,
            },
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let cause = loop {
            if let Some(c) = svc.exited() {
                break c;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(cause.contains("killed by signal 9"), "{cause}");
        assert_eq!(svc.exited(), Some(cause));
        assert_eq!(svc.log_tail(3), "");
        drop(svc);
    }
}
