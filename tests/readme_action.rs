//! The README's Quick start: its workflow snippets parse, use only inputs the actions have,
//! put the save step last with the documented conditions, and its tables list exactly the
//! inputs and outputs of `action.yml` and `save/action.yml`. The section for setup-uv and
//! actions/cache users: its snippet turns setup-uv's cache off, and its table maps only to
//! inputs and outputs that exist.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

use std::collections::BTreeSet;
use std::path::PathBuf;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn quick_start() -> String {
    readme_section("## Quick start (GitHub Actions)")
}

/// The README from `heading` up to the next `## ` heading.
fn readme_section(heading: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}` section"));
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

fn yaml_blocks(text: &str) -> Vec<Yaml> {
    text.split("```yaml\n")
        .skip(1)
        .map(|b| {
            let block = &b[..b.find("```").expect("closed fence")];
            YamlLoader::load_from_str(block)
                .unwrap_or_else(|e| panic!("README snippet is not YAML: {e}\n{block}"))
                .remove(0)
        })
        .collect()
}

fn keys(y: &Yaml) -> BTreeSet<String> {
    y.as_hash()
        .map(|h| h.keys().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn action(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Steps of a snippet: a whole workflow or a bare list of steps.
fn snippet_steps(y: &Yaml) -> Vec<Yaml> {
    if let Some(steps) = y.as_vec() {
        return steps.clone();
    }
    y["jobs"]
        .as_hash()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_vec().unwrap().clone())
        .collect()
}

/// Which action file a `uses:` of the README names.
fn action_file(uses: &str) -> Option<&'static str> {
    match uses {
        "<org>/cache-heal@v1" => Some("action.yml"),
        "<org>/cache-heal/save@v1" => Some("save/action.yml"),
        _ => None,
    }
}

#[test]
fn quick_start_snippets_use_real_inputs_and_save_last() {
    let blocks = yaml_blocks(&quick_start());
    assert_eq!(
        blocks.len(),
        2,
        "expected the workflow and the trusted-save variant"
    );
    let mut conditions = Vec::new();
    for block in &blocks {
        let steps = snippet_steps(block);
        for step in &steps {
            let Some(file) = step["uses"].as_str().and_then(action_file) else {
                continue;
            };
            let inputs = keys(&action(file)["inputs"]);
            for used in keys(&step["with"]) {
                assert!(
                    inputs.contains(&used),
                    "README uses `{used}`, which {file} lacks"
                );
            }
        }
        let last = steps.last().unwrap();
        assert_eq!(last["uses"].as_str(), Some("<org>/cache-heal/save@v1"));
        conditions.push(last["if"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(
        conditions,
        vec!["always()", "github.ref == 'refs/heads/main'"]
    );
    let workflow = snippet_steps(&blocks[0]);
    let uses: Vec<&str> = workflow.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.iter().any(|u| u.starts_with("actions/setup-python@")));
    let restore = uses
        .iter()
        .position(|u| *u == "<org>/cache-heal@v1")
        .unwrap();
    let sync = workflow
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains("uv sync")))
        .expect("the workflow runs uv sync");
    assert!(restore < sync, "restore must come before uv sync");
}

/// Rows of the table whose header starts with `first`: the backticked names of column one.
fn table_names(text: &str, first: &str) -> BTreeSet<String> {
    let start = text
        .find(&format!("| {first}"))
        .unwrap_or_else(|| panic!("no table `{first}`"));
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap().to_string();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn quick_start_tables_list_every_input_and_output() {
    let text = quick_start();
    assert_eq!(
        table_names(&text, "input (`cache-heal@v1`)"),
        keys(&action("action.yml")["inputs"])
    );
    assert_eq!(
        table_names(&text, "input (`cache-heal/save@v1`)"),
        keys(&action("save/action.yml")["inputs"])
    );
    assert_eq!(
        table_names(&text, "output"),
        keys(&action("action.yml")["outputs"])
    );
}

/// The snippet for setup-uv users turns setup-uv's cache off, runs cache-heal after setup-uv
/// with real inputs only, and saves last with `if: always()`; the mapping table's right-hand
/// column names only inputs and outputs the two actions have.
#[test]
fn coming_from_setup_uv_turns_its_cache_off_and_maps_to_real_inputs() {
    let text = readme_section("## Coming from setup-uv or actions/cache");
    let blocks = yaml_blocks(&text);
    assert_eq!(blocks.len(), 1, "expected one snippet");
    let steps = snippet_steps(&blocks[0]);
    let uses = |s: &Yaml| s["uses"].as_str().unwrap_or("").to_string();
    let setup_uv = steps
        .iter()
        .position(|s| uses(s).starts_with("astral-sh/setup-uv@"))
        .expect("the snippet keeps setup-uv");
    assert_eq!(
        steps[setup_uv]["with"]["enable-cache"].as_bool(),
        Some(false),
        "the snippet must turn setup-uv's cache off"
    );
    let restore = steps
        .iter()
        .position(|s| uses(s) == "<org>/cache-heal@v1")
        .expect("the snippet restores with cache-heal");
    assert!(setup_uv < restore, "cache-heal must come after setup-uv");
    for step in &steps {
        if let Some(file) = action_file(&uses(step)) {
            let inputs = keys(&action(file)["inputs"]);
            for used in keys(&step["with"]) {
                assert!(
                    inputs.contains(&used),
                    "README uses `{used}`, which {file} lacks"
                );
            }
        }
    }
    let last = steps.last().unwrap();
    assert_eq!(uses(last), "<org>/cache-heal/save@v1");
    assert_eq!(last["if"].as_str(), Some("always()"));

    let mut names = keys(&action("action.yml")["inputs"]);
    names.extend(keys(&action("action.yml")["outputs"]));
    names.extend(keys(&action("save/action.yml")["inputs"]));
    let start = text
        .find("| setup-uv or actions/cache |")
        .expect("a mapping table");
    for row in text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
    {
        let ours = row.split('|').nth(2).unwrap();
        for name in ours.split('`').skip(1).step_by(2) {
            let looks_like_input = name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            if looks_like_input && name != "true" && name != "false" {
                assert!(
                    names.contains(name),
                    "the mapping table names `{name}`, which neither action has: {row}"
                );
            }
        }
    }
}
