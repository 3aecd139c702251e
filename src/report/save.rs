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
    /// Files and bytes of uv caches left out of the archive because `uv cache prune --ci`
    /// removes them (the cache on disk is not changed).
    pub pruned_files: u64,
    pub pruned_bytes: u64,
    pub seconds: f64,
}

pub fn render(report: &SaveReport, printer: Printer) -> anyhow::Result<u8> {
    if printer.json {
        print_json(&with_command("save", report)?)?;
    }
    match report.status {
        SaveStatus::Saved => output::info(&format!(
            "Saved `{}` to {}: {} files, {} → {} ({} {}) in {:.1}s",
            report.key,
            report.store,
            report.files,
            human_bytes(report.content_bytes),
            human_bytes(report.bytes),
            report.compression,
            describe_levels(report.level_setting, &report.compression_levels),
            report.seconds,
        )),
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
