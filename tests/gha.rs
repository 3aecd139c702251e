//! The GitHub Actions cache store against real parts: Azurite as the blob store, the test
//! cache service of `support::gha`, and the official `@actions/cache` client as the peer.
//! Entries must move both ways, restore keys must match as on GitHub, every fault must end in
//! success after a retry or in a clean miss, and no secret may reach the output.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::store::github::blob::BLOCK_SIZE;
use serde_json::json;

use std::process::Output;
use std::sync::atomic::Ordering;
use support::gha::{self, CacheService, cache_heal, node, token};
use support::trees::{self, PATHS, remove_trees, snapshots};
use support::{Sandbox, assert_same_tree, stderr, stdout_json};

fn main_token() -> String {
    token(&[("refs/heads/main", 3)])
}

fn fill(sandbox: &Sandbox, seed: &str) {
    trees::fill_with(sandbox, seed, &seed.repeat(500));
}

fn path_args() -> Vec<String> {
    PATHS
        .iter()
        .flat_map(|p| ["--path".to_string(), p.to_string()])
        .collect()
}

fn ch(sandbox: &Sandbox, service: &CacheService, token: &str, args: &[&str]) -> Output {
    let mut cmd = cache_heal(sandbox, service, token);
    cmd.args(args).args(path_args()).arg("--json");
    cmd.output().expect("run cache-heal")
}

fn ch_ok(
    sandbox: &Sandbox,
    service: &CacheService,
    token: &str,
    args: &[&str],
) -> serde_json::Value {
    let out = ch(sandbox, service, token, args);
    assert!(
        out.status.success(),
        "cache-heal {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout_json(&out)
}

fn node_save(sandbox: &Sandbox, service: &CacheService, token: &str, key: &str) -> i64 {
    let run = node(
        sandbox,
        service,
        token,
        "save",
        &json!({"key": key, "paths": PATHS}),
    );
    let id = run.result["cache_id"].as_i64().unwrap();
    if id <= 0 {
        // Shown when a test that expects a save fails, with what the client said.
        eprintln!(
            "@actions/cache saveCache({key}) returned {id}:\n{}\n{}",
            String::from_utf8_lossy(&run.output.stdout),
            String::from_utf8_lossy(&run.output.stderr)
        );
    }
    id
}

fn node_restore(
    sandbox: &Sandbox,
    service: &CacheService,
    token: &str,
    key: &str,
    restore_keys: &[&str],
) -> Option<String> {
    let run = node(
        sandbox,
        service,
        token,
        "restore",
        &json!({"key": key, "restore_keys": restore_keys, "paths": PATHS}),
    );
    run.result["matched_key"].as_str().map(str::to_string)
}

/// `@actions/cache` saveCache, then `cache-heal restore`: the same trees, inside and outside
/// the workspace.
#[test]
fn actions_cache_save_restores_with_cache_heal() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    let token = main_token();
    fill(&sandbox, "from-node");
    let expected = snapshots(&sandbox);
    assert!(node_save(&sandbox, &service, &token, "deps-linux-1") > 0);
    remove_trees(&sandbox);

    let result = ch_ok(
        &sandbox,
        &service,
        &token,
        &["restore", "--key", "deps-linux-1"],
    );
    assert_eq!(result["status"], "exact");
    for (expected, actual) in expected.iter().zip(snapshots(&sandbox)) {
        assert_same_tree(expected, &actual);
    }
}

/// `cache-heal save`, then `@actions/cache` restoreCache: the same trees.
#[test]
fn cache_heal_save_restores_with_actions_cache() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    let token = main_token();
    fill(&sandbox, "from-cache-heal");
    let expected = snapshots(&sandbox);
    let saved = ch_ok(
        &sandbox,
        &service,
        &token,
        &["save", "--key", "deps-linux-2"],
    );
    assert_eq!(saved["status"], "saved");
    let entry = &service.entries()[0];
    assert!(entry.finalized);
    assert_eq!(
        entry.size,
        saved["bytes"].as_u64().unwrap(),
        "finalized with the true size"
    );
    remove_trees(&sandbox);

    let matched = node_restore(&sandbox, &service, &token, "deps-linux-2", &[]);
    assert_eq!(matched.as_deref(), Some("deps-linux-2"));
    for (expected, actual) in expected.iter().zip(snapshots(&sandbox)) {
        assert_same_tree(expected, &actual);
    }
}

