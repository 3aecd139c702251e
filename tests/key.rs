//! `cache-heal key`: the automatic key, its restore keys, and the explanation it logs.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::{Sandbox, stderr, stdout_json};

/// A project with a lock file, a `pyproject.toml` and a `.python-version`.
fn project(sb: &Sandbox) {
    let ws = sb.ws();
    std::fs::write(
        ws.join("uv.lock"),
        "version = 1\n[[package]]\nname = \"a\"\n",
    )
    .unwrap();
    std::fs::write(ws.join("pyproject.toml"), "[project]\nname = \"demo\"\n").unwrap();
    std::fs::write(ws.join(".python-version"), "3.12.4\n").unwrap();
}

/// `cache-heal key` on a pretend Linux X64 runner with no Python hints from the caller.
fn key_cmd(sb: &Sandbox) -> Command {
    let mut cmd = sb.cmd();
    cmd.env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env_remove("UV_PYTHON")
        .env_remove("CACHE_HEAL_PYTHON_VERSION")
        .env_remove("GITHUB_OUTPUT")
        .arg("key");
    cmd
}

fn json(sb: &Sandbox, extra: &[&str]) -> serde_json::Value {
    let out = key_cmd(sb).arg("--json").args(extra).output().unwrap();
    assert!(out.status.success(), "key failed: {}", stderr(&out));
    stdout_json(&out)
}

fn key_of(v: &serde_json::Value) -> String {
    v["key"].as_str().unwrap().to_string()
}

fn restore_keys_of(v: &serde_json::Value) -> Vec<String> {
    v["restore_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// The same project gives the same key, in the documented shape.
#[test]
fn same_inputs_give_the_same_key() {
    let sb = Sandbox::new();
    project(&sb);
    let first = json(&sb, &[]);
    let second = json(&sb, &[]);
    assert_eq!(first, second);
    let key = key_of(&first);
    let hash = key
        .strip_prefix("cache-heal-v1-Linux-X64-uv-py3.12-")
        .unwrap_or_else(|| panic!("unexpected key shape: {key}"));
    assert_eq!(hash.len(), 16, "{key}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    assert_eq!(
        restore_keys_of(&first),
        vec![
            "cache-heal-v1-Linux-X64-uv-py3.12-".to_string(),
            "cache-heal-v1-Linux-X64-uv-".to_string()
        ]
    );
    let files: Vec<&str> = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["pyproject.toml", "uv.lock"]);
    // Plain output is the key alone on stdout, for `$(cache-heal key)`.
    let out = key_cmd(&sb).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), key);
}

/// A changed lock file gives a new key; its first restore key still finds the entry saved
/// under the old key.
#[test]
fn changed_lock_file_gives_a_new_key_with_a_working_restore_key() {
    let sb = Sandbox::new();
    project(&sb);
    let old = json(&sb, &[]);
    let data = sb.home().join(".cache/uv");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("wheel.txt"), "built wheel").unwrap();
    sb.ok(&["save", "--path", "~/.cache/uv", "--key", &key_of(&old)]);

    std::fs::write(
        sb.ws().join("uv.lock"),
        "version = 1\n[[package]]\nname = \"b\"\n",
    )
    .unwrap();
    let new = json(&sb, &[]);
    assert_ne!(key_of(&old), key_of(&new));
    assert_eq!(restore_keys_of(&old), restore_keys_of(&new));

    std::fs::remove_dir_all(&data).unwrap();
    let restore_keys = restore_keys_of(&new);
    let out = sb.ok(&[
        "restore",
        "--json",
        "--path",
        "~/.cache/uv",
        "--key",
        &key_of(&new),
        "--restore-key",
        &restore_keys[0],
        "--restore-key",
        &restore_keys[1],
    ]);
    let result = stdout_json(&out);
    assert_eq!(result["status"], "partial");
    assert_eq!(result["matched_key"].as_str().unwrap(), key_of(&old));
    assert_eq!(
        std::fs::read_to_string(data.join("wheel.txt")).unwrap(),
        "built wheel"
    );
}

/// Another Python minor changes the key but shares the last restore key (the cross-Python
/// fallback).
#[test]
fn another_python_falls_back_through_the_tool_prefix() {
    let sb = Sandbox::new();
    project(&sb);
    let py312 = json(&sb, &[]);
    let py313 = json(&sb, &["--python-version", "3.13"]);
    assert!(key_of(&py313).starts_with("cache-heal-v1-Linux-X64-uv-py3.13-"));
    assert_eq!(restore_keys_of(&py312)[1], restore_keys_of(&py313)[1]);
    assert!(key_of(&py312).starts_with(&restore_keys_of(&py313)[1]));
    assert!(!key_of(&py312).starts_with(&restore_keys_of(&py313)[0]));
}

