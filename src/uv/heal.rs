//! Heal: re-create the `<REV>/src` directories that `uv cache prune --ci` removed, for exactly
//! the source distributions the target interpreters will have to build.
//!
//! uv heals lazily since 0.4.13 (uv `heal_url_revision`, PR #7559): when it needs to build an
//! sdist whose `src/` is gone, it downloads the archive again, checks it against the hashes in
//! `revision.http`, and unpacks it into the same revision. Offline, or with the index down,
//! that fails ("Network connectivity is disabled …", docs/uv-cache.md §5 T3). Heal does the
//! same ahead of time, in parallel, while the network is there:
//!
//! 1. **scan** the sdist bucket: registry (`pypi/`, `index/`) and direct-URL (`url/`) shards
//!    with their current revision, its sha256 and size, and the wheels built from it (in the
//!    revision and its build-settings sub-shards). `path/`, `editable/` and `git/` shards are
//!    counted and left alone: uv re-extracts or re-checks those out itself.
//! 2. **plan**: a source is needed when its `src/` is missing and some target accepts none of
//!    its built wheels, unless its `Requires-Python` (uv's `metadata.msgpack`) excludes that
//!    target: uv would never build it there, so it is skipped for it, with a note.
//! 3. **locate**: the URL comes from a lock file with the same sha256, else from the index's
//!    project page, again matched by sha256. Names and versions are never trusted to pick a file.
//!    The lock file's (pylock.toml) or the index's `Requires-Python` for that file counts as
//!    well when uv recorded none. An index (or a file host) that cannot be reached is one
//!    finding for the run ([`Unreachable`]), not one per package.
//! 4. **fetch**, bounded in parallel, with retries: the archive goes to a temporary file and its
//!    size and sha256 are checked before anything touches the cache.
//! 5. **install**: unpack with the top directory stripped into a temporary directory inside the
//!    revision, then, holding the shard's lock, rename it to `src`. uv only checks that `src` is
//!    a directory, so it must be complete when it appears. The pointer files are never written.
//!
//! Build backends are not fetched (only uv can write their cache entries); what the healed
//! sources still lack is reported by [`super::build_backends`].

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::layout::{BucketKind, Generation, Layout};
use super::lock;
use super::revision::{self, DistMetadata, METADATA, REVISION_HTTP, Revision};
use crate::python::interpreter::Interpreter;
use crate::python::lockfile::BySha256;
use crate::python::normalize_name;
use crate::python::requires_python::RequiresPython;
use crate::python::tags::Tags;
use crate::python::wheel::WheelFilename;
use crate::python::{index, sdist};

/// How many archives are downloaded at once.
pub const PARALLEL_DOWNLOADS: usize = 32;
/// Attempts per download or index page (uv retries three times too).
pub const ATTEMPTS: u32 = 3;

/// An interpreter the cache is healed for.
#[derive(Clone, Debug)]
pub struct Target {
    pub interpreter: Interpreter,
    pub tags: Tags,
}

impl Target {
    pub fn new(interpreter: Interpreter) -> Self {
        let tags = Tags::for_interpreter(&interpreter);
        Self { interpreter, tags }
    }
}

/// Where an sdist shard's archive came from, as far as uv's layout tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShardKind {
    /// `pypi/<name>/<version>/` or `index/<digest>/<name>/<version>/`.
    Registry,
    /// `url/<digest>/`.
    Url,
}

/// One sdist revision and what was built from it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SdistRevision {
    pub kind: ShardKind,
    /// The directory holding `revision.http`.
    pub shard: PathBuf,
    pub revision_id: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// File names of the wheels built from this revision, sub-shards included.
    pub wheels: Vec<String>,
    pub has_src: bool,
    /// `Requires-Python` as uv recorded it in the revision's `metadata.msgpack`.
    pub requires_python: Option<String>,
}

