//! Build backends: what an offline build of a healed source still lacks, and the uv command
//! that gets it.
//!
//! `uv cache prune --ci` also removes the pre-built wheels of build backends (setuptools,
//! hatchling, Cython …), which an offline build needs. Their cache entries are HTTP pointers
//! (rkyv policy and CRC) that only uv can write, so heal does **not** fetch them. It reads each
//! healed source's `[build-system] requires` (setuptools when absent, as uv assumes) and reports
//! which of those projects have no wheel left in the cache, with a command that has uv cache
//! them:
//!
//! ```text
//! uv pip install --cache-dir <cache> --python <target> --target "$(mktemp -d)" <requirements>
//! ```
//!
//! - `--python <target>`: the requirements may carry markers (`Cython; python_version <
//!   '3.13'`), and a backend may ship wheels per interpreter. uv evaluates both for the target,
//!   as its build isolation will when it builds the source.
//! - `--target "$(mktemp -d)"`: nothing lands in an environment anyone uses; what counts is
//!   that uv downloads the wheels (and their dependencies, which an offline build needs too)
//!   into the cache.
//! - the index heal used, unless it is PyPI or carries credentials (those stay out of logs;
//!   uv then uses its own configuration).
//! - every argument quoted for a POSIX shell, so the line runs exactly as printed.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::heal::{Need, dirs_at_depth};
use super::layout::{BucketKind, Layout};
use crate::python::interpreter::Interpreter;
use crate::python::normalize_name;

/// The index uv uses when told nothing; never worth printing.
pub const PYPI: &str = "https://pypi.org/simple";

/// Build requirements a healed source needs that the cache has no wheel for.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MissingBackend {
    /// `cext 1.0`.
    pub package: String,
    /// The requirements as written in `[build-system] requires`, markers included.
    pub requires: Vec<String>,
    /// The targets the source was healed for (`CPython 3.12.1`).
    pub targets: Vec<String>,
    /// Their interpreters, for the command.
    #[serde(skip)]
    pub pythons: Vec<PathBuf>,
}

/// After healing: for each source with a `src/`, the `[build-system] requires` (setuptools
/// when absent, as uv assumes) whose project has no wheel in the wheels bucket.
pub fn missing_build_backends(layout: &Layout, healed: &[Need]) -> Vec<MissingBackend> {
    let cached = cached_wheel_projects(layout);
    let mut out = Vec::new();
    for need in healed {
        let src = need.sdist.revision_dir().join("src");
        let missing: Vec<String> = build_requires(&src)
            .into_iter()
            .filter(|r| !cached.contains(&normalize_name(requirement_name(r))))
            .collect();
        if !missing.is_empty() {
            out.push(MissingBackend {
                package: need.sdist.label(),
                requires: missing,
                targets: need.lacking.iter().map(Interpreter::describe).collect(),
                pythons: need.lacking.iter().map(|t| t.executable.clone()).collect(),
            });
        }
    }
    out
}

/// The commands that have uv cache every missing requirement of one uv cache: one per target
/// interpreter, each with the requirements of the sources healed for it.
pub fn install_commands(
    cache: &Path,
    missing: &[MissingBackend],
    indexes: &[String],
) -> Vec<String> {
    let mut pythons: Vec<&PathBuf> = missing.iter().flat_map(|m| &m.pythons).collect();
    pythons.sort();
    pythons.dedup();
    pythons
        .into_iter()
        .map(|python| {
            let mut requires: Vec<&str> = Vec::new();
            for entry in missing.iter().filter(|m| m.pythons.contains(python)) {
                for requirement in &entry.requires {
                    if !requires.contains(&requirement.as_str()) {
                        requires.push(requirement);
                    }
                }
            }
            install_command(cache, python, &requires, indexes)
        })
        .collect()
}

/// `uv pip install --cache-dir … --python … --target "$(mktemp -d)" …`, quoted for `sh`.
pub fn install_command(
    cache: &Path,
    python: &Path,
    requires: &[&str],
    indexes: &[String],
) -> String {
    let cache = std::path::absolute(cache).unwrap_or_else(|_| cache.to_path_buf());
    let mut words: Vec<String> = vec![
        "uv pip install --cache-dir".into(),
        shell_quote(&cache.to_string_lossy()).into_owned(),
        "--python".into(),
        shell_quote(&python.to_string_lossy()).into_owned(),
    ];
    let printable = indexes.iter().all(|i| {
        reqwest::Url::parse(i).is_ok_and(|u| u.username().is_empty() && u.password().is_none())
    });
    let only_pypi = indexes.iter().all(|i| i.trim_end_matches('/') == PYPI);
    if printable && !only_pypi {
        for (n, index) in indexes.iter().enumerate() {
            words.push(if n == 0 { "--default-index" } else { "--index" }.into());
            words.push(shell_quote(index).into_owned());
        }
    }
    words.push("--target \"$(mktemp -d)\"".into());
    words.extend(requires.iter().map(|r| shell_quote(r).into_owned()));
    words.join(" ")
}

