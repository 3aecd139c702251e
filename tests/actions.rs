//! `restore` and `save` as GitHub Actions steps: the outputs (actions/cache's meaning of
//! `cache-hit`), the state the save step reads, the step summary, the up-to-date skip, and the
//! trust defaults (untrusted events, credential files).
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{Sandbox, stderr, stdout_json};

/// The files a runner hands a step, inside the sandbox.
struct Runner {
    output: PathBuf,
    summary: PathBuf,
    temp: PathBuf,
}

impl Runner {
    fn new(sb: &Sandbox) -> Self {
        let temp = sb.root().join("runner_temp");
        std::fs::create_dir_all(&temp).unwrap();
        Self {
            output: sb.root().join("github_output"),
            summary: sb.root().join("step_summary"),
            temp,
        }
    }

    /// `cache-heal` as one step of a `push` run on `main`. Each call starts a new step: the
    /// output file is emptied, as the runner gives every step its own.
    fn step(&self, sb: &Sandbox) -> Command {
        let _ = std::fs::remove_file(&self.output);
        let mut cmd = sb.cmd();
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &self.output)
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            .env("RUNNER_TEMP", &self.temp)
            .env("GITHUB_EVENT_NAME", "push")
            .env("GITHUB_REF", "refs/heads/main");
        cmd
    }

    fn outputs(&self) -> BTreeMap<String, String> {
        parse_outputs(&self.output)
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run cache-heal");
    assert!(
        out.status.success(),
        "cache-heal failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    out
}

/// `~/.cache/uv` in the sandbox with two files.
fn fill_cache(sb: &Sandbox) -> PathBuf {
    let dir = sb.home().join(".cache/uv");
    std::fs::create_dir_all(dir.join("wheels")).unwrap();
    std::fs::write(dir.join("wheels/a.whl"), "wheel a").unwrap();
    std::fs::write(
        dir.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55",
    )
    .unwrap();
    dir
}

fn entries(sb: &Sandbox) -> Vec<String> {
    let out = sb.ok(&["inspect", "--json"]);
    stdout_json(&out)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect()
}

const PATH: &str = "~/.cache/uv";

/// A miss sets the primary key and status and leaves `cache-hit` and `cache-matched-key`
/// unset, as actions/cache does.
#[test]
fn a_miss_leaves_cache_hit_unset() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    run(runner.step(&sb).args([
        "restore",
        "--path",
        PATH,
        "--key",
        "k-1",
        "--restore-key",
        "k-",
    ]));
    let outputs = runner.outputs();
    assert_eq!(
        outputs.get("cache-primary-key").map(String::as_str),
        Some("k-1")
    );
    assert_eq!(
        outputs.get("cache-status").map(String::as_str),
        Some("miss")
    );
    assert_eq!(outputs.get("bytes-restored").map(String::as_str), Some("0"));
    assert_eq!(outputs.get("healed").map(String::as_str), Some("0"));
    assert!(!outputs.contains_key("cache-hit"), "{outputs:?}");
    assert!(!outputs.contains_key("cache-matched-key"), "{outputs:?}");
    let summary = std::fs::read_to_string(&runner.summary).unwrap();
    assert!(summary.contains("| Status | miss |"), "{summary}");
}

/// The step summary of an exact hit, whole (times and sizes filtered).
#[test]
fn step_summary_snapshot() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let dir = fill_cache(&sb);
    sb.ok(&["save", "--path", PATH, "--key", "uv-1"]);
    std::fs::remove_dir_all(&dir).unwrap();
    run(runner.step(&sb).args([
        "restore",
        "--path",
        PATH,
        "--key",
        "uv-1",
        "--restore-key",
        "uv-",
    ]));
    let summary = std::fs::read_to_string(&runner.summary).unwrap();
    let filtered: Vec<String> = summary
        .lines()
        .map(|l| match l.split(" | ").next() {
            Some("| Time") => "| Time | [TIME] |".to_string(),
            Some("| Restored") => format!("{} ([SIZE] archive) |", l.split(" (").next().unwrap()),
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(
        filtered.join("\n"),
        "### cache-heal restore\n\n| | |\n| --- | --- |\n\
         | Key | `uv-1` |\n\
         | Restore keys | `uv-` |\n\
         | Matched key | `uv-1` |\n\
         | Status | exact |\n\
         | Restored | 50 B ([SIZE] archive) |\n\
         | Time | [TIME] |\n\
         | Healed | 0 packages |\n"
    );
}

/// The restore explains what it looks for in one collapsed group, then says what happened
/// outside it.
#[test]
fn restore_explains_its_key_in_a_log_group() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let out = run(runner.step(&sb).args([
        "restore",
        "--path",
        PATH,
        "--key",
        "k-1",
        "--restore-key",
        "k-",
    ]));
    let log = stderr(&out);
    let start = log
        .find("::group::cache-heal: restore `~/.cache/uv`")
        .expect(&log);
    let end = log.find("::endgroup::").expect(&log);
    let group = &log[start..end];
    assert!(group.contains("Key           k-1"), "{group}");
    assert!(group.contains("Restore keys  k-"), "{group}");
    assert!(group.contains("zstd-without-long"), "{group}");
    assert!(log[end..].contains("No cache entry for `k-1`"), "{log}");
}

