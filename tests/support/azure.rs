//! The Azure Blob peers: Azurite (the one [`gha::azurite`] starts for this test process, on
//! 127.0.0.1) as the service, and Microsoft's `@azure/storage-blob` (`tests/node/azure-peer.mjs`)
//! as the other client, both from `tests/node/node_modules` (`scripts/install-test-deps.sh`).

use std::path::Path;
use std::process::Command;

use super::gha::{self, ACCOUNT, azurite, node_dir};

/// The account's blob endpoint, as `--az-endpoint` and connection strings name it.
pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}/{ACCOUNT}", azurite().port)
}

/// Runs `node azure-peer.mjs ENDPOINT ARGS` and returns its stdout, failing the test if it
/// fails.
pub fn peer(args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(node_dir().join("azure-peer.mjs"))
        .arg(endpoint())
        .args(args)
        .current_dir(node_dir())
        .output()
        .expect("run node azure-peer.mjs");
    assert!(
        out.status.success(),
        "node azure-peer.mjs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Creates a container (Azurite keeps them in memory for this test process) and returns its
/// name.
pub fn container(name: &str) -> String {
    peer(&["create", name]);
    name.to_string()
}

/// The committed blobs in a container.
pub fn blobs(container: &str) -> Vec<String> {
    peer(&["list", container])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Blobs that have uncommitted blocks only (an upload that was never committed).
pub fn uncommitted(container: &str) -> Vec<String> {
    peer(&["uncommitted", container])
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn download(container: &str, blob: &str, file: &Path) {
    peer(&["download", container, blob, file.to_str().unwrap()]);
}

/// A container SAS valid for `minutes` (negative: expired that long ago).
pub fn sas(container: &str, minutes: i64) -> String {
    peer(&["sas", container, &minutes.to_string()])
        .trim()
        .to_string()
}

/// The development account's key (published, not a secret).
pub fn key() -> &'static str {
    gha::ACCOUNT_KEY
}
