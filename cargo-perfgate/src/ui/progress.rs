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

/// A running scenario's progress file, read as it grows: each poll reads only what was appended
/// since the last, so that following an hours-long soak costs the same at its end as at its start.
#[derive(Default)]
pub struct ProgressTail {
    /// Bytes of the file already parsed (whole lines).
    offset: u64,
    seconds: Vec<SecondSample>,
}

impl ProgressTail {
    /// The finished seconds the scenario has reported so far (none before the first, or when the
    /// file cannot be read).
    pub fn poll(&mut self, path: &Path) -> &[SecondSample] {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return &self.seconds;
        };
        // Shorter than what was read: a new file (another round) in its place.
        if file.metadata().map_or(0, |m| m.len()) < self.offset {
            *self = ProgressTail::default();
        }
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return &self.seconds;
        }
        let (seconds, used) = perfgate_runtime::format::parse_progress(&bytes);
        if self.offset == 0 && bytes.first() == Some(&b'[') {
            // An earlier runtime's form: the whole series, rewritten each second.
            self.seconds = seconds;
        } else {
            self.seconds.extend(seconds);
            self.offset += used as u64;
        }
        &self.seconds
    }
}

impl Live {
    /// The last second's numbers, and the errors over all of them.
    fn of(seconds: &[SecondSample]) -> Option<Live> {
        let last = seconds.last()?;
        Some(Live {
            rate: last.iterations as f64,
            p99_ms: last.p99_ms,
            errors: seconds.iter().map(|s| s.errors).sum(),
        })
    }
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

/// The live numbers of the latest round that reported any, and that round; `tails[n - 1]` follows
/// round `n`'s progress file.
fn latest_live(dir: &Path, stem: &str, tails: &mut [ProgressTail]) -> Option<(usize, Live)> {
    tails.iter_mut().enumerate().rev().find_map(|(i, tail)| {
        let seconds = tail.poll(&progress_file(&round_file(dir, stem, i + 1)));
        Live::of(seconds).map(|l| (i + 1, l))
    })
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
        let mut tails: Vec<ProgressTail> = (0..rounds).map(|_| ProgressTail::default()).collect();
        while !flag.load(Ordering::Relaxed) {
            let latest = dir
                .as_deref()
                .and_then(|d| latest_live(d, &stem, &mut tails));
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

    fn second(t: u32, iterations: u64, errors: u64, p99_ms: f64) -> SecondSample {
        SecondSample {
            t,
            iterations,
            errors,
            p50_ms: 1.0,
            p99_ms,
        }
    }

    fn lines(secs: &[SecondSample]) -> String {
        secs.iter()
            .map(|s| serde_json::to_string(s).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn live_numbers_come_from_the_last_second_of_the_latest_round() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.json");
        let p = progress_file(&out);
        assert!(p.to_string_lossy().ends_with("s.json.progress"));
        let mut tails: Vec<ProgressTail> = (0..3).map(|_| ProgressTail::default()).collect();
        assert_eq!(latest_live(dir.path(), "s", &mut tails), None);
        let secs = vec![second(0, 100, 2, 9.0), second(1, 120, 1, 7.5)];
        std::fs::write(&p, lines(&secs)).unwrap();
        assert_eq!(
            latest_live(dir.path(), "s", &mut tails),
            Some((
                1,
                Live {
                    rate: 120.0,
                    p99_ms: 7.5,
                    errors: 3
                }
            ))
        );
        let r2 = progress_file(&round_file(dir.path(), "s", 2));
        assert!(r2.ends_with("s.round2.json.progress"));
        std::fs::write(&r2, lines(&secs[..1])).unwrap();
        assert_eq!(
            latest_live(dir.path(), "s", &mut tails).map(|(n, l)| (n, l.rate)),
            Some((2, 100.0))
        );
    }

    #[test]
    fn a_progress_file_is_read_as_it_grows_and_in_the_older_array_form() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json.progress");
        let secs: Vec<_> = (0..4)
            .map(|t| second(t, 100 + u64::from(t), 0, 5.0))
            .collect();
        let mut file = std::fs::File::create(&p).unwrap();
        let mut tail = ProgressTail::default();
        assert!(tail.poll(&p).is_empty());
        // A line still being written is not read yet, nor skipped.
        let text = lines(&secs[..2]);
        let (whole, partial) = text.split_at(text.len() - 10);
        file.write_all(whole.as_bytes()).unwrap();
        assert_eq!(tail.poll(&p), &secs[..1]);
        file.write_all(partial.as_bytes()).unwrap();
        assert_eq!(tail.poll(&p), &secs[..2]);
        let before = tail.offset;
        file.write_all(lines(&secs[2..]).as_bytes()).unwrap();
        assert_eq!(tail.poll(&p), &secs[..]);
        assert!(tail.offset > before, "only the new bytes are read");
        // A new file in its place (a shorter one: another round) starts over.
        std::fs::write(&p, lines(&secs[..1])).unwrap();
        assert_eq!(tail.poll(&p), &secs[..1]);
        // An earlier runtime replaces the file with the whole series each second.
        let mut tail = ProgressTail::default();
        std::fs::write(&p, serde_json::to_string(&secs[..3]).unwrap()).unwrap();
        assert_eq!(tail.poll(&p), &secs[..3]);
        std::fs::write(&p, serde_json::to_string(&secs).unwrap()).unwrap();
        assert_eq!(tail.poll(&p), &secs[..]);
    }
}
