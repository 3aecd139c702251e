//! cache-heal: restore, heal, prune and save Python dependency caches in CI.
//!
//! The library holds everything; `main.rs` only calls [`run`] so that tests can drive the same
//! code. The modules, in the order a restore uses them:
//!
//! - [`cli`]: flags and subcommands, parsed and checked, nothing else;
//! - [`paths`]: path inputs → archive member names and allowed destinations;
//! - [`key`]: key rules, the actions/cache entry version, restore-key matching;
//! - [`store`]: where entries live (a local directory);
//! - [`archive`]: pack and unpack actions/cache-compatible archives, safely;
//! - [`uv`]: uv's cache layout, prune to wheels-only, heal missing sources;
//! - [`python`]: interpreters, wheel tags, lock files, the simple index API;
//! - [`commands`]: one module per subcommand, each a straight line of the stages above;
//! - [`output`], [`progress`]: messages, warnings and progress, terminal or Actions log;
//! - [`autokey`]: the automatic key (`cache-heal key`) and what goes into it;
//! - [`gha`]: step outputs, the restore → save state, the step summary, log groups;
//! - [`fingerprint`]: tells the save step whether restored paths changed;
//! - [`trust`]: events that do not restore by default, credential files never saved.

pub mod archive;
pub mod autokey;
pub mod cli;
pub mod commands;
pub mod env_vars;
pub mod fingerprint;
pub mod gha;
pub mod key;
pub mod output;
pub mod pace;
pub mod paths;
pub mod progress;
pub mod python;
pub mod store;
pub mod trust;
pub mod uv;

use clap::Parser;
use std::process::ExitCode;

/// An error in what the user typed: exit code 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Key(#[from] key::KeyError),
    /// A value that is required here was neither given nor found where it may come from.
    #[error("{0}")]
    Missing(String),
    /// A value outside what its setting accepts.
    #[error("{0}")]
    Invalid(String),
}

/// Parses the command line, runs the command, and turns the outcome into an exit code.
pub fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    output::set_quiet(cli.global.quiet);
    let result = match &cli.command {
        cli::Command::Save(args) => commands::save::run(args, &cli.global),
        cli::Command::Restore(args) => commands::restore::run(args, &cli.global),
        cli::Command::Inspect(args) => commands::inspect::run(args, &cli.global),
        cli::Command::Key(args) => commands::key::run(args, &cli.global),
        cli::Command::Prune(args) => commands::prune::run(args, &cli.global),
        cli::Command::Heal(args) => commands::heal::run(args, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::error(&error);
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