/// An exact hit is `cache-hit=true`; a restore-key hit is `false`. (The comparison ignores
/// case, as actions/cache's does; `key::is_exact_hit` pins that, since the local store itself
/// matches keys case-sensitively.)
#[test]
fn exact_and_partial_hits_set_outputs_like_actions_cache() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let dir = fill_cache(&sb);
    sb.ok(&["save", "--path", PATH, "--key", "uv-Linux-abc"]);
    std::fs::remove_dir_all(&dir).unwrap();

    run(runner
        .step(&sb)
        .args(["restore", "--path", PATH, "--key", "uv-Linux-abc"]));
    let outputs = runner.outputs();
    assert_eq!(outputs.get("cache-hit").map(String::as_str), Some("true"));
    assert_eq!(
        outputs.get("cache-matched-key").map(String::as_str),
        Some("uv-Linux-abc")
    );
    assert_eq!(
        outputs.get("cache-status").map(String::as_str),
        Some("exact")
    );
    let content = ("wheel a".len() + "Signature: 8a477f597d28d172789f06886806bc55".len()) as u64;
    assert_eq!(
        outputs.get("bytes-restored").map(String::as_str),
        Some(content.to_string().as_str())
    );

    run(runner.step(&sb).args([
        "restore",
        "--path",
        PATH,
        "--key",
        "uv-Linux-def",
        "--restore-key",
        "uv-Linux-",
    ]));
    let outputs = runner.outputs();
    assert_eq!(outputs.get("cache-hit").map(String::as_str), Some("false"));
    assert_eq!(
        outputs.get("cache-status").map(String::as_str),
        Some("partial")
    );
    assert_eq!(
        outputs.get("cache-primary-key").map(String::as_str),
        Some("uv-Linux-def")
    );
    let summary = std::fs::read_to_string(&runner.summary).unwrap();
    assert!(
        summary.contains("| Matched key | `uv-Linux-abc` |"),
        "{summary}"
    );
    assert!(summary.contains("| Status | partial |"), "{summary}");
}

/// After an exact hit with nothing changed, the save step skips the upload; after a change it
/// does not skip.
#[test]
fn save_skips_an_unchanged_exact_hit() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let dir = fill_cache(&sb);
    // Saved by an earlier run on `main`, so in the scope this run saves into.
    run(runner
        .step(&sb)
        .args(["save", "--path", PATH, "--key", "uv-1"]));
    std::fs::remove_dir_all(&dir).unwrap();
    run(runner
        .step(&sb)
        .args(["restore", "--path", PATH, "--key", "uv-1"]));

    // The save step gives no key: it saves under the restore step's primary key.
    let out = run(runner.step(&sb).args(["save", "--json", "--path", PATH]));
    assert_eq!(
        stdout_json(&out)["status"],
        "up-to-date",
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Cache up-to-date: `uv-1`"),
        "{}",
        stderr(&out)
    );

    std::fs::write(dir.join("wheels/b.whl"), "wheel b").unwrap();
    let out = run(runner.step(&sb).args(["save", "--json", "--path", PATH]));
    // Changed, so it tries; the entry is immutable, so the store says it exists.
    assert_eq!(stdout_json(&out)["status"], "exists", "{}", stderr(&out));
}

/// After a partial hit, the save step saves a new entry under the primary key it recorded.
#[test]
fn save_after_a_partial_hit_uses_the_recorded_primary_key() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let dir = fill_cache(&sb);
    sb.ok(&["save", "--path", PATH, "--key", "uv-py3.11-aaa"]);
    std::fs::remove_dir_all(&dir).unwrap();
    run(runner.step(&sb).args([
        "restore",
        "--path",
        PATH,
        "--key",
        "uv-py3.12-bbb",
        "--restore-key",
        "uv-",
    ]));
    let out = run(runner.step(&sb).args(["save", "--json", "--path", PATH]));
    assert_eq!(stdout_json(&out)["status"], "saved", "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["key"], "uv-py3.12-bbb");
    let mut keys = entries(&sb);
    keys.sort();
    assert_eq!(keys, vec!["uv-py3.11-aaa", "uv-py3.12-bbb"]);
}

