//! `cache-heal key`: gather the key inputs → explain them in a log group → print the key (and,
//! in Actions, set the `key`, `restore-keys` and `python-version` step outputs).

use anyhow::{Context, Result};

use crate::autokey::{KeyInputs, Options};
use crate::cli::{GlobalArgs, KeyArgs};
use crate::gha;
use crate::key;
use crate::output;
use crate::report::{DataReport, Report};

/// `cache-heal key --json`: the key, its restore keys, and everything that went into them.
#[derive(Debug, serde::Serialize)]
struct KeyReport {
    status: &'static str,
    key: String,
    restore_keys: Vec<String>,
    os: String,
    arch: String,
    tool: &'static str,
    python: PythonReport,
    files: Vec<FileReport>,
}

#[derive(Debug, serde::Serialize)]
struct PythonReport {
    /// `3.12`: what goes into the key.
    version: String,
    /// What it was read from.
    raw: String,
}

#[derive(Debug, serde::Serialize)]
struct FileReport {
    path: String,
    sha256: String,
}

pub fn run(args: &KeyArgs, _global: &GlobalArgs) -> Result<Report> {
    let project_dir = match &args.project_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let options = Options::from_env(project_dir, args.tool, args.python_version.clone());
    let inputs = KeyInputs::gather(&options)?;
    let key = inputs.key();
    let restore_keys = inputs.restore_keys();
    key::validate_keys(&key, &restore_keys).map_err(crate::UsageError::from)?;

    if inputs.files.is_empty() {
        output::warn(&format!(
            "No `uv.lock`, `pylock.toml`, `requirements*.txt` or `pyproject.toml` below `{}`; \
             the key will not change when your dependencies do",
            options.project_dir.display()
        ));
    }
    {
        let _group = gha::group("cache-heal: key");
        for (name, value) in inputs.explain() {
            output::info(&format!("{name:<13} {value}"));
        }
    }

    let mut report = DataReport::new(&KeyReport {
        status: "ok",
        key: key.clone(),
        restore_keys: restore_keys.clone(),
        os: inputs.os.clone(),
        arch: inputs.arch.clone(),
        tool: inputs.tool.as_str(),
        python: PythonReport {
            version: inputs.python.minor.clone(),
            raw: inputs.python.raw.clone(),
        },
        files: inputs
            .files
            .iter()
            .map(|f| FileReport {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            })
            .collect(),
    })?;
    report.outputs = vec![
        ("key", key.clone()),
        ("restore-keys", restore_keys.join("\n")),
        ("python-version", inputs.python.minor.clone()),
    ];
    report.stdout.push(key);
    Ok(Report::Data(report))
}
