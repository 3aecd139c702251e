//! `--help`, `-h` and `--version` as a newcomer reads them (issue 9, row 13): the help of every
//! command is pinned by a snapshot under `tests/snapshots/help/`, compared exactly at 80
//! columns; global options sit under their own heading and `--store` only where it acts; every
//! example in the help runs for real; `--version` names the commit and its date.
//!
//! `CACHE_HEAL_UPDATE_SNAPSHOTS=1 cargo test --test help` rewrites the snapshots; review the
//! diff before committing it.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::uv;
use support::{Sandbox, bin, stderr};

const UPDATE: &str = "CACHE_HEAL_UPDATE_SNAPSHOTS";

/// `cache-heal ARGS` with nothing from the caller's environment but a fixed width, so the
/// wrapping and the `[env: …]` notes are the same everywhere.
fn help_output(args: &[&str]) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_clear().env("COLUMNS", "80");
    if let Some(root) = std::env::var_os("SystemRoot") {
        cmd.env("SystemRoot", root);
    }
    let out = cmd.output().expect("run cache-heal");
    assert!(
        out.status.success(),
        "cache-heal {args:?} failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "cache-heal {args:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands, as the top-level help lists them (`help` aside), so that a new command
/// cannot go without a snapshot.
fn subcommands() -> Vec<String> {
    let top = help_output(&["--help"]);
    let start = top.find("\nCommands:\n").expect("a Commands section") + 11;
    top[start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|name| name != "help")
        .collect()
}

/// Every help screen: `(snapshot name, arguments)`, long and short, top level and each command.
fn screens() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let commands: Vec<Option<String>> = std::iter::once(None)
        .chain(subcommands().into_iter().map(Some))
        .collect();
    for command in commands {
        for (flag, suffix) in [("--help", ""), ("-h", ".short")] {
            let name = format!("{}{suffix}", command.as_deref().unwrap_or("cache-heal"));
            let args = command.iter().cloned().chain([flag.to_string()]).collect();
            out.push((name, args));
        }
    }
    out
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help")
}

/// `cache-heal --help` and `-h`, and each command's, equal their snapshots byte for byte.
#[test]
fn help_matches_the_snapshots() {
    let dir = snapshot_dir();
    let update = std::env::var_os(UPDATE).is_some_and(|v| !v.is_empty() && v != "0");
    let mut mismatches = Vec::new();
    let mut expected_files = Vec::new();
    for (name, args) in screens() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let actual = help_output(&args);
        let path = dir.join(format!("{name}.txt"));
        expected_files.push(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        // A checkout with `core.autocrlf` turns the snapshot's line ends into CRLF.
        let snapshot = std::fs::read_to_string(&path)
            .map(|s| s.replace("\r\n", "\n"))
            .unwrap_or_default();
        if snapshot != actual {
            mismatches.push(format!(
                "`cache-heal {}` differs from `{}`:\n{}",
                args.join(" "),
                path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap()
                    .display(),
                first_difference(&snapshot, &actual)
            ));
        }
    }
    let mut stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !expected_files.contains(n))
                .collect()
        })
        .unwrap_or_default();
    stale.sort();
    if update {
        for name in &stale {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        return;
    }
    if !stale.is_empty() {
        mismatches.push(format!("snapshots of no help screen: {stale:?}"));
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nhint: if the new help is right, rewrite the snapshots with \
         `{UPDATE}=1 cargo test --test help` and review the diff",
        mismatches.join("\n\n")
    );
}

/// The first line that differs, with its number, or which text is longer.
fn first_difference(expected: &str, actual: &str) -> String {
    if expected.is_empty() {
        return "  (no snapshot yet)".to_string();
    }
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for number in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => return "  the line ends or the final newline differ".to_string(),
            (x, y) => {
                return format!(
                    "  line {number}\n  snapshot: {:?}\n  actual:   {:?}",
                    x.unwrap_or("(end)"),
                    y.unwrap_or("(end)")
                );
            }
        }
    }
    unreachable!()
}

/// At 80 columns no help line is wider than 80, long or short.
#[test]
fn help_fits_in_80_columns() {
    for (_, args) in screens() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for line in help_output(&args).lines() {
            assert!(
                line.chars().count() <= 80,
                "`cache-heal {}` has a line of {} columns:\n{line}",
                args.join(" "),
                line.chars().count()
            );
        }
    }
}

