//! Scopes: which ref's entries a save writes and a restore reads, GitHub's rules for every
//! store that keeps entries by scope (`s3://`, `az://`, `dir:`).
//!
//! A save writes into the scope of `GITHUB_REF`. A restore looks in `GITHUB_REF`, then in the
//! pull request's base branch (`GITHUB_BASE_REF`), then in the default branch, each scope with
//! the whole matching order (exact key, key as prefix, each restore key exact then as prefix,
//! newest first; `key::find_match`). The runner exports no default branch, so it is read from the
//! event payload (`GITHUB_EVENT_PATH`, `repository.default_branch`), else `main`. Outside
//! GitHub Actions the scope is `--scope` (default `local`); inside, `--scope` is refused, so a
//! pull request can never write into `main`'s scope through a flag (a bucket policy should
//! enforce it on the server as well). The S3 forks of actions/cache have no scopes at all
//! (`docs/field-2026.md` §5).
//!
//! A scope is stored as one path segment per ref component, each [`encode_segment`]ed.

use anyhow::Result;

use crate::env_vars;

/// The scope outside GitHub Actions when `--scope` is not given.
pub const LOCAL_SCOPE: &str = "local";
/// The default branch when the event payload does not name one.
const FALLBACK_DEFAULT_BRANCH: &str = "main";

/// Where a save writes and where a restore looks, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes {
    pub save: String,
    pub read: Vec<String>,
}

impl Scopes {
    /// GitHub's rules from the runner's environment, or `--scope` outside Actions.
    pub fn from_env(explicit: Option<&str>) -> Result<Self> {
        let in_actions = std::env::var(env_vars::GITHUB_ACTIONS).is_ok_and(|v| v == "true");
        let current = env_value(env_vars::GITHUB_REF);
        let base = env_value(env_vars::GITHUB_BASE_REF);
        Self::resolve(
            explicit,
            in_actions,
            current.as_deref(),
            base.as_deref(),
            default_branch,
        )
    }

    /// The rules themselves: `--scope` outside Actions; else the run's ref, then the pull
    /// request's base branch, then the default branch (asked for only when needed); else
    /// `local`.
    fn resolve(
        explicit: Option<&str>,
        in_actions: bool,
        current: Option<&str>,
        base: Option<&str>,
        default_branch: impl FnOnce() -> String,
    ) -> Result<Self> {
        if let Some(scope) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
            if in_actions {
                return Err(crate::UsageError::Invalid(format!(
                    "`--scope {scope}` is for runs outside GitHub Actions; in Actions the scope is the run's ref (`GITHUB_REF`), so a pull request cannot write into another ref's scope"
                ))
                .into());
            }
            check_scope(scope)?;
            return Ok(Self {
                save: scope.to_string(),
                read: vec![scope.to_string()],
            });
        }
        let Some(current) = current.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(Self {
                save: LOCAL_SCOPE.to_string(),
                read: vec![LOCAL_SCOPE.to_string()],
            });
        };
        check_scope(current)?;
        let mut read = vec![current.to_string()];
        let base = base
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| format!("refs/heads/{b}"));
        let default = format!("refs/heads/{}", default_branch());
        for scope in base.into_iter().chain(std::iter::once(default)) {
            if !read.contains(&scope) && check_scope(&scope).is_ok() {
                read.push(scope);
            }
        }
        Ok(Self {
            save: current.to_string(),
            read,
        })
    }
}

/// The repository's default branch, from the event payload the runner writes; `main` when
/// there is none (the runner exports no variable for it).
fn default_branch() -> String {
    env_value(env_vars::GITHUB_EVENT_PATH)
        .and_then(|path| fs_err::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|event| {
            event["repository"]["default_branch"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| FALLBACK_DEFAULT_BRANCH.to_string())
}

fn check_scope(scope: &str) -> Result<()> {
    let bad = scope
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(|c| c.is_control()));
    if bad {
        return Err(crate::UsageError::Invalid(format!(
            "scope `{scope}` has an empty, `.` or `..` component; expected a ref like `refs/heads/main` or a name like `local`"
        ))
        .into());
    }
    Ok(())
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Percent-encodes every ASCII byte outside `[A-Za-z0-9._-]`; other UTF-8 stays as it is.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out
}

pub fn decode_segment(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_into_one_readable_segment_and_back() {
        for key in ["uv-Linux-X64-py3.12-9f3c2a1e", "a/b c%d", "ключ-ü/..", "."] {
            let encoded = encode_segment(key);
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_segment(&encoded).as_deref(), Some(key));
        }
        assert_eq!(
            encode_segment("uv-Linux-X64-py3.12-9f3c2a1e"),
            "uv-Linux-X64-py3.12-9f3c2a1e"
        );
        // Encoding keeps prefixes prefixes, which key-as-prefix matching relies on.
        assert!(encode_segment("a/b c").starts_with(&encode_segment("a/b")));
    }

    #[test]
    fn scopes_follow_github() {
        let main = || "main".to_string();
        let pr = Scopes::resolve(None, true, Some("refs/pull/7/merge"), Some("dev"), main).unwrap();
        assert_eq!(pr.save, "refs/pull/7/merge");
        assert_eq!(
            pr.read,
            ["refs/pull/7/merge", "refs/heads/dev", "refs/heads/main"]
        );
        let on_main = Scopes::resolve(None, true, Some("refs/heads/main"), None, main).unwrap();
        assert_eq!(on_main.read, ["refs/heads/main"]);
        let trunk = || "trunk".to_string();
        let tag = Scopes::resolve(None, true, Some("refs/tags/v1"), None, trunk).unwrap();
        assert_eq!(tag.read, ["refs/tags/v1", "refs/heads/trunk"]);
        let laptop = Scopes::resolve(None, false, None, None, main).unwrap();
        assert_eq!((laptop.save.as_str(), laptop.read.len()), ("local", 1));
        let named = Scopes::resolve(Some("team-a"), false, None, None, main).unwrap();
        assert_eq!((named.save.as_str(), named.read.len()), ("team-a", 1));
        assert!(
            Scopes::resolve(
                Some("refs/heads/main"),
                true,
                Some("refs/pull/7/merge"),
                None,
                main
            )
            .is_err()
        );
        assert!(Scopes::resolve(Some("a/../b"), false, None, None, main).is_err());
    }
}
