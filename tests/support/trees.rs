//! The two-path tree the store tests save and restore: `data` inside the workspace and
//! `~/.cache/uv` outside it (as a uv cache sits), each holding what a package cache holds:
//! nested files, an executable, a symlink and an empty directory.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::{Node, Sandbox, snapshot};

/// The path lines, as a test passes them to `--path`.
pub const PATHS: [&str; 2] = ["data", "~/.cache/uv"];

/// Both trees, in `PATHS` order.
pub type Trees = Vec<BTreeMap<String, Node>>;

/// Writes both trees; `seed` makes their content differ between entries, and `body` is the
/// content of the one large file (vary it so that compressed bytes sit mid-archive).
pub fn fill_with(sandbox: &Sandbox, seed: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    for root in [sandbox.ws().join("data"), sandbox.home().join(".cache/uv")] {
        std::fs::create_dir_all(root.join("wheels/pkg-1.0")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(
            root.join("wheels/pkg-1.0/METADATA"),
            format!("Name: pkg {seed}\n"),
        )
        .unwrap();
        std::fs::write(root.join("wheels/pkg-1.0/mod.py"), body).unwrap();
        let tool = root.join("tool.sh");
        std::fs::write(&tool, format!("#!/bin/sh\necho {seed}\n")).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("wheels/pkg-1.0/mod.py", root.join("link.py")).unwrap();
    }
}

pub fn snapshots(sandbox: &Sandbox) -> Trees {
    vec![
        snapshot(&sandbox.ws().join("data")),
        snapshot(&sandbox.home().join(".cache/uv")),
    ]
}

pub fn remove_trees(sandbox: &Sandbox) {
    let _ = std::fs::remove_dir_all(sandbox.ws().join("data"));
    let _ = std::fs::remove_dir_all(sandbox.home().join(".cache/uv"));
}

/// Symlinks (relative, absolute, dangling), empty directories, modes and unicode names.
pub fn awkward_tree(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("archive-v0/abc/pkg/__init__.py", b"print('hi')\n");
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
    w("private", b"mode 600");
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Several MiB that do not compress, so the archive spans more than one multipart part.
pub fn incompressible(root: &Path, mib: usize) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..(mib << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("blob.bin"), data).unwrap();
}

/// Fills `ws/cache` with [`awkward_tree`], saves it under `key` with `cmd()`, deletes it and
/// restores it, checking each command's JSON status ("saved", then "exact") and that the tree
/// came back the same; returns both outputs (to search them for what must not be printed).
pub fn save_and_restore(
    sb: &super::Sandbox,
    key: &str,
    cmd: impl Fn() -> std::process::Command,
) -> Vec<std::process::Output> {
    let tree = sb.ws().join("cache");
    awkward_tree(&tree);
    let before = super::snapshot(&tree);
    let mut outputs = Vec::new();
    for (command, expected) in [("save", "saved"), ("restore", "exact")] {
        if command == "restore" {
            std::fs::remove_dir_all(&tree).unwrap();
        }
        let out = cmd()
            .args([command, "--json", "--path", "cache", "--key", key])
            .output()
            .unwrap();
        let err = super::stderr(&out);
        assert!(out.status.success(), "{command}: {err}");
        assert_eq!(super::stdout_json(&out)["status"], expected, "{err}");
        outputs.push(out);
    }
    super::assert_same_tree(&before, &super::snapshot(&tree));
    outputs
}
