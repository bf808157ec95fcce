//! Harness of the end-to-end tests: fixture workspaces copied to temp dirs, one shared target dir (so
//! the fixtures' dependencies build once per test run), `cargo perfgate` run with a clean environment,
//! and checks that no process outlives a run.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long one `cargo perfgate` run may take: the first one builds tokio and hyper in release mode on
/// a busy 2-core machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs that build share the target dir and the machine: one at a time, also across concurrent
/// `cargo test` invocations (hence a file lock besides the mutex).
pub struct Turn {
    _file: std::fs::File,
    _guard: MutexGuard<'static, ()>,
}

pub fn serial() -> Turn {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed test must not fail the others with a poisoned lock.
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("perfgate-e2e.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    Turn {
        _file: file,
        _guard: guard,
    }
}

/// Put in the environment of every `cargo perfgate` this test process starts, and so inherited by the
/// service and scenario processes: finds them in `/proc` without confusing them with another run's.
pub fn run_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("e2e-{}-{nanos}", std::process::id())
    })
}

pub fn main_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-perfgate is in the workspace")
        .to_path_buf()
}

/// perfgate-runtime of this checkout, as a TOML string's content.
fn runtime_path() -> String {
    let runtime = main_workspace()
        .join("perfgate-runtime")
        .canonicalize()
        .unwrap();
    runtime
        .to_str()
        .expect("a UTF-8 path")
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The `CARGO_TARGET_DIR` shared by every fixture of this test run.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("perfgate-e2e-target")
}

/// A fixture workspace copied to `<CARGO_TARGET_TMPDIR>/perfgate-fixtures/<slot>`. The path is stable
/// across test runs, so cargo's cache for it stays valid; the copy is fresh each time.
pub struct Fixture {
    pub root: PathBuf,
}

impl Fixture {
    /// Copies `tests/fixtures/<name>`, points its perfgate-runtime dependency at this checkout and brings
    /// the main workspace's Cargo.lock along, so the same dependency versions are used and nothing new is
    /// resolved.
    pub fn new(name: &str, slot: &str) -> Fixture {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        Fixture::copy(&src, slot, |text| {
            assert!(
                text.contains("@PERFGATE_RUNTIME_PATH@"),
                "the fixture manifest lost its placeholder"
            );
            text.replace("@PERFGATE_RUNTIME_PATH@", &runtime_path())
        })
    }

    /// Copies the workspace member `examples/<name>` as a workspace of its own (a `[workspace]` table
    /// added, its perfgate-runtime path made absolute), with the main workspace's Cargo.lock.
    pub fn example(name: &str, slot: &str) -> Fixture {
        let src = main_workspace().join("examples").join(name);
        Fixture::copy(&src, slot, |text| {
            let relative = "path = \"../../perfgate-runtime\"";
            assert!(
                text.contains(relative),
                "examples/{name}/Cargo.toml no longer has {relative}"
            );
            format!(
                "[workspace]\n\n{}",
                text.replace(relative, &format!("path = \"{}\"", runtime_path()))
            )
        })
    }

    fn copy(src: &Path, slot: &str, manifest: impl FnOnce(&str) -> String) -> Fixture {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("perfgate-fixtures")
            .join(slot);
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        copy_dir(src, &root);
        let root = root.canonicalize().unwrap();
        let path = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, manifest(&text)).unwrap();
        set_mtime(&path, &src.join("Cargo.toml"));
        std::fs::copy(main_workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        Fixture { root }
    }

    /// A place for a package the test makes itself (`cargo new`): outside any cargo workspace, so
    /// the package is one of its own as a user's would be, and at a path stable across test runs
    /// (named after this checkout's target dir), so the package's own build stays incremental. The
    /// directory itself does not exist yet.
    pub fn outside(slot: &str) -> Fixture {
        use std::hash::{Hash, Hasher};
        // Not randomly keyed: the same checkout gets the same directory every run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        env!("CARGO_TARGET_TMPDIR").hash(&mut h);
        let root = std::env::temp_dir().join(format!("perfgate-e2e-{slot}-{:016x}", h.finish()));
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        Fixture { root }
    }

