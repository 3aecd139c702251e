//! cache-heal: restore, heal, prune and save Python dependency caches in CI.
//!
//! The library holds everything; `main.rs` only calls [`run`] so that tests can drive the same
//! code. Every command plans (checks all its inputs), acts, and returns one report that
//! `report` renders once. The modules, in the order a restore uses them:
//!
//! - [`cli`]: flags and subcommands, parsed and checked, nothing else;
//! - `error`: usage errors and how a failure is classified (exit code, JSON kind);
//! - `paths`: path inputs → archive member names and allowed destinations;
//! - [`key`]: key rules, the actions/cache entry version, restore-key matching;
//! - [`store`]: where entries live (the GitHub cache service, a local directory);
//! - `archive`: pack and unpack actions/cache-compatible archives, safely;
//! - `uv`: uv's cache layout, prune to wheels-only, heal missing sources;
//! - [`python`]: interpreters, wheel tags, lock files, the simple index API;
//! - `commands`: one module per subcommand, each a straight line of the stages above;
//! - `report`: the typed reports and their one renderer;
//! - `interrupt`, `leftovers`: signals stop the work and the guards clean up; what a
//!   killed run left is swept by the next one;
//! - `output`, `progress`: messages, warnings and progress, terminal or Actions log;
//! - `autokey`: the automatic key (`cache-heal key`) and what goes into it;
//! - `gha`: step outputs, the restore → save state, the step summary, log groups;
//! - `fingerprint`: tells the save step whether restored paths changed;
//! - `trust`: events that do not restore by default, credential files never saved.

mod archive;
mod autokey;
pub mod cli;
mod commands;
mod env_vars;
mod error;
mod fingerprint;
mod gha;
mod http;
mod interrupt;
pub mod key;
mod leftovers;
mod output;
mod pace;
mod paths;
mod progress;
pub mod python;
mod report;
pub mod store;
mod trust;
mod uv;

use clap::Parser;
use std::process::ExitCode;

pub(crate) use error::UsageError;

/// Parses the command line, runs the command, renders its report (or its error) once, and
/// returns the exit code.
pub fn run() -> ExitCode {
    interrupt::install();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return report::render_usage_error(&error, json_requested()),
    };
    output::set_quiet(cli.global.quiet);
    let printer = report::Printer {
        json: cli.global.json,
    };
    let (name, outcome) = match &cli.command {
        cli::Command::Save(args) => ("save", commands::save::run(args, &cli.global)),
        cli::Command::Restore(args) => ("restore", commands::restore::run(args, &cli.global)),
        cli::Command::Inspect(args) => ("inspect", commands::inspect::run(args, &cli.global)),
        cli::Command::Key(args) => ("key", commands::key::run(args, &cli.global)),
        cli::Command::Prune(args) => ("prune", commands::prune::run(args, &cli.global)),
        cli::Command::Heal(args) => ("heal", commands::heal::run(args, &cli.global)),
        cli::Command::Delete(args) => ("delete", commands::delete::run(args, &cli.global)),
        cli::Command::Gc(args) => ("gc", commands::gc::run(args, &cli.global)),
    };
    report::render(name, outcome, printer, interrupted_work(&cli.command))
}

/// What an interrupt of this command leaves unchanged, for its `Interrupted: …` line.
fn interrupted_work(command: &cli::Command) -> interrupt::Work<'_> {
    match command {
        cli::Command::Restore(args) => interrupt::Work::Restore(&args.paths.paths),
        cli::Command::Save(_) => interrupt::Work::Save,
        cli::Command::Prune(args) => interrupt::Work::Prune(&args.path),
        cli::Command::Heal(args) => interrupt::Work::Heal(&args.path),
        _ => interrupt::Work::Other,
    }
}

/// Whether `--json` was asked for, when the command line did not parse: a script that asked
/// for JSON gets its one object even for a usage error.
fn json_requested() -> bool {
    std::env::args_os().any(|a| a == "--json")
        || std::env::var(env_vars::CACHE_HEAL_JSON).is_ok_and(|v| v == "true" || v == "1")
}
