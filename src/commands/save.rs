//! `cache-heal save`: resolve paths → key and version → leave out what pruning removes → reserve → pack into the upload →
//! publish.

use anyhow::Result;
use std::time::Instant;

use super::actions;
use super::{open_store, path_context, print_json, progress_enabled, report_store_trouble};
use crate::archive::level::Level;
use crate::archive::pack;
use crate::cli::{GlobalArgs, SaveArgs};
use crate::key;
use crate::output::{self, human_bytes};
use crate::paths;
use crate::progress::Progress;
use crate::store::{self, Published, Reservation};
use crate::uv::save_filter;

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
    args.compression_level
        .check(compression)
        .map_err(crate::UsageError::Invalid)?;
    let version = key::entry_version(&ctx.inputs.lines, compression);
    let save_key = actions::save_key(explicit_key, &ctx, &version)?;
    let key = save_key.key.clone();
    key::validate_key(&key).map_err(crate::UsageError::from)?;
    let mut plan = paths::resolve_for_save(&ctx.inputs, &ctx.roots)?;
    // Leave out what pruning removes before the up-to-date check: the sources heal added after
    // the restore are exactly that, so they must not count as a change. The cache on disk is
    // not touched; the uv caches stay locked (shared) until `left_out` is dropped.
    let pruning = if args.no_prune {
        save_filter::Pruning::KeepAll
    } else {
        save_filter::Pruning::LeaveOut
    };
    let left_out = save_filter::apply(&mut plan, pruning, args.force)?;
    if actions::is_up_to_date(&save_key, &plan)? {
        return report_up_to_date(&key, global);
    }
    actions::exclude_credentials(&mut plan)?;
    let store = open_store(global)?;
    if let Some(root) = store.local_root() {
        plan.exclude_tree(&ctx.roots.absolute(&root.to_string_lossy())?);
    }

    let upload = match store.create(&key, &version, compression) {
        Ok(Reservation::Created(upload)) => upload,
        Ok(Reservation::AlreadyExists) => {
            return report_exists(&key, global, &store.describe());
        }
        Err(error) => return not_saved(&key, error, global),
    };
    output::info(&format!(
        "Saving `{}` to {} ({} path{})",
        key,
        store.describe(),
        plan.roots.len(),
        if plan.roots.len() == 1 { "" } else { "s" }
    ));
    let progress = Progress::new("Archiving", None, progress_enabled(global));
    let compressing = pack::Compressing {
        compression,
        level: args.compression_level,
        pace: upload.pace(),
    };
    let (upload, stats) = match pack::pack(&plan, &compressing, upload, &progress) {
        Ok(packed) => packed,
        Err(error) => {
            return not_saved(&key, error.context(format!("saving `{key}`")), global);
        }
    };
    progress.finish();
    let published = match upload.finish() {
        Ok(published) => published,
        Err(error) => {
            let error = error.context(format!("saving `{key}` to {}", store.describe()));
            return not_saved(&key, error, global);
        }
    };
    let size = match published {
        Published::Saved { size } => size,
        Published::AlreadyExists => return report_exists(&key, global, &store.describe()),
    };
    let seconds = started.elapsed().as_secs_f64();
    output::info(&format!(
        "Saved `{}`: {} files, {} → {} ({compression} {}) in {seconds:.1}s",
        key,
        stats.files,
        human_bytes(stats.content_bytes),
        human_bytes(size),
        describe_levels(args.compression_level, &stats.levels),
    ));
    if global.json {
        print_json(&serde_json::json!({
            "status": "saved",
            "key": key,
            "version": version,
            "bytes": size,
            "content_bytes": stats.content_bytes,
            "files": stats.files,
            "compression_levels": stats
                .levels
                .iter()
                .map(|(level, bytes)| serde_json::json!({"level": level, "content_bytes": bytes}))
                .collect::<Vec<_>>(),
            "pruned_files": left_out.files,
            "pruned_bytes": left_out.bytes,
            "seconds": seconds,
        }))?;
    }
    Ok(())
}

/// "level 3", or for `auto` the levels it went through: "level auto: 3 for 64 MiB, 1 for 890 MiB".
fn describe_levels(setting: Level, levels: &[(i32, u64)]) -> String {
    match (setting, levels) {
        (Level::Fixed(level), _) => format!("level {level}"),
        // No file content at all: nothing was compressed at any level.
        (Level::Auto, []) => "level auto".to_string(),
        (Level::Auto, [(level, _)]) => format!("level auto: {level}"),
        (Level::Auto, _) => {
            let parts: Vec<String> = levels
                .iter()
                .map(|(level, bytes)| format!("{level} for {}", human_bytes(*bytes)))
                .collect();
            format!("level auto: {}", parts.join(", "))
        }
    }
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

/// A store failure: a warning and exit 0 when the store says it must not fail the build (as
/// actions/cache never fails a build over a save), else the error.
fn not_saved(key: &str, error: anyhow::Error, global: &GlobalArgs) -> Result<()> {
    let Some((severity, why)) = store::nonfatal(&error) else {
        return Err(error);
    };
    report_store_trouble(
        severity,
        &format!("Did not save `{key}`: {why}"),
        &error,
        "The build is unaffected; the next run will try to save again",
    );
    if global.json {
        print_json(&serde_json::json!({ "status": "not-saved", "key": key, "reason": why }))?;
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