/// Both directions with archives over 128 MiB (where `@actions/cache` switches to blocks too):
/// Put Block in 4 MiB blocks and a Put Block List, and a multi-segment download.
#[test]
fn archives_over_128_mib_go_both_ways_in_blocks() {
    let service = CacheService::with_proxy();
    let sandbox = Sandbox::new();
    let token = main_token();
    fill(&sandbox, "big");
    gha::write_incompressible(&sandbox.ws().join("data/big.bin"), 150 << 20);
    gha::write_incompressible(&sandbox.home().join(".cache/uv/big2.bin"), 10 << 20);
    let expected = snapshots(&sandbox);

    // cache-heal → @actions/cache
    let saved = ch_ok(&sandbox, &service, &token, &["save", "--key", "big-1"]);
    assert_eq!(saved["status"], "saved", "{saved}");
    let bytes = saved["bytes"].as_u64().unwrap();
    assert!(bytes > 128 << 20);
    let log = service.log();
    assert_eq!(
        log.iter().filter(|l| *l == "PUT blob block").count() as u64,
        bytes.div_ceil(BLOCK_SIZE as u64),
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| *l == "PUT blob blocklist").count(),
        1,
        "{log:?}"
    );
    remove_trees(&sandbox);
    assert_eq!(
        node_restore(&sandbox, &service, &token, "big-1", &[]).as_deref(),
        Some("big-1")
    );
    for (expected, actual) in expected.iter().zip(snapshots(&sandbox)) {
        assert_same_tree(expected, &actual);
    }

    // @actions/cache → cache-heal
    service.clear_log();
    assert!(node_save(&sandbox, &service, &token, "big-2") > 0);
    assert!(
        service.log().iter().any(|l| l == "PUT blob blocklist"),
        "the peer used blocks too"
    );
    remove_trees(&sandbox);
    service.clear_log();
    let restored = ch_ok(&sandbox, &service, &token, &["restore", "--key", "big-2"]);
    assert_eq!(restored["status"], "exact");
    let gets = service.log().iter().filter(|l| *l == "GET blob").count();
    assert!(gets >= 9, "expected ranged segment GETs, saw {gets}");
    for (expected, actual) in expected.iter().zip(snapshots(&sandbox)) {
        assert_same_tree(expected, &actual);
    }
}

/// Restore keys: a prefix matches, the newest entry wins, and a feature branch falls back to the
/// default branch's entries, but prefers its own.
#[test]
fn restore_keys_match_like_github() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    let main = main_token();
    for seed in ["old", "new"] {
        fill(&sandbox, seed);
        ch_ok(
            &sandbox,
            &service,
            &main,
            &["save", "--key", &format!("deps-linux-{seed}")],
        );
        remove_trees(&sandbox);
    }
    let restored = ch_ok(
        &sandbox,
        &service,
        &main,
        &[
            "restore",
            "--key",
            "deps-linux-zzz",
            "--restore-key",
            "deps-nope-",
            "--restore-key",
            "deps-linux-",
        ],
    );
    assert_eq!(restored["status"], "partial");
    assert_eq!(
        restored["matched_key"], "deps-linux-new",
        "the newest prefix match wins"
    );
    let meta = std::fs::read_to_string(sandbox.ws().join("data/wheels/pkg-1.0/METADATA")).unwrap();
    assert_eq!(meta, "Name: pkg new\n");

    let feature = token(&[("refs/heads/feat", 3), ("refs/heads/main", 1)]);
    remove_trees(&sandbox);
    let restored = ch_ok(
        &sandbox,
        &service,
        &feature,
        &[
            "restore",
            "--key",
            "deps-linux-x",
            "--restore-key",
            "deps-linux-",
        ],
    );
    assert_eq!(
        restored["matched_key"], "deps-linux-new",
        "feature branch falls back to main"
    );

    remove_trees(&sandbox);
    fill(&sandbox, "feat");
    ch_ok(
        &sandbox,
        &service,
        &feature,
        &["save", "--key", "deps-linux-feat"],
    );
    assert_eq!(service.entries().last().unwrap().scope, "refs/heads/feat");
    remove_trees(&sandbox);
    let restored = ch_ok(
        &sandbox,
        &service,
        &feature,
        &[
            "restore",
            "--key",
            "deps-linux-x",
            "--restore-key",
            "deps-linux-",
        ],
    );
    assert_eq!(
        restored["matched_key"], "deps-linux-feat",
        "its own scope comes first"
    );
    let restored = ch_ok(
        &sandbox,
        &service,
        &main,
        &[
            "restore",
            "--key",
            "deps-linux-x",
            "--restore-key",
            "deps-linux-",
        ],
    );
    assert_eq!(
        restored["matched_key"], "deps-linux-new",
        "main never sees the feature entry"
    );

    let restored = ch_ok(
        &sandbox,
        &service,
        &main,
        &["restore", "--key", "DEPS-LINUX-OLD"],
    );
    assert_eq!(
        restored["status"], "miss",
        "matching is case-sensitive on the server"
    );
    let restored = ch_ok(
        &sandbox,
        &service,
        &main,
        &["restore", "--key", "deps-linux-old"],
    );
    assert_eq!(restored["status"], "exact");
}

