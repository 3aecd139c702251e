//! Stores: where entries live. A store knows keys, versions and bytes; it knows nothing of
//! archives, paths or uv.
//!
//! The interface is synchronous and streaming: `open` hands out a reader that the unpacker
//! pulls from, `create` hands out a writer that the packer pushes into. A store that speaks
//! HTTP runs its own runtime behind those two ends, so the archive code stays plain blocking
//! code on its own threads.

pub mod azure;
pub mod github;
mod instance_metadata;
pub mod local;
pub mod object;
pub mod s3;
pub mod scope;

use anyhow::Result;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::key::Compression;

/// What a restore asks for.
#[derive(Clone, Debug)]
pub struct Query {
    pub key: String,
    pub restore_keys: Vec<String>,
    pub version: String,
}

/// An entry a lookup found.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The full key of the stored entry.
    pub matched_key: String,
    /// The archive's size, when the store knows it before downloading.
    pub size: Option<u64>,
    /// How the archive is compressed, when the store knows it.
    pub compression: Option<Compression>,
    /// Store-specific handle (a file name, a signed URL) that `open` understands.
    pub locator: String,
}

/// The outcome of a lookup: a miss is a value, not an error.
#[derive(Clone, Debug)]
pub enum Lookup {
    Found(Hit),
    Miss,
}

/// The outcome of asking to create an entry.
pub enum Reservation {
    /// Write the archive into this upload, then `finish` it.
    Created(Box<dyn Upload>),
    /// Another save of the same key and version got there first. Not an error: entries are
    /// immutable, so the other save's content stands.
    AlreadyExists,
}

/// The outcome of finishing an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    Saved { size: u64 },
    AlreadyExists,
}

/// An entry being written. Dropping it without `finish` abandons it: nothing becomes visible.
pub trait Upload: Write + Send {
    /// How this upload paces the compressor feeding it (see `pace`): a local file never makes
    /// it wait.
    fn pace(&self) -> crate::pace::Pace {
        crate::pace::Pace::Local
    }

    fn finish(self: Box<Self>) -> Result<Published>;
}

/// One stored entry, as `inspect` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EntryInfo {
    pub key: String,
    pub version: String,
    pub size: u64,
    pub compression: Compression,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The `--path` lines it was saved with, when the store recorded them.
    pub paths: Option<Vec<String>>,
    /// The directory relative member names are relative to, when recorded.
    pub workspace: Option<PathBuf>,
    /// The ref scope it was saved in, for stores that scope entries (`s3://`, `az://`, `dir:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When a restore last started downloading it, Unix seconds; `None` if never (or before
    /// uses were recorded).
    pub last_used: Option<u64>,
    /// The last use, else the creation, in nanoseconds since the Unix epoch: what `gc` orders
    /// by. Finer than the two fields above, so entries saved and restored within one second
    /// still order correctly.
    #[serde(skip)]
    pub recency_ns: u128,
}

/// What [`Store::sweep`] removed (or would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

/// What [`Store::remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// It was no longer there (removed by someone else, or replaced by a newer save).
    Gone,
    /// A restore started using it at or after the cutoff it was given: it was kept.
    InUse,
}

/// What a save asks the store to create: the entry's identity, and what restore and `inspect`
/// need to know about how it was made.
#[derive(Clone, Copy, Debug)]
pub struct NewEntry<'a> {
    pub key: &'a str,
    pub version: &'a str,
    pub compression: Compression,
    /// The `--path` lines, as typed (what the version hashes); `None` for an archive made
    /// elsewhere and imported.
    pub paths: Option<&'a [String]>,
    /// What relative member names are relative to, when known.
    pub workspace: Option<&'a Path>,
}

impl<'a> NewEntry<'a> {
    /// An entry whose making is not known (an archive made by another tool).
    pub fn new(key: &'a str, version: &'a str, compression: Compression) -> Self {
        Self {
            key,
            version,
            compression,
            paths: None,
            workspace: None,
        }
    }
}

pub trait Store: Send + Sync {
    /// A short description for messages, such as `dir:/home/me/.cache/cache-heal`.
    fn describe(&self) -> String;
    fn lookup(&self, query: &Query) -> Result<Lookup>;
    fn open(&self, hit: &Hit) -> Result<Box<dyn Read + Send>>;
    fn create(&self, entry: &NewEntry) -> Result<Reservation>;
    fn list(&self) -> Result<Vec<EntryInfo>>;
    /// Whether a save can write here at all, asked before the save reads anything: a local
    /// directory that cannot be created or written, a cache mode that forbids saves.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// Puts aside an entry whose archive turned out damaged, where the store can, so that the
    /// next save of its key is not refused as "already exists". GitHub's service cannot
    /// delete through its runtime API; there the entry ages out.
    fn discard(&self, _hit: &Hit) -> Result<()> {
        Ok(())
    }

