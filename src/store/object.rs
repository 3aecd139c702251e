//! Entries in an object store (S3, Azure Blob) with GitHub's rules: scoped by ref, first save
//! wins, newest match first. Everything here is generic over `object_store::ObjectStore`; what
//! differs between services (building the client, credentials, the error vocabulary and what
//! a message tells the user to check) is a [`Flavor`] and a client handed in by `s3.rs` or
//! `azure.rs`.
//!
//! # Layout
//!
//! ```text
//! PREFIX/<scope>/<version>/<key>.json                        metadata: its creation publishes
//! PREFIX/<scope>/<version>/archives/<key>.<upload-id>.tzst   the archive it names (or .tgz)
//! PREFIX/<scope>/<version>/used/<key>                        empty; its LastModified is the
//!                                                            entry's last use
//! ```
//!
//! The last use is a marker object of its own, rewritten when a restore starts downloading,
//! because the metadata object is never rewritten: its conditional creation is what publishes.
//! A listing shows the markers next to the entries, so `inspect` and `gc` pay no extra request.
//!
//! `<scope>` is a ref (`refs/heads/main`, `refs/pull/7/merge`) or `local`, one path segment per
//! ref component (see [`Scopes`]). `<version>` is the actions/cache entry version. `<key>` is
//! the key with every ASCII byte outside `[A-Za-z0-9._-]` percent-encoded (so `/` never splits
//! it; other UTF-8 stays as it is), which keeps the usual keys readable in `aws s3 ls` or the
//! Azure portal. The archive is exactly what actions/cache writes (`zstd -d | tar -x` reads
//! it); its name carries a random upload id, so two saves racing on one key never write the
//! same archive object. S3 limits object names to 1024 bytes, so a key of 512 characters that
//! are mostly percent-encoded is refused by the server (a warning, as every store failure).
//!
//! # Publishing: atomic, first wins
//!
//! The archive goes up as a multipart upload straight from the compressor (S3 parts; Azure
//! blocks, committed by one Put Block List), in parts of [`PART_SIZE`] with
//! [`UPLOAD_CONCURRENCY`] in flight, so memory stays bounded whatever the size. It is
//! completed only when the archive is whole; then the metadata object is created with
//! `If-None-Match: *`. Of two saves of one key, one creates it and the other gets 412 (Azurite
//! answers 409; `object_store` reports both as "already exists") and deletes its archive:
//! "already exists", as GitHub's service answers 409. An upload dropped before it is finished
//! (an error in the packer, a failed part) is aborted; a process killed outright leaves parts
//! that are no entry (see each store's module doc for who cleans them up).
//!
//! # Sweeping
//!
//! A save killed between completing its archive and creating the metadata, or one that lost
//! the race and could not delete its archive, leaves an archive that no metadata names; a
//! removal cut short after the metadata went leaves its archive and marker, and a restore
//! that rewrites the marker of an entry being removed leaves a marker of no entry. `gc` sweeps
//! them from one listing of every scope once they are older than its grace window (in which a
//! save may still be publishing), and looks again right before each delete. Metadata that
//! cannot be parsed keeps the archives of its key while it is younger than the window. A server
//! may date an object made by a multipart upload from when the upload started rather than
//! when it completed, so the grace window should outlast the slowest save as well as the
//! slowest restore.
//!
//! # Restore
//!
//! Ranged GETs of [`SEGMENT_SIZE`] to [`SEGMENT_SIZE_MAX`] (about `SEGMENTS` per archive),
//! [`DOWNLOAD_CONCURRENCY`] in flight, each streaming into a queue of `SEGMENT_BLOCKS` blocks
//! of 1 MiB that the unpacker drains in order, so data reaches it as it arrives and memory stays
//! bounded (~30 MiB of blocks) however large the segments. A body that breaks off or comes up
//! short is asked for again from where it stopped. The archive's size and sha256 (recorded in
//! the metadata) are checked at the end, so a truncated or swapped archive fails the restore
//! before the swap.
//!
//! # Errors never carry a credential
//!
//! Error bodies can echo the canonical request (with a session token), an access key id or a
//! signed URL, and an HTTP error names the URL (which holds an Azure SAS). So an
//! `object_store` error never travels on: [`Error`] keeps only what was asked, the service's
//! error code (one of a fixed vocabulary) and the HTTP status, and says what to check.

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::{JoinHandle, JoinSet};

use super::scope::{LOCAL_SCOPE, Scopes, decode_segment, encode_segment};
use super::{
    EntryInfo, Hit, Lookup, NewEntry, Published, Query, Removal, Reservation, Store, Swept,
};
use crate::env_vars;
use crate::key::{self, Compression};
use crate::pace::{Pace, SinkGauge};

/// What differs between the services behind one [`ObjectStoreBacked`]: the words a message
/// uses and the error codes that mean "no such container" or "these credentials will not do".
#[derive(Debug)]
pub struct Flavor {
    /// The service, as a warning's first line names it: `S3`, `Azure Blob`.
    pub service: &'static str,
    /// What the top-level namespace is called: `bucket`, `container`.
    pub container: &'static str,
    /// Error codes that mean the bucket or container does not exist.
    pub missing_container_codes: &'static [&'static str],
    /// Error codes that mean the credentials were refused.
    pub credential_codes: &'static [&'static str],
    /// Failures to get a token (lower-case text of the client's error), with the code a
    /// message shows for each: they mean the credentials will not do, as a 403 does.
    pub token_failures: &'static [(&'static str, &'static str)],
    /// What to check when the container is missing (after "check ").
    pub check_container: &'static str,
    /// What to check when the credentials are refused (after "check ").
    pub check_credentials: &'static str,
    /// The first lines of warnings, one per [`Error`] variant (they must be `'static`).
    pub summaries: Summaries,
}

/// A warning's first line for each kind of [`Error`].
#[derive(Debug)]
pub struct Summaries {
    pub no_container: &'static str,
    pub denied: &'static str,
    pub unreachable: &'static str,
    pub not_found: &'static str,
    pub failed: &'static str,
    pub corrupt: &'static str,
}