/// Saves one entry and returns the sandbox with that content in place and its snapshots.
fn saved_entry(
    service: &CacheService,
    key: &str,
) -> (
    Sandbox,
    Vec<std::collections::BTreeMap<String, support::Node>>,
) {
    let sandbox = Sandbox::new();
    fill(&sandbox, key);
    let expected = snapshots(&sandbox);
    let saved = ch_ok(&sandbox, service, &main_token(), &["save", "--key", key]);
    assert_eq!(saved["status"], "saved", "{saved}");
    (sandbox, expected)
}

/// Replaces the restore paths with other content, to check a failed restore leaves it alone.
fn put_previous_content(
    sandbox: &Sandbox,
) -> Vec<std::collections::BTreeMap<String, support::Node>> {
    remove_trees(sandbox);
    fill(sandbox, "previous");
    snapshots(sandbox)
}

fn assert_restored(
    sandbox: &Sandbox,
    expected: &[std::collections::BTreeMap<String, support::Node>],
) {
    for (expected, actual) in expected.iter().zip(snapshots(sandbox)) {
        assert_same_tree(expected, &actual);
    }
}

/// Restores `key` expecting a clean miss: exit 0, a warning, the previous content untouched.
fn assert_clean_miss(sandbox: &Sandbox, service: &CacheService, key: &str, warning: &str) {
    let previous = put_previous_content(sandbox);
    let out = ch(sandbox, service, &main_token(), &["restore", "--key", key]);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "a failed restore is a miss, not an error:\n{err}"
    );
    assert_eq!(stdout_json(&out)["status"], "miss", "{err}");
    assert!(err.contains("warning: Did not"), "{err}");
    assert!(err.contains(warning), "expected `{warning}` in:\n{err}");
    assert_restored(sandbox, &previous);
    let leftovers: Vec<String> = support::list_all(&sandbox.ws())
        .into_iter()
        .chain(support::list_all(&sandbox.home().join(".cache")))
        .filter(|p| p.contains("staging") || p.contains(".cache-heal"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn service_5xx_bursts_are_retried() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    let expected = snapshots(&sandbox);
    service.faults().rpc_5xx.store(2, Ordering::SeqCst);
    ch_ok(&sandbox, &service, &main_token(), &["save", "--key", "k5"]);
    assert_eq!(service.faults().rpc_5xx.load(Ordering::SeqCst), 0);
    remove_trees(&sandbox);
    service.faults().rpc_5xx.store(3, Ordering::SeqCst);
    let restored = ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "k5"],
    );
    assert_eq!(restored["status"], "exact");
    assert_restored(&sandbox, &expected);

    // A burst longer than the attempts: a miss with the retries counted, nothing touched.
    service.faults().rpc_5xx.store(50, Ordering::SeqCst);
    assert_clean_miss(&sandbox, &service, "k5", "failed after 5 attempts");
}

