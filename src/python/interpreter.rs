//! Finding the interpreters a cache is healed for, and asking each what it is.
//!
//! A target is a version (`3.12`), a command (`python3`) or a path. Versions are looked up the
//! way a CI job would have them: `python3.12` on `PATH` (pyenv shims included), then pyenv's
//! own `versions/3.12.*`. Each candidate is *run* with a small script; the first that answers
//! with the asked-for version wins, so a pyenv shim for an inactive version (which exits with an
//! error) is skipped rather than trusted. The script reports what `packaging.tags` reads
//! (sysconfig variables, glibc/musl, macOS version), and [`super::tags`] computes the tags from
//! that in Rust.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env_vars;

/// What one interpreter reported about itself.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct Interpreter {
    /// `sys.implementation.name`: `cpython`, `pypy`, …
    pub implementation: String,
    /// `sys.version_info[:3]`.
    pub version: (u32, u32, u32),
    /// `sysconfig.get_platform()`: `linux-x86_64`, `macosx-11.0-arm64`, `win-amd64`.
    pub platform: String,
    pub pointer_bits: u32,
    pub py_debug: Option<i64>,
    pub gil_disabled: Option<i64>,
    pub with_pymalloc: Option<i64>,
    pub has_refcount: bool,
    pub ext_suffixes: Vec<String>,
    pub ext_suffix: Option<String>,
    pub py_version_nodot: Option<String>,
    /// `(major, minor)` of glibc, when the interpreter runs on glibc.
    pub glibc: Option<(u32, u32)>,
    /// `(major, minor)` of musl, when the interpreter runs on musl.
    pub musl: Option<(u32, u32)>,
    /// `platform.mac_ver()`: version and machine, on macOS.
    pub mac_version: Option<String>,
    pub mac_machine: Option<String>,
    pub system: String,
    pub executable: PathBuf,
}

impl Interpreter {
    /// `3.12.1`.
    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }

    /// A short name for messages: `CPython 3.12.1`, plus `t` when free-threaded.
    pub fn describe(&self) -> String {
        let name = match self.implementation.as_str() {
            "cpython" => "CPython",
            "pypy" => "PyPy",
            other => other,
        };
        let threading = if self.gil_disabled.unwrap_or(0) != 0 {
            "t"
        } else {
            ""
        };
        format!("{name} {}{threading}", self.version_string())
    }
}

/// The query script; kept to syntax every Python 3 reads.
const QUERY: &str = include_str!("query_interpreter.py");

/// Runs one interpreter with the query script.
pub fn query(executable: &Path) -> Result<Interpreter> {
    let output = Command::new(executable)
        .args(["-I", "-c", QUERY])
        .output()
        .with_context(|| format!("running `{}`", executable.display()))?;
    if !output.status.success() {
        bail!(
            "`{}` did not answer the interpreter query ({}): {}",
            executable.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`{}` answered the interpreter query with something that is not its JSON",
            executable.display()
        )
    })
}

/// Finds and queries the interpreter a `--python` value names.
pub fn find(spec: &str) -> Result<Interpreter> {
    let spec = spec.trim();
    if spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/') {
        return query(Path::new(spec));
    }
    let wanted = parse_version(spec);
    let mut tried = Vec::new();
    for candidate in candidates(spec, wanted.as_deref()) {
        match query(&candidate) {
            Ok(found) if version_matches(&found, wanted.as_deref()) => return Ok(found),
            Ok(found) => tried.push(format!(
                "`{}` is {}",
                candidate.display(),
                found.version_string()
            )),
            Err(error) => tried.push(format!("{error:#}")),
        }
    }
    bail!(
        "no interpreter found for `--python {spec}`{}",
        if tried.is_empty() {
            " (looked on `PATH` and in pyenv)".to_string()
        } else {
            format!("; tried: {}", tried.join("; "))
        }
    )
}

/// The default target: `UV_PYTHON`, else `python3` on `PATH`.
pub fn default_specs() -> Vec<String> {
    match std::env::var(env_vars::UV_PYTHON) {
        Ok(value) if !value.trim().is_empty() => vec![value],
        _ => vec!["python3".to_string()],
    }
}

/// `3.12` → `[3, 12]`; `None` for a command name.
fn parse_version(spec: &str) -> Option<Vec<u32>> {
    let numbers: Option<Vec<u32>> = spec.split('.').map(|p| p.parse().ok()).collect();
    numbers.filter(|n| !n.is_empty() && n.len() <= 3)
}

fn version_matches(found: &Interpreter, wanted: Option<&[u32]>) -> bool {
    let Some(wanted) = wanted else { return true };
    let have = [found.version.0, found.version.1, found.version.2];
    wanted.iter().zip(have).all(|(w, h)| *w == h)
}

/// Where to look, in order: `PATH`, then pyenv.
fn candidates(spec: &str, wanted: Option<&[u32]>) -> Vec<PathBuf> {
    let names: Vec<String> = match wanted {
        Some(v) if v.len() >= 2 => vec![format!("python{}.{}", v[0], v[1])],
        Some(v) => vec![format!("python{}", v[0])],
        None => vec![spec.to_string()],
    };
    let mut out: Vec<PathBuf> = names.iter().filter_map(|n| on_path(n)).collect();
    if let Some(wanted) = wanted {
        out.extend(pyenv_versions(wanted));
    }
    out
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `$PYENV_ROOT/versions/<v>*/bin/python3`, newest first.
fn pyenv_versions(wanted: &[u32]) -> Vec<PathBuf> {
    let root = std::env::var_os(env_vars::PYENV_ROOT)
        .map(PathBuf::from)
        .or_else(|| crate::paths::home_dir().map(|h| h.join(".pyenv")));
    let Some(versions) = root.map(|r| r.join("versions")) else {
        return Vec::new();
    };
    let Ok(entries) = fs_err::read_dir(&versions) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = parse_version(&name)?;
            let matches =
                wanted.iter().zip(&version).all(|(w, v)| w == v) && version.len() >= wanted.len();
            let python = e.path().join("bin").join("python3");
            (matches && python.is_file()).then_some((version, python))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).collect()
}
