//! `cache-heal heal`: targets → lock the cache (shared, as a uv command) → scan → plan →
//! locate URLs → dry run stops here → fetch and install in parallel → report what offline
//! builds still lack. `restore` calls [`heal_cache`] for every restored uv cache.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Instant;

use super::print_json;
use crate::cli::{GlobalArgs, HealArgs, HealTargets};
use crate::env_vars;
use crate::output::{self, human_bytes};
use crate::python::{interpreter, lockfile};
use crate::uv::heal::{self, HealError, MissingBackend, Need, Sources, Target};
use crate::uv::layout::Layout;
use crate::uv::lock::{self, Mode};

const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// What a heal did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct HealReport {
    pub targets: Vec<String>,
    pub planned: Vec<Need>,
    pub healed: Vec<Need>,
    pub failed: Vec<(Need, HealError)>,
    pub missing_backends: Vec<MissingBackend>,
    pub bytes: u64,
    pub left_alone: usize,
    pub seconds: f64,
}

impl HealReport {
    pub fn to_json(&self) -> serde_json::Value {
        let need = |n: &Need| {
            serde_json::json!({
                "package": n.sdist.name,
                "version": n.sdist.version,
                "shard": n.sdist.shard,
                "revision": n.sdist.revision_id,
                "sha256": n.sdist.sha256,
                "lacking": n.lacking,
                "bytes": n.source.as_ref().and_then(|s| s.size).or(n.sdist.size),
                "url": n.source.as_ref().map(|s| crate::python::index::redact(&s.url)),
                "origin": n.source.as_ref().map(|s| &s.origin),
            })
        };
        serde_json::json!({
            "targets": self.targets,
            "planned": self.planned.iter().map(need).collect::<Vec<_>>(),
            "healed": self.healed.iter().map(need).collect::<Vec<_>>(),
            "failed": self.failed.iter().map(|(n, e)| serde_json::json!({
                "package": n.sdist.label(),
                "error": format!("{e:#}"),
                "hash_mismatch": e.is_hash_mismatch(),
            })).collect::<Vec<_>>(),
            "missing_build_requires": self.missing_backends,
            "bytes": self.bytes,
            "left_alone": self.left_alone,
            "seconds": self.seconds,
        })
    }
}

pub fn run(args: &HealArgs, global: &GlobalArgs) -> Result<()> {
    let report = heal_cache(&args.path, &args.targets, args.dry_run)?;
    if global.json {
        let mut value = report.to_json();
        value["path"] = serde_json::json!(args.path);
        value["dry_run"] = serde_json::json!(args.dry_run);
        print_json(&value)?;
    }
    if !report.failed.is_empty() {
        bail!(
            "Failed to heal {} of {} sources in the uv cache at `{}`",
            report.failed.len(),
            report.planned.len(),
            args.path.display()
        );
    }
    Ok(())
}