/// Multipart part size: S3's minimum is 5 MiB (except the last part). With 8 MiB parts a save
/// of bench/s3.sh's 1 GB tree peaked at 102 MiB (the compressor's own buffers are ~65 MiB); 6
/// MiB keeps it under the 100 MiB bar (98 MiB) and still allows 60 GB in S3's 10,000 parts
/// (Azure allows 50,000 blocks).
pub const PART_SIZE: usize = 6 << 20;
/// Parts in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 4;
/// The smallest download segment (a ranged GET).
pub const SEGMENT_SIZE: u64 = 8 << 20;
/// The largest download segment.
pub const SEGMENT_SIZE_MAX: u64 = 32 << 20;
/// About how many segments an archive is fetched in, within the two sizes above: few requests
/// for a large archive, as each costs a round trip, a fee on S3 and R2, and on some servers a
/// read of the whole object (moto's costs grow with the object, so 8 MiB ranges of a 340 MB
/// archive cost it 3x the CPU of 21 MiB ones).
const SEGMENTS: u64 = 16;
/// Segments in flight at once.
pub const DOWNLOAD_CONCURRENCY: usize = 4;
/// Segments stream in blocks of this size, each queued whole for the unpacker.
const BLOCK_SIZE: usize = 1 << 20;
/// Blocks a segment in flight may queue before its connection waits for the reader: with
/// [`DOWNLOAD_CONCURRENCY`], what bounds the memory of a restore (4 × 7 MiB), whatever the
/// segment size.
const SEGMENT_BLOCKS: usize = 6;
/// Requests for one segment whose body breaks off or comes up short, each resuming where the
/// last stopped (a request that fails outright is retried inside the client).
const SEGMENT_ATTEMPTS: u32 = 3;

/// How messages name the store (`s3://bucket at …`, `az://container at …`), with the service
/// it is.
#[derive(Clone, Debug)]
pub struct StoreName {
    pub text: String,
    pub flavor: &'static Flavor,
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What went wrong, without anything a server sent back verbatim (see the module doc).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{store}: the {} does not exist; check {}", store.flavor.container, store.flavor.check_container)]
    NoContainer { store: StoreName },
    #[error("{store}: the server refused the credentials (`{code}`); check {}", store.flavor.check_credentials)]
    Denied { store: StoreName, code: String },
    #[error("{store}: {what}: the server could not be reached ({detail})")]
    Unreachable {
        store: StoreName,
        what: String,
        detail: &'static str,
    },
    #[error("{store}: {what}: the object is gone")]
    NotFound { store: StoreName, what: String },
    #[error("{store}: {what}: {detail}")]
    Failed {
        store: StoreName,
        what: String,
        detail: String,
    },
    #[error("{store}: {what}: {problem}")]
    Corrupt {
        store: StoreName,
        what: String,
        problem: String,
    },
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// What it means, in a few words, for the first line of a warning.
    pub fn summary(&self) -> &'static str {
        let summaries = &self.store().flavor.summaries;
        match self {
            Error::NoContainer { .. } => summaries.no_container,
            Error::Denied { .. } => summaries.denied,
            Error::Unreachable { .. } => summaries.unreachable,
            Error::NotFound { .. } => summaries.not_found,
            Error::Failed { .. } => summaries.failed,
            Error::Corrupt { .. } => summaries.corrupt,
        }
    }

    fn store(&self) -> &StoreName {
        match self {
            Error::NoContainer { store }
            | Error::Denied { store, .. }
            | Error::Unreachable { store, .. }
            | Error::NotFound { store, .. }
            | Error::Failed { store, .. }
            | Error::Corrupt { store, .. } => store,
        }
    }
}

/// Turns an `object_store` error into ours, keeping only the service's error code (which is
/// one of a fixed vocabulary) and dropping the rest of the text.
pub(super) fn classify(store: &StoreName, what: &str, error: &object_store::Error) -> Error {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .filter(|c| c.len() < 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(str::to_string);
    let flavor = store.flavor;
    let store = store.clone();
    let what = what.to_string();
    if code
        .as_deref()
        .is_some_and(|c| flavor.missing_container_codes.contains(&c))
    {
        return Error::NoContainer { store };
    }
    if let Some(code) = code
        .as_deref()
        .filter(|c| flavor.credential_codes.contains(c))
    {
        return Error::Denied {
            store,
            code: code.to_string(),
        };
    }
    let lower = text.to_ascii_lowercase();
    if let Some((_, code)) = flavor
        .token_failures
        .iter()
        .find(|(needle, _)| lower.contains(needle))
    {
        return Error::Denied {
            store,
            code: code.to_string(),
        };
    }
    match error {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            return Error::Denied {
                store,
                code: code.unwrap_or_else(|| "HTTP 401/403".to_string()),
            };
        }
        object_store::Error::NotFound { .. } => return Error::NotFound { store, what },
        _ => {}
    }
    let unreachable = [
        ("connection refused", "connection refused"),
        ("dns error", "the host name does not resolve"),
        ("timed out", "timed out"),
        ("error sending request", "the connection failed"),
        ("connection reset", "the connection was reset"),
        ("connection closed", "the connection was closed"),
    ];
    if let Some((_, detail)) = unreachable
        .iter()
        .find(|(needle, _)| lower.contains(needle))
    {
        return Error::Unreachable {
            store,
            what,
            detail,
        };
    }
    if lower.contains("decoding response body") || lower.contains("body error") {
        return Error::Failed {
            store,
            what,
            detail: "the response body broke off midway".to_string(),
        };
    }
    let status = [500, 502, 503, 504, 400, 404, 409, 412, 416]
        .iter()
        .find(|s| text.contains(&format!("status code: {s}")));
    let detail = match (code, status) {
        (Some(code), _) => format!("{} error `{code}`", flavor.service),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => "the request failed".to_string(),
    };
    Error::Failed {
        store,
        what,
        detail,
    }
}

/// What the metadata object holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Metadata {
    key: String,
    version: String,
    scope: String,
    compression: Compression,
    size: u64,
    sha256: String,
    /// Nanoseconds since the Unix epoch.
    created_ns: u128,
    /// The archive's object name in the bucket.
    archive: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    workspace: Option<PathBuf>,
}

/// An entry as a listing shows it, before its metadata is read.
struct Listed {
    key: String,
    version: String,
    created: u128,
    location: ObjectPath,
}

impl key::Candidate for Listed {
    fn key(&self) -> &str {
        &self.key
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn created(&self) -> u128 {
        self.created
    }
}

/// The store: a client for one bucket or container, and a small runtime of its own behind the
/// synchronous [`Store`] trait.
pub struct ObjectStoreBacked {
    runtime: Arc<tokio::runtime::Runtime>,
    client: Arc<dyn ObjectStore>,
    /// Without leading or trailing `/`; may be empty.
    prefix: String,
    scopes: Scopes,
    describe: StoreName,
}

impl ObjectStoreBacked {
    /// Wraps a configured client; nothing is sent yet.
    pub fn new(
        client: Arc<dyn ObjectStore>,
        prefix: &str,
        scopes: Scopes,
        describe: StoreName,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cache-heal-object")
            .enable_all()
            .build()
            .context("starting the HTTP runtime")?;
        Ok(Self {
            runtime: Arc::new(runtime),
            client,
            prefix: prefix.to_string(),
            scopes,
            describe,
        })
    }

    fn join(&self, parts: &[&str]) -> String {
        let mut out = self.prefix.clone();
        for part in parts {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(part);
        }
        out
    }

    fn scope_dir(&self, scope: &str, version: &str) -> String {
        let scope: Vec<String> = scope.split('/').map(encode_segment).collect();
        self.join(&[&scope.join("/"), version])
    }