    /// Writes `text` to `rel` in the fixture (directories created).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("Cargo.toml")
    }

    /// Replaces `from` (which must occur) in the copied manifest.
    pub fn edit_manifest(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.manifest()).unwrap();
        assert!(
            text.contains(from),
            "`{from}` is not in the fixture manifest"
        );
        std::fs::write(self.manifest(), text.replace(from, to)).unwrap();
    }

    /// Replaces `from` (which must occur) in a file of the copy, `rel` from its root.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.root.join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "`{from}` is not in {rel}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The marker the user's own ignored test would create: it must never exist.
    pub fn marker(&self) -> PathBuf {
        self.root.join("users-own-ignored-test-ran")
    }

    /// `cargo perfgate <args> --manifest-path <fixture>`, as cargo would invoke the subcommand, with the
    /// caller's perfgate and colour settings removed.
    pub fn perfgate(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-perfgate"));
        // The subcommand (if any) first, then cargo's options, as users type `cargo perfgate list --manifest-path …`.
        cmd.arg("perfgate")
            .args(args)
            .arg("--manifest-path")
            .arg(self.manifest());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("PERFGATE_")
                || k.starts_with("FIXTURE_")
                || k == "CARGO_TERM_COLOR"
                || k == "NO_COLOR"
            {
                cmd.env_remove(&k);
            }
        }
        // The CI's own base-branch variables must not leak into a test's git repository.
        for k in [
            "GITHUB_BASE_REF",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
            "BITBUCKET_PR_DESTINATION_BRANCH",
            "SYSTEM_PULLREQUEST_TARGETBRANCH",
            "CHANGE_TARGET",
            "GIT_DIR",
            "GIT_WORK_TREE",
        ] {
            cmd.env_remove(k);
        }
        // The fixture copies live inside this repository's target dir: git discovery stops at their
        // parent, so a fixture is in a git repository only when a test makes it one.
        if let Some(parent) = self.root.parent() {
            cmd.env("GIT_CEILING_DIRECTORIES", parent);
        }
        cmd.env("CARGO_TARGET_DIR", target_dir())
            .env("FIXTURE_MARKER", self.marker())
            .env("FIXTURE_RUN_ID", run_token())
            .current_dir(&self.root)
            .stdin(Stdio::null());
        cmd
    }
}

/// Copies keep their sources' mtimes, so cargo sees an unchanged fixture and does not rebuild it.
fn set_mtime(file: &Path, like: &Path) {
    let mtime = std::fs::metadata(like).and_then(|m| m.modified()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            // A stray build of the fixture made in place must not be copied.
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &dest);
            }
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
            set_mtime(&dest, &entry.path());
        }
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Both streams, for assertions that should not care which one a message went to.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn show(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Spawns `cmd` with its output going to files (no pipe can fill up and block it).
pub struct Running {
    pub child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
    started: Instant,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let child = cmd
            .stdout(out.reopen().unwrap())
            .stderr(err.reopen().unwrap())
            .spawn()
            .expect("run cargo-perfgate");
        Running {
            child,
            out,
            err,
            started: Instant::now(),
        }
    }

    /// Where its stderr goes, to watch a run's progress while it runs.
    pub fn stderr_path(&self) -> &Path {
        self.err.path()
    }

    /// Waits up to `timeout`; a run that takes longer is killed and the test fails with its output.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                let o = self.output(status);
                panic!(
                    "cargo perfgate did not finish within {timeout:?}\n{}",
                    o.show()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.output(status)
    }

    fn output(&self, status: ExitStatus) -> Output {
        Output {
            status,
            stdout: std::fs::read_to_string(self.out.path()).unwrap_or_default(),
            stderr: std::fs::read_to_string(self.err.path()).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    Running::spawn(cmd).wait(RUN_TIMEOUT)
}

/// Files under `<target>/perfgate/` whose name satisfies `keep`, modified at or after `since` (the
/// target dir is shared, so older runs' files are there too).
pub fn perfgate_files(since: SystemTime, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![target_dir().join("perfgate")];
    // Bounded by the size of the tree.
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&e.file_name().to_string_lossy())
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m >= since)
            {
                found.push(p);
            }
        }
    }
    found
}

/// A live process (not a zombie) of this test process's runs: its environment carries [`run_token`].
pub struct Proc {
    pub pid: u32,
    pub cmdline: String,
    pub environ: Vec<String>,
}

pub fn our_processes() -> Vec<Proc> {
    let needle = format!("FIXTURE_RUN_ID={}", run_token());
    live_processes(|p| p.environ.contains(&needle))
}

/// Live processes whose working directory is under `dir`: a server that rewrote its environment (as
/// PostgreSQL's workers do with their process titles) cannot be found by [`run_token`], but it runs in
/// its data directory.
pub fn processes_in(dir: &Path) -> Vec<Proc> {
    live_processes(|p| {
        std::fs::read_link(format!("/proc/{}/cwd", p.pid)).is_ok_and(|cwd| cwd.starts_with(dir))
    })
}

