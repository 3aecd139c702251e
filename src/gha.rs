//! The GitHub Actions runner's file and log interfaces: step outputs (`GITHUB_OUTPUT`), the
//! state the restore step leaves for the save step (a file under `RUNNER_TEMP`), the step
//! summary (`GITHUB_STEP_SUMMARY`), log groups and masks.
//!
//! This module knows the runner's formats and nothing about paths, stores or archives.
//!
//! Why a state *file*: composite actions have no `post:` step and no `GITHUB_STATE` of their own
//! that a later, separate action could read (docs/gha-cache-protocol.md §1), so the restore step
//! writes what the save step needs (primary key, matched key, exact-hit flag, a fingerprint of
//! what was restored) to `$RUNNER_TEMP/cache-heal/`, which lives as long as the job.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::env_vars;

fn var_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Step outputs, written to the file `GITHUB_OUTPUT` names.
#[derive(Clone, Debug)]
pub struct Outputs {
    file: Option<PathBuf>,
}

impl Outputs {
    /// Outputs written to `file`; `None` drops them (outside Actions).
    pub fn new(file: Option<PathBuf>) -> Self {
        Self { file }
    }

    /// The runner's `GITHUB_OUTPUT`, if set.
    pub fn from_env() -> Self {
        Self::new(var_path(env_vars::GITHUB_OUTPUT))
    }

    /// Sets one output. Uses the `name<<DELIMITER` form for every value, as the toolkit's
    /// `core.setOutput` does, so a newline in a value can never start a forged output.
    pub fn set(&self, name: &str, value: &str) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let text = format_output(name, value, &delimiter())?;
        append(file, &text).with_context(|| format!("writing step output `{name}`"))
    }
}