    /// Records that a restore is about to download the entry, so `gc` sees it as used and
    /// keeps it for at least the grace window. Called before the first byte is read;
    /// best-effort (a failure must not fail the restore).
    fn record_use(&self, _hit: &Hit) -> Result<()> {
        Ok(())
    }

    /// The scope a save writes into, for stores that keep scopes: where `delete` acts.
    fn save_scope(&self) -> Option<&str> {
        None
    }

    /// Removes one listed entry: first what makes it visible, then its archive and its
    /// last-use record. With `unless_used_since` (Unix nanoseconds), an entry whose last use
    /// was recorded at or after it is kept ([`Removal::InUse`]): the last look before the
    /// delete, so a restore that started after `gc` listed is not cut off.
    fn remove(&self, entry: &EntryInfo, _unless_used_since: Option<u128>) -> Result<Removal> {
        anyhow::bail!(
            "{} cannot remove entries (entry `{}`)",
            self.describe(),
            entry.key
        )
    }

    /// Removes (or with `dry_run` only counts) what no entry owns and nothing has touched
    /// since `older_than_ns` (Unix nanoseconds): the leftovers of saves killed before they
    /// published, and entries put aside as broken or damaged. Stores with nothing to sweep
    /// sweep nothing.
    fn sweep(&self, _older_than_ns: u128, _dry_run: bool) -> Result<Swept> {
        Ok(Swept::default())
    }

    /// The directory a store keeps its files in, when it is on this machine: a save must not
    /// archive the store into itself.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
}

/// Which store a `--store` value names, checked before anything is opened: a value that is
/// not a store is a usage error, never a directory created by surprise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// The GitHub Actions cache service (v2).
    Gha,
    /// A local directory (absolute), and `--scope`.
    Dir {
        root: PathBuf,
        scope: Option<String>,
    },
    /// An S3 bucket (AWS or S3-compatible), with an optional prefix.
    S3(s3::S3Spec),
    /// An Azure Blob container, with an optional prefix.
    Azure(azure::AzureSpec),
}

impl StoreSpec {
    /// Parses `--store`: `gha`, `dir:PATH`, or a path (one that starts with `/`, `.` or `~`,
    /// or holds a `/`). Without a value: `gha` when the runner's `ACTIONS_RESULTS_URL` and
    /// `ACTIONS_RUNTIME_TOKEN` are both set, else `$XDG_CACHE_HOME/cache-heal`, else
    /// `~/.cache/cache-heal`.
    pub fn parse(value: Option<&str>, cwd: &Path, home: Option<&Path>) -> Result<Self> {
        let Some(text) = value.map(str::trim).filter(|s| !s.is_empty()) else {
            if github::configured_in_env() {
                return Ok(StoreSpec::Gha);
            }
            return Ok(StoreSpec::Dir {
                root: default_local_root(home)?,
                scope: None,
            });
        };
        if text == "gha" {
            return Ok(StoreSpec::Gha);
        }
        if text.starts_with("s3://") {
            return s3::S3Spec::parse(text).map(StoreSpec::S3).map_err(usage);
        }
        if text.starts_with("az://") {
            return azure::AzureSpec::parse(text)
                .map(StoreSpec::Azure)
                .map_err(usage);
        }
        let path = match text.strip_prefix("dir:") {
            Some("") => {
                return Err(usage(format!(
                    "`--store dir:` names no directory\n\nhint: pass `--store dir:<DIR>`, for example `--store dir:{}`",
                    home.map_or("~/.cache/cache-heal".into(), |h| h
                        .join(".cache/cache-heal")
                        .display()
                        .to_string())
                )));
            }
            Some(path) => path,
            None if text.contains("://") => {
                let scheme = text.split("://").next().unwrap_or_default();
                return Err(usage(format!(
                    "`--store {text}`: stores of the kind `{scheme}://` are not supported\n\nhint: use `gha` (the GitHub Actions cache), `s3://<BUCKET>[/<PREFIX>]`, `az://<CONTAINER>[/<PREFIX>]` or `dir:<DIR>` (a local directory)"
                )));
            }
            None if text.eq_ignore_ascii_case("gha") => {
                return Err(usage(format!(
                    "`--store {text}` is not a store; store names are lower case\n\nhint: did you mean `--store gha`?"
                )));
            }
            None if looks_like_a_path(text) => text,
            None => {
                return Err(usage(format!(
                    "`--store {text}` is not a store: expected `gha`, `dir:<DIR>` or a path\n\nhint: for a directory named `{text}` here, pass `--store dir:{text}` or `--store ./{text}`"
                )));
            }
        };
        let expanded = match (
            path.strip_prefix("~/").or((path == "~").then_some("")),
            home,
        ) {
            (Some(rest), Some(home)) => home.join(rest),
            (Some(_), None) => {
                return Err(usage(format!(
                    "`--store {text}` starts with `~`, but there is no home directory (set `HOME`)"
                )));
            }
            (None, _) => PathBuf::from(path),
        };
        Ok(StoreSpec::Dir {
            root: crate::paths::normalize(&cwd.join(expanded)),
            scope: None,
        })
    }

