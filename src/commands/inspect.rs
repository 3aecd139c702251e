//! `cache-heal inspect`: list the entries of a store, newest first; with `--path`, show what a
//! uv cache holds instead (buckets and sizes, sdists with their built wheels' tags, which
//! sources are missing).

use anyhow::{Result, bail};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{open_store, print_json};
use crate::cli::{GlobalArgs, InspectArgs};
use crate::output::{self, human_bytes};
use crate::python::wheel::WheelFilename;
use crate::uv::heal;
use crate::uv::layout::Layout;

pub fn run(args: &InspectArgs, global: &GlobalArgs) -> Result<()> {
    if let Some(path) = &args.path {
        return inspect_uv_cache(path, global);
    }
    let store = open_store(&args.store)?;
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

/// Buckets with their sizes, then every sdist revision with the tags of its built wheels and
/// whether its source is there.
fn inspect_uv_cache(root: &Path, global: &GlobalArgs) -> Result<()> {
    if !Layout::is_uv_cache(root) {
        bail!(
            "`{}` is not a uv cache: it has neither uv's `CACHEDIR.TAG` nor a bucket of a uv version cache-heal knows",
            root.display()
        );
    }
    let layout = Layout::discover(root)?;
    let inventory = heal::scan(&layout)?;
    for warning in &inventory.warnings {
        output::warn(warning);
    }
    let buckets: Vec<(String, String, u64, u64)> = layout
        .buckets
        .iter()
        .map(|b| {
            let (files, bytes) = tree_size(&b.path);
            (
                b.name.clone(),
                format!("{:?}", b.kind).to_lowercase(),
                files,
                bytes,
            )
        })
        .collect();
    let tags_of = |wheels: &[String]| -> Vec<String> {
        wheels
            .iter()
            .filter_map(|w| WheelFilename::parse(w).map(|w| w.tag_string()))
            .collect()
    };
    if global.json {
        return print_json(&serde_json::json!({
            "path": root,
            "generation": layout.current_generation(),
            "buckets": buckets.iter().map(|(name, kind, files, bytes)| serde_json::json!({
                "name": name, "kind": kind, "files": files, "bytes": bytes,
            })).collect::<Vec<_>>(),
            "unknown": layout.unknown.iter().map(|u| &u.name).collect::<Vec<_>>(),
            "sdists": inventory.revisions.iter().map(|r| serde_json::json!({
                "package": r.name,
                "version": r.version,
                "kind": r.kind,
                "shard": r.shard,
                "revision": r.revision_id,
                "sha256": r.sha256,
                "size": r.size,
                "wheel_tags": tags_of(&r.wheels),
                "source_missing": !r.has_src,
            })).collect::<Vec<_>>(),
            "left_alone": inventory.left_alone,
        }));
    }
    println!("uv cache `{}`", root.display());
    println!(
        "{:<20} {:<13} {:>8} {:>11}",
        "BUCKET", "KIND", "FILES", "SIZE"
    );
    for (name, kind, files, bytes) in &buckets {
        println!(
            "{name:<20} {kind:<13} {files:>8} {:>11}",
            human_bytes(*bytes)
        );
    }
    for unknown in &layout.unknown {
        println!(
            "{:<20} {:<13} (not a bucket of a uv version cache-heal knows; left alone)",
            unknown.name, "unknown"
        );
    }
    println!();
    println!(
        "{:<28} {:<10} {:<8} {:<7} BUILT WHEEL TAGS",
        "SDIST", "VERSION", "KIND", "SOURCE"
    );
    let mut missing = 0;
    for rev in &inventory.revisions {
        missing += usize::from(!rev.has_src);
        let tags = tags_of(&rev.wheels);
        println!(
            "{:<28} {:<10} {:<8} {:<7} {}",
            rev.name.as_deref().unwrap_or("?"),
            rev.version.as_deref().unwrap_or("?"),
            match rev.kind {
                heal::ShardKind::Registry => "registry",
                heal::ShardKind::Url => "url",
            },
            if rev.has_src { "present" } else { "missing" },
            if tags.is_empty() {
                "(none)".to_string()
            } else {
                tags.join(", ")
            },
        );
    }
    println!();
    println!(
        "{} sdists, {} without their source; {} path, editable or git shards left to uv",
        inventory.revisions.len(),
        missing,
        inventory.left_alone.len()
    );
    Ok(())
}

/// Files and bytes below a directory, without following links.
fn tree_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_dir() {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    (files, bytes)
}
