//! `cache-heal heal`: targets → lock the cache (shared, as a uv command) → scan → plan →
//! locate URLs → dry run stops here → fetch and install in parallel → report what offline
//! builds still lack.
//!
//! [`heal_cache`] heals one uv cache and returns a [`HealReport`]; it prints only what belongs
//! to that cache (the plan, sources skipped for `Requires-Python`, per-source failures, the
//! summary line). What concerns the whole run is said once, after every cache was healed,
//! however many caches a restore heals and however many sources are affected: an unreachable
//! index ([`warn_after_restore`], or the error of `heal`) and the build requirements offline
//! builds lack ([`warn_missing_backends`]).

use anyhow::{Context, Result};
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::UsageError;
use crate::cli::{GlobalArgs, HealArgs, HealTargets};
use crate::env_vars;
use crate::error::Failure;
use crate::output::{self, human_bytes};
use crate::python::{index, interpreter, lockfile};
use crate::report::{DataReport, Report};
use crate::uv::build_backends::{self, MissingBackend};
use crate::uv::heal::{self, HealError, Need, Skipped, Sources, Target, Unreachable};
use crate::uv::layout::Layout;
use crate::uv::lock::{self, Mode};

/// What a heal of one uv cache did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize)]
pub struct HealReport {
    /// The uv cache.
    pub path: PathBuf,
    pub dry_run: bool,
    /// `CPython 3.12.1`, one per target interpreter.
    pub targets: Vec<String>,
    /// Every source some target needs, located or not.
    #[serde(serialize_with = "needs")]
    pub planned: Vec<Need>,
    #[serde(serialize_with = "needs")]
    pub healed: Vec<Need>,
    #[serde(serialize_with = "failures")]
    pub failed: Vec<(Need, HealError)>,
    /// Sources not fetched for some target because their `Requires-Python` excludes it.
    pub skipped: Vec<Skipped>,
    pub unreachable: Vec<Unreachable>,
    #[serde(rename = "missing_build_requires")]
    pub missing_backends: Vec<MissingBackend>,
    pub bytes: u64,
    pub left_alone: usize,
    pub seconds: f64,
    /// The indexes asked, as given (they may hold credentials): for the advice command only.
    #[serde(skip)]
    pub indexes: Vec<String>,
}

/// A planned or healed source, as the report shows it.
#[derive(Serialize)]
struct NeedView<'a> {
    package: Option<&'a str>,
    version: Option<&'a str>,
    shard: &'a Path,
    revision: &'a str,
    sha256: Option<&'a str>,
    lacking: Vec<String>,
    bytes: Option<u64>,
    /// Credentials masked.
    url: Option<String>,
    origin: Option<&'a str>,
}

impl<'a> From<&'a Need> for NeedView<'a> {
    fn from(need: &'a Need) -> Self {
        Self {
            package: need.sdist.name.as_deref(),
            version: need.sdist.version.as_deref(),
            shard: &need.sdist.shard,
            revision: &need.sdist.revision_id,
            sha256: need.sdist.sha256.as_deref(),
            lacking: need.lacking_described(),
            bytes: need
                .source
                .as_ref()
                .and_then(|s| s.size)
                .or(need.sdist.size),
            url: need.source.as_ref().map(|s| index::redact(&s.url)),
            origin: need.source.as_ref().map(|s| s.origin.as_str()),
        }
    }
}

fn needs<S: Serializer>(needs: &[Need], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(needs.iter().map(NeedView::from))
}

/// A source that could not be healed; the error as the message a person reads.
#[derive(Serialize)]
struct FailureView {
    package: String,
    error: String,
    hash_mismatch: bool,
}

fn failures<S: Serializer>(failed: &[(Need, HealError)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(failed.iter().map(|(need, error)| FailureView {
        package: need.sdist.label(),
        error: format!("{error:#}"),
        hash_mismatch: error.is_hash_mismatch(),
    }))
}

impl HealReport {
    /// Failures other than those of an unreachable index or file host (each reported once).
    fn own_failures(&self) -> impl Iterator<Item = &(Need, HealError)> {
        self.failed.iter().filter(|(_, e)| !e.is_unreachable())
    }
}

pub fn run(args: &HealArgs, _global: &GlobalArgs) -> Result<Report> {
    let report = heal_cache(&args.path, &args.targets, args.dry_run)?;
    warn_missing_backends(&[&report]);
    let error = failure_of(&report, &args.path);
    let mut data = DataReport::new(&HealOutput {
        status: if error.is_some() { "error" } else { "ok" },
        error: error.as_ref(),
        report: &report,
    })?;
    if let Some(error) = error {
        data.exit_code = error.exit_code;
        data.failure = Some(error);
    }
    Ok(Report::Data(data))
}

/// `heal --json`: the report, with the run's status and, when sources failed, its error.
#[derive(Serialize)]
struct HealOutput<'a> {
    status: &'static str,
    error: Option<&'a Failure>,
    #[serde(flatten)]
    report: &'a HealReport,
}

