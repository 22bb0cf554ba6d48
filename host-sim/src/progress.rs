//! A one-line progress bar on stdout: redrawn in place on a terminal, printed once when done
//! otherwise (so logs and test output stay readable).

use std::io::{IsTerminal as _, Write as _};

pub struct Bar {
    label: String,
    tty: bool,
    drawn: bool,
}

const WIDTH: usize = 28;

impl Bar {
    pub fn new(label: &str) -> Bar {
        Bar {
            label: label.to_string(),
            tty: std::io::stdout().is_terminal(),
            drawn: false,
        }
    }

    fn line(&self, done: usize, total: usize, note: &str) -> String {
        let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0);
        format!(
            "   {} [{}{}] {note}",
            self.label,
            "█".repeat(filled),
            "░".repeat(WIDTH - filled)
        )
    }

    /// Redraws the bar (on a terminal only).
    pub fn update(&mut self, done: usize, total: usize, note: &str) {
        if self.tty {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K{}", self.line(done, total, note));
            let _ = out.flush();
            self.drawn = true;
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self, done: usize, total: usize, note: &str) {
        let line = self.line(done, total, note);
        if self.tty {
            println!("\r\x1b[2K{line}");
        } else {
            println!("{line}");
        }
        self.drawn = false;
    }

    /// Ends a line left open by `update` (before printing an error, say).
    pub fn abandon(&mut self) {
        if self.drawn {
            println!();
            self.drawn = false;
        }
    }
}
