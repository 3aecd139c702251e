//! Prune a uv cache to what `uv cache prune --ci` keeps: wheels built from source, their
//! metadata and the revision pointers; everything uv can download again goes. Or, with `save
//! --prune wheels` ([`Keep::AllWheels`]), keep the pre-built wheels from the index as well.
//!
//! The rules are uv's (uv `prune` in `crates/uv-distribution/src/source/mod.rs` and
//! `Cache::prune` in `crates/uv-cache/src/lib.rs`; docs/uv-cache.md §3), applied to the buckets
//! of the uv line that last used the cache:
//!
//! 1. stale revisions: next to a `revision.http`/`revision.rev`, every directory but the
//!    current revision goes;
//! 2. buckets of an older uv line (`sdists-v9` in a 0.13 cache) go, as uv removes them;
//! 3. `environments-v2/*` and `builds-v0/*` go;
//! 4. `--ci`: every directory directly under the wheels bucket goes; in the sdist bucket, every
//!    directory holding a `metadata.msgpack` keeps only that file, its `*.whl` files and its
//!    build-settings sub-shards (directories with their own `metadata.msgpack`);
//! 5. unzipped wheels in `archive-v0` that nothing links to any more go, then `files-v0`
//!    objects no archive links to.
//!
//! Where we differ, on purpose: a top-level entry we do not recognise (a bucket of a newer uv,
//! a stray file) is left alone with a warning, where uv deletes it; and a revision pointer we
//! cannot read protects its whole shard. Everything is planned before anything is deleted, so
//! `--dry-run` shows exactly what a real run removes.

use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use walkdir::WalkDir;

use super::layout::{BucketKind, Generation, Layout};
use super::revision::{self, METADATA, REVISION_HTTP, REVISION_REV};

/// One path that prune removes, with what it holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Removal {
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    StaleRevision,
    OldBucket,
    Environment,
    BuildEnvironment,
    PrebuiltWheel,
    SourceTree,
    UnusedArchive,
    UnusedFile,
}

/// What prune will remove and what it leaves alone.
#[derive(Debug, Default, serde::Serialize)]
pub struct PrunePlan {
    pub removals: Vec<Removal>,
    /// Things left untouched, each with why (shown as warnings).
    pub warnings: Vec<String>,
}

impl PrunePlan {
    pub fn files(&self) -> u64 {
        self.removals.iter().map(|r| r.files).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.removals.iter().map(|r| r.bytes).sum()
    }
}

/// Which wheels a prune keeps. Sources, stale revisions, environments and build environments
/// go either way.
///
/// `uv cache prune --ci` drops the pre-built wheels too, on the theory that the index serves
/// them about as fast as a cache restores them; `bench/ready-env.sh` agrees when the index is
/// as fast as the cache service, so that is `save`'s default. setup-uv turned its
/// `prune-cache` off in July 2026 after measuring the opposite on hosted runners for most
/// workloads (`docs/anchors.md` §1.2), which is what `--prune wheels` is for: a job whose
/// wheels are restored makes no index requests for them at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// Only wheels built from source, as `uv cache prune --ci`.
    #[default]
    BuiltWheels,
    /// Every wheel: the pre-built ones unzipped from the index and the ones built from source.
    AllWheels,
}

