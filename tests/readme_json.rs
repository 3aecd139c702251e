//! The README's "JSON output" tables against the real output: every documented field is
//! there in every outcome, and nothing undocumented is.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::collections::BTreeSet;
use support::{Sandbox, stderr, stdout_json};

/// The field names of the table under `#### {heading}` in the README's JSON section: every
/// backticked name in the first column.
fn documented(heading: &str) -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### JSON output")
        .nth(1)
        .expect("README has a JSON output section");
    let table = section
        .split(&format!("#### {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README documents `{heading}`"));
    let mut fields = BTreeSet::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                fields.insert(part.to_string());
            }
        }
    }
    assert!(!fields.is_empty(), "no table under `{heading}`");
    fields
}

fn fields(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    stdout_json(out)
}

/// A uv cache with nothing to heal or prune: enough for `prune` and `heal` to report.
fn uv_cache(sb: &Sandbox) -> String {
    let dir = sb.home().join(".cache/uv");
    std::fs::create_dir_all(dir.join("sdists-v11")).unwrap();
    std::fs::create_dir_all(dir.join("wheels-v8")).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn restore_and_save_fields_match_the_readme() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.ws().join("data")).unwrap();
    std::fs::write(sb.ws().join("data/f"), "x").unwrap();
    let restore = documented("`restore --json`");
    let save = documented("`save --json`");

    let miss = json_of(&sb.ok(&["restore", "--json", "--path", "data", "--key", "k"]));
    let saved = json_of(&sb.ok(&["save", "--json", "--path", "data", "--key", "k"]));
    let dry = json_of(&sb.ok(&[
        "restore",
        "--json",
        "--dry-run",
        "--path",
        "data",
        "--key",
        "k",
    ]));
    let hit = json_of(&sb.ok(&["restore", "--json", "--path", "data", "--key", "k"]));
    for (what, value) in [("miss", &miss), ("dry run", &dry), ("hit", &hit)] {
        assert_eq!(
            fields(value),
            restore,
            "restore ({what}) fields differ from the README"
        );
    }
    assert_eq!(fields(&saved), save, "save fields differ from the README");

    let exists = json_of(&sb.ok(&[
        "save",
        "--json",
        "--path",
        "data",
        "--key",
        "k",
        "--no-prune",
    ]));
    assert_eq!(fields(&exists), save);
    let not_saved = sb
        .cmd()
        .env("ACTIONS_CACHE_MODE", "read")
        .env("ACTIONS_RESULTS_URL", "http://127.0.0.1:9/")
        .env("ACTIONS_RUNTIME_TOKEN", "t")
        .args([
            "save", "--json", "--store", "gha", "--path", "data", "--key", "k2",
        ])
        .output()
        .unwrap();
    let not_saved = json_of(&not_saved);
    assert_eq!(not_saved["status"], "not-saved");
    assert_eq!(fields(&not_saved), save);
}

#[test]
fn inspect_key_prune_and_heal_fields_match_the_readme() {
    let sb = Sandbox::new();
    std::fs::write(sb.ws().join("requirements.txt"), "x==1\n").unwrap();
    let listed = json_of(&sb.ok(&["inspect", "--json"]));
    assert_eq!(fields(&listed), documented("`inspect --json`"));

    let key = json_of(&sb.ok(&["key", "--json", "--python-version", "3.12"]));
    assert_eq!(fields(&key), documented("`key --json`"));

    let cache = uv_cache(&sb);
    let pruned = json_of(&sb.ok(&["prune", "--json", "--dry-run", "--path", &cache]));
    assert_eq!(fields(&pruned), documented("`prune --json`"));

    let healed = sb.run(&["heal", "--json", "--dry-run", "--path", &cache]);
    assert!(healed.status.success(), "{}", stderr(&healed));
    assert_eq!(fields(&json_of(&healed)), documented("`heal --json`"));
}

#[test]
fn delete_and_gc_fields_match_the_readme() {
    let sb = Sandbox::new();
    let data = sb.ws().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "x").unwrap();
    for key in ["a", "b"] {
        sb.ok(&["save", "--path", "data", "--key", key]);
    }
    let gc = json_of(&sb.ok(&[
        "gc",
        "--json",
        "--max-size",
        "0",
        "--grace",
        "0s",
        "--dry-run",
    ]));
    assert_eq!(fields(&gc), documented("`gc --json`"));
    let removed = &gc["removed"][0];
    let entry = fields(removed);
    for field in [
        "key",
        "scope",
        "version",
        "size",
        "created",
        "last_used",
        "reason",
    ] {
        assert!(entry.contains(field), "`{field}` not in {removed}");
    }
    let deleted = json_of(&sb.ok(&["delete", "--json", "--key", "a"]));
    assert_eq!(fields(&deleted), documented("`delete --json`"));
    assert_eq!(
        fields(&deleted["removed"][0]),
        ["created", "size", "version"].map(String::from).into()
    );
}

#[test]
fn error_fields_match_the_readme() {
    let sb = Sandbox::new();
    let documented_error = documented("Errors (any command, exit 1 or 2)");
    let nested = ["kind", "message", "causes", "consequence", "hint"];
    for args in [
        vec!["restore", "--json", "--path", "data", "--key", "a,b"],
        vec!["save", "--json", "--path", "nothing-here", "--key", "k"],
        vec!["restore", "--json", "--bogus"],
    ] {
        let out = sb.run(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let value = json_of(&out);
        assert_eq!(fields(&value), documented_error, "{args:?}: {value}");
        for field in fields(&value["error"]) {
            assert!(
                nested.contains(&field.as_str()),
                "undocumented `error.{field}`"
            );
        }
    }
}
