//! The local-directory store: one archive file and one metadata file per entry.
//!
//! Layout under the root:
//!
//! ```text
//! entries/<id>.json        metadata; its existence is what makes an entry visible
//! entries/<id>-<rand>.tzst the archive it names (or .tgz)
//! entries/<id>.used        empty; its mtime is the entry's last use (absent: never restored)
//! tmp/                     uploads in progress
//! ```
//!
//! `<id>` is the sha256 of the version, the key and (but for `local`) the scope, so any key
//! (slashes, unicode) maps to one plain file name. An entry is published by hard-linking its
//! finished metadata file to `<id>.json`: the link either creates the name or fails because it
//! exists, so of two concurrent saves of one key exactly one wins and the other learns "already
//! exists", the way GitHub's service answers 409. The archive is size- and sha256-checked on
//! every read; a mismatch (or a missing archive) is an [`ArchiveMismatch`] inside the reader's
//! `io::Error`, which the unpacker reports as a damaged archive, so a restore skips it as a
//! warned miss.
//!
//! # Scopes
//!
//! Entries are scoped by ref like the other stores' (see [`super::scope`]): the metadata
//! records the scope, a save writes into the current one, a restore looks through the scope
//! chain in order. Entries saved before scopes existed record none; they belong to `local`,
//! the scope outside GitHub Actions, and an entry in `local` keeps the id it always had (the
//! hash of version and key alone), so such an entry and a new save of its key in `local` are
//! one entry, not two.
//!
//! Unlike in a bucket, `local` is also the last scope every restore looks in, inside GitHub
//! Actions too: it holds what was saved by hand on the machine and what an older cache-heal
//! saved from any run, which every run could read before. No run in Actions writes there (its
//! saves go to its ref), so a pull request still cannot replace what another run restores.
//!
//! # Last use and removal
//!
//! A restore touches `<id>.used` before it reads the archive, so `gc` sees an entry in use as
//! recently used. Removing an entry deletes its metadata first (it stops being visible), then
//! its archive and `.used`; a restore that already opened the archive reads it to the end, as
//! an unlinked file stays readable while open. `gc` also sweeps what no entry owns (see
//! [`LocalStore::sweep`](Store::sweep)).

use anyhow::{Context, Result, bail};
use fs_err as fs;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::scope::{LOCAL_SCOPE, Scopes};
use super::{
    EntryInfo, Hit, Lookup, NewEntry, Published, Query, Removal, Reservation, Store, Swept, Upload,
};
use crate::key::{self, Compression};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Metadata {
    key: String,
    version: String,
    compression: Compression,
    size: u64,
    sha256: String,
    /// Nanoseconds since the Unix epoch; orders prefix matches.
    created_ns: u128,
    /// The archive's file name inside `entries/`.
    archive: String,
    /// The `--path` lines it was saved with (absent in entries saved before they were kept).
    #[serde(default)]
    paths: Option<Vec<String>>,
    /// What relative member names are relative to (absent in older entries).
    #[serde(default)]
    workspace: Option<PathBuf>,
    /// The scope it was saved in; absent in entries saved before scopes, which are `local`'s.
    #[serde(default)]
    scope: Option<String>,
}

impl Metadata {
    fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or(LOCAL_SCOPE)
    }
}

