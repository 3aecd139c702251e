//! What a new user meets in the first five minutes (issue 9's table): each test is one row,
//! done the way a user does it, asserting the exit code, the message, and that nothing on
//! disk changed that should not have.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::Path;
use support::{Sandbox, assert_same_tree, list_all, snapshot, stderr, stdout_json};

/// A directory outside the workspace, given by absolute path, with a few files.
fn absolute_dir(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.outside().join("dir");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    std::fs::write(dir.join("sub/b.txt"), "b").unwrap();
    dir
}

fn in_dir(sb: &Sandbox, cwd: &Path, args: &[&str]) -> std::process::Output {
    sb.cmd().current_dir(cwd).args(args).output().unwrap()
}

/// Row 1: `save --path /abs/dir` from one directory, `restore --path /abs/dir` from another
/// restores the same tree (outside Actions, absolute inputs get absolute member names).
#[test]
fn an_absolute_path_restores_from_any_current_directory() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let path = dir.to_str().unwrap();
    let before = snapshot(&dir);
    let one = sb.root().join("one");
    let other = sb.root().join("other");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let out = in_dir(&sb, &one, &["save", "--path", path, "--key", "k1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();

    let out = in_dir(&sb, &other, &["restore", "--path", path, "--key", "k1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Restored `k1`"), "{}", stderr(&out));
    assert_same_tree(&before, &snapshot(&dir));
    assert!(list_all(&other).is_empty(), "nothing lands in the cwd");
}

/// Row 2: the same path spelled differently, or the entry saved with gzip, is a miss that
/// says which input differs and the flag that matches it; `inspect` shows the path lines.
#[test]
fn a_key_saved_with_other_inputs_is_a_miss_that_says_what_differs() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let path = dir.to_str().unwrap().to_string();
    sb.ok(&["save", "--path", &path, "--key", "k1"]);
    sb.ok(&[
        "save",
        "--path",
        &path,
        "--key",
        "k2",
        "--compression",
        "gzip",
    ]);

    let slash = format!("{path}/");
    let out = sb.ok(&["restore", "--path", &slash, "--key", "k1"]);
    let err = stderr(&out);
    assert!(err.contains("No cache entry for `k1`"), "{err}");
    assert!(err.contains("exists in dir:"), "{err}");
    assert!(
        err.contains(&format!(
            "`--path` lines `{path}` (this restore gave `{slash}`)"
        )),
        "{err}"
    );

    let out = sb.ok(&["restore", "--json", "--path", &path, "--key", "k2"]);
    let err = stderr(&out);
    assert!(
        err.contains("`--compression gzip` (this restore asked for zstd)"),
        "{err}"
    );
    let report = stdout_json(&out);
    assert_eq!(report["status"], "miss");
    assert_eq!(report["miss"]["kind"], "no-entry");
    assert_eq!(report["other_versions"][0]["key"], "k2");

    let listed = stdout_json(&sb.ok(&["inspect", "--json"]));
    let entry = &listed["entries"][0];
    assert_eq!(entry["paths"][0], path.as_str());
    assert_eq!(entry["workspace"], sb.ws().to_str().unwrap());
    let table = String::from_utf8_lossy(&sb.ok(&["inspect"]).stdout).into_owned();
    assert!(table.contains(&format!("paths: `{path}`")), "{table}");
}

/// Row 6: values of `--store` that are not stores are usage errors (exit 2) that create
/// nothing, instead of a directory in the current directory.
#[test]
fn a_store_that_is_not_one_is_a_usage_error() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let path = dir.to_str().unwrap();
    for (store, needle) in [
        ("dir:", "`--store dir:` names no directory"),
        (
            "gs://bucket",
            "stores of the kind `gs://` are not supported",
        ),
        ("GHA", "did you mean `--store gha`?"),
        (
            "cachedir",
            "is not a store: expected `gha`, `dir:<DIR>` or a path",
        ),
    ] {
        for command in ["save", "restore"] {
            let out = sb.run(&[command, "--path", path, "--key", "k", "--store", store]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {store}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        }
        assert!(list_all(&sb.ws()).is_empty(), "{store} created something");
    }
}

