//! `cache-heal gc`: list every entry of the store → plan what goes (too old, then least recently
//! used while over the size) and what stays for the grace window → remove one entry at a time →
//! sweep what no entry owns → say what was removed, kept, swept and freed.
//!
//! Concurrent restores are safe by two rules. A restore records its use before it downloads
//! (`Store::record_use`), and gc never evicts an entry used or saved within the grace window:
//! once when it plans, from the listing, and again right before each removal, from the store
//! (`Store::remove` with a cutoff), so a restore that started after the listing is not cut off.

use anyhow::Result;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{GcArgs, GlobalArgs, StoreArgs};
use crate::output::human_bytes;
use crate::report::{DataReport, Report};
use crate::store::{EntryInfo, Removal, Store, StoreSpec, Swept};

/// Why an entry goes or stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not used (or saved, if never used) for longer than `--max-age`.
    MaxAge,
    /// The store was over `--max-size` and nothing older was left to go.
    MaxSize,
    /// It would have gone, but was used or saved within the grace window.
    Grace,
}

impl Reason {
    fn describe(self, args: &GcArgs) -> String {
        match self {
            Reason::MaxAge => format!(
                "not used for over {}",
                human_duration(args.max_age.unwrap_or_default())
            ),
            Reason::MaxSize => format!(
                "least recently used while over {}",
                human_bytes(args.max_size.unwrap_or_default())
            ),
            Reason::Grace => format!(
                "used or saved within the {} grace window",
                human_duration(args.grace)
            ),
        }
    }
}

/// One entry gc removed or kept, as reported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub key: String,
    pub scope: Option<String>,
    pub version: String,
    pub size: u64,
    pub created: u64,
    pub last_used: Option<u64>,
    pub reason: Reason,
}

impl Decision {
    fn new(entry: &EntryInfo, reason: Reason) -> Self {
        Self {
            key: entry.key.clone(),
            scope: entry.scope.clone(),
            version: entry.version.clone(),
            size: entry.size,
            created: entry.created,
            last_used: entry.last_used,
            reason,
        }
    }

    /// The entry as a report line names it.
    fn entry(&self) -> String {
        describe_entry(&self.key, self.scope.as_deref(), &self.version, self.size)
    }
}

/// What gc decided before touching anything.
struct Plan {
    evict: Vec<(EntryInfo, Reason)>,
    kept: Vec<Decision>,
    entries: usize,
    bytes: u64,
}

/// `cache-heal gc --json`.
#[derive(Debug, serde::Serialize)]
struct GcReport<'a> {
    status: &'static str,
    store: String,
    dry_run: bool,
    /// Entries and archive bytes before gc.
    entries_before: usize,
    bytes_before: u64,
    /// Removed (in a dry run: that would be).
    removed: &'a [Decision],
    /// Would have gone, but stayed for the grace window.
    kept: &'a [Decision],
    freed: u64,
    bytes_after: u64,
    /// Files no entry owned: leftovers of killed saves, entries put aside as damaged.
    swept: Swept,
}

pub fn run(args: &GcArgs, _global: &GlobalArgs) -> Result<Report> {
    if args.max_size.is_none() && args.max_age.is_none() {
        return Err(crate::UsageError::Missing(
            "`gc` needs a limit: `--max-size`, `--max-age`, or both\n\nhint: `cache-heal gc --store <STORE> --max-size 20G --max-age 14d`".to_string(),
        )
        .into());
    }
    let store = open_store("gc", &args.store)?;
    let now = now_ns();
    let grace_cutoff = now.saturating_sub(args.grace.as_nanos());
    let plan = make_plan(store.list()?, args, now);
    let mut kept = plan.kept;
    let mut removed = Vec::new();
    if args.dry_run {
        removed = plan
            .evict
            .iter()
            .map(|(entry, reason)| Decision::new(entry, *reason))
            .collect();
    } else {
        for (entry, reason) in &plan.evict {
            interrupted_after(removed.len(), removed.iter().map(|d| d.size).sum())?;
            match store.remove(entry, Some(grace_cutoff))? {
                Removal::Removed => removed.push(Decision::new(entry, *reason)),
                Removal::InUse => kept.push(Decision::new(entry, Reason::Grace)),
                Removal::Gone => {}
            }
        }
    }
    let swept = store.sweep(grace_cutoff, args.dry_run)?;
    let freed: u64 = removed.iter().map(|d| d.size).sum();
    let mut report = DataReport::new(&GcReport {
        status: "ok",
        store: store.describe(),
        dry_run: args.dry_run,
        entries_before: plan.entries,
        bytes_before: plan.bytes,
        removed: &removed,
        kept: &kept,
        freed,
        bytes_after: plan.bytes.saturating_sub(freed),
        swept,
    })?;
    let verb = if args.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    for decision in &removed {
        report.stderr.push(format!(
            "{verb} {}: {}",
            decision.entry(),
            decision.reason.describe(args)
        ));
    }
    for decision in &kept {
        report.stderr.push(format!(
            "Kept {}: {}",
            decision.entry(),
            decision.reason.describe(args)
        ));
    }
    if swept.files > 0 {
        report.stderr.push(format!(
            "{verb} {} files no entry owned (left by killed saves, or entries put aside as damaged or broken), {}",
            swept.files,
            human_bytes(swept.bytes)
        ));
    }
    report.stderr.push(format!(
        "{verb} {} of {} entries, freeing {}; {} {} in {}",
        removed.len(),
        plan.entries,
        human_bytes(freed),
        human_bytes(plan.bytes.saturating_sub(freed)),
        if args.dry_run { "would stay" } else { "stay" },
        store.describe()
    ));
    Ok(Report::Data(report))
}