impl key::Candidate for Metadata {
    fn key(&self) -> &str {
        &self.key
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn created(&self) -> u128 {
        self.created_ns
    }
}

pub struct LocalStore {
    root: PathBuf,
    scopes: Scopes,
}

impl LocalStore {
    /// The store outside GitHub Actions, in the `local` scope.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_scopes(
            root,
            Scopes {
                save: LOCAL_SCOPE.to_string(),
                read: vec![LOCAL_SCOPE.to_string()],
            },
        )
    }

    /// The store saving into and restoring from the given scopes, then from `local` (see the
    /// module doc).
    pub fn with_scopes(root: impl Into<PathBuf>, mut scopes: Scopes) -> Self {
        if !scopes.read.iter().any(|s| s == LOCAL_SCOPE) {
            scopes.read.push(LOCAL_SCOPE.to_string());
        }
        Self {
            root: root.into(),
            scopes,
        }
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join("entries")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn metadata_path(&self, scope: &str, key: &str, version: &str) -> PathBuf {
        self.entries_dir()
            .join(format!("{}.json", entry_id(scope, key, version)))
    }

    /// The file whose mtime is the entry's last use.
    fn used_path(&self, meta: &Metadata) -> PathBuf {
        self.metadata_path(meta.scope(), &meta.key, &meta.version)
            .with_extension("used")
    }

    /// When the entry was last used, in nanoseconds since the Unix epoch.
    fn last_used_ns(&self, meta: &Metadata) -> Option<u128> {
        let modified = fs::metadata(self.used_path(meta)).ok()?.modified().ok()?;
        Some(modified.duration_since(UNIX_EPOCH).ok()?.as_nanos())
    }

    fn read_all_metadata(&self) -> Result<Vec<Metadata>> {
        let dir = self.entries_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for item in fs::read_dir(&dir)? {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_metadata(&path) {
                    Ok(meta) => all.push(meta),
                    // One broken entry must not hide every other one: it is put aside, so
                    // the next save of its key can write a good one.
                    Err(error) => quarantine(&path, &error),
                }
            }
        }
        Ok(all)
    }
}

fn read_metadata(path: &Path) -> Result<Metadata> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("entry metadata `{}` is not valid", path.display()))
}

/// Renames a metadata file that cannot be read to `….json.broken`, with a warning.
fn quarantine(path: &Path, error: &anyhow::Error) {
    let aside = path.with_extension("json.broken");
    let moved = fs::rename(path, &aside).is_ok();
    crate::output::warn(&format!(
        "Skipped a broken entry of the local store: {error:#}\n{}",
        if moved {
            format!(
                "It was moved aside to `{}`; the next save of its key writes a new one",
                aside.display()
            )
        } else {
            "It could not be moved aside; remove it to let its key be saved again".to_string()
        }
    ));
}