/// The flag beats `UV_PYTHON`, which beats `.python-version`, which beats `python3`.
#[test]
fn python_version_sources_in_order() {
    let sb = Sandbox::new();
    project(&sb);
    let minor = |cmd: &mut Command| -> String {
        let out = cmd.arg("--json").output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout_json(&out)["python"]["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(minor(&mut key_cmd(&sb)), "3.12");
    assert_eq!(minor(key_cmd(&sb).env("UV_PYTHON", "cpython-3.11")), "3.11");
    assert_eq!(
        minor(
            key_cmd(&sb)
                .env("UV_PYTHON", "3.11")
                .args(["--python-version", "3.10.2"])
        ),
        "3.10"
    );
    // Without any of them, the interpreter on PATH decides.
    std::fs::remove_file(sb.ws().join(".python-version")).unwrap();
    let version = Command::new("python3").arg("--version").output().unwrap();
    let printed = String::from_utf8_lossy(&version.stdout).into_owned()
        + &String::from_utf8_lossy(&version.stderr);
    let expected: Vec<&str> = printed
        .trim()
        .trim_start_matches("Python ")
        .split('.')
        .collect();
    assert_eq!(
        minor(&mut key_cmd(&sb)),
        format!("{}.{}", expected[0], expected[1])
    );
}

/// A version that names no `X.Y` is refused with the flag named.
#[test]
fn a_bad_python_version_names_the_flag() {
    let sb = Sandbox::new();
    project(&sb);
    let out = key_cmd(&sb)
        .args(["--python-version", "latest"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("--python-version"), "{err}");
    assert!(err.contains("`latest` is not a Python version"), "{err}");
}

/// Lock files in virtualenvs, hidden directories and `node_modules` say nothing about the
/// project and are not hashed; ones in subprojects are.
#[test]
fn only_project_dependency_files_are_hashed() {
    let sb = Sandbox::new();
    project(&sb);
    let write = |rel: &str| {
        let path = sb.ws().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    };
    let before = key_of(&json(&sb, &[]));
    write(".venv/lib/python3.12/site-packages/pkg/pyproject.toml");
    write("node_modules/x/requirements.txt");
    write(".tox/py312/requirements.txt");
    assert_eq!(key_of(&json(&sb, &[])), before);
    write("services/api/requirements-dev.txt");
    let after = json(&sb, &[]);
    assert_ne!(key_of(&after), before);
    assert!(
        after["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "services/api/requirements-dev.txt")
    );
}

/// No dependency file at all: a warning, a `nolock` key, and success.
#[test]
fn no_dependency_file_warns_and_still_gives_a_key() {
    let sb = Sandbox::new();
    let out = key_cmd(&sb)
        .args(["--python-version", "3.12"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cache-heal-v1-Linux-X64-uv-py3.12-nolock"
    );
    assert!(
        stderr(&out).contains("warning: No `uv.lock`"),
        "{}",
        stderr(&out)
    );
}

/// In Actions: one collapsed group that names every input and why, and the key, restore keys
/// and Python version as step outputs.
#[test]
fn in_actions_the_inputs_are_logged_in_a_group_and_set_as_outputs() {
    let sb = Sandbox::new();
    project(&sb);
    let output_file = sb.root().join("github_output");
    let out: Output = key_cmd(&sb)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = stderr(&out);
    let group_start = log.find("::group::cache-heal: key").expect(&log);
    let group_end = log.find("::endgroup::").expect(&log);
    let group = &log[group_start..group_end];
    for needle in [
        key.as_str(),
        "Restore keys",
        "Linux X64: wheels and interpreters are built per platform",
        "uv: the cache layout depends on the tool",
        "3.12 (`3.12.4` from `.python-version`)",
        "uv.lock (sha256 ",
        "pyproject.toml (sha256 ",
    ] {
        assert!(group.contains(needle), "group lacks `{needle}`:\n{group}");
    }
    let outputs = parse_outputs(&output_file);
    assert_eq!(outputs.get("key"), Some(&key));
    assert_eq!(
        outputs.get("restore-keys").map(String::as_str),
        Some("cache-heal-v1-Linux-X64-uv-py3.12-\ncache-heal-v1-Linux-X64-uv-")
    );
    assert_eq!(
        outputs.get("python-version").map(String::as_str),
        Some("3.12")
    );
}

/// Reads a `GITHUB_OUTPUT` file the way the runner does (`name<<DELIM` blocks).
pub fn parse_outputs(file: &Path) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines = text.lines();
    let mut out = std::collections::BTreeMap::new();
    while let Some(line) = lines.next() {
        let (name, delim) = line
            .split_once("<<")
            .unwrap_or_else(|| panic!("not the heredoc form: {line}"));
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delim {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_string(), value.join("\n"));
    }
    out
}
