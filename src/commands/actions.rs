//! What `restore` and `save` do for GitHub Actions and its trust rules, kept out of the two
//! commands so that each of them calls one function per concern.
//!
//! - after a restore: the fingerprint the save step compares (the outputs, state and summary
//!   are rendered from the report, in `report::restore`);
//! - before a restore: refuse untrusted events unless allowed ([`crate::trust`]);
//! - before a save: which key (the flag, else the restore step's primary key), whether the
//!   restore was an exact hit of that key with nothing changed since (then skip), and which
//!   credential files to leave out.

use anyhow::Result;

use super::PathContext;
use crate::gha::{self, State, StateDir};
use crate::key;
use crate::output;
use crate::paths::{self, SavePlan};
use crate::report::RestoreReport;
use crate::store::Query;
use crate::uv::save_filter;
use crate::{fingerprint, trust};

/// The fingerprint of the restored paths, which the save step compares to tell "unchanged".
/// It walks the whole restored tree, so it is taken only when that check can happen: an exact
/// hit, restored, inside a job.
pub fn fingerprint_for_save(ctx: &PathContext, report: &RestoreReport) -> Result<Option<String>> {
    if !(report.restored && report.is_exact() && StateDir::from_env().is_enabled()) {
        return Ok(None);
    }
    // What the save step compares with: what it would pack, so with the same exclusions (the
    // sources heal just added are what pruning leaves out).
    paths::resolve_for_save(&ctx.inputs, &ctx.roots)
        .ok()
        .map(|mut plan| {
            save_filter::apply_quietly(&mut plan)?;
            fingerprint::of_plan(&plan)
        })
        .transpose()
}

/// Explains what a restore looks for in one collapsed group (STYLE.md §4): the paths, the key,
/// the restore keys and the entry version with what it hashes.
pub fn explain_restore(ctx: &PathContext, query: &Query, compression: crate::key::Compression) {
    let (primary_key, restore_keys, version) = (&query.key, &query.restore_keys, &query.version);
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
    let members = if ctx.roots.workspace_given {
        format!(
            "relative to `{}`, as actions/cache names them",
            ctx.roots.workspace.display()
        )
    } else {
        format!(
            "absolute for absolute paths, else relative to `{}` (no workspace given)",
            ctx.roots.cwd.display()
        )
    };
    output::info(&format!("{:<13} {members}", "Members"));
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
                "`--key` is empty or not given, and no restore of {} earlier in this job recorded one\n\n\
                 hint: pass `--key`, or restore the same `path` with the cache-heal action first",
                crate::report::quote_list(&ctx.inputs.lines)
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
