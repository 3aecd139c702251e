//! `cache-heal inspect`: list the entries of a store, newest first, with their scope and last
//! use; with `--path`, show what a uv cache holds instead (buckets and sizes, sdists with their
//! built wheels' tags, which sources are missing).

use anyhow::Result;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{GlobalArgs, InspectArgs};
use crate::output::{self, human_bytes};
use crate::python::wheel::WheelFilename;
use crate::report::{DataReport, EntriesReport, Report};
use crate::store::{EntryInfo, StoreSpec};
use crate::uv::heal;
use crate::uv::layout::Layout;

pub fn run(args: &InspectArgs, _global: &GlobalArgs) -> Result<Report> {
    if let Some(path) = &args.path {
        return inspect_uv_cache(path);
    }
    let cwd = std::env::current_dir()?;
    let home = crate::paths::home_dir();
    let spec = StoreSpec::parse(args.store.store.as_deref(), &cwd, home.as_deref())?
        .configure(&args.store);
    let store = spec.open()?;
    Ok(Report::Entries(EntriesReport {
        status: "ok",
        store: store.describe(),
        entries: store.list()?,
    }))
}

/// The table `inspect` prints: one line per entry, then its path lines and workspace.
pub fn entry_table(entries: &[EntryInfo]) -> Vec<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut lines = vec![format!(
        "{:<50} {:<14} {:>10} {:>6} {:>8} {:>9}",
        "KEY", "VERSION", "SIZE", "CODEC", "AGE", "LAST USED"
    )];
    for entry in entries {
        let used = entry.last_used.map_or("never".to_string(), |used| {
            format!("{} ago", human_age(now.saturating_sub(used)))
        });
        lines.push(format!(
            "{:<50} {:<14} {:>10} {:>6} {:>8} {:>9}",
            entry.key,
            &entry.version[..entry.version.len().min(12)],
            human_bytes(entry.size),
            entry.compression.to_string(),
            human_age(now.saturating_sub(entry.created)),
            used,
        ));
        if let Some(scope) = &entry.scope {
            lines.push(format!("  scope: `{scope}`"));
        }
        if let Some(paths) = &entry.paths {
            lines.push(format!("  paths: {}", crate::report::quote_list(paths)));
        }
        if let Some(workspace) = &entry.workspace {
            lines.push(format!("  workspace: `{}`", workspace.display()));
        }
    }
    lines
}

fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `cache-heal inspect --path DIR --json`: what a uv cache holds.
#[derive(Debug, serde::Serialize)]
struct UvCacheReport<'a> {
    status: &'static str,
    path: &'a Path,
    generation: Option<crate::uv::layout::Generation>,
    buckets: Vec<BucketReport<'a>>,
    /// Directories that are not buckets of a uv version cache-heal knows.
    unknown: Vec<&'a str>,
    sdists: Vec<SdistReport<'a>>,
    /// Path, editable and git shards, left to uv.
    left_alone: &'a [std::path::PathBuf],
}

#[derive(Debug, serde::Serialize)]
struct BucketReport<'a> {
    name: &'a str,
    kind: &'a str,
    files: u64,
    bytes: u64,
}

#[derive(Debug, serde::Serialize)]
struct SdistReport<'a> {
    package: Option<&'a str>,
    version: Option<&'a str>,
    kind: heal::ShardKind,
    shard: &'a Path,
    revision: &'a str,
    sha256: Option<&'a str>,
    size: Option<u64>,
    wheel_tags: Vec<String>,
    source_missing: bool,
}

/// Buckets with their sizes, then every sdist revision with the tags of its built wheels and
/// whether its source is there.
fn inspect_uv_cache(root: &Path) -> Result<Report> {
    super::require_uv_cache(root)?;
    let layout = Layout::discover(root)?;
    let inventory = heal::scan(&layout)?;
    for warning in &inventory.warnings {
        output::warn(warning);
    }
    let buckets: Vec<(String, String, u64, u64)> = layout
        .buckets
        .iter()
        .map(|b| {
            let (files, bytes) = crate::paths::tree_size(&b.path);
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
    let mut report = DataReport::new(&UvCacheReport {
        status: "ok",
        path: root,
        generation: layout.current_generation(),
        buckets: buckets
            .iter()
            .map(|(name, kind, files, bytes)| BucketReport {
                name,
                kind,
                files: *files,
                bytes: *bytes,
            })
            .collect(),
        unknown: layout.unknown.iter().map(|u| u.name.as_str()).collect(),
        sdists: inventory
            .revisions
            .iter()
            .map(|r| SdistReport {
                package: r.name.as_deref(),
                version: r.version.as_deref(),
                kind: r.kind,
                shard: &r.shard,
                revision: &r.revision_id,
                sha256: r.sha256.as_deref(),
                size: r.size,
                wheel_tags: tags_of(&r.wheels),
                source_missing: !r.has_src,
            })
            .collect(),
        left_alone: &inventory.left_alone,
    })?;
    let out = &mut report.stdout;
    out.push(format!("uv cache `{}`", root.display()));
    out.push(format!(
        "{:<20} {:<13} {:>8} {:>11}",
        "BUCKET", "KIND", "FILES", "SIZE"
    ));
    for (name, kind, files, bytes) in &buckets {
        out.push(format!(
            "{name:<20} {kind:<13} {files:>8} {:>11}",
            human_bytes(*bytes)
        ));
    }
    for unknown in &layout.unknown {
        out.push(format!(
            "{:<20} {:<13} (not a bucket of a uv version cache-heal knows; left alone)",
            unknown.name, "unknown"
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{:<28} {:<10} {:<8} {:<7} BUILT WHEEL TAGS",
        "SDIST", "VERSION", "KIND", "SOURCE"
    ));
    let mut missing = 0;
    for rev in &inventory.revisions {
        missing += usize::from(!rev.has_src);
        let tags = tags_of(&rev.wheels);
        out.push(format!(
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
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{} sdists, {} without their source; {} path, editable or git shards left to uv",
        inventory.revisions.len(),
        missing,
        inventory.left_alone.len()
    ));
    Ok(Report::Data(report))
}
