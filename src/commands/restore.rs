//! `cache-heal restore`: key and version → lookup → download → decompress → unpack into
//! staging → swap into place → heal uv caches → report.

use anyhow::{Context, Result};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::actions::{self, RestoreOutcome};
use super::{
    PathContext, heal, open_store, path_context, print_json, progress_enabled, report_store_trouble,
};
use crate::archive::unpack;
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::key;
use crate::output::{self, human_bytes};
use crate::paths::{PathInputs, RestoreTargets};
use crate::progress::Progress;
use crate::store::{self, Hit, Lookup, Query, Store};
use crate::uv::layout::Layout;

/// Space left free below a default `--max-size`: a restore should never take the last bytes.
const MIN_FREE_MARGIN: u64 = 256 << 20;

/// How a restore ended, in actions/cache's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The primary key matched (ignoring case).
    Exact,
    /// A prefix or a restore key matched.
    Partial,
    Miss,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Exact => "exact",
            Status::Partial => "partial",
            Status::Miss => "miss",
        }
    }
}

pub fn run(args: &RestoreArgs, global: &GlobalArgs) -> Result<()> {
    let started = Instant::now();
    let restore_keys = super::split_lines(&args.restore_keys);
    key::validate_keys(&args.key, &restore_keys).map_err(crate::UsageError::from)?;
    let ctx = path_context(&args.paths)?;
    let targets = RestoreTargets::new(&ctx.inputs, &ctx.roots)?;
    let query = Query {
        key: args.key.clone(),
        restore_keys: restore_keys.clone(),
        version: key::entry_version(&ctx.inputs.lines, args.paths.compression),
    };
    actions::explain_restore(
        &ctx,
        &args.key,
        &restore_keys,
        &query.version,
        args.paths.compression,
    );
    let miss = RestoreOutcome {
        primary_key: &args.key,
        restore_keys: &restore_keys,
        matched_key: None,
        status: Status::Miss.as_str(),
        restored: false,
        content_bytes: 0,
        archive_bytes: 0,
        seconds: 0.0,
        healed: 0,
        skipped_because: actions::untrusted_event_skip(args.allow_untrusted_event),
    };
    if miss.skipped_because.is_some() {
        return actions::after_restore(&ctx, &query.version, &miss);
    }
    let store = open_store(global)?;
    refuse_store_inside_targets(&*store, &ctx, &targets)?;

    let hit = match store.lookup(&query) {
        Ok(Lookup::Found(hit)) => hit,
        Ok(Lookup::Miss) => {
            let seconds = started.elapsed().as_secs_f64();
            actions::after_restore(&ctx, &query.version, &RestoreOutcome { seconds, ..miss })?;
            return report_miss(args, &restore_keys, global, started, None);
        }
        Err(error) => {
            // Like actions/cache: a cache service that says no or cannot be reached is a miss.
            let Some((severity, why)) = store::nonfatal(&error) else {
                return Err(error);
            };
            report_store_trouble(
                severity,
                &format!("Did not look up `{}`: {why}", args.key),
                &error,
                "Continuing with an empty cache",
            );
            let seconds = started.elapsed().as_secs_f64();
            actions::after_restore(&ctx, &query.version, &RestoreOutcome { seconds, ..miss })?;
            return report_miss(args, &restore_keys, global, started, Some(why));
        }
    };
    let status = if key::is_exact_hit(&hit.matched_key, &args.key) {
        Status::Exact
    } else {
        Status::Partial
    };
    let found = RestoreOutcome {
        matched_key: Some(&hit.matched_key),
        status: status.as_str(),
        seconds: started.elapsed().as_secs_f64(),
        ..miss
    };
    if args.dry_run || args.lookup_only {
        actions::after_restore(&ctx, &query.version, &found)?;
        return report_lookup(args, &ctx.inputs, &hit, status, global);
    }

    let max_bytes = match args.max_size {
        Some(limit) => limit,
        None => default_max_size(&ctx)?,
    };
    output::on_error_say(format!(
        "Nothing was written: the staging directories were removed and {} unchanged",
        describe_paths(&ctx.inputs)
    ));
    let restored =
        match download_and_unpack(&*store, &hit, &ctx, &targets, max_bytes, args.force, global) {
            Ok(restored) => restored,
            Err(error) => {
                // A download that fails midway is a miss, as in actions/cache; but unlike
                // actions/cache, nothing partial was written: staging is gone, the paths unchanged.
                // Anything else (a hostile or corrupt archive) stays an error.
                let Some((severity, why)) = store::nonfatal(&error) else {
                    return Err(error.context(format!(
                        "Refused to restore `{}` into {}",
                        hit.matched_key,
                        describe_paths(&ctx.inputs)
                    )));
                };
                report_store_trouble(
                    severity,
                    &format!("Did not restore `{}`: {why}", hit.matched_key),
                    &error,
                    &format!(
                        "Nothing was written: {} unchanged; continuing with an empty cache",
                        describe_paths(&ctx.inputs)
                    ),
                );
                let failed = RestoreOutcome {
                    matched_key: None,
                    status: Status::Miss.as_str(),
                    seconds: started.elapsed().as_secs_f64(),
                    ..found
                };
                actions::after_restore(&ctx, &query.version, &failed)?;
                return report_miss(args, &restore_keys, global, started, Some(why));
            }
        };
    let restore_seconds = started.elapsed().as_secs_f64();
    output::info(&format!(
        "Restored `{}`{}: {} files, {} from {} in {restore_seconds:.1}s",
        hit.matched_key,
        match status {
            Status::Exact => String::new(),
            _ => format!(" (partial match for `{}`)", args.key),
        },
        restored.files,
        human_bytes(restored.content_bytes),
        human_bytes(restored.archive_bytes),
    ));
    let healed = if args.no_heal {
        serde_json::Value::Null
    } else {
        // Only an interrupt fails here; it comes after the swap, so say what was done.
        heal_restored(args, &ctx).map_err(|interrupted| {
            interrupted.context(crate::interrupt::Done(format!(
                "restored `{}` into {}; healing stopped before it finished (uv fetches what is missing when it is online)",
                hit.matched_key,
                describe_paths(&ctx.inputs)
            )))
        })?
    };
    let outcome = RestoreOutcome {
        restored: true,
        content_bytes: restored.content_bytes,
        archive_bytes: restored.archive_bytes,
        seconds: started.elapsed().as_secs_f64(),
        healed: healed_count(&healed),
        ..found
    };
    actions::after_restore(&ctx, &query.version, &outcome)?;
    if global.json {
        print_json(&serde_json::json!({
            "status": status.as_str(),
            "primary_key": args.key,
            "matched_key": hit.matched_key,
            "bytes": restored.archive_bytes,
            "content_bytes": restored.content_bytes,
            "files": restored.files,
            "seconds": started.elapsed().as_secs_f64(),
            "heal": healed,
        }))?;
    }
    Ok(())
}

