//! Maintenance of the stores a fleet runs itself (issue 10, items 7 and 8): `delete`, `gc`
//! (least recently restored first, `--max-age`, `--dry-run`, the grace window that keeps a
//! restore in flight whole), the last use `inspect` shows, scopes on `dir:`, and a corrupted
//! `dir:` entry that is a warned miss while the other keys restore, and what `gc` sweeps
//! (leftovers of killed saves, entries put aside, markers of entries gone). `dir:` on temporary
//! directories; `s3://` on the real moto server of `tests/support/s3.rs`; `az://` on Azurite
//! (`tests/support/azure.rs`).
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};
use support::azure;
use support::s3::moto;
use support::trees::{self, PATHS, snapshots};
use support::{Sandbox, stderr, stdout_json};

/// Where the entries live: a local directory, a bucket on moto, or a container on Azurite.
enum Store {
    Dir,
    S3(String),
    Azure(String),
}

/// A sandbox whose `cache-heal` talks to one store, outside GitHub Actions unless a ref is set.
struct Fleet {
    sb: Sandbox,
    store: Store,
}

impl Fleet {
    fn dir() -> Self {
        Self {
            sb: Sandbox::new(),
            store: Store::Dir,
        }
    }

    fn s3(bucket: &str) -> Self {
        Self {
            sb: Sandbox::new(),
            store: Store::S3(moto().bucket(bucket)),
        }
    }

    fn azure(container: &str) -> Self {
        Self {
            sb: Sandbox::new(),
            store: Store::Azure(azure::container(container)),
        }
    }

    fn cmd(&self, git_ref: Option<(&str, Option<&str>)>) -> Command {
        let mut cmd = self.sb.cmd();
        cmd.env("CACHE_HEAL_NO_PROGRESS", "true")
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_BASE_REF")
            .env_remove("GITHUB_EVENT_PATH")
            .env_remove("GITHUB_EVENT_NAME")
            .env_remove("CACHE_HEAL_SCOPE");
        if let Store::S3(bucket) = &self.store {
            cmd.env("CACHE_HEAL_STORE", format!("s3://{bucket}/ci"))
                .env_remove("CACHE_HEAL_S3_ENDPOINT");
            moto().env(&mut cmd, &moto().credentials);
        }
        if let Store::Azure(container) = &self.store {
            for name in [
                "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_CONNECTION_STRING",
                "AZURE_STORAGE_ACCESS_KEY",
                "AZURE_CLIENT_ID",
            ] {
                cmd.env_remove(name);
            }
            cmd.env("CACHE_HEAL_STORE", format!("az://{container}/ci"))
                .env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
                .env("AZURE_STORAGE_KEY", azure::key())
                .env("CACHE_HEAL_AZ_ENDPOINT", azure::endpoint());
        }
        if let Some((git_ref, base)) = git_ref {
            cmd.env("GITHUB_ACTIONS", "true").env("GITHUB_REF", git_ref);
            if let Some(base) = base {
                cmd.env("GITHUB_BASE_REF", base);
            }
        }
        cmd
    }

    fn run_as(&self, git_ref: Option<(&str, Option<&str>)>, args: &[&str]) -> Output {
        let mut cmd = self.cmd(git_ref);
        cmd.args(args).arg("--json");
        if matches!(args.first(), Some(&"save" | &"restore")) {
            for path in PATHS {
                cmd.args(["--path", path]);
            }
        }
        cmd.output().expect("run cache-heal")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_as(None, args)
    }

    fn ok_as(&self, git_ref: Option<(&str, Option<&str>)>, args: &[&str]) -> serde_json::Value {
        let out = self.run_as(git_ref, args);
        assert!(
            out.status.success(),
            "cache-heal {args:?} failed: {}\n{}",
            out.status,
            stderr(&out)
        );
        stdout_json(&out)
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        self.ok_as(None, args)
    }

    /// Fills the trees with content of its own and saves them as `key`.
    fn save_as(&self, git_ref: Option<(&str, Option<&str>)>, key: &str) {
        trees::remove_trees(&self.sb);
        trees::fill_with(&self.sb, key, &format!("{key} body\n").repeat(200));
        let saved = self.ok_as(git_ref, &["save", "--key", key]);
        assert_eq!(saved["status"], "saved", "{saved}");
    }

    fn save(&self, key: &str) {
        self.save_as(None, key);
    }

