//! Progress on stderr, in cargo's style (a right-aligned status word), so stdout holds only the
//! results (the table, or the JSON document).

pub mod progress;

use anstyle::{AnsiColor, Style};

pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
}

pub const GREEN: Style = AnsiColor::Green.on_default().bold();
pub const CYAN: Style = AnsiColor::Cyan.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const RED: Style = AnsiColor::Red.on_default().bold();

impl Ui {
    /// A status line in `style`, unless `--quiet`.
    pub fn styled(&self, style: Style, word: &str, msg: &str) {
        if !self.quiet {
            self.line(style, word, msg);
        }
    }

    fn line(&self, style: Style, word: &str, msg: &str) {
        progress::with_line_cleared(|| anstream::eprintln!("{style}{word:>12}{style:#} {msg}"));
    }

    pub fn status(&self, word: &str, msg: &str) {
        if !self.quiet {
            self.line(GREEN, word, msg);
        }
    }

    /// Warnings are shown even with `--quiet`: they say something is off.
    pub fn warn(&self, msg: &str) {
        progress::with_line_cleared(|| anstream::eprintln!("{YELLOW}warning{YELLOW:#}: {msg}"));
    }

    pub fn error(&self, msg: &str) {
        progress::end();
        anstream::eprintln!("{RED}error{RED:#}: {msg}");
    }
}
