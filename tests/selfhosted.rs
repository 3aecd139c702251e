//! Self-hosted cache servers (issue 12): the test cache service's self-hosted profile behaves
//! as falcondev-oss/github-actions-cache-server v9.4.7 does (see `support::gha`), and
//! cache-heal must work with it both ways with `@actions/cache`, and turn each of its habits
//! into the right outcome: a damaged entry is a warned miss, a gone archive, a dropped upload, a
//! refused token and a non-Twirp error are each named for what happened, with the server's own
//! words. Every failing case also checks that the restored paths are exactly as they were.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::store::github::blob::BLOCK_SIZE;
use serde_json::json;
use std::process::Output;
use std::sync::atomic::Ordering;
use support::gha::{self, CacheService, cache_heal, node, token};
use support::trees::{self, PATHS, Trees, remove_trees, snapshots};
use support::{Sandbox, assert_same_tree, stderr, stdout_json};

fn main_token() -> String {
    token(&[("refs/heads/main", 3)])
}

fn fill(sandbox: &Sandbox, seed: &str) {
    trees::fill_with(sandbox, seed, &seed.repeat(5000));
}

fn assert_trees(sandbox: &Sandbox, expected: &Trees) {
    for (expected, actual) in expected.iter().zip(snapshots(sandbox)) {
        assert_same_tree(expected, &actual);
    }
}

/// Replaces the paths with other content and returns its snapshot, to check that a failed
/// restore leaves it alone.
fn previous_content(sandbox: &Sandbox) -> Trees {
    remove_trees(sandbox);
    fill(sandbox, "previous");
    snapshots(sandbox)
}

fn ch_with(sandbox: &Sandbox, service: &CacheService, token: &str, args: &[&str]) -> Output {
    let mut cmd = cache_heal(sandbox, service, token);
    cmd.args(args).arg("--json");
    for p in PATHS {
        cmd.args(["--path", p]);
    }
    cmd.output().expect("run cache-heal")
}

fn ch(sandbox: &Sandbox, service: &CacheService, args: &[&str]) -> Output {
    ch_with(sandbox, service, &main_token(), args)
}

