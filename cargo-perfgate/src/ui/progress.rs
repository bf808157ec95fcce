//! The live line while a scenario runs, on stderr, only when stderr is a terminal (and not `TERM=dumb`,
//! not `--quiet`): a bar of elapsed over expected time (warmup + duration), and — once the scenario
//! binary reports its finished seconds in `<PERFGATE_OUT>.progress` — the last second's rate and p99
//! and the errors so far.
//!
//! One bar at a time (scenarios run one at a time). Other output ([`crate::ui::Ui`]'s lines) calls
//! [`clear_line`] first, under the same lock, so the bar and messages never interleave.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perfgate_runtime::format::{format_ms, SecondSample};

const WIDTH: usize = 24;
const TICK: Duration = Duration::from_millis(200);

struct Bar {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    bar: Option<Bar>,
    /// A bar is on screen (the cursor is at the end of its line).
    drawn: bool,
    /// Where the scenarios write their results (set once the run directory exists).
    scenario_dir: Option<PathBuf>,
}

fn state() -> MutexGuard<'static, State> {
    static STATE: Mutex<State> = Mutex::new(State {
        bar: None,
        drawn: false,
        scenario_dir: None,
    });
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether live progress is drawn at all.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Where scenario results go (`<run>/scenarios`); their progress files are next to them.
pub fn set_scenario_dir(dir: &Path) {
    state().scenario_dir = Some(dir.to_path_buf());
}

/// The progress file the runtime writes next to a results file.
pub use perfgate_runtime::format::progress_path as progress_file;

/// Removes the progress files of a finished run (the results files hold the same series).
pub fn cleanup(scenario_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(scenario_dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "progress" || x == "tmp") {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Live numbers from a progress file: the last finished second.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub rate: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// The finished seconds a running scenario reported in its progress file (None before the first).
pub fn read_seconds(path: &Path) -> Option<Vec<SecondSample>> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn read_live(path: &Path) -> Option<Live> {
    let seconds = read_seconds(path)?;
    let last = seconds.last()?;
    Some(Live {
        rate: last.iterations as f64,
        p99_ms: last.p99_ms,
        errors: seconds.iter().map(|s| s.errors).sum(),
    })
}

/// One frame: `⠹ shop::checkout [=========>        ] 4.2s/11.0s · 298/s · p99 12.3ms · 0 errors`.
pub fn frame(
    id: &str,
    elapsed: Duration,
    expected: Duration,
    live: Option<&Live>,
    tick: u64,
) -> String {
    const SPIN: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let e = elapsed.as_secs_f64();
    let x = expected.as_secs_f64().max(0.001);
    let filled = ((e / x).min(1.0) * WIDTH as f64) as usize;
    let bar: String = if filled >= WIDTH {
        "=".repeat(WIDTH)
    } else {
        format!("{}>{}", "=".repeat(filled), " ".repeat(WIDTH - filled - 1))
    };
    let mut line = format!(
        "{} {id} [{bar}] {e:.1}s/{x:.1}s",
        SPIN[(tick % SPIN.len() as u64) as usize]
    );
    match live {
        Some(l) => line.push_str(&format!(
            " · {:.0}/s · p99 {} · {} error{}",
            l.rate,
            format_ms(l.p99_ms),
            l.errors,
            if l.errors == 1 { "" } else { "s" }
        )),
        None if e > x => line.push_str(" · finishing"),
        None => {}
    }
    line
}

/// The results file of round `n` of a scenario (`<stem>.json`, then `<stem>.round<n>.json`).
fn round_file(dir: &Path, stem: &str, n: usize) -> PathBuf {
    match n {
        0 | 1 => dir.join(format!("{stem}.json")),
        n => dir.join(format!("{stem}.round{n}.json")),
    }
}

/// The live numbers of the latest round that reported any, and that round.
fn latest_live(dir: &Path, stem: &str, rounds: usize) -> Option<(usize, Live)> {
    (1..=rounds.max(1))
        .rev()
        .find_map(|n| read_live(&progress_file(&round_file(dir, stem, n))).map(|l| (n, l)))
}

/// Starts the bar of a scenario (stopping any previous one). `stem`: the scenario's results file
/// name without `.json`; `per_round`: warmup + measured time; `rounds`: how many times it runs.
pub fn begin(id: &str, stem: &str, per_round: Duration, rounds: usize) {
    end();
    let mut st = state();
    let dir = st.scenario_dir.clone();
    let stem = stem.to_string();
    let rounds = rounds.max(1);
    let expected = per_round * rounds as u32;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let id = id.to_string();
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        let mut tick = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let latest = dir.as_deref().and_then(|d| latest_live(d, &stem, rounds));
            let mut line = frame(
                &id,
                started.elapsed(),
                expected,
                latest.as_ref().map(|(_, l)| l),
                tick,
            );
            if rounds > 1 {
                let n = latest.as_ref().map_or(1, |(n, _)| *n);
                line.push_str(&format!(" · round {n}/{rounds}"));
            }
            {
                let mut st = state();
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let mut err = std::io::stderr().lock();
                // Cut to the terminal's width is left to the terminal: keep the line short instead.
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
                st.drawn = true;
            }
            tick += 1;
            std::thread::sleep(TICK);
        }
    });
    st.bar = Some(Bar { stop, thread });
}