    /// Opens the store. A local directory that exists but is not a directory is refused here,
    /// before a save does any work.
    pub fn open(&self) -> Result<Box<dyn Store>> {
        match self {
            StoreSpec::Gha => Ok(Box::new(github::GhaStore::from_env()?)),
            StoreSpec::Dir { root, scope } => {
                local::check_root(root)?;
                let scopes = scope::Scopes::from_env(scope.as_deref())?;
                Ok(Box::new(local::LocalStore::with_scopes(
                    root.clone(),
                    scopes,
                )))
            }
            StoreSpec::S3(spec) => Ok(Box::new(s3::S3Store::open(spec)?)),
            StoreSpec::Azure(spec) => Ok(Box::new(azure::AzureStore::open(spec)?)),
        }
    }

    /// Adds what the global flags say about the store (`--s3-endpoint`, `--s3-path-style`,
    /// `--az-endpoint`, `--scope`, which `dir:` takes too); `gha` takes none of them.
    pub fn configure(mut self, args: &crate::cli::StoreArgs) -> Self {
        match &mut self {
            StoreSpec::S3(spec) => {
                spec.endpoint = args.s3_endpoint.clone().filter(|e| !e.trim().is_empty());
                spec.path_style = args.s3_path_style;
                spec.scope = args.scope.clone();
            }
            StoreSpec::Azure(spec) => {
                spec.endpoint = args.az_endpoint.clone().filter(|e| !e.trim().is_empty());
                spec.scope = args.scope.clone();
            }
            StoreSpec::Dir { scope, .. } => *scope = args.scope.clone(),
            StoreSpec::Gha => {}
        }
        self
    }

    /// How messages name the store before it is opened.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Gha => "the GitHub Actions cache".to_string(),
            StoreSpec::Dir { root, .. } => format!("dir:{}", root.display()),
            StoreSpec::S3(spec) => spec.describe(),
            StoreSpec::Azure(spec) => spec.describe(),
        }
    }
}

fn usage(message: String) -> anyhow::Error {
    crate::UsageError::Invalid(message).into()
}

fn looks_like_a_path(text: &str) -> bool {
    text.starts_with(['/', '.', '~']) || text.contains('/')
}

/// How a command reports a store failure that must not fail the build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Expected by configuration (`ACTIONS_CACHE_MODE`): an info line.
    Info,
    /// Worth a look: a warning (an annotation in Actions).
    Warning,
}

/// A store failure that should not fail the build, the way actions/cache treats every failure
/// of the cache service: a save that cannot happen is a warning, a restore that cannot happen is
/// a miss. Returns the severity and a few words saying what happened, or `None` for errors that
/// must fail (a hostile archive, a missing path, a broken disk).
///
/// The store's error may sit anywhere in the chain, also inside the `io::Error` a reader or
/// writer returned to the archive code.
pub fn nonfatal(error: &anyhow::Error) -> Option<(Severity, &'static str)> {
    /// A store error found in the chain: the GitHub store's or an object store's (S3, Azure).
    enum Found<'a> {
        Gha(&'a github::Error),
        Object(&'a object::Error),
    }
    fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<Found<'a>> {
        if let Some(found) = error.downcast_ref::<github::Error>() {
            return Some(Found::Gha(found));
        }
        if let Some(found) = error.downcast_ref::<object::Error>() {
            return Some(Found::Object(found));
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find(inner)
        {
            return Some(found);
        }
        error.source().and_then(find)
    }
    // An interrupt is never a store failure, whatever it cut short.
    if crate::interrupt::find(error).is_some() {
        return None;
    }
    match error.chain().find_map(find)? {
        // Not a failure of the service: the entry itself is damaged (see `archive::unpack`).
        Found::Gha(found) if found.is_damaged_entry() => None,
        Found::Gha(found) if found.is_mode_forbidden() => Some((Severity::Info, found.summary())),
        Found::Gha(found) => Some((Severity::Warning, found.summary())),
        Found::Object(found) => Some((Severity::Warning, found.summary())),
    }
}

fn default_local_root(home: Option<&Path>) -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os(crate::env_vars::XDG_CACHE_HOME).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("cache-heal"));
    }
    let home = home.ok_or_else(|| {
        anyhow::anyhow!("no store was given and there is no home directory for the default one\n\nhint: pass `--store dir:<DIR>`")
    })?;
    Ok(home.join(".cache").join("cache-heal"))
}
