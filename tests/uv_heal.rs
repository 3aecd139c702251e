//! Heal, proven with real uv: a cache filled by Python 3.11, pruned and saved, restored and
//! healed for Python 3.12, must let `uv pip sync --offline` build for 3.12 with the index
//! stopped, and fail without heal. Plus the ways heal must refuse or fail: a tampered sdist,
//! an index that is down, a bucket version it does not know. And its advice (issue 9, row 10):
//! one warning for the missing build backends whose command runs as printed, sources whose
//! `Requires-Python` excludes a target skipped with a note, one error for a dead index, and
//! an `--index-url` that is no URL refused before anything happens.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::uv::{self, Index};
use support::{Sandbox, snapshot, stderr, stdout_json};

const UV: &str = "0.13.9";

/// One sandbox with fixtures, a running index and a uv cache at `~/.cache/uv`.
struct Scenario {
    sandbox: Sandbox,
    index: Index,
    uv_bin: PathBuf,
}

impl Scenario {
    fn new() -> Self {
        Self::with_index(false)
    }

    fn with_index(html_only: bool) -> Self {
        let sandbox = Sandbox::new();
        let files = uv::fixtures(&sandbox.root().join("files"), 0);
        let index = Index::start_with(&files, 0, html_only);
        Self {
            sandbox,
            index,
            uv_bin: uv::uv_bin(UV),
        }
    }

    fn cache(&self) -> PathBuf {
        self.sandbox.home().join(".cache/uv")
    }

    fn uv(&self) -> std::process::Command {
        let mut cmd = uv::uv(&self.uv_bin, &self.cache(), &self.index.simple());
        cmd.current_dir(self.sandbox.ws());
        cmd
    }

    fn venv(&self, py: &str) -> PathBuf {
        let venv = self.sandbox.root().join(format!("venv-{py}"));
        if !venv.exists() {
            uv::check(
                self.uv()
                    .args(["venv", "-q", "-p"])
                    .arg(uv::python(py))
                    .arg(&venv),
            );
        }
        venv.join("bin/python")
    }

    /// Python 3.11 installs the pure wheel, the sdist-only package and the C extension.
    fn populate(&self) {
        let python = self.venv("3.11");
        uv::check(self.uv().args(["pip", "install", "-p"]).arg(python).args([
            "purewheel==1.0",
            "sdistonly==1.0",
            "cext==1.0",
        ]));
    }

    fn cache_heal(&self, args: &[&str]) -> Output {
        let index = self.index.simple();
        let mut all: Vec<&str> = args.to_vec();
        if args[0] == "restore" || args[0] == "heal" {
            all.extend(["--index-url", &index]);
        }
        let out = self.sandbox.run(&all);
        eprintln!("cache-heal {all:?}:\n{}", stderr(&out));
        out
    }

    /// Has uv cache the build backend and the pure wheel for 3.12, as a job's online step
    /// would: heal reports, and does not fetch, what only uv can write into its wheel bucket.
    fn warm_prebuilt_wheels(&self) {
        let target = self.sandbox.root().join("warm");
        uv::check(
            self.uv()
                .args(["pip", "install", "-q", "--target"])
                .arg(&target)
                .arg("-p")
                .arg(uv::python("3.12"))
                .args(["setuptools", "purewheel==1.0"]),
        );
    }

    fn offline_sync_312(&self) -> Output {
        let reqs = self.sandbox.root().join("requirements.txt");
        std::fs::write(&reqs, "purewheel==1.0\nsdistonly==1.0\ncext==1.0\n").unwrap();
        let python = self.venv("3.12");
        self.uv()
            .args(["pip", "sync", "--offline", "-p"])
            .arg(python)
            .arg(&reqs)
            .output()
            .unwrap()
    }