/// Stops and erases the bar.
pub fn end() {
    let bar = state().bar.take();
    if let Some(b) = bar {
        b.stop.store(true, Ordering::Relaxed);
        let _ = b.thread.join();
    }
    clear_line();
}

/// Erases the bar, if one is on screen, so a message can be printed; the bar redraws on its next tick.
pub fn clear_line() {
    let mut st = state();
    if st.drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        st.drawn = false;
    }
}

/// Runs `print` with the bar erased and the screen locked (no frame is drawn in between).
pub fn with_line_cleared(print: impl FnOnce()) {
    let mut st = state();
    if st.drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        st.drawn = false;
    }
    print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_show_elapsed_expected_and_live_numbers() {
        let f = frame(
            "shop::pay",
            Duration::from_secs(5),
            Duration::from_secs(10),
            None,
            0,
        );
        assert!(
            f.contains("shop::pay [============>           ] 5.0s/10.0s"),
            "{f}"
        );
        let live = Live {
            rate: 298.0,
            p99_ms: 12.34,
            errors: 1,
        };
        let f = frame(
            "x",
            Duration::from_secs(20),
            Duration::from_secs(10),
            Some(&live),
            1,
        );
        assert!(f.contains(&format!("[{}]", "=".repeat(WIDTH))), "{f}");
        assert!(f.ends_with("298/s · p99 12.3ms · 1 error"), "{f}");
    }

    #[test]
    fn live_numbers_come_from_the_last_second() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.json");
        let p = progress_file(&out);
        assert!(p.to_string_lossy().ends_with("s.json.progress"));
        assert_eq!(read_live(&p), None);
        let secs = vec![
            SecondSample {
                t: 0,
                iterations: 100,
                errors: 2,
                p50_ms: 1.0,
                p99_ms: 9.0,
            },
            SecondSample {
                t: 1,
                iterations: 120,
                errors: 1,
                p50_ms: 1.0,
                p99_ms: 7.5,
            },
        ];
        std::fs::write(&p, serde_json::to_string(&secs).unwrap()).unwrap();
        assert_eq!(latest_live(dir.path(), "s", 3).map(|(n, _)| n), Some(1));
        let r2 = progress_file(&round_file(dir.path(), "s", 2));
        assert!(r2.ends_with("s.round2.json.progress"));
        std::fs::write(&r2, serde_json::to_string(&secs[..1]).unwrap()).unwrap();
        assert_eq!(
            latest_live(dir.path(), "s", 3).map(|(n, l)| (n, l.rate)),
            Some((2, 100.0))
        );
        assert_eq!(
            read_live(&p),
            Some(Live {
                rate: 120.0,
                p99_ms: 7.5,
                errors: 3
            })
        );
    }
}
