//! The whole pass against a real service, driven the way the load generator should drive it.
//! Ignored by default: it needs valgrind and a built predict-service, e.g.
//! `cargo build --release -p predict-service` then
//! `PERFGATE_COST_SERVICE=target/release/predict-service cargo test -p cargo-perfgate --lib cost -- --ignored`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::*;

/// Stops and reaps the service however the test ends: SIGTERM first, so valgrind removes its
/// FIFOs, then SIGKILL if it lingers.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..200 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET /items/{id} on a keep-alive connection, request written in one call as perfgate's
/// client does (a request split over two segments takes another path through the server).
fn get_item(conn: &mut TcpStream, port: u16, i: u64) {
    let id = i.wrapping_mul(2_654_435_761) % 400 + 1;
    let req = format!("GET /items/{id} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "connection closed");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
}

fn one_pass(
    valgrind: &Valgrind,
    tool: Tool,
    exe: &std::path::Path,
    n: u64,
) -> (tempfile::TempDir, WindowFiles) {
    let dir = tempfile::tempdir().unwrap();
    let run = CostRun::new(valgrind, tool, dir.path());
    let mut cmd = run.command(exe, &["--port".into(), "0".into()]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut guard = Guard(cmd.spawn().unwrap());
    let pid = guard.0.id();
    let mut line = String::new();
    BufReader::new(guard.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let settle = || {
        assert!(
            idle::wait_idle(pid, Duration::from_micros(500), Duration::from_secs(5)).unwrap(),
            "the service did not go idle"
        )
    };
    for i in 0..50 {
        get_item(&mut conn, port, i);
        settle();
    }
    let window = Window::begin(&run, pid, 0).unwrap();
    for i in 50..50 + n {
        get_item(&mut conn, port, i);
        settle();
    }
    let files = window.end().unwrap();
    drop(conn);
    (dir, files)
}

#[test]
#[ignore = "needs valgrind and PERFGATE_COST_SERVICE (a built predict-service)"]
fn live_window_on_a_real_service_repeats() {
    let Some(exe) = std::env::var_os("PERFGATE_COST_SERVICE") else {
        eprintln!("PERFGATE_COST_SERVICE is not set; nothing to measure");
        return;
    };
    let exe = std::path::PathBuf::from(exe);
    let valgrind = valgrind::detect().unwrap();
    let n = 100;
    let mut instructions = Vec::new();
    for _ in 0..2 {
        let (_dir, files) = one_pass(&valgrind, Tool::Callgrind, &exe, n);
        let counts = read_callgrind_window(&files.end).unwrap();
        let fig = per_iteration(&counts, n);
        eprintln!(
            "{:.1} instr/iter, {:.3} syscalls/iter, {:.2} allocs/iter, window {:?}",
            fig.instructions, fig.syscalls, fig.allocs, files.elapsed
        );
        // epoll_wait, recv, writev and the recv that finds nothing more.
        assert!((2.9..3.2).contains(&fig.syscalls), "{fig:?}");
        assert!((fig.allocs - 7.0).abs() < 0.05, "{fig:?}");
        instructions.push(fig.instructions);
    }
    let spread = (instructions[0] - instructions[1]).abs() / instructions[0];
    assert!(spread < 0.001, "{instructions:?}");

    let (_dir, files) = one_pass(&valgrind, Tool::Massif, &exe, n);
    let heap = read_heap_window(files.begin.as_deref().unwrap(), &files.end).unwrap();
    eprintln!("{heap:?}");
    assert_eq!(heap.blocks, 7 * n);
    assert_eq!(heap.bytes, 9_296 * n);
}