/// The one error of a heal whose sources failed, if any. An unreachable index or file host
/// is the one error of the run, not one per source; other findings are warnings.
fn failure_of(report: &HealReport, root: &Path) -> Option<Failure> {
    if report.failed.is_empty() {
        for finding in &report.unreachable {
            output::warn(&with_causes(&finding.to_error()));
        }
        return None;
    }
    if report.own_failures().next().is_none()
        && let [finding] = report.unreachable.as_slice()
    {
        return Some(Failure::classify(&finding.to_error()));
    }
    for finding in &report.unreachable {
        output::warn(&with_causes(&finding.to_error()));
    }
    Some(Failure::classify(&anyhow::anyhow!(
        "Failed to heal {} of {} sources in the uv cache at `{}`",
        report.failed.len(),
        report.planned.len(),
        root.display()
    )))
}

/// Heals one uv cache for the targets and prints what belongs to it. Per-source failures are
/// in the report; an `Err` means heal could not run at all (a bad target, not a uv cache, an
/// index variable that is not a URL).
pub fn heal_cache(root: &Path, args: &HealTargets, dry_run: bool) -> Result<HealReport> {
    let started = Instant::now();
    let indexes = index_urls(&args.index_urls)?;
    super::require_uv_cache(root)?;
    let targets = resolve_targets(&args.pythons)?;
    let sources = Sources {
        locks: lockfile::read_all(&lock_paths(&args.locks)?)?,
        indexes: indexes.clone(),
    };
    let mut report = HealReport {
        path: root.to_path_buf(),
        dry_run,
        targets: targets.iter().map(|t| t.interpreter.describe()).collect(),
        indexes,
        ..HealReport::default()
    };

    let _lock = lock::lock_cache(root, Mode::Shared)?;
    let layout = Layout::discover(root)?;
    let inventory = heal::scan(&layout)?;
    for warning in &inventory.warnings {
        output::warn(warning);
    }
    report.left_alone = inventory.left_alone.len();
    let (needs, skipped) = heal::plan(&inventory, &targets);
    report.skipped = skipped;
    if needs.is_empty() {
        print_skipped(&report.skipped);
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
    // Few connections: an index and a file host, a handful of downloads at a time.
    let client = crate::http::client(4)?;
    let lookup = runtime.block_on(crate::interrupt::race(heal::locate(
        &client, needs, &sources,
    )))?;
    report.skipped.extend(lookup.skipped);
    report.unreachable = lookup.unreachable;
    report.planned = lookup
        .located
        .iter()
        .cloned()
        .chain(lookup.failed.iter().map(|(n, _)| n.clone()))
        .collect();
    report.failed = lookup.failed;
    if dry_run {
        print_plan(&lookup.located);
    } else {
        // On a signal the downloads are dropped (their tasks aborted); sources already moved
        // into place stay, as uv would have left them.
        let outcome = runtime
            .block_on(crate::interrupt::race(heal::fetch_and_install(
                &client,
                lookup.located,
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
        report.unreachable.extend(outcome.unreachable);
        report.missing_backends = build_backends::missing_build_backends(&layout, &report.healed);
    }
    report.seconds = started.elapsed().as_secs_f64();
    print_outcome(&report);
    Ok(report)
}

/// After a restore healed every restored uv cache: each unreachable index or file host once
/// (over all caches), each cache healed only in part, and the build requirements offline builds lack.
pub fn warn_after_restore(reports: &[&HealReport]) {
    let mut unreachable: Vec<Unreachable> = Vec::new();
    for finding in reports.iter().flat_map(|r| &r.unreachable) {
        match unreachable.iter_mut().find(|u| u.url == finding.url) {
            Some(known) => known.merge(finding),
            None => unreachable.push(finding.clone()),
        }
    }
    for finding in &unreachable {
        output::warn(&format!(
            "{}\nThe restore itself succeeded; uv will re-download missing sources if it is online",
            with_causes(&finding.to_error())
        ));
    }
    for report in reports {
        let failed = report.own_failures().count();
        if failed > 0 {
            output::warn(&format!(
                "Healed the uv cache at `{}` only in part: {failed} of {} sources failed; the restore itself succeeded",
                report.path.display(),
                report.planned.len()
            ));
        }
    }
    warn_missing_backends(reports);
}

/// One warning for the whole run: every build requirement that offline builds of the healed
/// sources lack, the sources needing each, and the commands (one per cache and target) that
/// have uv cache them, quoted so that they run as printed.
pub fn warn_missing_backends(reports: &[&HealReport]) {
    let mut requirements: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut commands = Vec::new();
    for report in reports {
        for entry in &report.missing_backends {
            for requirement in &entry.requires {
                match requirements.iter_mut().find(|(r, _)| r == requirement) {
                    // The same source in two restored caches is named once.
                    Some((_, packages)) if packages.contains(&entry.package.as_str()) => {}
                    Some((_, packages)) => packages.push(&entry.package),
                    None => requirements.push((requirement, vec![&entry.package])),
                }
            }
        }
        commands.extend(build_backends::install_commands(
            &report.path,
            &report.missing_backends,
            &report.indexes,
        ));
    }
    if requirements.is_empty() {
        return;
    }
    let lines: Vec<String> = requirements
        .iter()
        .map(|(requirement, packages)| format!("  `{requirement}` for {}", some_of(packages)))
        .collect();
    output::warn(&format!(
        "Offline builds need build requirements the uv cache has no wheel for (`uv cache prune --ci` removes pre-built wheels):\n{}\n\nhint: run {} once online to have uv cache them, or save with `--no-prune`:\n{}",
        lines.join("\n"),
        if commands.len() == 1 { "this" } else { "these" },
        commands
            .iter()
            .map(|c| format!("  {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
}

/// `` `a 1.0`, `b 2.0` `` and, past five, how many more.
fn some_of(packages: &[&str]) -> String {
    const SHOWN: usize = 5;
    let named: Vec<String> = packages
        .iter()
        .take(SHOWN)
        .map(|p| format!("`{p}`"))
        .collect();
    match packages.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{} and {more} more", named.join(", ")),
        _ => named.join(", "),
    }
}

/// An error and its causes as one message: `headline\n  Caused by: …`.
fn with_causes(error: &anyhow::Error) -> String {
    let mut chain = error.chain();
    let mut text = chain.next().map(ToString::to_string).unwrap_or_default();
    for cause in chain {
        text.push_str(&format!("\n  Caused by: {cause}"));
    }
    text
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
            need.lacking_described().join(", "),
            index::redact(&source.url),
            source.origin,
        ));
    }
}

/// One line per source skipped for a target, naming the source, the targets and the value.
fn print_skipped(skipped: &[Skipped]) {
    for skip in skipped {
        output::info(&format!(
            "Skipped `{}` for {}: its `Requires-Python` is `{}` (from {})",
            skip.package,
            skip.targets.join(", "),
            skip.requires_python,
            skip.from,
        ));
    }
}

fn print_outcome(report: &HealReport) {
    print_skipped(&report.skipped);
    for (_, error) in report.own_failures() {
        output::warn(&format!("{error:#}"));
    }
    let located = report.planned.len() - report.failed.len();
    if report.dry_run {
        output::info(&format!(
            "Would heal {located} source{} in `{}` for {}",
            if located == 1 { "" } else { "s" },
            report.path.display(),
            report.targets.join(", ")
        ));
    } else {
        output::info(&format!(
            "Healed {} source{} ({}) in `{}` for {} in {:.1}s",
            report.healed.len(),
            if report.healed.len() == 1 { "" } else { "s" },
            human_bytes(report.bytes),
            report.path.display(),
            report.targets.join(", "),
            report.seconds,
        ));
    }
}

/// `--lock` files, else `uv.lock` / `pylock.toml` in the current directory.
fn lock_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given
            .iter()
            .flat_map(|p| {
                p.to_string_lossy()
                    .split('\n')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect::<Vec<_>>()
            })
            .collect());
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(lockfile::default_paths(&cwd))
}

/// `--index-url` (already checked by its parser), else uv's own default index variables,
/// else PyPI. A variable that is used must hold an absolute http(s) URL: a usage error names
/// it otherwise. `restore` calls this before it touches anything, so a bad variable never
/// costs a restore.
pub fn index_urls(given: &[String]) -> Result<Vec<String>, UsageError> {
    let given = super::split_lines(given);
    if !given.is_empty() {
        return Ok(given);
    }
    for var in [env_vars::UV_DEFAULT_INDEX, env_vars::UV_INDEX_URL] {
        if let Ok(value) = std::env::var(var)
            && !value.trim().is_empty()
        {
            let value = value.trim();
            index::check_index_url(value).map_err(|expected| {
                UsageError::Invalid(format!(
                    "`{var}` is `{}`: {expected}\n\nhint: heal reads `{var}` when `--index-url` is not given, as uv does",
                    index::redact_loose(value)
                ))
            })?;
            return Ok(vec![value.to_string()]);
        }
    }
    Ok(vec![build_backends::PYPI.to_string()])
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON field names scripts and the restore report rely on; the raw index URLs (which
    /// may hold credentials) are not among them.
    #[test]
    fn the_report_serializes_with_its_documented_fields() {
        let value = serde_json::to_value(HealReport {
            indexes: vec!["https://user:s3cret@idx.example/simple".into()],
            ..HealReport::default()
        })
        .unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bytes",
                "dry_run",
                "failed",
                "healed",
                "left_alone",
                "missing_build_requires",
                "path",
                "planned",
                "seconds",
                "skipped",
                "targets",
                "unreachable",
            ]
        );
        assert!(!value.to_string().contains("s3cret"));
    }

    #[test]
    fn long_package_lists_are_cut() {
        assert_eq!(some_of(&["a 1", "b 2"]), "`a 1`, `b 2`");
        let many = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(some_of(&many), "`a`, `b`, `c`, `d`, `e` and 2 more");
    }
}
