//! The service under test: its declaration in `[package.metadata.perfgate]`, and its lifecycle
//! (free port, start without a shell, readiness probe, log capture, SIGTERM → grace → SIGKILL).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod pool;
pub mod sample;

use crate::discover::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::procs;

/// Between SIGTERM and SIGKILL when stopping a service normally.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Log lines quoted in a start error.
const TAIL_LINES: usize = 20;

/// A running service. Dropping it without [`stop`](Service::stop) still kills and reaps it.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    /// Set once the process is known to be dead (its cause), so later calls give the same answer.
    exit_cause: Option<String>,
}

impl Service {
    /// Starts `exe` for `cfg` on a free loopback port and waits until it is ready.
    /// Its stdout and stderr are appended to `log_path`.
    pub fn start(cfg: &ServiceConfig, exe: &Path, cwd: &Path, log_path: &Path) -> Result<Service> {
        let start_err = |cause: String, log_tail: String| Error::ServiceStart {
            name: cfg.name.clone(),
            cause,
            log_tail,
        };
        if !exe.is_file() {
            return Err(start_err(
                format!(
                    "its executable {} does not exist (is `{}` a [[bin]] target of the package, and did it build?)",
                    exe.display(),
                    cfg.bin
                ),
                String::new(),
            ));
        }
        let port = match cfg.port {
            Some(p) => fixed_port(p).map_err(|cause| start_err(cause, String::new()))?,
            None => free_port().map_err(|e| Error::io("could not find a free loopback port", e))?,
        };
        let log = open_log(log_path)?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io(format!("could not open {}", log_path.display()), e))?;
        let subst = |s: &str| s.replace("{port}", &port.to_string());
        let mut cmd = Command::new(exe);
        cmd.args(cfg.args.iter().map(|a| subst(a)))
            .env("PORT", port.to_string())
            .envs(cfg.env.iter().map(|(k, v)| (k, subst(v))))
            // Handed over on purpose: explicitly set, so the scrubbing of credentials keeps them.
            .envs(
                cfg.pass_env
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .current_dir(cwd)
            // Its own process group has no terminal to read from; a read would stop it (SIGTTIN).
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = match procs::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Err(Error::Interrupted)
            }
            Err(e) => {
                return Err(start_err(
                    format!("could not run {}: {e}", exe.display()),
                    String::new(),
                ))
            }
        };
        let mut svc = Service {
            name: cfg.name.clone(),
            child: Some(child),
            port,
            log_path: log_path.to_path_buf(),
            exit_cause: None,
        };
        // On every error below, dropping `svc` kills and reaps the process.
        svc.wait_ready(cfg)?;
        Ok(svc)
    }

    fn wait_ready(&mut self, cfg: &ServiceConfig) -> Result<()> {
        let started = Instant::now();
        let deadline = started + cfg.startup_timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if procs::interrupted() {
                return Err(Error::Interrupted);
            }
            if let Some(cause) = self.exited() {
                return Err(Error::ServiceStart {
                    name: self.name.clone(),
                    cause: format!(
                        "it {cause} before becoming ready; the last lines of {}:",
                        self.log_path.display()
                    ),
                    log_tail: self.log_tail(TAIL_LINES),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let budget = remaining
                .min(Duration::from_secs(2))
                .max(Duration::from_millis(10));
            let last = match probe(addr, cfg.ready.as_deref(), budget) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let what = match &cfg.ready {
                    Some(p) => format!("GET {p} did not answer 2xx"),
                    None => format!("port {} did not accept connections", self.port),
                };
                return Err(Error::ServiceStart {
                    name: self.name.clone(),
                    cause: format!(
                        "it never became ready: {what} within {:?} (last attempt: {last}). If it needs longer, raise \
                         `startup_timeout` in [package.metadata.perfgate], e.g. `service = {{ bin = \"{}\", startup_timeout = \"{}s\", ... }}`. \
                         The last lines of {}:",
                        cfg.startup_timeout,
                        cfg.bin,
                        (cfg.startup_timeout.as_secs() * 2).max(10),
                        self.log_path.display()
                    ),
                    log_tail: self.log_tail(TAIL_LINES),
                });
            }
            std::thread::sleep(
                PROBE_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

    /// The last `lines` lines of the service's log (stdout and stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        crate::files::tail_lines(&self.log_path, lines)
    }

    /// SIGTERM to its process group, up to 5 s to exit, then SIGKILL; reaps it.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
            .map_err(|e| Error::io(format!("stopping service `{}`", self.name), e))
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

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// A port the kernel just handed out on loopback. Another process could take it before the service
/// binds it; the window is small, and the service then fails to start with a clear error.
fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

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

fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("could not create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            Error::io(
                format!("could not open the service log {}", path.display()),
                e,
            )
        })
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
            port: None,
            startup_timeout: timeout,
            restart: Restart::PerRun,
            pass_env: vec![],
        }
    }

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
        let _ = Service::start(&c, &sh(), dir.path(), &log).unwrap_err();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains(&format!("port={port} arg={port}")),
            "{logged}"
        );

        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let msg = Service::start(&c, &sh(), dir.path(), &dir.path().join("2.log"))
            .unwrap_err()
            .to_string();
        drop(holder);
        assert!(
            msg.contains(&format!("its fixed port {port}"))
                && msg.contains("not free")
                && msg.contains("remove `port`"),
            "{msg}"
        );
        assert!(!dir.path().join("2.log").exists(), "nothing was started");
        let e = fixed_port_error(
            &[&c],
            "--ab runs the merge-base's and HEAD's services side by side",
        )
        .unwrap();
        assert!(
            e.to_string()
                .contains(&format!("service `svc` (port {port})")),
            "{e}"
        );
        c.port = None;
        assert!(fixed_port_error(&[&c], "x").is_none());
    }

    fn alive(pid: u32) -> bool {
        // A reaped process is gone from /proc; an unreaped one would be a zombie (state Z).
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
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
        let err = Service::start(&c, &sh(), dir.path(), &log).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::ServiceStart { .. }));
        assert!(
            msg.contains("service `svc` did not start") && msg.contains("exited with status 3"),
            "{msg}"
        );
        assert!(msg.contains("fatal: bad config"), "{msg}");
        // {port} is substituted in env values and PORT is set.
        let logged = std::fs::read_to_string(&log).unwrap();
        let port: &str = logged
            .lines()
            .next()
            .unwrap()
            .rsplit_once("port=")
            .unwrap()
            .1;
        assert!(
            logged.starts_with(&format!("hello on {port} port={port}")),
            "{logged}"
        );
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
        let msg = Service::start(&c, &sh(), dir.path(), &log)
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
        let mut svc = Service::start(&c, &sh(), dir.path(), &log).unwrap();
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
            child: Some(
                procs::spawn(Command::new("sh").args(["-c", "sleep 0.2; kill -9 $$"])).unwrap(),
            ),
            port,
            log_path: dir.path().join("none.log"),
            exit_cause: None,
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