/// Row 7: `--json` prints exactly one object in every outcome, errors included, and the
/// restore report has the same fields whatever happened.
#[test]
fn json_is_one_object_in_every_outcome() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let path = dir.to_str().unwrap();
    let usage = sb.run(&["restore", "--json", "--path", path, "--key", "a,b"]);
    let error_cases = [
        usage,
        sb.run(&["restore", "--json", "--path", path]),
        sb.run(&[
            "restore", "--json", "--path", path, "--key", "k", "--store", "dir:",
        ]),
        sb.run(&["restore", "--json", "--no-such-flag"]),
    ];
    for out in &error_cases {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
        let value = stdout_json(out);
        assert_eq!(value["status"], "error", "{value}");
        assert_eq!(value["error"]["kind"], "usage", "{value}");
        assert!(value["error"]["message"].as_str().unwrap().len() > 5);
    }

    let miss = stdout_json(&sb.ok(&["restore", "--json", "--path", path, "--key", "k"]));
    sb.ok(&["save", "--path", path, "--key", "k"]);
    let dry = stdout_json(&sb.ok(&[
        "restore",
        "--json",
        "--dry-run",
        "--path",
        path,
        "--key",
        "k",
    ]));
    let hit = stdout_json(&sb.ok(&["restore", "--json", "--path", path, "--key", "k"]));
    let fields = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&miss), fields(&hit));
    assert_eq!(fields(&dry), fields(&hit));
    assert_eq!(hit["command"], "restore");
    assert_eq!(hit["status"], "exact");
    // Where the time went (issue 11): the transfer was timed, and something bounded it.
    assert!(hit["timings"]["transfer"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(
        ["network", "disk"].contains(&hit["bound"].as_str().unwrap()),
        "{hit}"
    );
    assert_eq!(miss["bound"], serde_json::Value::Null);
    assert_eq!(dry["would_replace"][0]["path"], path);
    assert_eq!(dry["would_replace"][0]["files"], 2);

    let listed = stdout_json(&sb.ok(&["inspect", "--json"]));
    assert!(listed.is_object(), "{listed}");
    assert_eq!(listed["entries"].as_array().unwrap().len(), 1);

    let not_saved = sb
        .cmd()
        .env("ACTIONS_CACHE_MODE", "read")
        .env("ACTIONS_RESULTS_URL", "http://127.0.0.1:9/")
        .env("ACTIONS_RUNTIME_TOKEN", "t")
        .args([
            "save", "--json", "--store", "gha", "--path", path, "--key", "k9",
        ])
        .output()
        .unwrap();
    assert_eq!(not_saved.status.code(), Some(0), "{}", stderr(&not_saved));
    let value = stdout_json(&not_saved);
    assert_eq!(value["status"], "not-saved", "{value}");
    assert!(
        value["reason"]
            .as_str()
            .unwrap()
            .contains("ACTIONS_CACHE_MODE")
    );
}

/// Row 8: a value that is not what its flag expects is a usage error, exit 2, before
/// anything happens.
#[test]
fn a_python_version_that_is_not_one_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["key", "--python-version", "banana"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`banana` is not a Python version"),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&["key", "--python-version", "3.12"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Row 9: with `--fail-on-cache-miss`, a miss is one error naming the keys, not "continuing
/// with an empty cache" followed by an error.
#[test]
fn fail_on_cache_miss_says_one_thing() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let before = snapshot(&dir);
    let out = sb.run(&[
        "restore",
        "--path",
        dir.to_str().unwrap(),
        "--key",
        "k",
        "--restore-key",
        "k-",
        "--fail-on-cache-miss",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "error: No cache entry for `k` or restore keys `k-`, and `--fail-on-cache-miss` is set"
        ),
        "{err}"
    );
    assert!(!err.contains("continuing"), "{err}");
    assert_eq!(before, snapshot(&dir));
}

/// Row 11 (without a terminal): the phases after the download say what they do, so a long
/// swap never looks like a hang.
#[test]
fn phases_after_the_download_are_announced() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let path = dir.to_str().unwrap();
    sb.ok(&["save", "--path", path, "--key", "k"]);
    let out = sb.ok(&["restore", "--path", path, "--key", "k"]);
    assert!(
        stderr(&out).contains("Swapping into place…"),
        "{}",
        stderr(&out)
    );
    let out = sb.ok(&["restore", "--no-progress", "--path", path, "--key", "k"]);
    assert!(!stderr(&out).contains("Swapping"), "{}", stderr(&out));
}

/// `prune`, `heal` and `inspect --path` on a directory that is not a uv cache: one usage error
/// (exit 2) that says how to find the cache, and nothing touched.
#[test]
fn a_path_that_is_not_a_uv_cache_is_a_usage_error() {
    let sb = Sandbox::new();
    let dir = absolute_dir(&sb);
    let before = snapshot(&dir);
    let path = dir.to_str().unwrap();
    for args in [
        vec!["prune", "--path", path],
        vec!["heal", "--path", path],
        vec!["inspect", "--path", path],
    ] {
        let out = sb.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("is not a uv cache"), "{err}");
        assert!(
            err.contains("hint: `uv cache dir` prints where uv's cache is"),
            "{err}"
        );
    }
    assert_eq!(before, snapshot(&dir));
}
