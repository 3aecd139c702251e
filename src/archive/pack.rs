//! Packing: walk the paths to save and stream a compressed pax tar into a writer.
//!
//! Two threads share the work. A reader thread walks the tree, stats each entry and reads small
//! files whole; the calling thread turns those into tar members and feeds the compressor, whose
//! own worker threads do the compressing. That overlaps the syscall-bound walk with the
//! CPU-bound compression, the way `tar | zstd` overlaps two processes.
//!
//! Member names are the workspace-relative names of `paths`, which may start with `../`. The
//! `tar` crate refuses to *write* such names through `set_path`, so names go into the ustar
//! field as raw bytes when they fit and into a pax `path` record when they do not (longer than
//! 100 bytes, or not ASCII), as GNU tar `--posix` does.

use anyhow::{Context, Result, anyhow};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::SMALL_FILE_LIMIT;
use super::codec::Encoder;
use super::level::{Governor, Level};
use crate::key::Compression;
use crate::pace::Pace;
use crate::paths::SavePlan;
use crate::progress::Progress;

/// How much of a large file is read at a time.
const LARGE_FILE_CHUNK: usize = 1 << 20;

/// What a pack wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PackStats {
    /// Members written (files, directories, links).
    pub members: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content before compression.
    pub content_bytes: u64,
    /// Bytes of file content compressed at each level, in the order the levels were used.
    pub levels: Vec<(i32, u64)>,
}

/// How a pack compresses.
#[derive(Clone, Debug)]
pub struct Compressing {
    pub compression: Compression,
    pub level: Level,
    /// How the sink paces the compressor, for `Level::Auto`.
    pub pace: Pace,
}

/// Streams the archive of `plan` into `out`, returning `out` once the codec trailer is written.
pub fn pack<W: Write>(
    plan: &SavePlan,
    compressing: &Compressing,
    out: W,
    progress: &Progress,
) -> Result<(W, PackStats)> {
    let mut governor = Governor::new(
        compressing.level,
        compressing.compression,
        compressing.pace.clone(),
    );
    let encoder = Encoder::new(out, compressing.compression, governor.level())?;
    let mut builder = tar::Builder::new(encoder);
    let (sender, receiver) = mpsc::sync_channel::<Result<Item>>(64);
    let mut stats = PackStats::default();
    std::thread::scope(|scope| -> Result<()> {
        let walker = scope.spawn(move || walk(plan, &sender));
        let written = (|| -> Result<()> {
            loop {
                crate::interrupt::check()?;
                // A short timeout, so that a signal is noticed while the walker is slow.
                let item = match receiver.recv_timeout(crate::interrupt::POLL) {
                    Ok(item) => item?,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                };
                write_item(&mut builder, &item, &mut stats)?;
                if let Some(level) = governor.observe(stats.content_bytes) {
                    builder.get_mut().set_level(level);
                }
                progress.set_position(stats.content_bytes);
            }
        })();
        // Dropping the receiver stops the walker at its next send.
        drop(receiver);
        walker
            .join()
            .map_err(|_| anyhow!("the directory walker panicked"))?;
        written
    })?;
    stats.levels = governor.report();
    let encoder = builder
        .into_inner()
        .context("writing the end of the archive")?;
    let out = encoder
        .finish()
        .context("finishing the compressed stream")?;
    Ok((out, stats))
}

/// One member as the walker hands it to the tar writer.
struct Item {
    name: String,
    kind: ItemKind,
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
}

enum ItemKind {
    Directory,
    /// A file read whole.
    SmallFile(Vec<u8>),
    /// A file to stream: too large to hold in memory.
    LargeFile {
        path: PathBuf,
        size: u64,
    },
    Symlink(PathBuf),
    /// A second name of a file already in the archive (GNU tar does the same for files with
    /// several links, so a virtualenv installed by hard links from the uv cache stays small).
    HardLink(String),
}

fn walk(plan: &SavePlan, sender: &mpsc::SyncSender<Result<Item>>) {
    let mut seen_inodes: HashMap<(u64, u64), String> = HashMap::new();
    let walked = plan.walk(|root, entry| {
        crate::interrupt::check()?;
        match item_for(&root.member_name, &root.absolute, entry, &mut seen_inodes)? {
            // A closed channel means the tar writer stopped; its own error is what counts.
            Some(item) => sender
                .send(Ok(item))
                .map_err(|_| anyhow!("the archive writer stopped")),
            None => Ok(()),
        }
    });
    if let Err(error) = walked {
        let _ = sender.send(Err(error));
    }
}

fn item_for(
    root_name: &str,
    root: &Path,
    entry: &walkdir::DirEntry,
    seen_inodes: &mut HashMap<(u64, u64), String>,
) -> Result<Option<Item>> {
    let path = entry.path();
    let meta = entry
        .metadata()
        .with_context(|| format!("reading the metadata of `{}`", path.display()))?;
    let name = member_name(root_name, root, path);
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        ItemKind::Directory
    } else if file_type.is_symlink() {
        let target = fs_err::read_link(path)
            .with_context(|| format!("reading the symlink `{}`", path.display()))?;
        ItemKind::Symlink(target)
    } else if file_type.is_file() {
        match first_name_of_inode(&meta, &name, seen_inodes) {
            Some(first) => ItemKind::HardLink(first),
            None => file_kind(path, meta.len())?,
        }
    } else {
        crate::output::warn(&format!(
            "Skipped `{}`: sockets, fifos and device nodes are not cached",
            path.display()
        ));
        return Ok(None);
    };
    let (mode, uid, gid) = unix_owner_and_mode(&meta);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(Some(Item {
        name,
        kind,
        mode,
        mtime,
        uid,
        gid,
    }))
}

