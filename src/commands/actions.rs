//! What `restore` and `save` do for GitHub Actions and its trust rules, kept out of the two
//! commands so that each of them calls one function per concern.
//!
//! - after a restore: the step outputs (actions/cache's `cache-hit`, `cache-primary-key`,
//!   `cache-matched-key`, plus `cache-status`, `bytes-restored`, `healed`), the state for the
//!   save step, and a step-summary table;
//! - before a restore: refuse untrusted events unless allowed ([`crate::trust`]);
//! - before a save: which key (the flag, else the restore step's primary key), whether the
//!   restore was an exact hit of that key with nothing changed since (then skip), and which
//!   credential files to leave out.

use anyhow::Result;

use super::PathContext;
use crate::gha::{self, Outputs, State, StateDir, Summary};
use crate::key;
use crate::output::{self, human_bytes};
use crate::paths::{self, SavePlan};
use crate::uv::save_filter;
use crate::{fingerprint, trust};

/// How a restore ended, for outputs, state and summary.
#[derive(Clone, Debug)]
pub struct RestoreOutcome<'a> {
    pub primary_key: &'a str,
    pub restore_keys: &'a [String],
    /// The key of the entry found, if any.
    pub matched_key: Option<&'a str>,
    /// `exact`, `partial` or `miss`.
    pub status: &'static str,
    /// Whether the entry was written into place (not a dry run or lookup).
    pub restored: bool,
    /// File content written.
    pub content_bytes: u64,
    /// Archive bytes read.
    pub archive_bytes: u64,
    pub seconds: f64,
    /// How many packages heal fetched sources for (0 until heal runs).
    pub healed: u64,
    /// Why nothing was restored, when it was a decision (an untrusted event).
    pub skipped_because: Option<String>,
}

/// Writes the step outputs, the state for the save step and the summary. Outside Actions (no
/// `GITHUB_OUTPUT`, `RUNNER_TEMP`, `GITHUB_STEP_SUMMARY`) it does nothing.
pub fn after_restore(ctx: &PathContext, version: &str, outcome: &RestoreOutcome) -> Result<()> {
    let exact = outcome
        .matched_key
        .is_some_and(|m| key::is_exact_hit(m, outcome.primary_key));

    let outputs = Outputs::from_env();
    // actions/cache leaves `cache-hit` unset on a miss (actions/cache#1466) and sets
    // `cache-matched-key` only when something matched; workflows test both as strings.
    if let Some(matched) = outcome.matched_key {
        outputs.set("cache-hit", if exact { "true" } else { "false" })?;
        outputs.set("cache-matched-key", matched)?;
    }
    outputs.set("cache-primary-key", outcome.primary_key)?;
    outputs.set("cache-status", outcome.status)?;
    outputs.set("bytes-restored", &outcome.content_bytes.to_string())?;
    outputs.set("healed", &outcome.healed.to_string())?;

    let states = StateDir::from_env();
    // The fingerprint walks the whole restored tree; it only serves the save step's "exact hit
    // and unchanged" check, so it is taken only when that check can happen.
    let fingerprint = if outcome.restored && exact && states.is_enabled() {
        // What the save step compares with: what it would pack, so with the same exclusions
        // (the sources heal just added are what pruning leaves out).
        paths::resolve_for_save(&ctx.inputs, &ctx.roots)
            .ok()
            .map(|mut plan| {
                save_filter::apply_quietly(&mut plan)?;
                fingerprint::of_plan(&plan)
            })
            .transpose()?
    } else {
        None
    };
    states.write(
        version,
        &State {
            primary_key: outcome.primary_key.to_string(),
            matched_key: outcome.matched_key.map(str::to_string),
            exact: exact && outcome.restored,
            fingerprint,
        },
    )?;

    let mut rows = vec![
        ("Key", format!("`{}`", outcome.primary_key)),
        (
            "Restore keys",
            outcome
                .restore_keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "Matched key",
            outcome
                .matched_key
                .map_or("none".to_string(), |m| format!("`{m}`")),
        ),
        ("Status", outcome.status.to_string()),
        (
            "Restored",
            if outcome.restored {
                format!(
                    "{} ({} archive)",
                    human_bytes(outcome.content_bytes),
                    human_bytes(outcome.archive_bytes)
                )
            } else {
                "nothing".to_string()
            },
        ),
        ("Time", format!("{:.1}s", outcome.seconds)),
        ("Healed", format!("{} packages", outcome.healed)),
    ];
    if let Some(reason) = &outcome.skipped_because {
        rows.push(("Skipped", reason.clone()));
    }
    Summary::from_env().table("cache-heal restore", &rows)
}