    /// The built wheels in cext's revision.
    fn cext_wheels(&self) -> Vec<String> {
        walkdir::WalkDir::new(self.cache().join("sdists-v11"))
            .into_iter()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy();
                name.starts_with("cext-1.0-") && name.ends_with(".whl")
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// With the index stopped, `uv pip sync --offline` on 3.12 succeeds and builds cext's
    /// cp312 wheel into the same revision as the cp311 one.
    fn assert_offline_312_sync_builds_cext(&self) {
        let synced = self.offline_sync_312();
        assert!(
            synced.status.success(),
            "offline sync on 3.12 failed after heal:\n{}",
            String::from_utf8_lossy(&synced.stderr)
        );
        let mut wheels = self.cext_wheels();
        wheels.sort();
        assert_eq!(
            wheels,
            [
                "cext-1.0-cp311-cp311-linux_x86_64.whl",
                "cext-1.0-cp312-cp312-linux_x86_64.whl"
            ],
            "the cp312 wheel must be built into the same revision"
        );
    }

    /// Saves with `--prune <prune>`, wipes the cache, restores it for 3.12.
    fn save_prune_wipe_restore(&self, prune: &str, restore_flags: &[&str]) -> Output {
        let saved = self.cache_heal(&[
            "save",
            "--path",
            "~/.cache/uv",
            "--key",
            "uv-k",
            "--prune",
            prune,
            "--json",
        ]);
        assert!(saved.status.success());
        let saved = stdout_json(&saved);
        assert!(
            saved["pruned_files"].as_u64().unwrap() > 40,
            "save did not prune: {saved}"
        );
        std::fs::remove_dir_all(self.cache()).unwrap();
        let py312 = uv::python("3.12");
        let mut args = vec![
            "restore",
            "--path",
            "~/.cache/uv",
            "--key",
            "uv-k",
            "--json",
            "--python",
        ];
        args.push(py312.to_str().unwrap());
        args.extend(restore_flags);
        let out = self.cache_heal(&args);
        assert!(out.status.success(), "restore failed");
        out
    }
}

/// The scenario of issue 4: 3.11 fills, prune + save, wipe, restore + heal for 3.12, index
/// stopped, `uv pip sync --offline` on 3.12 builds cext from the healed source.
#[test]
fn heal_lets_an_offline_312_sync_build_from_a_311_cache() {
    let mut s = Scenario::new();
    s.populate();
    let restored = s.save_prune_wipe_restore("ci", &[]);
    let report = stdout_json(&restored);
    let heal = &report["heal"][0];
    let healed = healed_packages(heal);
    assert_eq!(
        healed,
        ["cext"],
        "only the C extension lacks a wheel for 3.12: {heal}"
    );
    assert_eq!(
        heal["missing_build_requires"][0]["requires"][0], "setuptools>=40.8.0",
        "{heal}"
    );
    assert!(
        stderr(&restored).contains("  `setuptools>=40.8.0` for `cext 1.0`"),
        "{}",
        stderr(&restored)
    );
    assert_eq!(s.cext_wheels(), ["cext-1.0-cp311-cp311-linux_x86_64.whl"]);

    s.warm_prebuilt_wheels();
    s.index.stop();
    s.assert_offline_312_sync_builds_cext();
}

/// The same with `save --prune wheels`, which keeps every wheel: heal fetches only cext's
/// source, nothing is missing for its build (setuptools' wheel was saved), and the offline
/// 3.12 sync builds without warming anything first.
#[test]
fn with_prune_wheels_an_offline_312_sync_needs_only_the_healed_source() {
    let mut s = Scenario::new();
    s.populate();
    let restored = s.save_prune_wipe_restore("wheels", &[]);
    let report = stdout_json(&restored);
    let heal = &report["heal"][0];
    let healed = healed_packages(heal);
    assert_eq!(healed, ["cext"], "{heal}");
    assert_eq!(
        heal["missing_build_requires"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{heal}"
    );
    assert!(
        !stderr(&restored).contains("warning:"),
        "{}",
        stderr(&restored)
    );
    s.index.stop();
    s.assert_offline_312_sync_builds_cext();
}

/// The packages a heal report says it healed.
fn healed_packages(heal: &serde_json::Value) -> Vec<&str> {
    heal["healed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["package"].as_str().unwrap())
        .collect()
}

/// The control: the same without heal fails with uv's offline error.
#[test]
fn without_heal_an_offline_312_sync_fails() {
    let mut s = Scenario::new();
    s.populate();
    let restored = s.save_prune_wipe_restore("ci", &["--no-heal"]);
    assert_eq!(stdout_json(&restored)["heal"], serde_json::Value::Null);
    s.warm_prebuilt_wheels();
    s.index.stop();
    let synced = s.offline_sync_312();
    let err = String::from_utf8_lossy(&synced.stderr);
    assert!(
        !synced.status.success(),
        "offline sync succeeded without heal"
    );
    assert!(err.contains("Network connectivity is disabled"), "{err}");
    assert!(err.contains("cext"), "{err}");
}

/// A tampered sdist (same name, other bytes, same listed hash) is refused by its sha256;
/// nothing in the cache changes and heal exits 1 naming package, expected and actual hash.
#[test]
fn heal_refuses_a_tampered_sdist_and_leaves_the_cache_unchanged() {
    let s = Scenario::new();
    s.populate();
    let cache = s.cache();
    assert!(
        s.cache_heal(&["prune", "--path", cache.to_str().unwrap()])
            .status
            .success()
    );
    let before = snapshot(&cache);
    s.index.set_tamper(true);
    let py312 = uv::python("3.12");
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py312.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "Skipped healing `cext 1.0`: the downloaded sdist does not match the sha256 uv recorded"
        ),
        "{err}"
    );
    assert!(
        err.contains("expected: ") && err.contains("computed: "),
        "{err}"
    );
    assert_eq!(snapshot(&cache), before, "a refused heal changed the cache");
}

/// With the index down, heal fails with a message naming it; restore still succeeds.
#[test]
fn index_down_fails_heal_clearly_but_the_restore_counts() {
    let mut s = Scenario::new();
    s.populate();
    let saved = s.cache_heal(&["save", "--path", "~/.cache/uv", "--key", "uv-k"]);
    assert!(saved.status.success());
    std::fs::remove_dir_all(s.cache()).unwrap();
    s.index.stop();
    let py312 = uv::python("3.12");
    let out = s.cache_heal(&[
        "restore",
        "--path",
        "~/.cache/uv",
        "--key",
        "uv-k",
        "--python",
        py312.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "the restore must count even when heal fails: {err}"
    );
    assert!(
        err.contains(&format!(
            "Could not reach the index `{}` after 3 attempts, so 1 source was not healed: `cext 1.0`",
            s.index.simple()
        )),
        "{err}"
    );
    assert!(
        !err.contains("Could not heal"),
        "one finding, not one per package: {err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("The restore itself succeeded"), "{err}");
    let cache = s.cache();
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py312.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error: Could not reach the index"),
        "{}",
        stderr(&out)
    );
}

/// URLs come from `uv.lock` when it lists the sha256 (the index is not even asked), and the
/// dry run prints the plan and changes nothing.
#[test]
fn heal_takes_urls_from_a_lock_file_and_dry_run_changes_nothing() {
    let s = Scenario::new();
    s.populate();
    let cache = s.cache();
    assert!(
        s.cache_heal(&["prune", "--path", cache.to_str().unwrap()])
            .status
            .success()
    );
    let files = s.sandbox.root().join("files");
    let bytes = std::fs::read(files.join("cext-1.0.tar.gz")).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let lock = s.sandbox.ws().join("uv.lock");
    std::fs::write(
        &lock,
        format!(
            "version = 1\n[[package]]\nname = \"cext\"\nversion = \"1.0\"\nsdist = {{ url = \"{}/files/cext-1.0.tar.gz\", hash = \"sha256:{sha}\", size = {} }}\n",
            s.index.url,
            bytes.len()
        ),
    )
    .unwrap();
    let py312 = uv::python("3.12");
    let dead_index = "http://127.0.0.1:9/simple";
    let before = snapshot(&cache);
    let args = [
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py312.to_str().unwrap(),
        "--index-url",
        dead_index,
        "--json",
    ];
    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    let out = s.sandbox.run(&dry);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Would fetch `cext 1.0` (673 B) for CPython 3.12"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("from lock file"), "{}", stderr(&out));
    assert_eq!(snapshot(&cache), before, "a dry run changed the cache");
    let out = s.sandbox.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert!(
        report["healed"][0]["origin"]
            .as_str()
            .unwrap()
            .starts_with("lock file"),
        "{report}"
    );
    assert!(!s.index.file_requests().is_empty());
}

/// An index that only speaks PEP 503 HTML works too; a target that already has a wheel for
/// everything gets nothing fetched.
#[test]
fn heal_falls_back_to_html_pages_and_skips_satisfied_targets() {
    let s = Scenario::with_index(true);
    s.populate();
    let cache = s.cache();
    assert!(
        s.cache_heal(&["prune", "--path", cache.to_str().unwrap()])
            .status
            .success()
    );
    let requests_before = s.index.file_requests().len();
    let py311 = uv::python("3.11");
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py311.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("Nothing to heal"), "{}", stderr(&out));
    assert_eq!(
        s.index.file_requests().len(),
        requests_before,
        "heal for 3.11 downloaded something"
    );
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        "3.12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(has_src(&cache, "cext"));
    assert!(
        !has_src(&cache, "sdistonly"),
        "sdistonly has a py3 wheel; its source is not needed"
    );
}

/// A bucket of an unknown uv version is reported and left untouched by heal.
#[test]
fn heal_leaves_unknown_bucket_versions_alone() {
    let s = Scenario::new();
    s.populate();
    let cache = s.cache();
    assert!(
        s.cache_heal(&["prune", "--path", cache.to_str().unwrap()])
            .status
            .success()
    );
    let future = cache.join("sdists-v99");
    uv::copy_tree(&cache.join("sdists-v11"), &future);
    let before = snapshot(&future);
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        "3.12",
    ]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("warning: Left `") && stderr(&out).contains("sdists-v99"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&future), before);
    assert!(has_src(&cache.join("sdists-v11"), "cext"));
}