impl SdistRevision {
    pub fn revision_dir(&self) -> PathBuf {
        self.shard.join(&self.revision_id)
    }

    /// `markupsafe 3.0.4`, or the shard path when the name is unknown.
    pub fn label(&self) -> String {
        match (&self.name, &self.version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.clone(),
            _ => self.shard.display().to_string(),
        }
    }

    fn parsed_wheels(&self) -> impl Iterator<Item = WheelFilename> + '_ {
        self.wheels.iter().filter_map(|w| WheelFilename::parse(w))
    }
}

/// What the sdist bucket holds.
#[derive(Debug, Default)]
pub struct Inventory {
    pub revisions: Vec<SdistRevision>,
    /// `path/`, `editable/`, `git/` shards: uv restores those itself.
    pub left_alone: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Step 1: reads every sdist bucket of a known uv version.
pub fn scan(layout: &Layout) -> Result<Inventory> {
    let mut inventory = Inventory::default();
    for unknown in layout.unknown_buckets() {
        inventory.warnings.push(format!(
            "Left `{}` untouched: it looks like a uv bucket, but not one of a uv version cache-heal knows (0.12.x, 0.13.x)",
            unknown.path.display()
        ));
    }
    for bucket in layout.buckets_of(BucketKind::Sdists) {
        let generation = bucket.generation();
        for (kind, depth) in [("pypi", 2), ("index", 3), ("url", 1)] {
            let root = bucket.path.join(kind);
            let shard_kind = if kind == "url" {
                ShardKind::Url
            } else {
                ShardKind::Registry
            };
            for shard in dirs_at_depth(&root, depth)? {
                match read_shard(&shard, shard_kind, generation) {
                    Ok(Some(rev)) => inventory.revisions.push(rev),
                    Ok(None) => {}
                    Err(error) => inventory
                        .warnings
                        .push(format!("Left `{}` untouched: {error:#}", shard.display())),
                }
            }
        }
        for kind in ["path", "editable", "git"] {
            inventory
                .left_alone
                .extend(dirs_at_depth(&bucket.path.join(kind), 1)?);
        }
    }
    Ok(inventory)
}

fn read_shard(
    shard: &Path,
    kind: ShardKind,
    generation: Generation,
) -> Result<Option<SdistRevision>> {
    let pointer = shard.join(REVISION_HTTP);
    if !pointer.is_file() {
        return Ok(None);
    }
    let Revision { id, sha256, size } = revision::read(&pointer, generation)?;
    let rev_dir = shard.join(&id);
    let mut wheels = Vec::new();
    let mut metadata = None;
    if rev_dir.is_dir() {
        collect_wheels(&rev_dir, &mut wheels)?;
        if rev_dir.join(METADATA).is_file() {
            metadata = revision::read_metadata(&rev_dir.join(METADATA));
        }
        for sub in fs_err::read_dir(&rev_dir)? {
            let sub = sub?;
            if sub.file_type()?.is_dir() && sub.path().join(METADATA).is_file() {
                collect_wheels(&sub.path(), &mut wheels)?;
                metadata = metadata.or_else(|| revision::read_metadata(&sub.path().join(METADATA)));
            }
        }
    }
    let requires_python = metadata.as_ref().and_then(|m| m.requires_python.clone());
    let (name, version) = match kind {
        // `…/<name>/<version>/`: the layout names registry shards.
        ShardKind::Registry => (
            shard
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            shard.file_name().map(|n| n.to_string_lossy().into_owned()),
        ),
        ShardKind::Url => match metadata {
            Some(DistMetadata { name, version, .. }) => (Some(name), Some(version)),
            None => (None, None),
        },
    };
    Ok(Some(SdistRevision {
        kind,
        shard: shard.to_path_buf(),
        revision_id: id,
        sha256,
        size,
        name,
        version,
        wheels,
        has_src: rev_dir.join("src").is_dir(),
        requires_python,
    }))
}

fn collect_wheels(dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".whl") && entry.file_type()?.is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(())
}

