//! Hostile archives: each is refused whole with an error naming the member and the rule,
//! nothing is created outside the sandbox, and the previous content of the restored path
//! survives untouched (no staging directory left behind either).
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::key::{Compression, entry_version};
use cache_heal::store::{NewEntry, Reservation, Store, local::LocalStore};
use std::io::Write;
use std::path::Path;
use support::{Sandbox, list_all, snapshot, stderr};

/// Builds raw tar streams member by member, bypassing the `tar` crate's own name checks so
/// the archive can say whatever an attacker wants.
struct Evil {
    builder: tar::Builder<zstd::Encoder<'static, Vec<u8>>>,
}

impl Evil {
    /// The tar stream goes straight into zstd, with a content checksum as the `zstd` CLI
    /// (and so actions/cache) writes it; a 2 GiB bomb never sits in memory.
    fn new() -> Self {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        Self {
            builder: tar::Builder::new(encoder),
        }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        let field = &mut h.as_ustar_mut().unwrap().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn dir(mut self, name: &str) -> Self {
        let mut h = Self::header(name, tar::EntryType::Directory, 0);
        h.set_mode(0o755);
        h.set_cksum();
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    fn link(mut self, name: &str, kind: tar::EntryType, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0);
        let field = &mut h.as_ustar_mut().unwrap().linkname;
        field.fill(0);
        field[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    fn special(mut self, name: &str, kind: tar::EntryType) -> Self {
        let mut h = Self::header(name, kind, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    /// A pax `path` record that overrides the innocent name in the ustar header.
    fn pax_override(mut self, innocent: &str, real: &str, data: &[u8]) -> Self {
        self.builder
            .append_pax_extensions([("path", real.as_bytes())])
            .unwrap();
        self.file(innocent, data)
    }

    fn zstd(self) -> Vec<u8> {
        self.builder.into_inner().unwrap().finish().unwrap()
    }
}

const KEY: &str = "evil";

/// A sandbox whose `ws/cache` holds previous content, and whose store holds `archive` under
/// the version of `--path cache`.
fn armed(archive: &[u8]) -> Sandbox {
    let sb = Sandbox::new();
    let cache = sb.ws().join("cache");
    std::fs::create_dir_all(cache.join("old")).unwrap();
    std::fs::write(cache.join("old/keep.txt"), b"previous content").unwrap();
    std::fs::write(sb.outside().join("secret"), b"outside file").unwrap();
    let store = LocalStore::new(sb.store());
    let version = entry_version(&["cache".to_string()], Compression::Zstd);
    let Reservation::Created(mut upload) = store
        .create(&NewEntry::new(KEY, &version, Compression::Zstd))
        .unwrap()
    else {
        panic!("fresh store");
    };
    upload.write_all(archive).unwrap();
    upload.finish().unwrap();
    sb
}

/// Restores `archive`, expects a refusal whose message contains every `needle`, and checks
/// that nothing changed on disk.
fn assert_refused(archive: &[u8], extra_args: &[&str], needles: &[&str]) {
    let sb = armed(archive);
    let ws_before = snapshot(&sb.ws());
    let outside_before = list_all(&sb.outside());
    let home_before = list_all(&sb.home());
    let out = sb.run(
        &[
            &["restore", "--path", "cache", "--key", KEY][..],
            extra_args,
        ]
        .concat(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected a refusal, got: {err}");
    assert!(err.contains("Refused to restore `evil`"), "{err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "error should mention `{needle}`: {err}"
        );
    }
    assert!(err.contains("Nothing was written"), "{err}");
    assert_eq!(
        ws_before,
        snapshot(&sb.ws()),
        "the workspace changed: {err}"
    );
    assert_eq!(
        outside_before,
        list_all(&sb.outside()),
        "something was created outside"
    );
    assert_eq!(
        home_before,
        list_all(&sb.home()),
        "something was created in home"
    );
    assert_eq!(
        std::fs::read(sb.ws().join("cache/old/keep.txt")).unwrap(),
        b"previous content"
    );
}

fn outside_abs(name: &str) -> String {
    // The sandbox path differs per test, so absolute members aim at the filesystem root: a
    // directory no test uses, which the assertions below also check does not appear.
    format!("/cache-heal-hostile-test/{name}")
}

#[test]
fn absolute_member_outside_the_paths() {
    let archive = Evil::new()
        .dir("cache/")
        .file(&outside_abs("pwned"), b"x")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["/cache-heal-hostile-test/pwned", "outside every path"],
    );
    assert!(!Path::new("/cache-heal-hostile-test").exists());
}

#[test]
fn dot_dot_escape() {
    let archive = Evil::new()
        .dir("cache/")
        .file("cache/../../outside/pwned", b"x")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/../../outside/pwned", "outside every path"],
    );
}

#[test]
fn symlink_to_outside_then_a_file_through_it() {
    let archive = Evil::new()
        .dir("cache/")
        .link("cache/evil", tar::EntryType::Symlink, "../../outside")
        .file("cache/evil/pwned", b"x")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/evil/pwned", "through the symlink `cache/evil`"],
    );
}

#[test]
fn symlink_chain() {
    let archive = Evil::new()
        .dir("cache/")
        .link("cache/b", tar::EntryType::Symlink, "../../outside")
        .link("cache/a", tar::EntryType::Symlink, "b")
        .file("cache/a/pwned", b"x")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/a/pwned", "through the symlink `cache/a`"],
    );
}

#[test]
fn symlink_as_a_directory_deeper_down() {
    let archive = Evil::new()
        .dir("cache/")
        .link("cache/d", tar::EntryType::Symlink, "/")
        .dir("cache/d/etc/")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/d/etc/", "through the symlink `cache/d`"],
    );
}

#[test]
fn hard_link_to_an_outside_file() {
    let archive = Evil::new()
        .dir("cache/")
        .link("cache/h", tar::EntryType::Link, "../outside/secret")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/h", "not a regular file extracted earlier"],
    );
}

