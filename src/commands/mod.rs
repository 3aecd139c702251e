//! One module per subcommand. Each reads like the flow in DESIGN.md: one call per stage.

pub mod heal;
pub mod inspect;
pub mod prune;
pub mod restore;
pub mod save;

use anyhow::{Context, Result};
use std::path::PathBuf;

use crate::cli::{GlobalArgs, PathArgs};
use crate::paths::{PathInputs, Roots};
use crate::store::{self, Store};

/// What every command needs: the parsed path inputs, where they resolve, and the store.
pub struct PathContext {
    pub inputs: PathInputs,
    pub roots: Roots,
}

/// Resolves the roots (current directory, workspace, home) and parses the path inputs.
pub fn path_context(args: &PathArgs) -> Result<PathContext> {
    let inputs = PathInputs::parse(&args.paths)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let roots = Roots::new(cwd, args.workspace.clone(), home_dir());
    Ok(PathContext { inputs, roots })
}

pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("USERPROFILE").map(PathBuf::from))
}

pub fn open_store(global: &GlobalArgs) -> Result<Box<dyn Store>> {
    store::open(global.store.as_deref())
}

/// Whether progress should be drawn for this invocation.
pub fn progress_enabled(global: &GlobalArgs) -> bool {
    !(global.quiet || global.no_progress || global.json)
}

/// Prints a result object on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
