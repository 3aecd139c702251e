//! Keys, restore keys and the entry *version*, with the rules actions/cache applies.
//!
//! A *key* names an entry; *restore keys* are fallbacks tried in order when the key has no exact
//! match. The *version* is a hash of the path inputs and the compression method: two entries with
//! the same key but different versions are different entries, which is what keeps a gzip archive
//! from being handed to a reader that expects zstd. Everything here follows
//! `@actions/cache` (`cache.ts` key checks, `internal/cacheUtils.ts::getCacheVersion`) so that
//! entries saved by one tool restore with the other.

use sha2::{Digest, Sha256};
use std::fmt;

/// The longest key actions/cache accepts.
pub const MAX_KEY_LENGTH: usize = 512;
/// The most keys (primary plus restore keys) actions/cache accepts in one restore.
pub const MAX_KEYS: usize = 10;
/// The last component of every version pre-image; actions/cache bumps it to invalidate all
/// entries at once.
const VERSION_SALT: &str = "1.0";

/// How an archive is compressed. The names are the ones actions/cache hashes into the version.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd level 3, multi-threaded, without long mode: what actions/cache writes.
    Zstd,
    /// gzip level 6: what actions/cache writes when no `zstd` binary is installed.
    Gzip,
}

impl Compression {
    /// The name actions/cache puts into the version pre-image.
    pub fn version_name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd-without-long",
            Compression::Gzip => "gzip",
        }
    }

    /// The file extension actions/cache gives archives of this kind.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tzst",
            Compression::Gzip => "tgz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        })
    }
}

/// Why a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key `{0}` is empty")]
    Empty(String),
    #[error("key `{key}…` is {len} characters long; the limit is {MAX_KEY_LENGTH}", key = .key.chars().take(40).collect::<String>())]
    TooLong { key: String, len: usize },
    #[error("key `{0}` contains a comma, which the cache service does not allow")]
    Comma(String),
    #[error("{0} keys were given (the key and its restore keys); the limit is {MAX_KEYS}")]
    TooMany(usize),
}

/// Checks one key against actions/cache's rules.
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    let len = key.chars().count();
    if key.trim().is_empty() {
        Err(KeyError::Empty(key.to_string()))
    } else if len > MAX_KEY_LENGTH {
        Err(KeyError::TooLong {
            key: key.to_string(),
            len,
        })
    } else if key.contains(',') {
        Err(KeyError::Comma(key.to_string()))
    } else {
        Ok(())
    }
}

/// Checks the primary key, every restore key, and their number together.
pub fn validate_keys(primary: &str, restore_keys: &[String]) -> Result<(), KeyError> {
    let total = 1 + restore_keys.len();
    if total > MAX_KEYS {
        return Err(KeyError::TooMany(total));
    }
    validate_key(primary)?;
    restore_keys.iter().try_for_each(|key| validate_key(key))
}

/// The actions/cache entry version: sha256 of the path inputs *as typed*, the compression
/// method, a Windows marker, and the salt, joined with `|`.
///
/// Source: toolkit `internal/cacheUtils.ts::getCacheVersion`. The paths are the inputs after
/// splitting and trimming, not their expansion, so the same workflow text always gives the same
/// version on every machine.
pub fn entry_version(path_inputs: &[String], compression: Compression) -> String {
    let mut components: Vec<&str> = path_inputs.iter().map(String::as_str).collect();
    components.push(compression.version_name());
    if cfg!(windows) {
        // actions/cache adds this unless `enableCrossOsArchive` is set, so that a Windows
        // archive (different path separators, no symlinks) never restores on Linux.
        components.push("windows-only");
    }
    components.push(VERSION_SALT);
    hex::encode(Sha256::digest(components.join("|").as_bytes()))
}

/// Whether a matched key counts as an exact hit: actions/cache compares with
/// `localeCompare(..., {sensitivity: 'accent'})`, which ignores case.
pub fn is_exact_hit(matched: &str, primary: &str) -> bool {
    matched.to_lowercase() == primary.to_lowercase()
}

/// A stored entry as far as key matching is concerned.
pub trait Candidate {
    fn key(&self) -> &str;
    fn version(&self) -> &str;
    /// Creation time; newer entries win prefix matches.
    fn created(&self) -> u128;
}

