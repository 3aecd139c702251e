//! One module per subcommand. Each reads like the flow in DESIGN.md: one call per stage.

pub mod actions;
pub mod delete;
pub mod gc;
pub mod heal;
pub mod inspect;
pub mod key;
pub mod prune;
pub mod restore;
pub mod save;

use anyhow::{Context, Result};

use crate::cli::{GlobalArgs, PathArgs};
use crate::paths::{PathInputs, Roots};
use crate::store;

/// What every command needs: the parsed path inputs, where they resolve, and the store.
pub struct PathContext {
    pub inputs: PathInputs,
    pub roots: Roots,
}

/// Resolves the roots (current directory, workspace, home) and parses the path inputs.
pub fn path_context(args: &PathArgs) -> Result<PathContext> {
    let inputs =
        PathInputs::parse(&args.paths).map_err(|e| crate::UsageError::Invalid(e.to_string()))?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let roots = Roots::new(cwd, args.workspace.clone(), crate::paths::home_dir());
    Ok(PathContext { inputs, roots })
}

/// `--path` of `prune`, `heal` and `inspect` must name a uv cache: anything else is a usage
/// error, found before anything is read.
pub fn require_uv_cache(path: &std::path::Path) -> Result<()> {
    if crate::uv::layout::Layout::is_uv_cache(path) {
        return Ok(());
    }
    Err(crate::UsageError::Invalid(format!(
        "`{}` is not a uv cache: it has neither uv's `CACHEDIR.TAG` nor a bucket of a uv version cache-heal knows\n\nhint: `uv cache dir` prints where uv's cache is",
        path.display()
    ))
    .into())
}

/// An empty value for a key flag is a usage error that names the flag (the action passes
/// empty inputs through as empty strings).
pub fn check_key_flag(flag: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(crate::UsageError::Missing(format!(
            "`{flag}` is empty: it needs the key of the entry\n\nhint: `cache-heal key` prints the automatic key for this project"
        ))
        .into());
    }
    Ok(())
}

/// Whether progress should be drawn for this invocation.
pub fn progress_enabled(global: &GlobalArgs) -> bool {
    !(global.quiet || global.no_progress || global.json)
}

/// Reports a store failure that does not fail the build (see `store::nonfatal`): the first line
/// says what did not happen and why in a few words, the causes follow, then what it means.
pub fn report_store_trouble(
    severity: store::Severity,
    headline: &str,
    error: &anyhow::Error,
    consequence: &str,
) {
    let mut message = headline.to_string();
    for cause in error.chain() {
        message.push_str(&format!("\n  Caused by: {cause}"));
    }
    message.push('\n');
    message.push_str(consequence);
    match severity {
        store::Severity::Info => crate::output::info(&message),
        store::Severity::Warning => crate::output::warn(&message),
    }
}

/// Values that may come as several flags or as newline-separated lines in one (an action
/// input), trimmed, without empty lines.
pub fn split_lines(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split('\n'))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
