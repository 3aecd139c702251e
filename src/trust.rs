//! Trust defaults: where cache-heal refuses to restore unless told to, and what it never saves.
//!
//! **Events.** A cache entry can be written by any workflow run that can write to the cache,
//! including code from a pull request. Restoring such an entry into a job that publishes
//! (`release`, a tag push) or that runs with the base repository's secrets on untrusted input
//! (`pull_request_target`, `workflow_run`) is how a poisoned entry turns into a compromise: the
//! TanStack case (CVE-2026-45321) was a cache written from fork-controlled code and restored by a
//! release job (docs/anchors.md §0.5). setup-uv v10 turned caching off for the same four; we
//! refuse the restore and let the action's `allow-untrusted-events` input override it with a
//! warning.
//!
//! **Credential files.** A cache path can hold a `.netrc`, a `.pypirc` or a pip/uv config with an
//! index password; saving it would hand the secret to every later job that restores the entry,
//! and to anyone who can read the cache. rust-cache deletes `~/.cargo/credentials.toml` for the
//! same reason. We leave the file where it is and keep it out of the archive.
//!
//! This module knows event names and file names; it knows nothing of stores or archives.

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::paths::SavePlan;

/// The events in which a restore is refused by default.
pub const UNTRUSTED_EVENTS: &[&str] = &["release", "pull_request_target", "workflow_run"];

/// Why this run should not restore, if it should not: the event and, for pushes, the ref.
///
/// `event` is `GITHUB_EVENT_NAME`, `git_ref` is `GITHUB_REF`.
pub fn untrusted_event(event: Option<&str>, git_ref: Option<&str>) -> Option<String> {
    let event = event.unwrap_or("").trim();
    if UNTRUSTED_EVENTS.contains(&event) {
        return Some(format!("the `{event}` event"));
    }
    if let Some(tag) = git_ref.and_then(|r| r.strip_prefix("refs/tags/")) {
        return Some(format!("a run for the tag `{tag}`"));
    }
    None
}

/// The same question, asked of the runner's environment.
pub fn untrusted_event_from_env() -> Option<String> {
    let event = std::env::var(crate::env_vars::GITHUB_EVENT_NAME).ok();
    let git_ref = std::env::var(crate::env_vars::GITHUB_REF).ok();
    untrusted_event(event.as_deref(), git_ref.as_deref())
}

/// A file that must not be saved, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialFile {
    pub path: PathBuf,
    pub reason: &'static str,
}

/// Files that hold credentials whatever their content.
const ALWAYS_SECRET: &[(&str, &str)] = &[
    (".netrc", "a `.netrc` holds login passwords"),
    ("_netrc", "a `_netrc` holds login passwords"),
    (
        ".pypirc",
        "a `.pypirc` holds package index upload credentials",
    ),
    (
        ".git-credentials",
        "a `.git-credentials` holds git passwords",
    ),
];

/// Config files that hold credentials when they contain a password or a URL with one.
const SECRET_IF_PASSWORD: &[&str] = &["pip.conf", "pip.ini", "uv.toml", "pdm.toml", "poetry.toml"];

/// Largest config file read to look for a password; bigger ones are not pip or uv configs.
const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Every credential file below the paths of `plan` (not already excluded).
pub fn credential_files(plan: &SavePlan) -> Result<Vec<CredentialFile>> {
    let mut found = Vec::new();
    plan.walk(|_, entry| {
        if entry.file_type().is_file()
            && let Some(reason) = credential_reason(entry.path())?
        {
            found.push(CredentialFile {
                path: entry.path().to_path_buf(),
                reason,
            });
        }
        Ok(())
    })?;
    Ok(found)
}

/// Why the file at `path` must not be saved, if it must not.
pub fn credential_reason(path: &Path) -> Result<Option<&'static str>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((_, reason)) = ALWAYS_SECRET.iter().find(|(n, _)| *n == name) {
        return Ok(Some(reason));
    }
    if !SECRET_IF_PASSWORD.contains(&name.as_str()) {
        return Ok(None);
    }
    let size = fs_err::metadata(path)?.len();
    if size > MAX_CONFIG_SIZE {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&fs_err::read(path)?).into_owned();
    Ok(has_password(&text)
        .then_some("a pip/uv config that holds a password or a URL with credentials"))
}

/// Whether config text holds a `password` setting or a URL with `user:password@`.
pub fn has_password(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            return false;
        }
        let lower = line.to_ascii_lowercase();
        let key = lower.split(['=', ':']).next().unwrap_or("").trim();
        let is_password_key = ["password", "token", "http-basic", "secret"]
            .iter()
            .any(|k| key.ends_with(k))
            && (lower.contains('=') || lower.contains(':'));
        is_password_key || url_has_credentials(line)
    })
}

/// Whether some URL in `line` carries `user:password@` (or a token as the user) in its
/// authority.
fn url_has_credentials(line: &str) -> bool {
    line.match_indices("://").any(|(at, sep)| {
        let rest = &line[at + sep.len()..];
        let end = rest
            .find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(rest.len());
        rest[..end].contains('@')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_events_are_refused() {
        for event in ["release", "pull_request_target", "workflow_run"] {
            assert!(untrusted_event(Some(event), Some("refs/heads/main")).is_some());
        }
        assert_eq!(
            untrusted_event(Some("push"), Some("refs/tags/v1.2.3")).as_deref(),
            Some("a run for the tag `v1.2.3`")
        );
        for event in ["push", "pull_request", "schedule", "workflow_dispatch"] {
            assert_eq!(untrusted_event(Some(event), Some("refs/heads/main")), None);
        }
        assert_eq!(untrusted_event(None, None), None);
    }

    #[test]
    fn passwords_in_configs_are_found() {
        assert!(has_password(
            "[global]\nindex-url = https://user:s3cret@pypi.example.com/simple\n"
        ));
        assert!(has_password(
            "[[index]]\nurl = \"https://__token__@example.com/simple\"\n"
        ));
        assert!(has_password("[distutils]\npassword = hunter2\n"));
        assert!(!has_password(
            "[global]\nindex-url = https://pypi.example.com/simple\ntimeout = 60\n"
        ));
        assert!(!has_password("# password = example\n"));
        assert!(!has_password("cache-dir = \"/home/me/.cache/uv\"\n"));
    }
}
