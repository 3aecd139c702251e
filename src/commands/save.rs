//! `cache-heal save`: resolve paths → key and version → prune uv caches → reserve → pack into the upload →
//! publish.

use anyhow::{Context, Result};
use std::time::Instant;

use super::{open_store, path_context, print_json, progress_enabled};
use crate::archive::pack;
use crate::cli::{GlobalArgs, SaveArgs};
use crate::key;
use crate::output::{self, human_bytes};
use crate::paths;
use crate::progress::Progress;
use crate::store::{Published, Reservation};

pub fn run(args: &SaveArgs, global: &GlobalArgs) -> Result<()> {
    let started = Instant::now();
    key::validate_key(&args.key).map_err(crate::UsageError::from)?;
    let ctx = path_context(&args.paths)?;
    let plan = paths::resolve_for_save(&ctx.inputs, &ctx.roots)?;
    let compression = args.paths.compression;
    let version = key::entry_version(&ctx.inputs.lines, compression);
    let store = open_store(global)?;

    let pruned = if args.no_prune {
        super::prune::Pruned::default()
    } else {
        let roots: Vec<&std::path::Path> =
            plan.roots.iter().map(|r| r.absolute.as_path()).collect();
        super::prune::prune_before_save(&roots, args.force)?
    };

    let upload = match store.create(&args.key, &version, compression)? {
        Reservation::Created(upload) => upload,
        Reservation::AlreadyExists => return report_exists(&args.key, global, &store.describe()),
    };
    output::info(&format!(
        "Saving `{}` to {} ({} path{})",
        args.key,
        store.describe(),
        plan.roots.len(),
        if plan.roots.len() == 1 { "" } else { "s" }
    ));
    let progress = Progress::new("Archiving", None, progress_enabled(global));
    let (upload, stats) = pack::pack(&plan, compression, upload, &progress)
        .with_context(|| format!("saving `{}`", args.key))?;
    progress.finish();
    let published = upload
        .finish()
        .with_context(|| format!("saving `{}` to {}", args.key, store.describe()))?;
    let size = match published {
        Published::Saved { size } => size,
        Published::AlreadyExists => return report_exists(&args.key, global, &store.describe()),
    };
    let seconds = started.elapsed().as_secs_f64();
    output::info(&format!(
        "Saved `{}`: {} files, {} → {} ({compression}) in {seconds:.1}s",
        args.key,
        stats.files,
        human_bytes(stats.content_bytes),
        human_bytes(size),
    ));
    if global.json {
        print_json(&serde_json::json!({
            "status": "saved",
            "key": args.key,
            "version": version,
            "bytes": size,
            "content_bytes": stats.content_bytes,
            "files": stats.files,
            "pruned_files": pruned.files,
            "pruned_bytes": pruned.bytes,
            "seconds": seconds,
        }))?;
    }
    Ok(())
}

/// Another save of the same key and version won: entries are immutable, so this is success.
fn report_exists(key: &str, global: &GlobalArgs, store: &str) -> Result<()> {
    output::info(&format!(
        "Entry `{key}` already exists in {store}; not saving (another job saved this key first)"
    ));
    if global.json {
        print_json(&serde_json::json!({ "status": "exists", "key": key }))?;
    }
    Ok(())
}
