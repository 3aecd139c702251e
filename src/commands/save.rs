//! `cache-heal save`: resolve paths → key and version → reserve → pack into the upload →
//! publish.

use anyhow::{Context, Result};
use std::time::Instant;

use super::actions;
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
    // The save action passes its `key` input even when it is empty: then the restore step's
    // key is used.
    let explicit_key = args.key.as_deref().filter(|k| !k.is_empty());
    if let Some(key) = explicit_key {
        key::validate_key(key).map_err(crate::UsageError::from)?;
    }
    let ctx = path_context(&args.paths)?;
    let compression = args.paths.compression;
    let version = key::entry_version(&ctx.inputs.lines, compression);
    let save_key = actions::save_key(explicit_key, &ctx, &version)?;
    let key = save_key.key.clone();
    key::validate_key(&key).map_err(crate::UsageError::from)?;
    let mut plan = paths::resolve_for_save(&ctx.inputs, &ctx.roots)?;
    if actions::is_up_to_date(&save_key, &plan)? {
        return report_up_to_date(&key, global);
    }
    actions::exclude_credentials(&mut plan)?;
    let store = open_store(global)?;
    if let Some(root) = store.local_root() {
        plan.exclude_tree(&ctx.roots.absolute(&root.to_string_lossy())?);
    }

    let upload = match store.create(&key, &version, compression)? {
        Reservation::Created(upload) => upload,
        Reservation::AlreadyExists => return report_exists(&key, global, &store.describe()),
    };
    output::info(&format!(
        "Saving `{}` to {} ({} path{})",
        key,
        store.describe(),
        plan.roots.len(),
        if plan.roots.len() == 1 { "" } else { "s" }
    ));
    let progress = Progress::new("Archiving", None, progress_enabled(global));
    let (upload, stats) = pack::pack(&plan, compression, upload, &progress)
        .with_context(|| format!("saving `{}`", key))?;
    progress.finish();
    let published = upload
        .finish()
        .with_context(|| format!("saving `{}` to {}", key, store.describe()))?;
    let size = match published {
        Published::Saved { size } => size,
        Published::AlreadyExists => return report_exists(&key, global, &store.describe()),
    };
    let seconds = started.elapsed().as_secs_f64();
    output::info(&format!(
        "Saved `{}`: {} files, {} → {} ({compression}) in {seconds:.1}s",
        key,
        stats.files,
        human_bytes(stats.content_bytes),
        human_bytes(size),
    ));
    if global.json {
        print_json(&serde_json::json!({
            "status": "saved",
            "key": key,
            "version": version,
            "bytes": size,
            "content_bytes": stats.content_bytes,
            "files": stats.files,
            "seconds": seconds,
        }))?;
    }
    Ok(())
}

/// The restore step got an exact hit of this key and nothing changed since.
fn report_up_to_date(key: &str, global: &GlobalArgs) -> Result<()> {
    output::info(&format!(
        "Cache up-to-date: `{key}` was restored as an exact hit and nothing changed; not saving"
    ));
    if global.json {
        print_json(&serde_json::json!({ "status": "up-to-date", "key": key }))?;
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
