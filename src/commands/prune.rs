//! `cache-heal prune`: take uv's cache lock → plan → say what goes → remove → one-line summary
//! (the shape of uv's `cache_prune.rs`). `save` never prunes in place: it leaves out of the
//! archive what this would remove (`uv::save_filter`).

use anyhow::{Context, Result};
use std::path::Path;

use crate::cli::{GlobalArgs, PruneArgs};
use crate::output::{self, human_bytes};
use crate::report::{DataReport, Report};
use crate::uv::layout::Layout;
use crate::uv::lock::{self, Mode};
use crate::uv::prune;

/// What a prune removed (or would remove).
#[derive(Debug, Default, serde::Serialize)]
pub struct Pruned {
    pub files: u64,
    pub bytes: u64,
    pub entries: Vec<prune::Removal>,
    pub warnings: Vec<String>,
}

/// `cache-heal prune --json`.
#[derive(Debug, serde::Serialize)]
struct PruneReport<'a> {
    status: &'static str,
    path: &'a Path,
    dry_run: bool,
    /// Files and bytes removed (or, in a dry run, that would be).
    files: u64,
    bytes: u64,
    removed: Vec<&'a Path>,
    warnings: &'a [String],
}

pub fn run(args: &PruneArgs, _global: &GlobalArgs) -> Result<Report> {
    let root = &args.path;
    super::require_uv_cache(root)?;
    let pruned = prune_cache(root, args.dry_run, args.force)
        .with_context(|| format!("Failed to prune the uv cache at `{}`", root.display()))?;
    let mut report = DataReport::new(&PruneReport {
        status: "ok",
        path: root,
        dry_run: args.dry_run,
        files: pruned.files,
        bytes: pruned.bytes,
        removed: pruned.entries.iter().map(|e| e.path.as_path()).collect(),
        warnings: &pruned.warnings,
    })?;
    if args.dry_run {
        for entry in &pruned.entries {
            report.stderr.push(format!(
                "Would remove `{}` ({} files, {})",
                entry.path.display(),
                entry.files,
                human_bytes(entry.bytes)
            ));
        }
    }
    report.stderr.push(format!(
        "{} {} files ({}) from `{}`",
        if args.dry_run {
            "Would remove"
        } else {
            "Removed"
        },
        pruned.files,
        human_bytes(pruned.bytes),
        root.display()
    ));
    Ok(Report::Data(report))
}

/// Prunes one uv cache under its exclusive lock (unless `force`); warnings are printed.
pub fn prune_cache(root: &Path, dry_run: bool, force: bool) -> Result<Pruned> {
    let _lock = if force {
        None
    } else {
        Some(lock::lock_cache(root, Mode::Exclusive)?)
    };
    let layout = Layout::discover(root)?;
    if dry_run {
        // The plan that also counts the `files-v0` objects a real prune leaves unlinked, so a
        // dry run says what a real one removes.
        let plan = prune::plan_with_unlinked_files(&layout, prune::Keep::BuiltWheels)?;
        for warning in &plan.warnings {
            output::warn(warning);
        }
        return Ok(Pruned {
            files: plan.files(),
            bytes: plan.bytes(),
            entries: plan.removals,
            warnings: plan.warnings,
        });
    }
    let plan = prune::plan(&layout, prune::Keep::BuiltWheels)?;
    for warning in &plan.warnings {
        output::warn(warning);
    }
    prune::execute(&plan)?;
    let files_removed = prune::prune_unlinked_files(&layout, false)?;
    let mut pruned = Pruned {
        files: plan.files(),
        bytes: plan.bytes(),
        entries: plan.removals,
        warnings: plan.warnings,
    };
    for removal in files_removed {
        pruned.files += removal.files;
        pruned.bytes += removal.bytes;
        pruned.entries.push(removal);
    }
    Ok(pruned)
}