pub(super) fn dirs_at_depth(root: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(depth)
        .max_depth(depth)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry?;
        if entry.file_type().is_dir() {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// One source heal has to bring back.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Need {
    pub sdist: SdistRevision,
    /// The targets with no compatible built wheel that the source's `Requires-Python` allows.
    pub lacking: Vec<Interpreter>,
    pub source: Option<Located>,
}

impl Need {
    /// `CPython 3.12.1, CPython 3.13.0`.
    pub fn lacking_described(&self) -> Vec<String> {
        self.lacking.iter().map(Interpreter::describe).collect()
    }

    /// Drops the targets `requires_python` excludes; what was dropped comes back as a
    /// [`Skipped`]. A value that does not parse excludes nothing.
    fn restrict(&mut self, requires_python: &str, from: &str) -> Option<Skipped> {
        let spec = RequiresPython::parse(requires_python)?;
        let (kept, excluded): (Vec<_>, Vec<_>) = std::mem::take(&mut self.lacking)
            .into_iter()
            .partition(|t| spec.contains(t.version));
        self.lacking = kept;
        (!excluded.is_empty()).then(|| Skipped {
            package: self.sdist.label(),
            requires_python: requires_python.to_string(),
            targets: excluded.iter().map(Interpreter::describe).collect(),
            from: from.to_string(),
            entirely: self.lacking.is_empty(),
        })
    }
}

/// A source not fetched for some targets because its `Requires-Python` excludes them: uv
/// would never build it for those interpreters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// `modernext 1.0`.
    pub package: String,
    /// As the source declares it: `>=3.8`.
    pub requires_python: String,
    /// The excluded targets: `CPython 3.6.15`.
    pub targets: Vec<String>,
    /// Where the value came from: uv's metadata or an index.
    pub from: String,
    /// Whether no target needs the source any more (it is not fetched at all).
    pub entirely: bool,
}

/// Where a needed archive will be downloaded from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Located {
    pub url: String,
    /// `lock file <path>` or `index <url>`.
    pub origin: String,
    pub size: Option<u64>,
}

/// Step 2: sources missing `src/` that some target cannot install from the built wheels and
/// may build (its `Requires-Python` allows it); the sources skipped for a target come second.
pub fn plan(inventory: &Inventory, targets: &[Target]) -> (Vec<Need>, Vec<Skipped>) {
    let mut needs = Vec::new();
    let mut skipped = Vec::new();
    for rev in inventory.revisions.iter().filter(|rev| !rev.has_src) {
        let lacking: Vec<Interpreter> = targets
            .iter()
            .filter(|t| !rev.parsed_wheels().any(|w| t.tags.accepts(&w)))
            .map(|t| t.interpreter.clone())
            .collect();
        if lacking.is_empty() {
            continue;
        }
        let mut need = Need {
            sdist: rev.clone(),
            lacking,
            source: None,
        };
        if let Some(requires_python) = rev.requires_python.clone()
            && let Some(skip) = need.restrict(&requires_python, "uv's metadata")
        {
            skipped.push(skip);
        }
        if !need.lacking.is_empty() {
            needs.push(need);
        }
    }
    (needs, skipped)
}

/// Why one source could not be healed.
#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error(
        "Skipped healing `{package}`: the downloaded sdist does not match the sha256 uv recorded\n  expected: {expected}  computed: {actual}\n  from: `{url}`"
    )]
    HashMismatch {
        package: String,
        expected: String,
        actual: String,
        url: String,
    },
    #[error(
        "Skipped healing `{package}`: the downloaded sdist is {actual} bytes, uv recorded {expected}\n  from: `{url}`"
    )]
    SizeMismatch {
        package: String,
        expected: u64,
        actual: u64,
        url: String,
    },
    #[error("Could not heal `{package}`: {message}")]
    NotFound { package: String, message: String },
    /// The only index that could have listed the source was unreachable; the index itself is
    /// reported once, as an [`Unreachable`].
    #[error("Could not heal `{package}`: the index `{index}` could not be reached")]
    IndexUnreachable { package: String, index: String },
    #[error("Could not heal `{package}`: request to `{url}` failed after {attempts} attempts")]
    Unreachable {
        package: String,
        url: String,
        attempts: u32,
        #[source]
        source: anyhow::Error,
    },
    #[error("Could not heal `{package}`")]
    Other {
        package: String,
        #[source]
        source: anyhow::Error,
    },
}

