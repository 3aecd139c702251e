//! `cache-heal restore`: plan (paths, key and version, store, trust, limits; all checked before
//! any I/O) → look up → download → decompress → unpack into staging → swap into place → heal
//! uv caches → report.

use anyhow::{Context, Result};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{PathContext, heal, progress_enabled, report_store_trouble};
use crate::archive::unpack;
use crate::cli::{GlobalArgs, HealTargets, RestoreArgs};
use crate::error::Headline;
use crate::key::{self, Compression};
use crate::output::{self, human_bytes};
use crate::paths::RestoreTargets;
use crate::progress::Progress;
use crate::report::restore::{HealedPath, MissReason, OtherVersion, Replaced, Status};
use crate::report::{Report, RestoreReport, quote_list};
use crate::store::{self, Hit, Lookup, Query, Store, StoreSpec};
use crate::uv::layout::Layout;

/// Space left free below a default `--max-size`: a restore should never take the last bytes.
const MIN_FREE_MARGIN: u64 = 256 << 20;
/// A default `--max-size` allows at most this many times the archive's size: real caches
/// compress 2 to 10 times, a compression bomb thousands of times.
const MAX_EXPANSION: u64 = 32;
/// ... but never less than this, so small archives of very compressible files still restore.
const MAX_SIZE_FLOOR: u64 = 512 << 20;

/// What to do once the entry is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Restore,
    /// `--dry-run`: say what would be restored and replaced.
    DryRun,
    /// `--lookup-only`: set the outputs, download nothing.
    LookupOnly,
}

/// Everything a restore needs, resolved and checked from the flags before anything is read or
/// written: a bad flag is a usage error here, never halfway through.
pub struct RestorePlan {
    ctx: PathContext,
    targets: RestoreTargets,
    query: Query,
    compression: Compression,
    store: StoreSpec,
    /// Why this run must not restore (an untrusted event), if it must not.
    untrusted: Option<String>,
    max_size: Option<u64>,
    /// Who restored uv caches are healed for; `None` with `--no-heal`.
    heal: Option<HealTargets>,
    mode: Mode,
    fail_on_cache_miss: bool,
    /// Replace uv caches without taking uv's cache lock.
    force: bool,
}

impl RestorePlan {
    pub fn new(args: &RestoreArgs) -> Result<Self> {
        let restore_keys = super::split_lines(&args.restore_keys);
        super::check_key_flag("--key", &args.key)?;
        key::validate_keys(&args.key, &restore_keys).map_err(crate::UsageError::from)?;
        if !args.no_heal {
            // Heal's index comes from a flag or uv's variables: checked now, not after the
            // download.
            heal::index_urls(&args.heal.index_urls)?;
        }
        let ctx = super::path_context(&args.paths)?;
        let targets = RestoreTargets::new(&ctx.inputs, &ctx.roots)?;
        let store = StoreSpec::parse(
            args.store.store.as_deref(),
            &ctx.roots.cwd,
            ctx.roots.home.as_deref(),
        )?
        .configure(&args.store);
        let compression = args.paths.compression;
        let query = Query {
            key: args.key.clone(),
            restore_keys,
            version: key::entry_version(&ctx.inputs.lines, compression),
        };
        let mode = match (args.dry_run, args.lookup_only) {
            (true, _) => Mode::DryRun,
            (false, true) => Mode::LookupOnly,
            (false, false) => Mode::Restore,
        };
        Ok(Self {
            untrusted: super::actions::untrusted_event_skip(args.allow_untrusted_event),
            ctx,
            targets,
            query,
            compression,
            store,
            max_size: args.max_size,
            heal: (!args.no_heal).then(|| args.heal.clone()),
            mode,
            fail_on_cache_miss: args.fail_on_cache_miss,
            force: args.force,
        })
    }

    fn report(&self) -> RestoreReport {
        RestoreReport {
            status: Status::Miss,
            primary_key: self.query.key.clone(),
            restore_keys: self.query.restore_keys.clone(),
            matched_key: None,
            version: self.query.version.clone(),
            store: self.store.describe(),
            paths: self.ctx.inputs.lines.clone(),
            dry_run: self.mode == Mode::DryRun,
            lookup_only: self.mode == Mode::LookupOnly,
            restored: false,
            bytes: None,
            content_bytes: 0,
            files: 0,
            seconds: 0.0,
            timings: Default::default(),
            bound: None,
            miss: None,
            other_versions: Vec::new(),
            would_replace: Vec::new(),
            heal: None,
            heal_for: self.heal.as_ref().map(|h| super::split_lines(&h.pythons)),
            healed: 0,
            fingerprint: None,
            fail_on_cache_miss: self.fail_on_cache_miss,
        }
    }
}