    fn metadata_path(&self, scope: &str, version: &str, key: &str) -> Result<ObjectPath> {
        let name = format!(
            "{}/{}.json",
            self.scope_dir(scope, version),
            encode_segment(key)
        );
        object_path(&name)
    }

    /// The marker whose LastModified is the entry's last use.
    fn used_path(&self, scope: &str, version: &str, key: &str) -> Result<ObjectPath> {
        let name = format!(
            "{}/used/{}",
            self.scope_dir(scope, version),
            encode_segment(key)
        );
        object_path(&name)
    }

    /// Every marker under the prefix, by name, with its time (see [`modified_ns`]).
    fn used_markers(listing: &[object_store::ObjectMeta]) -> HashMap<String, u128> {
        listing
            .iter()
            .filter(|meta| matches!(place(meta.location.as_ref()), Some((Part::Marker, _))))
            .map(|meta| {
                (
                    meta.location.as_ref().to_string(),
                    modified_ns(meta.last_modified.timestamp_nanos_opt()),
                )
            })
            .collect()
    }

    fn error(&self, what: &str, error: &object_store::Error) -> Error {
        classify(&self.describe, what, error)
    }

    /// The entries in one scope with one version, from a listing (no metadata read).
    async fn list_scope(&self, scope: &str, version: &str) -> Result<Vec<Listed>, Error> {
        let dir = object_path(&self.scope_dir(scope, version)).map_err(|e| Error::Failed {
            store: self.describe.clone(),
            what: "naming the scope".into(),
            detail: e.to_string(),
        })?;
        let listed = self
            .client
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| self.error(&format!("listing scope `{scope}`"), &e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                let key = decode_segment(name.strip_suffix(".json")?)?;
                Some(Listed {
                    key,
                    version: version.to_string(),
                    created: meta.last_modified.timestamp_nanos_opt().unwrap_or(0).max(0) as u128,
                    location: meta.location.clone(),
                })
            })
            .collect())
    }

    async fn read_metadata(&self, location: &ObjectPath) -> Result<Metadata, Error> {
        let what = format!("reading `{location}`");
        let body = async { self.client.get(location).await?.bytes().await }
            .await
            .map_err(|e| self.error(&what, &e))?;
        serde_json::from_slice(&body).map_err(|e| Error::Corrupt {
            store: self.describe.clone(),
            what,
            problem: format!("the metadata is not valid ({e})"),
        })
    }

    /// Whether an entry's metadata exists. A GET (not a HEAD) so that a missing bucket says so
    /// in its body.
    async fn exists(&self, location: &ObjectPath) -> Result<bool, Error> {
        match self.client.get(location).await {
            Ok(_) => Ok(true),
            Err(e) => match self.error(&format!("reading `{location}`"), &e) {
                Error::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Every object under the prefix, all scopes: one listing (the client pages it).
    async fn listing(&self) -> Result<Vec<object_store::ObjectMeta>> {
        let root = if self.prefix.is_empty() {
            None
        } else {
            Some(object_path(&self.prefix)?)
        };
        let mut listing = Vec::new();
        let mut stream = self.client.list(root.as_ref());
        while let Some(item) = stream.next().await {
            listing.push(item.map_err(|e| self.error("listing the entries", &e))?);
        }
        Ok(listing)
    }

    /// What the metadata objects among `objects` say, by entry. One deleted since the listing
    /// is left out (what it named is no entry's now); one that cannot be parsed is
    /// [`Known::Unreadable`], for the corruption handling of restores to deal with; any other
    /// failure stops the sweep, so an archive is never taken for an orphan because its
    /// metadata could not be fetched.
    async fn read_entries(&self, objects: &[Object]) -> Result<HashMap<Owner, Known>, Error> {
        let metas = objects.iter().filter(|o| o.part == Part::Metadata);
        let read = self.read_each(metas.map(|o| (o, &o.location))).await;
        let mut entries = HashMap::new();
        for (object, meta) in read {
            let known = match meta {
                Ok(meta) => Known::Names(meta.archive),
                Err(e) if e.is_not_found() => continue,
                Err(Error::Corrupt { .. }) => Known::Unreadable {
                    touched_ns: object.touched_ns,
                },
                Err(e) => return Err(e),
            };
            entries.insert(object.owner.clone(), known);
        }
        Ok(entries)
    }

    /// The second look, right before an orphan whose entry had no metadata in the listing is
    /// deleted: a save may have published it since (a save completes its archive, then creates
    /// its metadata). The archive is claimed if that metadata names it or cannot be parsed; the
    /// marker if the entry exists at all. A damaged metadata object is claimed if it can be
    /// parsed now.
    async fn claimed_now(&self, orphan: &Object) -> Result<bool> {
        let name = format!("{}/{}.json", orphan.owner.dir, orphan.owner.key);
        match self.read_metadata(&object_path(&name)?).await {
            Ok(meta) => {
                Ok(orphan.part != Part::Archive || meta.archive == orphan.location.as_ref())
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(Error::Corrupt { .. }) => Ok(orphan.part != Part::Metadata),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one object (`what` names it in an error); `false` if it was gone already.
    async fn delete_if_there(&self, what: &str, location: &ObjectPath) -> Result<bool, Error> {
        match self.client.delete(location).await {
            Ok(()) => Ok(true),
            Err(e) => match self.error(what, &e) {
                Error::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Deletes an entry: its metadata first (the entry is then no longer found), then its
    /// archive and its last-use marker. One already gone is no failure.
    async fn delete_entry(&self, meta: &Metadata) -> Result<()> {
        let objects = [
            (
                "deleting the entry's metadata",
                self.metadata_path(&meta.scope, &meta.version, &meta.key)?,
            ),
            ("deleting the entry's archive", object_path(&meta.archive)?),
            (
                "deleting the entry's last-use marker",
                self.used_path(&meta.scope, &meta.version, &meta.key)?,
            ),
        ];
        for (what, path) in &objects {
            self.delete_if_there(what, path).await?;
        }
        Ok(())
    }

    /// Reads the metadata objects at the `locations`, 8 at a time, each with what it was
    /// paired with; in the order they finish.
    async fn read_each<'a, T: 'a>(
        &self,
        locations: impl IntoIterator<Item = (T, &'a ObjectPath)>,
    ) -> Vec<(T, Result<Metadata, Error>)> {
        futures_util::stream::iter(locations)
            .map(|(item, location)| async move { (item, self.read_metadata(location).await) })
            .buffer_unordered(8)
            .collect()
            .await
    }

    /// Deletes a metadata object that cannot be parsed, after a second look that it still
    /// cannot (while it exists no save of its key can publish, so what is there is what was
    /// read), and says so. Best-effort: a store that refuses the delete keeps it, with a
    /// warning, and the restore goes on either way.
    async fn put_aside(&self, location: &ObjectPath, damage: &Error) {
        if !matches!(
            self.read_metadata(location).await,
            Err(Error::Corrupt { .. })
        ) {
            return;
        }
        let consequence = match self
            .delete_if_there("deleting the damaged metadata", location)
            .await
        {
            Ok(_) => "it was removed, so the next save of the key writes a good one".to_string(),
            Err(e) => format!("it could not be removed ({e})"),
        };
        crate::output::warn(&format!("Skipped a damaged entry: {damage}; {consequence}"));
    }
}

/// Retries as `object_store` does them (exponential backoff from 100 ms, up to 10 retries in 3
/// minutes), with `CACHE_HEAL_HTTP_RETRIES` and `CACHE_HEAL_HTTP_RETRY_DELAY_MS` to shrink them in
/// tests.
pub(super) fn retry_config() -> Result<RetryConfig> {
    let mut config = RetryConfig::default();
    if let Some(attempts) = env_number(env_vars::CACHE_HEAL_HTTP_RETRIES)? {
        config.max_retries = attempts.saturating_sub(1) as usize;
    }
    if let Some(ms) = env_number(env_vars::CACHE_HEAL_HTTP_RETRY_DELAY_MS)? {
        config.backoff = BackoffConfig {
            init_backoff: Duration::from_millis(ms),
            max_backoff: Duration::from_millis(ms.saturating_mul(8).max(1)),
            base: 2.0,
        };
    }
    Ok(config)
}

/// A variable's value, when it is set and not blank.
pub(super) fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number(name: &str) -> Result<Option<u64>> {
    match env_value(name) {
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("`{name}` is `{v}`; expected a whole number")),
        None => Ok(None),
    }
}

fn object_path(name: &str) -> Result<ObjectPath> {
    ObjectPath::parse(name).map_err(|e| anyhow!("`{name}` is not a valid object name: {e}"))
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Store for ObjectStoreBacked {
    fn describe(&self) -> String {
        self.describe.text.clone()
    }

    /// The best match, scope by scope. A match whose metadata cannot be parsed is put aside
    /// with a warning and the lookup goes on without it, as `dir:` does: one damaged entry
    /// never hides the others, and the next save of its key writes a good one.
    fn lookup(&self, query: &Query) -> Result<Lookup> {
        self.runtime.block_on(async {
            for scope in &self.scopes.read {
                let mut listed = self.list_scope(scope, &query.version).await?;
                while let Some(found) =
                    key::find_match(&listed, &query.version, &query.key, &query.restore_keys)
                {
                    let location = found.location.clone();
                    let meta = match self.read_metadata(&location).await {
                        Ok(meta) => meta,
                        Err(damage @ Error::Corrupt { .. }) => {
                            self.put_aside(&location, &damage).await;
                            listed.retain(|entry| entry.location != location);
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    return Ok(Lookup::Found(Hit {
                        matched_key: meta.key.clone(),
                        size: Some(meta.size),
                        compression: Some(meta.compression),
                        locator: serde_json::to_string(&meta).map_err(anyhow::Error::from)?,
                    }));
                }
            }
            Ok::<_, anyhow::Error>(Lookup::Miss)
        })
    }

    /// Deletes the entry whose archive turned out damaged (size or sha256), so the next save
    /// of its key is not refused as "already exists": its metadata first (the entry is then
    /// no longer found), then the archive and the marker. Only if the metadata still names
    /// that archive: a second look, so a good entry published since is left alone.
    fn discard(&self, hit: &Hit) -> Result<()> {
        let meta: Metadata = serde_json::from_str(&hit.locator)?;
        let meta_path = self.metadata_path(&meta.scope, &meta.version, &meta.key)?;
        self.runtime.block_on(async {
            match self.read_metadata(&meta_path).await {
                Ok(now) if now.archive == meta.archive => self.delete_entry(&meta).await,
                _ => Ok(()),
            }
        })
    }

    /// Rewrites the entry's `used/` marker (an empty PUT).
    fn record_use(&self, hit: &Hit) -> Result<()> {
        let meta: Metadata = serde_json::from_str(&hit.locator)?;
        let marker = self.used_path(&meta.scope, &meta.version, &meta.key)?;
        self.runtime
            .block_on(self.client.put(&marker, PutPayload::new()))
            .map_err(|e| self.error("recording the last use", &e))?;
        Ok(())
    }

    fn save_scope(&self) -> Option<&str> {
        Some(&self.scopes.save)
    }

    /// Deletes the metadata object (the entry is no longer found), then the archive and the
    /// marker. A restore already downloading it may then fail on a later range: a clean miss,
    /// which the grace window of `gc` is there to avoid.
    fn remove(&self, entry: &EntryInfo, unless_used_since: Option<u128>) -> Result<Removal> {
        let scope = entry.scope.as_deref().unwrap_or(LOCAL_SCOPE);
        let meta_path = self.metadata_path(scope, &entry.version, &entry.key)?;
        let marker = self.used_path(scope, &entry.version, &entry.key)?;
        self.runtime.block_on(async {
            let meta = match self.read_metadata(&meta_path).await {
                Ok(meta) => meta,
                Err(e) if e.is_not_found() => return Ok(Removal::Gone),
                Err(e) => return Err(e.into()),
            };
            if (meta.created_ns / 1_000_000_000) as u64 != entry.created {
                return Ok(Removal::Gone);
            }
            if let Some(cutoff) = unless_used_since {
                match self.client.head(&marker).await {
                    Ok(used) if modified_ns(used.last_modified.timestamp_nanos_opt()) >= cutoff => {
                        return Ok(Removal::InUse);
                    }
                    Ok(_) => {}
                    Err(e) => match self.error("reading the last use", &e) {
                        Error::NotFound { .. } => {}
                        other => return Err(other.into()),
                    },
                }
            }
            self.delete_entry(&meta).await?;
            Ok::<_, anyhow::Error>(Removal::Removed)
        })
    }

    fn open(&self, hit: &Hit) -> Result<Box<dyn Read + Send>> {
        let meta: Metadata = serde_json::from_str(&hit.locator)?;
        Ok(Box::new(Download::start(
            Arc::clone(&self.runtime),
            Arc::clone(&self.client),
            self.describe.clone(),
            meta,
        )?))
    }

    /// One GET in the save scope before a save reads anything: a missing bucket or refused
    /// credentials show up here, not after the paths were packed.
    fn check_writable(&self) -> Result<()> {
        let scope: Vec<String> = self.scopes.save.split('/').map(encode_segment).collect();
        let probe = object_path(&self.join(&[&scope.join("/")]))?;
        self.runtime.block_on(self.exists(&probe))?;
        Ok(())
    }

    fn create(&self, entry: &NewEntry) -> Result<Reservation> {
        let scope = self.scopes.save.clone();
        let meta_path = self.metadata_path(&scope, entry.version, entry.key)?;
        if self.runtime.block_on(self.exists(&meta_path))? {
            return Ok(Reservation::AlreadyExists);
        }
        let archive = format!(
            "{}/archives/{}.{:016x}.{}",
            self.scope_dir(&scope, entry.version),
            encode_segment(entry.key),
            rand::random::<u64>(),
            entry.compression.extension()
        );
        let archive_path = object_path(&archive)?;
        let upload = self
            .runtime
            .block_on(self.client.put_multipart(&archive_path))
            .map_err(|e| self.error("starting the multipart upload", &e))?;
        let upload = Arc::new(tokio::sync::Mutex::new(upload));
        let gauge = SinkGauge::default();
        gauge.start_streaming(UPLOAD_CONCURRENCY as u64);
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let driver = self.runtime.spawn(upload_parts(
            Arc::clone(&upload),
            receiver,
            gauge.clone(),
            self.describe.clone(),
        ));
        Ok(Reservation::Created(Box::new(Upload {
            runtime: Arc::clone(&self.runtime),
            client: Arc::clone(&self.client),
            describe: self.describe.clone(),
            upload,
            sender: Some(sender),
            driver: Some(driver),
            gauge,
            buffer: Vec::with_capacity(PART_SIZE),
            parts: 0,
            size: 0,
            hasher: Sha256::new(),
            meta_path,
            metadata: Metadata {
                key: entry.key.to_string(),
                version: entry.version.to_string(),
                scope,
                compression: entry.compression,
                size: 0,
                sha256: String::new(),
                created_ns: 0,
                archive,
                paths: entry.paths.map(<[String]>::to_vec),
                workspace: entry.workspace.map(std::path::Path::to_path_buf),
            },
            done: false,
        })))
    }

    fn list(&self) -> Result<Vec<EntryInfo>> {
        self.runtime.block_on(async {
            let listing = self.listing().await?;
            let used = Self::used_markers(&listing);
            let names: Vec<ObjectPath> = listing
                .into_iter()
                .map(|meta| meta.location)
                .filter(|name| matches!(place(name.as_ref()), Some((Part::Metadata, _))))
                .collect();
            let metas = self.read_each(names.iter().map(|name| ((), name))).await;
            let mut entries = Vec::new();
            for ((), meta) in metas {
                let meta = match meta {
                    Ok(meta) => meta,
                    // Deleted between the listing and the read.
                    Err(e) if e.is_not_found() => continue,
                    // One damaged entry must not hide the others; a restore of its key puts it
                    // aside, and so does `gc` once it is older than the grace window.
                    Err(damage @ Error::Corrupt { .. }) => {
                        crate::output::warn(&format!("Skipped a damaged entry: {damage}"));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let used_ns = self
                    .used_path(&meta.scope, &meta.version, &meta.key)
                    .ok()
                    .and_then(|marker| used.get(marker.as_ref()).copied());
                entries.push(EntryInfo {
                    last_used: used_ns.map(|ns| (ns / 1_000_000_000) as u64),
                    recency_ns: used_ns.unwrap_or_default().max(meta.created_ns),
                    key: meta.key,
                    version: meta.version,
                    size: meta.size,
                    compression: meta.compression,
                    created: (meta.created_ns / 1_000_000_000) as u64,
                    paths: meta.paths,
                    workspace: meta.workspace,
                    scope: Some(meta.scope),
                });
            }
            entries.sort_by(|a, b| b.created.cmp(&a.created).then(a.key.cmp(&b.key)));
            Ok::<_, anyhow::Error>(entries)
        })
    }

    /// Sweeps, from one listing of every scope, the [`orphans`]: archives no entry names (a
    /// save killed between completing its archive and publishing its metadata, or one that
    /// lost the first-wins race and could not delete its archive) and the markers of entries
    /// that are gone, once untouched since `older_than_ns`. Each gets a second look right
    /// before it goes ([`Self::claimed_now`]), so a save that publishes after the listing
    /// keeps its archive.
    ///
    /// Incomplete multipart uploads are not listed by `object_store` (they are no object): an
    /// S3 bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes them, and Azure drops
    /// uncommitted blocks after seven days.
    fn sweep(&self, older_than_ns: u128, dry_run: bool) -> Result<Swept> {
        self.runtime.block_on(async {
            let objects: Vec<Object> = self
                .listing()
                .await?
                .into_iter()
                .filter_map(Object::from_listing)
                .collect();
            let entries = self.read_entries(&objects).await?;
            let mut swept = Swept::default();
            for orphan in orphans(&objects, &entries, older_than_ns) {
                let second_look =
                    orphan.part == Part::Metadata || !entries.contains_key(&orphan.owner);
                if second_look && self.claimed_now(orphan).await? {
                    continue;
                }
                let what = format!("deleting `{}`", orphan.location);
                if dry_run || self.delete_if_there(&what, &orphan.location).await? {
                    swept.files += 1;
                    swept.bytes += orphan.size;
                }
            }
            Ok::<_, anyhow::Error>(swept)
        })
    }
}

/// Which part of an entry an object is (see the layout in the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// `<dir>/<key>.json`
    Metadata,
    /// `<dir>/archives/<key>.<upload-id>.<tzst|tgz>`
    Archive,
    /// `<dir>/used/<key>`
    Marker,
}

/// The entry an object belongs to: its `PREFIX/<scope>/<version>` and its encoded key, the
/// same for its metadata, its archives and its marker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Owner {
    dir: String,
    key: String,
}

/// Where an object name sits in the layout, told by the folder it is in: `<version>` is a hex
/// digest, never `archives` or `used`, whatever the segments of the scope are. An archive
/// name must be one a save writes, so the sweep never takes another tool's object for one;
/// `None` for what is no part of an entry.
fn place(name: &str) -> Option<(Part, Owner)> {
    let (parent, file) = name.rsplit_once('/')?;
    let owner = |dir: &str, key: &str| Owner {
        dir: dir.to_string(),
        key: key.to_string(),
    };
    match parent.rsplit_once('/') {
        Some((dir, "archives")) => {
            let mut pieces = file.rsplitn(3, '.');
            let (extension, upload, key) = (pieces.next()?, pieces.next()?, pieces.next()?);
            let ours = [Compression::Zstd, Compression::Gzip]
                .iter()
                .any(|c| c.extension() == extension)
                && upload.len() == 16
                && upload.bytes().all(|b| b.is_ascii_hexdigit());
            ours.then(|| (Part::Archive, owner(dir, key)))
        }
        Some((dir, "used")) => Some((Part::Marker, owner(dir, file))),
        _ => {
            let key = file.strip_suffix(".json")?;
            Some((Part::Metadata, owner(parent, key)))
        }
    }
}

/// An object of the listing that is part of an entry, as the sweep sees it.
#[derive(Debug)]
struct Object {
    location: ObjectPath,
    part: Part,
    owner: Owner,
    /// Its LastModified, see [`modified_ns`].
    touched_ns: u128,
    size: u64,
}

impl Object {
    fn from_listing(meta: object_store::ObjectMeta) -> Option<Self> {
        let (part, owner) = place(meta.location.as_ref())?;
        Some(Self {
            touched_ns: modified_ns(meta.last_modified.timestamp_nanos_opt()),
            size: meta.size,
            location: meta.location,
            part,
            owner,
        })
    }
}

/// What the sweep learnt from an entry's metadata.
#[derive(Debug)]
enum Known {
    /// The archive it names.
    Names(String),
    /// It could not be parsed; written at `touched_ns`.
    Unreadable { touched_ns: u128 },
}

/// What no entry owns and nothing touched since `older_than_ns`: an archive that no metadata
/// names, a marker whose entry has no metadata, and a metadata object that cannot be parsed
/// (which would refuse every save of its key). While such a metadata object is younger than
/// the cutoff, it and the archives of its key stay: it may be naming one of them.
fn orphans<'a>(
    objects: &'a [Object],
    entries: &HashMap<Owner, Known>,
    older_than_ns: u128,
) -> Vec<&'a Object> {
    let named: std::collections::HashSet<&str> = entries
        .values()
        .filter_map(|known| match known {
            Known::Names(archive) => Some(archive.as_str()),
            Known::Unreadable { .. } => None,
        })
        .collect();
    objects
        .iter()
        .filter(|object| object.touched_ns < older_than_ns)
        .filter(|object| match object.part {
            Part::Metadata => matches!(entries.get(&object.owner), Some(Known::Unreadable { .. })),
            Part::Marker => !entries.contains_key(&object.owner),
            Part::Archive => {
                !named.contains(object.location.as_ref())
                    && !matches!(
                        entries.get(&object.owner),
                        Some(Known::Unreadable { touched_ns }) if *touched_ns >= older_than_ns
                    )
            }
        })
        .collect()
}

/// An object's LastModified (Unix nanoseconds, from a listing or a HEAD) as `gc` compares it.
/// S3 and Azure keep it to the second; a time with no fraction is taken as the end of its
/// second, as late as the write could have been: an entry restored just after others were
/// saved never looks older than them, and the sweep never takes an object written within its
/// cutoff's second for one written before it.
fn modified_ns(unix_ns: Option<i64>) -> u128 {
    let ns = u128::try_from(unix_ns.unwrap_or_default()).unwrap_or_default();
    if ns % 1_000_000_000 == 0 {
        ns + 999_999_999
    } else {
        ns
    }
}

/// Sends the parts the writer hands over, several at a time, in the order they came (the
/// upload numbers parts as `put_part` is called). A part that fails fails the upload; the
/// client has retried it already.
async fn upload_parts(
    upload: Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>,
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
    gauge: SinkGauge,
    describe: StoreName,
) -> Result<(), Error> {
    let mut in_flight = JoinSet::new();
    let mut index = 0u64;
    let joined = |result: Option<
        Result<(u64, object_store::Result<()>), tokio::task::JoinError>,
    >| {
        match result {
            Some(Ok((_, Ok(())))) | None => Ok(()),
            Some(Ok((n, Err(e)))) => Err(classify(&describe, &format!("uploading part {n}"), &e)),
            Some(Err(_)) => Err(Error::Failed {
                store: describe.clone(),
                what: "uploading a part".into(),
                detail: "the upload task stopped".into(),
            }),
        }
    };
    loop {
        tokio::select! {
            done = in_flight.join_next(), if !in_flight.is_empty() => {
                gauge.sent();
                joined(done)?;
            }
            message = receiver.recv(), if in_flight.len() < UPLOAD_CONCURRENCY => {
                let Some(data) = message else { break };
                index += 1;
                let part = upload.lock().await.put_part(PutPayload::from(data));
                let n = index;
                in_flight.spawn(async move { (n, part.await) });
            }
        }
    }
    while !in_flight.is_empty() {
        let done = in_flight.join_next().await;
        gauge.sent();
        joined(done)?;
    }
    Ok(())
}

/// An entry being written: a multipart upload fed by the compressor. Dropped before
/// [`finish`](crate::store::Upload::finish) succeeds, it aborts the upload.
struct Upload {
    runtime: Arc<tokio::runtime::Runtime>,
    client: Arc<dyn ObjectStore>,
    describe: StoreName,
    upload: Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>,
    sender: Option<tokio::sync::mpsc::Sender<Bytes>>,
    driver: Option<JoinHandle<Result<(), Error>>>,
    gauge: SinkGauge,
    buffer: Vec<u8>,
    parts: u64,
    size: u64,
    hasher: Sha256,
    meta_path: ObjectPath,
    metadata: Metadata,
    /// Set once the archive is complete: from then on there is no multipart upload to abort.
    done: bool,
}

impl Upload {
    fn send_part(&mut self) -> Result<(), Error> {
        let data = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART_SIZE),
        ));
        self.parts += 1;
        self.gauge.queued();
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.blocking_send(data).is_ok());
        if !sent {
            // The driver stopped: it says why.
            return Err(self.stop_driver().err().unwrap_or_else(|| Error::Failed {
                store: self.describe.clone(),
                what: "uploading parts".into(),
                detail: "the upload stopped".into(),
            }));
        }
        Ok(())
    }

    /// Closes the channel and waits for the parts in flight.
    fn stop_driver(&mut self) -> Result<(), Error> {
        self.sender = None;
        let Some(driver) = self.driver.take() else {
            return Ok(());
        };
        match self.runtime.block_on(driver) {
            Ok(result) => result,
            Err(_) => Err(Error::Failed {
                store: self.describe.clone(),
                what: "uploading parts".into(),
                detail: "the upload task stopped".into(),
            }),
        }
    }

    fn finish_inner(&mut self) -> Result<Published, Error> {
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send_part()?;
        }
        self.stop_driver()?;
        let upload = Arc::clone(&self.upload);
        self.runtime
            .block_on(async { upload.lock().await.complete().await })
            .map_err(|e| classify(&self.describe, "completing the multipart upload", &e))?;
        self.done = true;
        let mut metadata = self.metadata.clone();
        metadata.size = self.size;
        metadata.sha256 = hex::encode(self.hasher.clone().finalize());
        metadata.created_ns = now_ns();
        let body = serde_json::to_vec_pretty(&metadata).expect("metadata serializes");
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let created = self.runtime.block_on(self.client.put_opts(
            &self.meta_path,
            PutPayload::from(body),
            options,
        ));
        match created {
            Ok(_) => Ok(Published::Saved { size: self.size }),
            Err(e) => {
                // Lost the race, or failed: the archive must not linger unreferenced.
                self.delete_archive();
                match e {
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. } => Ok(Published::AlreadyExists),
                    e => Err(classify(&self.describe, "publishing the entry", &e)),
                }
            }
        }
    }

    fn delete_archive(&self) {
        if let Ok(path) = object_path(&self.metadata.archive) {
            let _ = self.runtime.block_on(self.client.delete(&path));
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(PART_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..take]);
        self.hasher.update(&buf[..take]);
        self.size += take as u64;
        if self.buffer.len() == PART_SIZE {
            self.send_part().map_err(io::Error::other)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl crate::store::Upload for Upload {
    fn pace(&self) -> Pace {
        Pace::Network(self.gauge.clone())
    }

    fn finish(mut self: Box<Self>) -> Result<Published> {
        Ok(self.finish_inner()?)
    }
}

impl Drop for Upload {
    /// Aborts an upload that was not completed: parts in flight stop and nothing becomes
    /// visible. S3 drops the parts it has; Azure has nothing to abort (uncommitted blocks are
    /// no blob, and it drops them after seven days).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.sender = None;
        if let Some(driver) = self.driver.take() {
            driver.abort();
            let _ = self.runtime.block_on(driver);
        }
        let upload = Arc::clone(&self.upload);
        let _ = self
            .runtime
            .block_on(async { upload.lock().await.abort().await });
    }
}

/// What the download driver hands the reader.
enum Piece {
    Data(Bytes),
    End,
    Failed(Error),
}

/// A restore's read side: a driver task fetches segments, this reader hands them out in order
/// and checks size and sha256 at the end.
struct Download {
    receiver: tokio::sync::mpsc::Receiver<Piece>,
    current: Bytes,
    driver: JoinHandle<()>,
    finished: bool,
    hasher: Sha256,
    read: u64,
    metadata: Metadata,
    describe: StoreName,
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl Download {
    fn start(
        runtime: Arc<tokio::runtime::Runtime>,
        client: Arc<dyn ObjectStore>,
        describe: StoreName,
        metadata: Metadata,
    ) -> Result<Self> {
        let path = object_path(&metadata.archive)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let size = metadata.size;
        let store = describe.clone();
        let driver = runtime.spawn(async move {
            let outcome = fetch_segments(&client, &store, &path, size, &sender).await;
            let _ = sender
                .send(match outcome {
                    Ok(()) => Piece::End,
                    Err(e) => Piece::Failed(e),
                })
                .await;
        });
        Ok(Self {
            receiver,
            current: Bytes::new(),
            driver,
            finished: false,
            hasher: Sha256::new(),
            read: 0,
            metadata,
            describe,
            _runtime: runtime,
        })
    }

    fn check_end(&self) -> Result<(), Error> {
        let corrupt = |problem: String| Error::Corrupt {
            store: self.describe.clone(),
            what: format!("the archive of `{}`", self.metadata.key),
            problem,
        };
        if self.read != self.metadata.size {
            return Err(corrupt(format!(
                "{} bytes arrived, the metadata says {}",
                self.read, self.metadata.size
            )));
        }
        let actual = hex::encode(self.hasher.clone().finalize());
        if actual != self.metadata.sha256 {
            return Err(corrupt(format!(
                "it does not match its recorded sha256 (expected {}, computed {actual})",
                self.metadata.sha256
            )));
        }
        Ok(())
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.finished {
                return Ok(0);
            }
            match self.receiver.blocking_recv() {
                Some(Piece::Data(data)) => self.current = data,
                Some(Piece::End) => {
                    self.check_end().map_err(io::Error::other)?;
                    self.finished = true;
                }
                Some(Piece::Failed(e)) => return Err(io::Error::other(e)),
                None => {
                    return Err(io::Error::other(Error::Failed {
                        store: self.describe.clone(),
                        what: "downloading the archive".into(),
                        detail: "the download stopped without saying why".into(),
                    }));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        self.hasher.update(&chunk);
        self.read += n as u64;
        buf[..n].copy_from_slice(&chunk);
        Ok(n)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A segment in flight: the task fetching it and the blocks it fetched so far. Dropped, it stops
/// the task, so a reader that goes away stops every request.
struct Segment {
    task: JoinHandle<Result<(), Error>>,
    blocks: tokio::sync::mpsc::Receiver<Bytes>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The segment size for an archive of `size` bytes: about [`SEGMENTS`] segments, within
/// [`SEGMENT_SIZE`] and [`SEGMENT_SIZE_MAX`].
fn segment_size(size: u64) -> u64 {
    size.div_ceil(SEGMENTS)
        .clamp(SEGMENT_SIZE, SEGMENT_SIZE_MAX)
}

/// Fetches `size` bytes of `path` into `sender`, in order: several segments in flight, each
/// streaming into a queue of its own, the oldest handed on as its blocks arrive.
async fn fetch_segments(
    client: &Arc<dyn ObjectStore>,
    describe: &StoreName,
    path: &ObjectPath,
    size: u64,
    sender: &tokio::sync::mpsc::Sender<Piece>,
) -> Result<(), Error> {
    let segment = segment_size(size);
    let mut next = 0u64;
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < DOWNLOAD_CONCURRENCY && next < size {
            let range = next..(next + segment).min(size);
            next = range.end;
            let (blocks, receiver) = tokio::sync::mpsc::channel(SEGMENT_BLOCKS);
            let (client, path, describe) = (Arc::clone(client), path.clone(), describe.clone());
            in_flight.push_back(Segment {
                task: tokio::spawn(async move {
                    fetch_segment(&client, &describe, &path, range, &blocks).await
                }),
                blocks: receiver,
            });
        }
        let Some(mut oldest) = in_flight.pop_front() else {
            return Ok(());
        };
        while let Some(block) = oldest.blocks.recv().await {
            if sender.send(Piece::Data(block)).await.is_err() {
                return Ok(());
            }
        }
        (&mut oldest.task).await.map_err(|_| Error::Failed {
            store: describe.clone(),
            what: "downloading a segment".into(),
            detail: "the segment task stopped".into(),
        })??;
    }
}

/// One segment into `blocks`, in blocks of [`BLOCK_SIZE`]: a body that breaks off or comes up
/// short is asked for again from the first byte that did not arrive.
async fn fetch_segment(
    client: &dyn ObjectStore,
    describe: &StoreName,
    path: &ObjectPath,
    range: std::ops::Range<u64>,
    blocks: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(), Error> {
    let mut block = bytes::BytesMut::with_capacity(BLOCK_SIZE);
    // The first byte not yet in `block` or handed on.
    let mut arrived = range.start;
    let mut attempt = 1;
    loop {
        let rest = arrived..range.end;
        let what = format!("GET bytes {}-{}", rest.start, rest.end - 1);
        let options = GetOptions {
            range: Some(GetRange::Bounded(rest.clone())),
            ..Default::default()
        };
        let error = match client.get_opts(path, options).await {
            Ok(body) => {
                let mut body = body.into_stream();
                loop {
                    match body.next().await {
                        Some(Ok(chunk)) if arrived + chunk.len() as u64 <= range.end => {
                            arrived += chunk.len() as u64;
                            let mut chunk = &chunk[..];
                            while !chunk.is_empty() {
                                // Filled to exactly its capacity, so a block never grows into
                                // a larger allocation that outlives it.
                                let take = chunk.len().min(BLOCK_SIZE - block.len());
                                block.extend_from_slice(&chunk[..take]);
                                chunk = &chunk[take..];
                                if block.len() == BLOCK_SIZE {
                                    let full = std::mem::replace(
                                        &mut block,
                                        bytes::BytesMut::with_capacity(BLOCK_SIZE),
                                    );
                                    if blocks.send(full.freeze()).await.is_err() {
                                        return Ok(()); // The reader went away.
                                    }
                                }
                            }
                        }
                        Some(Ok(_)) => {
                            break Error::Corrupt {
                                store: describe.clone(),
                                what: what.clone(),
                                problem: "more bytes arrived than were asked for".into(),
                            };
                        }
                        // The client resumes a broken body itself before it gives up; either
                        // way the body is what failed.
                        Some(Err(e)) => match classify(describe, &what, &e) {
                            Error::Unreachable { .. } | Error::Failed { .. } => {
                                break Error::Failed {
                                    store: describe.clone(),
                                    what: what.clone(),
                                    detail: "the response body broke off midway".into(),
                                };
                            }
                            other => break other,
                        },
                        None if arrived == range.end => {
                            if !block.is_empty() {
                                let _ = blocks.send(block.freeze()).await;
                            }
                            return Ok(());
                        }
                        None => {
                            break Error::Corrupt {
                                store: describe.clone(),
                                what: what.clone(),
                                problem: format!(
                                    "{} of {} bytes arrived",
                                    arrived - rest.start,
                                    rest.end - rest.start
                                ),
                            };
                        }
                    }
                }
            }
            Err(e) => classify(describe, &what, &e),
        };
        let retry = matches!(
            error,
            Error::Unreachable { .. } | Error::Failed { .. } | Error::Corrupt { .. }
        );
        if !retry || attempt >= SEGMENT_ATTEMPTS {
            return Err(match error {
                // Asking again after a body broke off failed too: the break is the news.
                Error::Unreachable { store, .. } if arrived > range.start => Error::Failed {
                    store,
                    what: format!("GET bytes {}-{}", range.start, range.end - 1),
                    detail: format!(
                        "the response body broke off midway and {SEGMENT_ATTEMPTS} requests did not finish it"
                    ),
                },
                error => error,
            });
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "ci/refs/heads/main/0123abcd";
    const OLD: u128 = 1_000;
    const CUTOFF: u128 = 2_000;
    const YOUNG: u128 = 3_000;

    fn object(name: &str, touched_ns: u128) -> Object {
        let (part, owner) = place(name).expect("a part of an entry");
        Object {
            location: ObjectPath::parse(name).unwrap(),
            part,
            owner,
            touched_ns,
            size: 7,
        }
    }

    fn owner(key: &str) -> Owner {
        Owner {
            dir: DIR.into(),
            key: key.into(),
        }
    }

    fn swept(objects: &[Object], entries: &HashMap<Owner, Known>) -> Vec<String> {
        orphans(objects, entries, CUTOFF)
            .iter()
            .map(|o| o.location.to_string())
            .collect()
    }

    #[test]
    fn the_folder_tells_the_part_whatever_the_scope_is_named() {
        let archive = format!("{DIR}/archives/a%2Fb.c.0123456789abcdef.tzst");
        assert_eq!(place(&archive), Some((Part::Archive, owner("a%2Fb.c"))));
        let gzip = format!("{DIR}/archives/k.fedcba9876543210.tgz");
        assert_eq!(place(&gzip), Some((Part::Archive, owner("k"))));
        assert_eq!(
            place(&format!("{DIR}/used/k.json")),
            Some((Part::Marker, owner("k.json")))
        );
        assert_eq!(
            place(&format!("{DIR}/k.json")),
            Some((Part::Metadata, owner("k")))
        );
        // A branch named `archives` or `used` is a scope like any other.
        let branch = "ci/refs/heads/archives/used/0123abcd";
        assert_eq!(
            place(&format!("{branch}/k.json")).map(|(part, o)| (part, o.dir)),
            Some((Part::Metadata, branch.to_string()))
        );
        // What a save never writes is no part of an entry.
        for foreign in [
            format!("{DIR}/archives/notes.txt"),
            format!("{DIR}/archives/k.123.tzst"),
            format!("{DIR}/archives/k.0123456789abcdeg.tzst"),
            format!("{DIR}/k.txt"),
            "top.json".to_string(),
        ] {
            assert_eq!(place(&foreign), None, "{foreign}");
        }
    }

    #[test]
    fn orphans_are_what_no_entry_owns_and_older_than_the_cutoff() {
        let live = format!("{DIR}/archives/live.0000000000000001.tzst");
        let objects = vec![
            object(&format!("{DIR}/live.json"), OLD),
            object(&live, OLD),
            object(&format!("{DIR}/used/live"), OLD),
            // Lost the first-wins race to the archive above.
            object(&format!("{DIR}/archives/live.0000000000000002.tzst"), OLD),
            // A save killed before it published; another still publishing.
            object(&format!("{DIR}/archives/killed.0000000000000003.tzst"), OLD),
            object(
                &format!("{DIR}/archives/saving.0000000000000004.tzst"),
                YOUNG,
            ),
            // Markers of removed entries, one rewritten by a restore just now.
            object(&format!("{DIR}/used/removed"), OLD),
            object(&format!("{DIR}/used/restored"), YOUNG),
        ];
        let entries = HashMap::from([(owner("live"), Known::Names(live))]);
        assert_eq!(
            swept(&objects, &entries),
            [
                format!("{DIR}/archives/live.0000000000000002.tzst"),
                format!("{DIR}/archives/killed.0000000000000003.tzst"),
                format!("{DIR}/used/removed"),
            ]
        );
    }

    #[test]
    fn metadata_that_cannot_be_parsed_keeps_itself_and_its_archives_while_young() {
        let objects = vec![
            object(&format!("{DIR}/young.json"), YOUNG),
            object(&format!("{DIR}/archives/young.0000000000000001.tzst"), OLD),
            object(&format!("{DIR}/used/young"), OLD),
            object(&format!("{DIR}/old.json"), OLD),
            object(&format!("{DIR}/archives/old.0000000000000002.tzst"), OLD),
            object(&format!("{DIR}/used/old"), OLD),
        ];
        let entries = HashMap::from([
            (owner("young"), Known::Unreadable { touched_ns: YOUNG }),
            (owner("old"), Known::Unreadable { touched_ns: OLD }),
        ]);
        // The old damaged metadata goes with its archive; the markers stay while the entry
        // exists, broken or not (the next sweep takes an orphaned one).
        let mut gone = swept(&objects, &entries);
        gone.sort();
        assert_eq!(
            gone,
            [
                format!("{DIR}/archives/old.0000000000000002.tzst"),
                format!("{DIR}/old.json"),
            ]
        );
    }
}
