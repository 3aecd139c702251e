//! `cache-heal prune` against `uv cache prune --ci`, on real caches filled by real uv.
//!
//! Each test fills a cache through the local index with the fixture packages (a pure wheel, an
//! sdist-only package, a C extension, a direct-URL sdist, a local-path sdist) for two Python
//! versions, copies it, prunes one copy with uv and the other with cache-heal, and compares the
//! two trees entry by entry (type, mode, size, content hash, link target).

mod support;

use std::path::Path;
use std::process::Command;
use support::uv::{self, Index};
use support::{Sandbox, assert_same_tree, snapshot, stderr, stdout_json};

/// Fills `cache` with uv `version`: installs for 3.11 and 3.12, a tool environment, and a
/// stale revision next to a current one (as an index without caching headers leaves behind).
fn fill_cache(uv_bin: &Path, cache: &Path, index: &Index, files: &Path, work: &Path) {
    let simple = index.simple();
    for py in ["3.11", "3.12"] {
        let venv = work.join(format!("venv-{py}"));
        uv::check(
            uv::uv(uv_bin, cache, &simple)
                .arg("venv")
                .arg("-q")
                .arg("-p")
                .arg(uv::python(py))
                .arg(&venv),
        );
        uv::check(
            uv::uv(uv_bin, cache, &simple)
                .args(["pip", "install", "-p"])
                .arg(venv.join("bin/python"))
                .args(["purewheel==1.0", "sdistonly==1.0", "cext==1.0"])
                .arg(format!("urlpkg @ {}/files/urlpkg-1.0.tar.gz", index.url))
                .arg(files.join("benchpkg00-1.0.tar.gz")),
        );
    }
    uv::check(
        uv::uv(uv_bin, cache, &simple)
            .args(["tool", "run", "-p"])
            .arg(uv::python("3.11"))
            .args(["--from", "purewheel==1.0", "purewheel"]),
    );
    // A stale revision beside the current one of `cext`.
    let bucket = if uv_bin.to_string_lossy().contains("0.12.") {
        "sdists-v9"
    } else {
        "sdists-v11"
    };
    let shard = find_shard(&cache.join(bucket), "cext");
    let current = std::fs::read_dir(&shard)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir() && e.file_name() != "stALeReViSiOn0001")
        .expect("a revision of cext")
        .path();
    uv::copy_tree(&current, &shard.join("stALeReViSiOn0001"));
}

/// `sdists-v*/index/<digest>/<name>/<version>`.
fn find_shard(cache: &Path, name: &str) -> std::path::PathBuf {
    walkdir::WalkDir::new(cache)
        .into_iter()
        .flatten()
        .find(|e| {
            e.file_name() == "1.0"
                && e.path().parent().unwrap().ends_with(name)
                && e.path().to_string_lossy().contains("sdists-v")
        })
        .unwrap_or_else(|| panic!("no sdist shard for `{name}` in `{}`", cache.display()))
        .into_path()
}