impl HealError {
    pub fn is_hash_mismatch(&self) -> bool {
        matches!(self, HealError::HashMismatch { .. })
    }

    /// Whether the failure is an unreachable index's or file host's, reported once for it as
    /// an [`Unreachable`].
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            HealError::IndexUnreachable { .. } | HealError::Unreachable { .. }
        )
    }
}

/// What could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnreachableKind {
    /// A simple-API index: its project pages.
    Index,
    /// Where archives are downloaded from (a lock file's URL, an index's file host).
    FileHost,
}

/// An index or file host that failed for a whole run: connections refused or timed out, or
/// server errors, on every attempt. Reported once, however many sources it was asked for.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unreachable {
    pub kind: UnreachableKind,
    /// The index URL, or the origin of the downloads (`https://files.pythonhosted.org`);
    /// credentials masked.
    pub url: String,
    /// What failed on the last attempt, outermost first (no URL in it, see [`index`]).
    #[serde(rename = "error", serialize_with = "join_causes")]
    pub causes: Vec<String>,
    /// The sources it was asked for that no other source provided (`cext 1.0`).
    pub sources: Vec<String>,
}

fn join_causes<S: serde::Serializer>(causes: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&causes.join(": "))
}

impl Unreachable {
    /// The finding as an error whose chain prints as `Caused by:` lines.
    pub fn to_error(&self) -> anyhow::Error {
        let mut causes = self.causes.iter().rev();
        let mut error = anyhow::anyhow!("{}", causes.next().map_or("no response", String::as_str));
        for cause in causes {
            error = error.context(cause.clone());
        }
        let count = self.sources.len();
        let what = match self.kind {
            UnreachableKind::Index => format!("Could not reach the index `{}`", self.url),
            UnreachableKind::FileHost => format!("Could not download from `{}`", self.url),
        };
        let headline = if count == 0 {
            format!("{what} after {ATTEMPTS} attempts")
        } else {
            format!(
                "{what} after {ATTEMPTS} attempts, so {count} source{} {} not healed: {}",
                if count == 1 { "" } else { "s" },
                if count == 1 { "was" } else { "were" },
                self.sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        error.context(headline)
    }

    /// Adds another cache's finding for the same index.
    pub fn merge(&mut self, other: &Unreachable) {
        for source in &other.sources {
            if !self.sources.contains(source) {
                self.sources.push(source.clone());
            }
        }
    }
}

/// Where heal looks for archives.
#[derive(Clone, Debug)]
pub struct Sources {
    pub locks: BySha256,
    pub indexes: Vec<String>,
}

/// What happened to each needed source.
#[derive(Debug, Default)]
pub struct Outcome {
    pub healed: Vec<Need>,
    pub failed: Vec<(Need, HealError)>,
    /// The file hosts that failed every attempt, each once.
    pub unreachable: Vec<Unreachable>,
    pub bytes: u64,
}

/// What [`locate`] found.
#[derive(Debug, Default)]
pub struct Lookup {
    pub located: Vec<Need>,
    pub failed: Vec<(Need, HealError)>,
    /// Sources the index's `Requires-Python` excludes for some target.
    pub skipped: Vec<Skipped>,
    pub unreachable: Vec<Unreachable>,
}

/// Step 3: finds a URL for every need: lock files first, then the project pages of each index,
/// fetched in parallel (one request per project and index, however many revisions need it).
pub async fn locate(client: &reqwest::Client, needs: Vec<Need>, sources: &Sources) -> Lookup {
    let pages = fetch_pages(client, &needs, sources).await;
    let mut lookup = Lookup::default();
    for ((index_url, _), page) in &pages {
        if let Err(PageError::Unreachable(causes)) = page {
            let url = index::redact(index_url);
            if !lookup.unreachable.iter().any(|u| u.url == url) {
                lookup.unreachable.push(Unreachable {
                    kind: UnreachableKind::Index,
                    url,
                    causes: causes.clone(),
                    sources: Vec::new(),
                });
            }
        }
    }
    lookup.unreachable.sort_by(|a, b| a.url.cmp(&b.url));
    let Lookup {
        located,
        failed,
        skipped,
        unreachable,
    } = &mut lookup;
    for mut need in needs {
        let package = need.sdist.label();
        let Some(sha256) = need.sdist.sha256.clone() else {
            failed.push((
                need,
                HealError::NotFound {
                    package,
                    message:
                        "uv recorded no sha256 for this revision, so no download can be verified"
                            .into(),
                },
            ));
            continue;
        };
        if let Some(locked) = sources.locks.get(&sha256) {
            let origin = format!("lock file `{}`", locked.source.display());
            // uv's own record wins; the lock file's value only counts when uv recorded none.
            if need.sdist.requires_python.is_none()
                && let Some(requires_python) = &locked.requires_python
                && let Some(skip) = need.restrict(requires_python, &origin)
            {
                skipped.push(skip);
                if need.lacking.is_empty() {
                    continue;
                }
            }
            need.source = Some(Located {
                url: locked.url.clone(),
                origin,
                size: locked.size.or(need.sdist.size),
            });
            located.push(need);
            continue;
        }
        let Some(name) = index_name(&need) else {
            failed.push((need, HealError::NotFound {
                package,
                message: format!(
                    "a direct-URL sdist is only found through a lock file, and none lists sha256 {sha256}"
                ),
            }));
            continue;
        };
        let mut errors = Vec::new();
        let mut unreachable_index = None;
        let mut index_requires_python = None;
        for index_url in &sources.indexes {
            match &pages[&(index_url.clone(), normalize_name(&name))] {
                Ok(files) => {
                    if let Some(file) = files
                        .iter()
                        .find(|f| f.sha256.as_deref() == Some(sha256.as_str()))
                    {
                        let origin = format!("index `{}`", index::redact(index_url));
                        index_requires_python =
                            file.requires_python.clone().map(|r| (r, origin.clone()));
                        need.source = Some(Located {
                            url: file.url.clone(),
                            origin,
                            size: file.size.or(need.sdist.size),
                        });
                        break;
                    }
                    errors.push(format!(
                        "`{}` lists no file with sha256 {sha256}",
                        index::redact(index_url)
                    ));
                }
                Err(PageError::Unreachable(_)) => {
                    unreachable_index.get_or_insert_with(|| index::redact(index_url));
                }
                Err(PageError::Failed(error)) => errors.push(error.clone()),
            }
        }
        // uv's own record wins; the index's value only counts when uv recorded none.
        if need.sdist.requires_python.is_none()
            && let Some((requires_python, origin)) = index_requires_python
            && let Some(skip) = need.restrict(&requires_python, &origin)
        {
            skipped.push(skip);
            if need.lacking.is_empty() {
                continue;
            }
        }
        match (need.source.is_some(), unreachable_index) {
            (true, _) => located.push(need),
            (false, Some(index)) => {
                if let Some(finding) = unreachable.iter_mut().find(|u| u.url == index) {
                    finding.sources.push(package.clone());
                }
                failed.push((need, HealError::IndexUnreachable { package, index }));
            }
            (false, None) => failed.push((
                need,
                HealError::NotFound {
                    package,
                    message: errors.join("; "),
                },
            )),
        }
    }
    lookup
}

/// The project name to look up on an index: registry shards only, and only when no lock file
/// already has the archive.
fn index_name(need: &Need) -> Option<String> {
    match (&need.sdist.kind, &need.sdist.name) {
        (ShardKind::Registry, Some(name)) => Some(name.clone()),
        _ => None,
    }
}

/// Why a project page could not be read.
#[derive(Clone, Debug)]
enum PageError {
    /// No answer, or a server error, on every attempt: the index is the problem, not the
    /// project. Holds the last attempt's error chain, outermost first.
    Unreachable(Vec<String>),
    /// An answer that says no (404: not on this index) or cannot be read.
    Failed(String),
}

type Pages = HashMap<(String, String), Result<Vec<index::IndexFile>, PageError>>;

/// Every project page some need may have to look at, fetched concurrently.
async fn fetch_pages(client: &reqwest::Client, needs: &[Need], sources: &Sources) -> Pages {
    let mut wanted = BTreeSet::new();
    for need in needs {
        let in_lock = need
            .sdist
            .sha256
            .as_ref()
            .is_some_and(|s| sources.locks.contains_key(s));
        if let (false, Some(name)) = (in_lock, index_name(need)) {
            for index_url in &sources.indexes {
                wanted.insert((index_url.clone(), normalize_name(&name)));
            }
        }
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(PARALLEL_DOWNLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for (index_url, name) in wanted {
        let client = client.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await.expect("semaphore open");
            let result = fetch_page(&client, &index_url, &name).await;
            ((index_url, name), result)
        });
    }
    let mut pages = Pages::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, result) = joined.expect("index page task panicked");
        pages.insert(key, result);
    }
    pages
}

