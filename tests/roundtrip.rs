//! Save then restore with the real binary: the restored tree equals the saved one in path,
//! type, mode, size, content and link target.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use support::{Sandbox, assert_same_tree, snapshot, stdout_json};

/// A tree shaped like a uv cache plus the awkward cases: relative symlinks across sibling
/// directories, an absolute symlink, empty directories, executable bits, unicode names, a
/// 0-byte file, a read-only directory.
fn awkward_tree(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("archive-v0/abc/pkg/__init__.py", b"print('hi')\n");
    w(
        "archive-v0/abc/pkg-1.0.dist-info/RECORD",
        b"pkg/__init__.py,,\n",
    );
    w("archive-v0/abc/bin/tool", b"#!/bin/sh\necho tool\n");
    std::fs::set_permissions(
        root.join("archive-v0/abc/bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("wheels-v5/pypi/pkg")).unwrap();
    symlink(
        "../../../archive-v0/abc",
        root.join("wheels-v5/pypi/pkg/pkg-1.0-py3-none-any"),
    )
    .unwrap();
    symlink("/usr/bin/python3", root.join("python")).unwrap();
    symlink("does-not-exist", root.join("dangling")).unwrap();
    std::fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    w("unicodé/naïve-файл-名前.txt", "ünïcödé content".as_bytes());
    w("zero-bytes", b"");
    w(
        &format!("{}/long-name-file", "d".repeat(120)),
        b"a name longer than 100 bytes",
    );
    w("readonly/inside", b"x");
    std::fs::set_permissions(
        root.join("readonly/inside"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("readonly"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
}

fn make_writable(root: &Path) {
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        if entry.file_type().is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn restored_tree_equals_saved_tree_inside_and_outside_the_workspace() {
    for compression in ["zstd", "gzip"] {
        let sb = Sandbox::new();
        let inside = sb.ws().join("data");
        let outside = sb.home().join(".cache/uv");
        awkward_tree(&inside);
        awkward_tree(&outside);
        let before_inside = snapshot(&inside);
        let before_outside = snapshot(&outside);
        let args = [
            "--path",
            "data",
            "--path",
            "~/.cache/uv",
            "--key",
            "k-1",
            "--compression",
            compression,
        ];

        let saved = stdout_json(&sb.ok(&[&["save", "--json"][..], &args].concat()));
        assert_eq!(saved["status"], "saved");
        assert_eq!(saved["files"], 14);

        make_writable(&inside);
        make_writable(&outside);
        std::fs::remove_dir_all(&inside).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();

        let restored = stdout_json(&sb.ok(&[&["restore", "--json"][..], &args].concat()));
        assert_eq!(restored["status"], "exact", "{compression}");
        assert_eq!(restored["matched_key"], "k-1");
        assert_same_tree(&before_inside, &snapshot(&inside));
        assert_same_tree(&before_outside, &snapshot(&outside));
        make_writable(&inside);
        make_writable(&outside);
    }
}

#[test]
fn a_file_over_100_mb_round_trips() {
    let sb = Sandbox::new();
    let big = sb.ws().join("big");
    std::fs::create_dir_all(&big).unwrap();
    // Incompressible-ish content so the archive is large too: a cheap xorshift stream.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..(105 << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(big.join("blob.bin"), &data).unwrap();
    let before = snapshot(&big);
    sb.ok(&["save", "--path", "big", "--key", "big"]);
    std::fs::remove_dir_all(&big).unwrap();
    sb.ok(&["restore", "--path", "big", "--key", "big"]);
    assert_same_tree(&before, &snapshot(&big));
}

#[test]
fn restore_replaces_the_previous_content_of_a_path() {
    let sb = Sandbox::new();
    let dir = sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("saved.txt"), b"saved").unwrap();
    sb.ok(&["save", "--path", "cache", "--key", "k"]);
    std::fs::write(dir.join("stale.txt"), b"stale").unwrap();
    std::fs::write(dir.join("saved.txt"), b"changed").unwrap();
    sb.ok(&["restore", "--path", "cache", "--key", "k"]);
    assert_eq!(std::fs::read(dir.join("saved.txt")).unwrap(), b"saved");
    assert!(!dir.join("stale.txt").exists());
    let leftovers: Vec<_> = support::list_all(&sb.ws())
        .into_iter()
        .filter(|p| p.contains(".cache-heal-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging or backup left behind: {leftovers:?}"
    );
}

#[test]
fn globs_and_excludes_choose_what_is_saved() {
    let sb = Sandbox::new();
    for pkg in ["a", "b"] {
        let nm = sb.ws().join(format!("packages/{pkg}/node_modules"));
        std::fs::create_dir_all(nm.join("dep")).unwrap();
        std::fs::write(nm.join("dep/index.js"), pkg).unwrap();
        std::fs::write(nm.join("secret.txt"), "no").unwrap();
    }
    let paths = "packages/*/node_modules\n!packages/*/node_modules/secret.txt";
    sb.ok(&["save", "--path", paths, "--key", "g"]);
    std::fs::remove_dir_all(sb.ws().join("packages")).unwrap();
    sb.ok(&["restore", "--path", paths, "--key", "g"]);
    assert_eq!(
        std::fs::read_to_string(sb.ws().join("packages/b/node_modules/dep/index.js")).unwrap(),
        "b"
    );
    assert!(!sb.ws().join("packages/a/node_modules/secret.txt").exists());
}