#[test]
fn hard_link_to_a_symlink_member() {
    let archive = Evil::new()
        .dir("cache/")
        .link("cache/s", tar::EntryType::Symlink, "/etc/passwd")
        .link("cache/h", tar::EntryType::Link, "cache/s")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/h", "not a regular file extracted earlier"],
    );
}

#[test]
fn device_node() {
    let archive = Evil::new()
        .dir("cache/")
        .special("cache/null", tar::EntryType::Char)
        .zstd();
    assert_refused(&archive, &[], &["cache/null", "character device"]);
}

#[test]
fn fifo() {
    let archive = Evil::new()
        .dir("cache/")
        .special("cache/pipe", tar::EntryType::Fifo)
        .zstd();
    assert_refused(&archive, &[], &["cache/pipe", "fifo"]);
}

#[test]
fn pax_path_overrides_an_innocent_name() {
    let archive = Evil::new()
        .dir("cache/")
        .pax_override("cache/innocent", "../outside/pwned", b"x")
        .zstd();
    assert_refused(&archive, &[], &["../outside/pwned", "outside every path"]);
}

#[test]
fn duplicate_names() {
    let archive = Evil::new()
        .dir("cache/")
        .file("cache/f", b"first")
        .link("cache/f", tar::EntryType::Symlink, "/etc/passwd")
        .zstd();
    assert_refused(&archive, &[], &["cache/f", "appears twice"]);
}

#[test]
fn file_over_directory() {
    let archive = Evil::new()
        .dir("cache/")
        .file("cache/f", b"a file")
        .file("cache/f/inside", b"x")
        .zstd();
    assert_refused(
        &archive,
        &[],
        &["cache/f/inside", "needs `cache/f` to be a directory"],
    );
}

#[test]
fn directory_then_file_of_the_same_name() {
    let archive = Evil::new()
        .dir("cache/")
        .dir("cache/d/")
        .file("cache/d", b"x")
        .zstd();
    assert_refused(&archive, &[], &["cache/d", "appears twice"]);
}

/// Restores `archive`, which is damaged rather than hostile: a warned miss (exit 0), the
/// previous content untouched. Damaged entries from every store are in `tests/damaged.rs`.
fn assert_skipped_as_damaged(archive: &[u8], needles: &[&str]) {
    let sb = armed(archive);
    let ws_before = snapshot(&sb.ws());
    let out = sb.run(&["restore", "--path", "cache", "--key", KEY]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a damaged entry is a miss: {err}"
    );
    assert!(
        err.contains("Did not restore `evil`: the entry is damaged"),
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "should mention `{needle}`: {err}");
    }
    assert_eq!(
        ws_before,
        snapshot(&sb.ws()),
        "the workspace changed: {err}"
    );
}

#[test]
fn truncated_stream() {
    let big: Vec<u8> = (0..400_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    let archive = Evil::new()
        .dir("cache/")
        .file("cache/a", &big)
        .file("cache/b", b"tail")
        .zstd();
    let cut = &archive[..archive.len() / 2];
    // The local store recorded the cut archive's own digest, so only the decoder finds out.
    assert_skipped_as_damaged(cut, &["the archive is truncated"]);
}

#[test]
fn flipped_bits_in_a_zstd_frame() {
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 1000).to_le_bytes())
        .collect();
    let mut archive = Evil::new().dir("cache/").file("cache/a", &big).zstd();
    let middle = archive.len() / 2;
    archive[middle] ^= 0b0101_0101;
    archive[middle + 1] ^= 0b1010_1010;
    assert_skipped_as_damaged(&archive, &["the archive is corrupt"]);
}

#[test]
fn compression_bomb_is_stopped_by_max_size() {
    // 2 GiB of zeros compresses to a few hundred KiB.
    let archive = zero_bomb(8, 256 << 20);
    assert!(archive.len() < 1 << 20, "bomb is {} bytes", archive.len());
    assert_refused(
        &archive,
        &["--max-size", "10M"],
        &[
            "cache/bomb",
            "more than 10485760 bytes",
            "`--max-size 10485760`",
        ],
    );
}