async fn fetch_page(
    client: &reqwest::Client,
    index_url: &str,
    name: &str,
) -> Result<Vec<index::IndexFile>, PageError> {
    let page =
        index::project_url(index_url, name).map_err(|e| PageError::Failed(format!("{e:#}")))?;
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        match index::list_files(client, &page).await {
            Ok(files) => return Ok(files),
            Err(error) if is_transient(&error) => {
                last = Some(error);
                if attempt + 1 < ATTEMPTS {
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
            Err(error) => {
                return Err(PageError::Failed(format!(
                    "{:#}",
                    error.context(format!(
                        "reading the index page `{}`",
                        index::redact(page.as_str())
                    ))
                )));
            }
        }
    }
    let last = last.expect("at least one attempt");
    Err(PageError::Unreachable(
        last.chain().map(ToString::to_string).collect(),
    ))
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 << attempt.min(5))
}

/// Connection failures, timeouts and 5xx are retried; anything else is final.
fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<reqwest::Error>().is_some_and(|e| {
            e.is_connect()
                || e.is_timeout()
                || e.is_request()
                || e.is_body()
                || e.status().is_some_and(|s| s.is_server_error())
        }) || cause.downcast_ref::<std::io::Error>().is_some()
    })
}

/// Steps 4 and 5 for every located need, at most [`PARALLEL_DOWNLOADS`] at a time.
pub async fn fetch_and_install(client: &reqwest::Client, needs: Vec<Need>) -> Outcome {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(PARALLEL_DOWNLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for need in needs {
        let client = client.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await.expect("semaphore open");
            let result = heal_one(&client, &need).await;
            (need, result)
        });
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let (need, result) = joined.expect("heal task panicked");
        match result {
            Ok(bytes) => {
                outcome.bytes += bytes;
                outcome.healed.push(need);
            }
            Err(error) => {
                if let HealError::Unreachable {
                    package,
                    url,
                    source,
                    ..
                } = &error
                {
                    note_unreachable_host(&mut outcome.unreachable, package, url, source);
                }
                outcome.failed.push((need, error));
            }
        }
    }
    outcome.healed.sort_by_key(|n| n.sdist.label());
    for finding in &mut outcome.unreachable {
        finding.sources.sort();
    }
    outcome
}

