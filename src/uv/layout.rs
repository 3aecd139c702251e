//! Which uv cache this is: the bucket directories at its root, matched against the bucket names
//! of the uv releases we know.
//!
//! uv versions every bucket name (`sdists-v11`, `wheels-v8`, …) and bumps the version whenever
//! the format inside changes (uv `CacheBucket::to_str`, `crates/uv-cache/src/lib.rs`; the sdist
//! bucket alone went from v4 to v11 between uv 0.4.13 and 0.13.x). Nothing here computes a
//! path inside a bucket: shards are found by walking (docs/uv-cache.md §1.2). A bucket whose
//! version we do not know is reported and never touched.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A uv release line whose cache layout we know. The names were read from the uv binaries
/// themselves (0.13.9 and 0.12.24), not from docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Generation {
    /// uv 0.12.x: `sdists-v9`, `wheels-v6`; `revision.http` is `[payload][policy][u64 policy
    /// length]` and `Revision` a msgpack map.
    #[serde(rename = "0.12")]
    Uv012,
    /// uv 0.13.x: `sdists-v11`, `wheels-v8`; `revision.http` ends with the u64 payload length
    /// and `Revision` is a msgpack array.
    #[serde(rename = "0.13")]
    Uv013,
}

/// What a bucket holds, as far as prune and heal care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BucketKind {
    /// Source distributions: revision pointers, `src/`, built wheels.
    Sdists,
    /// Pre-built wheels: HTTP pointers and links into `archive-v0`.
    Wheels,
    /// Unzipped wheels, linked to from the two buckets above.
    Archive,
    /// Content-addressed files hard-linked into archives (preview in uv).
    Files,
    /// Temporary build environments.
    Builds,
    /// Cached tool and project environments.
    Environments,
    /// Everything prune keeps as it is: index pages, git, interpreters, Pythons, …
    Kept,
}

/// `(name, kind, generations that use this exact name)`.
const BUCKETS: &[(&str, BucketKind, &[Generation])] = {
    use BucketKind::*;
    use Generation::*;
    &[
        ("sdists-v11", Sdists, &[Uv013]),
        ("sdists-v9", Sdists, &[Uv012]),
        ("wheels-v8", Wheels, &[Uv013]),
        ("wheels-v6", Wheels, &[Uv012]),
        ("archive-v0", Archive, &[Uv012, Uv013]),
        ("files-v0", Files, &[Uv012, Uv013]),
        ("builds-v0", Builds, &[Uv012, Uv013]),
        ("environments-v2", Environments, &[Uv012, Uv013]),
        ("simple-v28", Kept, &[Uv013]),
        ("simple-v25", Kept, &[Uv012]),
        ("flat-index-v7", Kept, &[Uv013]),
        ("flat-index-v5", Kept, &[Uv012]),
        ("git-v2", Kept, &[Uv013]),
        ("git-v1", Kept, &[Uv012]),
        ("interpreter-v5", Kept, &[Uv013]),
        ("interpreter-v4", Kept, &[Uv012]),
        ("python-v1", Kept, &[Uv013]),
        ("python-v0", Kept, &[Uv012]),
        ("osv-v1", Kept, &[Uv013]),
        ("osv-v0", Kept, &[Uv012]),
        ("binaries-v0", Kept, &[Uv012, Uv013]),
    ]
};

/// Top-level files uv itself keeps (uv `Cache::prune` spares exactly these).
pub const ROOT_FILES: &[&str] = &["CACHEDIR.TAG", ".gitignore", ".git", ".lock"];

/// One directory at the cache root that we recognised.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bucket {
    pub name: String,
    pub path: PathBuf,
    pub kind: BucketKind,
    /// The release lines that use this name.
    pub generations: Vec<Generation>,
}

impl Bucket {
    /// The `revision.http` layout to read in this bucket: the newest line using the name.
    pub fn generation(&self) -> Generation {
        *self
            .generations
            .iter()
            .max()
            .expect("every bucket has a generation")
    }
}

