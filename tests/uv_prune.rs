//! `cache-heal prune`, and `save`'s pruning of what it packs, against `uv cache prune --ci`, on
//! real caches filled by real uv.
//!
//! Each equality test fills a cache through the local index with the fixture packages (a pure
//! wheel, an sdist-only package, a C extension, a direct-URL sdist, a local-path sdist) for two
//! Python versions, copies it, prunes one copy with uv and the other with cache-heal, and
//! compares the two trees entry by entry (type, mode, size, content hash, link target). It then
//! saves the unpruned cache, checks the save left it exactly as it was, and restores the entry
//! into a fresh location: that tree must equal uv's too.
//!
//! `save` never changes the cache on disk (issue 9, row 3): not when the store is unusable, not
//! with `--no-prune`, not after heal; and it holds uv's cache lock while it reads.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::gha::{self, CacheService};
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

    // The same through `save --prune ci`: the live cache stays as it is, the entry holds what
    // uv keeps.
    let live = snapshot(&cache);
    let saved = sandbox.ok(&[
        "save",
        "--path",
        cache.to_str().unwrap(),
        "--key",
        "k",
        "--prune",
        "ci",
        "--json",
    ]);
    assert_eq!(snapshot(&cache), live, "`save` changed the cache on disk");
    assert_eq!(
        stdout_json(&saved)["pruned_files"],
        report["files"],
        "`save` left out other files than `prune` removes"
    );
    assert_eq!(stdout_json(&saved)["pruned_bytes"], report["bytes"]);
    let err = stderr(&saved);
    assert!(
        err.contains(&format!(
            "Left out what `uv cache prune --ci` removes: {} files",
            report["files"]
        )),
        "{err}"
    );
    std::fs::rename(&cache, sandbox.root().join("cache-live")).unwrap();
    sandbox.ok(&[
        "restore",
        "--path",
        cache.to_str().unwrap(),
        "--key",
        "k",
        "--no-heal",
    ]);
    assert_same_tree(&snapshot(&by_uv), &snapshot(&cache));
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::rename(sandbox.root().join("cache-live"), &cache).unwrap();
    save_with_prune_wheels_keeps_prebuilt_wheels(&sandbox, &cache, &snapshot(&by_uv));
}

/// `save --prune wheels` leaves out what `--ci` does except the pre-built wheels: the entry is
/// uv's `--ci` tree plus the wheels bucket exactly as it was, and still no unpacked source.
fn save_with_prune_wheels_keeps_prebuilt_wheels(
    sandbox: &Sandbox,
    cache: &Path,
    by_uv: &std::collections::BTreeMap<String, support::Node>,
) {
    let live = snapshot(cache);
    let path = cache.to_str().unwrap();
    let saved = sandbox.ok(&[
        "save", "--path", path, "--key", "k-wheels", "--prune", "wheels", "--json",
    ]);
    assert!(
        stderr(&saved).contains("pre-built wheels kept"),
        "{}",
        stderr(&saved)
    );
    std::fs::rename(cache, sandbox.root().join("cache-live-2")).unwrap();
    sandbox.ok(&["restore", "--path", path, "--key", "k-wheels", "--no-heal"]);
    let restored = snapshot(cache);
    for (path, node) in by_uv {
        assert_eq!(Some(node), restored.get(path), "`--ci` keeps `{path}`");
    }
    // The current uv line's wheels bucket (an upgraded cache also has an older one, which
    // every mode drops, as uv does).
    let bucket = live
        .keys()
        .filter_map(|p| {
            p.strip_prefix("wheels-v")?
                .split('/')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map(|n| format!("wheels-v{n}"))
        .expect("a wheels bucket");
    let wheels: Vec<_> = live.keys().filter(|p| p.starts_with(&bucket)).collect();
    assert!(wheels.len() > 2, "the fixture has no pre-built wheels");
    for path in wheels {
        assert_eq!(live.get(path), restored.get(path), "wheel entry `{path}`");
    }
    assert!(
        !restored.keys().any(|p| p.ends_with("/src")),
        "a src/ survived"
    );
    assert!(
        restored.len() > by_uv.len(),
        "nothing beyond `--ci`'s tree was kept"
    );
}

/// `prune` should leave exactly what `uv cache prune --ci` of uv 0.13.x leaves, and `save`
/// should archive exactly that, without changing the cache.
#[test]
fn prune_equals_uv_0_13() {
    prune_matches_uv("0.13.9", None);
}

/// `prune` should leave, and `save` archive, exactly what `uv cache prune --ci` of uv 0.12.x
/// leaves (`sdists-v9`, `wheels-v6`, map-encoded revisions).
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
}

/// A uv 0.13 cache at `~/.cache/uv` in which Python 3.11 installed the pure wheel, the
/// sdist-only package and the C extension: sources, built wheels, unzipped archives, a
/// pre-built wheel, all things pruning removes or keeps.
fn small_cache(sandbox: &Sandbox, index: &Index) -> PathBuf {
    let cache = sandbox.home().join(".cache/uv");
    let uv_bin = uv::uv_bin("0.13.9");
    let venv = sandbox.root().join("venv");
    uv::check(
        uv::uv(&uv_bin, &cache, &index.simple())
            .args(["venv", "-q", "-p"])
            .arg(uv::python("3.11"))
            .arg(&venv),
    );
    uv::check(
        uv::uv(&uv_bin, &cache, &index.simple())
            .args(["pip", "install", "-p"])
            .arg(venv.join("bin/python"))
            .args(["purewheel==1.0", "sdistonly==1.0", "cext==1.0"]),
    );
    assert!(
        has_src(&cache),
        "uv left no unpacked source to prune in `{}`",
        cache.display()
    );
    cache
}

/// Whether any sdist revision of `cache` holds an unpacked source (`src/`).
fn has_src(cache: &Path) -> bool {
    walkdir::WalkDir::new(cache.join("sdists-v11"))
        .into_iter()
        .flatten()
        .any(|e| e.file_name() == "src" && e.file_type().is_dir())
}

/// `cache-heal` without the DAC override capabilities when the tests run as root, so that a
/// directory's mode bits stop it as they stop any other user.
fn unprivileged(cmd: &Command) -> Command {
    use std::os::unix::fs::MetadataExt;
    let as_root = tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0;
    let mut out = if as_root {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .arg("--bounding-set=-dac_override,-dac_read_search")
            .arg("--")
            .arg(cmd.get_program());
        setpriv
    } else {
        Command::new(cmd.get_program())
    };
    out.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => out.env(key, value),
            None => out.env_remove(key),
        };
    }
    out
}