/// Explains what a restore looks for in one collapsed group (STYLE.md §4): the paths, the key,
/// the restore keys and the entry version with what it hashes.
pub fn explain_restore(
    ctx: &PathContext,
    primary_key: &str,
    restore_keys: &[String],
    version: &str,
    compression: crate::key::Compression,
) {
    let paths = ctx
        .inputs
        .lines
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(" ");
    let _group = gha::group(&format!("cache-heal: restore {paths}"));
    output::info(&format!("{:<13} {primary_key}", "Key"));
    if !restore_keys.is_empty() {
        output::info(&format!(
            "{:<13} {}",
            "Restore keys",
            restore_keys.join("  ")
        ));
    }
    output::info(&format!(
        "{:<13} {}…  (actions/cache-compatible: the path lines + {}, {})",
        "Version",
        &version[..version.len().min(12)],
        compression.version_name(),
        if cfg!(windows) {
            "Windows only"
        } else {
            "any OS but Windows"
        }
    ));
}

/// Whether this restore must be skipped because of the event; warns when an untrusted event
/// is allowed. Returns the reason to report when skipping.
pub fn untrusted_event_skip(allowed: bool) -> Option<String> {
    let reason = trust::untrusted_event_from_env()?;
    if allowed {
        output::warn(&format!(
            "Restoring in {reason} because `--allow-untrusted-event` is set; an entry written by \
             a less trusted run (a pull request) can reach this job"
        ));
        return None;
    }
    output::info(&format!(
        "Not restoring in {reason}: entries may come from less trusted runs; continuing with an \
         empty cache\n\nhint: set the action's `allow-untrusted-events: true` \
         (`--allow-untrusted-event`) to restore anyway"
    ));
    Some(format!("not restored in {reason}"))
}

/// The key a save uses, and what the restore step of this job recorded for the same paths.
#[derive(Clone, Debug)]
pub struct SaveKey {
    pub key: String,
    state: Option<State>,
}

/// Picks the key: the flag, else the primary key the restore step recorded. Neither is a usage
/// error (exit 2), as a missing `--key` was before the flag became optional.
pub fn save_key(explicit_key: Option<&str>, ctx: &PathContext, version: &str) -> Result<SaveKey> {
    let state = StateDir::from_env().read(version)?;
    let key = match (explicit_key, &state) {
        (Some(k), _) if !k.trim().is_empty() => k.to_string(),
        (_, Some(state)) => state.primary_key.clone(),
        _ => {
            return Err(crate::UsageError::Missing(format!(
                "no `--key` was given, and no restore of {} earlier in this job recorded one\n\n\
                 hint: pass `--key`, or restore the same `path` with the cache-heal action first",
                ctx.inputs
                    .lines
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
    };
    Ok(SaveKey { key, state })
}

/// Whether the restore step got an exact hit of this key and the paths have not changed since
/// (rust-cache's "Cache up-to-date"): then the save is skipped.
pub fn is_up_to_date(save_key: &SaveKey, plan: &SavePlan) -> Result<bool> {
    let Some(state) = &save_key.state else {
        return Ok(false);
    };
    let exact_hit_of_this_key = state.exact
        && state
            .matched_key
            .as_deref()
            .is_some_and(|m| key::is_exact_hit(m, &save_key.key));
    match &state.fingerprint {
        Some(before) if exact_hit_of_this_key => Ok(*before == fingerprint::of_plan(plan)?),
        _ => Ok(false),
    }
}

/// Leaves credential files out of the archive, with a warning naming each.
pub fn exclude_credentials(plan: &mut SavePlan) -> Result<()> {
    for found in trust::credential_files(plan)? {
        output::warn(&format!(
            "Not saving `{}`: {}; it stays on disk but is left out of the entry",
            found.path.display(),
            found.reason
        ));
        plan.leave_out(found.path);
    }
    Ok(())
}