/// A top-level entry that is not a bucket we know.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unknown {
    pub name: String,
    pub path: PathBuf,
    /// `true` when the name looks like a uv bucket (`<word>-v<N>`): a layout newer (or much
    /// older) than the ones we know.
    pub looks_like_bucket: bool,
}

/// The root of a uv cache and what is in it.
#[derive(Clone, Debug)]
pub struct Layout {
    pub buckets: Vec<Bucket>,
    pub unknown: Vec<Unknown>,
}

impl Layout {
    /// Reads the root of a uv cache. It is one when it has uv's `CACHEDIR.TAG` or at least one
    /// bucket we know.
    pub fn discover(root: &Path) -> Result<Self> {
        let mut buckets = Vec::new();
        let mut unknown = Vec::new();
        let entries = fs_err::read_dir(root)
            .with_context(|| format!("reading the uv cache at `{}`", root.display()))?;
        let mut names: Vec<_> = entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        for name in names {
            let path = root.join(&name);
            if let Some((_, kind, generations)) = BUCKETS.iter().find(|(n, ..)| *n == name) {
                buckets.push(Bucket {
                    name,
                    path,
                    kind: *kind,
                    generations: generations.to_vec(),
                });
            } else if !ROOT_FILES.contains(&name.as_str()) {
                unknown.push(Unknown {
                    looks_like_bucket: looks_like_bucket(&name),
                    name,
                    path,
                });
            }
        }
        Ok(Self { buckets, unknown })
    }

    /// Whether a directory is a uv cache: uv writes `CACHEDIR.TAG` at its root, and every cache
    /// written by a uv we know has one of our buckets.
    pub fn is_uv_cache(root: &Path) -> bool {
        if !root.is_dir() {
            return false;
        }
        let tagged = fs_err::read_to_string(root.join("CACHEDIR.TAG"))
            .map(|t| t.contains("uv"))
            .unwrap_or(false);
        tagged
            || BUCKETS
                .iter()
                .any(|(name, kind, _)| *kind == BucketKind::Sdists && root.join(name).is_dir())
    }

    /// The newest release line that has its sdist or wheel bucket here: the uv that last
    /// used this cache. Buckets of older lines are what that uv's own prune removes.
    pub fn current_generation(&self) -> Option<Generation> {
        self.buckets
            .iter()
            .filter(|b| matches!(b.kind, BucketKind::Sdists | BucketKind::Wheels))
            .map(Bucket::generation)
            .max()
    }

    pub fn buckets_of(&self, kind: BucketKind) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter().filter(move |b| b.kind == kind)
    }

    /// Unknown entries that look like uv buckets: the ones worth a warning.
    pub fn unknown_buckets(&self) -> impl Iterator<Item = &Unknown> {
        self.unknown.iter().filter(|u| u.looks_like_bucket)
    }
}

/// `sdists-v12`, `flat-index-v9`: a word, `-v`, digits.
fn looks_like_bucket(name: &str) -> bool {
    name.rsplit_once("-v").is_some_and(|(word, version)| {
        !word.is_empty()
            && word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            && !version.is_empty()
            && version.chars().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_like_names() {
        assert!(looks_like_bucket("sdists-v12"));
        assert!(looks_like_bucket("flat-index-v9"));
        assert!(!looks_like_bucket("my-stuff"));
        assert!(!looks_like_bucket("-v3"));
        assert!(!looks_like_bucket("x-vfoo"));
    }

    #[test]
    fn discovers_known_and_unknown_buckets() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["sdists-v11", "wheels-v8", "sdists-v12", "notes"] {
            fs_err::create_dir(dir.path().join(name)).unwrap();
        }
        fs_err::write(dir.path().join("CACHEDIR.TAG"), "uv").unwrap();
        let layout = Layout::discover(dir.path()).unwrap();
        assert_eq!(layout.current_generation(), Some(Generation::Uv013));
        let unknown: Vec<_> = layout.unknown_buckets().map(|u| u.name.as_str()).collect();
        assert_eq!(unknown, ["sdists-v12"]);
        assert_eq!(layout.unknown.len(), 2);
        assert!(Layout::is_uv_cache(dir.path()));
    }
}