/// Picks the entry a restore gets, in the order GitHub's cache service uses: the exact key,
/// then the key as a prefix (newest first), then each restore key exact and then as a prefix
/// (newest first). Only entries of the same version are considered.
pub fn find_match<'a, C: Candidate>(
    entries: &'a [C],
    version: &str,
    primary: &str,
    restore_keys: &[String],
) -> Option<&'a C> {
    let same_version: Vec<&C> = entries.iter().filter(|e| e.version() == version).collect();
    std::iter::once(primary)
        .chain(restore_keys.iter().map(String::as_str))
        .find_map(|wanted| {
            let exact = same_version.iter().find(|e| e.key() == wanted);
            exact.copied().or_else(|| {
                same_version
                    .iter()
                    .filter(|e| e.key().starts_with(wanted))
                    .max_by(|a, b| {
                        a.created()
                            .cmp(&b.created())
                            .then_with(|| a.key().cmp(b.key()))
                    })
                    .copied()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static str, &'static str, u128);
    impl Candidate for E {
        fn key(&self) -> &str {
            self.0
        }
        fn version(&self) -> &str {
            self.1
        }
        fn created(&self) -> u128 {
            self.2
        }
    }

    #[test]
    fn version_matches_the_one_actions_cache_sent() {
        // Captured from @actions/cache 6.3.0 (docs/gha-cache-protocol.md §5).
        let version = entry_version(
            &["data".to_string(), "~/gha-rt-outside".to_string()],
            Compression::Zstd,
        );
        if cfg!(not(windows)) {
            assert_eq!(
                version,
                "cb6a7baa7f5f39f55e2c248a70692977d59032f6a6135b1186d958d1715cb036"
            );
        }
    }

    #[test]
    fn version_depends_on_compression_and_path_text() {
        let paths = vec!["~/.cache/uv".to_string()];
        assert_ne!(
            entry_version(&paths, Compression::Zstd),
            entry_version(&paths, Compression::Gzip)
        );
        assert_ne!(
            entry_version(&paths, Compression::Zstd),
            entry_version(&["/root/.cache/uv".to_string()], Compression::Zstd)
        );
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("uv-Linux-abc").is_ok());
        assert_eq!(validate_key(&"k".repeat(512)), Ok(()));
        assert!(matches!(
            validate_key(&"k".repeat(513)),
            Err(KeyError::TooLong { len: 513, .. })
        ));
        assert_eq!(validate_key("a,b"), Err(KeyError::Comma("a,b".into())));
        assert_eq!(validate_key(" "), Err(KeyError::Empty(" ".into())));
        let nine: Vec<String> = (0..9).map(|i| format!("r{i}")).collect();
        assert!(validate_keys("k", &nine).is_ok());
        let ten: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        assert_eq!(validate_keys("k", &ten), Err(KeyError::TooMany(11)));
        assert!(validate_keys("k", &["ok".into(), "bad,key".into()]).is_err());
    }

    #[test]
    fn exact_hit_ignores_case() {
        assert!(is_exact_hit("UV-Linux-ABC", "uv-linux-abc"));
        assert!(!is_exact_hit("uv-linux-abcd", "uv-linux-abc"));
    }

    #[test]
    fn matching_order() {
        let entries = [
            E("uv-linux-py3.11-aaa", "v", 1),
            E("uv-linux-py3.11-bbb", "v", 3),
            E("uv-linux-py3.12-ccc", "v", 2),
            E("uv-linux-py3.12-ddd", "other", 9),
            E("uv-linux-py3.12", "v", 0),
        ];
        let m = |k: &str, r: &[&str]| {
            let r: Vec<String> = r.iter().map(|s| s.to_string()).collect();
            find_match(&entries, "v", k, &r).map(|e| e.0)
        };
        // Exact beats a newer prefix match.
        assert_eq!(m("uv-linux-py3.12", &[]), Some("uv-linux-py3.12"));
        // The key as a prefix: newest of the same version wins.
        assert_eq!(m("uv-linux-py3.11", &[]), Some("uv-linux-py3.11-bbb"));
        // Restore keys in order, exact then prefix.
        assert_eq!(
            m("uv-linux-py3.13-x", &["uv-linux-py3.13-", "uv-linux-"]),
            Some("uv-linux-py3.11-bbb")
        );
        assert_eq!(
            m("uv-linux-py3.13-x", &["uv-linux-py3.11-aaa", "uv-linux-"]),
            Some("uv-linux-py3.11-aaa")
        );
        // Another version never matches, even exactly.
        assert_eq!(m("uv-linux-py3.12-ddd", &[]), None);
        assert_eq!(m("nope", &["nada"]), None);
    }
}
