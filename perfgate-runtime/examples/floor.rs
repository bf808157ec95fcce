//! The least an open-loop generator with exact starts can spend on this machine, for the benchmark
//! (`bench/bench.py`): no runtime, no HTTP parsing, no recording, just what every such generator
//! must do per start — one timerfd wake-up at its intended time, one `send`, one `recv` of the
//! response — on raw epoll and keep-alive connections. perfgate's engine at the same rate is compared
//! with it: what perfgate spends above it is its own overhead; what it spends is the price of the
//! start precision on this kernel and hypervisor.
//!
//! With `--coalesce-us W` it wakes at most once every W µs and sends every start then due, the way
//! wrk2 does (W = 1000): the CPU this saves is what coalescing can buy, its lag what it costs.
//!
//! `floor URL --rate R [--duration-s S] [--connections C] [--coalesce-us W]` (http://127.0.0.1:PORT/
//! only; Linux only). Prints one line of JSON like `loadgen`: requests completed, the median schedule
//! lag of the starts, and the process's CPU seconds.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("floor: Linux only (epoll, timerfd)");
    std::process::exit(2)
}

#[cfg(target_os = "linux")]
mod linux {
    use super::common::rusage;
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn usage() -> ! {
        eprintln!("usage: floor http://127.0.0.1:PORT/ --rate R [--duration-s S] [--connections C] [--coalesce-us W]");
        std::process::exit(2)
    }

    /// The timerfd's token; connections are 0..C.
    const TIMER: u64 = u64::MAX;

    pub(super) fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let opt = |name: &str| -> Option<f64> {
            let i = args.iter().position(|a| a == name)?;
            Some(args.get(i + 1)?.parse().unwrap_or_else(|_| usage()))
        };
        let url = args.first().cloned().unwrap_or_else(|| usage());
        let addr = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .unwrap_or_else(|| usage())
            .to_owned();
        let rate = opt("--rate").unwrap_or_else(|| usage());
        let secs = opt("--duration-s").unwrap_or(10.0);
        let conns = opt("--connections").unwrap_or(50.0) as usize;
        let coalesce = Duration::from_secs_f64(opt("--coalesce-us").unwrap_or(0.0) / 1e6);
        let request = format!("GET / HTTP/1.1\r\nhost: {addr}\r\nuser-agent: floor\r\n\r\n");

        // SAFETY (this block): plain system calls on descriptors this function owns.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let tfd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        assert!(ep >= 0 && tfd >= 0, "epoll or timerfd");
        let add = |fd: i32, token: u64| {
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: token,
            };
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        };
        let mut streams: Vec<TcpStream> = (0..conns)
            .map(|i| {
                let s = TcpStream::connect(&addr).unwrap_or_else(|e| {
                    eprintln!("floor: connecting to {addr}: {e}");
                    std::process::exit(1)
                });
                s.set_nodelay(true).unwrap();
                s.set_nonblocking(true).unwrap();
                add(s.as_raw_fd(), i as u64);
                s
            })
            .collect();
        add(tfd, TIMER);

        let mut busy = vec![false; conns];
        let mut buf = vec![0u8; 16 * 1024];
        let period = Duration::from_secs_f64(1.0 / rate);
        let t0 = Instant::now() + Duration::from_millis(10);
        let end = t0 + Duration::from_secs_f64(secs);
        let cpu0 = rusage().0;
        let (mut next, mut last_wake) = (t0, t0);
        let (mut sent, mut done, mut skipped) = (0u64, 0u64, 0u64);
        let mut lags: Vec<f32> = Vec::with_capacity((rate * secs) as usize + 1);
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // Bounded by `end`: every pass either starts one request (moving `next` on) or waits.
        while next < end {
            let now = Instant::now();
            if now >= next {
                lags.push((now - next).as_secs_f32());
                match busy.iter().position(|b| !b) {
                    Some(k) => {
                        let _ = streams[k].write(request.as_bytes());
                        busy[k] = true;
                        sent += 1;
                    }
                    None => skipped += 1,
                }
                next += period;
                continue;
            }
            let wake = next.max(last_wake + coalesce);
            let left = wake.saturating_duration_since(now);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos().max(1) as libc::c_long,
                },
            };
            unsafe { libc::timerfd_settime(tfd, 0, &spec, std::ptr::null_mut()) };
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
            last_wake = Instant::now();
            for ev in &events[..n.max(0) as usize] {
                let token = ev.u64;
                if token == TIMER {
                    continue;
                }
                let k = token as usize;
                // Edge-triggered: read until the socket is empty. One small response per read.
                while let Ok(got) = streams[k].read(&mut buf) {
                    if got == 0 {
                        break;
                    }
                    if busy[k] {
                        busy[k] = false;
                        done += 1;
                    }
                }
            }
        }
        let cpu = rusage().0 - cpu0;
        lags.sort_by(f32::total_cmp);
        let out = serde_json::json!({
            "requests": done,
            "sent": sent,
            "skipped": skipped,
            "lag_p50_ms": lags.get(lags.len() / 2).map(|&l| f64::from(l) * 1000.0),
            "cpu_s": cpu,
        });
        println!("{out}");
        unsafe {
            libc::close(tfd);
            libc::close(ep);
        }
    }
}
