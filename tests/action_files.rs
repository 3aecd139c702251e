//! Static checks of `action.yml` and `save/action.yml`.
//!
//! - The cache service's credentials (`ACTIONS_RUNTIME_TOKEN`, `ACTIONS_RESULTS_URL`,
//!   `ACTIONS_CACHE_SERVICE_V2`, `ACTIONS_CACHE_MODE`) are read by one pinned
//!   `actions/github-script` step and reach the binary's step only, as step outputs; no other
//!   step mentions them, nothing writes `GITHUB_ENV`, no action output exposes them. The real
//!   runner gives these variables to JavaScript steps only (docs/gha-cache-protocol.md §1), and
//!   `act` gives them to every step, so an end-to-end run under `act` cannot catch a leak; this
//!   test does.
//! - Every input reaches the binary as a `CACHE_HEAL_*` variable that a flag of the subcommand
//!   really reads (checked against clap's own table), or reaches the script that uses it.
//! - Every `uses:` is pinned to a full commit SHA.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

const CREDENTIALS: [&str; 4] = [
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_SERVICE_V2",
    "ACTIONS_CACHE_MODE",
];

const ACTION_FILES: [&str; 2] = ["action.yml", "save/action.yml"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
        .remove(0)
}

/// One step of a composite action, flattened.
#[derive(Debug)]
struct Step {
    id: String,
    uses: Option<String>,
    run: String,
    env: Vec<(String, String)>,
    /// Every string in the step (run, env, with, if): what it could see or pass on.
    text: String,
}