/// Files one download that failed every attempt under its host (scheme, host and port).
fn note_unreachable_host(
    found: &mut Vec<Unreachable>,
    package: &str,
    url: &str,
    error: &anyhow::Error,
) {
    let origin = reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_string());
    match found.iter_mut().find(|u| u.url == origin) {
        Some(finding) => finding.sources.push(package.to_string()),
        None => found.push(Unreachable {
            kind: UnreachableKind::FileHost,
            url: origin,
            causes: error.chain().map(ToString::to_string).collect(),
            sources: vec![package.to_string()],
        }),
    }
}

async fn heal_one(client: &reqwest::Client, need: &Need) -> Result<u64, HealError> {
    let package = need.sdist.label();
    let source = need.source.as_ref().expect("located before fetching");
    let expected = need
        .sdist
        .sha256
        .clone()
        .expect("located needs have a sha256");
    let mut attempt = 0;
    let (file, size, actual) = loop {
        match download(client, &source.url).await {
            Ok(done) => break done,
            Err(error) if attempt + 1 < ATTEMPTS && is_transient(&error) => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(error) if is_transient(&error) => {
                return Err(HealError::Unreachable {
                    package,
                    url: index::redact(&source.url),
                    attempts: ATTEMPTS,
                    source: error,
                });
            }
            Err(error) => {
                return Err(HealError::Other {
                    package,
                    source: error.context(format!("downloading `{}`", index::redact(&source.url))),
                });
            }
        }
    };
    if actual != expected {
        return Err(HealError::HashMismatch {
            package,
            expected,
            actual,
            url: index::redact(&source.url),
        });
    }
    if let Some(recorded) = need.sdist.size
        && recorded != size
    {
        return Err(HealError::SizeMismatch {
            package,
            expected: recorded,
            actual: size,
            url: index::redact(&source.url),
        });
    }
    let sdist = need.sdist.clone();
    let url = source.url.clone();
    tokio::task::spawn_blocking(move || install_source(&sdist, &url, file))
        .await
        .map_err(|e| HealError::Other {
            package: package.clone(),
            source: e.into(),
        })?
        .map_err(|source| HealError::Other { package, source })?;
    Ok(size)
}

