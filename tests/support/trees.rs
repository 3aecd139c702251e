//! The two-path tree the store tests save and restore: `data` inside the workspace and
//! `~/.cache/uv` outside it (as a uv cache sits), each holding what a package cache holds:
//! nested files, an executable, a symlink and an empty directory.

use std::collections::BTreeMap;

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