fn file_kind(path: &Path, size: u64) -> Result<ItemKind> {
    if size > SMALL_FILE_LIMIT {
        return Ok(ItemKind::LargeFile {
            path: path.to_path_buf(),
            size,
        });
    }
    let data = fs_err::read(path).with_context(|| format!("reading `{}`", path.display()))?;
    Ok(ItemKind::SmallFile(data))
}

fn member_name(root_name: &str, root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(Path::new(""));
    let mut name = root_name.to_string();
    for part in rel.components() {
        name.push('/');
        name.push_str(&part.as_os_str().to_string_lossy());
    }
    name
}

#[cfg(unix)]
fn first_name_of_inode(
    meta: &std::fs::Metadata,
    name: &str,
    seen: &mut HashMap<(u64, u64), String>,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if meta.nlink() < 2 {
        return None;
    }
    match seen.entry((meta.dev(), meta.ino())) {
        std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(name.to_string());
            None
        }
    }
}

#[cfg(not(unix))]
fn first_name_of_inode(
    _meta: &std::fs::Metadata,
    _name: &str,
    _seen: &mut HashMap<(u64, u64), String>,
) -> Option<String> {
    None
}

#[cfg(unix)]
fn unix_owner_and_mode(meta: &std::fs::Metadata) -> (u32, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.mode() & 0o7777, meta.uid() as u64, meta.gid() as u64)
}

#[cfg(not(unix))]
fn unix_owner_and_mode(meta: &std::fs::Metadata) -> (u32, u64, u64) {
    let mode = if meta.is_dir() { 0o755 } else { 0o644 };
    (mode, 0, 0)
}

fn write_item<W: Write>(
    builder: &mut tar::Builder<W>,
    item: &Item,
    stats: &mut PackStats,
) -> Result<()> {
    let (entry_type, size) = match &item.kind {
        ItemKind::Directory => (tar::EntryType::Directory, 0),
        ItemKind::SmallFile(data) => (tar::EntryType::Regular, data.len() as u64),
        ItemKind::LargeFile { size, .. } => (tar::EntryType::Regular, *size),
        ItemKind::Symlink(_) => (tar::EntryType::Symlink, 0),
        ItemKind::HardLink(_) => (tar::EntryType::Link, 0),
    };
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(item.mode);
    header.set_mtime(item.mtime);
    header.set_uid(item.uid);
    header.set_gid(item.gid);

    let mut name = item.name.clone().into_bytes();
    if entry_type == tar::EntryType::Directory {
        name.push(b'/');
    }
    let link = match &item.kind {
        ItemKind::Symlink(target) => Some(path_bytes(target)),
        ItemKind::HardLink(first) => Some(first.as_bytes().to_vec()),
        _ => None,
    };
    let mut pax: Vec<(&str, &[u8])> = Vec::new();
    if !set_ustar_field(&mut header.as_ustar_mut().expect("ustar").name, &name) {
        pax.push(("path", &name));
    }
    if let Some(link) = &link
        && !set_ustar_field(&mut header.as_ustar_mut().expect("ustar").linkname, link)
    {
        pax.push(("linkpath", link));
    }
    let size_text = size.to_string();
    if size >= 0o77777777777 {
        pax.push(("size", size_text.as_bytes()));
    }
    if !pax.is_empty() {
        builder
            .append_pax_extensions(pax)
            .with_context(|| format!("writing the pax header of `{}`", item.name))?;
    }
    header.set_cksum();

    match &item.kind {
        ItemKind::SmallFile(data) => builder.append(&header, &data[..])?,
        ItemKind::LargeFile { path, size } => {
            let file = fs_err::File::open(path)?.into_file();
            let exact = ExactReader {
                inner: file,
                left: *size,
                path,
            };
            // `io::copy` inside `append` moves 8 KiB at a time unless the reader is buffered:
            // large reads mean fewer syscalls and fewer calls into the compressor.
            let buffered = io::BufReader::with_capacity(LARGE_FILE_CHUNK, exact);
            builder
                .append(&header, buffered)
                .with_context(|| format!("archiving `{}`", path.display()))?;
        }
        _ => builder.append(&header, io::empty())?,
    }
    stats.members += 1;
    if entry_type == tar::EntryType::Regular {
        stats.files += 1;
        stats.content_bytes += size;
    }
    Ok(())
}

/// Writes `value` into a ustar name field if it fits as ASCII with room for the terminating
/// NUL GNU tar expects; returns false (leaving a truncated placeholder) when a pax record must
/// carry it instead.
fn set_ustar_field(field: &mut [u8], value: &[u8]) -> bool {
    let fits = value.len() < field.len() && value.is_ascii();
    let shown = &value[..value.len().min(field.len() - 1)];
    field.fill(0);
    for (slot, byte) in field.iter_mut().zip(shown) {
        *slot = if byte.is_ascii() { *byte } else { b'_' };
    }
    fits
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().replace('\\', "/").into_bytes()
}

/// Yields exactly `left` bytes of a file and fails if it ends early. A file that shrinks while
/// it is archived would otherwise shift every later member of the tar stream.
struct ExactReader<'a> {
    inner: std::fs::File,
    left: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        crate::interrupt::check_io()?;
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "`{}` shrank by {} bytes while it was being archived",
                    self.path.display(),
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