#[test]
fn rate_limits_wait_for_retry_after_or_give_up() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    service.faults().retry_after_secs.store(1, Ordering::SeqCst);
    service.faults().rpc_429.store(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "k429"],
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(service.entries()[0].finalized);

    // A Retry-After beyond the bound: not saved, a warning, exit 0.
    service
        .faults()
        .retry_after_secs
        .store(600, Ordering::SeqCst);
    service.faults().rpc_429.store(1, Ordering::SeqCst);
    let out = ch(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "k429-b"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: Did not save `k429-b`: the cache service is rate-limiting"),
        "{err}"
    );
    assert!(err.contains("Retry-After: 600s"), "{err}");
    assert_eq!(stdout_json(&out)["status"], "not-saved");
    assert_eq!(service.entries().len(), 1);

    service.faults().rpc_429.store(1, Ordering::SeqCst);
    assert_clean_miss(&sandbox, &service, "k429", "rate-limiting");
}

#[test]
fn dropped_connections_are_retried() {
    let service = CacheService::with_proxy();
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    let expected = snapshots(&sandbox);
    service.faults().rpc_drop.store(1, Ordering::SeqCst);
    service.faults().blob_drop.store(1, Ordering::SeqCst);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "kdrop"],
    );
    assert_eq!(service.faults().blob_drop.load(Ordering::SeqCst), 0);
    remove_trees(&sandbox);
    service.faults().rpc_drop.store(1, Ordering::SeqCst);
    service.faults().blob_drop.store(1, Ordering::SeqCst);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "kdrop"],
    );
    assert_restored(&sandbox, &expected);
}

#[test]
fn blob_5xx_retries_the_block_or_segment() {
    let service = CacheService::with_proxy();
    let (sandbox, expected) = {
        service.faults().blob_5xx.store(2, Ordering::SeqCst);
        saved_entry(&service, "kblob")
    };
    assert_eq!(service.faults().blob_5xx.load(Ordering::SeqCst), 0);
    remove_trees(&sandbox);
    service.faults().blob_5xx.store(2, Ordering::SeqCst);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "kblob"],
    );
    assert_restored(&sandbox, &expected);
}

#[test]
fn truncated_bodies_are_retried_or_a_clean_miss() {
    let service = CacheService::with_proxy();
    let (sandbox, expected) = saved_entry(&service, "ktrunc");
    remove_trees(&sandbox);
    service.faults().truncate.store(1, Ordering::SeqCst);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "ktrunc"],
    );
    assert_eq!(service.faults().truncate.load(Ordering::SeqCst), 0);
    assert_restored(&sandbox, &expected);

    service.faults().truncate.store(100, Ordering::SeqCst);
    assert_clean_miss(&sandbox, &service, "ktrunc", "GET bytes");
}

/// Saves a tree holding an incompressible file of `mib` MiB as `key`, empties the paths,
/// runs `before_restore`, and restores the entry exactly; returns the save's report.
fn save_then_restore_exactly(
    service: &CacheService,
    key: &str,
    mib: usize,
    before_restore: impl FnOnce(),
) -> serde_json::Value {
    let sandbox = Sandbox::new();
    fill(&sandbox, key);
    gha::write_incompressible(&sandbox.ws().join("data/big.bin"), mib << 20);
    let expected = snapshots(&sandbox);
    let saved = ch_ok(&sandbox, service, &main_token(), &["save", "--key", key]);
    assert_eq!(saved["status"], "saved", "{saved}");
    remove_trees(&sandbox);
    before_restore();
    let restored = ch_ok(&sandbox, service, &main_token(), &["restore", "--key", key]);
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_restored(&sandbox, &expected);
    saved
}

/// `bytes=S-E` → (S, E).
fn byte_range(range: &str) -> (u64, u64) {
    let (start, end) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .unwrap_or_else(|| panic!("not a byte range: {range:?}"));
    (start.parse().unwrap(), end.parse().unwrap())
}

