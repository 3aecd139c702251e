//! `cache-heal save`: plan (key, version, paths, store; all checked before anything is read)
//! → store writable? → what to archive (uv caches as `uv cache prune --ci` would leave them,
//! by default; the cache on disk is never changed) → up to date? → reserve → pack into the
//! upload → publish → report.

use anyhow::Result;
use std::io::Write;
use std::time::{Duration, Instant};

use super::actions::{self, SaveKey};
use super::{PathContext, progress_enabled, report_store_trouble};
use crate::archive::level::Level;
use crate::archive::pack;
use crate::cli::{GlobalArgs, SaveArgs};
use crate::key::{self, Compression};
use crate::output;
use crate::paths;
use crate::progress::Progress;
use crate::report::save::{LevelUse, SaveStatus};
use crate::report::{Report, SaveReport};
use crate::store::{self, NewEntry, Published, Reservation, Store, StoreSpec, Upload};
use crate::uv::save_filter;

/// Everything a save needs, resolved and checked from the flags before anything is read.
pub struct SavePlan {
    ctx: PathContext,
    key: SaveKey,
    version: String,
    compression: Compression,
    level: Level,
    store: StoreSpec,
    prune: crate::cli::PruneMode,
    force: bool,
}

impl SavePlan {
    pub fn new(args: &SaveArgs) -> Result<Self> {
        // The save action passes its `key` input even when it is empty: then the restore
        // step's key is used.
        let explicit_key = args.key.as_deref().filter(|k| !k.trim().is_empty());
        if let Some(key) = explicit_key {
            key::validate_key(key).map_err(crate::UsageError::from)?;
        }
        let ctx = super::path_context(&args.paths)?;
        let compression = args.paths.compression;
        args.compression_level
            .check(compression)
            .map_err(crate::UsageError::Invalid)?;
        let version = key::entry_version(&ctx.inputs.lines, compression);
        let key = actions::save_key(explicit_key, &ctx, &version)?;
        key::validate_key(&key.key).map_err(crate::UsageError::from)?;
        let store = StoreSpec::parse(
            args.store.store.as_deref(),
            &ctx.roots.cwd,
            ctx.roots.home.as_deref(),
        )?
        .configure(&args.store);
        Ok(Self {
            ctx,
            key,
            version,
            compression,
            level: args.compression_level,
            store,
            prune: if args.no_prune {
                crate::cli::PruneMode::None
            } else {
                args.prune
            },
            force: args.force,
        })
    }

    fn pruning(&self) -> save_filter::Pruning {
        use crate::cli::PruneMode;
        use crate::uv::prune::Keep;
        match self.prune {
            PruneMode::Wheels => save_filter::Pruning::LeaveOut(Keep::AllWheels),
            PruneMode::Ci => save_filter::Pruning::LeaveOut(Keep::BuiltWheels),
            PruneMode::None => save_filter::Pruning::KeepAll,
        }
    }

    fn report(&self, status: SaveStatus) -> SaveReport {
        SaveReport {
            status,
            key: self.key.key.clone(),
            version: self.version.clone(),
            store: self.store.describe(),
            paths: self.ctx.inputs.lines.clone(),
            reason: None,
            bytes: 0,
            content_bytes: 0,
            files: 0,
            compression: self.compression,
            level_setting: self.level,
            compression_levels: Vec::new(),
            pruned_files: 0,
            pruned_bytes: 0,
            seconds: 0.0,
            timings: Default::default(),
            bound: None,
        }
    }
}

pub fn run(args: &SaveArgs, global: &GlobalArgs) -> Result<Report> {
    let started = Instant::now();
    let plan = SavePlan::new(args)?;
    let mut report = plan.report(SaveStatus::Saved);
    save(&plan, global, &mut report)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(Report::Save(report))
}