fn strings(y: &Yaml, out: &mut String) {
    match y {
        Yaml::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Yaml::Boolean(b) => out.push_str(&format!("{b}\n")),
        Yaml::Integer(i) => out.push_str(&format!("{i}\n")),
        Yaml::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Yaml::Hash(map) => map.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}

fn steps(action: &Yaml, rel: &str) -> Vec<Step> {
    assert_eq!(
        action["runs"]["using"].as_str(),
        Some("composite"),
        "{rel} is not a composite action"
    );
    action["runs"]["steps"]
        .as_vec()
        .unwrap_or_else(|| panic!("{rel} has no steps"))
        .iter()
        .map(|s| {
            let mut text = String::new();
            strings(s, &mut text);
            let env = s["env"]
                .as_hash()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| {
                            let mut value = String::new();
                            strings(v, &mut value);
                            (k.as_str().unwrap().to_string(), value.trim().to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            Step {
                id: s["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a step of {rel} has no id"))
                    .to_string(),
                uses: s["uses"].as_str().map(str::to_string),
                run: s["run"].as_str().unwrap_or("").to_string(),
                env,
                text,
            }
        })
        .collect()
}

/// `"$CACHE_HEAL_BIN" restore` → `restore`.
fn binary_subcommand(step: &Step) -> Option<String> {
    let rest = step.run.trim().strip_prefix("\"$CACHE_HEAL_BIN\"")?;
    Some(rest.split_whitespace().next()?.to_string())
}

/// The environment variables the flags of `sub` (and the global flags) read.
fn clap_envs(sub: &str) -> BTreeSet<String> {
    let mut cli = cache_heal::cli::Cli::command();
    cli.build();
    let sub = cli
        .find_subcommand(sub)
        .unwrap_or_else(|| panic!("no subcommand `{sub}`"));
    sub.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

fn is_sha_pinned(uses: &str) -> bool {
    uses.starts_with("./")
        || uses.split_once('@').is_some_and(|(_, r)| {
            r.len() == 40
                && r.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
        })
}

/// Credentials are read by one pinned github-script step and reach only the binary's step.
#[test]
fn runtime_credentials_reach_only_the_binary_step() {
    for rel in ACTION_FILES {
        let action = load(rel);
        let steps = steps(&action, rel);
        let scripts: Vec<&Step> = steps
            .iter()
            .filter(|s| {
                s.uses
                    .as_deref()
                    .is_some_and(|u| u.starts_with("actions/github-script@"))
            })
            .collect();
        assert_eq!(scripts.len(), 1, "{rel}: expected one github-script step");
        let runtime = scripts[0];
        assert!(
            is_sha_pinned(runtime.uses.as_deref().unwrap()),
            "{rel}: github-script is not pinned by commit SHA"
        );
        for name in CREDENTIALS {
            assert!(
                runtime.text.contains(name),
                "{rel}: the script does not read {name}"
            );
        }
        assert!(runtime.text.contains("core.setOutput("), "{rel}");
        assert!(
            runtime.text.contains("core.setSecret("),
            "{rel}: the script does not mask"
        );
        for forbidden in ["exportVariable", "GITHUB_ENV", "console.log", "core.info"] {
            assert!(
                !runtime.text.contains(forbidden),
                "{rel}: the script uses `{forbidden}`"
            );
        }

        let reference = format!("steps.{}.outputs", runtime.id);
        let binary_steps: Vec<&Step> = steps
            .iter()
            .filter(|s| s.text.contains(&reference))
            .collect();
        assert_eq!(
            binary_steps.len(),
            1,
            "{rel}: the credentials reach {:?}",
            binary_steps.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        let binary = binary_steps[0];
        let sub = binary_subcommand(binary)
            .unwrap_or_else(|| panic!("{rel}: `{}` does not run the binary", binary.id));
        assert!(sub == "restore" || sub == "save", "{rel}: {sub}");
        for name in CREDENTIALS {
            let value = binary
                .env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str());
            assert_eq!(
                value,
                Some(format!("${{{{ {reference}.{name} }}}}").as_str()),
                "{rel}: {name} is not handed to `{}`",
                binary.id
            );
            assert!(
                !binary.run.contains(name),
                "{rel}: the binary step's command mentions {name}"
            );
        }
        for step in &steps {
            if step.id == runtime.id || step.id == binary.id {
                continue;
            }
            for name in CREDENTIALS {
                assert!(
                    !step.text.contains(name),
                    "{rel}: step `{}` mentions {name}",
                    step.id
                );
            }
        }
        for step in &steps {
            assert!(
                !step.text.contains("GITHUB_ENV"),
                "{rel}: step `{}` writes the job environment",
                step.id
            );
        }
        let mut outputs = String::new();
        strings(&action["outputs"], &mut outputs);
        assert!(
            !outputs.contains(&reference),
            "{rel}: an action output exposes the credentials"
        );
        for name in CREDENTIALS {
            assert!(!outputs.contains(name), "{rel}: an output names {name}");
        }
    }
    for script in ["dist/install.sh", "dist/cache-path.sh"] {
        let text = std::fs::read_to_string(repo().join(script)).unwrap();
        assert!(!text.contains("GITHUB_ENV"), "{script} writes GITHUB_ENV");
        for name in CREDENTIALS {
            assert!(!text.contains(name), "{script} mentions {name}");
        }
    }
}

/// Each input reaches a `CACHE_HEAL_*` variable that a flag of the binary's subcommand reads,
/// or a variable that the script its step runs reads.
#[test]
fn every_input_reaches_a_flag_or_the_script_that_uses_it() {
    for rel in ACTION_FILES {
        let action = load(rel);
        let steps = steps(&action, rel);
        let inputs: Vec<String> = action["inputs"]
            .as_hash()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert!(!inputs.is_empty());
        for input in &inputs {
            let needle = format!("inputs.{input}");
            let mut reached = Vec::new();
            for step in &steps {
                for (var, value) in &step.env {
                    let mentions = value.match_indices(&needle).any(|(at, _)| {
                        let next = value[at + needle.len()..].chars().next();
                        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    });
                    if mentions {
                        reached.push((step, var.clone()));
                    }
                }
            }
            assert!(
                !reached.is_empty(),
                "{rel}: input `{input}` reaches no step"
            );
            for (step, var) in reached {
                if let Some(sub) = binary_subcommand(step) {
                    assert!(
                        clap_envs(&sub).contains(&var),
                        "{rel}: input `{input}` is passed as {var}, which no flag of `cache-heal {sub}` reads"
                    );
                } else if let Some(script) = step.run.split(['"', ' ']).find(|w| w.ends_with(".sh"))
                {
                    let file = script
                        .trim_start_matches("$GITHUB_ACTION_PATH/")
                        .trim_start_matches("../");
                    let text = std::fs::read_to_string(repo().join(file))
                        .unwrap_or_else(|e| panic!("{rel}: `{}` runs {file}: {e}", step.id));
                    assert!(
                        text.contains(&var),
                        "{rel}: input `{input}` is passed as {var}, which {file} never reads"
                    );
                } else {
                    panic!(
                        "{rel}: step `{}` gets input `{input}` but runs neither the binary nor a script",
                        step.id
                    );
                }
            }
        }
        // Every CACHE_HEAL_* variable the binary steps get is a real flag.
        for step in &steps {
            let Some(sub) = binary_subcommand(step) else {
                continue;
            };
            for (var, _) in &step.env {
                if !var.starts_with("CACHE_HEAL_") || var == "CACHE_HEAL_BIN" {
                    continue;
                }
                assert!(
                    clap_envs(&sub).contains(var),
                    "{rel}: step `{}` sets {var}, which no flag of `cache-heal {sub}` reads",
                    step.id
                );
            }
        }
    }
}

/// Every action a composite uses is pinned to a full commit SHA.
#[test]
fn every_uses_is_pinned_by_commit_sha() {
    for rel in ACTION_FILES {
        for step in steps(&load(rel), rel) {
            if let Some(uses) = &step.uses {
                assert!(is_sha_pinned(uses), "{rel}: `{uses}` is not pinned by SHA");
            }
        }
    }
}

/// The restore and save actions install the binary and pick the path the same way, so the
/// save step finds the restore step's state.
#[test]
fn restore_and_save_install_and_pick_paths_alike() {
    let restore = steps(&load("action.yml"), "action.yml");
    let save = steps(&load("save/action.yml"), "save/action.yml");
    for id in ["install", "path"] {
        let r = restore.iter().find(|s| s.id == id).unwrap();
        let s = save.iter().find(|s| s.id == id).unwrap();
        assert_eq!(r.env, s.env, "step `{id}` differs");
        assert_eq!(
            r.run.replace("$GITHUB_ACTION_PATH/", ""),
            s.run
                .replace("$GITHUB_ACTION_PATH/../", "")
                .replace(" save", " restore"),
            "step `{id}` differs"
        );
    }
    assert!(Path::new(&repo().join("dist/install.sh")).exists());
}
