//! The restore report: how a restore ended, and its renderings (the closing line, `--json`,
//! the step outputs actions/cache defines, the state for the save step, the step summary).

use serde::Serialize;

use super::{Printer, print_json, quote_list, with_command};
use crate::error::CacheMiss;
use crate::gha::{Outputs, State, StateDir, Summary};
use crate::key;
use crate::output::{self, human_bytes};

/// How a restore ended, in actions/cache's terms (`cache-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The primary key matched (ignoring case).
    Exact,
    /// A prefix of the key or a restore key matched.
    Partial,
    Miss,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Exact => "exact",
            Status::Partial => "partial",
            Status::Miss => "miss",
        }
    }
}

/// Why a restore restored nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MissReason {
    /// Neither the key nor a restore key has an entry of this version.
    NoEntry,
    /// A `release`, tag push, `pull_request_target` or `workflow_run` run.
    UntrustedEvent { event: String },
    /// The store could not be asked, or failed while sending the archive.
    StoreUnavailable { message: String },
    /// An entry matched, but its archive is truncated, corrupt or fails its digest.
    DamagedEntry { key: String, message: String },
}

impl MissReason {
    /// Why nothing was restored although something may have matched, in a few words.
    pub fn describe(&self) -> Option<String> {
        match self {
            MissReason::NoEntry => None,
            MissReason::UntrustedEvent { event } => Some(format!("not restored in {event}")),
            MissReason::StoreUnavailable { message } => {
                Some(format!("store unavailable: {message}"))
            }
            MissReason::DamagedEntry { key, message } => {
                Some(format!("damaged entry: `{key}` ({message})"))
            }
        }
    }
}

/// An entry under the key looked for, saved with other inputs: why it does not match.
#[derive(Clone, Debug, Serialize)]
pub struct OtherVersion {
    pub key: String,
    pub version: String,
    /// What differs, each with the flag that would match it.
    pub differences: Vec<String>,
}

/// A path a restore replaces whole, and what is there now.
#[derive(Clone, Debug, Serialize)]
pub struct Replaced {
    pub path: std::path::PathBuf,
    pub exists: bool,
    pub files: u64,
    pub bytes: u64,
}

/// What heal did for one restored uv cache: its report (which names the path), or why it
/// could not run.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum HealedPath {
    Healed(crate::commands::heal::HealReport),
    Failed {
        path: std::path::PathBuf,
        error: String,
    },
}

impl HealedPath {
    pub fn report(&self) -> Option<&crate::commands::heal::HealReport> {
        match self {
            HealedPath::Healed(report) => Some(report),
            HealedPath::Failed { .. } => None,
        }
    }

    /// How many sources heal re-created here.
    pub fn healed_count(&self) -> u64 {
        self.report().map_or(0, |r| r.healed.len() as u64)
    }
}

/// Where a restore's time went, in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreTimings {
    /// Asking the store for the entry.
    pub lookup: f64,
    /// Downloading, decompressing and unpacking into staging (these overlap).
    pub transfer: f64,
    /// Of `transfer`, the time the reader waited for the store to send bytes.
    pub store_wait: f64,
    /// Swapping the staged tree into place.
    pub swap: f64,
    pub heal: f64,
    /// Whether the store is across a network (not a local directory).
    #[serde(skip)]
    pub remote: bool,
}

