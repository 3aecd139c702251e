//! Unpacking: read an archive into staging directories, check every member, and only then
//! swap the result into place.
//!
//! Why our own extraction: the `tar` crate's `unpack` silently skips members whose names
//! contain `..`, which is every member of an actions/cache archive of `~/.cache/uv`, and GNU
//! tar writes straight into the destination, so a bad archive leaves half a tree behind.
//!
//! The rules, each enforced before a byte of that member is written:
//! - a member lands inside one of the restored paths (its *unit*), after folding `..`;
//! - nothing is written through a symlink: a member below a symlink member is refused, and
//!   symlinks are created last, after every file, so no write can follow one;
//! - hard links must name a regular file extracted earlier from the same archive;
//! - devices, fifos and other special files are refused;
//! - a name appears once (directories may repeat, as GNU tar writes them for overlapping paths);
//! - the file content written stays within `max_bytes`, checked from the header before writing,
//!   so a compression bomb stops at once.
//!
//! Everything is written into a fresh staging directory beside each unit (same file system, so
//! the final swap is a rename). If any rule fails, or the stream is truncated or corrupt, the
//! staging directories are removed and the destination is exactly as it was.
//!
//! Two kinds of failure, and callers must tell them apart: a [`Refusal`] is an archive that
//! tries something no cache needs (an attack on the cache: the run stops), while [`Damaged`]
//! is an archive that cannot be read to its end (truncated, corrupt framing, or bytes the store
//! itself rejects: a wrong size or digest). A damaged entry hurts nobody once it is skipped, so
//! a restore treats it like a miss, as actions/cache treats any failed download. Symlink targets
//! are kept as they are, relative or absolute: a virtualenv's `python` points at its
//! interpreter by absolute path, and uv links across its buckets with relative links.

use anyhow::{Context, Result, anyhow};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use super::SMALL_FILE_LIMIT;
use crate::paths::{RestoreTargets, Roots};

/// A member that broke one of the rules. The whole archive is refused for it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "archive member `{member}` resolves to `{destination}`, outside every path being restored"
    )]
    OutsidePaths {
        member: String,
        destination: PathBuf,
    },
    #[error("archive member `{member}` would be written through the symlink `{link}`")]
    ThroughSymlink { member: String, link: String },
    #[error(
        "archive member `{member}` needs `{parent}` to be a directory, but the archive made it a file"
    )]
    ParentNotDirectory { member: String, parent: String },
    #[error("archive member `{member}` appears twice")]
    Duplicate { member: String },
    #[error(
        "archive member `{member}` is a hard link to `{target}`, which is not a regular file extracted earlier from this archive"
    )]
    HardLinkTarget { member: String, target: String },
    #[error(
        "archive member `{member}` is a {kind}; devices, fifos and other special files are refused"
    )]
    SpecialFile { member: String, kind: String },
    #[error("archive member `{member}` has an empty name")]
    EmptyName { member: String },
    #[error(
        "restoring archive member `{member}` would write more than {limit} bytes in all; stopped before writing it"
    )]
    TooLarge { member: String, limit: u64 },
    #[error(
        "archive member `{member}` would replace `{unit}`, which holds the workspace, the current directory or the home directory"
    )]
    ProtectedUnit { member: String, unit: PathBuf },
}

/// The archive could not be read to its end: the stream was cut short, its compression or tar
/// framing is broken, or the store's reader could not hand it over intact (a size or digest
/// that does not match what the store recorded, an archive that is gone). Every read-side
/// failure of an unpack carries this type, so a caller can ask [`Damaged::find`] instead of
/// matching on messages.
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {}", .reading, .kind.describe())]
pub struct Damaged {
    /// What was being read: `the archive`, `archive member `x``, `the end of the archive`.
    pub reading: String,
    pub kind: DamageKind,
    #[source]
    pub source: io::Error,
}