/// `ghadelimiter_<random>`, the toolkit's form (`file-command.ts::prepareKeyValueMessage`).
fn delimiter() -> String {
    format!(
        "ghadelimiter_{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// `name<<D\nvalue\nD\n`, refusing a name or value that contains the delimiter.
pub fn format_output(name: &str, value: &str, delimiter: &str) -> Result<String> {
    if name.contains(delimiter) || value.contains(delimiter) {
        bail!("step output `{name}` contains its own delimiter; refusing to write it");
    }
    if name.contains('\n') || name.contains('\r') {
        bail!("step output name `{name}` contains a line break");
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

fn append(file: &Path, text: &str) -> Result<()> {
    let mut f = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// What the restore step tells the save step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The key the restore looked for, which the save step saves under by default.
    pub primary_key: String,
    /// The key of the entry restored, if any.
    pub matched_key: Option<String>,
    /// Whether the matched key is the primary key (ignoring case).
    pub exact: bool,
    /// A fingerprint of the restored paths right after the restore, when something was
    /// restored; the save step compares it to tell "unchanged".
    pub fingerprint: Option<String>,
}

/// Where states live: `$RUNNER_TEMP/cache-heal`, one file per entry version (so two uses of the
/// action with different paths in one job keep separate states).
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: Option<PathBuf>,
}

impl StateDir {
    pub fn new(runner_temp: Option<PathBuf>) -> Self {
        Self {
            dir: runner_temp.map(|t| t.join("cache-heal")),
        }
    }

    /// `$RUNNER_TEMP/cache-heal`, if `RUNNER_TEMP` is set.
    pub fn from_env() -> Self {
        Self::new(var_path(env_vars::RUNNER_TEMP))
    }

    /// Whether state is kept at all (only inside a job, where a save step can read it).
    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn file(&self, version: &str) -> Option<PathBuf> {
        let short = &version[..version.len().min(16)];
        self.dir
            .as_ref()
            .map(|d| d.join(format!("state-{short}.json")))
    }

    /// Records `state` for the entry version; a no-op outside Actions.
    pub fn write(&self, version: &str, state: &State) -> Result<()> {
        let Some(file) = self.file(version) else {
            return Ok(());
        };
        if let Some(dir) = file.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fs_err::write(&file, serde_json::to_vec_pretty(state)?)?;
        Ok(())
    }

    /// The state a restore step of this job left for the entry version, if any.
    pub fn read(&self, version: &str) -> Result<Option<State>> {
        let Some(file) = self.file(version) else {
            return Ok(None);
        };
        match fs_err::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the restore state `{}`", file.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A Markdown table appended to the job's step summary.
#[derive(Clone, Debug)]
pub struct Summary {
    file: Option<PathBuf>,
}

impl Summary {
    pub fn new(file: Option<PathBuf>) -> Self {
        Self { file }
    }

    /// The runner's `GITHUB_STEP_SUMMARY`, if set.
    pub fn from_env() -> Self {
        Self::new(var_path(env_vars::GITHUB_STEP_SUMMARY))
    }

    /// Appends a heading and a two-column table of `rows`.
    pub fn table(&self, heading: &str, rows: &[(&str, String)]) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        append(file, &render_table(heading, rows)).context("writing the step summary")
    }
}

/// `### heading` and a `| | |` table; `|` and line breaks in values are escaped.
pub fn render_table(heading: &str, rows: &[(&str, String)]) -> String {
    let cell = |v: &str| v.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = format!("### {heading}\n\n| | |\n| --- | --- |\n");
    for (name, value) in rows {
        out.push_str(&format!("| {} | {} |\n", cell(name), cell(value)));
    }
    out.push('\n');
    out
}

/// A collapsed log group in Actions (`::group::`), a plain heading line elsewhere. The group
/// closes when the value is dropped.
pub struct Group {
    in_actions: bool,
}

pub fn group(title: &str) -> Group {
    let in_actions = crate::output::in_github_actions();
    if in_actions {
        eprintln!("::group::{}", title.replace(['\r', '\n'], " "));
    } else if !crate::output::is_quiet() {
        eprintln!("{title}");
    }
    Group { in_actions }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.in_actions {
            eprintln!("::endgroup::");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_use_the_heredoc_form() {
        assert_eq!(
            format_output("cache-hit", "true", "D").unwrap(),
            "cache-hit<<D\ntrue\nD\n"
        );
        assert_eq!(
            format_output("restore-keys", "a-\nb-", "D").unwrap(),
            "restore-keys<<D\na-\nb-\nD\n"
        );
        assert!(format_output("x", "evil\nD\ny<<D", "D").is_err());
    }

    #[test]
    fn outputs_append_and_values_cannot_forge_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        let outputs = Outputs::new(Some(file.clone()));
        outputs.set("a", "1").unwrap();
        outputs.set("b", "two\nlines\nc=3").unwrap();
        let text = fs_err::read_to_string(&file).unwrap();
        let parsed = parse_outputs(&text);
        assert_eq!(
            parsed,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "two\nlines\nc=3".to_string())
            ]
        );
    }

    /// The runner's reading of an output file (`SetOutputFileCommand`), enough for tests.
    pub(crate) fn parse_outputs(text: &str) -> Vec<(String, String)> {
        let mut lines = text.lines();
        let mut out = Vec::new();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").expect("heredoc form");
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_string(), value.join("\n")));
        }
        out
    }

    #[test]
    fn state_round_trips_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::new(Some(dir.path().to_path_buf()));
        let state = State {
            primary_key: "k".into(),
            matched_key: Some("K".into()),
            exact: true,
            fingerprint: Some("f".into()),
        };
        states.write(&"a".repeat(64), &state).unwrap();
        assert_eq!(states.read(&"a".repeat(64)).unwrap(), Some(state));
        assert_eq!(states.read(&"b".repeat(64)).unwrap(), None);
        assert_eq!(StateDir::new(None).read("x").unwrap(), None);
    }

    #[test]
    fn summary_cells_are_escaped() {
        let t = render_table("cache-heal restore", &[("Key", "a|b\nc".into())]);
        assert!(t.contains("| Key | a\\|b c |"), "{t}");
    }
}