/// A 127.0.0.1 URL where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Issue 9, row 3: `save` to a store it cannot use (a file, a read-only directory, an
/// unreachable GitHub cache, `ACTIONS_CACHE_MODE=read`) leaves the uv cache exactly as it was;
/// it used to prune it first (32 MiB → 2.8 MiB) and then fail or skip. The exit codes and
/// messages are today's: the two local stores fail only when the entry is created, after the
/// work; the GitHub cases are a warning or an info line and exit 0, as actions/cache's.
#[test]
fn issue_9_row_3_save_to_an_unusable_store_leaves_the_cache_unchanged() {
    let sandbox = Sandbox::new();
    let files = uv::fixtures(&sandbox.root().join("files"), 0);
    let index = Index::start(&files, 0);
    let cache = small_cache(&sandbox, &index);
    let before = snapshot(&cache);
    let save = ["save", "--path", "~/.cache/uv", "--key", "k", "--json"];
    let check = |what: &str, out: &Output, code: i32, fragment: &str| {
        let err = stderr(out);
        eprintln!("{what}: {}\n{err}", out.status);
        assert_eq!(snapshot(&cache), before, "{what}: the uv cache changed");
        assert_eq!(out.status.code(), Some(code), "{what}: {err}");
        assert!(err.contains(fragment), "{what}: {err}");
        // A store that cannot be written is found out before the cache is read (plan, then
        // act); a remote one is only found unreachable when the entry is reserved.
        if !what.contains("unreachable") {
            assert!(
                !err.contains("Left out"),
                "{what}: read the cache first: {err}"
            );
        }
    };

    let file_store = sandbox.root().join("store-file");
    std::fs::write(&file_store, "not a store").unwrap();
    let out = sandbox
        .cmd()
        .env("CACHE_HEAL_STORE", format!("dir:{}", file_store.display()))
        .args(save)
        .output()
        .unwrap();
    check(
        "a store that is a file",
        &out,
        1,
        &format!("store `{}` is not a directory", file_store.display()),
    );

    let read_only = sandbox.root().join("store-read-only");
    std::fs::create_dir(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = sandbox.cmd();
    cmd.env("CACHE_HEAL_STORE", format!("dir:{}", read_only.display()))
        .args(save);
    let out = unprivileged(&cmd).output().unwrap();
    check(
        "a read-only store",
        &out,
        1,
        &format!(
            "failed to create directory `{}/entries`: Permission denied",
            read_only.display()
        ),
    );
    assert!(
        support::list_all(&read_only).is_empty(),
        "something was written into the read-only store"
    );

    let out = sandbox
        .cmd()
        .env("CACHE_HEAL_STORE", "gha")
        .env("ACTIONS_RESULTS_URL", dead_url())
        .env(
            "ACTIONS_RUNTIME_TOKEN",
            gha::token(&[("refs/heads/main", 3)]),
        )
        .env("ACTIONS_CACHE_SERVICE_V2", "true")
        .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "20")
        .args(save)
        .output()
        .unwrap();
    check(
        "an unreachable GitHub cache",
        &out,
        0,
        "warning: Did not save `k`: the cache service could not be reached",
    );
    assert_eq!(stdout_json(&out)["status"], "not-saved");

    let service = CacheService::start();
    let out = gha::cache_heal(&sandbox, &service, &gha::token(&[("refs/heads/main", 3)]))
        .env("ACTIONS_CACHE_MODE", "read")
        .args(save)
        .output()
        .unwrap();
    check(
        "`ACTIONS_CACHE_MODE=read`",
        &out,
        0,
        "`ACTIONS_CACHE_MODE=read` does not allow saves",
    );
    assert_eq!(stdout_json(&out)["status"], "not-saved");
    assert!(service.entries().is_empty());
}