/// One word for a POSIX shell: as is when nothing in it is special, else in single quotes;
/// a requirement with a marker (`python_version < '3.13'`) goes in double quotes, which keep
/// it readable, when nothing in it is special inside them.
pub fn shell_quote(word: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return Cow::Borrowed(word);
    }
    if !word.contains('\'') {
        return Cow::Owned(format!("'{word}'"));
    }
    if !word.contains(['"', '$', '`', '\\', '!']) {
        return Cow::Owned(format!("\"{word}\""));
    }
    Cow::Owned(format!("'{}'", word.replace('\'', r#"'\''"#)))
}

fn build_requires(src: &Path) -> Vec<String> {
    let default = vec!["setuptools>=40.8.0".to_string()];
    let Ok(text) = fs_err::read_to_string(src.join("pyproject.toml")) else {
        return default;
    };
    let Ok(doc) = toml::from_str::<toml::Table>(&text) else {
        return default;
    };
    match doc
        .get("build-system")
        .and_then(|b| b.get("requires"))
        .and_then(|r| r.as_array())
    {
        Some(list) => list
            .iter()
            .filter_map(|r| r.as_str().map(|r| r.trim().to_string()))
            .filter(|r| !r.is_empty())
            .collect(),
        None => default,
    }
}

fn requirement_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    &requirement[..end]
}

/// Projects that have at least one entry in a wheels bucket (`pypi/<name>/`,
/// `index/<digest>/<name>/`, `url/<digest>/<name>/`).
fn cached_wheel_projects(layout: &Layout) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for bucket in layout.buckets_of(BucketKind::Wheels) {
        for (kind, depth) in [("pypi", 1), ("index", 2), ("url", 2)] {
            if let Ok(dirs) = dirs_at_depth(&bucket.path.join(kind), depth) {
                for dir in dirs {
                    let has_entries = fs_err::read_dir(&dir)
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(false);
                    if has_entries && let Some(name) = dir.file_name() {
                        out.insert(normalize_name(&name.to_string_lossy()));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_names() {
        assert_eq!(requirement_name("setuptools>=40.8.0"), "setuptools");
        assert_eq!(requirement_name("wheel"), "wheel");
        assert_eq!(
            requirement_name("hatch-vcs; python_version>'3'"),
            "hatch-vcs"
        );
    }

    /// What `sh` makes of a quoted word must be the word: checked with the real shell.
    #[test]
    fn quoted_words_survive_the_shell() {
        let words = [
            "setuptools>=40.8.0",
            "Cython; python_version < '3.13'",
            "x; python_version < '3.13' and platform_system != \"Windows\"",
            "it's $HOME `x` \\ !",
            "/var/cache/a dir/uv",
            "plain-word_1.0",
            "",
        ];
        let script = words
            .iter()
            .map(|w| shell_quote(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {script}"))
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{script}");
        let got = String::from_utf8(out.stdout).unwrap();
        let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(got, expected, "{script}");
        assert_eq!(
            shell_quote("Cython; python_version < '3.13'"),
            "\"Cython; python_version < '3.13'\""
        );
        assert_eq!(shell_quote("setuptools>=40.8.0"), "'setuptools>=40.8.0'");
        assert_eq!(shell_quote("plain-word_1.0"), "plain-word_1.0");
    }

    #[test]
    fn commands_name_the_cache_target_and_index_but_no_credentials() {
        let requires = ["setuptools>=40.8.0", "Cython; python_version < '3.13'"];
        let command = install_command(
            Path::new("/c/uv"),
            Path::new("/py/bin/python3"),
            &requires,
            &["http://127.0.0.1:1/simple".into()],
        );
        assert_eq!(
            command,
            "uv pip install --cache-dir /c/uv --python /py/bin/python3 --default-index http://127.0.0.1:1/simple --target \"$(mktemp -d)\" 'setuptools>=40.8.0' \"Cython; python_version < '3.13'\""
        );
        let secret = install_command(
            Path::new("/c/uv"),
            Path::new("/py/bin/python3"),
            &requires,
            &["https://user:s3cret@idx.example/simple".into()],
        );
        assert!(
            !secret.contains("s3cret") && !secret.contains("index"),
            "{secret}"
        );
        let pypi = install_command(
            Path::new("/c/uv"),
            Path::new("/py/bin/python3"),
            &requires,
            &[PYPI.into()],
        );
        assert!(!pypi.contains("index"), "{pypi}");
    }
}