    /// Restores `key` into emptied paths; returns the report.
    fn restore_as(&self, git_ref: Option<(&str, Option<&str>)>, key: &str) -> serde_json::Value {
        trees::remove_trees(&self.sb);
        self.ok_as(git_ref, &["restore", "--key", key])
    }

    /// Restores `key` and checks the trees are the ones saved as `saved_as`.
    fn assert_restores(&self, git_ref: Option<(&str, Option<&str>)>, key: &str, saved_as: &str) {
        let restored = self.restore_as(git_ref, key);
        assert_eq!(restored["status"], "exact", "{restored}");
        let expected = Sandbox::new();
        trees::fill_with(
            &expected,
            saved_as,
            &format!("{saved_as} body\n").repeat(200),
        );
        assert_eq!(
            snapshots(&expected),
            snapshots(&self.sb),
            "`{key}` restored other content"
        );
    }

    fn entries(&self) -> Vec<serde_json::Value> {
        self.ok(&["inspect"])["entries"].as_array().unwrap().clone()
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    }

    fn size_of(&self, key: &str) -> u64 {
        self.entries()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("no entry `{key}`"))["size"]
            .as_u64()
            .unwrap()
    }
}

fn names(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect()
}

/// The metadata file of `key` in a `dir:` store.
fn metadata_file(sb: &Sandbox, key: &str) -> PathBuf {
    std::fs::read_dir(sb.store().join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(p)
                    .unwrap()
                    .contains(&format!("\"key\": \"{key}\""))
        })
        .unwrap_or_else(|| panic!("no metadata for `{key}`"))
}

/// Moves a `dir:` entry's creation `days` into the past, as if it was saved then and never
/// restored since: the way to give `--max-age` something old without waiting days.
fn backdate(sb: &Sandbox, key: &str, days: u64) {
    let path = metadata_file(sb, key);
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let then = SystemTime::now() - Duration::from_secs(days * 86400);
    let ns = then
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    meta["created_ns"] = serde_json::json!(ns);
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
}

/// Save A, B, C; restore A; a size that holds two: B (least recently used) goes.
fn least_recently_restored_goes_first(fleet: &Fleet) {
    for key in ["lru-a", "lru-b", "lru-c"] {
        fleet.save(key);
    }
    fleet.restore_as(None, "lru-a");
    let keep = fleet.size_of("lru-a") + fleet.size_of("lru-c");
    let limit = keep.to_string();
    let gc = fleet.ok(&["gc", "--max-size", &limit, "--grace", "0s"]);
    assert_eq!(names(&gc["removed"]), ["lru-b"], "{gc}");
    assert_eq!(gc["removed"][0]["reason"], "max_size", "{gc}");
    assert_eq!(gc["freed"], gc["removed"][0]["size"], "{gc}");
    assert_eq!(fleet.keys(), ["lru-a", "lru-c"]);
    fleet.assert_restores(None, "lru-a", "lru-a");
    fleet.assert_restores(None, "lru-c", "lru-c");
}

#[test]
fn dir_gc_max_size_evicts_least_recently_restored_first() {
    least_recently_restored_goes_first(&Fleet::dir());
}

#[test]
fn s3_gc_max_size_evicts_least_recently_restored_first() {
    least_recently_restored_goes_first(&Fleet::s3("gc-lru"));
}

#[test]
fn azure_gc_max_size_evicts_least_recently_restored_first() {
    least_recently_restored_goes_first(&Fleet::azure("gc-lru"));
}

#[test]
fn gc_max_age_evicts_what_was_not_used_for_that_long() {
    let fleet = Fleet::dir();
    fleet.save("old");
    fleet.save("fresh");
    backdate(&fleet.sb, "old", 3);
    let gc = fleet.ok(&["gc", "--max-age", "2d"]);
    assert_eq!(names(&gc["removed"]), ["old"], "{gc}");
    assert_eq!(gc["removed"][0]["reason"], "max_age", "{gc}");
    assert_eq!(fleet.keys(), ["fresh"]);
    // Nothing is left of it in the store: metadata, archive and last use are gone.
    let files = support::list_all(&fleet.sb.store().join("entries"));
    assert_eq!(
        files.len(),
        2,
        "one metadata file and one archive: {files:?}"
    );
}