/// Plans a prune of the cache at `layout.root` (`--ci`'s with [`Keep::BuiltWheels`]).
/// Nothing is changed.
pub fn plan(layout: &Layout, keep: Keep) -> Result<PrunePlan> {
    let mut plan = PrunePlan::default();
    for unknown in layout.unknown_buckets() {
        plan.warnings.push(format!(
            "Left `{}` untouched: it looks like a uv bucket, but not one of a uv version cache-heal knows (0.12.x, 0.13.x)",
            unknown.path.display()
        ));
    }
    let Some(current) = layout.current_generation() else {
        return Ok(plan);
    };
    let mut removed: Vec<PathBuf> = Vec::new();
    for bucket in &layout.buckets {
        if !bucket.generations.contains(&current) {
            removed.push(bucket.path.clone());
            plan.removals.push(removal(&bucket.path, Reason::OldBucket));
        }
    }
    for bucket in layout.buckets_of(BucketKind::Sdists) {
        if bucket.generations.contains(&current) {
            prune_sdists(&bucket.path, current, &mut plan, &mut removed)?;
        }
    }
    for bucket in layout
        .buckets
        .iter()
        .filter(|b| b.generations.contains(&current))
    {
        let reason = match bucket.kind {
            BucketKind::Wheels if keep == Keep::BuiltWheels => Reason::PrebuiltWheel,
            BucketKind::Environments => Reason::Environment,
            BucketKind::Builds => Reason::BuildEnvironment,
            _ => continue,
        };
        for child in child_dirs_and_files(&bucket.path, bucket.kind == BucketKind::Wheels)? {
            removed.push(child.clone());
            plan.removals.push(removal(&child, reason));
        }
    }
    prune_archives(layout, current, &mut plan, &removed)?;
    Ok(plan)
}

/// Removes what the plan lists. A path already gone is not an error.
pub fn execute(plan: &PrunePlan) -> Result<()> {
    for (done, removal) in plan.removals.iter().enumerate() {
        stop_if_interrupted(|| {
            (done > 0).then(|| {
                format!(
                    "the prune removed {done} of {} paths before it stopped; the rest is unchanged",
                    plan.removals.len()
                )
            })
        })?;
        remove(&removal.path)?;
    }
    Ok(())
}

/// Everything a prune of the cache at `layout.root` removes, [`plan`] and the `files-v0`
/// objects that executing it leaves unlinked, computed without changing anything. `save`
/// leaves exactly these paths out of what it packs.
pub fn plan_with_unlinked_files(layout: &Layout, keep: Keep) -> Result<PrunePlan> {
    let mut plan = plan(layout, keep)?;
    let unlinked = unlinked_files(layout, &plan.removals)?;
    plan.removals.extend(unlinked);
    Ok(plan)
}

/// Stops between two removals on a signal, with a note of how far the prune got when it had
/// removed anything (what prune removes is what uv can download or build again, so stopping
/// part-way loses nothing). One removal is never split: half an entry is worse than a whole one.
fn stop_if_interrupted(done: impl FnOnce() -> Option<String>) -> Result<()> {
    crate::interrupt::check().map_err(|interrupted| {
        let error = anyhow::Error::new(interrupted);
        match done() {
            Some(note) => error.context(crate::interrupt::Done(note)),
            None => error,
        }
    })
}

/// Removes `files-v0` objects that nothing links to any more; run after [`execute`], since
/// removing archives is what drops their link counts. Returns what it removed.
pub fn prune_unlinked_files(layout: &Layout, dry_run: bool) -> Result<Vec<Removal>> {
    let out = unlinked_files(layout, &[])?;
    if !dry_run {
        for (done, removal) in out.iter().enumerate() {
            stop_if_interrupted(|| {
                Some(format!(
                    "the prune removed what it planned and {done} of {} unused files before it stopped; the rest is unchanged",
                    out.len()
                ))
            })?;
            remove(&removal.path)?;
        }
    }
    Ok(out)
}

/// The `files-v0` objects whose only link, once `removals` are gone, is their own name (uv
/// `prune_archive_files` removes those whose link count is 1). A link inside a removal does not
/// count, so this answers before anything is removed as well as after.
fn unlinked_files(layout: &Layout, removals: &[Removal]) -> Result<Vec<Removal>> {
    let buckets: Vec<_> = layout.buckets_of(BucketKind::Files).collect();
    if buckets.is_empty() {
        return Ok(Vec::new());
    }
    let going = links_inside(removals)?;
    let mut out = Vec::new();
    for bucket in buckets {
        for entry in WalkDir::new(&bucket.path).min_depth(1) {
            let entry = entry?;
            if !entry.file_type().is_file() {
                continue;
            }
            let meta = entry.metadata()?;
            let (links, inode) = links_and_inode(&meta);
            let left =
                links.saturating_sub(inode.and_then(|i| going.get(&i).copied()).unwrap_or(0));
            if left <= 1 {
                out.push(Removal {
                    path: entry.path().to_path_buf(),
                    files: 1,
                    bytes: meta.len(),
                    reason: Reason::UnusedFile,
                });
            }
        }
    }
    Ok(out)
}