/// The heal stage: every restored path that is a uv cache is healed for the targets. A heal
/// that fails is a warning: the restore itself succeeded and uv can still heal lazily online.
/// How many sources heal re-created, over every restored uv cache.
fn healed_count(reports: &serde_json::Value) -> u64 {
    reports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|report| report["healed"].as_array())
        .map(|healed| healed.len() as u64)
        .sum()
}

/// The absolute paths a restore replaces.
fn restored_paths(ctx: &PathContext) -> Vec<PathBuf> {
    ctx.inputs
        .lines
        .iter()
        .filter(|l| !l.starts_with('!'))
        .filter_map(|l| ctx.roots.absolute(l).ok())
        .collect()
}

fn heal_restored(args: &RestoreArgs, ctx: &PathContext) -> Result<serde_json::Value> {
    let mut reports = Vec::new();
    let roots = restored_paths(ctx)
        .into_iter()
        .filter(|p| Layout::is_uv_cache(p));
    for root in roots {
        match heal::heal_cache(&root, &args.heal, false) {
            Ok(report) => {
                if !report.failed.is_empty() {
                    output::warn(&format!(
                        "Healed the uv cache at `{}` only in part: {} of {} sources failed; the restore itself succeeded",
                        root.display(),
                        report.failed.len(),
                        report.planned.len()
                    ));
                }
                let mut value = report.to_json();
                value["path"] = serde_json::json!(root);
                reports.push(value);
            }
            Err(error) if crate::interrupt::find(&error).is_some() => return Err(error),
            Err(error) => {
                output::warn(&format!(
                    "Did not heal the uv cache at `{}`: {error:#}\nThe restore itself succeeded; uv will re-download missing sources if it is online",
                    root.display()
                ));
                reports.push(serde_json::json!({ "path": root, "error": format!("{error:#}") }));
            }
        }
    }
    Ok(serde_json::Value::Array(reports))
}

struct Restored {
    archive_bytes: u64,
    content_bytes: u64,
    files: u64,
}

fn download_and_unpack(
    store: &dyn Store,
    hit: &Hit,
    ctx: &PathContext,
    targets: &RestoreTargets,
    max_bytes: u64,
    force: bool,
    global: &GlobalArgs,
) -> Result<Restored> {
    let progress = Progress::new("Restoring", hit.size, progress_enabled(global));
    let archive_bytes = AtomicU64::new(0);
    let counting = CountingReader {
        inner: store.open(hit)?,
        count: &archive_bytes,
        progress: &progress,
    };
    let options = unpack::UnpackOptions {
        max_bytes,
        writers: unpack_writers(),
        protected: protected_paths(ctx),
    };
    let unpacked = unpack::unpack_archive(counting, &ctx.roots, targets, &options)?;
    let archive_bytes = archive_bytes.into_inner();
    progress.finish();
    let (files, content_bytes) = (unpacked.files, unpacked.content_bytes);
    // Replacing a uv cache under a running uv would pull it from under that uv's feet.
    let _uv_locks = if force {
        Vec::new()
    } else {
        crate::uv::lock::lock_caches_for_replacing(&restored_paths(ctx))?
    };
    crate::interrupt::check()?;
    unpacked.commit()?;
    Ok(Restored {
        archive_bytes,
        content_bytes,
        files,
    })
}

