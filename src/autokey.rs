//! Automatic keys: what the action uses when the workflow gives no `key`, and what
//! `cache-heal key` prints so that a laptop and CI agree on it.
//!
//! A key reads `cache-heal-v1-<os>-<arch>-<tool>-py<X.Y>-<hash>`. Each part is there for a reason
//! that [`KeyInputs::explain`] prints next to it (rust-cache's `printInfo` is the model): the
//! runner's OS and architecture because wheels are platform-specific, the tool because uv's and
//! pip's caches have different layouts, the Python minor because built wheels are per minor, and
//! the hash of the dependency files (`uv.lock`, `pylock.toml`, `requirements*.txt`,
//! `pyproject.toml`, found below the project directory) because they decide what gets installed.
//!
//! The restore keys drop the hash (`…-py3.12-`: the same Python, older locks) and then the Python
//! too (`…-uv-`: any Python on this runner kind). The last one is the cross-Python fallback that
//! heal makes safe (DESIGN.md, "Cross-Python fallback is the point").
//!
//! This module knows file names and versions; it knows nothing of stores, archives or Actions.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bumped when the meaning of a key changes, so that old entries stop matching.
pub const KEY_PREFIX: &str = "cache-heal-v1";

/// How many hex digits of the dependency-file hash go into the key.
const HASH_LEN: usize = 16;

/// Directories never searched for dependency files: other tools' trees and virtualenvs hold
/// `pyproject.toml` files of installed packages that say nothing about this project.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "target",
    "venv",
    "site-packages",
    "__pycache__",
    "build",
    "dist",
];

/// How deep below the project directory dependency files are looked for.
const MAX_DEPTH: usize = 6;

/// Which package manager's cache the key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    Uv,
    Pip,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::Pip => "pip",
        }
    }
}

/// Where the Python version came from, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PythonSource {
    /// `--python-version` (the action's `python-version` input).
    Flag,
    /// The `UV_PYTHON` variable, which uv itself obeys.
    UvPython,
    /// A `.python-version` file, as uv and pyenv read it.
    File(PathBuf),
    /// What `python3 --version` printed.
    Interpreter(String),
}

impl PythonSource {
    fn describe(&self) -> String {
        match self {
            PythonSource::Flag => "`--python-version`".to_string(),
            PythonSource::UvPython => "`UV_PYTHON`".to_string(),
            PythonSource::File(path) => format!("`{}`", path.display()),
            PythonSource::Interpreter(program) => format!("`{program} --version`"),
        }
    }
}

/// The Python minor a key is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonVersion {
    /// `3.12`.
    pub minor: String,
    /// The text it was read from, such as `3.12.4` or `cpython-3.12-linux`.
    pub raw: String,
    pub source: PythonSource,
}

/// A dependency file that went into the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedFile {
    /// Relative to the project directory, `/`-separated.
    pub path: String,
    pub sha256: String,
}

/// Everything a key is made of.
#[derive(Clone, Debug)]
pub struct KeyInputs {
    pub os: String,
    pub arch: String,
    pub tool: Tool,
    pub python: PythonVersion,
    pub files: Vec<HashedFile>,
}

/// Where to look for the inputs; [`Options::from_env`] fills the runner parts.
#[derive(Clone, Debug)]
pub struct Options {
    pub project_dir: PathBuf,
    pub tool: Tool,
    /// `--python-version`, when given.
    pub python_version: Option<String>,
    /// `UV_PYTHON`, when set.
    pub uv_python: Option<String>,
    /// `RUNNER_OS`, else this machine's OS in the runner's spelling.
    pub os: String,
    /// `RUNNER_ARCH`, else this machine's architecture in the runner's spelling.
    pub arch: String,
    /// The interpreter asked last: `python3`.
    pub interpreter: String,
}

impl Options {
    /// Options for `project_dir`, with the OS, architecture and `UV_PYTHON` read from the
    /// environment.
    pub fn from_env(project_dir: PathBuf, tool: Tool, python_version: Option<String>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            project_dir,
            tool,
            // The action passes its `python-version` input even when it is empty.
            python_version: python_version.filter(|v| !v.trim().is_empty()),
            uv_python: var(crate::env_vars::UV_PYTHON),
            os: var(crate::env_vars::RUNNER_OS).unwrap_or_else(|| runner_os(std::env::consts::OS)),
            arch: var(crate::env_vars::RUNNER_ARCH)
                .unwrap_or_else(|| runner_arch(std::env::consts::ARCH)),
            interpreter: "python3".to_string(),
        }
    }
}

