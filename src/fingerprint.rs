//! A fingerprint of the paths a save would archive: every member name with its type, size,
//! modification time and link target, hashed. It reads no file content, so it costs one `stat`
//! per file.
//!
//! The restore step records it right after the swap and the save step compares it, to skip
//! uploading an entry that an exact hit restored and nothing changed (rust-cache's "Cache
//! up-to-date"). A change that keeps a file's size and its modification time to the nanosecond
//! is missed; uv never rewrites a cache file in place, it writes new files and renames them.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::paths::SavePlan;

/// The fingerprint of everything `plan` would archive, honouring its excludes.
pub fn of_plan(plan: &SavePlan) -> Result<String> {
    let mut hasher = Sha256::new();
    plan.walk(|root, entry| {
        if entry.depth() == 0 {
            hasher.update(root.member_name.as_bytes());
            hasher.update(b"\0root\n");
        }
        let rel = entry
            .path()
            .strip_prefix(&root.absolute)
            .unwrap_or(entry.path());
        let meta = entry
            .path()
            .symlink_metadata()
            .with_context(|| format!("reading `{}`", entry.path().display()))?;
        let kind = if meta.file_type().is_symlink() {
            let target = fs_err::read_link(entry.path())?;
            format!("l {}", target.display())
        } else if meta.is_dir() {
            "d".to_string()
        } else {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("f {} {mtime}", meta.len())
        };
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        hasher.update(kind.as_bytes());
        hasher.update(b"\n");
        Ok(())
    })?;
    Ok(hex::encode(hasher.finalize()))
}
