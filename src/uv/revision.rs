//! uv's revision pointers: which revision of an sdist shard is current, and the hashes and size
//! of the archive it was built from. Read only; cache-heal never writes them (their HTTP cache
//! policy is rkyv plus a CRC that only uv should produce).
//!
//! Formats (docs/uv-cache.md §2; uv `DataWithCachePolicy`, `crates/uv-client/src/cached_client.rs`):
//! - `revision.http`, uv 0.13.x: `[msgpack payload][padding][id][rkyv policy][crc32][u64 LE
//!   payload length]`. uv 0.12.x: `[msgpack payload][rkyv policy][u64 LE policy length]`.
//!   Both framings are tried, the bucket's own first; a payload only counts when it decodes to a
//!   revision and uses every byte it claims.
//! - the payload `Revision` is `[id, hashes, size]` (0.13, structs as arrays) or
//!   `{id, hashes, size}` (0.12); a hash is `{"Sha256": hex}` (0.13) or
//!   `{algorithm, digest}` (0.12).
//! - `revision.rev` (local archives) is plain msgpack `[cache_info, revision]`.
//! - `metadata.msgpack` is `ResolutionMetadata`: `[name, version, requires_dist, requires_python,
//!   provides_extra, dynamic]` (uv 0.13.9, seen in a real cache).

use rmpv::Value;
use std::path::Path;

use super::layout::Generation;

pub const REVISION_HTTP: &str = "revision.http";
pub const REVISION_REV: &str = "revision.rev";
pub const METADATA: &str = "metadata.msgpack";

/// The current revision of an sdist shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// The name of the `<REV>` directory.
    pub id: String,
    /// The archive's sha256, lower-case hex, when uv recorded one (it always does for HTTP
    /// sources).
    pub sha256: Option<String>,
    /// The archive's size in bytes, when recorded.
    pub size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("reading `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a revision pointer uv 0.12 or 0.13 wrote")]
    Unrecognised { path: String },
}

/// Reads `revision.http` or `revision.rev`, depending on the file name.
pub fn read(path: &Path, generation: Generation) -> Result<Revision, RevisionError> {
    let bytes = fs_err::read(path).map_err(|source| RevisionError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let parsed = if path.file_name().is_some_and(|n| n == REVISION_REV) {
        parse_rev(&bytes)
    } else {
        parse_http(&bytes, generation)
    };
    parsed.ok_or_else(|| RevisionError::Unrecognised {
        path: path.display().to_string(),
    })
}

/// The msgpack payload of a `DataWithCachePolicy` file, decoded as a revision.
pub fn parse_http(bytes: &[u8], generation: Generation) -> Option<Revision> {
    type Framing = fn(&[u8]) -> Option<usize>;
    let framings: [Framing; 2] = match generation {
        Generation::Uv013 => [payload_len_013, payload_len_012],
        Generation::Uv012 => [payload_len_012, payload_len_013],
    };
    framings.iter().find_map(|framing| {
        let len = framing(bytes)?;
        let mut payload = &bytes[..len];
        let value = rmpv::decode::read_value(&mut payload).ok()?;
        if !payload.is_empty() {
            return None;
        }
        revision_from_value(&value)
    })
}

fn trailer(bytes: &[u8]) -> Option<usize> {
    let tail: [u8; 8] = bytes.get(bytes.len().checked_sub(8)?..)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(tail)).ok()
}

/// 0.13: the trailer is the payload length.
fn payload_len_013(bytes: &[u8]) -> Option<usize> {
    trailer(bytes).filter(|&len| len <= bytes.len().saturating_sub(8))
}

/// 0.12: the trailer is the length of the policy that sits between payload and trailer.
fn payload_len_012(bytes: &[u8]) -> Option<usize> {
    let policy = trailer(bytes)?;
    bytes.len().checked_sub(8)?.checked_sub(policy)
}

/// `revision.rev`: `[cache_info, revision]`.
pub fn parse_rev(bytes: &[u8]) -> Option<Revision> {
    let mut input = bytes;
    let value = rmpv::decode::read_value(&mut input).ok()?;
    match &value {
        Value::Array(items) if items.len() == 2 => revision_from_value(&items[1]),
        Value::Map(_) => revision_from_value(field(&value, "revision", 1)?),
        _ => None,
    }
}

fn revision_from_value(value: &Value) -> Option<Revision> {
    let id = field(value, "id", 0)?.as_str()?.to_string();
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return None;
    }
    let sha256 = field(value, "hashes", 1)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(sha256_of);
    let size = field(value, "size", 2).and_then(Value::as_u64);
    Some(Revision { id, sha256, size })
}