/// Without `--max-size` the default limit follows the archive's size (32 times it, at least
/// 512 MiB), so the classic bomb (16 GiB of zeros in well under a MiB) stops at the third
/// 256 MiB member: at most 512 MiB were ever written, and none of it stays.
#[test]
fn compression_bomb_is_stopped_by_the_default_limit() {
    let archive = zero_bomb(64, 256 << 20);
    assert!(archive.len() < 1 << 20, "bomb is {} bytes", archive.len());
    assert_refused(
        &archive,
        &[],
        &[
            "`cache/bomb-02` would write more than 536870912 bytes",
            "32 times its size",
            "hint: if this entry is genuine, allow more with `--max-size",
        ],
    );
}

/// `members` files of `size` zeros under `cache/`, as one zstd stream of concatenated frames
/// (what `zstd -d` and every zstd reader expand to the whole tar). The zeros are compressed
/// once and their frame repeated, so a 16 GiB bomb costs a test well under a second.
fn zero_bomb(members: usize, size: u64) -> Vec<u8> {
    assert_eq!(size % 512, 0, "tar pads members to 512 bytes");
    let frame = |bytes: &[u8]| zstd::encode_all(bytes, 3).unwrap();
    let zeros = zstd::encode_all(std::io::Read::take(std::io::repeat(0), size), 3).unwrap();
    let mut dir = Evil::header("cache/", tar::EntryType::Directory, 0);
    dir.set_cksum();
    let mut archive = frame(dir.as_bytes());
    for i in 0..members {
        let mut header = Evil::header(&format!("cache/bomb-{i:02}"), tar::EntryType::Regular, size);
        header.set_cksum();
        archive.extend(frame(header.as_bytes()));
        archive.extend(&zeros);
    }
    archive.extend(frame(&[0; 1024]));
    archive
}
#[test]
fn restoring_over_the_workspace_itself_is_refused() {
    let sb = Sandbox::new();
    std::fs::write(sb.ws().join("checkout.txt"), b"the user's work").unwrap();
    let store = LocalStore::new(sb.store());
    let version = entry_version(&[".".to_string()], Compression::Zstd);
    let Reservation::Created(mut upload) = store
        .create(&NewEntry::new("dot", &version, Compression::Zstd))
        .unwrap()
    else {
        panic!("fresh store");
    };
    upload
        .write_all(&Evil::new().dir("./").file("./x", b"x").zstd())
        .unwrap();
    upload.finish().unwrap();
    let out = sb.run(&["restore", "--path", ".", "--key", "dot"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("holds the workspace"), "{err}");
    assert!(!sb.ws().join("x").exists());
    assert_eq!(
        std::fs::read(sb.ws().join("checkout.txt")).unwrap(),
        b"the user's work"
    );
}

#[test]
fn a_valid_archive_with_an_absolute_symlink_restores() {
    let archive = Evil::new()
        .dir("cache/")
        .dir("cache/venv/")
        .dir("cache/venv/bin/")
        .link(
            "cache/venv/bin/python",
            tar::EntryType::Symlink,
            "/usr/bin/python3",
        )
        .link("cache/venv/bin/python3", tar::EntryType::Symlink, "python")
        .file("cache/venv/pyvenv.cfg", b"home = /usr/bin\n")
        .zstd();
    let sb = armed(&archive);
    sb.ok(&["restore", "--path", "cache", "--key", KEY]);
    let link = sb.ws().join("cache/venv/bin/python");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/usr/bin/python3")
    );
    assert_eq!(
        std::fs::read_link(sb.ws().join("cache/venv/bin/python3")).unwrap(),
        Path::new("python")
    );
    assert!(
        !sb.ws().join("cache/old").exists(),
        "restore replaces the path whole"
    );
}

#[test]
fn symlinks_already_on_disk_are_replaced_never_written_through() {
    let archive = Evil::new()
        .dir("cache/")
        .dir("cache/sub/")
        .file("cache/sub/f", b"from the archive")
        .zstd();
    let sb = armed(&archive);
    // The user's `cache` is now a symlink to a directory outside, holding a `sub` of its own.
    std::fs::remove_dir_all(sb.ws().join("cache")).unwrap();
    std::fs::create_dir_all(sb.outside().join("target/sub")).unwrap();
    std::fs::write(sb.outside().join("target/sub/f"), b"outside content").unwrap();
    std::os::unix::fs::symlink(sb.outside().join("target"), sb.ws().join("cache")).unwrap();
    let outside_before = snapshot(&sb.outside());

    sb.ok(&["restore", "--path", "cache", "--key", KEY]);
    assert_eq!(
        outside_before,
        snapshot(&sb.outside()),
        "written through the symlink"
    );
    let cache = sb.ws().join("cache");
    assert!(!cache.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        std::fs::read(cache.join("sub/f")).unwrap(),
        b"from the archive"
    );
}