/// Streams one archive into a temporary file, hashing as it goes.
async fn download(
    client: &reqwest::Client,
    url: &str,
) -> Result<(tempfile::NamedTempFile, u64, String)> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(reqwest::Error::without_url)?
        .error_for_status()
        .map_err(reqwest::Error::without_url)?;
    let mut file =
        tempfile::NamedTempFile::new().context("creating a temporary file for a download")?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(reqwest::Error::without_url)?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)?;
    }
    file.flush()?;
    Ok((file, size, hex::encode(hasher.finalize())))
}

/// Unpacks a verified archive next to the revision and renames it to `src` under the shard
/// lock. If `src` appeared meanwhile (uv healed it), ours is dropped.
fn install_source(
    sdist: &SdistRevision,
    url: &str,
    archive: tempfile::NamedTempFile,
) -> Result<()> {
    let rev_dir = sdist.revision_dir();
    fs_err::create_dir_all(&rev_dir)?;
    let staging = tempfile::Builder::new()
        .prefix(".cache-heal-src-")
        .tempdir_in(&rev_dir)
        .with_context(|| format!("creating a staging directory in `{}`", rev_dir.display()))?;
    let filename = url
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    sdist::unpack(archive.path(), filename, staging.path())
        .with_context(|| format!("unpacking `{filename}`"))?;
    let _shard_lock = lock::lock_shard(&sdist.shard)?;
    let src = rev_dir.join("src");
    if src.exists() {
        return Ok(());
    }
    fs_err::rename(staging.keep(), &src)?;
    Ok(())
}