/// A segment whose body breaks midway is asked again for the rest only: the bytes the unpacker
/// already has are not fetched twice, and the restore is exact.
#[test]
fn a_segment_cut_short_resumes_where_it_broke() {
    let service = CacheService::with_proxy();
    save_then_restore_exactly(&service, "kresume", 12, || {
        service.faults().truncate.store(1, Ordering::SeqCst)
    });
    assert_eq!(service.faults().truncate.load(Ordering::SeqCst), 0);

    // The first GET (`bytes=0-E`) was the one cut short; its retry asks for `S-E`, S > 0.
    let ranges = service.blob_get_ranges();
    let (first_start, first_end) = byte_range(&ranges[0]);
    assert_eq!(first_start, 0, "{ranges:?}");
    assert!(
        ranges
            .iter()
            .map(|r| byte_range(r))
            .any(|(start, end)| start > 0 && end == first_end),
        "no request for the rest of the broken segment: {ranges:?}"
    );
    assert_eq!(
        ranges.iter().filter(|r| r.starts_with("bytes=0-")).count(),
        1,
        "the broken segment was fetched again from its start: {ranges:?}"
    );
}

/// A large archive arrives in ranged GETs that cover it exactly once: whatever sizes the
/// segments take as the network and the unpacker race (8 MiB at first, up to 32 MiB while the
/// unpacker hardly waits), no byte is asked for twice and none is skipped.
#[test]
fn ranged_segments_cover_a_large_archive_exactly_once() {
    let service = CacheService::with_proxy();
    let saved = save_then_restore_exactly(&service, "ktile", 90, || ());
    let size = saved["bytes"].as_u64().expect("the archive size");

    let mut ranges: Vec<(u64, u64)> = service
        .blob_get_ranges()
        .iter()
        .map(|r| byte_range(r))
        .collect();
    ranges.sort();
    assert_eq!(ranges[0], (0, (8 << 20) - 1), "{ranges:?}");
    let mut next = 0;
    for &(start, end) in &ranges {
        assert_eq!(start, next, "a gap or an overlap at {start}: {ranges:?}");
        assert!(end - start < 32 << 20, "a segment over 32 MiB: {ranges:?}");
        next = end + 1;
    }
    assert_eq!(
        next, size,
        "the segments end short of the archive: {ranges:?}"
    );
}

#[test]
fn servers_that_ignore_range_get_one_plain_get() {
    let service = CacheService::with_proxy();
    let (sandbox, expected) = saved_entry(&service, "krange");
    gha::write_incompressible(&sandbox.ws().join("data/mid.bin"), 40 << 20);
    let expected_big = snapshots(&sandbox);
    let saved = ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "krange-big"],
    );
    assert_eq!(saved["status"], "saved", "{saved}");
    service.faults().ignore_range.store(true, Ordering::SeqCst);
    remove_trees(&sandbox);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "krange"],
    );
    assert_restored(&sandbox, &expected);
    service.clear_log();
    let restored = ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "krange-big"],
    );
    assert_eq!(restored["matched_key"], "krange-big", "{restored}");
    assert_restored(&sandbox, &expected_big);
    assert_eq!(
        service.log().iter().filter(|l| *l == "GET blob").count(),
        1,
        "one plain GET"
    );

    // Cut short without range support: nothing to resume from, so a clean miss.
    service.faults().truncate.store(1, Ordering::SeqCst);
    assert_clean_miss(
        &sandbox,
        &service,
        "krange-big",
        "GET the whole archive (the server ignores `Range`)",
    );
}