/// The stages, top to bottom. A store that cannot take the entry is found out before the
/// paths are read, and is a warning, not an error (actions/cache never fails a build over a
/// save).
fn save(plan: &SavePlan, global: &GlobalArgs, report: &mut SaveReport) -> Result<()> {
    let key = &plan.key.key;
    let store = plan.store.open()?;
    report.store = store.describe();
    report.timings.remote = store.local_root().is_none();
    if let Err(error) = store.check_writable() {
        return not_saved(key, error, report);
    }
    let mut tree = paths::resolve_for_save(&plan.ctx.inputs, &plan.ctx.roots)?;
    // Leave out what pruning removes before the up-to-date check: the sources heal added after
    // the restore are exactly that, so they must not count as a change. The cache on disk is
    // not touched; the uv caches stay locked (shared) until `left_out` is dropped.
    let pruning = Instant::now();
    let left_out = save_filter::apply(&mut tree, plan.pruning(), plan.force)?;
    report.timings.prune = pruning.elapsed().as_secs_f64();
    report.pruned_files = left_out.files;
    report.pruned_bytes = left_out.bytes;
    if actions::is_up_to_date(&plan.key, &tree)? {
        report.status = SaveStatus::UpToDate;
        return Ok(());
    }
    actions::exclude_credentials(&mut tree)?;
    if let Some(root) = store.local_root() {
        tree.exclude_tree(&plan.ctx.roots.absolute(&root.to_string_lossy())?);
    }
    let uploaded = upload(&*store, plan, &tree, global, report);
    drop(left_out);
    uploaded
}

/// Reserves the entry, packs the paths into it and publishes it.
fn upload(
    store: &dyn Store,
    plan: &SavePlan,
    tree: &paths::SavePlan,
    global: &GlobalArgs,
    report: &mut SaveReport,
) -> Result<()> {
    let key = &plan.key.key;
    let entry = NewEntry {
        key,
        version: &plan.version,
        compression: plan.compression,
        paths: Some(&plan.ctx.inputs.lines),
        workspace: Some(&plan.ctx.roots.workspace),
    };
    let upload = match store.create(&entry) {
        Ok(Reservation::Created(upload)) => upload,
        Ok(Reservation::AlreadyExists) => {
            report.status = SaveStatus::Exists;
            return Ok(());
        }
        Err(error) => return not_saved(key, error, report),
    };
    output::info(&format!(
        "Saving `{key}` to {} ({} path{})",
        store.describe(),
        tree.roots.len(),
        if tree.roots.len() == 1 { "" } else { "s" }
    ));
    let progress = Progress::new("Archiving", None, progress_enabled(global));
    let compressing = pack::Compressing {
        compression: plan.compression,
        level: plan.level,
        pace: upload.pace(),
    };
    let archiving = Instant::now();
    let timed = TimedUpload {
        inner: upload,
        waited: Duration::ZERO,
    };
    let (timed, stats) = match pack::pack(tree, &compressing, timed, &progress) {
        Ok(packed) => packed,
        Err(error) => return not_saved(key, error.context(format!("saving `{key}`")), report),
    };
    progress.finish();
    report.timings.archive = archiving.elapsed().as_secs_f64();
    report.timings.upload_wait = timed.waited.as_secs_f64();
    report.bound = report.timings.bound();
    let finishing = Progress::phase("Publishing the entry", progress_enabled(global));
    let publishing = Instant::now();
    let published = timed.inner.finish();
    report.timings.publish = publishing.elapsed().as_secs_f64();
    finishing.finish();
    report.files = stats.files;
    report.content_bytes = stats.content_bytes;
    report.compression_levels = stats
        .levels
        .iter()
        .map(|&(level, content_bytes)| LevelUse {
            level,
            content_bytes,
        })
        .collect();
    match published {
        Ok(Published::Saved { size }) => report.bytes = size,
        Ok(Published::AlreadyExists) => report.status = SaveStatus::Exists,
        Err(error) => {
            let error = error.context(format!("saving `{key}` to {}", store.describe()));
            return not_saved(key, error, report);
        }
    }
    Ok(())
}

/// A store failure: a warning and `not-saved` (exit 0) when the store says it must not fail
/// the build, else the error.
fn not_saved(key: &str, error: anyhow::Error, report: &mut SaveReport) -> Result<()> {
    let Some((severity, why)) = store::nonfatal(&error) else {
        return Err(error);
    };
    report_store_trouble(
        severity,
        &format!("Did not save `{key}`: {why}"),
        &error,
        "The build is unaffected; the next run will try to save again",
    );
    report.status = SaveStatus::NotSaved;
    report.reason = Some(why.to_string());
    Ok(())
}

/// The upload, timing how long each write waits: the store's share of the archive time.
struct TimedUpload {
    inner: Box<dyn Upload>,
    waited: Duration,
}

impl Write for TimedUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let asked = Instant::now();
        let n = self.inner.write(buf)?;
        self.waited += asked.elapsed();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let asked = Instant::now();
        self.inner.flush()?;
        self.waited += asked.elapsed();
        Ok(())
    }
}
