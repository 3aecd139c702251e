//! Progress for long work: a bar (or a spinner for a phase without a byte count) on a
//! terminal, a plain line at least every five seconds elsewhere.
//!
//! `indicatif` draws nothing in GitHub Actions logs (no terminal), so there a heartbeat thread
//! prints the current state whenever five seconds passed without a line: a long restore, a
//! swap of a large tree or a slow heal never looks dead, and the log is not flooded either.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::output::{self, human_bytes};

const PLAIN_INTERVAL: Duration = Duration::from_secs(5);
/// How often the heartbeat looks at the clock.
const HEARTBEAT_TICK: Duration = Duration::from_millis(250);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Arc<Plain>>,
    heartbeat: Option<JoinHandle<()>>,
}

/// The state plain lines are printed from.
struct Plain {
    label: String,
    /// `None` for a phase: no byte count, only the time it has taken.
    total: Option<Option<u64>>,
    position: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
    done: AtomicBool,
}

impl Plain {
    fn line(&self) -> String {
        let position = self.position.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs();
        match self.total {
            None => format!("{}… ({elapsed}s)", self.label),
            Some(Some(total)) if total > 0 => format!(
                "{}: {} of {} ({}%, {elapsed}s)",
                self.label,
                human_bytes(position),
                human_bytes(total),
                position.min(total) * 100 / total
            ),
            Some(_) => format!("{}: {} ({elapsed}s)", self.label, human_bytes(position)),
        }
    }

    /// Prints the current line if five seconds passed since the last one.
    fn beat(&self) {
        let mut last = self.last_line.lock().expect("progress lock");
        if last.elapsed() >= PLAIN_INTERVAL {
            *last = Instant::now();
            output::info(&self.line());
        }
    }
}

impl Progress {
    /// Progress over `total` bytes (unknown when `None`). `enabled` is false for `--quiet`,
    /// `--no-progress` and `--json`.
    pub fn new(label: &str, total: Option<u64>, enabled: bool) -> Self {
        let style = match total {
            Some(_) => "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            None => "{spinner} {msg} {bytes} {binary_bytes_per_sec}",
        };
        let bar = terminal_bar(label, enabled, style, total);
        Self::start(label, Some(total), enabled, bar)
    }

    /// A phase without a byte count (swapping a tree into place, publishing an entry): a
    /// spinner with the time taken, or a plain line when it starts and every five seconds.
    pub fn phase(label: &str, enabled: bool) -> Self {
        let bar = terminal_bar(label, enabled, "{spinner} {msg}… {elapsed}", None);
        if let Some(bar) = &bar {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        let progress = Self::start(label, None, enabled, bar);
        if let Some(plain) = &progress.plain {
            output::info(&format!("{label}…"));
            *plain.last_line.lock().expect("progress lock") = Instant::now();
        }
        progress
    }

    fn start(
        label: &str,
        total: Option<Option<u64>>,
        enabled: bool,
        bar: Option<ProgressBar>,
    ) -> Self {
        let plain = (enabled && bar.is_none() && !std::io::stderr().is_terminal()).then(|| {
            Arc::new(Plain {
                label: label.to_string(),
                total,
                position: AtomicU64::new(0),
                started: Instant::now(),
                last_line: Mutex::new(Instant::now()),
                done: AtomicBool::new(false),
            })
        });
        let heartbeat = plain.clone().map(|plain| {
            std::thread::spawn(move || {
                while !plain.done.load(Ordering::Relaxed) {
                    std::thread::sleep(HEARTBEAT_TICK);
                    if !plain.done.load(Ordering::Relaxed) {
                        plain.beat();
                    }
                }
            })
        });
        Self {
            bar,
            plain,
            heartbeat,
        }
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
        if let Some(plain) = &self.plain {
            plain.position.store(position, Ordering::Relaxed);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(plain) = &self.plain {
            plain.done.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
    }
}

fn terminal_bar(
    label: &str,
    enabled: bool,
    template: &str,
    total: Option<u64>,
) -> Option<ProgressBar> {
    if !(enabled && std::io::stderr().is_terminal()) {
        return None;
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template(template).expect("valid template")),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(label.to_string());
    Some(bar)
}
