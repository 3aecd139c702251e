//! A damaged entry is a warned miss, from any store (issue 12): a restore whose archive turns
//! out truncated, corrupt (zstd, gzip or tar framing), of the wrong size or failing its digest
//! writes nothing, leaves the paths exactly as they were, warns that the entry is damaged (not
//! that there is none), and exits 0, or 1 with `--fail-on-cache-miss`. The self-hosted profile
//! has its own cases in `tests/selfhosted.rs`; here are GitHub's profile (Azurite behind the
//! test cache service) and the local store (`dir:`). Hostile archives stay errors
//! (`tests/hostile.rs`).
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use support::gha::{CacheService, cache_heal, token};
use support::trees::{self, PATHS, snapshots};
use support::{Sandbox, stderr, stdout_json};

fn fill(sandbox: &Sandbox, seed: &str) {
    // Enough varied content that the middle of the archive is inside compressed data.
    let body: String = (0..20_000).map(|i| format!("{seed}{i} ")).collect();
    trees::fill_with(sandbox, seed, &body);
}

/// Where a test runs cache-heal: the GitHub profile of the test service, or a local store.
enum Target {
    GitHub(CacheService),
    Local,
}

impl Target {
    fn cmd(&self, sandbox: &Sandbox, args: &[&str]) -> Command {
        let mut cmd = match self {
            Target::GitHub(service) => {
                cache_heal(sandbox, service, &token(&[("refs/heads/main", 3)]))
            }
            Target::Local => {
                let mut cmd = sandbox.cmd();
                cmd.env("CACHE_HEAL_NO_PROGRESS", "true");
                cmd
            }
        };
        cmd.args(args).arg("--json");
        for p in PATHS {
            cmd.args(["--path", p]);
        }
        cmd
    }

    fn run(&self, sandbox: &Sandbox, args: &[&str]) -> Output {
        self.cmd(sandbox, args).output().expect("run cache-heal")
    }

    /// Saves `key` from fresh content; the sandbox then holds other content ("previous").
    fn saved(&self, key: &str, extra: &[&str]) -> Sandbox {
        let sandbox = Sandbox::new();
        fill(&sandbox, key);
        let out = self.run(&sandbox, &[&["save", "--key", key][..], extra].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout_json(&out)["status"], "saved");
        for root in [sandbox.ws().join("data"), sandbox.home().join(".cache/uv")] {
            std::fs::remove_dir_all(root).unwrap();
        }
        fill(&sandbox, "previous");
        sandbox
    }