pub fn run(args: &RestoreArgs, global: &GlobalArgs) -> Result<Report> {
    let started = Instant::now();
    let plan = RestorePlan::new(args)?;
    super::actions::explain_restore(&plan.ctx, &plan.query, plan.compression);
    let mut report = plan.report();
    let outcome = restore(&plan, global, &mut report);
    report.seconds = started.elapsed().as_secs_f64();
    outcome.map(|()| Report::Restore(Box::new(report)))
}

/// The stages, top to bottom. A miss or a store failure ends early with the report saying
/// why; only a refused archive or a local failure is an error.
fn restore(plan: &RestorePlan, global: &GlobalArgs, report: &mut RestoreReport) -> Result<()> {
    if let Some(event) = &plan.untrusted {
        report.miss(MissReason::UntrustedEvent {
            event: event.clone(),
        });
        return Ok(());
    }
    let store = plan.store.open()?;
    refuse_store_inside_targets(&*store, plan)?;
    report.store = store.describe();
    report.timings.remote = store.local_root().is_none();
    let looking = Instant::now();
    let found = look_up(&*store, plan, report)?;
    report.timings.lookup = looking.elapsed().as_secs_f64();
    let Some(hit) = found else {
        return Ok(());
    };
    report.status = if key::is_exact_hit(&hit.matched_key, &plan.query.key) {
        Status::Exact
    } else {
        Status::Partial
    };
    report.matched_key = Some(hit.matched_key.clone());
    report.bytes = hit.size;
    match plan.mode {
        Mode::LookupOnly => return Ok(()),
        Mode::DryRun => {
            report.would_replace = what_is_replaced(plan);
            return Ok(());
        }
        Mode::Restore => {}
    }
    let limit = max_size(plan, hit.size)?;
    let Some(restored) = download_and_unpack(&*store, &hit, plan, &limit, global, report)? else {
        return Ok(());
    };
    report.restored = true;
    report.timings.transfer = restored.transfer_seconds;
    report.timings.store_wait = restored.store_wait_seconds;
    report.timings.swap = restored.swap_seconds;
    report.bound = report.timings.bound();
    report.bytes = Some(restored.archive_bytes);
    report.content_bytes = restored.content_bytes;
    report.files = restored.files;
    if let Some(targets) = &plan.heal {
        let healing = Instant::now();
        // Only an interrupt fails here; it comes after the swap, so say what was done.
        let healed = heal_restored(&plan.ctx, targets).map_err(|interrupted| {
            interrupted.context(crate::interrupt::Done(format!(
                "restored `{}` into {}; healing stopped before it finished (uv fetches what is missing when it is online)",
                hit.matched_key,
                quote_list(&plan.ctx.inputs.lines)
            )))
        })?;
        report.timings.heal = healing.elapsed().as_secs_f64();
        report.healed = healed.iter().map(HealedPath::healed_count).sum();
        report.heal = Some(healed);
    }
    report.fingerprint = super::actions::fingerprint_for_save(&plan.ctx, report)?;
    Ok(())
}

/// Asks the store. A store that cannot be reached (or says no) is a miss, as in actions/cache,
/// with a warning; `None` means the report already says why nothing matched.
fn look_up(
    store: &dyn Store,
    plan: &RestorePlan,
    report: &mut RestoreReport,
) -> Result<Option<Hit>> {
    match store.lookup(&plan.query) {
        Ok(Lookup::Found(hit)) => Ok(Some(hit)),
        Ok(Lookup::Miss) => {
            report.miss(MissReason::NoEntry);
            report.other_versions = other_versions(store, plan);
            Ok(None)
        }
        Err(error) => {
            let Some((severity, why)) = store::nonfatal(&error) else {
                return Err(error);
            };
            report_store_trouble(
                severity,
                &format!("Did not look up `{}`: {why}", plan.query.key),
                &error,
                continuing(plan),
            );
            report.miss(MissReason::StoreUnavailable {
                message: why.to_string(),
            });
            Ok(None)
        }
    }
}

fn continuing(plan: &RestorePlan) -> &'static str {
    if plan.fail_on_cache_miss {
        "Nothing was restored"
    } else {
        "Continuing with an empty cache"
    }
}