/// Heals one uv cache for the targets and prints what happened. Per-source failures are in the
/// report (and printed as warnings); an `Err` means heal could not run at all.
pub fn heal_cache(root: &Path, args: &HealTargets, dry_run: bool) -> Result<HealReport> {
    let started = Instant::now();
    if !Layout::is_uv_cache(root) {
        bail!(
            "`{}` is not a uv cache: it has neither uv's `CACHEDIR.TAG` nor a bucket of a uv version cache-heal knows",
            root.display()
        );
    }
    let targets = resolve_targets(&args.pythons)?;
    let sources = Sources {
        locks: lockfile::read_all(&lock_paths(&args.locks)?)?,
        indexes: index_urls(&args.index_urls),
    };
    let mut report = HealReport {
        targets: targets.iter().map(|t| t.interpreter.describe()).collect(),
        ..HealReport::default()
    };

    let _lock = lock::lock_cache(root, Mode::Shared)?;
    let layout = Layout::discover(root)?;
    let inventory = heal::scan(&layout)?;
    for warning in &inventory.warnings {
        output::warn(warning);
    }
    report.left_alone = inventory.left_alone.len();
    let needs = heal::plan(&inventory, &targets);
    if needs.is_empty() {
        output::info(&format!(
            "Nothing to heal in `{}`: every source that {} must build is present",
            root.display(),
            report.targets.join(", ")
        ));
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the download runtime")?;
    let client = heal::http_client()?;
    let (located, unlocated) = runtime.block_on(crate::interrupt::race(heal::locate(
        &client, needs, &sources,
    )))?;
    report.planned = located
        .iter()
        .cloned()
        .chain(unlocated.iter().map(|(n, _)| n.clone()))
        .collect();
    report.failed = unlocated;
    if dry_run {
        print_plan(&located);
    } else {
        // On a signal the downloads are dropped (their tasks aborted); sources already moved
        // into place stay, as uv would have left them.
        let outcome = runtime
            .block_on(crate::interrupt::race(heal::fetch_and_install(
                &client, located,
            )))
            .map_err(|interrupted| {
                anyhow::Error::new(interrupted).context(crate::interrupt::Done(format!(
                    "healing `{}` stopped; sources healed before the signal stay, the others were not fetched",
                    root.display()
                )))
            })?;
        report.bytes = outcome.bytes;
        report.healed = outcome.healed;
        report.failed.extend(outcome.failed);
        report.missing_backends = heal::missing_build_backends(&layout, &report.healed);
    }
    report.seconds = started.elapsed().as_secs_f64();
    print_outcome(root, &report, dry_run);
    Ok(report)
}

fn print_plan(located: &[Need]) {
    for need in located {
        let source = need.source.as_ref().expect("located");
        output::info(&format!(
            "Would fetch `{}` ({}) for {}: `{}` (from {})",
            need.sdist.label(),
            source
                .size
                .or(need.sdist.size)
                .map_or("size unknown".into(), human_bytes),
            need.lacking.join(", "),
            crate::python::index::redact(&source.url),
            source.origin,
        ));
    }
}

fn print_outcome(root: &Path, report: &HealReport, dry_run: bool) {
    for (_, error) in &report.failed {
        output::warn(&format!("{error:#}"));
    }
    print_missing_backends(&report.missing_backends);
    if dry_run {
        output::info(&format!(
            "Would heal {} source{} in `{}` for {}",
            report.planned.len() - report.failed.len(),
            if report.planned.len() == 1 { "" } else { "s" },
            root.display(),
            report.targets.join(", ")
        ));
    } else {
        output::info(&format!(
            "Healed {} source{} ({}) in `{}` for {} in {:.1}s",
            report.healed.len(),
            if report.healed.len() == 1 { "" } else { "s" },
            human_bytes(report.bytes),
            root.display(),
            report.targets.join(", "),
            report.seconds,
        ));
    }
}

/// One warning per distinct set of missing build requirements, naming the sources that need it.
fn print_missing_backends(missing: &[MissingBackend]) {
    let mut groups: Vec<(&Vec<String>, Vec<&str>)> = Vec::new();
    for entry in missing {
        match groups
            .iter_mut()
            .find(|(requires, _)| **requires == entry.requires)
        {
            Some((_, packages)) => packages.push(&entry.package),
            None => groups.push((&entry.requires, vec![&entry.package])),
        }
    }
    for (requires, packages) in groups {
        const SHOWN: usize = 3;
        let mut who: Vec<String> = packages
            .iter()
            .take(SHOWN)
            .map(|p| format!("`{p}`"))
            .collect();
        if packages.len() > SHOWN {
            who.push(format!("{} more", packages.len() - SHOWN));
        }
        let subject = if packages.len() == 1 {
            format!("An offline build of {} needs", who[0])
        } else {
            format!("Offline builds of {} need", who.join(", "))
        };
        output::warn(&format!(
            "{subject} {}, which the uv cache has no wheel for (`uv cache prune --ci` removes pre-built wheels)\n\nhint: run uv once online with this cache (for example `uv pip install --target <tmp> {}`), or save with `--no-prune`",
            requires
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
            requires
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
}

/// `--lock` files, else `uv.lock` / `pylock.toml` in the current directory.
fn lock_paths(given: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    if !given.is_empty() {
        return Ok(given
            .iter()
            .flat_map(|p| {
                p.to_string_lossy()
                    .split('\n')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(std::path::PathBuf::from)
                    .collect::<Vec<_>>()
            })
            .collect());
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(lockfile::default_paths(&cwd))
}

/// `--index-url`, else uv's own default index variables, else PyPI.
fn index_urls(given: &[String]) -> Vec<String> {
    let given = super::split_lines(given);
    if !given.is_empty() {
        return given;
    }
    for var in [env_vars::UV_DEFAULT_INDEX, env_vars::UV_INDEX_URL] {
        if let Ok(value) = std::env::var(var)
            && !value.trim().is_empty()
        {
            return vec![value.trim().to_string()];
        }
    }
    vec![DEFAULT_INDEX.to_string()]
}

/// `--python` values (newline-separated too) → queried interpreters with their tags.
pub fn resolve_targets(specs: &[String]) -> Result<Vec<Target>> {
    let mut specs: Vec<String> = super::split_lines(specs);
    if specs.is_empty() {
        specs = interpreter::default_specs();
    }
    specs
        .iter()
        .map(|spec| interpreter::find(spec).map(Target::new))
        .collect()
}