/// `save --no-prune` archives the whole uv cache: restored elsewhere, it equals the original.
#[test]
fn save_without_prune_archives_everything() {
    let sandbox = Sandbox::new();
    let files = uv::fixtures(&sandbox.root().join("files"), 0);
    let index = Index::start(&files, 0);
    let cache = small_cache(&sandbox, &index);
    let before = snapshot(&cache);
    let out = sandbox.ok(&[
        "save",
        "--path",
        "~/.cache/uv",
        "--key",
        "k",
        "--no-prune",
        "--json",
    ]);
    assert_eq!(stdout_json(&out)["pruned_files"], 0);
    assert!(!stderr(&out).contains("Left out"), "{}", stderr(&out));
    assert_eq!(snapshot(&cache), before);
    std::fs::rename(&cache, sandbox.root().join("cache-live")).unwrap();
    sandbox.ok(&[
        "restore",
        "--path",
        "~/.cache/uv",
        "--key",
        "k",
        "--no-heal",
    ]);
    assert_same_tree(&before, &snapshot(&cache));
    assert!(has_src(&cache));
}

/// `save` reads a uv cache under uv's lock, shared: it waits while `uv cache prune` or `clean`
/// holds it exclusively, and says so; `--force` does not wait.
#[test]
fn save_waits_for_the_cache_lock() {
    let sandbox = Sandbox::new();
    let cache = sandbox.home().join(".cache/uv");
    std::fs::create_dir_all(cache.join("sdists-v11")).unwrap();
    std::fs::write(
        cache.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# uv\n",
    )
    .unwrap();
    let lock = std::fs::File::create(cache.join(".lock")).unwrap();
    lock.lock().unwrap();
    let before = snapshot(&cache);

    let forced = sandbox.ok(&["save", "--path", "~/.cache/uv", "--key", "k1", "--force"]);
    assert!(!stderr(&forced).contains("in use"), "{}", stderr(&forced));

    let mut child = sandbox
        .cmd()
        .args(["save", "--path", "~/.cache/uv", "--key", "k2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    reader.read_line(&mut err).unwrap();
    assert!(err.contains("Waiting for uv's cache lock at"), "{err}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "save did not wait for the lock"
    );
    drop(lock);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{err}{rest}");
    assert!(rest.contains("Saved `k2`"), "{rest}");
    assert_eq!(snapshot(&cache), before);
}

/// After an exact hit that heal completed, the save step finds nothing changed: the sources
/// heal added are what pruning leaves out. They stay on disk; a real change is still seen.
#[test]
fn save_after_an_exact_hit_and_heal_is_up_to_date() {
    let sandbox = Sandbox::new();
    let files = uv::fixtures(&sandbox.root().join("files"), 0);
    let index = Index::start(&files, 0);
    let cache = small_cache(&sandbox, &index);

    let runner_temp = sandbox.root().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let step = || {
        let mut cmd = sandbox.cmd();
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", sandbox.root().join("github-output"))
            .env("GITHUB_STEP_SUMMARY", sandbox.root().join("step-summary"))
            .env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_EVENT_NAME", "push")
            .env("GITHUB_REF", "refs/heads/main");
        cmd
    };
    // Saved by an earlier run on `main`, so in the scope this run saves into.
    let seeded = step()
        .args(["save", "--path", "~/.cache/uv", "--key", "uv-k"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    std::fs::remove_dir_all(&cache).unwrap();
    let python = uv::python("3.12");
    let restored = step()
        .args([
            "restore",
            "--path",
            "~/.cache/uv",
            "--key",
            "uv-k",
            "--json",
        ])
        .arg("--python")
        .arg(&python)
        .args(["--index-url", &index.simple()])
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", stderr(&restored));
    let report = stdout_json(&restored);
    assert_eq!(report["status"], "exact", "{report}");
    assert!(
        has_src(&cache),
        "heal added no source, so this test proves nothing: {report}"
    );
    let healed = snapshot(&cache);

    let out = step()
        .args(["save", "--path", "~/.cache/uv", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout_json(&out)["status"],
        "up-to-date",
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&cache), healed, "save changed the healed cache");

    // A change that pruning keeps is a change.
    std::fs::write(cache.join("simple-v28/new.rkyv"), "x").unwrap();
    let out = step()
        .args(["save", "--path", "~/.cache/uv", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "exists", "{}", stderr(&out));
}
