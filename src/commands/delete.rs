//! `cache-heal delete`: find a key's entries in the save scope → remove each → say what went.
//! A key with no entry there is an error that says where it does have entries, if anywhere.

use anyhow::Result;

use super::gc::{describe_entry, interrupted_after, open_store};
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
        return Err(NotThere {
            key: args.key.clone(),
            scope,
            elsewhere: elsewhere.iter().filter_map(|e| e.scope.clone()).collect(),
            store: store.describe(),
        }
        .into());
    }
    let mut removed: Vec<Removed> = Vec::new();
    let mut lines = Vec::new();
    for entry in matching {
        interrupted_after(removed.len(), removed.iter().map(|r| r.size).sum())?;
        if store.remove(entry, None)? == Removal::Removed {
            lines.push(format!(
                "Removed {}",
                describe_entry(
                    &entry.key,
                    entry.scope.as_deref(),
                    &entry.version,
                    entry.size
                )
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
        "Removed {count} {} of `{}` from {}, freeing {}",
        if count == 1 { "entry" } else { "entries" },
        args.key,
        store.describe(),
        human_bytes(freed)
    ));
    Ok(Report::Data(report))
}

/// The key has no entry in the scope. Says so, and where it does have entries, if anywhere.
#[derive(Debug)]
pub struct NotThere {
    pub key: String,
    pub scope: Option<String>,
    /// Scopes where the key has entries.
    pub elsewhere: Vec<String>,
    pub store: String,
}

impl std::fmt::Display for NotThere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            key,
            scope,
            elsewhere,
            store,
        } = self;
        write!(f, "no entry with key `{key}`")?;
        if let Some(scope) = scope {
            write!(f, " in scope `{scope}`")?;
        }
        write!(f, " of {store}\n\nhint: ")?;
        if elsewhere.is_empty() {
            write!(
                f,
                "`cache-heal inspect --store {store}` lists the entries (keys match exactly)"
            )
        } else {
            let scopes: Vec<String> = elsewhere.iter().map(|s| format!("`{s}`")).collect();
            write!(
                f,
                "the key has entries in scope {}; outside GitHub Actions, `--scope` deletes there",
                scopes.join(", ")
            )
        }
    }
}

impl std::error::Error for NotThere {}
