//! Heal, proven with real uv: a cache filled by Python 3.11, pruned and saved, restored and
//! healed for Python 3.12, must let `uv pip sync --offline` build for 3.12 with the index
//! stopped, and fail without heal. Plus the ways heal must refuse or fail: a tampered sdist,
//! an index that is down, a bucket version it does not know.

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

    fn save_prune_wipe_restore(&self, restore_flags: &[&str]) -> Output {
        let saved = self.cache_heal(&["save", "--path", "~/.cache/uv", "--key", "uv-k", "--json"]);
        assert!(saved.status.success());
        let saved = stdout_json(&saved);
        assert!(
            saved["pruned_files"].as_u64().unwrap() > 50,
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
    let restored = s.save_prune_wipe_restore(&[]);
    let report = stdout_json(&restored);
    let heal = &report["heal"][0];
    let healed: Vec<&str> = heal["healed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["package"].as_str().unwrap())
        .collect();
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
        stderr(&restored).contains("An offline build of `cext 1.0` needs `setuptools>=40.8.0`")
    );
    assert_eq!(s.cext_wheels(), ["cext-1.0-cp311-cp311-linux_x86_64.whl"]);

    s.warm_prebuilt_wheels();
    s.index.stop();
    let synced = s.offline_sync_312();
    assert!(
        synced.status.success(),
        "offline sync on 3.12 failed after heal:\n{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let mut wheels = s.cext_wheels();
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

/// The control: the same without heal fails with uv's offline error.
#[test]
fn without_heal_an_offline_312_sync_fails() {
    let mut s = Scenario::new();
    s.populate();
    let restored = s.save_prune_wipe_restore(&["--no-heal"]);
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
        err.contains("Could not heal `cext 1.0`: could not reach the index page"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("the restore itself succeeded"), "{err}");
    let cache = s.cache();
    let out = s.cache_heal(&[
        "heal",
        "--path",
        cache.to_str().unwrap(),
        "--python",
        py312.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error: Failed to heal 1 of 1 sources"));
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
