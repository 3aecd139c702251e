//! Where messages go. stdout carries only data a script reads (`--json`); every human message
//! goes to stderr. In GitHub Actions warnings become `::warning::` annotations, elsewhere they
//! are `warning:` lines; both come from the same call site.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Failure;

/// `--quiet`, set once at start-up: like a logger's level, the one setting every message
/// site reads. What a command *reports* is not routed through here but rendered once by
/// `report`.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences `info` lines (warnings and errors still show).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether this process runs as a GitHub Actions step.
pub fn in_github_actions() -> bool {
    std::env::var_os(crate::env_vars::GITHUB_ACTIONS).is_some_and(|v| v == "true")
}

/// A progress or result line for people.
pub fn info(message: &str) {
    if !is_quiet() {
        eprintln!("{message}");
    }
}

/// A detail only worth seeing when debugging: a `::debug::` line in GitHub Actions (shown
/// when the run has debug logging on), nothing elsewhere.
pub fn debug(message: &str) {
    if in_github_actions() {
        eprintln!("::debug::{}", escape_annotation(message));
    }
}

/// Something the user can act on.
pub fn warn(message: &str) {
    if in_github_actions() {
        eprintln!("::warning::{}", escape_annotation(message));
    } else {
        eprintln!("warning: {message}");
    }
}

/// The error that ended a command: an annotation in Actions, then `error:` with its causes
/// and its hint.
pub fn failure(failure: &Failure) {
    if failure.kind == crate::error::Kind::Interrupted {
        // Not a fault: one line saying what was left unchanged.
        eprintln!("{}", failure.message);
        return;
    }
    if in_github_actions() {
        let mut whole = vec![failure.message.clone()];
        whole.extend(failure.causes.iter().cloned());
        eprintln!("::error::{}", escape_annotation(&whole.join(": ")));
    }
    let mut lines = failure.message.lines();
    eprintln!("error: {}", lines.next().unwrap_or_default());
    for line in lines {
        eprintln!("{line}");
    }
    for cause in &failure.causes {
        eprintln!("  Caused by: {}", cause.replace('\n', "\n  "));
    }
    if let Some(consequence) = &failure.consequence {
        eprintln!("{consequence}");
    }
    if let Some(hint) = &failure.hint {
        eprintln!("\nhint: {hint}");
    }
}

/// Annotation text is one line; GitHub decodes these three escapes.
fn escape_annotation(message: &str) -> String {
    message
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(312 * 1024 * 1024), "312.0 MiB");
    }

    #[test]
    fn annotations_stay_on_one_line() {
        assert_eq!(escape_annotation("a\nb%"), "a%0Ab%25");
    }
}
