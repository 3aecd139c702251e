//! Stores: where entries live. A store knows keys, versions and bytes; it knows nothing of
//! archives, paths or uv.
//!
//! The interface is synchronous and streaming: `open` hands out a reader that the unpacker
//! pulls from, `create` hands out a writer that the packer pushes into. A store that speaks
//! HTTP runs its own runtime behind those two ends, so the archive code stays plain blocking
//! code on its own threads.

pub mod github;
pub mod local;

use anyhow::Result;
use std::io::{Read, Write};

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
}

pub trait Store: Send + Sync {
    /// A short description for messages, such as `dir:/home/me/.cache/cache-heal`.
    fn describe(&self) -> String;
    fn lookup(&self, query: &Query) -> Result<Lookup>;
    fn open(&self, hit: &Hit) -> Result<Box<dyn Read + Send>>;
    fn create(&self, key: &str, version: &str, compression: Compression) -> Result<Reservation>;
    fn list(&self) -> Result<Vec<EntryInfo>>;
    /// The directory a store keeps its files in, when it is on this machine: a save must not
    /// archive the store into itself.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
}

/// Opens the store a `--store` value names, or the default one.
///
/// `gha` is the GitHub Actions cache (service v2). `dir:PATH` or a plain path is a local
/// directory. Without a value: `gha` when the runner's `ACTIONS_RESULTS_URL` and
/// `ACTIONS_RUNTIME_TOKEN` are both set, else `$XDG_CACHE_HOME/cache-heal`, else
/// `~/.cache/cache-heal`.
pub fn open(spec: Option<&str>) -> Result<Box<dyn Store>> {
    let root = match spec.map(str::trim).filter(|s| !s.is_empty()) {
        Some("gha") => return Ok(Box::new(github::GhaStore::from_env()?)),
        Some(spec) => std::path::PathBuf::from(spec.strip_prefix("dir:").unwrap_or(spec)),
        None if github::configured_in_env() => return Ok(Box::new(github::GhaStore::from_env()?)),
        None => default_local_root()?,
    };
    local::check_root(&root)?;
    Ok(Box::new(local::LocalStore::new(root)))
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
    fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a github::Error> {
        if let Some(found) = error.downcast_ref::<github::Error>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find(inner)
        {
            return Some(found);
        }
        error.source().and_then(find)
    }
    let found = error.chain().find_map(find)?;
    let severity = if found.is_mode_forbidden() {
        Severity::Info
    } else {
        Severity::Warning
    };
    Some((severity, found.summary()))
}

fn default_local_root() -> Result<std::path::PathBuf> {
    if let Some(xdg) = std::env::var_os(crate::env_vars::XDG_CACHE_HOME).filter(|v| !v.is_empty()) {
        return Ok(std::path::PathBuf::from(xdg).join("cache-heal"));
    }
    let home = crate::commands::home_dir().ok_or_else(|| {
        anyhow::anyhow!("no store was given and there is no home directory for the default one\n\nhint: pass `--store dir:<DIR>`")
    })?;
    Ok(home.join(".cache").join("cache-heal"))
}
