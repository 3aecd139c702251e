//! `cache-heal key`: gather the key inputs → explain them in a log group → print the key (and,
//! in Actions, set the `key`, `restore-keys` and `python-version` step outputs).

use anyhow::{Context, Result};

use crate::autokey::{KeyInputs, Options};
use crate::cli::{GlobalArgs, KeyArgs};
use crate::gha;
use crate::key;
use crate::output;
use crate::report::{DataReport, Report};

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

    let mut report = DataReport::new(&serde_json::json!({
        "status": "ok",
        "key": key,
        "restore_keys": restore_keys,
        "os": inputs.os,
        "arch": inputs.arch,
        "tool": inputs.tool.as_str(),
        "python": {
            "version": inputs.python.minor,
            "raw": inputs.python.raw,
        },
        "files": inputs.files.iter().map(|f| serde_json::json!({
            "path": f.path,
            "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    }))?;
    report.outputs = vec![
        ("key", key.clone()),
        ("restore-keys", restore_keys.join("\n")),
        ("python-version", inputs.python.minor.clone()),
    ];
    report.stdout.push(key);
    Ok(Report::Data(report))
}