    /// Rewrites the stored archive of `key`.
    fn damage(&self, sandbox: &Sandbox, key: &str, change: impl FnOnce(&mut Vec<u8>)) {
        match self {
            Target::GitHub(service) => service.damage(key, change),
            Target::Local => {
                let path = local_archive(sandbox);
                let mut bytes = std::fs::read(&path).unwrap();
                change(&mut bytes);
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
}

/// The one archive in the sandbox's local store.
fn local_archive(sandbox: &Sandbox) -> PathBuf {
    let archives: Vec<PathBuf> = std::fs::read_dir(sandbox.store().join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "json"))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    archives.into_iter().next().unwrap()
}

/// Restores `key` expecting a warned miss for a damaged entry: exit 0, `fragments` in the
/// warning, the report's failure saying "damaged entry", the paths unchanged, nothing left
/// behind; then again with `--fail-on-cache-miss`: exit 1, the paths still unchanged.
fn assert_damaged_miss(target: &Target, sandbox: &Sandbox, key: &str, fragments: &[&str]) {
    let before = snapshots(sandbox);
    let out = target.run(sandbox, &["restore", "--key", key]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a damaged entry is a miss:\n{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: Did not restore `{key}`: the entry is damaged"
        )),
        "{err}"
    );
    assert!(
        err.contains("unchanged; continuing with an empty cache"),
        "{err}"
    );
    for fragment in fragments {
        assert!(err.contains(fragment), "expected `{fragment}` in:\n{err}");
    }
    assert!(
        !err.contains("No cache entry"),
        "not reported as no entry:\n{err}"
    );
    let json = stdout_json(&out);
    assert_eq!(json["status"], "miss", "{json}");
    assert!(json["miss"]["kind"] == "damaged-entry", "{json}");
    assert_eq!(before, snapshots(sandbox), "the paths changed:\n{err}");
    let leftovers: Vec<String> = support::list_all(&sandbox.ws())
        .into_iter()
        .chain(support::list_all(&sandbox.home().join(".cache")))
        .filter(|p| p.contains(".cache-heal"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    let out = target.run(sandbox, &["restore", "--key", key, "--fail-on-cache-miss"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(before, snapshots(sandbox), "the paths changed:\n{err}");
    match target {
        // GitHub's service cannot delete: the entry stays damaged until it ages out.
        Target::GitHub(_) => assert!(err.contains("damaged entry"), "{err}"),
        // The local store put the entry aside, so it is gone and the key can be saved anew.
        Target::Local => {
            assert!(err.contains("No cache entry"), "{err}");
            let aside = support::list_all(&sandbox.store().join("entries"));
            assert!(
                aside.iter().any(|name| name.contains(".json.damaged-")),
                "{aside:?}"
            );
            let saved = target.run(sandbox, &["save", "--key", key]);
            assert_eq!(stdout_json(&saved)["status"], "saved", "{}", stderr(&saved));
        }
    }
}

fn truncate_half(bytes: &mut Vec<u8>) {
    bytes.truncate(bytes.len() / 2);
}

#[allow(clippy::ptr_arg)] // a `damage` callback takes the whole buffer
fn flip_middle(bytes: &mut Vec<u8>) {
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0b0101_0101;
    }
}

/// A valid zstd stream around a tar whose first header's checksum no longer matches.
fn break_tar_header(bytes: &mut Vec<u8>) {
    let mut tar = Vec::new();
    zstd::Decoder::new(&bytes[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    // Find the first ustar header and change its mode field.
    let header = tar
        .windows(5)
        .position(|w| w == b"ustar")
        .expect("a ustar header")
        - 257;
    tar[header + 100] = b'7';
    tar[header + 101] = b'7';
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(&tar).unwrap();
    *bytes = encoder.finish().unwrap();
}

fn github() -> Target {
    Target::GitHub(CacheService::start())
}

#[test]
fn github_truncated_archive() {
    let target = github();
    let sandbox = target.saved("gh-trunc", &[]);
    target.damage(&sandbox, "gh-trunc", truncate_half);
    assert_damaged_miss(&target, &sandbox, "gh-trunc", &["the archive is truncated"]);
}

#[test]
fn github_corrupt_zstd() {
    let target = github();
    let sandbox = target.saved("gh-zstd", &[]);
    target.damage(&sandbox, "gh-zstd", flip_middle);
    assert_damaged_miss(&target, &sandbox, "gh-zstd", &["the archive is corrupt"]);
}

#[test]
fn github_corrupt_gzip() {
    let target = github();
    let sandbox = target.saved("gh-gzip", &["--compression", "gzip"]);
    target.damage(&sandbox, "gh-gzip", flip_middle);
    let before = snapshots(&sandbox);
    let out = target.run(
        &sandbox,
        &["restore", "--key", "gh-gzip", "--compression", "gzip"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Did not restore `gh-gzip`: the entry is damaged"),
        "{err}"
    );
    assert_eq!(before, snapshots(&sandbox), "{err}");
}

#[test]
fn github_broken_tar_framing() {
    let target = github();
    let sandbox = target.saved("gh-tar", &[]);
    target.damage(&sandbox, "gh-tar", break_tar_header);
    assert_damaged_miss(&target, &sandbox, "gh-tar", &["the archive is corrupt"]);
}

/// The entry is listed, its blob is gone: Azure's 404, named as such.
#[test]
fn github_archive_that_is_gone() {
    let target = github();
    let sandbox = target.saved("gh-gone", &[]);
    let Target::GitHub(service) = &target else {
        unreachable!()
    };
    service.lose_archive("gh-gone");
    assert_damaged_miss(
        &target,
        &sandbox,
        "gh-gone",
        &["the entry `gh-gone` is listed but its archive is gone (HTTP 404 from the server"],
    );
}

#[test]
fn local_truncated_archive_has_the_wrong_size() {
    let target = Target::Local;
    let sandbox = target.saved("lo-trunc", &[]);
    target.damage(&sandbox, "lo-trunc", truncate_half);
    assert_damaged_miss(
        &target,
        &sandbox,
        "lo-trunc",
        &["bytes, but its entry recorded"],
    );
}

#[test]
fn local_corrupt_archive() {
    let target = Target::Local;
    let sandbox = target.saved("lo-zstd", &[]);
    target.damage(&sandbox, "lo-zstd", flip_middle);
    assert_damaged_miss(&target, &sandbox, "lo-zstd", &["reading "]);
}

/// A valid archive that is not the one the entry recorded: only the digest tells.
#[test]
fn local_archive_failing_its_digest() {
    let target = Target::Local;
    let sandbox = target.saved("lo-sha", &[]);
    let meta_path = std::fs::read_dir(sandbox.store().join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["sha256"] = "0".repeat(64).into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    assert_damaged_miss(
        &target,
        &sandbox,
        "lo-sha",
        &["does not match the sha256 its entry recorded"],
    );
}

#[test]
fn local_archive_that_is_gone() {
    let target = Target::Local;
    let sandbox = target.saved("lo-gone", &[]);
    std::fs::remove_file(local_archive(&sandbox)).unwrap();
    assert_damaged_miss(
        &target,
        &sandbox,
        "lo-gone",
        &["the entry `lo-gone` is listed but its archive"],
    );
}

/// In Actions, the step summary says the entry was damaged (not that there was none), and the
/// outputs are a miss's: `cache-status` is `miss`, `cache-hit` unset.
#[test]
fn the_step_summary_says_damaged_entry() {
    let target = Target::Local;
    let sandbox = target.saved("lo-summary", &[]);
    target.damage(&sandbox, "lo-summary", truncate_half);
    let summary = sandbox.root().join("summary.md");
    let outputs = sandbox.root().join("outputs.txt");
    let out = target
        .cmd(&sandbox, &["restore", "--key", "lo-summary"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("damaged entry: "), "{summary}");
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        outputs.contains("cache-status<<") && outputs.contains("\nmiss\n"),
        "{outputs}"
    );
    assert!(!outputs.contains("cache-hit"), "{outputs}");
}

/// A metadata file of the local store that cannot be read is put aside with a warning: it
/// never hides the other entries, `inspect` still lists them, and its key can be saved anew.
#[test]
fn local_broken_metadata_hides_no_other_entry() {
    let target = Target::Local;
    let sandbox = target.saved("lo-broken", &[]);
    trees::remove_trees(&sandbox);
    fill(&sandbox, "other");
    let out = target.run(&sandbox, &["save", "--key", "lo-other"]);
    assert_eq!(stdout_json(&out)["status"], "saved", "{}", stderr(&out));
    let entries = sandbox.store().join("entries");
    let broken = std::fs::read_dir(&entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(p)
                    .unwrap()
                    .contains("\"lo-broken\"")
        })
        .expect("the metadata of lo-broken");
    std::fs::write(&broken, "{ not json").unwrap();

    let listed = sandbox.run(&["inspect", "--json"]);
    let err = stderr(&listed);
    assert_eq!(listed.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Skipped a broken entry of the local store"),
        "{err}"
    );
    let keys: Vec<String> = stdout_json(&listed)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["lo-other"]);
    assert!(broken.with_extension("json.broken").exists());

    trees::remove_trees(&sandbox);
    let out = target.run(&sandbox, &["restore", "--key", "lo-other"]);
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
    let out = target.run(&sandbox, &["save", "--key", "lo-broken"]);
    assert_eq!(stdout_json(&out)["status"], "saved", "{}", stderr(&out));
}