/// The lines of a help screen under `heading`, up to the next heading.
fn section(help: &str, heading: &str) -> String {
    let marker = format!("\n{heading}:\n");
    let start = help
        .find(&marker)
        .unwrap_or_else(|| panic!("no `{heading}` section in:\n{help}"))
        + marker.len();
    help[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--json`, `--quiet` and `--no-progress` appear under "Global options" on every command,
/// and nowhere else among the flags; `--store` is offered by save, restore, inspect, delete and gc only, and the others
/// refuse it as a usage error (exit 2).
#[test]
fn global_options_are_grouped_and_store_is_only_where_it_acts() {
    for command in subcommands() {
        for flag in ["--help", "-h"] {
            let help = help_output(&[&command, flag]);
            let global = section(&help, "Global options");
            let flags = &help[..help.find("\nExamples:\n").unwrap_or(help.len())];
            for option in ["--json", "--quiet", "--no-progress"] {
                assert!(
                    global.contains(option),
                    "`{command} {flag}`: `{option}` is not under Global options:\n{help}"
                );
                assert_eq!(
                    flags.matches(&format!(" {option}")).count(),
                    1,
                    "`{command} {flag}`: `{option}` shows up outside Global options:\n{help}"
                );
            }
            let store_here =
                ["save", "restore", "inspect", "delete", "gc"].contains(&command.as_str());
            assert_eq!(
                help.contains("--store"),
                store_here,
                "`{command} {flag}`: `--store` offered: {}\n{help}",
                help.contains("--store")
            );
        }
    }
    let sb = Sandbox::new();
    for args in [
        &["key", "--store", "dir:x"][..],
        &["prune", "--path", "c", "--store", "dir:x"],
        &["heal", "--path", "c", "--store", "dir:x"],
    ] {
        let out = sb.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("unexpected argument '--store'"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Global options go before or after the command.
    for args in [&["--json", "key"][..], &["key", "--json"]] {
        let out = sb.run(&[args, &["--python-version", "3.12"]].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(json["key"].as_str().is_some(), "{args:?}: {json}");
    }
}

/// The top-level help lists the exit codes, interrupts included.
#[test]
fn top_level_help_lists_the_exit_codes() {
    for flag in ["--help", "-h"] {
        let help = help_output(&[flag]);
        let codes = section(&help, "Exit codes");
        for code in ["0", "1", "2", "130", "143"] {
            assert!(
                codes
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code} "))),
                "`{flag}` lacks exit code {code}:\n{codes}"
            );
        }
    }
}

/// The `$ cache-heal …` lines under "Examples:" of a command's help.
fn examples(command: &str) -> Vec<String> {
    let help = help_output(&[command, "--help"]);
    let start = help
        .find("\nExamples:\n")
        .unwrap_or_else(|| panic!("`{command} --help` has no Examples section"));
    let found: Vec<String> = help[start..]
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .map(str::to_string)
        .collect();
    assert!(!found.is_empty(), "`{command} --help` shows no example");
    for example in &found {
        assert!(
            example.starts_with(&format!("cache-heal {command}")),
            "`{command} --help` shows an example of another command: {example}"
        );
    }
    found
}

/// Every example in every command's help runs as printed, in a shell, against a real uv cache
/// (filled by real uv) and the default local store, and exits 0; the ones that change
/// something are checked for the change.
#[test]
fn every_example_in_the_help_runs() {
    let sb = Sandbox::new();
    let home = sb.home();
    let cache = home.join(".cache/uv");
    let uv_bin = uv::uv_bin("0.13.9");
    let python = uv::python("3.12");
    let wheels = uv::repo_root().join(".test-deps/index-files");
    uv::check(
        uv::uv(&uv_bin, &cache, "http://127.0.0.1:9/simple")
            .args(["pip", "install", "--no-index", "--find-links"])
            .arg(&wheels)
            .arg("--target")
            .arg(sb.root().join("target"))
            .arg("--python")
            .arg(&python)
            .arg("setuptools"),
    );
    std::fs::write(sb.ws().join("uv.lock"), "version = 1\n").unwrap();
    std::fs::write(sb.ws().join(".python-version"), "3.12\n").unwrap();

    let bin_dir = sb.root().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("cache-heal")).unwrap();
    std::os::unix::fs::symlink(&uv_bin, bin_dir.join("uv")).unwrap();
    let path = std::env::join_paths(
        [bin_dir.clone()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let pyenv_root = python.ancestors().nth(4).unwrap().to_path_buf();
    let shell = |line: &str| -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(line).current_dir(sb.ws());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CACHE_HEAL_")
                || name.starts_with("UV_")
                || name.starts_with("GITHUB_")
                || name.starts_with("ACTIONS_")
                || name.starts_with("RUNNER_")
                || name == "XDG_CACHE_HOME"
            {
                cmd.env_remove(name.as_ref());
            }
        }
        cmd.env("HOME", &home)
            .env("PATH", &path)
            .env("PYENV_ROOT", &pyenv_root)
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never");
        let out = cmd.output().expect("run bash");
        assert!(
            out.status.success(),
            "the example `{line}` failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        out
    };

    for example in examples("save") {
        shell(&example);
    }
    assert!(
        home.join(".cache/cache-heal").is_dir() && home.join("ci-cache").is_dir(),
        "the save examples wrote to the default store and to `~/ci-cache`"
    );

    // Something for the restore examples to find under `uv-`; a marker shows the restore
    // replaced the cache whole.
    shell("cache-heal save --path ~/.cache/uv --key uv-3.11");
    let marker = cache.join("marker-not-in-any-entry");
    std::fs::write(&marker, "x").unwrap();
    let restores = examples("restore");
    shell(&restores[0]);
    assert!(
        !marker.exists() && cache.is_dir(),
        "`{}` did not replace `~/.cache/uv` with the entry",
        restores[0]
    );
    for example in &restores[1..] {
        shell(example);
    }

    for example in examples("inspect") {
        let out = shell(&example);
        if example.contains("--json") {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("`{example}` printed no JSON: {e}"));
            assert!(json.to_string().contains("\"demo\""), "{example}: {json}");
        }
    }
    for command in ["key", "prune", "heal"] {
        for example in examples(command) {
            shell(&example);
        }
    }

    // `gc` keeps what was just saved (the grace window); `delete` then removes `demo`.
    for example in examples("gc") {
        shell(&example);
    }
    let listed = |store: &str| {
        shell(&format!("cache-heal inspect --store {store} --json"))
            .stdout
            .clone()
    };
    let ci_cache = format!("dir:{}", home.join("ci-cache").display());
    assert!(String::from_utf8_lossy(&listed(&ci_cache)).contains("\"demo\""));
    for example in examples("delete") {
        shell(&example);
    }
    assert!(
        !String::from_utf8_lossy(&listed(&ci_cache)).contains("\"demo\""),
        "the delete example left `demo` in `~/ci-cache`"
    );
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git must be installed: the version names the commit");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `--version` and `-V` print `cache-heal 0.1.0 (14b4b98 2026-11-28)`: this checkout's commit
/// and its date, as `build.rs` stamps them.
#[test]
fn version_names_the_commit_and_its_date() {
    let expected = format!(
        "cache-heal {} ({} {})\n",
        env!("CARGO_PKG_VERSION"),
        git(&["rev-parse", "--short=7", "HEAD"]),
        git(&["log", "-1", "--format=%cs"])
    );
    for flag in ["--version", "-V"] {
        assert_eq!(help_output(&[flag]), expected, "`cache-heal {flag}`");
    }
}

/// The README's command-line reference names every flag of every command and the environment
/// variable of each, as `--help` shows them.
#[test]
fn the_readme_reference_names_every_flag_and_variable() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Command-line reference\n")
        .expect("README has a Command-line reference");
    let reference = &readme[start..];
    let reference = &reference[..reference[4..]
        .find("\n## ")
        .map_or(reference.len(), |i| i + 4)];
    for command in subcommands() {
        let help = help_output(&[&command, "--help"]);
        let flags = &help[..help.find("\nExamples:\n").unwrap_or(help.len())];
        for line in flags.lines() {
            let trimmed = line.trim_start();
            // Flags start at column 2 or 6; their descriptions are indented further.
            let is_flag_line = matches!(line.len() - trimmed.len(), 2 | 6);
            let flag = trimmed
                .strip_prefix("-q, ")
                .or_else(|| trimmed.strip_prefix("-h, "))
                .unwrap_or(trimmed);
            if let Some(name) = flag.strip_prefix("--").filter(|_| is_flag_line) {
                let name = name.split([' ', '<']).next().unwrap();
                if name != "help" {
                    assert!(
                        reference.contains(&format!("`--{name}")),
                        "the README reference does not name `{command} --{name}`"
                    );
                }
            }
            if let Some(at) = line.find("[env: ") {
                let var = line[at + 6..].split(']').next().unwrap();
                assert!(
                    reference.contains(&format!("`{var}`")),
                    "the README reference does not name `{var}` (`{command}`)"
                );
            }
        }
    }
}