/// How an archive is damaged, as far as the error says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// The stream ended early (zstd "incomplete frame", gzip or tar end of file).
    Truncated,
    /// Bad compressed data, a bad checksum, a broken tar header.
    Corrupt,
    /// The store's reader failed: its own error says why (a digest, a gone archive, or a
    /// transfer that failed, which the caller tells apart by the store's error type).
    Store,
}

impl DamageKind {
    fn describe(self) -> &'static str {
        match self {
            DamageKind::Truncated => "the archive is truncated",
            DamageKind::Corrupt => "the archive is corrupt",
            DamageKind::Store => "the store could not hand over the archive intact",
        }
    }

    fn of(error: &io::Error) -> Self {
        let mut kind = DamageKind::Corrupt;
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if e.is::<FromStore>() {
                return DamageKind::Store;
            }
            let io = e.downcast_ref::<io::Error>();
            // zstd reports a cut stream as a plain error saying "incomplete frame".
            if io.is_some_and(|io| io.kind() == io::ErrorKind::UnexpectedEof)
                || e.to_string().contains("incomplete frame")
            {
                kind = DamageKind::Truncated;
            }
            current = match io.and_then(|io| io.get_ref()) {
                Some(inner) => Some(inner),
                None => e.source(),
            };
        }
        kind
    }
}

/// Marks an error from the store's reader, so damage reported by the store is told apart from
/// damage the decoder or the tar reader found.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct FromStore(io::Error);

/// The store's reader, with each error marked [`FromStore`].
pub(super) struct StoreReader<R>(pub(super) R);

impl<R: Read> Read for StoreReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), FromStore(e)))
    }
}

impl Damaged {
    fn new(reading: impl Into<String>, source: io::Error) -> Self {
        Self {
            reading: reading.into(),
            kind: DamageKind::of(&source),
            source,
        }
    }

    /// The damage behind `error`, wherever it sits in the chain; `None` for a hostile archive
    /// (a [`Refusal`]), an interrupt (which cuts the decoder short and so looks like damage
    /// from below), a failing disk, or anything else that is not damage.
    pub fn find(error: &anyhow::Error) -> Option<&Damaged> {
        if error.chain().any(|e| e.is::<Refusal>()) || crate::interrupt::find(error).is_some() {
            return None;
        }
        error.chain().find_map(|e| e.downcast_ref::<Damaged>())
    }

    /// What is wrong, in one line for a report: the kind and the codec's words, or the
    /// store's own words.
    pub fn summary(&self) -> String {
        let cause = self.root_cause();
        match self.kind {
            DamageKind::Store => cause,
            kind => format!("{} ({cause})", kind.describe()),
        }
    }