#[test]
fn expired_urls_are_renewed_for_downloads_and_abandon_uploads() {
    let service = CacheService::with_proxy();
    let (sandbox, expected) = saved_entry(&service, "kexp");
    remove_trees(&sandbox);
    service.faults().expire_urls.store(1, Ordering::SeqCst);
    ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "kexp"],
    );
    assert_restored(&sandbox, &expected);
    assert_eq!(
        service
            .log()
            .iter()
            .filter(|l| *l == "GetCacheEntryDownloadURL")
            .count(),
        2,
        "the lookup and one renewal: {:?}",
        service.log()
    );

    // No RPC renews an upload URL: the save is abandoned, never finalized.
    service.faults().expire_urls.store(1, Ordering::SeqCst);
    let out = ch(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "kexp-2"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Did not save `kexp-2`: the signed URL expired"),
        "{err}"
    );
    let entry = service
        .entries()
        .into_iter()
        .find(|e| e.key == "kexp-2")
        .unwrap();
    assert!(
        !entry.finalized,
        "an upload that failed must not be finalized"
    );
    let restored = ch_ok(
        &sandbox,
        &service,
        &main_token(),
        &["restore", "--key", "kexp-2"],
    );
    assert_eq!(restored["status"], "miss");
}

/// 409: another job saved the key. Info, exit 0, the first content stands.
#[test]
fn a_second_save_of_a_key_is_info_and_exit_0() {
    let service = CacheService::start();
    let (sandbox, _) = saved_entry(&service, "kdup");
    let out = ch(
        &sandbox,
        &service,
        &main_token(),
        &["save", "--key", "kdup"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout_json(&out)["status"], "exists");
    assert!(!err.contains("warning"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    // The node client sees the same entry as taken.
    assert_eq!(node_save(&sandbox, &service, &main_token(), "kdup"), -1);
}

#[test]
fn denied_writes_warn_and_denied_reads_miss() {
    let service = CacheService::start();
    let (sandbox, _) = saved_entry(&service, "kden");
    let read_only = token(&[("refs/pull/7/merge", 1), ("refs/heads/main", 1)]);
    let out = ch(&sandbox, &service, &read_only, &["save", "--key", "kden-2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: Did not save `kden-2`: this job may not write to the cache"),
        "{err}"
    );
    assert!(err.contains("cache write denied"), "{err}");

    let previous = put_previous_content(&sandbox);
    let no_read = token(&[("refs/heads/main", 2)]);
    let out = ch(&sandbox, &service, &no_read, &["restore", "--key", "kden"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout_json(&out)["status"], "miss");
    assert!(
        err.contains("warning: Did not look up `kden`: this job may not read from the cache"),
        "{err}"
    );
    assert_restored(&sandbox, &previous);
}

#[test]
fn actions_cache_mode_gates_save_and_restore() {
    let service = CacheService::start();
    let (sandbox, _) = saved_entry(&service, "kmode");
    service.clear_log();
    let mut cmd = cache_heal(&sandbox, &service, &main_token());
    let out = cmd
        .env("ACTIONS_CACHE_MODE", "read")
        .args(["save", "--key", "kmode-2", "--json"])
        .args(path_args())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("`ACTIONS_CACHE_MODE=read` does not allow saves"),
        "{}",
        stderr(&out)
    );
    assert!(service.entries().iter().all(|e| e.key != "kmode-2"));
    assert!(
        service.log().is_empty(),
        "no request at all: {:?}",
        service.log()
    );

    service.clear_log();
    let previous = put_previous_content(&sandbox);
    let mut cmd = cache_heal(&sandbox, &service, &main_token());
    let out = cmd
        .env("ACTIONS_CACHE_MODE", "write-only")
        .args(["restore", "--key", "kmode", "--json"])
        .args(path_args())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stdout_json(&out)["status"], "miss");
    assert!(
        service.log().is_empty(),
        "no request at all: {:?}",
        service.log()
    );
    assert_restored(&sandbox, &previous);
}

/// Neither the runtime token nor any `sig` appears in the output of save and restore, even
/// when things fail; in Actions the only lines carrying them are the `::add-mask::` commands.
#[test]
fn no_secret_reaches_the_output() {
    let service = CacheService::with_proxy();
    let sandbox = Sandbox::new();
    fill(&sandbox, "secret");
    let token = main_token();
    let mut outputs = Vec::new();
    for in_actions in [false, true] {
        let key = format!("ksecret-{in_actions}");
        let run = |args: &[&str], setup: &dyn Fn()| {
            setup();
            let mut cmd = cache_heal(&sandbox, &service, &token);
            if in_actions {
                cmd.env("GITHUB_ACTIONS", "true");
            }
            let out = cmd.args(args).args(path_args()).output().unwrap();
            (
                in_actions,
                format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)),
            )
        };
        outputs.push(run(&["save", "--key", &key], &|| {}));
        outputs.push(run(&["restore", "--key", &key], &|| {}));
        outputs.push(run(&["restore", "--key", &key], &|| {
            service.faults().truncate.store(100, Ordering::SeqCst)
        }));
        service.faults().truncate.store(0, Ordering::SeqCst);
        outputs.push(run(&["restore", "--key", &key], &|| {
            service.faults().blob_5xx.store(100, Ordering::SeqCst)
        }));
        service.faults().blob_5xx.store(0, Ordering::SeqCst);
        outputs.push(run(&["save", "--key", &format!("{key}-x")], &|| {
            service.faults().expire_urls.store(1, Ordering::SeqCst)
        }));
    }
    let sigs = service.sigs();
    assert!(sigs.len() >= 8, "{sigs:?}");
    let encoded: Vec<String> = sigs
        .iter()
        .map(|s| {
            s.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        })
        .collect();
    let mut masks = 0;
    for (in_actions, text) in &outputs {
        for line in text.lines() {
            let secret = line.contains(&token)
                || sigs
                    .iter()
                    .chain(&encoded)
                    .any(|s| line.contains(s.as_str()));
            if *in_actions && line.starts_with("::add-mask::") {
                masks += 1;
                continue;
            }
            assert!(!secret, "a secret in the output: {line}");
        }
    }
    assert!(
        masks >= 3,
        "in Actions the token and the sigs are masked: {outputs:?}"
    );
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("sig=****") || !all.contains("sig="), "{all}");
}