fn prune_matches_uv(uv_version: &str, also_fill_with: Option<&str>) {
    let sandbox = Sandbox::new();
    let files = uv::fixtures(&sandbox.root().join("files"), 1);
    let index = Index::start(&files, 0);
    let cache = sandbox.root().join("cache");
    if let Some(older) = also_fill_with {
        fill_cache(
            &uv::uv_bin(older),
            &cache,
            &index,
            &files,
            &sandbox.root().join("older"),
        );
    }
    let uv_bin = uv::uv_bin(uv_version);
    fill_cache(&uv_bin, &cache, &index, &files, sandbox.root());
    let by_uv = sandbox.root().join("by-uv");
    let by_us = sandbox.root().join("by-cache-heal");
    uv::copy_tree(&cache, &by_uv);
    uv::copy_tree(&cache, &by_us);
    let before = snapshot(&by_us);

    uv::check(uv::uv(&uv_bin, &by_uv, &index.simple()).args(["cache", "prune", "--ci"]));
    let dry = sandbox.ok(&[
        "prune",
        "--path",
        by_us.to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(
        snapshot(&by_us),
        before,
        "`prune --dry-run` changed the cache"
    );
    let out = sandbox.ok(&["prune", "--path", by_us.to_str().unwrap(), "--json"]);
    let report = stdout_json(&out);
    assert_eq!(
        stdout_json(&dry)["files"],
        report["files"],
        "dry run and real run disagree"
    );
    assert!(report["files"].as_u64().unwrap() > 100, "{report}");
    assert_same_tree(&snapshot(&by_uv), &snapshot(&by_us));
    // The point of pruning: no unpacked source and no pre-built wheel is left, built wheels are.
    let kept = snapshot(&by_us);
    assert!(!kept.keys().any(|p| p.ends_with("/src")), "a src/ survived");
    assert!(
        kept.keys()
            .any(|p| p.contains("cext-1.0-cp311-cp311-linux_x86_64.whl"))
    );
    assert!(
        kept.keys()
            .any(|p| p.contains("cext-1.0-cp312-cp312-linux_x86_64.whl"))
    );
    assert!(!kept.keys().any(|p| p.contains("stALeReViSiOn0001")));
}

/// `prune` should leave exactly what `uv cache prune --ci` of uv 0.13.x leaves.
#[test]
fn prune_equals_uv_0_13() {
    prune_matches_uv("0.13.9", None);
}

/// `prune` should leave exactly what `uv cache prune --ci` of uv 0.12.x leaves
/// (`sdists-v9`, `wheels-v6`, map-encoded revisions).
#[test]
fn prune_equals_uv_0_12() {
    prune_matches_uv("0.12.24", None);
}

/// A cache used by uv 0.12 and then 0.13: both remove the 0.12 buckets, the same way.
#[test]
fn prune_equals_uv_0_13_on_a_cache_upgraded_from_0_12() {
    prune_matches_uv("0.13.9", Some("0.12.24"));
}

/// A bucket of a uv version cache-heal does not know is left alone, with a warning naming it.
#[test]
fn prune_leaves_unknown_bucket_versions_alone() {
    let sandbox = Sandbox::new();
    let files = uv::fixtures(&sandbox.root().join("files"), 0);
    let index = Index::start(&files, 0);
    let cache = sandbox.root().join("cache");
    let uv_bin = uv::uv_bin("0.13.9");
    let venv = sandbox.root().join("venv");
    uv::check(
        uv::uv(&uv_bin, &cache, &index.simple())
            .arg("venv")
            .arg("-q")
            .arg("-p")
            .arg(uv::python("3.11"))
            .arg(&venv),
    );
    uv::check(
        uv::uv(&uv_bin, &cache, &index.simple())
            .args(["pip", "install", "-p"])
            .arg(venv.join("bin/python"))
            .arg("cext==1.0"),
    );
    // What a future uv might write: a new sdist bucket holding a revision with `src/`.
    let future = cache.join("sdists-v99");
    uv::copy_tree(&cache.join("sdists-v11"), &future);
    let before = snapshot(&future);

    let out = sandbox.ok(&["prune", "--path", cache.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(
        err.contains("sdists-v99") && err.contains("warning:"),
        "{err}"
    );
    assert_eq!(snapshot(&future), before, "the unknown bucket was touched");
    assert!(
        !walkdir::WalkDir::new(cache.join("sdists-v11"))
            .into_iter()
            .flatten()
            .any(|e| e.file_name() == "src")
    );
}

/// `prune` waits for uv's lock and says so; `--force` does not wait.
#[test]
fn prune_waits_for_the_cache_lock() {
    let sandbox = Sandbox::new();
    let cache = sandbox.root().join("cache");
    std::fs::create_dir_all(cache.join("sdists-v11")).unwrap();
    std::fs::write(
        cache.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# uv\n",
    )
    .unwrap();
    let lock = std::fs::File::create(cache.join(".lock")).unwrap();
    lock.lock_shared().unwrap();
    let mut child = sandbox
        .cmd()
        .args(["prune", "--path", cache.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut err).unwrap();
    assert!(
        err.starts_with("Waiting for uv's cache lock at `")
            && err.contains("pass `--force` to skip"),
        "{err}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "prune did not wait for the lock"
    );
    drop(lock);
    assert!(child.wait().unwrap().success());
    let forced = sandbox.ok(&["prune", "--path", cache.to_str().unwrap(), "--force"]);
    assert!(stderr(&forced).contains("Removed 0 files"));
    let _ = Command::new("true").status();
}
