//! Lock files as a source of sdist URLs: `uv.lock` (`[[package]]` with
//! `sdist = { url, hash = "sha256:…", size }`) and `pylock.toml` (PEP 751: `[[packages]]` with
//! `sdist = { url, hashes = { sha256 = "…" }, size }`, and a per-package `requires-python`,
//! which `uv.lock` does not have). Heal joins them to uv's revisions by
//! sha256 (uv records the same hash in `revision.http`), so names and versions never have to
//! be matched. Parsing is lenient: unknown fields are ignored, entries without a URL or a
//! sha256 are skipped.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An sdist a lock file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedSdist {
    pub name: String,
    pub version: Option<String>,
    pub url: String,
    pub size: Option<u64>,
    /// The package's `requires-python` (pylock.toml only).
    pub requires_python: Option<String>,
    /// Which lock file said so.
    pub source: PathBuf,
}

/// sdists by sha256 (lower-case hex).
pub type BySha256 = HashMap<String, LockedSdist>;

/// Reads every lock file given and indexes their sdists by sha256.
pub fn read_all(paths: &[PathBuf]) -> Result<BySha256> {
    let mut out = BySha256::new();
    for path in paths {
        let text = fs_err::read_to_string(path)?;
        let doc: toml::Table = toml::from_str(&text)
            .with_context(|| format!("`{}` is not valid TOML", path.display()))?;
        collect(&doc, path, &mut out);
    }
    Ok(out)
}

/// `uv.lock` and `pylock.toml` in `dir`, when they exist.
pub fn default_paths(dir: &Path) -> Vec<PathBuf> {
    ["uv.lock", "pylock.toml"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

fn collect(doc: &toml::Table, path: &Path, out: &mut BySha256) {
    // uv.lock: `package`; pylock.toml: `packages`.
    for key in ["package", "packages"] {
        let Some(packages) = doc.get(key).and_then(|v| v.as_array()) else {
            continue;
        };
        for package in packages.iter().filter_map(|p| p.as_table()) {
            let Some(sdist) = package.get("sdist").and_then(|s| s.as_table()) else {
                continue;
            };
            let Some(url) = sdist.get("url").and_then(|u| u.as_str()) else {
                continue;
            };
            let sha256 = sdist
                .get("hash")
                .and_then(|h| h.as_str())
                .and_then(|h| h.strip_prefix("sha256:"))
                .or_else(|| {
                    sdist
                        .get("hashes")
                        .and_then(|h| h.get("sha256"))
                        .and_then(|h| h.as_str())
                });
            let Some(sha256) = sha256 else { continue };
            out.insert(
                sha256.to_ascii_lowercase(),
                LockedSdist {
                    name: package
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_string(),
                    version: package
                        .get("version")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    url: url.to_string(),
                    size: sdist
                        .get("size")
                        .and_then(|s| s.as_integer())
                        .and_then(|s| u64::try_from(s).ok()),
                    requires_python: package
                        .get("requires-python")
                        .and_then(|r| r.as_str())
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(str::to_string),
                    source: path.to_path_buf(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uv_lock_and_pylock() {
        let uv_lock: toml::Table = toml::from_str(
            r#"
version = 1
[[package]]
name = "docopt"
version = "0.6.2"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/docopt-0.6.2.tar.gz", hash = "sha256:AB12", size = 25901 }
[[package]]
name = "six"
version = "1.17.0"
wheels = [{ url = "https://files.example/six.whl", hash = "sha256:cd" }]
"#,
        )
        .unwrap();
        let pylock: toml::Table = toml::from_str(
            r#"
lock-version = "1.0"
[[packages]]
name = "wget"
version = "3.2"
requires-python = ">=3.8"
sdist = { url = "https://files.example/wget-3.2.zip", hashes = { sha256 = "ef34" } }
"#,
        )
        .unwrap();
        let mut out = BySha256::new();
        collect(&uv_lock, Path::new("uv.lock"), &mut out);
        collect(&pylock, Path::new("pylock.toml"), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out["ab12"].size, Some(25901));
        assert_eq!(out["ef34"].name, "wget");
        assert_eq!(out["ef34"].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(out["ab12"].requires_python, None);
    }
}
