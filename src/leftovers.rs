//! Leftovers of killed runs: staging directories beside a restore target and partial uploads in
//! a local store, proven dead and swept by the next run.
//!
//! A SIGINT or SIGTERM unwinds through the guards (see [`crate::interrupt`]); a SIGKILL, an OOM
//! kill or a power cut does not, and leaves `.cache-heal-staging-*` directories and
//! `tmp/upload-*.partial` files behind, hundreds of megabytes each. Age proves nothing (a
//! restore of a large cache on a slow link is old and alive), so each of these carries a
//! *liveness lock*: an exclusive `flock` its owner holds for as long as it lives. The kernel
//! drops the lock when the owner dies however it dies, so a sweeper that can take the lock
//! knows the owner is gone, and removes the leftover while holding it.
//!
//! The lock is taken *before* the leftover gets the name the sweeper looks for: a staging
//! directory's lock file is locked under a temporary name and then renamed to [`LIVE_FILE`], an
//! upload is locked as `upload-*.new` and then renamed to `upload-*.partial`. A sweeper that
//! sees the final name therefore always finds it locked while its owner lives. A directory
//! without a lock file (one cache-heal made before this, or one killed in the instant between
//! the two steps) is not provably dead and is left alone.

use anyhow::{Context, Result};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::output::{self, human_bytes};

/// The lock file inside a staging directory.
pub const LIVE_FILE: &str = ".cache-heal-live";

/// Holds a liveness lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct LiveMark {
    _file: File,
}

/// Marks `dir` (a fresh staging directory) as owned by this process.
pub fn mark_dir(dir: &Path) -> Result<LiveMark> {
    let temporary = dir.join(format!("{LIVE_FILE}.new"));
    let file = fs_err::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&temporary)?
        .into_file();
    file.try_lock()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("locking `{}`", temporary.display()))?;
    fs_err::rename(&temporary, dir.join(LIVE_FILE))?;
    Ok(LiveMark { _file: file })
}

/// Marks an open file (an upload being written) as owned by this process; rename it to the
/// name sweepers look for only after this.
pub fn mark_file(file: &File, path: &Path) -> Result<()> {
    file.try_lock()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("locking `{}`", path.display()))
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub count: u64,
    pub bytes: u64,
}

/// Removes the staging directories in `parent` whose owner is dead, and says so in one line.
pub fn sweep_staging(parent: &Path) -> Swept {
    let mut swept = Swept::default();
    for path in children(parent, ".cache-heal-staging-", "") {
        let Ok(file) = File::options().read(true).open(path.join(LIVE_FILE)) else {
            continue;
        };
        if !lock_of_the_dead(&file) {
            continue;
        }
        let bytes = tree_size(&path);
        if crate::archive::unpack::remove_tree(&path).is_ok() {
            swept.count += 1;
            swept.bytes += bytes;
        }
    }
    if swept.count > 0 {
        output::info(&format!(
            "Removed {} staging director{} left in `{}` by a killed restore ({} reclaimed)",
            swept.count,
            if swept.count == 1 { "y" } else { "ies" },
            parent.display(),
            human_bytes(swept.bytes)
        ));
    }
    swept
}

/// Removes the partial uploads in `dir` (a local store's `tmp/`) whose owner is dead, and says
/// so in one line.
pub fn sweep_uploads(dir: &Path) -> Swept {
    let mut swept = Swept::default();
    for path in children(dir, "upload-", ".partial") {
        let Ok(file) = File::options().read(true).open(&path) else {
            continue;
        };
        if !lock_of_the_dead(&file) {
            continue;
        }
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        if fs_err::remove_file(&path).is_ok() {
            swept.count += 1;
            swept.bytes += bytes;
        }
    }
    if swept.count > 0 {
        output::info(&format!(
            "Removed {} partial upload{} left in `{}` by a killed save ({} reclaimed)",
            swept.count,
            if swept.count == 1 { "" } else { "s" },
            dir.display(),
            human_bytes(swept.bytes)
        ));
    }
    swept
}

/// Whether the lock on `file` can be taken, which proves its owner is dead. The lock is held
/// until `file` is closed, after the caller removed the leftover.
fn lock_of_the_dead(file: &File) -> bool {
    match file.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(_)) => false,
    }
}

fn children(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(items) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    items
        .flatten()
        .filter(|item| {
            let name = item.file_name();
            let name = name.to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix) && name.len() > prefix.len()
        })
        .map(|item| item.path())
        .collect()
}

fn tree_size(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_staging_directory_is_left_alone_and_a_dead_one_swept() {
        let parent = tempfile::tempdir().unwrap();
        let live = parent.path().join(".cache-heal-staging-live");
        let dead = parent.path().join(".cache-heal-staging-dead");
        let unknown = parent.path().join(".cache-heal-staging-unknown");
        for dir in [&live, &dead, &unknown] {
            fs_err::create_dir(dir).unwrap();
            fs_err::write(dir.join("data"), vec![0u8; 1000]).unwrap();
        }
        let _held = mark_dir(&live).unwrap();
        drop(mark_dir(&dead).unwrap());
        let swept = sweep_staging(parent.path());
        assert_eq!(swept.count, 1);
        assert_eq!(swept.bytes, 1000);
        assert!(live.exists() && unknown.exists() && !dead.exists());
    }

    #[test]
    fn a_live_upload_is_left_alone_and_a_dead_one_swept() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("upload-a.partial");
        let dead = dir.path().join("upload-b.partial");
        let held = fs_err::File::create(&live).unwrap().into_file();
        mark_file(&held, &live).unwrap();
        fs_err::write(&dead, b"12345").unwrap();
        let swept = sweep_uploads(dir.path());
        assert_eq!(swept, Swept { count: 1, bytes: 5 });
        assert!(live.exists() && !dead.exists());
    }
}