/// `{"Sha256": hex}` (0.13), `{algorithm: "sha256", digest: hex}` or `["sha256", hex]` (0.12).
fn sha256_of(hash: &Value) -> Option<String> {
    let digest = match hash {
        Value::Map(pairs) if pairs.len() == 1 && pairs[0].0.as_str() == Some("Sha256") => {
            pairs[0].1.as_str()
        }
        _ => {
            let algorithm = field(hash, "algorithm", 0)?.as_str()?;
            algorithm
                .eq_ignore_ascii_case("sha256")
                .then(|| field(hash, "digest", 1)?.as_str())
                .flatten()
        }
    }?;
    let digest = digest.to_ascii_lowercase();
    (digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit())).then_some(digest)
}

/// A struct field, whether rmp-serde wrote the struct as a map or as an array.
fn field<'a>(value: &'a Value, name: &str, index: usize) -> Option<&'a Value> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v),
        Value::Array(items) => items.get(index),
        _ => None,
    }
}

/// What heal reads from `metadata.msgpack` (`ResolutionMetadata`: name, version,
/// requires_dist, requires_python, …; a map or an array, as rmp-serde wrote it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistMetadata {
    pub name: String,
    pub version: String,
    /// `Requires-Python` as uv read it from the source (`>=3.8`), when the source declared it.
    pub requires_python: Option<String>,
}

/// Name, version and `Requires-Python` from `metadata.msgpack`.
pub fn read_metadata(path: &Path) -> Option<DistMetadata> {
    let bytes = fs_err::read(path).ok()?;
    let mut input = bytes.as_slice();
    let value = rmpv::decode::read_value(&mut input).ok()?;
    let name = field(&value, "name", 0)?.as_str()?.to_string();
    let version = field(&value, "version", 1)?.as_str()?.to_string();
    let requires_python = field(&value, "requires_python", 3)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(DistMetadata {
        name,
        version,
        requires_python,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgpack(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    const HEX: &str = "2e9ad7dd0000000000000000000000000000000000000000000000000000edd6";

    #[test]
    fn reads_a_013_pointer() {
        let payload = msgpack(&Value::Array(vec![
            "S-5HhQ5vPQm8YzWZ".into(),
            Value::Array(vec![Value::Map(vec![("Sha256".into(), HEX.into())])]),
            153777.into(),
        ]));
        let mut file = payload.clone();
        file.extend_from_slice(&[0u8; 40]); // padding, id, policy, crc
        file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let rev = parse_http(&file, Generation::Uv013).unwrap();
        assert_eq!(rev.id, "S-5HhQ5vPQm8YzWZ");
        assert_eq!(rev.sha256.as_deref(), Some(HEX));
        assert_eq!(rev.size, Some(153777));
    }

    #[test]
    fn reads_a_012_pointer() {
        let payload = msgpack(&Value::Map(vec![
            ("id".into(), "abcdefabcdefabcdefabc".into()),
            (
                "hashes".into(),
                Value::Array(vec![Value::Map(vec![
                    ("algorithm".into(), "sha256".into()),
                    ("digest".into(), HEX.into()),
                ])]),
            ),
            ("size".into(), Value::Nil),
        ]));
        let policy = [7u8; 33];
        let mut file = payload.clone();
        file.extend_from_slice(&policy);
        file.extend_from_slice(&(policy.len() as u64).to_le_bytes());
        let rev = parse_http(&file, Generation::Uv012).unwrap();
        assert_eq!(rev.id, "abcdefabcdefabcdefabc");
        assert_eq!(rev.sha256.as_deref(), Some(HEX));
        assert_eq!(rev.size, None);
        // The other framing is tried too.
        assert_eq!(parse_http(&file, Generation::Uv013), Some(rev));
    }

    #[test]
    fn reads_requires_python_from_metadata() {
        // As uv 0.13.9 wrote it for an sdist declaring `requires-python = ">=3.8"`.
        let bytes = msgpack(&Value::Array(vec![
            "modernext".into(),
            "1.0".into(),
            Value::Array(vec![]),
            ">=3.8".into(),
            Value::Array(vec![]),
            false.into(),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METADATA);
        fs_err::write(&path, bytes).unwrap();
        let metadata = read_metadata(&path).unwrap();
        assert_eq!(metadata.name, "modernext");
        assert_eq!(metadata.requires_python.as_deref(), Some(">=3.8"));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse_http(b"not a pointer at all", Generation::Uv013), None);
        assert_eq!(parse_http(&[], Generation::Uv012), None);
    }
}