/// Entries under the key (or a restore key) saved with other inputs, with what differs: the
/// usual reason for "no entry" while `inspect` lists the key.
fn other_versions(store: &dyn Store, plan: &RestorePlan) -> Vec<OtherVersion> {
    // Only where listing is cheap: on an object store it would read every entry's metadata on
    // every cold miss of a job.
    if store.local_root().is_none() {
        return Vec::new();
    }
    let Ok(entries) = store.list() else {
        return Vec::new();
    };
    let wanted: Vec<&str> = std::iter::once(plan.query.key.as_str())
        .chain(plan.query.restore_keys.iter().map(String::as_str))
        .collect();
    entries
        .into_iter()
        .filter(|e| e.version != plan.query.version)
        .filter(|e| wanted.iter().any(|k| e.key.starts_with(k)))
        .take(3)
        .map(|e| OtherVersion {
            differences: differences(&e, plan),
            key: e.key,
            version: e.version,
        })
        .collect()
}

/// What makes an entry's version differ from the one looked for, each with the flag to fix it.
fn differences(entry: &store::EntryInfo, plan: &RestorePlan) -> Vec<String> {
    let mut found = Vec::new();
    if entry.compression != plan.compression {
        found.push(format!(
            "`--compression {}` (this restore asked for {})",
            entry.compression, plan.compression
        ));
    }
    match &entry.paths {
        Some(paths) if *paths != plan.ctx.inputs.lines => found.push(format!(
            "`--path` lines {} (this restore gave {}); the lines are hashed as typed, so spell them the same",
            quote_list(paths),
            quote_list(&plan.ctx.inputs.lines)
        )),
        Some(_) => {}
        None => found.push(
            "path lines that were not recorded (the entry predates recording them, or comes from another tool)"
                .to_string(),
        ),
    }
    if found.is_empty() {
        found.push("the same paths and compression on another OS (Windows versions differ)".into());
    }
    found
}

/// The most a restore may write, and which rule set it (for the message when it stops one).
#[derive(Clone, Debug)]
struct SizeLimit {
    bytes: u64,
    why: String,
}

/// The limit on what a restore may write: `--max-size`, else a multiple of the archive's size
/// (with a floor), and never more than the free space less a margin.
fn max_size(plan: &RestorePlan, archive_size: Option<u64>) -> Result<SizeLimit> {
    if let Some(bytes) = plan.max_size {
        return Ok(SizeLimit {
            bytes,
            why: format!("`--max-size {bytes}`"),
        });
    }
    let (free, at) = free_space_limit(&plan.ctx)?;
    let by_archive = archive_size.map(|size| {
        let bytes = size.saturating_mul(MAX_EXPANSION).max(MAX_SIZE_FLOOR);
        let why = format!(
            "the default limit for an archive of {}: {MAX_EXPANSION} times its size, at least {}",
            human_bytes(size),
            human_bytes(MAX_SIZE_FLOOR)
        );
        SizeLimit { bytes, why }
    });
    Ok(match by_archive {
        Some(limit) if limit.bytes <= free => limit,
        _ => SizeLimit {
            bytes: free,
            why: format!(
                "the default limit: the free space at `{}` less a margin",
                at.display()
            ),
        },
    })
}

/// Says which limit stopped a restore and how to raise it.
fn explain_size_limit(error: anyhow::Error, limit: &SizeLimit) -> anyhow::Error {
    let too_large = error.chain().any(|c| {
        matches!(
            c.downcast_ref::<unpack::Refusal>(),
            Some(unpack::Refusal::TooLarge { .. })
        )
    });
    if !too_large {
        return error;
    }
    error.context(format!(
        "the archive expands past {} ({}), as a compression bomb would\n\nhint: if this entry is genuine, allow more with `--max-size <BYTES>` (for example `--max-size 20G`)",
        human_bytes(limit.bytes),
        limit.why
    ))
}

/// What a dry run says the restore would replace: each declared path, whole, and what is there.
fn what_is_replaced(plan: &RestorePlan) -> Vec<Replaced> {
    plan.ctx
        .inputs
        .includes()
        .filter(|l| !crate::paths::has_glob_chars(l))
        .filter_map(|l| plan.ctx.roots.absolute(l).ok())
        .map(|path| {
            let exists = path.symlink_metadata().is_ok();
            let (files, bytes) = if exists {
                crate::paths::tree_size(&path)
            } else {
                (0, 0)
            };
            Replaced {
                path,
                exists,
                files,
                bytes,
            }
        })
        .collect()
}

