//! `cache-heal inspect`: list the entries of a store, newest first.

use anyhow::Result;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{open_store, print_json};
use crate::cli::{GlobalArgs, InspectArgs};
use crate::output::human_bytes;

pub fn run(_args: &InspectArgs, global: &GlobalArgs) -> Result<()> {
    let store = open_store(global)?;
    let entries = store.list()?;
    if global.json {
        return print_json(&serde_json::to_value(&entries)?);
    }
    if entries.is_empty() {
        eprintln!("No entries in {}", store.describe());
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{:<50} {:<14} {:>10} {:>6} {:>8}",
        "KEY", "VERSION", "SIZE", "CODEC", "AGE"
    );
    for entry in &entries {
        println!(
            "{:<50} {:<14} {:>10} {:>6} {:>8}",
            entry.key,
            &entry.version[..entry.version.len().min(12)],
            human_bytes(entry.size),
            entry.compression.to_string(),
            human_age(now.saturating_sub(entry.created)),
        );
    }
    Ok(())
}

fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