impl RestoreTimings {
    /// `network` when the unpacker mostly waited for a remote store's bytes, `disk` otherwise
    /// (decompressing and writing, or reading a local store); `None` before anything was
    /// transferred.
    pub fn bound(&self) -> Option<&'static str> {
        (self.transfer > 0.0).then(|| {
            if self.remote && self.store_wait > self.transfer / 2.0 {
                "network"
            } else {
                "disk"
            }
        })
    }

    fn describe(&self) -> String {
        let mut parts = vec![format!("{:.1}s lookup", self.lookup)];
        if let Some(bound) = self.bound() {
            let waiting = if self.remote {
                "waiting on the store"
            } else {
                "reading the store's archive"
            };
            parts.push(format!(
                "{:.1}s download and unpack ({bound}-bound: {:.0}% {waiting})",
                self.transfer,
                100.0 * self.store_wait / self.transfer
            ));
            parts.push(format!("{:.1}s swap", self.swap));
        }
        if self.heal >= 0.05 {
            parts.push(format!("{:.1}s heal", self.heal));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub status: Status,
    pub primary_key: String,
    pub restore_keys: Vec<String>,
    pub matched_key: Option<String>,
    pub version: String,
    pub store: String,
    pub paths: Vec<String>,
    pub dry_run: bool,
    pub lookup_only: bool,
    /// Whether the entry was written into place.
    pub restored: bool,
    /// Archive bytes read, or for a dry run the size of the entry found (when known).
    pub bytes: Option<u64>,
    /// File content written.
    pub content_bytes: u64,
    pub files: u64,
    pub seconds: f64,
    /// Where the time went.
    pub timings: RestoreTimings,
    /// `network` or `disk`: what held the transfer back (`null` when nothing was transferred).
    pub bound: Option<&'static str>,
    /// Why nothing was restored, on a miss.
    pub miss: Option<MissReason>,
    /// Entries under the key that were saved with other inputs.
    pub other_versions: Vec<OtherVersion>,
    /// With `--dry-run`: what the restore would replace.
    pub would_replace: Vec<Replaced>,
    /// What heal did for each restored uv cache; `null` with `--no-heal`.
    pub heal: Option<Vec<HealedPath>>,
    /// The `--python` targets restored uv caches are healed for (empty: the default
    /// interpreter); `null` with `--no-heal`.
    pub heal_for: Option<Vec<String>>,
    /// Sources heal re-created, over every restored uv cache.
    pub healed: u64,
    /// The fingerprint of the restored paths, for the save step's "unchanged" check.
    #[serde(skip)]
    pub fingerprint: Option<String>,
    /// A miss ends the run with exit 1 (`--fail-on-cache-miss`).
    #[serde(skip)]
    pub fail_on_cache_miss: bool,
}

impl RestoreReport {
    pub fn is_exact(&self) -> bool {
        self.matched_key
            .as_deref()
            .is_some_and(|m| key::is_exact_hit(m, &self.primary_key))
    }

    /// Turns the report into a miss for `reason`, keeping what was looked for.
    pub fn miss(&mut self, reason: MissReason) {
        self.status = Status::Miss;
        self.matched_key = None;
        self.restored = false;
        self.miss = Some(reason);
    }

    fn fails(&self) -> bool {
        self.fail_on_cache_miss && self.status == Status::Miss && !self.dry_run
    }
}

pub fn render(report: &RestoreReport, printer: Printer) -> anyhow::Result<u8> {
    write_for_actions(report)?;
    if report.fails() {
        let miss = CacheMiss {
            key: report.primary_key.clone(),
            restore_keys: report.restore_keys.clone(),
            reason: report.miss.as_ref().and_then(MissReason::describe),
        };
        return Err(anyhow::Error::from(miss));
    }
    if printer.json {
        print_json(&with_command("restore", report)?)?;
    }
    for line in human_lines(report) {
        output::info(&line);
    }
    Ok(0)
}

/// The closing lines.
fn human_lines(report: &RestoreReport) -> Vec<String> {
    let mut lines = Vec::new();
    match (&report.miss, report.restored) {
        (None, true) => {
            lines.push(format!(
                "Restored `{}`{}: {} files, {} from {} archive in {:.1}s",
                report.matched_key.as_deref().unwrap_or_default(),
                partial_note(report),
                report.files,
                human_bytes(report.content_bytes),
                human_bytes(report.bytes.unwrap_or_default()),
                report.seconds,
            ));
            lines.push(format!("  time: {}", report.timings.describe()));
        }
        (None, false) => {
            let size = report.bytes.map_or("size unknown".to_string(), human_bytes);
            let verb = if report.dry_run {
                "Would restore"
            } else {
                "Found"
            };
            let matched = match report.status {
                Status::Partial => format!("partial match for `{}`", report.primary_key),
                _ => "exact match".to_string(),
            };
            lines.push(format!(
                "{verb} `{}` ({matched}, {size}) from {} into {}",
                report.matched_key.as_deref().unwrap_or_default(),
                report.store,
                quote_list(&report.paths),
            ));
            for replaced in &report.would_replace {
                lines.push(describe_replaced(replaced));
            }
            if let (true, Some(targets)) = (report.dry_run, &report.heal_for) {
                let who = if targets.is_empty() {
                    "the default interpreter (`UV_PYTHON`, else `python3`)".to_string()
                } else {
                    quote_list(targets)
                };
                lines.push(format!(
                    "  then heals each restored uv cache for {who}: the sources it lacks are fetched and checked"
                ));
            }
        }
        (Some(MissReason::NoEntry), _) => {
            lines.push(no_entry_line(report));
            lines.extend(other_version_lines(report));
        }
        // The untrusted-event skip, a store failure and a damaged entry were each explained
        // by a warning or an info line when they happened.
        (Some(_), _) => {}
    }
    lines
}

fn partial_note(report: &RestoreReport) -> String {
    match report.status {
        Status::Partial => format!(" (partial match for `{}`)", report.primary_key),
        _ => String::new(),
    }
}

fn describe_replaced(replaced: &Replaced) -> String {
    if replaced.exists {
        format!(
            "  replaces `{}` whole: {} files, {} there now",
            replaced.path.display(),
            replaced.files,
            human_bytes(replaced.bytes)
        )
    } else {
        format!(
            "  creates `{}` (nothing there now)",
            replaced.path.display()
        )
    }
}

fn no_entry_line(report: &RestoreReport) -> String {
    let fallbacks = if report.restore_keys.is_empty() {
        String::new()
    } else {
        format!("\n  or restore keys {}", quote_list(&report.restore_keys))
    };
    let consequence = if report.dry_run {
        "a restore would start with an empty cache"
    } else {
        "continuing with an empty cache"
    };
    format!(
        "No cache entry for `{}`{fallbacks} in {}; {consequence}",
        report.primary_key, report.store
    )
}

/// "`k1` exists, but was saved with …": the inputs that make its version differ.
pub fn other_version_lines(report: &RestoreReport) -> Vec<String> {
    let mut lines = Vec::new();
    for other in &report.other_versions {
        lines.push(format!(
            "\nhint: `{}` exists in {} with another version ({}…), saved with:",
            other.key,
            report.store,
            &other.version[..other.version.len().min(12)]
        ));
        for difference in &other.differences {
            lines.push(format!("  - {difference}"));
        }
    }
    lines
}

/// Step outputs, the state for the save step and the summary. Outside Actions (no
/// `GITHUB_OUTPUT`, `RUNNER_TEMP`, `GITHUB_STEP_SUMMARY`) it does nothing.
fn write_for_actions(report: &RestoreReport) -> anyhow::Result<()> {
    let exact = report.is_exact();
    let outputs = Outputs::from_env();
    // actions/cache leaves `cache-hit` unset on a miss (actions/cache#1466) and sets
    // `cache-matched-key` only when something matched; workflows test both as strings.
    if let Some(matched) = &report.matched_key {
        outputs.set("cache-hit", if exact { "true" } else { "false" })?;
        outputs.set("cache-matched-key", matched)?;
    }
    outputs.set("cache-primary-key", &report.primary_key)?;
    outputs.set("cache-status", report.status.as_str())?;
    outputs.set("bytes-restored", &report.content_bytes.to_string())?;
    outputs.set("healed", &report.healed.to_string())?;

    StateDir::from_env().write(
        &report.version,
        &State {
            primary_key: report.primary_key.clone(),
            matched_key: report.matched_key.clone(),
            exact: exact && report.restored,
            fingerprint: report.fingerprint.clone(),
        },
    )?;
    Summary::from_env().table("cache-heal restore", &summary_rows(report))
}

fn summary_rows(report: &RestoreReport) -> Vec<(&'static str, String)> {
    let quoted: Vec<String> = report
        .restore_keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect();
    let mut rows = vec![
        ("Key", format!("`{}`", report.primary_key)),
        ("Restore keys", quoted.join(" ")),
        (
            "Matched key",
            report
                .matched_key
                .as_ref()
                .map_or("none".to_string(), |m| format!("`{m}`")),
        ),
        ("Status", report.status.as_str().to_string()),
        (
            "Restored",
            if report.restored {
                format!(
                    "{} ({} archive)",
                    human_bytes(report.content_bytes),
                    human_bytes(report.bytes.unwrap_or_default())
                )
            } else {
                "nothing".to_string()
            },
        ),
        (
            "Time",
            format!("{:.1}s: {}", report.seconds, report.timings.describe()),
        ),
        ("Healed", format!("{} packages", report.healed)),
    ];
    if let Some(reason) = report.miss.as_ref().and_then(MissReason::describe) {
        rows.push(("Skipped", reason));
    }
    rows
}