/// Without `--key` and without a restore step before it, save says what is missing.
#[test]
fn save_without_a_key_or_a_restore_state_fails_clearly() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    fill_cache(&sb);
    let out = runner
        .step(&sb)
        .args(["save", "--path", PATH])
        .output()
        .unwrap();
    // A usage error, as a missing `--key` was before the key became optional.
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(
            "`--key` is empty or not given, and no restore of `~/.cache/uv` earlier in this job"
        ),
        "{err}"
    );
    assert!(entries(&sb).is_empty());
}

/// Release, tag push, `pull_request_target` and `workflow_run` runs do not restore unless
/// allowed, and allowing it warns.
#[test]
fn untrusted_events_do_not_restore_by_default() {
    let sb = Sandbox::new();
    let runner = Runner::new(&sb);
    let dir = fill_cache(&sb);
    sb.ok(&["save", "--path", PATH, "--key", "uv-1"]);
    std::fs::remove_dir_all(&dir).unwrap();

    for (event, git_ref, said) in [
        ("release", "refs/tags/v1.0.0", "the `release` event"),
        (
            "pull_request_target",
            "refs/heads/main",
            "the `pull_request_target` event",
        ),
        (
            "workflow_run",
            "refs/heads/main",
            "the `workflow_run` event",
        ),
        ("push", "refs/tags/v1.0.0", "a run for the tag `v1.0.0`"),
    ] {
        let out = run(runner
            .step(&sb)
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_REF", git_ref)
            .args(["restore", "--path", PATH, "--key", "uv-1"]));
        let err = stderr(&out);
        assert!(err.contains(&format!("Not restoring in {said}")), "{err}");
        assert!(!dir.exists(), "{event}: restored anyway");
        let outputs = runner.outputs();
        assert_eq!(
            outputs.get("cache-status").map(String::as_str),
            Some("miss")
        );
        assert!(!outputs.contains_key("cache-hit"));
    }

    let out = run(runner
        .step(&sb)
        .env("GITHUB_EVENT_NAME", "pull_request_target")
        .args([
            "restore",
            "--path",
            PATH,
            "--key",
            "uv-1",
            "--allow-untrusted-event",
        ]));
    assert!(
        stderr(&out).contains("::warning::Restoring in the `pull_request_target` event"),
        "{}",
        stderr(&out)
    );
    assert!(dir.join("wheels/a.whl").exists());
    assert_eq!(
        runner.outputs().get("cache-hit").map(String::as_str),
        Some("true")
    );
}

/// Credential files inside a saved path stay on disk but never reach the entry.
#[test]
fn credential_files_are_not_saved() {
    let sb = Sandbox::new();
    let dir = fill_cache(&sb);
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        ".netrc",
        "machine pypi.example.com login me password hunter2\n",
    );
    write("nested/.pypirc", "[pypi]\npassword = hunter2\n");
    write(
        "pip/pip.conf",
        "[global]\nindex-url = https://me:hunter2@pypi.example.com/simple\n",
    );
    write(
        "uv/uv.toml",
        "[[index]]\nurl = \"https://__token__@pypi.example.com/simple\"\n",
    );
    write(
        "clean/pip.conf",
        "[global]\nindex-url = https://pypi.org/simple\n",
    );

    let out = sb.ok(&["save", "--path", PATH, "--key", "uv-creds"]);
    let err = stderr(&out);
    for rel in [".netrc", "nested/.pypirc", "pip/pip.conf", "uv/uv.toml"] {
        assert!(
            err.contains(&format!(
                "warning: Not saving `{}`",
                dir.join(rel).display()
            )),
            "no warning for {rel}: {err}"
        );
        assert!(dir.join(rel).exists(), "{rel} was removed from disk");
    }
    assert!(!err.contains("clean/pip.conf"), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
    sb.ok(&["restore", "--path", PATH, "--key", "uv-creds"]);
    for rel in [".netrc", "nested/.pypirc", "pip/pip.conf", "uv/uv.toml"] {
        assert!(!dir.join(rel).exists(), "{rel} was saved");
    }
    assert!(dir.join("clean/pip.conf").exists());
    assert!(dir.join("wheels/a.whl").exists());
    assert!(!contains_bytes(&sb.store(), b"hunter2"));
}

/// Whether any file below `dir` contains `needle` once decompressed (entries are zstd).
fn contains_bytes(dir: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .any(|e| {
            let raw = std::fs::read(e.path()).unwrap();
            let data = zstd::decode_all(&raw[..]).unwrap_or(raw);
            data.windows(needle.len()).any(|w| w == needle)
        })
}

/// Reads a `GITHUB_OUTPUT` file the way the runner does (`name<<DELIM` blocks).
fn parse_outputs(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines = text.lines();
    let mut out = BTreeMap::new();
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
