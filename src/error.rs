//! How a command can fail, and what each failure means for the exit code and for `--json`.
//!
//! Commands return `anyhow::Error`s with context; the few kinds a caller or a script must tell
//! apart are typed here (or in the module that owns them, like `archive::unpack::Refusal`) and
//! found anywhere in the error's chain by [`Failure::classify`]. The exit codes are the ones
//! `--help` promises: 1 for an error, 2 for a usage error, 130/143 for an interrupt.

use serde::Serialize;

/// An error in what the user typed: exit code 2, like clap's own usage errors. Raised before
/// anything touches the disk or the network.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Key(#[from] crate::key::KeyError),
    /// A value that is required here was neither given nor found where it may come from.
    #[error("{0}")]
    Missing(String),
    /// A value outside what its setting accepts.
    #[error("{0}")]
    Invalid(String),
}

/// Nothing was restored and the user asked for that to fail the run (`--fail-on-cache-miss`).
#[derive(Debug)]
pub struct CacheMiss {
    pub key: String,
    pub restore_keys: Vec<String>,
    /// Why, when an entry was found but could not be restored (damaged, store gone).
    pub reason: Option<String>,
}

impl std::error::Error for CacheMiss {}

impl std::fmt::Display for CacheMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "Nothing was restored for `{}` ({reason})", self.key)?,
            None => write!(
                f,
                "No cache entry for `{}`{}",
                self.key,
                describe_restore_keys(&self.restore_keys)
            )?,
        }
        f.write_str(", and `--fail-on-cache-miss` is set")
    }
}

fn describe_restore_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" or restore keys {}", crate::report::quote_list(keys))
    }
}

/// The first line of a failed command's error, with what state the failure left things in
/// (printed after the causes): `error.context(Headline { … })`.
#[derive(Debug)]
pub struct Headline {
    pub message: String,
    pub consequence: String,
}

impl std::fmt::Display for Headline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What kind of failure ended a command: the `kind` of `--json`'s error object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A flag or value the user gave is wrong (exit 2).
    Usage,
    /// `--fail-on-cache-miss` and nothing matched (exit 1).
    CacheMiss,
    /// An archive broke a safety rule (a member outside the paths, a device, a write through a
    /// symlink, a size limit); nothing was written (exit 1).
    RefusedArchive,
    /// SIGINT or SIGTERM (exit 130 or 143).
    Interrupted,
    /// Anything else (exit 1).
    Failed,
}

/// A failure ready to render: its kind, its exit code, and its text split into the message,
/// the causes and a hint.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub causes: Vec<String>,
    /// What state the failure left things in ("Nothing was written: …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip)]
    pub exit_code: u8,
}

impl Failure {
    /// Finds what kind of failure `error` is, looking through its whole chain.
    pub fn classify(error: &anyhow::Error) -> Self {
        let (kind, exit_code) = kind_of(error);
        let mut texts = error.chain().map(ToString::to_string);
        let first = texts.next().unwrap_or_default();
        let (message, mut hint) = split_hint(&first);
        let mut causes = Vec::new();
        for cause in texts {
            let (text, cause_hint) = split_hint(&cause);
            causes.push(text);
            hint = hint.or(cause_hint);
        }
        let consequence = error
            .downcast_ref::<Headline>()
            .map(|h| h.consequence.clone());
        Self {
            kind,
            message,
            causes,
            consequence,
            hint,
            exit_code,
        }
    }

    /// An interrupt, with the line that says what it left unchanged.
    pub fn interrupted(message: String, exit_code: u8) -> Self {
        Self {
            kind: Kind::Interrupted,
            message,
            causes: Vec::new(),
            consequence: None,
            hint: None,
            exit_code,
        }
    }

    /// A clap error (an unknown flag, a bad value): always a usage error.
    pub fn usage(message: &str) -> Self {
        let message = message.trim().trim_start_matches("error: ").to_string();
        let (message, hint) = split_hint(&message);
        Self {
            kind: Kind::Usage,
            message,
            causes: Vec::new(),
            consequence: None,
            hint,
            exit_code: 2,
        }
    }
}

fn kind_of(error: &anyhow::Error) -> (Kind, u8) {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<crate::key::KeyError>() {
            return (Kind::Usage, 2);
        }
        if let Some(interrupted) = cause.downcast_ref::<crate::interrupt::Interrupted>() {
            return (Kind::Interrupted, interrupted.exit_code());
        }
        if cause.is::<CacheMiss>() {
            return (Kind::CacheMiss, 1);
        }
        if cause.is::<crate::archive::unpack::Refusal>() {
            return (Kind::RefusedArchive, 1);
        }
    }
    (Kind::Failed, 1)
}

/// Messages carry their hint after a blank line (`…\n\nhint: …`), as uv renders them.
fn split_hint(text: &str) -> (String, Option<String>) {
    match text.split_once("\n\nhint: ") {
        Some((message, hint)) => (message.to_string(), Some(hint.trim().to_string())),
        None => (text.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_wherever_they_sit_in_the_chain() {
        let error = anyhow::Error::from(UsageError::Invalid("`--x` is bad".into()))
            .context("planning the restore");
        let failure = Failure::classify(&error);
        assert_eq!((failure.kind, failure.exit_code), (Kind::Usage, 2));
        assert_eq!(failure.message, "planning the restore");
        assert_eq!(failure.causes, vec!["`--x` is bad"]);
    }

    #[test]
    fn hints_are_split_from_the_message() {
        let error = anyhow::anyhow!("no store\n\nhint: pass `--store dir:<DIR>`");
        let failure = Failure::classify(&error);
        assert_eq!(failure.message, "no store");
        assert_eq!(failure.hint.as_deref(), Some("pass `--store dir:<DIR>`"));
        assert_eq!((failure.kind, failure.exit_code), (Kind::Failed, 1));
    }

    #[test]
    fn a_miss_with_fail_on_cache_miss_names_every_key() {
        let miss = CacheMiss {
            key: "k".into(),
            restore_keys: vec!["k-".into()],
            reason: None,
        };
        assert_eq!(
            miss.to_string(),
            "No cache entry for `k` or restore keys `k-`, and `--fail-on-cache-miss` is set"
        );
    }
}
