//! Shared test helpers: a sandbox per test (workspace, home, store), a way to run the real
//! binary inside it, and a snapshot of a tree (path, type, mode, size, content hash, link
//! target) to compare restored trees with saved ones.
#![allow(dead_code)]

pub mod azure;
pub mod gha;
pub mod s3;
pub mod served;
pub mod trees;

use sha2::{Digest, Sha256};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cache-heal"))
}

/// A fresh directory tree for one test: `ws/` (the workspace and current directory),
/// `home/` (`HOME`), `store/` (the local store) and `outside/` (a place no restore may write).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cache-heal-test-")
            .tempdir()
            .expect("temp dir");
        for sub in ["ws", "home", "store", "outside"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn ws(&self) -> PathBuf {
        self.root().join("ws")
    }
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    pub fn store(&self) -> PathBuf {
        self.root().join("store")
    }
    pub fn outside(&self) -> PathBuf {
        self.root().join("outside")
    }

    /// `cache-heal` with the sandbox's directories and none of the caller's cache-heal or
    /// Actions variables.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.ws())
            .env("HOME", self.home())
            .env(
                "CACHE_HEAL_STORE",
                format!("dir:{}", self.store().display()),
            )
            .env_remove("GITHUB_WORKSPACE")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("ACTIONS_RUNTIME_TOKEN")
            .env_remove("ACTIONS_RESULTS_URL");
        cmd
    }

    /// Runs `cache-heal ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run cache-heal")
    }

    /// Runs `cache-heal ARGS`, failing the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cache-heal {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// One node of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        target: PathBuf,
    },
}

/// Every path below `root` (relative, `/`-separated) with type, mode, size, content hash and
/// link target. Symlinks are not followed.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    let mut nodes = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.expect("walk");
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = entry.path().symlink_metadata().unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Symlink {
                target: std::fs::read_link(entry.path()).unwrap(),
            }
        } else if meta.is_dir() {
            Node::Dir { mode }
        } else {
            let data = std::fs::read(entry.path()).unwrap();
            Node::File {
                mode,
                size: meta.len(),
                sha256: hex::encode(Sha256::digest(&data)),
            }
        };
        nodes.insert(if rel.is_empty() { ".".into() } else { rel }, node);
    }
    nodes
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same_tree(expected: &BTreeMap<String, Node>, actual: &BTreeMap<String, Node>) {
    for (path, node) in expected {
        assert_eq!(
            Some(node),
            actual.get(path),
            "restored tree differs at `{path}`"
        );
    }
    for path in actual.keys() {
        assert!(
            expected.contains_key(path),
            "restored tree has extra `{path}`"
        );
    }
}

/// Names of everything below `dir`, for "nothing was created" checks.
pub fn list_all(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}
pub mod uv;