/// With the runner's variables set and no `--store`, the GitHub store is chosen.
#[test]
fn the_runner_environment_selects_the_github_store() {
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    fill(&sandbox, "auto");
    let mut cmd = cache_heal(&sandbox, &service, &main_token());
    let out = cmd
        .env_remove("CACHE_HEAL_STORE")
        .args(["save", "--key", "kauto"])
        .args(path_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the GitHub Actions cache"),
        "{}",
        stderr(&out)
    );
    assert_eq!(service.entries()[0].key, "kauto");
}

#[test]
fn gha_store_without_a_token_says_what_is_missing() {
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    let out = sandbox
        .cmd()
        .env("CACHE_HEAL_STORE", "gha")
        .args(["save", "--key", "k"])
        .args(path_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "`ACTIONS_RUNTIME_TOKEN` is not set, so `--store gha` cannot reach the cache service"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: outside GitHub Actions, use `--store dir:<DIR>`"),
        "{err}"
    );
}

/// `SEGMENT_DOWNLOAD_TIMEOUT_MINS` bounds each attempt at a segment: a stalled segment is
/// retried, and one that keeps stalling ends in a clean miss.
#[test]
fn stalled_segments_time_out_and_are_retried() {
    let service = CacheService::with_proxy();
    let (sandbox, expected) = saved_entry(&service, "kstall");
    remove_trees(&sandbox);
    service.faults().stall.store(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = cache_heal(&sandbox, &service, &main_token())
        .env("SEGMENT_DOWNLOAD_TIMEOUT_MINS", "0.01")
        .args(["restore", "--key", "kstall", "--json"])
        .args(path_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "did not wait for the stall"
    );
    assert_restored(&sandbox, &expected);

    let previous = put_previous_content(&sandbox);
    service.faults().stall.store(5, Ordering::SeqCst);
    let out = cache_heal(&sandbox, &service, &main_token())
        .env("SEGMENT_DOWNLOAD_TIMEOUT_MINS", "0.01")
        .env("CACHE_HEAL_HTTP_RETRIES", "2")
        .args(["restore", "--key", "kstall", "--json"])
        .args(path_args())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout_json(&out)["status"], "miss");
    assert!(err.contains("no complete answer within"), "{err}");
    assert_restored(&sandbox, &previous);
}
