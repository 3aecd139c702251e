//! The command-line contract: exit codes, key rules, matching order through the real binary,
//! dry runs, misses, concurrent saves and a corrupted store.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use support::{Sandbox, list_all, snapshot, stderr, stdout_json};

fn sandbox_with_cache() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.ws().join("cache")).unwrap();
    std::fs::write(sb.ws().join("cache/f"), b"v1").unwrap();
    sb
}

fn save(sb: &Sandbox, key: &str, content: &str) {
    std::fs::write(sb.ws().join("cache/f"), content).unwrap();
    sb.ok(&["save", "--path", "cache", "--key", key]);
}

fn restore_json(sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    stdout_json(&sb.ok(&[&["restore", "--json", "--path", "cache"][..], args].concat()))
}

#[test]
fn key_rules_are_usage_errors() {
    let sb = sandbox_with_cache();
    let long = "k".repeat(513);
    for (args, needle) in [
        (vec!["--key", "a,b"], "contains a comma"),
        (vec!["--key", long.as_str()], "the limit is 512"),
        (vec!["--key", " "], "is empty"),
    ] {
        for command in ["save", "restore"] {
            let out = sb.run(&[&[command, "--path", "cache"][..], &args].concat());
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {args:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        }
    }
    let mut args = vec!["restore", "--path", "cache", "--key", "k"];
    let restore_keys: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for key in &restore_keys {
        args.extend(["--restore-key", key]);
    }
    let out = sb.run(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("11 keys"), "{}", stderr(&out));
}

#[test]
fn unknown_flags_and_missing_values_exit_2() {
    let sb = Sandbox::new();
    assert_eq!(sb.run(&["restore", "--bogus"]).status.code(), Some(2));
    assert_eq!(sb.run(&["save", "--path"]).status.code(), Some(2));
    assert_eq!(
        sb.run(&["restore", "--path", "x", "--key"]).status.code(),
        Some(2)
    );
}

#[test]
fn matching_order_exact_then_prefix_newest_then_restore_keys() {
    let sb = sandbox_with_cache();
    save(&sb, "uv-py3.11-aaa", "311a");
    save(&sb, "uv-py3.11-bbb", "311b");
    save(&sb, "uv-py3.12", "312");

    let r = restore_json(&sb, &["--key", "uv-py3.12"]);
    assert_eq!(
        (r["status"].as_str(), r["matched_key"].as_str()),
        (Some("exact"), Some("uv-py3.12"))
    );

    let r = restore_json(&sb, &["--key", "UV-PY3.12"]);
    assert_eq!(
        r["status"], "miss",
        "keys match case-sensitively in the store"
    );

    let r = restore_json(&sb, &["--key", "uv-py3.11"]);
    assert_eq!(
        (r["status"].as_str(), r["matched_key"].as_str()),
        (Some("partial"), Some("uv-py3.11-bbb"))
    );
    assert_eq!(
        std::fs::read_to_string(sb.ws().join("cache/f")).unwrap(),
        "311b"
    );

    let r = restore_json(
        &sb,
        &[
            "--key",
            "uv-py3.13-x",
            "--restore-key",
            "uv-py3.13-\nuv-py3.11-aaa",
            "--restore-key",
            "uv-",
        ],
    );
    assert_eq!(r["matched_key"], "uv-py3.11-aaa");
    assert_eq!(
        std::fs::read_to_string(sb.ws().join("cache/f")).unwrap(),
        "311a"
    );

    let r = restore_json(&sb, &["--key", "uv-py3.13-x", "--restore-key", "uv-"]);
    assert_eq!(r["matched_key"], "uv-py3.12", "newest prefix match");

    // Another compression is another version: no match at all.
    let r = restore_json(&sb, &["--key", "uv-py3.12", "--compression", "gzip"]);
    assert_eq!(r["status"], "miss");
}

#[test]
fn dry_run_and_lookup_only_change_nothing() {
    let sb = sandbox_with_cache();
    save(&sb, "k", "saved");
    std::fs::write(sb.ws().join("cache/f"), "local").unwrap();
    let before = snapshot(&sb.ws());
    for flag in ["--dry-run", "--lookup-only"] {
        let out = sb.ok(&["restore", "--json", flag, "--path", "cache", "--key", "k"]);
        let r = stdout_json(&out);
        assert_eq!(r["status"], "exact");
        assert_eq!(r["matched_key"], "k");
        assert!(r["bytes"].as_u64().unwrap() > 0);
        assert_eq!(before, snapshot(&sb.ws()), "{flag} changed the workspace");
    }
    let out = sb.ok(&["restore", "--dry-run", "--path", "cache", "--key", "k"]);
    assert!(
        stderr(&out).contains("Would restore `k` (exact match"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_miss_exits_0_unless_fail_on_cache_miss() {
    let sb = sandbox_with_cache();
    let out = sb.ok(&[
        "restore",
        "--json",
        "--path",
        "cache",
        "--key",
        "none",
        "--restore-key",
        "nada-",
    ]);
    assert_eq!(stdout_json(&out)["status"], "miss");
    assert!(stderr(&out).contains("No cache entry for `none`"));
    assert!(stderr(&out).contains("`nada-`"));
    let out = sb.run(&[
        "restore",
        "--path",
        "cache",
        "--key",
        "none",
        "--fail-on-cache-miss",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--fail-on-cache-miss"));
    // A restore-key hit is not a miss.
    save(&sb, "none-but-close", "x");
    sb.ok(&[
        "restore",
        "--path",
        "cache",
        "--key",
        "none",
        "--fail-on-cache-miss",
    ]);
}

#[test]
fn second_save_of_a_key_reports_exists_and_exits_0() {
    let sb = sandbox_with_cache();
    save(&sb, "k", "first");
    std::fs::write(sb.ws().join("cache/f"), "second").unwrap();
    let out = sb.ok(&["save", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(stdout_json(&out)["status"], "exists");
    assert!(stderr(&out).contains("already exists"));
    sb.ok(&["restore", "--path", "cache", "--key", "k"]);
    assert_eq!(
        std::fs::read_to_string(sb.ws().join("cache/f")).unwrap(),
        "first"
    );
}

#[test]
fn concurrent_saves_of_one_key_publish_exactly_one_entry() {
    let sb = sandbox_with_cache();
    // Enough content that the saves overlap in time.
    for i in 0..300 {
        std::fs::write(
            sb.ws().join(format!("cache/file-{i}")),
            vec![i as u8; 20_000],
        )
        .unwrap();
    }
    let children: Vec<_> = (0..6)
        .map(|_| {
            sb.cmd()
                .args(["save", "--json", "--path", "cache", "--key", "race"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let statuses: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout_json(&out)["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "saved").count(),
        1,
        "{statuses:?}"
    );
    let entries = stdout_json(&sb.ok(&["inspect", "--json"]));
    assert_eq!(entries["entries"].as_array().unwrap().len(), 1);
    let archives: Vec<_> = list_all(&sb.store().join("entries"))
        .into_iter()
        .filter(|n| n.ends_with(".tzst"))
        .collect();
    assert_eq!(
        archives.len(),
        1,
        "losing saves leave no archive behind: {archives:?}"
    );
    assert!(
        list_all(&sb.store().join("tmp")).is_empty(),
        "no upload left in tmp/"
    );
}

#[test]
fn a_corrupted_store_archive_is_a_warned_miss_and_the_previous_content_survives() {
    let sb = sandbox_with_cache();
    save(&sb, "k", "saved");
    std::fs::write(sb.ws().join("cache/f"), "local work").unwrap();
    let archive = list_all(&sb.store().join("entries"))
        .into_iter()
        .find(|n| n.ends_with(".tzst"))
        .unwrap();
    let path = sb.store().join("entries").join(archive);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let before = snapshot(&sb.ws());
    let out = sb.run(&["restore", "--path", "cache", "--key", "k"]);
    let err = stderr(&out);
    // A damaged entry is a miss with a warning (issue 12), not an error.
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("the entry is damaged"), "{err}");
    assert!(err.contains("sha256") || err.contains("checksum"), "{err}");
    assert_eq!(before, snapshot(&sb.ws()));
}

#[test]
fn inspect_lists_entries_newest_first() {
    let sb = sandbox_with_cache();
    save(&sb, "older", "1");
    save(&sb, "newer", "2");
    let out = sb.ok(&["inspect"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    let older = listing.find("older").unwrap();
    let newer = listing.find("newer").unwrap();
    assert!(newer < older, "{listing}");
    assert!(listing.contains("zstd"));
}

#[test]
fn saving_a_path_that_does_not_exist_names_it() {
    let sb = Sandbox::new();
    let out = sb.run(&["save", "--path", "nope\n~/nada", "--key", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("`nope`") && err.contains("`~/nada`"), "{err}");
    assert!(list_all(&sb.store()).iter().all(|p| !p.ends_with(".tzst")));
}

#[test]
fn the_default_store_is_under_xdg_cache_home() {
    let sb = sandbox_with_cache();
    let xdg = sb.root().join("xdg");
    let out = sb
        .cmd()
        .env_remove("CACHE_HEAL_STORE")
        .env("XDG_CACHE_HOME", &xdg)
        .args(["save", "--path", "cache", "--key", "k"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(xdg.join("cache-heal/entries").is_dir());
}

#[test]
fn a_store_inside_a_saved_path_is_not_archived_into_itself() {
    let sb = sandbox_with_cache();
    let store = sb.ws().join("cache/store");
    let store_arg = format!("dir:{}", store.display());
    sb.ok(&[
        "save", "--path", "cache", "--key", "k", "--store", &store_arg,
    ]);
    // The archive does not hold the store: restoring it elsewhere shows its members.
    let other = format!("dir:{}", sb.root().join("moved-store").display());
    std::fs::rename(&store, sb.root().join("moved-store")).unwrap();
    std::fs::remove_dir_all(sb.ws().join("cache")).unwrap();
    sb.ok(&[
        "restore", "--path", "cache", "--key", "k", "--store", &other,
    ]);
    assert_eq!(std::fs::read(sb.ws().join("cache/f")).unwrap(), b"v1");
    assert!(!sb.ws().join("cache/store").exists());
}

#[test]
fn restoring_over_the_store_itself_is_refused() {
    let sb = sandbox_with_cache();
    let store_arg = format!("dir:{}", sb.ws().join("cache/store").display());
    sb.ok(&[
        "save", "--path", "cache", "--key", "k", "--store", &store_arg,
    ]);
    let out = sb.run(&[
        "restore", "--path", "cache", "--key", "k", "--store", &store_arg,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("which a restore replaces whole"),
        "{}",
        stderr(&out)
    );
    assert!(
        sb.ws().join("cache/store/entries").is_dir(),
        "the store survived"
    );
}