/// How many links to each inode sit inside `removals` (files only; links are not followed).
fn links_inside(removals: &[Removal]) -> Result<HashMap<(u64, u64), u64>> {
    let mut going = HashMap::new();
    for removal in removals {
        for entry in WalkDir::new(&removal.path).follow_links(false) {
            let entry = match entry {
                Ok(entry) => entry,
                // Already gone: after `execute`, every removal is.
                Err(error)
                    if error
                        .io_error()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if entry.file_type().is_file()
                && let (_, Some(inode)) = links_and_inode(&entry.metadata()?)
            {
                *going.entry(inode).or_insert(0) += 1;
            }
        }
    }
    Ok(going)
}

/// A file's link count and `(device, inode)`.
#[cfg(unix)]
fn links_and_inode(meta: &std::fs::Metadata) -> (u64, Option<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    (meta.nlink(), Some((meta.dev(), meta.ino())))
}

/// Without link counts, every object counts as linked, and none is removed.
#[cfg(not(unix))]
fn links_and_inode(_meta: &std::fs::Metadata) -> (u64, Option<(u64, u64)>) {
    (2, None)
}

/// Steps 1 and 4 for one sdist bucket.
fn prune_sdists(
    bucket: &Path,
    generation: Generation,
    plan: &mut PrunePlan,
    removed: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut protected: Vec<PathBuf> = Vec::new();
    let mut walk = WalkDir::new(bucket).follow_links(false).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.with_context(|| format!("walking `{}`", bucket.display()))?;
        if !entry.file_type().is_dir() {
            continue;
        }
        let dir = entry.path();
        if under_any(dir, removed) {
            walk.skip_current_dir();
            continue;
        }
        let pointer = [REVISION_HTTP, REVISION_REV]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file());
        if let Some(pointer) = pointer {
            match revision::read(&pointer, generation) {
                Ok(rev) => {
                    for child in subdirs(dir)? {
                        if child.file_name().is_some_and(|n| n != rev.id.as_str()) {
                            removed.push(child.clone());
                            plan.removals.push(removal(&child, Reason::StaleRevision));
                        }
                    }
                }
                Err(error) => {
                    plan.warnings
                        .push(format!("Left `{}` untouched: {error}", dir.display()));
                    protected.push(dir.to_path_buf());
                    walk.skip_current_dir();
                    continue;
                }
            }
        }
        if dir.join(METADATA).is_file() {
            for child in fs_err::read_dir(dir)? {
                let child = child?;
                let path = child.path();
                let kind = child.file_type()?;
                let name = child.file_name();
                let keep = if kind.is_dir() {
                    path.join(METADATA).is_file()
                } else {
                    name == METADATA
                        || (kind.is_file()
                            && Path::new(&name).extension().is_some_and(|e| e == "whl"))
                };
                if !keep && !under_any(&path, removed) {
                    removed.push(path.clone());
                    plan.removals.push(removal(&path, Reason::SourceTree));
                }
            }
        }
    }
    Ok(())
}

/// Step 5: `archive-v0/<id>` directories no remaining link points to.
fn prune_archives(
    layout: &Layout,
    current: Generation,
    plan: &mut PrunePlan,
    removed: &[PathBuf],
) -> Result<()> {
    let Some(archive) = layout.buckets_of(BucketKind::Archive).next() else {
        return Ok(());
    };
    let mut referenced: HashSet<PathBuf> = HashSet::new();
    let linking = layout.buckets.iter().filter(|b| {
        matches!(b.kind, BucketKind::Sdists | BucketKind::Wheels)
            && b.generations.contains(&current)
    });
    for bucket in linking {
        let mut walk = WalkDir::new(&bucket.path).follow_links(false).into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry?;
            if under_any(entry.path(), removed) {
                if entry.file_type().is_dir() {
                    walk.skip_current_dir();
                }
                continue;
            }
            if entry.file_type().is_symlink() {
                let target = fs_err::read_link(entry.path())?;
                let parent = entry.path().parent().unwrap_or(Path::new(""));
                let resolved = crate::paths::normalize(&parent.join(target));
                if let Ok(rest) = resolved.strip_prefix(&archive.path)
                    && let Some(Component::Normal(id)) = rest.components().next()
                {
                    referenced.insert(archive.path.join(id));
                }
            }
        }
    }
    for child in child_dirs_and_files(&archive.path, false)? {
        if !referenced.contains(&child) {
            plan.removals.push(removal(&child, Reason::UnusedArchive));
        }
    }
    Ok(())
}