    fn root_cause(&self) -> String {
        let mut last: &(dyn std::error::Error + 'static) = &self.source;
        loop {
            let next = last
                .downcast_ref::<io::Error>()
                .and_then(|io| {
                    io.get_ref()
                        .map(|inner| inner as &(dyn std::error::Error + 'static))
                })
                .or_else(|| {
                    last.downcast_ref::<FromStore>()
                        .map(|f| &f.0 as &(dyn std::error::Error + 'static))
                })
                .or_else(|| last.source());
            match next {
                Some(next) => last = next,
                None => return last.to_string(),
            }
        }
    }
}

/// Limits and knobs for one unpack.
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// The most file content a restore may write.
    pub max_bytes: u64,
    /// Threads that write small files while the main thread keeps decoding.
    pub writers: usize,
    /// Paths a unit may never be, nor contain (the workspace, the current directory, home).
    pub protected: Vec<PathBuf>,
}

/// What an unpack staged; `commit` swaps it into place, dropping it removes it.
pub struct Unpacked {
    pub files: u64,
    pub content_bytes: u64,
    staging: Staging,
}

impl Unpacked {
    /// Replaces each unit with its staged copy. If one rename fails, those already swapped are
    /// put back, so the destination never mixes old and new.
    pub fn commit(self) -> Result<()> {
        self.staging.commit()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Symlink,
}

/// One restored path: where it goes and where it is being staged.
struct Unit {
    target: PathBuf,
    staged: PathBuf,
}

#[derive(Default)]
struct Staging {
    units: Vec<Unit>,
    /// Staging directories, keyed by the existing directory they were made in. Dropping a
    /// `TempDir` removes it with everything inside.
    dirs: HashMap<PathBuf, tempfile::TempDir>,
    /// The liveness lock of each staging directory, so that a run after a SIGKILL can tell
    /// ours from a dead one's (see `leftovers`).
    marks: Vec<crate::leftovers::LiveMark>,
}

impl Staging {
    fn unit_index(&mut self, target: &Path, member: &str, protected: &[PathBuf]) -> Result<usize> {
        if let Some(i) = self.units.iter().position(|u| u.target == target) {
            return Ok(i);
        }
        if protected.iter().any(|p| p.starts_with(target)) {
            return Err(Refusal::ProtectedUnit {
                member: member.to_string(),
                unit: target.to_path_buf(),
            }
            .into());
        }
        let anchor = nearest_existing_dir(target.parent().unwrap_or(target))?;
        let dir = match self.dirs.entry(anchor.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // Staging that a killed restore left here is swept before ours is made.
                crate::leftovers::sweep_staging(&anchor);
                let dir = tempfile::Builder::new()
                    .prefix(".cache-heal-staging-")
                    .tempdir_in(&anchor)
                    .with_context(|| {
                        format!("creating a staging directory in `{}`", anchor.display())
                    })?;
                self.marks.push(crate::leftovers::mark_dir(dir.path())?);
                e.insert(dir)
            }
        };
        let staged = dir.path().join(format!("unit-{}", self.units.len()));
        self.units.push(Unit {
            target: target.to_path_buf(),
            staged,
        });
        Ok(self.units.len() - 1)
    }

    fn staged_path(&self, unit: usize, destination: &Path) -> PathBuf {
        let unit = &self.units[unit];
        let rel = destination
            .strip_prefix(&unit.target)
            .expect("destination is inside its unit");
        if rel.as_os_str().is_empty() {
            unit.staged.clone()
        } else {
            unit.staged.join(rel)
        }
    }

    fn commit(self) -> Result<()> {
        let mut swapped: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        for unit in &self.units {
            match swap_in(unit) {
                Ok(backup) => swapped.push((unit.target.clone(), backup)),
                Err(e) => {
                    roll_back(&swapped);
                    return Err(e);
                }
            }
        }
        for (_, backup) in swapped {
            if let Some(backup) = backup {
                remove_any(&backup);
            }
        }
        Ok(())
    }
}

/// Moves the old content aside, renames the staged copy into place, and returns where the old
/// content went so it can be deleted (or put back).
fn swap_in(unit: &Unit) -> Result<Option<PathBuf>> {
    let target = &unit.target;
    let parent = target.parent().unwrap_or(target);
    let backup = if target.symlink_metadata().is_ok() {
        let backup = parent.join(format!(".cache-heal-old-{:016x}", rand::random::<u64>()));
        fs_err::rename(target, &backup)
            .with_context(|| format!("moving the old `{}` aside", target.display()))?;
        Some(backup)
    } else {
        fs_err::create_dir_all(parent)?;
        None
    };
    if let Err(e) = fs_err::rename(&unit.staged, target) {
        if let Some(backup) = &backup {
            let _ = fs_err::rename(backup, target);
        }
        return Err(anyhow!(e).context(format!(
            "moving the restored `{}` into place",
            target.display()
        )));
    }
    Ok(backup)
}

fn roll_back(swapped: &[(PathBuf, Option<PathBuf>)]) {
    for (target, backup) in swapped.iter().rev() {
        remove_any(target);
        if let Some(backup) = backup {
            let _ = fs_err::rename(backup, target);
        }
    }
}

fn remove_any(path: &Path) {
    if let Err(e) = remove_tree(path) {
        crate::output::warn(&format!("Could not remove `{}`: {e}", path.display()));
    }
}

/// Removes a file or a whole tree, even one holding read-only directories (a restored cache
/// may: their modes come from the archive). Only when a plain removal fails are the
/// directories made writable, which costs a second walk.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let is_dir = match path.symlink_metadata() {
        Ok(meta) => meta.is_dir(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !is_dir {
        return fs_err::remove_file(path);
    }
    if fs_err::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_directories_writable(path);
    fs_err::remove_dir_all(path)
}

#[cfg(unix)]
fn make_directories_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            let _ = fs_err::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
}

#[cfg(not(unix))]
fn make_directories_writable(_root: &Path) {}

impl Drop for Staging {
    /// Removes what is left of the staging directories, read-only ones included, before each
    /// `TempDir` tries (and, for read-only trees, would silently fail) on its own.
    fn drop(&mut self) {
        for dir in self.dirs.values() {
            let _ = remove_tree(dir.path());
        }
    }
}

fn nearest_existing_dir(path: &Path) -> Result<PathBuf> {
    path.ancestors()
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
        .with_context(|| format!("no directory above `{}` exists", path.display()))
}

/// A small file handed to a writer thread.
struct Job {
    path: PathBuf,
    data: Vec<u8>,
    mode: u32,
    mtime: u64,
}

/// Everything deferred to the end of the stream.
#[derive(Default)]
struct Deferred {
    hard_links: Vec<(PathBuf, PathBuf)>,
    symlinks: Vec<(PathBuf, PathBuf)>,
    dir_modes: Vec<(PathBuf, u32)>,
}

struct Unpacker<'a> {
    roots: &'a Roots,
    targets: &'a RestoreTargets,
    options: &'a UnpackOptions,
    staging: Staging,
    last_unit: Option<usize>,
    kinds: HashMap<PathBuf, Kind>,
    deferred: Deferred,
    files: u64,
    content_bytes: u64,
}

/// Unpacks a compressed archive (zstd, gzip or plain tar, detected from its first bytes).
///
/// The archive is read and decompressed on threads of its own (see `decode`: one reads ahead,
/// and zstd frames are decoded on every core when the archive allows it), while the calling
/// thread checks and writes members, the way `zstd -d | tar -x` runs two processes.
pub fn unpack_archive<R: Read + Send>(
    archive: R,
    roots: &Roots,
    targets: &RestoreTargets,
    options: &UnpackOptions,
) -> Result<Unpacked> {
    std::thread::scope(|scope| {
        let tar_stream = super::decode::tar_stream(scope, archive);
        unpack(tar_stream, roots, targets, options)
    })
}

/// Unpacks a decompressed tar stream into staging. Nothing outside the staging directories is
/// touched until `Unpacked::commit`.
fn unpack<R: Read>(
    tar_stream: R,
    roots: &Roots,
    targets: &RestoreTargets,
    options: &UnpackOptions,
) -> Result<Unpacked> {
    let mut unpacker = Unpacker {
        roots,
        targets,
        options,
        staging: Staging::default(),
        last_unit: None,
        kinds: HashMap::new(),
        deferred: Deferred::default(),
        files: 0,
        content_bytes: 0,
    };
    let (sender, receiver) = mpsc::sync_channel::<Job>(64);
    let receiver = Arc::new(Mutex::new(receiver));
    let first_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
    let mut archive = tar::Archive::new(tar_stream);
    let read_result = std::thread::scope(|scope| {
        for _ in 0..options.writers {
            let receiver = Arc::clone(&receiver);
            let first_error = Arc::clone(&first_error);
            scope.spawn(move || write_jobs(&receiver, &first_error));
        }
        let result = unpacker.read_members(&mut archive, &sender, &first_error);
        drop(sender);
        result
    });
    let writer_error = first_error.lock().expect("writer error lock").take();
    read_result?;
    if let Some(e) = writer_error {
        return Err(e);
    }
    // Read to the very end so the codec checks its trailer (zstd's checksum) and a store can
    // verify the whole archive's hash: trailing damage must fail the restore too.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| Damaged::new("the end of the archive", e))?;
    unpacker.finish_links()?;
    Ok(Unpacked {
        files: unpacker.files,
        content_bytes: unpacker.content_bytes,
        staging: unpacker.staging,
    })
}

fn write_jobs(receiver: &Mutex<mpsc::Receiver<Job>>, first_error: &Mutex<Option<anyhow::Error>>) {
    loop {
        let job = match receiver.lock().expect("job queue lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if let Err(e) = write_small_file(&job) {
            first_error
                .lock()
                .expect("writer error lock")
                .get_or_insert(e);
            return;
        }
    }
}

/// Writes a file whose content was read whole: one `write`, no copy buffer.
fn write_small_file(job: &Job) -> Result<()> {
    let mut file = create_file(&job.path, job.mode)?;
    file.write_all(&job.data)
        .with_context(|| format!("writing `{}`", job.path.display()))?;
    finish_file(&file, &job.path, job.mode, job.mtime)
}

/// Streams a large member's content into a new file.
fn write_file(path: &Path, data: &mut dyn Read, mode: u32, mtime: u64) -> Result<()> {
    let mut file = create_file(path, mode)?;
    copy_content(data, &mut file, path)?;
    finish_file(&file, path, mode, mtime)
}

fn create_file(path: &Path, mode: u32) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .with_context(|| format!("creating `{}`", path.display()))
}

fn finish_file(file: &std::fs::File, path: &Path, mode: u32, mtime: u64) -> Result<()> {
    set_exact_mode(file, path, mode)?;
    let mtime = filetime::FileTime::from_unix_time(mtime as i64, 0);
    filetime::set_file_handle_times(file, None, Some(mtime))
        .with_context(|| format!("setting the modification time of `{}`", path.display()))
}

/// Copies a member's content, telling a damaged archive (a read error: truncated stream, bad
/// checksum) apart from a failing disk (a write error).
fn copy_content(data: &mut dyn Read, file: &mut std::fs::File, path: &Path) -> Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        crate::interrupt::check()?;
        let n = match data.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Damaged::new("the archive", e).into()),
        };
        file.write_all(&buffer[..n])
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
}

