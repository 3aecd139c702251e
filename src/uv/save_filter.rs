//! What `save` leaves out of a uv cache: what a prune would remove (by default exactly `uv cache
//! prune --ci`'s removals; see [`prune::Keep`]), taken out of what is packed instead of off the
//! disk.
//!
//! Pruning in place before a save cost users their cache whenever the save then failed or was
//! skipped (issue 9, row 3), and it removed the sources heal had just added for the job that
//! still runs. So `save` plans the prune ([`prune::plan_with_unlinked_files`], the same plan the
//! `prune` command executes) and turns every removal into a path the save walk skips; the cache
//! on disk is never changed. Only the `prune` command prunes in place, as uv's does.
//!
//! While a save reads a uv cache it holds uv's cache lock shared, as every uv command does, so
//! a `uv cache prune` or `uv cache clean` cannot remove files under the walk.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::lock::{self, LockGuard};
use super::prune;
use crate::output::{self, human_bytes};
use crate::paths::SavePlan;

/// What a save leaves out of the uv caches among its paths, and the locks it holds on them
/// while it reads them: keep this value alive until the archive is written.
#[derive(Debug, Default)]
pub struct LeftOut {
    /// Files (and symlinks) left out, over every uv cache.
    pub files: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Every uv cache among the saved paths, with what was left out of it.
    pub caches: Vec<CacheLeftOut>,
    _locks: Vec<LockGuard>,
}

/// What was left out of one uv cache.
#[derive(Debug)]
pub struct CacheLeftOut {
    pub root: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

/// What a save leaves out of a uv cache (`--prune`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pruning {
    /// What a prune keeping these wheels removes.
    LeaveOut(prune::Keep),
    /// Nothing (`--prune none`).
    KeepAll,
}

/// For every saved root that is a uv cache: takes uv's lock shared (not with `force`; says so
/// when it waits), and with [`Pruning::LeaveOut`] leaves out of `plan` what that prune
/// removes, with one info line per cache and prune's warnings (what it leaves alone).
pub fn apply(plan: &mut SavePlan, pruning: Pruning, force: bool) -> Result<LeftOut> {
    let mut left_out = LeftOut::default();
    for root in uv_caches(plan) {
        if !force && let Some(guard) = lock::lock_cache_to_read(&root)? {
            left_out._locks.push(guard);
        }
        let Pruning::LeaveOut(keep) = pruning else {
            continue;
        };
        let pruned = prune_plan(&root, keep)?;
        for warning in &pruned.warnings {
            output::warn(warning);
        }
        let cache = leave_out(plan, root, pruned);
        output::info(&format!(
            "Left out {}: {} files ({}) of `{}`; the cache on disk is unchanged",
            what_is_left_out(keep),
            cache.files,
            human_bytes(cache.bytes),
            cache.root.display()
        ));
        left_out.files += cache.files;
        left_out.bytes += cache.bytes;
        left_out.caches.push(cache);
    }
    Ok(left_out)
}

fn what_is_left_out(keep: prune::Keep) -> &'static str {
    match keep {
        prune::Keep::AllWheels => "unpacked sources and stale entries (pre-built wheels kept)",
        prune::Keep::BuiltWheels => "what `uv cache prune --ci` removes",
    }
}

/// The same exclusions, quietly and without locks: for the fingerprint a restore records, so
/// that the save step compares what it would pack with what was restored.
pub fn apply_quietly(plan: &mut SavePlan) -> Result<()> {
    for root in uv_caches(plan) {
        let pruned = prune_plan(&root, prune::Keep::default())?;
        leave_out(plan, root, pruned);
    }
    Ok(())
}

/// The saved roots that are uv caches.
fn uv_caches(plan: &SavePlan) -> Vec<PathBuf> {
    plan.roots
        .iter()
        .map(|r| r.absolute.clone())
        .filter(|r| Layout::is_uv_cache(r))
        .collect()
}

fn prune_plan(root: &Path, keep: prune::Keep) -> Result<prune::PrunePlan> {
    Layout::discover(root)
        .and_then(|layout| prune::plan_with_unlinked_files(&layout, keep))
        .with_context(|| {
            format!(
                "planning what to leave out of the uv cache at `{}`",
                root.display()
            )
        })
}

fn leave_out(plan: &mut SavePlan, root: PathBuf, pruned: prune::PrunePlan) -> CacheLeftOut {
    let cache = CacheLeftOut {
        root,
        files: pruned.files(),
        bytes: pruned.bytes(),
    };
    for removal in pruned.removals {
        plan.leave_out(removal.path);
    }
    cache
}