/// A restore replaces each restored path whole, so a local store inside one would be deleted
/// by the very restore that reads from it.
fn refuse_store_inside_targets(
    store: &dyn Store,
    ctx: &PathContext,
    targets: &RestoreTargets,
) -> Result<()> {
    let Some(root) = store.local_root() else {
        return Ok(());
    };
    let root = ctx.roots.absolute(&root.to_string_lossy())?;
    if let Some(unit) = targets.unit_for(&root) {
        anyhow::bail!(
            "the store `{}` is inside `{}`, which a restore replaces whole\n\nhint: keep the store outside the restored paths (`--store dir:<DIR>`)",
            root.display(),
            unit.display()
        );
    }
    Ok(())
}

/// A restore replaces each restored path whole; these may never be replaced.
fn protected_paths(ctx: &PathContext) -> Vec<PathBuf> {
    let mut protected = vec![ctx.roots.workspace.clone(), ctx.roots.cwd.clone()];
    protected.extend(ctx.roots.home.clone());
    protected
}

/// The free space where the first restored path will land, less a margin.
fn default_max_size(ctx: &PathContext) -> Result<u64> {
    let first = ctx
        .inputs
        .lines
        .iter()
        .find(|l| !l.starts_with('!'))
        .map(|l| ctx.roots.absolute(l))
        .transpose()?
        .unwrap_or_else(|| ctx.roots.cwd.clone());
    let existing = first
        .ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let free = fs4::available_space(&existing)
        .with_context(|| format!("reading the free space at `{}`", existing.display()))?;
    Ok(free.saturating_sub(MIN_FREE_MARGIN.max(free / 20)))
}

/// Reports a miss; `failure` says why when the store failed rather than found nothing.
fn report_miss(
    args: &RestoreArgs,
    restore_keys: &[String],
    global: &GlobalArgs,
    started: Instant,
    failure: Option<&str>,
) -> Result<()> {
    let fallbacks = if restore_keys.is_empty() {
        String::new()
    } else {
        format!("\n  or restore keys {}", quote_list(restore_keys))
    };
    if failure.is_none() {
        output::info(&format!(
            "No cache entry for `{}`{fallbacks}; continuing with an empty cache",
            args.key
        ));
    }
    if global.json {
        print_json(&serde_json::json!({
            "status": Status::Miss.as_str(),
            "primary_key": args.key,
            "matched_key": null,
            "bytes": 0,
            "files": 0,
            "seconds": started.elapsed().as_secs_f64(),
            "store_failure": failure,
        }))?;
    }
    if args.fail_on_cache_miss {
        anyhow::bail!(
            "no entry matched `{}` or its restore keys, and `--fail-on-cache-miss` is set",
            args.key
        );
    }
    Ok(())
}

fn report_lookup(
    args: &RestoreArgs,
    inputs: &PathInputs,
    hit: &Hit,
    status: Status,
    global: &GlobalArgs,
) -> Result<()> {
    let size = hit.size.map_or("unknown size".to_string(), human_bytes);
    let verb = if args.dry_run {
        "Would restore"
    } else {
        "Found"
    };
    output::info(&format!(
        "{verb} `{}` ({} match, {size}) into {}",
        hit.matched_key,
        status.as_str(),
        describe_paths(inputs)
    ));
    if global.json {
        print_json(&serde_json::json!({
            "status": status.as_str(),
            "primary_key": args.key,
            "matched_key": hit.matched_key,
            "bytes": hit.size,
            "files": null,
            "dry_run": args.dry_run,
            "lookup_only": args.lookup_only,
        }))?;
    }
    Ok(())
}

fn describe_paths(inputs: &PathInputs) -> String {
    quote_list(&inputs.lines)
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts the archive bytes read from the store, for progress and the report.
struct CountingReader<'a> {
    inner: Box<dyn Read + Send>,
    count: &'a AtomicU64,
    progress: &'a Progress,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.progress.set_position(total);
        Ok(n)
    }
}

/// Threads writing small files while the main thread parses. The read and decode stages
/// have a thread each already, so one writer keeps a 2-core runner busy without the threads
/// crowding each other: bench/archive.sh measured restore at 0.71x GNU's time with one writer
/// and 0.82x with two. `CACHE_HEAL_UNPACK_WRITERS` overrides it for measurements.
fn unpack_writers() -> usize {
    std::env::var(crate::env_vars::CACHE_HEAL_UNPACK_WRITERS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}