fn has_src(root: &Path, package: &str) -> bool {
    walkdir::WalkDir::new(root).into_iter().flatten().any(|e| {
        e.file_name() == "src" && e.path().to_string_lossy().contains(&format!("/{package}/"))
    })
}

/// `inspect --path` shows buckets, each sdist with its built wheels' tags, and which
/// sources are missing, before and after a heal.
#[test]
fn inspect_shows_sdists_their_wheel_tags_and_missing_sources() {
    let s = Scenario::new();
    s.populate();
    let cache = s.cache();
    let path = cache.to_str().unwrap();
    assert!(s.cache_heal(&["prune", "--path", path]).status.success());
    let cext = |report: &serde_json::Value| {
        report["sdists"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["package"] == "cext")
            .cloned()
            .expect("cext is listed")
    };
    let report = stdout_json(&s.sandbox.ok(&["inspect", "--path", path, "--json"]));
    assert_eq!(report["generation"], "0.13");
    assert!(
        report["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "sdists-v11")
    );
    assert_eq!(
        cext(&report)["wheel_tags"],
        serde_json::json!(["cp311-cp311-linux_x86_64"])
    );
    assert_eq!(cext(&report)["source_missing"], true);
    let text = s.sandbox.ok(&["inspect", "--path", path]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("cext")
            && text.contains("missing")
            && text.contains("cp311-cp311-linux_x86_64"),
        "{text}"
    );
    assert!(
        s.cache_heal(&["heal", "--path", path, "--python", "3.12"])
            .status
            .success()
    );
    let report = stdout_json(&s.sandbox.ok(&["inspect", "--path", path, "--json"]));
    assert_eq!(cext(&report)["source_missing"], false);
}

/// An old-style `.zip` sdist is healed too, its top directory stripped like uv does it.
#[test]
fn heal_unpacks_zip_sdists() {
    let s = Scenario::new();
    let python = s.venv("3.11");
    uv::check(
        s.uv()
            .args(["pip", "install", "-p"])
            .arg(python)
            .arg("zipext==1.0"),
    );
    let cache = s.cache();
    let path = cache.to_str().unwrap();
    assert!(s.cache_heal(&["prune", "--path", path]).status.success());
    assert!(!has_src(&cache, "zipext"));
    let out = s.cache_heal(&["heal", "--path", path, "--python", "3.12", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["healed"][0]["package"], "zipext");
    let setup = walkdir::WalkDir::new(&cache)
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "setup.py" && e.path().to_string_lossy().contains("/zipext/"))
        .expect("zipext's setup.py in a healed src/");
    assert!(
        setup.path().parent().unwrap().ends_with("src"),
        "top directory not stripped: {}",
        setup.path().display()
    );
}

impl Scenario {
    /// Python 3.11 installs two C extensions from sdists: `cext` and `modernext`
    /// (`Requires-Python >=3.8`, a marker-guarded build requirement).
    fn populate_extensions(&self, extra: &[&str]) {
        let python = self.venv("3.11");
        uv::check(
            self.uv()
                .args(["pip", "install", "-p"])
                .arg(python)
                .args(["cext==1.0", "modernext==1.0"])
                .args(extra),
        );
    }

    /// `cache-heal prune` on the sandbox's uv cache.
    fn prune(&self) {
        let cache = self.cache();
        assert!(
            self.cache_heal(&["prune", "--path", cache.to_str().unwrap()])
                .status
                .success()
        );
    }
}

/// An index URL nothing listens on: a port bound, then released.
fn dead_index(credentials: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://{credentials}127.0.0.1:{port}/simple")
}

/// The lines of a warning's hint that are commands (`  uv …`), without the indentation.
fn printed_commands(err: &str) -> Vec<String> {
    err.lines()
        .filter_map(|l| l.strip_prefix("  uv "))
        .map(|rest| format!("uv {rest}"))
        .collect()
}

/// Issue 9, row 10: every missing build backend in one warning (not one per package), with
/// the sources needing each; the command it prints, run exactly as printed through `sh -c`,
/// has uv cache them, marker-guarded requirement included, so that an offline install on
/// 3.12 then builds both healed sources with the index stopped.
#[test]
fn missing_backends_are_one_warning_whose_command_runs_as_printed() {
    let mut s = Scenario::new();
    s.populate_extensions(&[]);
    s.prune();
    let cache = s.cache();
    let py312 = uv::python("3.12");
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py312.to_str().unwrap(),
        "--json",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("warning:").count(),
        1,
        "one warning per run: {err}"
    );
    assert!(
        err.contains(
            "warning: Offline builds need build requirements the uv cache has no wheel for"
        ),
        "{err}"
    );
    assert!(
        err.contains("\n  `setuptools>=40.8.0` for `cext 1.0`, `modernext 1.0`\n"),
        "{err}"
    );
    assert!(
        err.contains("\n  `purewheel; python_version >= '3.8'` for `modernext 1.0`\n"),
        "{err}"
    );
    let report = stdout_json(&out);
    assert_eq!(
        report["missing_build_requires"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    let commands = printed_commands(&err);
    assert_eq!(commands.len(), 1, "one target, one command: {err}");
    let command = &commands[0];
    assert!(
        command.contains(" 'setuptools>=40.8.0' \"purewheel; python_version >= '3.8'\""),
        "{command}"
    );

    let uv_dir = s.uv_bin.parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        uv_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", path)
        .env("TMPDIR", s.sandbox.root())
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env_remove("UV_CACHE_DIR")
        .env_remove("UV_INDEX_URL")
        .env_remove("UV_DEFAULT_INDEX")
        .env_remove("UV_OFFLINE")
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "the printed command failed: {command}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );

    s.index.stop();
    let venv = s.venv("3.12");
    let installed = s
        .uv()
        .args(["pip", "install", "--offline", "-p"])
        .arg(venv)
        .args(["cext==1.0", "modernext==1.0"])
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "offline builds on 3.12 failed after heal and the printed command:\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
}

/// Restore heals several uv caches, and still says it once: one warning listing the missing
/// backends of both, with one command per cache.
#[test]
fn restoring_two_uv_caches_warns_about_backends_once() {
    let s = Scenario::new();
    s.populate_extensions(&[]);
    let cache = s.cache();
    let second = s.sandbox.home().join(".cache/uv-second");
    uv::copy_tree(&cache, &second);
    let paths = "~/.cache/uv\n~/.cache/uv-second";
    let saved = s.cache_heal(&["save", "--path", paths, "--key", "uv-two", "--prune", "ci"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::remove_dir_all(&second).unwrap();
    let py312 = uv::python("3.12");
    let out = s.cache_heal(&[
        "restore",
        "--path",
        paths,
        "--key",
        "uv-two",
        "--python",
        py312.to_str().unwrap(),
        "--json",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let report = stdout_json(&out);
    assert_eq!(report["heal"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(
        err.contains("\n  `setuptools>=40.8.0` for `cext 1.0`, `modernext 1.0`\n"),
        "{err}"
    );
    let commands = printed_commands(&err);
    assert_eq!(commands.len(), 2, "one command per cache: {err}");
    assert!(
        commands[0].contains(cache.to_str().unwrap()),
        "{commands:?}"
    );
    assert!(
        commands[1].contains(second.to_str().unwrap()),
        "{commands:?}"
    );
}

/// Issue 9, row 10: `heal --python 3.6` does not plan `modernext`, whose `Requires-Python`
/// is `>=3.8` (uv recorded it in `metadata.msgpack`); one note names it, and `cext` is still
/// healed. Without uv's record, a pylock.toml's or the index's `requires-python` decides.
#[test]
fn heal_skips_sources_whose_requires_python_excludes_the_target() {
    let s = Scenario::new();
    s.populate_extensions(&[]);
    s.prune();
    let cache = s.cache();
    let path = cache.to_str().unwrap();
    let heal_36 = || s.cache_heal(&["heal", "--path", path, "--python", "3.6", "--json"]);
    let fetched_before = s.index.file_requests().len();

    let out = heal_36();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let report = stdout_json(&out);
    let planned: Vec<&str> = report["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["package"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["cext"], "{report}");
    let skipped = &report["skipped"];
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(skipped[0]["package"], "modernext 1.0");
    assert_eq!(skipped[0]["requires_python"], ">=3.8");
    assert_eq!(skipped[0]["targets"], serde_json::json!(["CPython 3.6.15"]));
    assert_eq!(skipped[0]["from"], "uv's metadata");
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("modernext")).collect();
    assert_eq!(
        notes,
        [
            "Skipped `modernext 1.0` for CPython 3.6.15: its `Requires-Python` is `>=3.8` (from uv's metadata)"
        ],
        "{err}"
    );
    assert!(has_src(&cache, "cext"));
    assert!(!has_src(&cache, "modernext"));
    assert!(
        !s.index.file_requests()[fetched_before..]
            .iter()
            .any(|r| r.contains("modernext")),
        "modernext was downloaded for 3.6"
    );

    // Without uv's metadata the index's `requires-python` for the matched file decides.
    for entry in walkdir::WalkDir::new(cache.join("sdists-v11"))
        .into_iter()
        .flatten()
    {
        let p = entry.path().to_string_lossy();
        if p.contains("/modernext/") && entry.file_name() == "metadata.msgpack" {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let out = heal_36();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let report = stdout_json(&out);
    assert_eq!(report["skipped"][0]["package"], "modernext 1.0", "{report}");
    assert_eq!(
        report["skipped"][0]["from"],
        format!("index `{}`", s.index.simple())
    );
    assert!(!has_src(&cache, "modernext"));

    // A pylock.toml's per-package `requires-python` counts too (it is asked before the index).
    let bytes = std::fs::read(s.sandbox.root().join("files/modernext-1.0.tar.gz")).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let pylock = s.sandbox.ws().join("pylock.toml");
    std::fs::write(
        &pylock,
        format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"modernext\"\nversion = \"1.0\"\nrequires-python = \">=3.9\"\nsdist = {{ url = \"{}/files/modernext-1.0.tar.gz\", hashes = {{ sha256 = \"{sha}\" }} }}\n",
            s.index.url
        ),
    )
    .unwrap();
    let report = stdout_json(&heal_36());
    assert_eq!(report["skipped"][0]["requires_python"], ">=3.9", "{report}");
    assert_eq!(
        report["skipped"][0]["from"],
        format!("lock file `{}`", pylock.display())
    );
    assert!(!has_src(&cache, "modernext"));
}

/// Issue 9, row 10: a dead index is one error for the run, naming the index (credentials
/// masked) and what failed, not one error per package.
#[test]
fn a_dead_index_is_one_error_not_one_per_package() {
    let s = Scenario::new();
    s.populate_extensions(&["zipext==1.0"]);
    s.prune();
    let cache = s.cache();
    let dead = dead_index("user:s3cret@");
    let shown = dead.replace("user:s3cret@", "****@");
    let out = s.sandbox.run(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        "3.12",
        "--index-url",
        &dead,
        "--json",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: Could not reach the index `{shown}` after 3 attempts, so 3 sources were not healed: `cext 1.0`, `modernext 1.0`, `zipext 1.0`"
        )],
        "{err}"
    );
    assert!(
        err.contains("Caused by:") && err.contains("Connection refused"),
        "{err}"
    );
    assert!(!err.contains("warning:"), "nothing per package: {err}");
    assert!(!err.contains("Could not heal"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!err.contains("s3cret") && !stdout.contains("s3cret"));
    let report = stdout_json(&out);
    assert_eq!(report["unreachable"][0]["url"], shown.as_str());
    assert_eq!(report["unreachable"][0]["kind"], "index");
    assert_eq!(report["failed"].as_array().unwrap().len(), 3, "{report}");

    // The same for a dead file host: a lock file sends two downloads there.
    let dead_host = dead_index("").trim_end_matches("/simple").to_string();
    let files = s.sandbox.root().join("files");
    let mut lock = String::from("version = 1\n");
    for file in ["cext-1.0.tar.gz", "zipext-1.0.zip"] {
        let bytes = std::fs::read(files.join(file)).unwrap();
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let name = file.split('-').next().unwrap();
        lock.push_str(&format!(
            "[[package]]\nname = \"{name}\"\nversion = \"1.0\"\nsdist = {{ url = \"{dead_host}/files/{file}\", hash = \"sha256:{sha}\" }}\n"
        ));
    }
    std::fs::write(s.sandbox.ws().join("uv.lock"), lock).unwrap();
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        "3.12",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: Could not download from `{dead_host}` after 3 attempts, so 2 sources were not healed: `cext 1.0`, `zipext 1.0`"
        )],
        "{err}"
    );
    assert!(!err.contains("Could not heal"), "{err}");
    assert!(
        has_src(&cache, "modernext"),
        "the live index still served modernext"
    );
}

/// Issue 9, row 8: an `--index-url` that is not an absolute http(s) URL is a usage error
/// (exit 2) naming the flag, before anything happens; so are uv's index variables when heal
/// falls back to them, naming the variable. A restore refuses before it writes anything.
#[test]
fn an_index_that_is_not_a_url_is_a_usage_error() {
    let s = Sandbox::new();
    let not_a_cache = s.root().join("nothing-here");
    let out = s.run(&[
        "heal",
        "--path",
        not_a_cache.to_str().unwrap(),
        "--index-url",
        "pypi.org/simple",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--index-url") && err.contains("expected an absolute http(s) URL"),
        "{err}"
    );

    let out = s
        .cmd()
        .args(["heal", "--path", not_a_cache.to_str().unwrap()])
        .env("UV_INDEX_URL", "pypi.org/simple")
        .env_remove("UV_DEFAULT_INDEX")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "error: `UV_INDEX_URL` is `pypi.org/simple`: expected an absolute http(s) URL"
        ),
        "{err}"
    );

    let cache = s.home().join(".cache/uv");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("file"), "x").unwrap();
    s.ok(&["save", "--path", "~/.cache/uv", "--key", "k"]);
    std::fs::remove_dir_all(&cache).unwrap();
    let out = s
        .cmd()
        .args(["restore", "--path", "~/.cache/uv", "--key", "k"])
        .env("UV_DEFAULT_INDEX", "file:///srv/simple")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`UV_DEFAULT_INDEX` is `file:///srv/simple`"),
        "{err}"
    );
    assert!(!cache.exists(), "the restore wrote before refusing");
}
