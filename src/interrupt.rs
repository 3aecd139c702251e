//! SIGINT and SIGTERM: notice them, unwind through the ordinary error path, say what was left
//! unchanged, and exit 130 or 143.
//!
//! The handler only records the signal in an atomic; everything else happens on the normal
//! threads. Work loops call [`check`] (an atomic load) and blocking waits use short timeouts
//! ([`POLL`]) so that a stalled network read or a busy lock still notices within a second.
//! The error then travels like any other, so the guards that already exist do the rollback: a
//! restore's staging directories are removed on drop, a local upload's partial file is deleted
//! on drop, a GitHub upload that was never finalized is abandoned. GitHub Actions sends SIGINT
//! on cancel and SIGTERM a few seconds later; a second signal while cleaning up exits at once
//! with the first signal's code (what is left then is swept by the next run, see
//! [`crate::leftovers`]).
//!
//! This module knows nothing of archives or stores; it only knows signals, exit codes and the
//! words for "what was left as it was".

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signal received, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How long a blocking wait sleeps between looks at the signal flag.
pub const POLL: Duration = Duration::from_millis(100);

/// The work stopped because the process was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Interrupted by {}", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

impl Interrupted {
    /// 128 + the signal number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    {
        if signal == libc::SIGINT {
            return "SIGINT".into();
        }
        if signal == libc::SIGTERM {
            return "SIGTERM".into();
        }
    }
    format!("signal {signal}")
}

/// What the work was "interrupted after": a note a stage attaches (as `anyhow` context) when it
/// had already changed something before it noticed the signal, such as a restore whose swap
/// was done when heal was interrupted. [`report`] prints it instead of the command's "nothing
/// was changed" line.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct Done(pub String);

/// Installs the SIGINT and SIGTERM handlers. Call once, before any work starts.
pub fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic and, on a second signal, calls `_exit`, both
    // async-signal-safe. `sigaction` is given a zeroed struct with the handler and a mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handle as *const () as libc::sighandler_t;
        // SA_RESTART: a system call the signal lands in is resumed, not failed with EINTR; the
        // loops notice the flag through their timeouts instead.
        action.sa_flags = libc::SA_RESTART;
        // While one handler runs, the other signal waits, so two signals that arrive together
        // in one thread are taken in order (SIGINT first, as Linux delivers the lower number
        // first).
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaddset(&mut action.sa_mask, libc::SIGINT);
        libc::sigaddset(&mut action.sa_mask, libc::SIGTERM);
        for signal in [libc::SIGINT, libc::SIGTERM] {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(unix)]
extern "C" fn handle(signal: libc::c_int) {
    if let Err(first) = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst) {
        // A second signal while the first is being cleaned up: stop now. Whatever is left is
        // provably dead (its lock died with us) and the next run sweeps it.
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(128 + first) };
    }
}

/// The signal received so far, if any.
pub fn received() -> Option<Interrupted> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Interrupted { signal }),
    }
}

/// `Err` once a signal has arrived; call it in every loop that may run for long.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        None => Ok(()),
        Some(interrupted) => Err(interrupted),
    }
}

/// [`check`] for code that speaks `io::Result` (readers and writers between threads); the
/// `Interrupted` rides inside the `io::Error` and [`find`] digs it out again.
pub fn check_io() -> std::io::Result<()> {
    check().map_err(std::io::Error::other)
}

/// Waits until a signal arrives.
pub async fn signalled() -> Interrupted {
    loop {
        if let Some(interrupted) = received() {
            return interrupted;
        }
        tokio::time::sleep(POLL / 2).await;
    }
}

/// Runs `work` until it finishes or a signal arrives; on a signal the future is dropped, which
/// cancels whatever it was waiting for (spawned tasks held in a `JoinSet` are aborted).
pub async fn race<F: Future>(work: F) -> Result<F::Output, Interrupted> {
    tokio::select! {
        output = work => Ok(output),
        interrupted = signalled() => Err(interrupted),
    }
}

/// The `Interrupted` somewhere in an error's chain, also inside the `io::Error` a reader or a
/// writer returned.
pub fn find(error: &anyhow::Error) -> Option<Interrupted> {
    fn inner(error: &(dyn std::error::Error + 'static)) -> Option<Interrupted> {
        if let Some(found) = error.downcast_ref::<Interrupted>() {
            return Some(*found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(wrapped) = io.get_ref()
        {
            return inner(wrapped);
        }
        None
    }
    if let Some(found) = error.downcast_ref::<Interrupted>() {
        return Some(*found);
    }
    error.chain().find_map(inner)
}

/// The command that was interrupted, with what its message needs.
#[derive(Clone, Copy, Debug)]
pub enum Work<'a> {
    /// The `--path` values being restored (lines, as given).
    Restore(&'a [String]),
    Save,
    /// The uv cache being pruned.
    Prune(&'a Path),
    /// The uv cache being healed.
    Heal(&'a Path),
    Other,
}

/// If `error` is an interrupt: the lines to print (what was left unchanged) and the exit code.
/// The one place the wording lives, for whichever renderer prints errors.
pub fn report(error: &anyhow::Error, work: Work<'_>) -> Option<(String, u8)> {
    let interrupted = find(error)?;
    let done = error.downcast_ref::<Done>();
    let what = match (work, done) {
        (Work::Save, Some(done)) => format!("nothing was saved; the upload was aborted ({done})"),
        (_, Some(done)) => done.to_string(),
        (Work::Restore(paths), None) => format!(
            "nothing was restored; {} unchanged",
            paths
                .iter()
                .flat_map(|p| p.split('\n'))
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.starts_with('!'))
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Work::Save, None) => "nothing was saved; the upload was aborted".to_string(),
        (Work::Prune(path), None) => format!("nothing was removed; `{}` unchanged", path.display()),
        (Work::Heal(path), None) => format!("nothing was healed; `{}` unchanged", path.display()),
        (Work::Other, None) => "nothing was changed".to_string(),
    };
    Some((format!("Interrupted: {what}"), interrupted.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(Interrupted { signal: 2 }.exit_code(), 130);
        assert_eq!(Interrupted { signal: 15 }.exit_code(), 143);
        assert_eq!(
            Interrupted { signal: 2 }.to_string(),
            "Interrupted by SIGINT"
        );
        assert_eq!(
            Interrupted { signal: 15 }.to_string(),
            "Interrupted by SIGTERM"
        );
    }

    #[test]
    fn found_inside_io_errors_and_context() {
        let io = std::io::Error::other(Interrupted { signal: 15 });
        let error = anyhow::Error::new(io).context("reading the archive");
        assert_eq!(find(&error), Some(Interrupted { signal: 15 }));
        let (line, code) = report(&error, Work::Restore(&["a".into(), "b".into()])).unwrap();
        assert_eq!(
            line,
            "Interrupted: nothing was restored; `a`, `b` unchanged"
        );
        assert_eq!(code, 143);
        assert!(report(&anyhow::anyhow!("disk full"), Work::Save).is_none());
    }

    #[test]
    fn a_done_note_replaces_the_unchanged_line() {
        let error = anyhow::Error::new(Interrupted { signal: 2 })
            .context(Done("restored `k` into `a`; heal stopped".into()))
            .context("restoring");
        let (line, _) = report(&error, Work::Restore(&["a".into()])).unwrap();
        assert_eq!(line, "Interrupted: restored `k` into `a`; heal stopped");
    }
}