fn entry_id(scope: &str, key: &str, version: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(version.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    // `local` keeps the ids of entries saved before scopes (see the module doc).
    if scope != LOCAL_SCOPE {
        hasher.update([0]);
        hasher.update(scope.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn lookup(&self, query: &Query) -> Result<Lookup> {
        let mut all = self.read_all_metadata()?;
        for scope in &self.scopes.read {
            let (in_scope, rest): (Vec<Metadata>, Vec<Metadata>) =
                all.into_iter().partition(|m| m.scope() == scope);
            all = rest;
            if let Some(meta) =
                key::find_match(&in_scope, &query.version, &query.key, &query.restore_keys)
            {
                return Ok(Lookup::Found(Hit {
                    matched_key: meta.key.clone(),
                    size: Some(meta.size),
                    compression: Some(meta.compression),
                    locator: serde_json::to_string(meta)?,
                }));
            }
        }
        Ok(Lookup::Miss)
    }

    /// Touches `<id>.used`: created if missing, its mtime set to now either way.
    fn record_use(&self, hit: &Hit) -> Result<()> {
        let meta = meta_of(hit)?;
        let path = self.used_path(&meta);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.file()
            .set_modified(SystemTime::now())
            .with_context(|| format!("setting the mtime of `{}`", path.display()))?;
        Ok(())
    }

    fn save_scope(&self) -> Option<&str> {
        Some(&self.scopes.save)
    }

    fn remove(&self, entry: &EntryInfo, unless_used_since: Option<u128>) -> Result<Removal> {
        let scope = entry.scope.as_deref().unwrap_or(LOCAL_SCOPE);
        let path = self.metadata_path(scope, &entry.key, &entry.version);
        let meta = match read_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_not_found(&e) => return Ok(Removal::Gone),
            Err(e) => return Err(e),
        };
        // Replaced by a newer save since it was listed: not the entry that was meant.
        if (meta.created_ns / 1_000_000_000) as u64 != entry.created {
            return Ok(Removal::Gone);
        }
        if let Some(cutoff) = unless_used_since
            && self.last_used_ns(&meta).is_some_and(|used| used >= cutoff)
        {
            return Ok(Removal::InUse);
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
            Err(e) => return Err(e.into()),
        }
        for leftover in [
            self.entries_dir().join(&meta.archive),
            self.used_path(&meta),
        ] {
            match fs::remove_file(&leftover) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Removal::Removed)
    }

    fn open(&self, hit: &Hit) -> Result<Box<dyn Read + Send>> {
        let meta = meta_of(hit)?;
        let path = self.entries_dir().join(&meta.archive);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            // The entry is listed but its archive is gone: damage, reported where the bytes
            // would have been read, so the restore treats it as a damaged entry.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Box::new(FailingReader(Some(io::Error::new(
                    io::ErrorKind::NotFound,
                    ArchiveMismatch::Missing {
                        key: meta.key,
                        path,
                    },
                )))));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening the archive of entry `{}`", meta.key));
            }
        };
        Ok(Box::new(VerifyingReader {
            inner: io::BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            read: 0,
            expected_size: meta.size,
            expected_sha256: meta.sha256,
            path,
        }))
    }

    fn check_writable(&self) -> Result<()> {
        for dir in [self.entries_dir(), self.tmp_dir()] {
            fs::create_dir_all(&dir)
                .with_context(|| format!("the store {} cannot be written", self.describe()))?;
        }
        let probe = tempfile::Builder::new()
            .prefix("probe-")
            .tempfile_in(self.tmp_dir())
            .with_context(|| format!("the store {} cannot be written", self.describe()))?;
        drop(probe);
        Ok(())
    }

    fn create(&self, entry: &NewEntry) -> Result<Reservation> {
        let (key, version) = (entry.key, entry.version);
        if self.metadata_path(&self.scopes.save, key, version).exists() {
            return Ok(Reservation::AlreadyExists);
        }
        fs::create_dir_all(self.entries_dir())?;
        fs::create_dir_all(self.tmp_dir())?;
        crate::leftovers::sweep_uploads(&self.tmp_dir());
        let file = partial_upload(&self.tmp_dir())?;
        Ok(Reservation::Created(Box::new(LocalUpload {
            store_root: self.root.clone(),
            file: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
            key: key.to_string(),
            version: version.to_string(),
            compression: entry.compression,
            paths: entry.paths.map(<[String]>::to_vec),
            workspace: entry.workspace.map(Path::to_path_buf),
            scope: self.scopes.save.clone(),
        })))
    }

    fn list(&self) -> Result<Vec<EntryInfo>> {
        let mut entries: Vec<EntryInfo> = self
            .read_all_metadata()?
            .into_iter()
            .map(|m| {
                let used_ns = self.last_used_ns(&m);
                EntryInfo {
                    scope: Some(m.scope().to_string()),
                    key: m.key,
                    version: m.version,
                    size: m.size,
                    compression: m.compression,
                    created: (m.created_ns / 1_000_000_000) as u64,
                    paths: m.paths,
                    workspace: m.workspace,
                    last_used: used_ns.map(|ns| (ns / 1_000_000_000) as u64),
                    recency_ns: used_ns.unwrap_or_default().max(m.created_ns),
                }
            })
            .collect();
        entries.sort_by(|a, b| b.created.cmp(&a.created).then(a.key.cmp(&b.key)));
        Ok(entries)
    }

    /// Puts an entry whose archive turned out damaged aside (its metadata renamed, its
    /// archive removed), so that the next save of the key writes a good one instead of
    /// finding "already exists".
    fn discard(&self, hit: &Hit) -> Result<()> {
        let meta = meta_of(hit)?;
        let metadata = self.metadata_path(meta.scope(), &meta.key, &meta.version);
        let aside = metadata.with_extension(format!("json.damaged-{}", now_ns()));
        fs::rename(&metadata, &aside)?;
        let _ = fs::remove_file(self.entries_dir().join(&meta.archive));
        let _ = fs::remove_file(self.used_path(&meta));
        Ok(())
    }

    /// Sweeps `entries/` of archives no metadata names (a save killed between moving its
    /// archive in and publishing it), `.used` files of removed entries and metadata put aside
    /// as broken or damaged; and `tmp/` of dead partial uploads and metadata never published.
    fn sweep(&self, older_than_ns: u128, dry_run: bool) -> Result<Swept> {
        let live = self.read_all_metadata()?;
        let mut owned: HashSet<String> = HashSet::new();
        for meta in &live {
            owned.insert(meta.archive.clone());
            for path in [
                self.used_path(meta),
                self.metadata_path(meta.scope(), &meta.key, &meta.version),
            ] {
                owned.extend(file_name(&path));
            }
        }
        let mut swept = Swept::default();
        if !dry_run {
            let uploads = crate::leftovers::sweep_uploads(&self.tmp_dir());
            swept.files += uploads.count;
            swept.bytes += uploads.bytes;
        }
        let candidates = files_in(&self.entries_dir())
            .into_iter()
            .filter(|(name, _)| !owned.contains(name) && !name.ends_with(".json"))
            .chain(
                files_in(&self.tmp_dir())
                    .into_iter()
                    .filter(|(name, _)| name.starts_with("meta-")),
            );
        for (_, path) in candidates {
            let Ok(stat) = fs::metadata(&path) else {
                continue;
            };
            let touched = stat
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            if touched >= older_than_ns {
                continue;
            }
            if dry_run || fs::remove_file(&path).is_ok() {
                swept.files += 1;
                swept.bytes += stat.len();
            }
        }
        Ok(swept)
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// The plain files in `dir` with their names; nothing if it cannot be read.
fn files_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(items) = fs::read_dir(dir) else {
        return Vec::new();
    };
    items
        .flatten()
        .filter(|item| item.file_type().is_ok_and(|t| t.is_file()))
        .map(|item| (item.file_name().to_string_lossy().into_owned(), item.path()))
        .collect()
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The entry a hit's locator names.
fn meta_of(hit: &Hit) -> Result<Metadata> {
    serde_json::from_str(&hit.locator)
        .context("reading the handle of the entry found (a bug in cache-heal)")
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Reads an archive and checks its size and sha256 when the end is reached, so a corrupted or
/// swapped file fails the restore instead of being unpacked.
struct VerifyingReader {
    inner: io::BufReader<fs::File>,
    hasher: Sha256,
    read: u64,
    expected_size: u64,
    expected_sha256: String,
    path: PathBuf,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 && !buf.is_empty() {
            self.check_end()?;
        }
        Ok(n)
    }
}

impl VerifyingReader {
    fn check_end(&self) -> io::Result<()> {
        if self.read != self.expected_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ArchiveMismatch::Size {
                    path: self.path.clone(),
                    read: self.read,
                    recorded: self.expected_size,
                },
            ));
        }
        let computed = hex::encode(self.hasher.clone().finalize());
        if computed != self.expected_sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ArchiveMismatch::Digest {
                    path: self.path.clone(),
                    recorded: self.expected_sha256.clone(),
                    computed,
                },
            ));
        }
        Ok(())
    }
}