#[test]
fn gc_dry_run_removes_nothing_and_the_grace_window_keeps_fresh_entries() {
    let fleet = Fleet::dir();
    for key in ["dry-a", "dry-b"] {
        fleet.save(key);
    }
    let dry = fleet.ok(&["gc", "--max-size", "0", "--grace", "0s", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(names(&dry["removed"]).len(), 2, "{dry}");
    assert_eq!(fleet.keys(), ["dry-a", "dry-b"]);
    // The default grace window (1h) keeps entries saved a moment ago, and says why.
    let out = fleet.run(&["gc", "--max-size", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gc = stdout_json(&out);
    assert_eq!(names(&gc["removed"]), Vec::<&str>::new(), "{gc}");
    assert_eq!(names(&gc["kept"]).len(), 2, "{gc}");
    assert_eq!(gc["kept"][0]["reason"], "grace", "{gc}");
    let human = fleet.sb.run(&["gc", "--max-size", "0"]);
    let err = stderr(&human);
    assert!(err.contains("within the 1h grace window"), "{err}");
    assert!(err.contains("Removed 0 of 2 entries, freeing 0 B"), "{err}");
    assert_eq!(fleet.keys(), ["dry-a", "dry-b"]);
}

#[test]
fn gc_needs_a_limit_and_refuses_the_github_cache() {
    let fleet = Fleet::dir();
    let out = fleet.run(&["gc"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--max-size`, `--max-age`"),
        "{}",
        stderr(&out)
    );
    for command in [&["gc", "--max-size", "1G"][..], &["delete", "--key", "k"]] {
        let out = fleet
            .sb
            .cmd()
            .args(command)
            .args(["--store", "gha"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("GitHub evicts its entries by itself"), "{err}");
    }
}

fn delete_removes_one_entry(fleet: &Fleet) {
    fleet.save("del-a");
    fleet.save("del-b");
    let deleted = fleet.ok(&["delete", "--key", "del-a"]);
    assert_eq!(deleted["key"], "del-a");
    assert_eq!(deleted["removed"].as_array().unwrap().len(), 1, "{deleted}");
    assert_eq!(fleet.keys(), ["del-b"]);
    fleet.assert_restores(None, "del-b", "del-b");
    let missed = fleet.restore_as(None, "del-a");
    assert_eq!(missed["status"], "miss", "{missed}");
    // Deleting it again: an error that says it is not there and how to look.
    let out = fleet.run(&["delete", "--key", "del-a"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no entry with key `del-a` in scope `local` of"),
        "{err}"
    );
    assert!(err.contains("cache-heal inspect"), "{err}");
}

#[test]
fn dir_delete_removes_one_entry_and_the_others_restore() {
    delete_removes_one_entry(&Fleet::dir());
}

#[test]
fn s3_delete_removes_one_entry_and_the_others_restore() {
    delete_removes_one_entry(&Fleet::s3("delete-one"));
}

#[test]
fn azure_delete_removes_one_entry_and_the_others_restore() {
    delete_removes_one_entry(&Fleet::azure("delete-one"));
}

fn last_use_is_recorded(fleet: &Fleet) {
    fleet.save("used");
    let entry = &fleet.entries()[0];
    assert!(entry["last_used"].is_null(), "{entry}");
    fleet.restore_as(None, "used");
    let entry = &fleet.entries()[0];
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let used = entry["last_used"]
        .as_u64()
        .expect("a last use after a restore");
    assert!(used <= now + 1 && used + 600 > now, "{entry}");
    let human = fleet.cmd(None).arg("inspect").output().unwrap();
    let out = String::from_utf8_lossy(&human.stdout).to_string() + &stderr(&human);
    assert!(out.contains("LAST USED"), "{out}");
    assert!(out.contains("s ago") || out.contains("m ago"), "{out}");
}

#[test]
fn dir_inspect_shows_the_last_use() {
    last_use_is_recorded(&Fleet::dir());
}

#[test]
fn s3_inspect_shows_the_last_use() {
    last_use_is_recorded(&Fleet::s3("last-use"));
}

#[test]
fn azure_inspect_shows_the_last_use() {
    last_use_is_recorded(&Fleet::azure("last-use"));
}

/// Content large enough that the restore takes a while: random bytes do not compress.
fn fill_large(sb: &Sandbox, mib: usize) {
    trees::remove_trees(sb);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..(mib << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    for root in [sb.ws().join("data"), sb.home().join(".cache/uv")] {
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("blob.bin"), &data).unwrap();
    }
}

/// A restore is started; as soon as its use is recorded (before it downloads), `gc` runs
/// with a limit that would evict everything: the entry stays for the grace window, and the
/// restore finishes with the right content.
fn gc_during_a_restore(fleet: &Fleet, used: impl Fn() -> bool) {
    fill_large(&fleet.sb, 48);
    let expected = snapshots(&fleet.sb);
    let saved = fleet.ok(&["save", "--key", "big"]);
    assert_eq!(saved["status"], "saved", "{saved}");
    trees::remove_trees(&fleet.sb);
    let mut restore = fleet.cmd(None);
    restore.args(["restore", "--key", "big", "--json"]);
    for path in PATHS {
        restore.args(["--path", path]);
    }
    let restoring = restore
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !used() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the restore never recorded its use"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let gc = fleet.ok(&["gc", "--max-size", "0"]);
    let restored = restoring.wait_with_output().unwrap();
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert_eq!(stdout_json(&restored)["status"], "exact");
    assert_eq!(
        expected,
        snapshots(&fleet.sb),
        "the restore in flight broke"
    );
    assert_eq!(names(&gc["removed"]), Vec::<&str>::new(), "{gc}");
    assert_eq!(names(&gc["kept"]), ["big"], "{gc}");
    assert_eq!(fleet.keys(), ["big"]);
}

#[test]
fn dir_gc_concurrent_with_a_restore_leaves_it_whole() {
    let fleet = Fleet::dir();
    let entries = fleet.sb.store().join("entries");
    gc_during_a_restore(&fleet, || {
        std::fs::read_dir(&entries)
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "used"))
    });
}

#[test]
fn s3_gc_concurrent_with_a_restore_leaves_it_whole() {
    let fleet = Fleet::s3("gc-inflight");
    let Store::S3(bucket) = &fleet.store else {
        unreachable!()
    };
    let bucket = bucket.clone();
    gc_during_a_restore(&fleet, || {
        moto().objects(&bucket).iter().any(|o| o.contains("/used/"))
    });
}

#[test]
fn dir_scopes_follow_github() {
    let fleet = Fleet::dir();
    let pr = Some(("refs/pull/7/merge", Some("main")));
    let main = Some(("refs/heads/main", None));
    fleet.save_as(pr, "scoped");
    // The pull request's entry is invisible to main.
    let missed = fleet.restore_as(main, "scoped");
    assert_eq!(missed["status"], "miss", "{missed}");
    fleet.save_as(main, "from-main");
    // The pull request reads main's entries.
    fleet.assert_restores(pr, "from-main", "from-main");
    // Its save of the same key goes into its own scope; main's stays main's.
    fleet.save_as(pr, "from-main");
    fleet.assert_restores(main, "from-main", "from-main");
    let scopes: Vec<(String, String)> = fleet
        .entries()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(scopes.len(), 3, "{scopes:?}");
    assert!(scopes.contains(&("from-main".into(), "refs/heads/main".into())));
    assert!(scopes.contains(&("from-main".into(), "refs/pull/7/merge".into())));
    // `delete` in Actions acts in the run's scope only.
    let deleted = fleet.ok_as(pr, &["delete", "--key", "from-main"]);
    assert_eq!(deleted["scope"], "refs/pull/7/merge", "{deleted}");
    fleet.assert_restores(main, "from-main", "from-main");
    // What was saved outside Actions (`local`) is the last place every run looks; a run's
    // save of the same key goes into its own scope and leaves it alone.
    fleet.save("seeded");
    fleet.assert_restores(main, "seeded", "seeded");
    fleet.save_as(pr, "seeded");
    let mut seeded: Vec<String> = fleet
        .entries()
        .iter()
        .filter(|e| e["key"] == "seeded")
        .map(|e| e["scope"].as_str().unwrap().to_string())
        .collect();
    seeded.sort();
    assert_eq!(seeded, ["local", "refs/pull/7/merge"]);
    fleet.assert_restores(None, "seeded", "seeded");
    // A run cannot delete another scope's entry, and is told where the key is.
    let out = fleet.run_as(main, &["delete", "--key", "scoped"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has entries in scope `refs/pull/7/merge`"),
        "{err}"
    );
    assert!(stdout_json(&out)["error"]["hint"].is_string(), "{err}");
    // Outside Actions, `--scope` names the scope.
    let out = fleet.run(&["restore", "--key", "scoped", "--scope", "refs/pull/7/merge"]);
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
}

#[test]
fn dir_entries_saved_before_scopes_belong_to_local() {
    let fleet = Fleet::dir();
    fleet.save("legacy");
    let path = metadata_file(&fleet.sb, "legacy");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(meta["scope"], "local");
    meta.as_object_mut().unwrap().remove("scope");
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    fleet.assert_restores(None, "legacy", "legacy");
    assert_eq!(fleet.entries()[0]["scope"], "local");
    // Every run still finds it, after its own scopes, as before scopes existed.
    fleet.assert_restores(
        Some(("refs/pull/3/merge", Some("main"))),
        "legacy",
        "legacy",
    );
    // A save of its key in `local` finds it, as before scopes.
    trees::remove_trees(&fleet.sb);
    trees::fill_with(&fleet.sb, "legacy", "other");
    let again = fleet.ok(&["save", "--key", "legacy"]);
    assert_eq!(again["status"], "exists", "{again}");
    let deleted = fleet.ok(&["delete", "--key", "legacy"]);
    assert_eq!(deleted["removed"].as_array().unwrap().len(), 1);
}

#[test]
fn dir_corrupted_entry_is_a_warned_miss_and_the_other_keys_restore() {
    let fleet = Fleet::dir();
    fleet.save("bad");
    fleet.save("good");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(metadata_file(&fleet.sb, "bad")).unwrap())
            .unwrap();
    let archive = fleet
        .sb
        .store()
        .join("entries")
        .join(meta["archive"].as_str().unwrap());
    let mut bytes = std::fs::read(&archive).unwrap();
    let end = bytes.len() - 1;
    bytes[end] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let out = fleet.run(&["restore", "--key", "bad"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(stdout_json(&out)["status"], "miss");
    assert!(err.contains("the entry is damaged"), "{err}");
    fleet.assert_restores(None, "good", "good");
    assert_eq!(fleet.keys(), ["good"]);
    fleet.save("bad");
    fleet.assert_restores(None, "bad", "bad");
}

#[test]
fn dir_gc_sweeps_what_no_entry_owns() {
    let fleet = Fleet::dir();
    fleet.save("kept");
    let entries = fleet.sb.store().join("entries");
    let archive = std::fs::read_dir(&entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tzst"))
        .unwrap();
    // What a save killed after moving its archive in leaves, and a quarantined entry.
    let orphan = entries.join("0123456789abcdef0123456789abcdef-00000000deadbeef.tzst");
    std::fs::copy(&archive, &orphan).unwrap();
    let broken = entries.join("0123456789abcdef0123456789abcdef.json.broken");
    std::fs::write(&broken, "{ not json").unwrap();
    let fresh = entries.join("fedcba9876543210fedcba9876543210-00000000deadbeef.tzst");
    std::fs::write(&fresh, "a save publishing right now").unwrap();
    let day_ago = SystemTime::now() - Duration::from_secs(86400);
    for old in [&orphan, &broken] {
        std::fs::File::options()
            .write(true)
            .open(old)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
    }
    let dry = fleet.ok(&["gc", "--max-age", "30d", "--dry-run"]);
    assert_eq!(dry["swept"]["files"], 2, "{dry}");
    assert!(orphan.exists() && broken.exists());
    let gc = fleet.ok(&["gc", "--max-age", "30d"]);
    assert_eq!(gc["swept"]["files"], 2, "{gc}");
    assert!(gc["removed"].as_array().unwrap().is_empty(), "{gc}");
    assert!(!orphan.exists() && !broken.exists());
    assert!(fresh.exists(), "a file younger than the grace window stays");
    fleet.assert_restores(None, "kept", "kept");
}

/// The object names in the fleet's bucket or container.
fn objects(fleet: &Fleet) -> Vec<String> {
    let mut names = match &fleet.store {
        Store::S3(bucket) => moto().objects(bucket),
        Store::Azure(container) => azure::blobs(container),
        Store::Dir => unreachable!("a `dir:` store has files"),
    };
    names.sort();
    names
}

/// Writes `body` as the object `name`, as another client would.
fn plant(fleet: &Fleet, name: &str, body: &[u8]) {
    let file = fleet.sb.outside().join("planted");
    std::fs::write(&file, body).unwrap();
    match &fleet.store {
        Store::S3(bucket) => {
            moto().aws_ok(&[
                "s3",
                "cp",
                file.to_str().unwrap(),
                &format!("s3://{bucket}/{name}"),
            ]);
        }
        Store::Azure(container) => azure::upload(container, name, &file),
        Store::Dir => unreachable!("a `dir:` store has files"),
    }
}

/// What a save killed between completing its archive and publishing its metadata leaves (an
/// archive no metadata names), and the marker of an entry that is gone: kept while younger
/// than the grace window, counted by `--dry-run`, then swept; the entry next to them, its
/// metadata, archive and marker, stays and restores.
fn gc_sweeps_what_no_entry_owns(fleet: &Fleet) {
    let main = Some(("refs/heads/main", None));
    let key = "sweep/kept é";
    fleet.save_as(main, key);
    fleet.restore_as(main, key);
    let entry = objects(fleet);
    assert_eq!(entry.len(), 3, "metadata, archive, marker: {entry:?}");
    let archive = entry.iter().find(|o| o.contains("/archives/")).unwrap();
    let (dir, _) = archive.split_once("/archives/").unwrap();
    let orphan = format!("{dir}/archives/sweep%2Forphan.00000000deadbeef.tzst");
    let stale = format!("{dir}/used/sweep%2Fgone");
    let body = b"the archive of a save killed before it published\n".repeat(100);
    plant(fleet, &orphan, &body);
    plant(fleet, &stale, b"");
    let planted = objects(fleet);
    assert_eq!(planted.len(), 5, "{planted:?}");
    let swept = serde_json::json!({"files": 2, "bytes": body.len()});
    // Written a moment ago: the default grace window (1h) keeps them, as a save publishing.
    let gc = fleet.ok(&["gc", "--max-age", "1000d"]);
    assert_eq!(
        gc["swept"],
        serde_json::json!({"files": 0, "bytes": 0}),
        "{gc}"
    );
    assert_eq!(objects(fleet), planted);
    // Times are kept to the second: once it is over they are older than a window of 0 s.
    std::thread::sleep(Duration::from_millis(1500));
    let limits = ["gc", "--max-age", "1000d", "--grace", "0s"];
    let dry = fleet.ok(&[&limits[..], &["--dry-run"]].concat());
    assert_eq!(dry["swept"], swept, "{dry}");
    let human = fleet
        .cmd(None)
        .args(limits)
        .arg("--dry-run")
        .output()
        .unwrap();
    let err = stderr(&human);
    assert!(human.status.success(), "{err}");
    assert!(err.contains("Would remove 2 files no entry owned"), "{err}");
    assert_eq!(objects(fleet), planted, "a dry run deletes nothing");
    let gc = fleet.ok(&limits);
    assert_eq!(gc["swept"], swept, "{gc}");
    assert!(gc["removed"].as_array().unwrap().is_empty(), "{gc}");
    assert_eq!(objects(fleet), entry, "the entry stays whole");
    fleet.assert_restores(main, key, key);
    let again = fleet.ok(&limits);
    assert_eq!(again["swept"]["files"], 0, "{again}");
    assert_eq!(objects(fleet), entry);
}

#[test]
fn s3_gc_sweeps_what_no_entry_owns() {
    gc_sweeps_what_no_entry_owns(&Fleet::s3("gc-sweep"));
}

#[test]
fn azure_gc_sweeps_what_no_entry_owns() {
    gc_sweeps_what_no_entry_owns(&Fleet::azure("gc-sweep"));
}

/// The second look: an entry `gc` planned to evict (unused when it listed) but that a restore
/// started on before the removal is kept; without a cutoff (`delete`) it goes.
#[test]
fn dir_removal_looks_again_for_a_use_since_the_listing() {
    use cache_heal::store::local::LocalStore;
    use cache_heal::store::{Removal, Store};
    let fleet = Fleet::dir();
    fleet.save("raced");
    let store = LocalStore::new(fleet.sb.store());
    let listed = store.list().unwrap();
    assert_eq!(listed[0].last_used, None);
    let planned_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    fleet.restore_as(None, "raced");
    assert_eq!(
        store.remove(&listed[0], Some(planned_at)).unwrap(),
        Removal::InUse
    );
    assert_eq!(fleet.keys(), ["raced"]);
    assert_eq!(store.remove(&listed[0], None).unwrap(), Removal::Removed);
    assert_eq!(store.remove(&listed[0], None).unwrap(), Removal::Gone);
    assert!(fleet.keys().is_empty());
}

#[test]
fn azure_gc_concurrent_with_a_restore_leaves_it_whole() {
    let fleet = Fleet::azure("gc-inflight");
    let Store::Azure(container) = &fleet.store else {
        unreachable!()
    };
    let container = container.clone();
    gc_during_a_restore(&fleet, || {
        azure::blobs(&container)
            .iter()
            .any(|b| b.contains("/used/"))
    });
}
