//! One typed report per command, rendered once.
//!
//! A command plans, acts, and returns a [`Report`] (or an error); nothing else decides what
//! the user, a script or the runner sees at the end. This module turns the result into:
//!
//! - the closing human lines on stderr (and the data a command prints on stdout: a key, a
//!   table), unless `--json`;
//! - exactly one JSON object on stdout with `--json`, in every outcome: errors render as
//!   `{"status": "error", "error": {"kind", "message", "causes", "hint"}}`;
//! - for restore and key, the step outputs (`GITHUB_OUTPUT`), the state the save step reads,
//!   and the step summary, when the runner provides them;
//! - the exit code: 0 for success and misses, 1 for errors, 2 for usage errors, 130/143 for
//!   interrupts.
//!
//! Progress lines printed *while* a command works (`output::info`) are not reports: they say
//! what is happening, the report says what happened.

pub mod restore;
pub mod save;

use serde::Serialize;
use std::process::ExitCode;

use crate::error::Failure;
use crate::output;

pub use restore::RestoreReport;
pub use save::SaveReport;

/// What a command returns when it did not fail.
#[derive(Debug)]
pub enum Report {
    Restore(Box<RestoreReport>),
    Save(SaveReport),
    /// `inspect`: the entries of a store.
    Entries(EntriesReport),
    /// `inspect --path`, `prune`, `heal`, `key`: already-typed values with their human text.
    Data(DataReport),
}

/// A report whose human form is a few prepared lines: the value for `--json`, the lines for
/// stdout (data a script may read, like a key) and for stderr (a closing summary).
#[derive(Debug)]
pub struct DataReport {
    pub json: serde_json::Value,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// Step outputs (`GITHUB_OUTPUT`), written when the runner provides the file.
    pub outputs: Vec<(&'static str, String)>,
    /// Non-zero when the command completed but its result is a failure (heal with sources
    /// that failed).
    pub exit_code: u8,
    /// That failure, printed as the run's error (also under `--quiet`).
    pub failure: Option<Failure>,
}

impl DataReport {
    pub fn new(value: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Self {
            json: serde_json::to_value(value)?,
            stdout: Vec::new(),
            stderr: Vec::new(),
            outputs: Vec::new(),
            exit_code: 0,
            failure: None,
        })
    }
}

/// `inspect`: every entry of a store, newest first.
#[derive(Debug, Serialize)]
pub struct EntriesReport {
    /// Always `ok`: a store that cannot be listed is an error.
    pub status: &'static str,
    pub store: String,
    pub entries: Vec<crate::store::EntryInfo>,
}

/// How the report is shown: decided once from the global flags.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    pub json: bool,
}

/// Renders the outcome of a command and returns the process's exit code. `work` says what an
/// interrupt left unchanged.
pub fn render(
    command: &str,
    outcome: anyhow::Result<Report>,
    printer: Printer,
    work: crate::interrupt::Work<'_>,
) -> ExitCode {
    let result = match outcome {
        Ok(report) => render_report(command, &report, printer),
        Err(error) => Err(error),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let failure = match crate::interrupt::report(&error, work) {
                Some((message, exit_code)) => Failure::interrupted(message, exit_code),
                None => Failure::classify(&error),
            };
            render_failure(command, &failure, printer)
        }
    }
}

/// Renders a clap error (`--help` and `--version` included, which exit 0).
pub fn render_usage_error(error: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !json
    {
        let _ = error.print();
        return ExitCode::from(error.exit_code() as u8);
    }
    let rendered = error.render().to_string();
    let failure = Failure::usage(&rendered);
    render_failure("cache-heal", &failure, Printer { json })
}

fn render_report(command: &str, report: &Report, printer: Printer) -> anyhow::Result<u8> {
    match report {
        Report::Restore(report) => restore::render(report, printer),
        Report::Save(report) => save::render(report, printer),
        Report::Entries(report) => render_entries(command, report, printer),
        Report::Data(report) => render_data(command, report, printer),
    }
}

fn render_data(command: &str, report: &DataReport, printer: Printer) -> anyhow::Result<u8> {
    let outputs = crate::gha::Outputs::from_env();
    for (name, value) in &report.outputs {
        outputs.set(name, value)?;
    }
    if printer.json {
        print_json(&with_command(command, &report.json)?)?;
    } else {
        for line in &report.stdout {
            print_stdout(line)?;
        }
    }
    for line in &report.stderr {
        output::info(line);
    }
    if let Some(failure) = &report.failure {
        output::failure(failure);
    }
    Ok(report.exit_code)
}

fn render_entries(command: &str, report: &EntriesReport, printer: Printer) -> anyhow::Result<u8> {
    if printer.json {
        print_json(&with_command(command, report)?)?;
        return Ok(0);
    }
    if report.entries.is_empty() {
        output::info(&format!("No entries in {}", report.store));
        return Ok(0);
    }
    for line in crate::commands::inspect::entry_table(&report.entries) {
        print_stdout(&line)?;
    }
    Ok(0)
}

fn render_failure(command: &str, failure: &Failure, printer: Printer) -> ExitCode {
    if printer.json {
        let value = serde_json::json!({
            "command": command,
            "status": "error",
            "error": failure,
        });
        // Nothing more can be done if stdout is gone: the exit code still tells.
        let _ = print_json(&value);
    }
    output::failure(failure);
    ExitCode::from(failure.exit_code)
}

/// Prints one JSON object on stdout. A closed pipe (`… --json | head -c0`) is not an error:
/// whoever reads stdout has what it wanted.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    print_stdout(&serde_json::to_string(value)?)
}

fn print_stdout(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A report as JSON with the command's name beside its fields.
pub fn with_command(command: &str, report: &impl Serialize) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("command".into(), serde_json::json!(command));
    }
    Ok(value)
}

/// `a`, `b` → "`a`, `b`".
pub fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