/// The runner's spelling of an OS (`RUNNER_OS`): `Linux`, `macOS`, `Windows`.
pub fn runner_os(os: &str) -> String {
    match os {
        "linux" => "Linux".to_string(),
        "macos" => "macOS".to_string(),
        "windows" => "Windows".to_string(),
        other => other.to_string(),
    }
}

/// The runner's spelling of an architecture (`RUNNER_ARCH`): `X64`, `ARM64`, `X86`, `ARM`.
pub fn runner_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "X64".to_string(),
        "aarch64" => "ARM64".to_string(),
        "x86" => "X86".to_string(),
        "arm" => "ARM".to_string(),
        other => other.to_string(),
    }
}

impl KeyInputs {
    /// Finds the Python version and the dependency files.
    pub fn gather(options: &Options) -> Result<Self> {
        let python = python_version(options)?;
        let files = dependency_files(&options.project_dir)?;
        Ok(Self {
            os: options.os.clone(),
            arch: options.arch.clone(),
            tool: options.tool,
            python,
            files,
        })
    }

    /// The hash of the dependency files, or `nolock` when there are none.
    pub fn files_hash(&self) -> String {
        if self.files.is_empty() {
            return "nolock".to_string();
        }
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.path.as_bytes());
            hasher.update(b"\0");
            hasher.update(file.sha256.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())[..HASH_LEN].to_string()
    }

    /// `cache-heal-v1-Linux-X64-uv-`: any Python on this runner kind.
    pub fn tool_prefix(&self) -> String {
        format!(
            "{KEY_PREFIX}-{}-{}-{}-",
            self.os,
            self.arch,
            self.tool.as_str()
        )
    }

    /// `cache-heal-v1-Linux-X64-uv-py3.12-`: this Python, any lock.
    pub fn python_prefix(&self) -> String {
        format!("{}py{}-", self.tool_prefix(), self.python.minor)
    }

    pub fn key(&self) -> String {
        format!("{}{}", self.python_prefix(), self.files_hash())
    }

    /// Most specific first, as the store tries them.
    pub fn restore_keys(&self) -> Vec<String> {
        vec![self.python_prefix(), self.tool_prefix()]
    }

    /// One line per input of the key and why it is there, for the log group.
    pub fn explain(&self) -> Vec<(&'static str, String)> {
        let files = if self.files.is_empty() {
            "none found (no uv.lock, pylock.toml, requirements*.txt or pyproject.toml); the key \
             will not change when dependencies do"
                .to_string()
        } else {
            self.files
                .iter()
                .map(|f| format!("{} (sha256 {}…)", f.path, &f.sha256[..12]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            ("Key", self.key()),
            ("Restore keys", self.restore_keys().join("  ")),
            (
                "Runner",
                format!(
                    "{} {}: wheels and interpreters are built per platform",
                    self.os, self.arch
                ),
            ),
            (
                "Tool",
                format!(
                    "{}: the cache layout depends on the tool",
                    self.tool.as_str()
                ),
            ),
            (
                "Python",
                format!(
                    "{} (`{}` from {}): built wheels are per minor; other minors restore \
                     through `{}` and are healed",
                    self.python.minor,
                    self.python.raw,
                    self.python.source.describe(),
                    self.tool_prefix()
                ),
            ),
            ("Hashed", files),
        ]
    }
}

/// The first place that names a Python version wins: the flag, `UV_PYTHON`, `.python-version`,
/// then the interpreter on `PATH`.
fn python_version(options: &Options) -> Result<PythonVersion> {
    if let Some(text) = &options.python_version {
        return parse_minor(text, PythonSource::Flag)
            .with_context(|| format!("`--python-version` `{text}` names no Python version"));
    }
    // `UV_PYTHON` may name an interpreter path without a version in it; then carry on.
    if let Some(text) = &options.uv_python
        && let Ok(version) = parse_minor(text, PythonSource::UvPython)
    {
        return Ok(version);
    }
    let file = options.project_dir.join(".python-version");
    if let Ok(text) = fs_err::read_to_string(&file) {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        return parse_minor(first, PythonSource::File(PathBuf::from(".python-version")))
            .with_context(|| format!("`{}` names no Python version: `{first}`", file.display()));
    }
    let program = &options.interpreter;
    let output = Command::new(program).arg("--version").output();
    match output {
        Ok(out) if out.status.success() => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            parse_minor(text.trim(), PythonSource::Interpreter(program.clone()))
        }
        _ => bail!(
            "cannot tell which Python the key is for: no `--python-version`, no `UV_PYTHON`, \
             no `.python-version` in `{}`, and `{program} --version` did not run\n\n\
             hint: pass `--python-version 3.12` (the action's `python-version` input)",
            options.project_dir.display()
        ),
    }
}

