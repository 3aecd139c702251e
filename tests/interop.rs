//! Interop with the exact commands actions/cache runs (toolkit `internal/tar.ts`):
//! archives made by GNU tar + zstd restore identically with cache-heal, and archives made by
//! cache-heal extract identically with `zstd -d | tar -xf - -P -C $WORKSPACE`. cache-heal
//! writes zstd as many independent frames; GNU zstd, GNU tar and `@actions/cache` must read
//! them as the one stream they are.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::key::{Compression, entry_version};
use cache_heal::store::{Lookup, NewEntry, Query, Reservation, Store, local::LocalStore};
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use support::gha::{CacheService, cache_heal, node, token};
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

/// `len` bytes of Python-like text, different for each `seed`: compresses about 4:1.
fn compressible(path: &Path, len: usize, seed: u64) {
    let mut state = seed;
    let mut text = Vec::with_capacity(len + 16);
    while text.len() < len {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        let word = [
            "def ", "self", "numpy", " = ", "\n", "return", "(x)", "import ",
        ];
        text.extend_from_slice(word[(state >> 61) as usize].as_bytes());
        text.extend_from_slice(format!("{}", (state >> 40) % 97).as_bytes());
    }
    text.truncate(len);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The zstd frames in `archive`, counted by libzstd (not by cache-heal's own splitter).
fn zstd_frames(archive: &[u8]) -> usize {
    let mut frames = 0;
    let mut at = 0;
    while at < archive.len() {
        let len = zstd::zstd_safe::find_frame_compressed_size(&archive[at..])
            .unwrap_or_else(|e| panic!("no zstd frame at byte {at}: error {e}"));
        if archive[at..].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            frames += 1;
        }
        at += len;
    }
    frames
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

/// An archive of several frames made by cache-heal extracts with `zstd -d | tar -x` into the
/// same tree, and restores with cache-heal (decoding its frames in parallel) into it too.
#[test]
fn a_multi_frame_archive_extracts_with_gnu_zstd_and_tar() {
    let sb = Sandbox::new();
    let data = sb.ws().join("data");
    tree(&data);
    for i in 0..3 {
        compressible(&data.join(format!("wheels/big-{i}.so")), 9 << 20, i);
    }
    let before = snapshot(&data);
    sb.ok(&["save", "--path", "data", "--key", "frames"]);
    let lines = vec!["data".to_string()];
    let archive = export(
        &sb.store(),
        "frames",
        &entry_version(&lines, Compression::Zstd),
    );
    // 27 MiB and more of tar in frames of 4 MiB of input.
    let frames = zstd_frames(&archive);
    assert!(frames >= 7, "only {frames} zstd frames");

    std::fs::remove_dir_all(&data).unwrap();
    gnu_extract(&sb.ws(), Compression::Zstd, &archive);
    assert_same_tree(&before, &snapshot(&data));

    std::fs::remove_dir_all(&data).unwrap();
    sb.ok(&["restore", "--path", "data", "--key", "frames"]);
    assert_same_tree(&before, &snapshot(&data));
}

/// A damaged frame in the middle of a cache-heal archive is a warned miss that names the frame
/// and its offset, and leaves the path as it was.
#[test]
fn a_corrupt_frame_is_named_and_nothing_is_restored() {
    let sb = Sandbox::new();
    let data = sb.ws().join("data");
    for i in 0..2 {
        compressible(&data.join(format!("big-{i}.so")), 9 << 20, 20 + i);
    }
    sb.ok(&["save", "--path", "data", "--key", "good"]);
    let version = entry_version(&["data".to_string()], Compression::Zstd);
    let mut archive = export(&sb.store(), "good", &version);
    let mut starts = vec![0];
    while *starts.last().unwrap() < archive.len() {
        let at = *starts.last().unwrap();
        starts.push(at + zstd::zstd_safe::find_frame_compressed_size(&archive[at..]).unwrap());
    }
    assert!(starts.len() > 4, "{} frames", starts.len() - 1);
    // Well inside the third frame's blocks.
    archive[(starts[2] + starts[3]) / 2] ^= 0x5a;
    import(&sb.store(), "bad", &version, Compression::Zstd, &archive);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("old.txt"), b"before").unwrap();
    let before = snapshot(&data);

    // A damaged entry is a warned miss (exit 0): the build works without a cache.
    let out = sb.run(&["restore", "--path", "data", "--key", "bad"]);
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("the entry is damaged"), "{err}");
    assert!(
        err.contains(&format!(
            "zstd frame 3 (at byte {}) does not decode",
            starts[2]
        )),
        "{err}"
    );
    assert_same_tree(&before, &snapshot(&data));
    let leftovers: Vec<_> = std::fs::read_dir(sb.ws())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "data")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// The archive of an entry in the GitHub store, fetched as a client does: a download URL from
/// the cache service, then a GET of the blob.
fn download_from_github(service: &CacheService, token: &str, key: &str, version: &str) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let answer: serde_json::Value = client
            .post(format!(
                "{}twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL",
                service.url
            ))
            .bearer_auth(token)
            .json(&serde_json::json!({"key": key, "restore_keys": [], "version": version}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = answer["signed_download_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no entry `{key}`: {answer}"));
        let blob = client.get(url).send().await.unwrap();
        assert!(blob.status().is_success(), "GET blob: {}", blob.status());
        blob.bytes().await.unwrap().to_vec()
    })
}

/// An archive of several frames saved by cache-heal into the GitHub store restores with
/// `@actions/cache` restoreCache, which pipes it through `zstd -d` and GNU tar.
#[test]
fn a_multi_frame_archive_restores_with_actions_cache() {
    let service = CacheService::start();
    let sb = Sandbox::new();
    let token = token(&[("refs/heads/main", 3)]);
    let data = sb.ws().join("data");
    tree(&data);
    for i in 0..3 {
        compressible(&data.join(format!("wheels/big-{i}.so")), 9 << 20, 10 + i);
    }
    let before = snapshot(&data);
    let saved = cache_heal(&sb, &service, &token)
        .args(["save", "--path", "data", "--key", "frames-gha"])
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", support::stderr(&saved));
    let archive = download_from_github(
        &service,
        &token,
        "frames-gha",
        &entry_version(&["data".to_string()], Compression::Zstd),
    );
    let frames = zstd_frames(&archive);
    assert!(frames >= 7, "only {frames} zstd frames");

    std::fs::remove_dir_all(&data).unwrap();
    let restored = node(
        &sb,
        &service,
        &token,
        "restore",
        &serde_json::json!({"key": "frames-gha", "paths": ["data"]}),
    );
    assert_eq!(
        restored.result["matched_key"],
        "frames-gha",
        "{}",
        String::from_utf8_lossy(&restored.output.stdout)
    );
    assert_same_tree(&before, &snapshot(&data));
}

/// `--compression-level auto` changes the zstd level at frame boundaries as it goes (into a
/// local store it steps down from 3 to 1); GNU zstd and tar must read such a stream like any
/// other.
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
    assert!(zstd_frames(&archive) >= 12, "48 MiB in frames of 4 MiB");
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