fn ch_ok(sandbox: &Sandbox, service: &CacheService, args: &[&str]) -> serde_json::Value {
    let out = ch(sandbox, service, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cache-heal {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout_json(&out)
}

fn node_save(sandbox: &Sandbox, service: &CacheService, key: &str) {
    let run = node(
        sandbox,
        service,
        &main_token(),
        "save",
        &json!({"key": key, "paths": PATHS}),
    );
    assert!(
        run.result["cache_id"].as_i64().is_some_and(|id| id > 0),
        "@actions/cache saveCache({key}): {}\n{}\n{}",
        run.result,
        String::from_utf8_lossy(&run.output.stdout),
        String::from_utf8_lossy(&run.output.stderr)
    );
}

fn node_restore(sandbox: &Sandbox, service: &CacheService, key: &str) -> Option<String> {
    let run = node(
        sandbox,
        service,
        &main_token(),
        "restore",
        &json!({"key": key, "restore_keys": [], "paths": PATHS}),
    );
    run.result["matched_key"].as_str().map(str::to_string)
}

/// Saves `key` with cache-heal and returns the sandbox holding that content, and its snapshot.
fn saved(service: &CacheService, key: &str) -> (Sandbox, Trees) {
    let sandbox = Sandbox::new();
    fill(&sandbox, key);
    let expected = snapshots(&sandbox);
    let result = ch_ok(&sandbox, service, &["save", "--key", key]);
    assert_eq!(result["status"], "saved", "{result}");
    (sandbox, expected)
}

/// A restore of `key` that must be a warned miss: exit 0, `fragments` in stderr, the paths
/// exactly as they were, nothing left behind. Returns stderr and the JSON.
fn assert_warned_miss(
    sandbox: &Sandbox,
    service: &CacheService,
    token: &str,
    key: &str,
    fragments: &[&str],
) -> (String, serde_json::Value) {
    let previous = previous_content(sandbox);
    let out = ch_with(sandbox, service, token, &["restore", "--key", key]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "a warned miss exits 0:\n{err}");
    assert!(err.contains("warning: Did not"), "{err}");
    for fragment in fragments {
        assert!(err.contains(fragment), "expected `{fragment}` in:\n{err}");
    }
    let json = stdout_json(&out);
    assert_eq!(json["status"], "miss", "{json}");
    assert_trees(sandbox, &previous);
    let leftovers: Vec<String> = support::list_all(&sandbox.ws())
        .into_iter()
        .chain(support::list_all(&sandbox.home().join(".cache")))
        .filter(|p| p.contains(".cache-heal"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    (err, json)
}

/// `@actions/cache` saves, cache-heal restores; cache-heal saves, `@actions/cache` restores.
/// Downloads are one plain GET (the server has no `Range`), uploads one PUT.
#[test]
fn entries_move_both_ways_with_actions_cache() {
    let service = CacheService::self_hosted();
    let sandbox = Sandbox::new();
    fill(&sandbox, "from-node");
    let expected = snapshots(&sandbox);
    node_save(&sandbox, &service, "sh-node-1");
    remove_trees(&sandbox);
    service.clear_log();
    let restored = ch_ok(&sandbox, &service, &["restore", "--key", "sh-node-1"]);
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_trees(&sandbox, &expected);
    let gets = service.log().iter().filter(|l| *l == "GET blob").count();
    assert_eq!(gets, 1, "one plain GET: {:?}", service.log());

    remove_trees(&sandbox);
    fill(&sandbox, "from-cache-heal");
    let expected = snapshots(&sandbox);
    service.clear_log();
    let result = ch_ok(&sandbox, &service, &["save", "--key", "sh-ch-1"]);
    assert_eq!(result["status"], "saved", "{result}");
    assert_eq!(
        service.log().iter().filter(|l| *l == "PUT blob").count(),
        1,
        "{:?}",
        service.log()
    );
    remove_trees(&sandbox);
    assert_eq!(
        node_restore(&sandbox, &service, "sh-ch-1").as_deref(),
        Some("sh-ch-1")
    );
    assert_trees(&sandbox, &expected);
}

/// An archive over 128 MiB goes up in 4 MiB blocks, which the server orders by their block
/// ids, and comes back as one chunked GET; both ways with `@actions/cache`.
#[test]
fn archives_over_128_mib_go_both_ways() {
    let service = CacheService::self_hosted();
    let sandbox = Sandbox::new();
    fill(&sandbox, "big");
    gha::write_incompressible(&sandbox.ws().join("data/big.bin"), 140 << 20);
    let expected = snapshots(&sandbox);

    let saved = ch_ok(&sandbox, &service, &["save", "--key", "sh-big-1"]);
    assert_eq!(saved["status"], "saved", "{saved}");
    let bytes = saved["bytes"].as_u64().unwrap();
    assert!(bytes > 128 << 20, "{saved}");
    let blocks = service
        .log()
        .iter()
        .filter(|l| *l == "PUT blob block")
        .count() as u64;
    assert_eq!(
        blocks,
        bytes.div_ceil(BLOCK_SIZE as u64),
        "{:?}",
        service.log()
    );
    remove_trees(&sandbox);
    assert_eq!(
        node_restore(&sandbox, &service, "sh-big-1").as_deref(),
        Some("sh-big-1")
    );
    assert_trees(&sandbox, &expected);

    service.clear_log();
    node_save(&sandbox, &service, "sh-big-2");
    assert!(
        service.log().iter().any(|l| l == "PUT blob block"),
        "the peer used blocks too: {:?}",
        service.log()
    );
    remove_trees(&sandbox);
    let restored = ch_ok(&sandbox, &service, &["restore", "--key", "sh-big-2"]);
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_trees(&sandbox, &expected);
}

/// Restore keys match as on GitHub (newest prefix match first), and a second save of a key
/// replaces the entry, as this server does (GitHub's refuses it with 409).
#[test]
fn restore_keys_match_and_a_resave_replaces_the_entry() {
    let service = CacheService::self_hosted();
    let sandbox = Sandbox::new();
    for seed in ["old", "new"] {
        remove_trees(&sandbox);
        fill(&sandbox, seed);
        ch_ok(
            &sandbox,
            &service,
            &["save", "--key", &format!("deps-{seed}")],
        );
    }
    remove_trees(&sandbox);
    let restored = ch_ok(
        &sandbox,
        &service,
        &[
            "restore",
            "--key",
            "deps-zzz",
            "--restore-key",
            "nope-",
            "--restore-key",
            "deps-",
        ],
    );
    assert_eq!(restored["status"], "partial", "{restored}");
    assert_eq!(restored["matched_key"], "deps-new", "{restored}");

    // The re-save of `deps-old` replaces it and makes it the newest.
    remove_trees(&sandbox);
    fill(&sandbox, "old-again");
    let expected = snapshots(&sandbox);
    let again = ch_ok(&sandbox, &service, &["save", "--key", "deps-old"]);
    assert_eq!(again["status"], "saved", "{again}");
    assert_eq!(
        service
            .entries()
            .iter()
            .filter(|e| e.key == "deps-old")
            .count(),
        1,
        "replaced, not added"
    );
    remove_trees(&sandbox);
    let restored = ch_ok(
        &sandbox,
        &service,
        &["restore", "--key", "deps-", "--restore-key", "deps-"],
    );
    assert_eq!(restored["matched_key"], "deps-old", "{restored}");
    assert_trees(&sandbox, &expected);
}

/// Row 1: the stored archive is cut short. The server sends no `Content-Length` and ignores
/// `Range`, so only the decoder finds out: a warned miss that says the entry is damaged, not an
/// error; exit 1 only with `--fail-on-cache-miss`; the paths unchanged either way.
#[test]
fn a_truncated_entry_is_a_warned_miss() {
    let service = CacheService::self_hosted();
    let (sandbox, _) = saved(&service, "sh-trunc");
    service.damage("sh-trunc", |bytes| bytes.truncate(bytes.len() / 2));
    let (err, json) = assert_warned_miss(
        &sandbox,
        &service,
        &main_token(),
        "sh-trunc",
        &[
            "Did not restore `sh-trunc`: the entry is damaged",
            "the archive is truncated",
            "unchanged; continuing with an empty cache",
        ],
    );
    assert!(!err.contains("error:"), "{err}");
    assert!(json["miss"]["kind"] == "damaged-entry", "{json}");

    let previous = snapshots(&sandbox);
    let out = ch(
        &sandbox,
        &service,
        &["restore", "--key", "sh-trunc", "--fail-on-cache-miss"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("damaged entry"), "{err}");
    assert!(err.contains("`--fail-on-cache-miss` is set"), "{err}");
    assert_trees(&sandbox, &previous);
}

/// Row 2: the entry is listed, its bytes are gone (HTTP 404 `Cache file not found`).
#[test]
fn an_entry_whose_archive_is_gone_says_so() {
    let service = CacheService::self_hosted();
    let (sandbox, _) = saved(&service, "sh-gone");
    service.lose_archive("sh-gone");
    let (err, json) = assert_warned_miss(
        &sandbox,
        &service,
        &main_token(),
        "sh-gone",
        &[
            "the entry is damaged",
            "the entry `sh-gone` is listed but its archive is gone (HTTP 404 from the server: Cache file not found)",
        ],
    );
    assert!(!err.contains("could not be reached"), "{err}");
    assert!(
        json["miss"]["message"]
            .as_str()
            .is_some_and(|f| f.contains("archive is gone")),
        "{json}"
    );
}

/// Row 3: a part upload broke on the server and was retried; finalize answers 500 "Not all
/// parts have been uploaded" and drops the upload, then 404 "Upload not found". The save warns
/// with the first answer, tries finalize only twice, and publishes nothing.
#[test]
fn a_dropped_upload_reports_the_servers_first_answer() {
    let service = CacheService::self_hosted();
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    let before = snapshots(&sandbox);
    service.faults().part_fail.store(1, Ordering::SeqCst);
    let out = ch(&sandbox, &service, &["save", "--key", "sh-drop"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: Did not save `sh-drop`: the server dropped the upload"),
        "{err}"
    );
    assert!(
        err.contains("HTTP 500: Not all parts have been uploaded (only 1 of 2 parts uploaded)"),
        "{err}"
    );
    assert!(err.contains("HTTP 404: Upload not found"), "{err}");
    assert_eq!(stdout_json(&out)["status"], "not-saved");
    let finalizes = service
        .log()
        .iter()
        .filter(|l| *l == "FinalizeCacheEntryUpload")
        .count();
    assert_eq!(
        finalizes,
        2,
        "no blind retries of the 404: {:?}",
        service.log()
    );
    assert!(service.entries().is_empty());
    assert_trees(&sandbox, &before);
}

/// Row 4: a self-hosted server refuses the token. No advice about GitHub's six-hour tokens;
/// the server and its answer are named.
#[test]
fn a_refused_token_names_the_server_and_its_answer() {
    let service = CacheService::self_hosted();
    let (sandbox, _) = saved(&service, "sh-token");
    let fragment = format!(
        "the cache service at `{}` refused the runtime token (HTTP 401: Invalid token)",
        service.host()
    );
    let (err, _) = assert_warned_miss(
        &sandbox,
        &service,
        "not-a-jwt",
        "sh-token",
        &["the runtime token was refused", &fragment],
    );
    assert!(!err.contains("six hours"), "{err}");
}

/// Row 5: errors in the server's framework JSON, not Twirp's: the message is shown, the
/// retries counted.
#[test]
fn non_twirp_errors_show_the_servers_message() {
    let service = CacheService::self_hosted();
    let (sandbox, _) = saved(&service, "sh-5xx");
    service.faults().rpc_5xx.store(50, Ordering::SeqCst);
    assert_warned_miss(
        &sandbox,
        &service,
        &main_token(),
        "sh-5xx",
        &[
            "Did not look up `sh-5xx`: the server failed the request",
            "failed after 5 attempts",
            "HTTP 503: fault: service unavailable",
        ],
    );
}

/// A hostile archive on this server is still refused whole, with exit 1.
#[test]
fn a_hostile_archive_is_still_an_error() {
    let service = CacheService::self_hosted();
    let (sandbox, _) = saved(&service, "sh-evil");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(4);
    header.set_mode(0o644);
    let name = b"../../outside/planted";
    header.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, &b"evil"[..]).unwrap();
    let evil = zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
    service.damage("sh-evil", |bytes| *bytes = evil);

    let previous = previous_content(&sandbox);
    let out = ch(&sandbox, &service, &["restore", "--key", "sh-evil"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Refused to restore `sh-evil`"), "{err}");
    assert!(err.contains("outside every path being restored"), "{err}");
    assert!(!sandbox.root().join("outside/planted").exists());
    assert_trees(&sandbox, &previous);
}

/// A retry that waits more than a moment says what it retries and for how long.
#[test]
fn a_long_retry_wait_is_announced() {
    let sandbox = Sandbox::new();
    fill(&sandbox, "x");
    let previous = snapshots(&sandbox);
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = sandbox.cmd();
    cmd.env("ACTIONS_RESULTS_URL", format!("http://127.0.0.1:{port}/"))
        .env("ACTIONS_RUNTIME_TOKEN", main_token())
        .env("CACHE_HEAL_STORE", "gha")
        .env("CACHE_HEAL_NO_PROGRESS", "true")
        .env("CACHE_HEAL_HTTP_RETRIES", "2")
        .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "2100")
        .args(["restore", "--key", "k", "--json"]);
    for p in PATHS {
        cmd.args(["--path", p]);
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "The cache service at `127.0.0.1:{port}` did not answer `GetCacheEntryDownloadURL` ("
        )),
        "{err}"
    );
    assert!(err.contains("); retrying for up to 4s"), "{err}");
    assert!(err.contains("failed after 2 attempts"), "{err}");
    assert_trees(&sandbox, &previous);
}
