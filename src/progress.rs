//! Progress for long transfers: a bar on a terminal, a plain line every few seconds elsewhere.
//!
//! `indicatif` draws nothing in GitHub Actions logs (no terminal), so there we print a status
//! line at most every five seconds, enough to show a long restore is alive without flooding
//! the log.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::output::{self, human_bytes};

const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

pub struct Progress {
    label: String,
    total: Option<u64>,
    bar: Option<ProgressBar>,
    /// When the last plain line was printed; `None` when plain lines are off.
    last_plain: Option<Mutex<Instant>>,
}

impl Progress {
    /// Progress over `total` bytes (unknown when `None`). `enabled` is false for `--quiet`,
    /// `--no-progress` and `--json`.
    pub fn new(label: &str, total: Option<u64>, enabled: bool) -> Self {
        let on_terminal = std::io::stderr().is_terminal();
        let bar = (enabled && on_terminal).then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                        .expect("valid template"),
                ),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_message(label.to_string());
            bar
        });
        let last_plain = (enabled && !on_terminal).then(|| Mutex::new(Instant::now()));
        Self {
            label: label.to_string(),
            total,
            bar,
            last_plain,
        }
    }

    /// A progress that shows nothing.
    pub fn hidden() -> Self {
        Self::new("", None, false)
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
        if let Some(last) = &self.last_plain {
            let mut last = last.lock().expect("progress lock");
            if last.elapsed() >= PLAIN_INTERVAL {
                *last = Instant::now();
                output::info(&self.plain_line(position));
            }
        }
    }

    fn plain_line(&self, position: u64) -> String {
        match self.total {
            Some(total) if total > 0 => format!(
                "{}: {} of {} ({}%)",
                self.label,
                human_bytes(position),
                human_bytes(total),
                position * 100 / total
            ),
            _ => format!("{}: {}", self.label, human_bytes(position)),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
