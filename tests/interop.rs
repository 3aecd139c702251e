//! Interop with the exact commands actions/cache runs (toolkit `internal/tar.ts`):
//! archives made by GNU tar + zstd restore identically with cache-heal, and archives made by
//! cache-heal extract identically with `zstd -d | tar -xf - -P -C $WORKSPACE`.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::key::{Compression, entry_version};
use cache_heal::store::{Lookup, NewEntry, Query, Reservation, Store, local::LocalStore};
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{Sandbox, assert_same_tree, snapshot};

fn tree(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("archive-v0/x1/mod.py", b"x = 1\n");
    w("archive-v0/x1/bin/run", b"#!/bin/sh\n");
    std::fs::set_permissions(
        root.join("archive-v0/x1/bin/run"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("wheels-v5/pypi/x")).unwrap();
    symlink(
        "../../../archive-v0/x1",
        root.join("wheels-v5/pypi/x/x-1.0-py3-none-any"),
    )
    .unwrap();
    symlink("/usr/bin/python3", root.join("venv-python")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    w("ünïcode/名前.txt", "名前".as_bytes());
    w("zero", b"");
    w(&format!("{}/f", "n".repeat(130)), b"long name");
    // Two names of one file: GNU tar writes the second as a hard link member.
    w("links/first", b"shared content");
    std::fs::hard_link(root.join("links/first"), root.join("links/second")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    w("big.bin", &big);
}

fn run_checked(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tar --posix -cf - -P -C $WS --files-from manifest | zstd -T0 -3`, as actions/cache does it.
fn gnu_archive(ws: &Path, manifest: &str, compression: Compression) -> Vec<u8> {
    let manifest_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest_file.path(), manifest).unwrap();
    let compressor = match compression {
        Compression::Zstd => "zstd -T0 -3",
        Compression::Gzip => "gzip",
    };
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "tar --posix -cf - -P -C \"$WS\" --files-from \"$MANIFEST\" | {compressor}"
        ))
        .env("WS", ws)
        .env("MANIFEST", manifest_file.path())
        .output()
        .expect("GNU tar and zstd must be installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `zstd -d | tar -xf - -P -C $WS` (or `gzip -d`), as actions/cache extracts.
fn gnu_extract(ws: &Path, compression: Compression, archive: &[u8]) {
    let decompressor = match compression {
        Compression::Zstd => "zstd -d",
        Compression::Gzip => "gzip -d",
    };
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("{decompressor} | tar -xf - -P -C \"$WS\""))
        .env("WS", ws)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "GNU tar could not extract our archive"
    );
}

fn import(store: &Path, key: &str, version: &str, compression: Compression, archive: &[u8]) {
    let store = LocalStore::new(store);
    let Reservation::Created(mut upload) = store
        .create(&NewEntry::new(key, version, compression))
        .unwrap()
    else {
        panic!("entry exists already");
    };
    upload.write_all(archive).unwrap();
    upload.finish().unwrap();
}

fn export(store: &Path, key: &str, version: &str) -> Vec<u8> {
    let store = LocalStore::new(store);
    let query = Query {
        key: key.into(),
        restore_keys: vec![],
        version: version.into(),
    };
    let Lookup::Found(hit) = store.lookup(&query).unwrap() else {
        panic!("no entry {key}")
    };
    let mut bytes = Vec::new();
    store.open(&hit).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn archives_made_by_gnu_tar_and_zstd_restore_identically() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let sb = Sandbox::new();
        let inside = sb.ws().join("data");
        let outside = sb.home().join(".cache/uv");
        tree(&inside);
        tree(&outside);
        let (before_inside, before_outside) = (snapshot(&inside), snapshot(&outside));
        // actions/cache's manifest: resolved paths relative to the workspace, joined by \n.
        let archive = gnu_archive(&sb.ws(), "data\n../home/.cache/uv", compression);
        let lines = vec!["data".to_string(), "~/.cache/uv".to_string()];
        import(
            &sb.store(),
            "gnu",
            &entry_version(&lines, compression),
            compression,
            &archive,
        );
        std::fs::remove_dir_all(&inside).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();

        sb.ok(&[
            "restore",
            "--path",
            "data",
            "--path",
            "~/.cache/uv",
            "--key",
            "gnu",
            "--compression",
            &compression.to_string(),
        ]);
        assert_same_tree(&before_inside, &snapshot(&inside));
        assert_same_tree(&before_outside, &snapshot(&outside));
        let a = std::fs::metadata(inside.join("links/first")).unwrap();
        let b = std::fs::metadata(inside.join("links/second")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&a),
            std::os::unix::fs::MetadataExt::ino(&b),
            "hard link kept"
        );
    }
}

#[test]
fn archives_made_by_cache_heal_extract_identically_with_gnu_tar() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let sb = Sandbox::new();
        let inside = sb.ws().join("data");
        let outside = sb.home().join(".cache/uv");
        tree(&inside);
        tree(&outside);
        let (before_inside, before_outside) = (snapshot(&inside), snapshot(&outside));
        sb.ok(&[
            "save",
            "--path",
            "data",
            "--path",
            "~/.cache/uv",
            "--key",
            "ours",
            "--compression",
            &compression.to_string(),
        ]);
        let lines = vec!["data".to_string(), "~/.cache/uv".to_string()];
        let archive = export(&sb.store(), "ours", &entry_version(&lines, compression));
        std::fs::remove_dir_all(&inside).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();

        gnu_extract(&sb.ws(), compression, &archive);
        assert_same_tree(&before_inside, &snapshot(&inside));
        assert_same_tree(&before_outside, &snapshot(&outside));
        let a = std::fs::metadata(outside.join("links/first")).unwrap();
        let b = std::fs::metadata(outside.join("links/second")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&a),
            std::os::unix::fs::MetadataExt::ino(&b),
            "hard link kept"
        );
    }
}

#[test]
fn gnu_tar_lists_our_members_with_actions_cache_names() {
    let sb = Sandbox::new();
    tree(&sb.home().join(".cache/uv"));
    // In Actions `GITHUB_WORKSPACE` is set, and names are relative to it.
    let saved = sb
        .cmd()
        .env("GITHUB_WORKSPACE", sb.ws())
        .args(["save", "--path", "~/.cache/uv", "--key", "names"])
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", support::stderr(&saved));
    let archive = export(
        &sb.store(),
        "names",
        &entry_version(&["~/.cache/uv".to_string()], Compression::Zstd),
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg("zstd -d | tar -tf - -P")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let out = child.wait_with_output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.lines().any(|l| l == "../home/.cache/uv/"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l == "../home/.cache/uv/ünïcode/名前.txt"),
        "{listing}"
    );
    run_checked(Command::new("zstd").arg("--version"));
}

/// `--compression-level auto` changes the zstd level inside one frame as it goes (into a local
/// store it steps down from 3 to 1); GNU zstd and tar must read such a stream like any other.
#[test]
fn an_archive_whose_zstd_level_changed_midway_extracts_with_gnu_tar() {
    let sb = Sandbox::new();
    let data = sb.ws().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // 48 MiB of compressible text in 2 MiB files: three decisions of the level governor.
    let mut state = 7u64;
    for i in 0..24 {
        let text: String = (0..700_000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                ["def ", "self", "numpy", " = ", "\n", "return"][(state >> 60) as usize % 6]
            })
            .collect::<String>();
        std::fs::write(data.join(format!("m{i}.py")), &text.as_bytes()[..2 << 20]).unwrap();
    }
    let before = snapshot(&data);
    let out = sb.ok(&["--json", "save", "--path", "data", "--key", "auto"]);
    let result = support::stdout_json(&out);
    let levels: Vec<i64> = result["compression_levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_i64().unwrap())
        .collect();
    assert_eq!(levels.first(), Some(&3), "{result}");
    assert!(levels.len() >= 2, "the level never changed: {result}");
    let lines = vec!["data".to_string()];
    let archive = export(
        &sb.store(),
        "auto",
        &entry_version(&lines, Compression::Zstd),
    );
    std::fs::remove_dir_all(&data).unwrap();
    gnu_extract(&sb.ws(), Compression::Zstd, &archive);
    assert_same_tree(&before, &snapshot(&data));
}

#[test]
fn a_compression_level_out_of_range_is_a_usage_error() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.ws().join("data")).unwrap();
    let out = sb.run(&[
        "save",
        "--path",
        "data",
        "--key",
        "k",
        "--compression",
        "gzip",
        "--compression-level",
        "12",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert!(
        err.contains("compression level 12 is out of range for gzip: use 1 to 9"),
        "{err}"
    );
    assert!(support::list_all(&sb.store()).is_empty(), "nothing saved");
}