fn under_any(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for child in fs_err::read_dir(dir)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            out.push(child.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The children of a bucket to remove: all of them, or only directories (the wheels bucket
/// keeps its own top-level files).
fn child_dirs_and_files(dir: &Path, dirs_only: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for child in fs_err::read_dir(dir)? {
        let child = child?;
        if !dirs_only || child.file_type()?.is_dir() {
            out.push(child.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A removal with its file count and size, measured without following links.
fn removal(path: &Path, reason: Reason) -> Removal {
    let (mut files, mut bytes) = (0, 0);
    for entry in WalkDir::new(path).follow_links(false).into_iter().flatten() {
        if !entry.file_type().is_dir() {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    Removal {
        path: path.to_path_buf(),
        files,
        bytes,
        reason,
    }
}

fn remove(path: &Path) -> Result<()> {
    let meta = match fs_err::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if meta.is_dir() {
        fs_err::remove_dir_all(path)?;
    } else {
        fs_err::remove_file(path)?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A 0.13 cache with two `files-v0` objects, each hard-linked into an unzipped wheel that
    /// nothing links to: one object has a third link outside the cache (a virtualenv installed
    /// by hard links), the other none.
    fn cache_with_content_addressed_files() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        for bucket in ["wheels-v8", "archive-v0/A", "files-v0/ab"] {
            fs_err::create_dir_all(root.join(bucket)).unwrap();
        }
        fs_err::write(root.join("files-v0/ab/only-here"), "one").unwrap();
        fs_err::write(root.join("files-v0/ab/also-in-venv"), "two").unwrap();
        fs_err::hard_link(
            root.join("files-v0/ab/only-here"),
            root.join("archive-v0/A/one.py"),
        )
        .unwrap();
        fs_err::hard_link(
            root.join("files-v0/ab/also-in-venv"),
            root.join("archive-v0/A/two.py"),
        )
        .unwrap();
        fs_err::hard_link(
            root.join("files-v0/ab/also-in-venv"),
            dir.path().join("two.py"),
        )
        .unwrap();
        let layout = Layout::discover(&root).unwrap();
        (dir, layout)
    }

    fn paths(removals: &[Removal], reason: Reason) -> Vec<PathBuf> {
        removals
            .iter()
            .filter(|r| r.reason == reason)
            .map(|r| r.path.clone())
            .collect()
    }

    /// Planned without removing anything, the unlinked objects are the ones a real prune
    /// removes after the unused archive is gone.
    #[test]
    fn unlinked_files_are_planned_as_a_real_prune_finds_them() {
        let (dir, layout) = cache_with_content_addressed_files();
        let root = dir.path().join("cache");
        let planned = plan_with_unlinked_files(&layout, Keep::BuiltWheels).unwrap();
        assert_eq!(
            paths(&planned.removals, Reason::UnusedArchive),
            [root.join("archive-v0/A")]
        );
        assert_eq!(
            paths(&planned.removals, Reason::UnusedFile),
            [root.join("files-v0/ab/only-here")]
        );
        assert!(
            root.join("archive-v0/A/one.py").exists(),
            "planning removed"
        );

        execute(&plan(&layout, Keep::BuiltWheels).unwrap()).unwrap();
        let removed = prune_unlinked_files(&layout, false).unwrap();
        assert_eq!(
            paths(&removed, Reason::UnusedFile),
            [root.join("files-v0/ab/only-here")]
        );
        assert!(!root.join("files-v0/ab/only-here").exists());
        assert!(root.join("files-v0/ab/also-in-venv").exists());
    }
}
