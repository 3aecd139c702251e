//! The save report: how a save ended, and its closing line and `--json`.

use serde::Serialize;

use super::{Printer, print_json, with_command};
use crate::archive::level::Level;
use crate::output::{self, human_bytes};

/// How a save ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveStatus {
    /// The entry was written and published.
    Saved,
    /// The restore step got an exact hit of this key and nothing changed since.
    UpToDate,
    /// Another save of the same key and version published first; entries are immutable.
    Exists,
    /// The store refused or failed, in a way that must not fail the build (as actions/cache
    /// never fails a build over a save): a warning, exit 0. `reason` says why.
    NotSaved,
}

/// Content compressed at one zstd level (with `--compression-level auto`).
#[derive(Clone, Debug, Serialize)]
pub struct LevelUse {
    pub level: i32,
    pub content_bytes: u64,
}

/// Where a save's time went, in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SaveTimings {
    /// Working out what pruning leaves out of uv caches.
    pub prune: f64,
    /// Reading, archiving, compressing and uploading (these overlap).
    pub archive: f64,
    /// Of `archive`, the time the compressor waited for the store to take bytes.
    pub upload_wait: f64,
    /// Publishing the entry once the archive was written.
    pub publish: f64,
    /// Whether the store is across a network (not a local directory).
    #[serde(skip)]
    pub remote: bool,
}

impl SaveTimings {
    /// `network` when the archive mostly waited for a remote store's upload, `disk` (reading,
    /// compressing, writing a local store) otherwise; `None` when nothing was archived.
    pub fn bound(&self) -> Option<&'static str> {
        (self.archive > 0.0).then(|| {
            if self.remote && self.upload_wait > self.archive / 2.0 {
                "network"
            } else {
                "disk"
            }
        })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.prune > 0.0 {
            parts.push(format!("{:.1}s prune", self.prune));
        }
        if let Some(bound) = self.bound() {
            let waiting = if self.remote {
                "waiting on the store"
            } else {
                "writing the store's archive"
            };
            parts.push(format!(
                "{:.1}s read, compress and upload ({bound}-bound: {:.0}% {waiting})",
                self.archive,
                100.0 * self.upload_wait / self.archive
            ));
            parts.push(format!("{:.1}s publish", self.publish));
        }
        parts.join(", ")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SaveReport {
    pub status: SaveStatus,
    pub key: String,
    pub version: String,
    pub store: String,
    pub paths: Vec<String>,
    /// Why nothing was saved, with `not-saved`.
    pub reason: Option<String>,
    /// Archive bytes stored.
    pub bytes: u64,
    /// File content archived.
    pub content_bytes: u64,
    pub files: u64,
    pub compression: crate::key::Compression,
    #[serde(skip)]
    pub level_setting: Level,
    pub compression_levels: Vec<LevelUse>,
    /// Files and bytes of uv caches left out of the archive by `--prune` (the cache on disk
    /// is not changed).
    pub pruned_files: u64,
    pub pruned_bytes: u64,
    pub seconds: f64,
    /// Where the time went.
    pub timings: SaveTimings,
    /// `network` or `disk`: what held the archive back (`null` when nothing was archived).
    pub bound: Option<&'static str>,
}

pub fn render(report: &SaveReport, printer: Printer) -> anyhow::Result<u8> {
    if printer.json {
        print_json(&with_command("save", report)?)?;
    }
    match report.status {
        SaveStatus::Saved => {
            output::info(&format!(
                "Saved `{}` to {}: {} files, {} → {} ({} {}) in {:.1}s",
                report.key,
                report.store,
                report.files,
                human_bytes(report.content_bytes),
                human_bytes(report.bytes),
                report.compression,
                describe_levels(report.level_setting, &report.compression_levels),
                report.seconds,
            ));
            output::info(&format!("  time: {}", report.timings.describe()));
        }
        SaveStatus::UpToDate => output::info(&format!(
            "Cache up-to-date: `{}` was restored as an exact hit and nothing changed; not saving",
            report.key
        )),
        SaveStatus::Exists => output::info(&format!(
            "Entry `{}` already exists in {}; not saving (another job saved this key first)",
            report.key, report.store
        )),
        // The warning or info line that explains it was printed when it happened.
        SaveStatus::NotSaved => {}
    }
    Ok(0)
}

/// "level 3", or for `auto` the levels it went through: "level auto: 3 for 64 MiB, 1 for 890 MiB".
fn describe_levels(setting: Level, levels: &[LevelUse]) -> String {
    match (setting, levels) {
        (Level::Fixed(level), _) => format!("level {level}"),
        // No file content at all: nothing was compressed at any level.
        (Level::Auto, []) => "level auto".to_string(),
        (Level::Auto, [only]) => format!("level auto: {}", only.level),
        (Level::Auto, _) => {
            let parts: Vec<String> = levels
                .iter()
                .map(|l| format!("{} for {}", l.level, human_bytes(l.content_bytes)))
                .collect();
            format!("level auto: {}", parts.join(", "))
        }
    }
}