/// Finds the first `X.Y` in `text`: `3.12.4`, `cpython-3.12`, `Python 3.11.7`, `pypy@3.10`.
pub fn parse_minor(text: &str, source: PythonSource) -> Result<PythonVersion> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let major_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if bytes.get(major_end) == Some(&b'.') {
                let minor_len = bytes[major_end + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if minor_len > 0 {
                    return Ok(PythonVersion {
                        minor: text[i..major_end + 1 + minor_len].to_string(),
                        raw: text.to_string(),
                        source,
                    });
                }
            }
            i = major_end;
        } else {
            i += 1;
        }
    }
    bail!("`{text}` holds no version of the form X.Y")
}

/// Whether a file name is one of the dependency files that go into the key.
pub fn is_dependency_file(name: &str) -> bool {
    name == "uv.lock"
        || name == "pyproject.toml"
        || name == "pylock.toml"
        || (name.starts_with("pylock.") && name.ends_with(".toml"))
        || (name.contains("requirements") && name.ends_with(".txt"))
}

/// Every dependency file below `dir`, sorted by path, with its sha256.
pub fn dependency_files(dir: &Path) -> Result<Vec<HashedFile>> {
    let walker = walkdir::WalkDir::new(dir)
        .max_depth(MAX_DEPTH)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !(e.file_name().to_string_lossy().starts_with('.')
                    || SKIPPED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
        });
    let mut files = Vec::new();
    for entry in walker {
        let entry =
            entry.with_context(|| format!("looking for lock files in `{}`", dir.display()))?;
        if !entry.file_type().is_file() || !is_dependency_file(&entry.file_name().to_string_lossy())
        {
            continue;
        }
        let bytes = fs_err::read(entry.path())?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(HashedFile {
            path: rel,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_are_found_in_what_tools_print() {
        let minor = |t: &str| parse_minor(t, PythonSource::Flag).map(|v| v.minor).ok();
        assert_eq!(minor("3.12.4").as_deref(), Some("3.12"));
        assert_eq!(minor("Python 3.11.7").as_deref(), Some("3.11"));
        assert_eq!(minor("cpython-3.13-linux-x86_64").as_deref(), Some("3.13"));
        assert_eq!(minor("pypy@3.10").as_deref(), Some("3.10"));
        assert_eq!(minor("3.12").as_deref(), Some("3.12"));
        assert_eq!(minor("3"), None);
        assert_eq!(minor("python"), None);
    }

    #[test]
    fn dependency_file_names() {
        for yes in [
            "uv.lock",
            "pyproject.toml",
            "pylock.toml",
            "pylock.dev.toml",
            "requirements.txt",
            "dev-requirements.txt",
            "requirements-test.txt",
        ] {
            assert!(is_dependency_file(yes), "{yes}");
        }
        for no in [
            "setup.py",
            "requirements.in",
            "poetry.lock",
            "uv.toml",
            "pylock.txt",
        ] {
            assert!(!is_dependency_file(no), "{no}");
        }
    }

    #[test]
    fn runner_spellings() {
        assert_eq!(runner_os("macos"), "macOS");
        assert_eq!(runner_arch("aarch64"), "ARM64");
        assert_eq!(runner_arch("x86_64"), "X64");
    }
}