/// Every live (not zombie) process of the machine that `keep` selects.
fn live_processes(keep: impl Fn(&Proc) -> bool) -> Vec<Proc> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let live = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'));
        if !live {
            continue;
        }
        let environ: Vec<String> = std::fs::read(format!("/proc/{pid}/environ"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let p = Proc {
            pid,
            cmdline,
            environ,
        };
        if keep(&p) {
            found.push(p);
        }
    }
    found
}

/// Fails when a process of this test's runs outlived them (a process being killed gets a second to go).
pub fn assert_no_leftovers() {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = our_processes();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = left
                .iter()
                .map(|p| format!("pid {}: {}", p.pid, p.cmdline))
                .collect();
            panic!("processes outlived cargo perfgate:\n{}", list.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `git` in `dir` with a fixed identity and no user or system configuration; panics with git's output
/// when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "perfgate-e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@example.com")
        .env("GIT_COMMITTER_NAME", "perfgate-e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Fixture {
    /// Commits a branch off main whose `src/main.rs` has `from` (which must occur) replaced by `to`,
    /// and a note saying `note` (so that even an unchanged service makes a commit). An unchanged
    /// source keeps its mtime, so cargo does not rebuild the service for nothing; Cargo.lock, which
    /// builds rewrite, is not committed.
    pub fn branch_replacing(&self, branch: &str, from: &str, to: &str, note: &str) {
        git(&self.root, &["checkout", "-q", "main"]);
        git(&self.root, &["checkout", "-q", "-b", branch]);
        let main_rs = self.root.join("src/main.rs");
        let text = std::fs::read_to_string(&main_rs).unwrap();
        assert!(text.contains(from), "the fixture lost `{from}`");
        let changed = text.replace(from, to);
        if changed != text {
            std::fs::write(&main_rs, changed).unwrap();
        }
        std::fs::write(self.root.join("NOTES.md"), format!("{note}\n")).unwrap();
        git(&self.root, &["add", "src/main.rs", "NOTES.md"]);
        git(&self.root, &["commit", "-q", "-m", note]);
    }

    /// Makes the fixture copy a git repository with everything committed on `main`.
    pub fn git_init(&self) {
        git(&self.root, &["init", "-q", "-b", "main"]);
        git(&self.root, &["add", "-A"]);
        git(&self.root, &["commit", "-q", "-m", "fixture"]);
    }
}

/// An HTTP/1.1 server over TLS on 127.0.0.1, on threads of this test process: answers every request
/// `200 ok` on kept-alive connections, with a certificate for 127.0.0.1 signed by a CA made at test
/// time. Dropping it stops and joins every thread it started.
pub struct TlsServer {
    pub port: u16,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// Requests answered, and TLS handshakes that failed (a client that did not trust the CA).
    pub answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::Arc;
        let (ca_pem, config) = test_certificates();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Polled, so that the acceptor sees `stop` without a connection to wake it.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (s, a, r) = (stop.clone(), answered.clone(), refused.clone());
        let acceptor = std::thread::spawn(move || {
            let mut connections = Vec::new();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (s, a, r, config) = (s.clone(), a.clone(), r.clone(), config.clone());
                        connections.push(std::thread::spawn(move || {
                            serve_tls_connection(tcp, config, &s, &a, &r)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in connections {
                let _ = c.join();
            }
        });
        TlsServer {
            port,
            ca_pem,
            answered,
            refused,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// A CA (its PEM) and a server configuration with a leaf certificate it signed for 127.0.0.1.
fn test_certificates() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "perfgate e2e CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .unwrap();
    (ca_pem, std::sync::Arc::new(config))
}

/// One connection: requests (a head, and a body of its Content-Length) answered `200 ok` until the
/// client closes it or the server stops. Reads time out so that `stop` is seen.
fn serve_tls_connection(
    tcp: std::net::TcpStream,
    config: std::sync::Arc<rustls::ServerConfig>,
    stop: &std::sync::atomic::AtomicBool,
    answered: &std::sync::atomic::AtomicU64,
    refused: &std::sync::atomic::AtomicU64,
) {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::Ordering;
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
    let session = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(session, tcp);
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                if tls.conn.is_handshaking() {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
        // Every complete request in what arrived.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if pending.len() < end + 4 + length {
                break;
            }
            pending.drain(..end + 4 + length);
            // Counted before the answer goes out: the client may check the count as soon as it
            // has read the answer.
            answered.fetch_add(1, Ordering::SeqCst);
            if tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .and_then(|()| tls.flush())
                .is_err()
            {
                return;
            }
        }
    }
}