/// The heal stage: every restored path that is a uv cache is healed for the targets. A heal
/// that fails is a warning: the restore itself succeeded and uv can still heal lazily online.
/// What concerns the whole run (an unreachable index, missing build backends) is said once.
/// Only an interrupt is an error here.
fn heal_restored(ctx: &PathContext, targets: &HealTargets) -> Result<Vec<HealedPath>> {
    let roots = restored_paths(ctx)
        .into_iter()
        .filter(|p| Layout::is_uv_cache(p));
    let mut healed = Vec::new();
    for root in roots {
        match heal::heal_cache(&root, targets, false) {
            Ok(report) => healed.push(HealedPath::Healed(report)),
            Err(error) if crate::interrupt::find(&error).is_some() => return Err(error),
            Err(error) => {
                output::warn(&format!(
                    "Did not heal the uv cache at `{}`: {error:#}\nThe restore itself succeeded; uv will re-download missing sources if it is online",
                    root.display()
                ));
                healed.push(HealedPath::Failed {
                    path: root,
                    error: format!("{error:#}"),
                });
            }
        }
    }
    let reports: Vec<&heal::HealReport> = healed.iter().filter_map(HealedPath::report).collect();
    heal::warn_after_restore(&reports);
    Ok(healed)
}

/// The absolute paths a restore replaces.
fn restored_paths(ctx: &PathContext) -> Vec<PathBuf> {
    ctx.inputs
        .includes()
        .filter_map(|l| ctx.roots.absolute(l).ok())
        .collect()
}

struct Restored {
    archive_bytes: u64,
    content_bytes: u64,
    files: u64,
    transfer_seconds: f64,
    store_wait_seconds: f64,
    swap_seconds: f64,
}

/// Streams the entry into staging and swaps it into place. A download that fails midway is a
/// miss, as in actions/cache; but unlike actions/cache nothing partial was written. Anything
/// else (a hostile archive, a full disk) is an error. `None`: the report says why not.
fn download_and_unpack(
    store: &dyn Store,
    hit: &Hit,
    plan: &RestorePlan,
    limit: &SizeLimit,
    global: &GlobalArgs,
    report: &mut RestoreReport,
) -> Result<Option<Restored>> {
    let unchanged = format!(
        "Nothing was written: the staging directories were removed and {} unchanged",
        quote_list(&plan.ctx.inputs.lines)
    );
    let error = match stream_into_place(store, hit, plan, limit.bytes, global) {
        Ok(restored) => return Ok(Some(restored)),
        Err(error) => error,
    };
    // A damaged entry (cut short, corrupt, wrong size or digest, archive gone) is a warned
    // miss: nothing was written, and the build works without a cache.
    if let Some(damage) =
        unpack::Damaged::find(&error).filter(|_| store::nonfatal(&error).is_none())
    {
        report_store_trouble(
            store::Severity::Warning,
            &format!(
                "Did not restore `{}`: the entry is damaged",
                hit.matched_key
            ),
            &error,
            &format!("{unchanged}; {}", continuing(plan).to_lowercase()),
        );
        report.miss(MissReason::DamagedEntry {
            key: hit.matched_key.clone(),
            message: damage.summary(),
        });
        // Put it aside where the store can, so the next save of the key writes a good one.
        if let Err(error) = store.discard(hit) {
            output::warn(&format!(
                "Could not put the damaged entry `{}` aside: {error:#}",
                hit.matched_key
            ));
        }
        return Ok(None);
    }
    // A download that fails midway is a miss, as in actions/cache; anything else (a hostile
    // archive, a failing disk) stays an error.
    let Some((severity, why)) = store::nonfatal(&error) else {
        let headline = Headline {
            message: format!(
                "Refused to restore `{}` into {}",
                hit.matched_key,
                quote_list(&plan.ctx.inputs.lines)
            ),
            consequence: unchanged,
        };
        let error = explain_size_limit(add_layout_hint(error, plan), limit);
        return Err(error.context(headline));
    };
    report_store_trouble(
        severity,
        &format!("Did not restore `{}`: {why}", hit.matched_key),
        &error,
        &format!("{unchanged}; {}", continuing(plan).to_lowercase()),
    );
    report.miss(MissReason::StoreUnavailable {
        message: why.to_string(),
    });
    Ok(None)
}

