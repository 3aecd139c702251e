//! uv's cache lock, `<cache>/.lock`.
//!
//! Every uv command holds it shared while it runs; `uv cache prune` and `uv cache clean` take
//! it exclusive and say they are waiting when it is busy (uv `Cache::init` and
//! `commands/cache_prune.rs`). These are `flock` locks on Unix, so cache-heal takes the same
//! lock the same way and coordinates with uv without knowing anything else about it. Shard
//! locks (`<shard>/.lock`, exclusive) guard one source distribution while uv builds it; heal
//! takes those too before it writes a `src/` directory. `save` only reads a cache, so it takes
//! the root lock shared, as any uv command does, and never creates the lock file.

use anyhow::{Context, Result};
use std::fs::{File, TryLockError};
use std::path::Path;

use crate::output;

/// A held lock; released on drop (closing the file releases a `flock`).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// Locks `<root>/.lock`, saying so when it has to wait for another process.
pub fn lock_cache(root: &Path, mode: Mode) -> Result<LockGuard> {
    lock_file(&root.join(".lock"), mode, || say_waiting(root))
}

/// Locks `<root>/.lock` shared to read the cache without changing it (what `save` does while it
/// walks a uv cache): an existing lock file is opened read-only, which is all a `flock` needs,
/// so a read-only cache can be saved too; a missing one is not created, so reading never adds a
/// file. Every uv command creates `.lock` when it opens the cache (uv `Cache::init`), so no uv
/// process has a cache without one open: then there is nothing to wait for, and `None`.
pub fn lock_cache_to_read(root: &Path) -> Result<Option<LockGuard>> {
    let path = root.join(".lock");
    let file = match fs_err::File::open(&path) {
        Ok(file) => file.into_file(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let guard = lock_open_file(file, &path, Mode::Shared, || say_waiting(root))?;
    Ok(Some(guard))
}

fn say_waiting(root: &Path) {
    output::info(&format!(
        "Waiting for uv's cache lock at `{}` (another uv process is using it); pass `--force` to skip",
        root.join(".lock").display()
    ));
}

/// Takes uv's cache lock, exclusive, on every path in `paths` that is a uv cache, as
/// `uv cache clean` does before it removes one: a restore replaces such a path whole and must
/// not do it under a running uv. Paths that do not exist yet, or are no uv cache, need none.
pub fn lock_caches_for_replacing(paths: &[std::path::PathBuf]) -> Result<Vec<LockGuard>> {
    paths
        .iter()
        .filter(|p| crate::uv::layout::Layout::is_uv_cache(p))
        .map(|p| lock_cache(p, Mode::Exclusive))
        .collect()
}

/// Locks a shard's `.lock` exclusively, as uv does while building from that shard.
pub fn lock_shard(shard: &Path) -> Result<LockGuard> {
    lock_file(&shard.join(".lock"), Mode::Exclusive, || {
        output::info(&format!(
            "Waiting for uv to release the lock on `{}`",
            shard.display()
        ));
    })
}

fn lock_file(path: &Path, mode: Mode, on_wait: impl FnOnce()) -> Result<LockGuard> {
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?
        .into_file();
    lock_open_file(file, path, mode, on_wait)
}

fn lock_open_file(
    file: File,
    path: &Path,
    mode: Mode,
    on_wait: impl FnOnce(),
) -> Result<LockGuard> {
    let attempt = match mode {
        Mode::Shared => file.try_lock_shared(),
        Mode::Exclusive => file.try_lock(),
    };
    match attempt {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            on_wait();
            // Try again in short steps rather than block in `flock`, so that a signal is
            // noticed while waiting.
            loop {
                crate::interrupt::check()?;
                std::thread::sleep(crate::interrupt::POLL);
                let attempt = match mode {
                    Mode::Shared => file.try_lock_shared(),
                    Mode::Exclusive => file.try_lock(),
                };
                match attempt {
                    Ok(()) => break,
                    Err(TryLockError::WouldBlock) => continue,
                    Err(TryLockError::Error(error)) => {
                        return Err(error).with_context(|| format!("locking `{}`", path.display()));
                    }
                }
            }
        }
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("locking `{}`", path.display()));
        }
    }
    Ok(LockGuard { _file: file })
}