/// Decides, oldest use first: an entry goes if it is older than `--max-age`, or if the store
/// is still over `--max-size`; but not if it was used or saved within the grace window.
fn make_plan(mut entries: Vec<EntryInfo>, args: &GcArgs, now: u128) -> Plan {
    entries.sort_by_key(|e| e.recency_ns);
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let count = entries.len();
    let grace_cutoff = now.saturating_sub(args.grace.as_nanos());
    let age_cutoff = args.max_age.map(|age| now.saturating_sub(age.as_nanos()));
    let mut remaining = bytes;
    let mut evict = Vec::new();
    let mut kept = Vec::new();
    for entry in entries {
        let reason = if age_cutoff.is_some_and(|cutoff| entry.recency_ns < cutoff) {
            Reason::MaxAge
        } else if args.max_size.is_some_and(|max| remaining > max) {
            Reason::MaxSize
        } else {
            continue;
        };
        if entry.recency_ns >= grace_cutoff {
            kept.push(Decision::new(&entry, Reason::Grace));
            continue;
        }
        remaining = remaining.saturating_sub(entry.size);
        evict.push((entry, reason));
    }
    Plan {
        evict,
        kept,
        entries: count,
        bytes,
    }
}

/// Stops at a signal between two removals, saying how far it got (`count` entries of `bytes`
/// removed so far).
pub fn interrupted_after(count: usize, bytes: u64) -> Result<()> {
    if let Err(interrupted) = crate::interrupt::check() {
        let error = anyhow::Error::new(interrupted);
        if count == 0 {
            return Err(error);
        }
        return Err(error.context(crate::interrupt::Done(format!(
            "removed {count} {} ({} freed) before stopping; the others stay",
            if count == 1 { "entry" } else { "entries" },
            human_bytes(bytes)
        ))));
    }
    Ok(())
}

/// Opens the store a maintenance command works on: `dir:`, `s3://` or `az://`. The GitHub
/// Actions cache is refused before anything is sent: it evicts by itself and its runtime API
/// deletes nothing.
pub fn open_store(command: &str, args: &StoreArgs) -> Result<Box<dyn Store>> {
    let cwd = std::env::current_dir()?;
    let home = crate::paths::home_dir();
    let spec = StoreSpec::parse(args.store.as_deref(), &cwd, home.as_deref())?.configure(args);
    if spec == StoreSpec::Gha {
        return Err(crate::UsageError::Invalid(format!(
            "`{command}` works on `dir:`, `s3://` and `az://` stores, not on the GitHub Actions cache: GitHub evicts its entries by itself (unused for 7 days, or over the repository's limit)\n\nhint: to remove a GitHub cache entry, use `gh cache delete <KEY>`; for another store pass `--store dir:<DIR>`, `--store s3://<BUCKET>` or `--store az://<CONTAINER>`"
        ))
        .into());
    }
    spec.open()
}

/// `` `key` (scope `s`, version `abc…`) ``.
pub fn describe_entry(key: &str, scope: Option<&str>, version: &str, size: u64) -> String {
    let version = &version[..version.len().min(12)];
    let size = human_bytes(size);
    match scope {
        Some(scope) => format!("`{key}` (scope `{scope}`, version {version}, {size})"),
        None => format!("`{key}` (version {version}, {size})"),
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn human_duration(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        s if s % (7 * 86400) == 0 && s > 0 => format!("{}w", s / (7 * 86400)),
        s if s % 86400 == 0 && s > 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Compression;

    const SECOND: u128 = 1_000_000_000;

    fn entry(key: &str, size: u64, recency_s: u128) -> EntryInfo {
        EntryInfo {
            key: key.into(),
            version: "v".into(),
            size,
            compression: Compression::Zstd,
            created: 0,
            paths: None,
            workspace: None,
            scope: Some("local".into()),
            last_used: None,
            recency_ns: recency_s * SECOND,
        }
    }

    fn args(max_size: Option<u64>, max_age_s: Option<u64>, grace_s: u64) -> GcArgs {
        GcArgs {
            max_size,
            max_age: max_age_s.map(Duration::from_secs),
            grace: Duration::from_secs(grace_s),
            dry_run: false,
            store: StoreArgs {
                store: None,
                s3_endpoint: None,
                s3_path_style: false,
                az_endpoint: None,
                scope: None,
            },
        }
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        plan.evict.iter().map(|(e, _)| e.key.as_str()).collect()
    }

    #[test]
    fn the_least_recently_used_go_first_until_under_the_size() {
        let entries = vec![
            entry("a", 10, 300),
            entry("b", 10, 100),
            entry("c", 10, 200),
        ];
        let plan = make_plan(entries, &args(Some(20), None, 0), 1000 * SECOND);
        assert_eq!(keys(&plan), ["b"]);
        assert_eq!(plan.bytes, 30);
    }

    #[test]
    fn too_old_goes_whatever_the_size_and_the_grace_window_keeps() {
        let entries = vec![entry("old", 1, 10), entry("new", 1, 990)];
        let plan = make_plan(entries, &args(None, Some(100), 0), 1000 * SECOND);
        assert_eq!(keys(&plan), ["old"]);
        // Over the size, but everything was used within the last 500 s.
        let entries = vec![entry("a", 10, 600), entry("b", 10, 700)];
        let plan = make_plan(entries, &args(Some(5), None, 500), 1000 * SECOND);
        assert!(plan.evict.is_empty());
        assert_eq!(plan.kept.len(), 2);
        assert!(plan.kept.iter().all(|k| k.reason == Reason::Grace));
    }
}