/// `open` applies the umask; fix the mode only when the umask actually removed a bit, which
/// saves a syscall per file in the common case.
#[cfg(unix)]
fn set_exact_mode(file: &std::fs::File, path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if mode & umask() != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of `{}`", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_exact_mode(_file: &std::fs::File, _path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        // SAFETY: umask only swaps the process's mask; setting it back at once restores it.
        // It runs once, before any writer thread creates files.
        unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old as u32
        }
    })
}

/// Setuid, setgid and sticky bits are dropped: a cache has no use for them, and an archive
/// should not be able to plant a setuid file.
fn file_mode(header_mode: u32) -> u32 {
    header_mode & 0o777
}

impl Unpacker<'_> {
    fn read_members<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        sender: &mpsc::SyncSender<Job>,
        first_error: &Mutex<Option<anyhow::Error>>,
    ) -> Result<()> {
        #[cfg(unix)]
        umask();
        let entries = archive
            .entries()
            .map_err(|e| Damaged::new("the archive", e))?;
        let mut last_member = String::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                let reading = if last_member.is_empty() {
                    "the archive".to_string()
                } else {
                    format!("the archive after member `{last_member}`")
                };
                Damaged::new(reading, e)
            })?;
            crate::interrupt::check()?;
            // Reuse one buffer: this runs for every member.
            last_member.clear();
            last_member.push_str(&String::from_utf8_lossy(&entry.path_bytes()));
            self.read_member(entry, sender)?;
            if first_error.lock().expect("writer error lock").is_some() {
                break;
            }
        }
        Ok(())
    }

    fn read_member<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        sender: &mpsc::SyncSender<Job>,
    ) -> Result<()> {
        let entry_type = entry.header().entry_type();
        if entry_type == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let member = String::from_utf8_lossy(&raw_name).into_owned();
        let name = entry.path().context("reading a member name")?.into_owned();
        if name.as_os_str().is_empty() {
            return Err(Refusal::EmptyName { member }.into());
        }
        let destination = self.roots.destination(&name);
        let unit = self.unit_of(&member, &destination)?;
        let mode = entry.header().mode().unwrap_or(0o644);
        match entry_type {
            tar::EntryType::Directory => self.directory(&member, &destination, unit, mode),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().context("reading a member size")?;
                let mtime = entry.header().mtime().unwrap_or(0);
                self.file(
                    &member,
                    &destination,
                    unit,
                    size,
                    file_mode(mode),
                    mtime,
                    &mut entry,
                    sender,
                )
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("reading a symlink target")?
                    .with_context(|| format!("symlink `{member}` has no target"))?
                    .into_owned();
                self.claim(&member, &destination, Kind::Symlink)?;
                self.ensure_parent(&member, &destination, unit)?;
                let staged = self.staging.staged_path(unit, &destination);
                self.deferred.symlinks.push((staged, target));
                Ok(())
            }
            tar::EntryType::Link => self.hard_link(&member, &destination, unit, &mut entry),
            other => Err(Refusal::SpecialFile {
                member,
                kind: describe_entry_type(other),
            }
            .into()),
        }
    }

    /// The unit a member lands in. Members come grouped by unit, so the last unit is checked
    /// first: if it holds the destination, no shorter declared path can (it would hold the
    /// last unit too, and units are the shortest declared ancestors).
    fn unit_of(&mut self, member: &str, destination: &Path) -> Result<usize> {
        if let Some(last) = self.last_unit
            && destination.starts_with(&self.staging.units[last].target)
        {
            return Ok(last);
        }
        let Some(unit_target) = self.targets.unit_for(destination) else {
            return Err(Refusal::OutsidePaths {
                member: member.to_string(),
                destination: destination.to_path_buf(),
            }
            .into());
        };
        let unit = self
            .staging
            .unit_index(&unit_target, member, &self.options.protected)?;
        self.last_unit = Some(unit);
        Ok(unit)
    }

    /// Records a member's kind; a second member of the same name is refused unless both are
    /// directories.
    fn claim(&mut self, member: &str, destination: &Path, kind: Kind) -> Result<bool> {
        match self.kinds.get(destination) {
            None => {
                self.kinds.insert(destination.to_path_buf(), kind);
                Ok(true)
            }
            Some(Kind::Directory) if kind == Kind::Directory => Ok(false),
            Some(_) => Err(Refusal::Duplicate {
                member: member.to_string(),
            }
            .into()),
        }
    }

    /// Makes sure the parent of `destination` is a directory created by this restore, creating
    /// missing ones, and never one that a symlink or file member occupies.
    fn ensure_parent(&mut self, member: &str, destination: &Path, unit: usize) -> Result<()> {
        if destination == self.staging.units[unit].target {
            return Ok(());
        }
        let parent = destination
            .parent()
            .expect("a member inside a unit has a parent");
        match self.kinds.get(parent) {
            Some(Kind::Directory) => Ok(()),
            Some(Kind::Symlink) => Err(Refusal::ThroughSymlink {
                member: member.to_string(),
                link: self.roots.member_name(parent),
            }
            .into()),
            Some(Kind::File) => Err(Refusal::ParentNotDirectory {
                member: member.to_string(),
                parent: self.roots.member_name(parent),
            }
            .into()),
            None => {
                self.ensure_parent(member, parent, unit)?;
                self.kinds.insert(parent.to_path_buf(), Kind::Directory);
                let staged = self.staging.staged_path(unit, parent);
                fs_err::create_dir(&staged)?;
                Ok(())
            }
        }
    }

    fn directory(
        &mut self,
        member: &str,
        destination: &Path,
        unit: usize,
        mode: u32,
    ) -> Result<()> {
        if !self.claim(member, destination, Kind::Directory)? {
            return Ok(());
        }
        self.ensure_parent(member, destination, unit)?;
        let staged = self.staging.staged_path(unit, destination);
        fs_err::create_dir(&staged)?;
        self.deferred.dir_modes.push((staged, file_mode(mode)));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file<R: Read>(
        &mut self,
        member: &str,
        destination: &Path,
        unit: usize,
        size: u64,
        mode: u32,
        mtime: u64,
        entry: &mut tar::Entry<'_, R>,
        sender: &mpsc::SyncSender<Job>,
    ) -> Result<()> {
        self.claim(member, destination, Kind::File)?;
        self.ensure_parent(member, destination, unit)?;
        let total = self.content_bytes.saturating_add(size);
        if total > self.options.max_bytes {
            return Err(Refusal::TooLarge {
                member: member.to_string(),
                limit: self.options.max_bytes,
            }
            .into());
        }
        self.content_bytes = total;
        self.files += 1;
        let path = self.staging.staged_path(unit, destination);
        if size <= SMALL_FILE_LIMIT && self.options.writers > 0 {
            let mut data = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| Damaged::new(format!("archive member `{member}`"), e))?;
            // A closed queue means a writer failed; its error is reported by the caller.
            let _ = sender.send(Job {
                path,
                data,
                mode,
                mtime,
            });
            Ok(())
        } else {
            write_file(&path, entry, mode, mtime)
                .with_context(|| format!("extracting archive member `{member}`"))
        }
    }

    fn hard_link<R: Read>(
        &mut self,
        member: &str,
        destination: &Path,
        unit: usize,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<()> {
        let target_name = entry
            .link_name()
            .context("reading a hard link target")?
            .with_context(|| format!("hard link `{member}` has no target"))?
            .into_owned();
        let target = self.roots.destination(&target_name);
        if self.kinds.get(&target) != Some(&Kind::File) {
            return Err(Refusal::HardLinkTarget {
                member: member.to_string(),
                target: target_name.to_string_lossy().into_owned(),
            }
            .into());
        }
        self.claim(member, destination, Kind::File)?;
        self.ensure_parent(member, destination, unit)?;
        let target_unit = self
            .targets
            .unit_for(&target)
            .expect("a claimed member has a unit");
        let target_unit = self
            .staging
            .unit_index(&target_unit, member, &self.options.protected)?;
        let staged_target = self.staging.staged_path(target_unit, &target);
        let staged = self.staging.staged_path(unit, destination);
        self.deferred.hard_links.push((staged_target, staged));
        Ok(())
    }

    /// Creates what had to wait for every file: hard links (their targets are written now),
    /// then symlinks (nothing can be written through them any more), then directory modes
    /// (a read-only directory could not have been filled).
    fn finish_links(&mut self) -> Result<()> {
        for (target, link) in &self.deferred.hard_links {
            fs_err::hard_link(target, link)?;
        }
        for (link, target) in &self.deferred.symlinks {
            create_symlink(target, link)?;
        }
        self.deferred
            .dir_modes
            .sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in &self.deferred.dir_modes {
            set_dir_mode(path, *mode)?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn create_symlink(target: &Path, link: &Path) -> Result<()> {
    fs_err::os::unix::fs::symlink(target, link)
        .with_context(|| format!("creating the symlink `{}`", link.display()))
}

#[cfg(windows)]
fn create_symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::windows::fs::symlink_file(target, link)
        .with_context(|| format!("creating the symlink `{}`", link.display()))
}

#[cfg(unix)]
fn set_dir_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_dir_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

fn describe_entry_type(entry_type: tar::EntryType) -> String {
    match entry_type {
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "fifo".into(),
        tar::EntryType::GNUSparse => "GNU sparse file".into(),
        other => format!("member of type `{}`", other.as_byte() as char),
    }
}