/// A stored archive that is not what its metadata recorded: the entry is damaged. It travels
/// inside the `io::Error` the reader returns, so the unpacker reports it as a damaged archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveMismatch {
    #[error("the archive `{}` has {read} bytes, but its entry recorded {recorded}", .path.display())]
    Size {
        path: PathBuf,
        read: u64,
        recorded: u64,
    },
    #[error(
        "the archive `{}` does not match the sha256 its entry recorded (recorded {recorded}, computed {computed})",
        .path.display()
    )]
    Digest {
        path: PathBuf,
        recorded: String,
        computed: String,
    },
    #[error("the entry `{key}` is listed but its archive `{}` is gone", .path.display())]
    Missing { key: String, path: PathBuf },
}

/// A reader whose first read fails with the error it holds.
struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("the archive could not be opened")))
    }
}

struct LocalUpload {
    store_root: PathBuf,
    file: io::BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    size: u64,
    key: String,
    version: String,
    compression: Compression,
    paths: Option<Vec<String>>,
    workspace: Option<PathBuf>,
    scope: String,
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Upload for LocalUpload {
    fn finish(self: Box<Self>) -> Result<Published> {
        let LocalUpload {
            store_root,
            file,
            hasher,
            size,
            key,
            version,
            compression,
            paths,
            workspace,
            scope,
        } = *self;
        let store = LocalStore::new(store_root);
        let temp = file.into_inner().map_err(|e| e.into_error())?;
        // The last moment a signal can stop the save: after this the entry becomes visible.
        crate::interrupt::check()?;
        temp.as_file().sync_all()?;
        let id = entry_id(&scope, &key, &version);
        let archive_name = format!(
            "{id}-{:016x}.{}",
            rand::random::<u64>(),
            compression.extension()
        );
        let archive_path = store.entries_dir().join(&archive_name);
        temp.persist(&archive_path)
            .map_err(|e| e.error)
            .with_context(|| format!("moving the archive to `{}`", archive_path.display()))?;
        let meta = Metadata {
            key,
            version,
            compression,
            size,
            sha256: hex::encode(hasher.finalize()),
            created_ns: now_ns(),
            archive: archive_name,
            paths,
            workspace,
            scope: Some(scope),
        };
        let published = publish_metadata(&store, &meta);
        if !matches!(published, Ok(Published::Saved { .. })) {
            // Lost the race, or failed: the archive must not linger unreferenced.
            let _ = fs::remove_file(&archive_path);
        }
        published
    }
}

/// A new `tmp/upload-*.partial`, deleted when dropped and holding a liveness lock for as long as
/// this process lives (see `leftovers`). It is locked under a `.new` name first, so a sweeper
/// never sees a `.partial` that is not locked by a live owner.
fn partial_upload(tmp: &Path) -> Result<tempfile::NamedTempFile> {
    let new = tempfile::Builder::new()
        .prefix("upload-")
        .suffix(".new")
        .tempfile_in(tmp)
        .with_context(|| format!("creating an upload in `{}`", tmp.display()))?;
    crate::leftovers::mark_file(new.as_file(), new.path())?;
    let partial = new.path().with_extension("partial");
    let file = new
        .persist_noclobber(&partial)
        .map_err(|e| e.error)
        .with_context(|| format!("creating the upload `{}`", partial.display()))?;
    let path = tempfile::TempPath::try_from_path(&partial)
        .with_context(|| format!("creating the upload `{}`", partial.display()))?;
    Ok(tempfile::NamedTempFile::from_parts(file, path))
}

fn publish_metadata(store: &LocalStore, meta: &Metadata) -> Result<Published> {
    let mut temp = tempfile::Builder::new()
        .prefix("meta-")
        .tempfile_in(store.tmp_dir())?;
    serde_json::to_writer_pretty(&mut temp, meta)?;
    temp.as_file().sync_all()?;
    let final_path = store.metadata_path(meta.scope(), &meta.key, &meta.version);
    match link_exclusive(temp.path(), &final_path) {
        Ok(()) => Ok(Published::Saved { size: meta.size }),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Published::AlreadyExists),
        Err(e) => Err(e).with_context(|| format!("publishing `{}`", final_path.display())),
    }
}

/// Creates `to` as a second name of `from`, failing if `to` exists: the atomic "first wins".
fn link_exclusive(from: &Path, to: &Path) -> io::Result<()> {
    fs_err::hard_link(from, to)
}

/// Checks that a store directory is usable before a long save starts.
pub fn check_root(root: &Path) -> Result<()> {
    if root.exists() && !root.is_dir() {
        bail!("store `{}` is not a directory", root.display());
    }
    Ok(())
}
