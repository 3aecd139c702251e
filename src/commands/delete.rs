//! `cache-heal delete`: find a key's entries in the save scope → remove each → say what went.
//! A key with no entry there is an error that says where it does have entries, if anywhere.

use anyhow::{Result, anyhow};

use super::gc::{describe_entry, open_store};
use crate::cli::{DeleteArgs, GlobalArgs};
use crate::output::human_bytes;
use crate::report::{DataReport, Report};
use crate::store::{EntryInfo, Removal};

/// `cache-heal delete --json`.
#[derive(Debug, serde::Serialize)]
struct DeleteReport<'a> {
    status: &'static str,
    store: String,
    key: &'a str,
    /// The scope it acted in, for stores that keep scopes.
    scope: Option<&'a str>,
    removed: Vec<Removed<'a>>,
    freed: u64,
}

#[derive(Debug, serde::Serialize)]
struct Removed<'a> {
    version: &'a str,
    size: u64,
    created: u64,
}

pub fn run(args: &DeleteArgs, _global: &GlobalArgs) -> Result<Report> {
    super::check_key_flag("--key", &args.key)?;
    let store = open_store("delete", &args.store)?;
    let scope = store.save_scope().map(str::to_string);
    let listed = store.list()?;
    let (matching, elsewhere): (Vec<&EntryInfo>, Vec<&EntryInfo>) = listed
        .iter()
        .filter(|e| e.key == args.key)
        .partition(|e| scope.is_none() || e.scope == scope);
    if matching.is_empty() {
        return Err(not_there(
            &args.key,
            scope.as_deref(),
            &elsewhere,
            &store.describe(),
        ));
    }
    let mut removed = Vec::new();
    let mut lines = Vec::new();
    for entry in matching {
        crate::interrupt::check()?;
        if store.remove(entry, None)? == Removal::Removed {
            lines.push(format!(
                "Removed {} ({})",
                describe_entry(&entry.key, entry.scope.as_deref(), &entry.version),
                human_bytes(entry.size)
            ));
            removed.push(Removed {
                version: &entry.version,
                size: entry.size,
                created: entry.created,
            });
        }
    }
    let freed = removed.iter().map(|r| r.size).sum();
    let count = removed.len();
    let mut report = DataReport::new(&DeleteReport {
        status: "ok",
        store: store.describe(),
        key: &args.key,
        scope: scope.as_deref(),
        removed,
        freed,
    })?;
    report.stderr = lines;
    report.stderr.push(format!(
        "Removed {count} {} of `{}`, {} freed, from {}",
        if count == 1 { "entry" } else { "entries" },
        args.key,
        human_bytes(freed),
        store.describe()
    ));
    Ok(Report::Data(report))
}

/// The key has no entry in the scope: say so, and where it has some.
fn not_there(
    key: &str,
    scope: Option<&str>,
    elsewhere: &[&EntryInfo],
    store: &str,
) -> anyhow::Error {
    let in_scope = scope.map_or(String::new(), |s| format!(" in scope `{s}`"));
    let others: Vec<String> = elsewhere
        .iter()
        .filter_map(|e| e.scope.as_deref())
        .map(|s| format!("`{s}`"))
        .collect();
    let hint = if others.is_empty() {
        format!("`cache-heal inspect --store {store}` lists the entries (keys match exactly)")
    } else {
        format!(
            "the key has entries in scope {}; pass `--scope` to delete there (outside GitHub Actions)",
            others.join(", ")
        )
    };
    anyhow!("no entry with key `{key}`{in_scope} in {store}\n\nhint: {hint}")
}