/// An entry saved with actions/cache's layout from another directory names its members
/// relative to that directory: say so, rather than let it read like an attack.
fn add_layout_hint(error: anyhow::Error, plan: &RestorePlan) -> anyhow::Error {
    let outside = error.chain().any(|c| {
        matches!(
            c.downcast_ref::<unpack::Refusal>(),
            Some(unpack::Refusal::OutsidePaths { .. })
        )
    });
    if !outside || plan.ctx.roots.workspace_given {
        return error;
    }
    error.context(format!(
        "the entry's member names are relative to the directory it was saved from, and this restore runs in `{}`\n\nhint: restore from the directory the entry was saved in, or pass `--workspace <that directory>` (`cache-heal inspect` shows it)",
        plan.ctx.roots.cwd.display()
    ))
}

/// Tells the store that a download of `hit` starts now, before its first byte is read, so a
/// `gc` running meanwhile sees the entry as in use. Best-effort: a store that cannot record it
/// still serves the restore.
fn record_use(store: &dyn Store, hit: &Hit) {
    if let Err(error) = store.record_use(hit) {
        crate::output::debug(&format!(
            "Could not record the last use of `{}`: {error:#}",
            hit.matched_key
        ));
    }
}

fn stream_into_place(
    store: &dyn Store,
    hit: &Hit,
    plan: &RestorePlan,
    max_bytes: u64,
    global: &GlobalArgs,
) -> Result<Restored> {
    record_use(store, hit);
    let progress = Progress::new("Restoring", hit.size, progress_enabled(global));
    let started = Instant::now();
    let archive_bytes = AtomicU64::new(0);
    let store_wait_ns = AtomicU64::new(0);
    let counting = CountingReader {
        inner: store.open(hit)?,
        count: &archive_bytes,
        waited_ns: &store_wait_ns,
        progress: &progress,
    };
    let options = unpack::UnpackOptions {
        max_bytes,
        writers: unpack_writers(),
        protected: protected_paths(&plan.ctx),
    };
    let unpacked = unpack::unpack_archive(counting, &plan.ctx.roots, &plan.targets, &options)?;
    let archive_bytes = archive_bytes.into_inner();
    let transfer_seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let (files, content_bytes) = (unpacked.files, unpacked.content_bytes);
    // Replacing a uv cache under a running uv would pull it from under that uv's feet.
    let _uv_locks = if plan.force {
        Vec::new()
    } else {
        crate::uv::lock::lock_caches_for_replacing(&restored_paths(&plan.ctx))?
    };
    crate::interrupt::check()?;
    let swapping = Progress::phase("Swapping into place", progress_enabled(global));
    let swap_started = Instant::now();
    unpacked.commit()?;
    swapping.finish();
    Ok(Restored {
        archive_bytes,
        content_bytes,
        files,
        transfer_seconds,
        store_wait_seconds: store_wait_ns.into_inner() as f64 / 1e9,
        swap_seconds: swap_started.elapsed().as_secs_f64(),
    })
}

/// A restore replaces each restored path whole, so a local store inside one would be deleted
/// by the very restore that reads from it.
fn refuse_store_inside_targets(store: &dyn Store, plan: &RestorePlan) -> Result<()> {
    let Some(root) = store.local_root() else {
        return Ok(());
    };
    let root = plan.ctx.roots.absolute(&root.to_string_lossy())?;
    if let Some(unit) = plan.targets.unit_for(&root) {
        return Err(crate::UsageError::Invalid(format!(
            "the store `{}` is inside `{}`, which a restore replaces whole\n\nhint: keep the store outside the restored paths (`--store dir:<DIR>`)",
            root.display(),
            unit.display()
        ))
        .into());
    }
    Ok(())
}

/// A restore replaces each restored path whole; these may never be replaced.
fn protected_paths(ctx: &PathContext) -> Vec<PathBuf> {
    let mut protected = vec![ctx.roots.workspace.clone(), ctx.roots.cwd.clone()];
    protected.extend(ctx.roots.home.clone());
    protected
}

/// The free space where the first restored path will land, less a margin, and where that is.
fn free_space_limit(ctx: &PathContext) -> Result<(u64, PathBuf)> {
    let first = ctx
        .inputs
        .includes()
        .next()
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
    Ok((
        free.saturating_sub(MIN_FREE_MARGIN.max(free / 20)),
        existing,
    ))
}

/// Counts the archive bytes read from the store, for progress and the report, and the time
/// spent waiting for them (the store's share of the transfer).
struct CountingReader<'a> {
    inner: Box<dyn Read + Send>,
    count: &'a AtomicU64,
    waited_ns: &'a AtomicU64,
    progress: &'a Progress,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let asked = Instant::now();
        let n = self.inner.read(buf)?;
        self.waited_ns
            .fetch_add(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
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
