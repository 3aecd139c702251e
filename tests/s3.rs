//! `--store s3://…` against a real S3 server (moto, with authentication on) and a real peer
//! client (the AWS CLI): round trips, what a peer reads, GitHub's scopes, first-wins
//! publishing, clear failures, and no credential in any output.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::s3::{Credentials, InstanceMetadata, moto};
use support::trees::{awkward_tree, incompressible};
use support::uv::{self as uv, Index};
use support::{Sandbox, assert_same_tree, snapshot, stderr, stdout_json};

/// A test's view of the server: a sandbox whose `cache-heal` talks to one bucket.
struct S3Run {
    sb: Sandbox,
    bucket: String,
}

impl S3Run {
    fn new(bucket: &str) -> Self {
        let bucket = moto().bucket(bucket);
        Self {
            sb: Sandbox::new(),
            bucket,
        }
    }

    fn store(&self) -> String {
        format!("s3://{}/ci", self.bucket)
    }

    /// `cache-heal` on this bucket, outside GitHub Actions unless `git_ref` is given, with
    /// the tests' credentials.
    fn cmd(&self, git_ref: Option<(&str, Option<&str>)>, credentials: &Credentials) -> Command {
        let mut cmd = self.sb.cmd();
        cmd.env("CACHE_HEAL_STORE", self.store())
            .env_remove("GITHUB_REF")
            .env_remove("GITHUB_BASE_REF")
            .env_remove("GITHUB_EVENT_PATH")
            .env_remove("GITHUB_EVENT_NAME")
            .env_remove("CACHE_HEAL_SCOPE")
            .env_remove("CACHE_HEAL_S3_ENDPOINT");
        moto().env(&mut cmd, credentials);
        if let Some((git_ref, base)) = git_ref {
            cmd.env("GITHUB_REF", git_ref);
            if let Some(base) = base {
                cmd.env("GITHUB_BASE_REF", base);
            }
        }
        cmd
    }

    fn run_as(&self, git_ref: Option<(&str, Option<&str>)>, args: &[&str]) -> Output {
        self.cmd(git_ref, &moto().credentials)
            .args(args)
            .output()
            .expect("run cache-heal")
    }

    fn ok_as(&self, git_ref: Option<(&str, Option<&str>)>, args: &[&str]) -> Output {
        let out = self.run_as(git_ref, args);
        assert!(
            out.status.success(),
            "cache-heal {args:?} failed: {}\n{}",
            out.status,
            stderr(&out)
        );
        out
    }
}

/// The archive objects in the bucket (not the metadata).
fn archives(objects: &[String]) -> Vec<&String> {
    objects
        .iter()
        .filter(|o| o.contains("/archives/"))
        .collect()
}

/// The saved tree restores identically, both the path inside the workspace and the one
/// outside it; and the archive object, downloaded with `aws s3 cp` and unpacked with GNU
/// `zstd -d | tar -x` as actions/cache does, gives the same trees too.
#[test]
fn round_trip_and_a_peer_reads_the_archive() {
    let run = S3Run::new("round-trip");
    let inside = run.sb.ws().join("data");
    let outside = run.sb.home().join(".cache/uv");
    awkward_tree(&inside);
    awkward_tree(&outside);
    incompressible(&inside.join("big"), 20);
    let (before_inside, before_outside) = (snapshot(&inside), snapshot(&outside));
    // With a workspace, as in Actions, the path outside it is named `../home/.cache/uv/…`.
    let ws = run.sb.ws();
    let args = [
        "--path",
        "data",
        "--path",
        "~/.cache/uv",
        "--key",
        "tree-1",
        "--workspace",
        ws.to_str().unwrap(),
    ];

    let saved = stdout_json(&run.ok_as(None, &[&["save", "--json"][..], &args].concat()));
    assert_eq!(saved["status"], "saved", "{saved}");
    let objects = moto().objects(&run.bucket);
    let archive = archives(&objects);
    assert_eq!(archive.len(), 1, "{objects:?}");
    assert!(
        objects
            .iter()
            .any(|o| o.starts_with("ci/local/") && o.ends_with("/tree-1.json")),
        "{objects:?}"
    );
    assert_eq!(moto().open_uploads(&run.bucket), 0);
    // Over plain HTTP every body carries its SHA-256, so the server records one for the object.
    let attributes = moto().aws_ok(&[
        "s3api",
        "get-object-attributes",
        "--bucket",
        &run.bucket,
        "--key",
        archive[0],
        "--object-attributes",
        "Checksum",
    ]);
    assert!(attributes.contains("ChecksumSHA256"), "{attributes}");

    std::fs::remove_dir_all(&inside).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
    let restored = stdout_json(&run.ok_as(None, &[&["restore", "--json"][..], &args].concat()));
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&before_inside, &snapshot(&inside));
    assert_same_tree(&before_outside, &snapshot(&outside));

    // The peer: a fresh workspace and home side by side, as in the sandbox.
    let peer = Sandbox::new();
    let file = peer.root().join("cache.tzst");
    moto().aws_ok(&[
        "s3",
        "cp",
        &format!("s3://{}/{}", run.bucket, archive[0]),
        file.to_str().unwrap(),
    ]);
    let status = Command::new("sh")
        .arg("-c")
        .arg("zstd -d < \"$1\" | tar -x -P -C \"$2\"")
        .args(["sh", file.to_str().unwrap(), peer.ws().to_str().unwrap()])
        .stderr(Stdio::inherit())
        .status()
        .expect("run zstd and tar");
    assert!(status.success(), "zstd -d | tar -x failed: {status}");
    assert_same_tree(&before_inside, &snapshot(&peer.ws().join("data")));
    assert_same_tree(&before_outside, &snapshot(&peer.home().join(".cache/uv")));
}

/// GitHub's scopes: a pull request restores `main`'s entry, its own save of the same key goes
/// into its own scope and leaves `main`'s alone, and what it saves is invisible to `main`.
#[test]
fn scopes_keep_pull_requests_from_main() {
    let run = S3Run::new("scopes");
    let main = Some(("refs/heads/main", None));
    let pr = Some(("refs/pull/7/merge", Some("main")));
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    let content = || std::fs::read_to_string(dir.join("who")).unwrap();
    let args = |key: &'static str| ["--path", "cache", "--key", key];

    std::fs::write(dir.join("who"), "main").unwrap();
    let saved = stdout_json(&run.ok_as(main, &[&["save", "--json"][..], &args("k")].concat()));
    assert_eq!(saved["status"], "saved");

    // The pull request reads main's entry.
    std::fs::write(dir.join("who"), "nothing yet").unwrap();
    let restored = stdout_json(&run.ok_as(pr, &[&["restore", "--json"][..], &args("k")].concat()));
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_eq!(content(), "main");

    // Its save of the same key lands in its own scope; main's entry is untouched.
    std::fs::write(dir.join("who"), "pr").unwrap();
    let saved = stdout_json(&run.ok_as(pr, &[&["save", "--json"][..], &args("k")].concat()));
    assert_eq!(saved["status"], "saved", "{saved}");
    let restored =
        stdout_json(&run.ok_as(main, &[&["restore", "--json"][..], &args("k")].concat()));
    assert_eq!(restored["status"], "exact");
    assert_eq!(content(), "main", "the pull request replaced main's entry");
    let restored = stdout_json(&run.ok_as(pr, &[&["restore", "--json"][..], &args("k")].concat()));
    assert_eq!(restored["status"], "exact");
    assert_eq!(
        content(),
        "pr",
        "the pull request reads its own scope first"
    );

    // What only the pull request saved, main does not see.
    std::fs::write(dir.join("who"), "pr only").unwrap();
    run.ok_as(pr, &["save", "--path", "cache", "--key", "pr-only"]);
    let restored = stdout_json(&run.ok_as(
        main,
        &["restore", "--json", "--path", "cache", "--key", "pr-only"],
    ));
    assert_eq!(restored["status"], "miss", "{restored}");

    // inspect lists every entry with key, scope, version, size and creation time.
    let listed = stdout_json(&run.ok_as(None, &["inspect", "--json"]));
    let entries = listed["entries"].as_array().expect("entries");
    let mut seen: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["version"].as_str().unwrap().len(), 64, "{e}");
            assert!(e["size"].as_u64().unwrap() > 0, "{e}");
            assert!(e["created"].as_u64().unwrap() > 1_700_000_000, "{e}");
            (
                e["key"].as_str().unwrap().to_string(),
                e["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("k", "refs/heads/main"),
            ("k", "refs/pull/7/merge"),
            ("pr-only", "refs/pull/7/merge")
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );
    let human = String::from_utf8_lossy(&run.ok_as(None, &["inspect"]).stdout).into_owned();
    assert!(human.contains("scope: `refs/pull/7/merge`"), "{human}");
}

/// The default branch comes from the event payload (the runner exports no variable for it):
/// a feature branch restores `trunk`'s entry, and without the payload looks in `main`. In
/// Actions `--scope` is refused.
#[test]
fn the_default_branch_comes_from_the_event_payload() {
    let run = S3Run::new("default-branch");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("who"), "trunk").unwrap();
    let event = run.sb.root().join("event.json");
    std::fs::write(&event, r#"{"repository": {"default_branch": "trunk"}}"#).unwrap();
    let args = ["--json", "--path", "cache", "--key", "k"];
    run.ok_as(
        Some(("refs/heads/trunk", None)),
        &[&["save"][..], &args].concat(),
    );

    let feature = Some(("refs/heads/feature", None));
    std::fs::write(dir.join("who"), "feature").unwrap();
    let out = run
        .cmd(feature, &moto().credentials)
        .env("GITHUB_EVENT_PATH", &event)
        .args([&["restore"][..], &args].concat())
        .output()
        .unwrap();
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("who")).unwrap(), "trunk");
    let missed = stdout_json(&run.ok_as(feature, &[&["restore"][..], &args].concat()));
    assert_eq!(
        missed["status"], "miss",
        "without the payload the default is `main`"
    );

    let out = run
        .cmd(feature, &moto().credentials)
        .env("GITHUB_ACTIONS", "true")
        .args([
            "save",
            "--scope",
            "refs/heads/trunk",
            "--path",
            "cache",
            "--key",
            "k2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--scope refs/heads/trunk` is for runs outside GitHub Actions"),
        "{}",
        stderr(&out)
    );
}

/// Restore keys match as on GitHub: exact key, then key as prefix, then each restore key,
/// newest first, only entries of the same version.
#[test]
fn restore_keys_match_newest_first_within_the_version() {
    let run = S3Run::new("matching");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    for key in ["deps-a-1", "deps-a-2", "deps-b-1"] {
        std::fs::write(dir.join("who"), key).unwrap();
        run.ok_as(None, &["save", "--path", "cache", "--key", key]);
    }
    // Same key prefix, other paths: another version, never matched.
    std::fs::write(run.sb.ws().join("other"), "x").unwrap();
    run.ok_as(None, &["save", "--path", "other", "--key", "deps-a-3"]);

    let restored = stdout_json(&run.ok_as(
        None,
        &[
            "restore",
            "--json",
            "--path",
            "cache",
            "--key",
            "deps-c",
            "--restore-key",
            "deps-a-",
            "--restore-key",
            "deps-",
        ],
    ));
    assert_eq!(restored["status"], "partial", "{restored}");
    assert_eq!(restored["matched_key"], "deps-a-2");
    assert_eq!(
        std::fs::read_to_string(dir.join("who")).unwrap(),
        "deps-a-2"
    );
}

/// Two processes saving one key at once: one entry, one "already exists", both exit 0, and
/// no archive or multipart upload of the loser left behind.
#[test]
fn two_concurrent_saves_of_one_key_publish_one_entry() {
    let run = S3Run::new("concurrent");
    for n in 0..2 {
        incompressible(&run.sb.ws().join(format!("cache{n}")), 12);
    }
    let children: Vec<_> = (0..2)
        .map(|n| {
            // Different paths would be different versions: both save `cache` from their own
            // working copy.
            let ws = run.sb.root().join(format!("ws{n}"));
            std::fs::create_dir_all(&ws).unwrap();
            std::fs::rename(run.sb.ws().join(format!("cache{n}")), ws.join("cache")).unwrap();
            let mut cmd = run.cmd(None, &moto().credentials);
            cmd.current_dir(&ws)
                .args(["save", "--json", "--path", "cache", "--key", "same"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().expect("spawn cache-heal")
        })
        .collect();
    let mut statuses: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout_json(&out)["status"].as_str().unwrap().to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["exists", "saved"]);
    let objects = moto().objects(&run.bucket);
    assert_eq!(archives(&objects).len(), 1, "{objects:?}");
    assert_eq!(
        objects.iter().filter(|o| o.ends_with(".json")).count(),
        1,
        "{objects:?}"
    );
    assert_eq!(moto().open_uploads(&run.bucket), 0);
}

/// Eight processes saving different keys into one bucket at once, then eight restoring them
/// at once: every tree comes back right.
#[test]
fn eight_processes_at_once_each_get_their_own_tree() {
    let run = S3Run::new("eight");
    let workspaces: Vec<_> = (0..8)
        .map(|n| {
            let ws = run.sb.root().join(format!("job{n}"));
            let dir = ws.join("cache");
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/who"), format!("job {n}")).unwrap();
            incompressible(&dir.join("blob"), 1 + n % 3);
            (ws, snapshot(&dir))
        })
        .collect();
    let all_at_once = |command: &str| {
        let children: Vec<_> = workspaces
            .iter()
            .enumerate()
            .map(|(n, (ws, _))| {
                run.cmd(None, &moto().credentials)
                    .current_dir(ws)
                    .args([command, "--json", "--path", "cache", "--key"])
                    .arg(format!("job-{n}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{command}: {}", stderr(&out));
            let status = stdout_json(&out)["status"].clone();
            let expected = if command == "save" { "saved" } else { "exact" };
            assert_eq!(status, expected, "{command}: {}", stderr(&out));
        }
    };
    all_at_once("save");
    for (ws, _) in &workspaces {
        std::fs::remove_dir_all(ws.join("cache")).unwrap();
    }
    all_at_once("restore");
    for (ws, before) in &workspaces {
        assert_same_tree(before, &snapshot(&ws.join("cache")));
    }
}

/// A missing bucket and a wrong secret each give one line naming the store and what to
/// check; the restore is a miss and the save is not saved, and both exit 0.
#[test]
fn missing_bucket_and_wrong_credentials_say_what_to_check() {
    let run = S3Run::new("failures");
    std::fs::create_dir_all(run.sb.ws().join("cache")).unwrap();
    std::fs::write(run.sb.ws().join("cache/f"), "x").unwrap();
    let args = ["--path", "cache", "--key", "k"];

    let out = run
        .cmd(None, &moto().credentials)
        .env("CACHE_HEAL_STORE", "s3://no-such-bucket/ci")
        .args([&["restore", "--json"][..], &args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "miss");
    let text = stderr(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("s3://no-such-bucket/ci") && l.contains("the bucket does not exist"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("check the bucket name"), "{text}");

    let wrong = Credentials {
        secret: "wrong-secret".into(),
        ..moto().credentials.clone()
    };
    for command in ["restore", "save"] {
        let out = run
            .cmd(None, &wrong)
            .args([&[command, "--json"][..], &args].concat())
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let report = stdout_json(&out);
        let expected = if command == "save" {
            "not-saved"
        } else {
            "miss"
        };
        assert_eq!(report["status"], expected, "{report}");
        let text = stderr(&out);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&run.store()) && l.contains("refused the credentials"))
            .collect();
        assert_eq!(lines.len(), 1, "{command}: {text}");
        assert!(lines[0].contains("SignatureDoesNotMatch"), "{text}");
        assert!(lines[0].contains("check `AWS_ACCESS_KEY_ID`"), "{text}");
    }
}

/// A server that is not there: the restore is a clean miss with a warning, the save a
/// warning; both exit 0 and nothing local changes.
#[test]
fn a_server_that_is_gone_is_a_clean_miss() {
    let run = S3Run::new("gone");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "previous").unwrap();
    let port = support::gha::free_port();
    for command in ["restore", "save"] {
        let out = run
            .cmd(None, &moto().credentials)
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .args([command, "--json", "--path", "cache", "--key", "k"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains("could not be reached"), "{command}: {text}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");
}

/// An archive that was replaced (it fails its recorded sha256) or deleted (by a cleanup
/// between lookup and download) is a miss with a warning, and the previous content stays.
#[test]
fn a_damaged_or_vanished_archive_is_a_clean_miss() {
    let run = S3Run::new("damaged");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "small").unwrap();
    run.ok_as(None, &["save", "--path", "cache", "--key", "a"]);
    incompressible(&dir, 1);
    run.ok_as(None, &["save", "--path", "cache", "--key", "b"]);
    let objects = moto().objects(&run.bucket);
    let archive_of = |key: &str| {
        objects
            .iter()
            .find(|o| o.contains(&format!("/archives/{key}.")))
            .unwrap()
            .clone()
    };
    let (a, b) = (archive_of("a"), archive_of("b"));
    moto().aws_ok(&[
        "s3",
        "cp",
        &format!("s3://{}/{b}", run.bucket),
        &format!("s3://{}/{a}", run.bucket),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "previous").unwrap();
    let out = run.ok_as(
        None,
        &["restore", "--json", "--path", "cache", "--key", "a"],
    );
    assert_eq!(stdout_json(&out)["status"], "miss", "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");

    moto().aws_ok(&["s3", "rm", &format!("s3://{}/{b}", run.bucket)]);
    let out = run.ok_as(
        None,
        &["restore", "--json", "--path", "cache", "--key", "b"],
    );
    assert_eq!(stdout_json(&out)["status"], "miss", "{}", stderr(&out));
    // Listed but gone is a damaged entry, as on the GitHub cache (issue 12).
    assert!(
        stderr(&out).contains("the entry is damaged"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the object is gone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");

    // Both were put aside: the next save of each key writes a good entry, not "already
    // exists", and it restores.
    for key in ["a", "b"] {
        let saved =
            stdout_json(&run.ok_as(None, &["save", "--json", "--path", "cache", "--key", key]));
        assert_eq!(saved["status"], "saved", "{key}: {saved}");
        let restored = stdout_json(&run.ok_as(
            None,
            &["restore", "--json", "--path", "cache", "--key", key],
        ));
        assert_eq!(restored["status"], "exact", "{key}: {restored}");
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");
    }
}

/// A metadata object that cannot be parsed never hides the other entries: `inspect` lists
/// them with a warning, and a restore whose best match it is warns, puts it aside and falls
/// back to the next match. The next save of its key then publishes a good entry; and `gc`
/// removes one that no restore met once it is older than the grace window.
#[test]
fn damaged_metadata_is_put_aside_and_hides_nothing() {
    let run = S3Run::new("damaged-metadata");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "good").unwrap();
    run.ok_as(None, &["save", "--path", "cache", "--key", "deps-1"]);
    let good = snapshot(&dir);
    std::fs::write(dir.join("f"), "newer").unwrap();
    for key in ["deps-2", "other"] {
        run.ok_as(None, &["save", "--path", "cache", "--key", key]);
    }
    let metadata_of = |key: &str| {
        moto()
            .objects(&run.bucket)
            .into_iter()
            .find(|o| o.ends_with(&format!("/{key}.json")))
            .unwrap_or_else(|| panic!("no metadata for {key}"))
    };
    let damage = |key: &str| {
        let file = run.sb.root().join("broken.json");
        std::fs::write(&file, "{broken").unwrap();
        let target = format!("s3://{}/{}", run.bucket, metadata_of(key));
        moto().aws_ok(&["s3", "cp", file.to_str().unwrap(), &target]);
    };
    damage("deps-2");
    damage("other");

    let out = run.ok_as(None, &["inspect", "--json"]);
    let listed: Vec<String> = stdout_json(&out)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["deps-1"], "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("Skipped a damaged entry").count(),
        2,
        "{}",
        stderr(&out)
    );

    // `deps-` matches deps-2 first (newest); it is damaged, so deps-1 is restored.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = run.ok_as(
        None,
        &[
            "restore",
            "--json",
            "--path",
            "cache",
            "--key",
            "deps-3",
            "--restore-key",
            "deps-",
        ],
    );
    let report = stdout_json(&out);
    assert_eq!(
        report["matched_key"],
        "deps-1",
        "{report}\n{}",
        stderr(&out)
    );
    assert_same_tree(&good, &snapshot(&dir));
    let text = stderr(&out);
    assert!(text.contains("Skipped a damaged entry"), "{text}");
    assert!(
        text.contains("the next save of the key writes a good one"),
        "{text}"
    );
    assert!(
        !moto()
            .objects(&run.bucket)
            .iter()
            .any(|o| o.ends_with("/deps-2.json")),
        "the damaged metadata is gone"
    );
    let saved = stdout_json(&run.ok_as(
        None,
        &["save", "--json", "--path", "cache", "--key", "deps-2"],
    ));
    assert_eq!(saved["status"], "saved", "{saved}");

    // `other` was met by no restore: gc keeps it within the grace window, then removes it.
    let gc = |grace: &str| {
        stdout_json(&run.ok_as(
            None,
            &["gc", "--json", "--max-age", "1000d", "--grace", grace],
        ))
    };
    gc("1h");
    assert!(
        moto()
            .objects(&run.bucket)
            .iter()
            .any(|o| o.ends_with("/other.json"))
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let report = gc("0s");
    let objects = moto().objects(&run.bucket);
    assert!(
        !objects.iter().any(|o| o.ends_with("/other.json")),
        "{report}\n{objects:?}"
    );
    assert!(
        !objects.iter().any(|o| o.contains("/archives/other.")),
        "{report}\n{objects:?}"
    );
    for key in ["deps-1", "deps-2"] {
        assert!(
            objects.iter().any(|o| o.ends_with(&format!("/{key}.json"))),
            "{objects:?}"
        );
    }
}

/// S3's `SlowDown` on parts and on ranged GETs, and a range whose body breaks off midway,
/// are retried: the save publishes and the restore gives the same tree.
#[test]
fn slow_down_and_broken_ranges_are_retried() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("faults");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 20);
    let before = snapshot(&dir);
    let through_proxy = |args: &[&str]| {
        let out = run
            .cmd(None, &moto().credentials)
            .env("AWS_ENDPOINT_URL", proxy.endpoint())
            .env("CACHE_HEAL_HTTP_RETRIES", "4")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout_json(&out)
    };
    proxy.faults.slow_down_parts.store(2, Ordering::SeqCst);
    let saved = through_proxy(&["save", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(saved["status"], "saved", "{saved}");
    assert_eq!(proxy.injected(), ["SlowDown part", "SlowDown part"]);

    std::fs::remove_dir_all(&dir).unwrap();
    proxy.faults.slow_down_ranges.store(2, Ordering::SeqCst);
    proxy.faults.cut_ranges.store(1, Ordering::SeqCst);
    let restored = through_proxy(&["restore", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&before, &snapshot(&dir));
    let injected = proxy.injected();
    assert_eq!(injected.len(), 5, "{injected:?}");
    assert!(injected.contains(&"cut range"), "{injected:?}");
}

/// A save whose parts keep failing is not saved (a warning, exit 0), aborts its multipart
/// upload and leaves no entry; a restore whose ranges keep breaking is a miss that leaves the
/// previous content as it was.
#[test]
fn failures_past_the_retries_leave_nothing_behind() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("past-retries");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 20);
    let through_proxy = |args: &[&str]| {
        let out = run
            .cmd(None, &moto().credentials)
            .env("AWS_ENDPOINT_URL", proxy.endpoint())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (stdout_json(&out), stderr(&out))
    };
    proxy.faults.fail_parts.store(1000, Ordering::SeqCst);
    let (saved, text) = through_proxy(&["save", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(saved["status"], "not-saved", "{saved}");
    assert!(text.contains("InternalError"), "{text}");
    assert!(
        moto().objects(&run.bucket).is_empty(),
        "{:?}",
        moto().objects(&run.bucket)
    );
    assert_eq!(
        moto().open_uploads(&run.bucket),
        0,
        "the upload was not aborted"
    );

    proxy.faults.fail_parts.store(0, Ordering::SeqCst);
    let (saved, _) = through_proxy(&["save", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(saved["status"], "saved");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "previous").unwrap();
    proxy.faults.cut_ranges.store(1000, Ordering::SeqCst);
    let (restored, text) = through_proxy(&["restore", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(restored["status"], "miss", "{restored}");
    assert!(text.contains("warning: Did not restore `k`"), "{text}");
    assert!(text.contains("broke off"), "{text}");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");
    assert_eq!(support::list_all(&dir), ["f"]);
}

/// Nothing cache-heal prints, in any outcome, holds the secret key or the session token.
#[test]
fn no_credential_in_any_output() {
    let run = S3Run::new("secrets");
    let dir = run.sb.ws().join("cache");
    awkward_tree(&dir);
    let creds = moto().credentials.clone();
    let wrong = Credentials {
        secret: format!("{}x", creds.secret),
        ..creds.clone()
    };
    let mut outputs = Vec::new();
    let args = ["--path", "cache", "--key", "k"];
    for (json, credentials) in [
        (false, &creds),
        (true, &creds),
        (false, &wrong),
        (true, &wrong),
    ] {
        for command in ["save", "restore", "inspect"] {
            let mut all: Vec<&str> = vec![command];
            if json {
                all.push("--json");
            }
            if command != "inspect" {
                all.extend(args);
            }
            let out = run.cmd(None, credentials).args(&all).output().unwrap();
            outputs.push((all.join(" "), out));
        }
    }
    for (what, out) in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [&creds.secret, &wrong.secret, &creds.token] {
            assert!(
                !text.contains(secret.as_str()),
                "`{what}` printed a credential:\n{text}"
            );
        }
    }
    // The wrong-secret runs did fail (so the check covered error paths too).
    assert!(
        outputs
            .iter()
            .any(|(_, out)| stderr(out).contains("refused the credentials"))
    );
}

/// `cache-heal` through `proxy` (retries as in `moto().env`); returns the output, whatever the
/// exit code.
fn through(run: &S3Run, proxy: &support::s3::FaultProxy, args: &[&str]) -> Output {
    run.cmd(None, &moto().credentials)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args(args)
        .output()
        .expect("run cache-heal")
}

/// Staging directories or other leftovers of a restore under `root`.
fn leftovers(root: &Path) -> Vec<String> {
    support::list_all(root)
        .into_iter()
        .filter(|p| p.contains("staging") || p.contains(".cache-heal"))
        .collect()
}

/// A connection that drops halfway through a part's body (moto never sees that part): the
/// part is sent again, the save publishes, and the tree round-trips.
#[test]
fn a_reset_in_the_middle_of_a_part_retries_that_part() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("reset-part");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 20);
    let before = snapshot(&dir);
    proxy.faults.reset_parts.store(2, Ordering::SeqCst);
    // Both resets may hit one part: room for two retries of it.
    let out = run
        .cmd(None, &moto().credentials)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("CACHE_HEAL_HTTP_RETRIES", "3")
        .args(["save", "--json", "--path", "cache", "--key", "k"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "saved", "{}", stderr(&out));
    assert_eq!(proxy.injected(), ["reset part", "reset part"]);
    assert_eq!(moto().open_uploads(&run.bucket), 0);

    std::fs::remove_dir_all(&dir).unwrap();
    let restored = stdout_json(&run.ok_as(
        None,
        &["restore", "--json", "--path", "cache", "--key", "k"],
    ));
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&before, &snapshot(&dir));
}

/// A ranged GET that answers with fewer bytes than asked for, as a complete response (only
/// counting tells): that range is fetched again and the tree restores whole.
#[test]
fn a_truncated_range_is_fetched_again() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("short-range");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 20);
    let before = snapshot(&dir);
    run.ok_as(None, &["save", "--path", "cache", "--key", "k"]);
    std::fs::remove_dir_all(&dir).unwrap();
    proxy.faults.short_ranges.store(2, Ordering::SeqCst);
    let out = through(
        &run,
        &proxy,
        &["restore", "--json", "--path", "cache", "--key", "k"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
    assert_eq!(proxy.injected(), ["short range", "short range"]);
    assert_same_tree(&before, &snapshot(&dir));
}

/// The server goes away after the first part of a save arrived. The save says so (a warning
/// naming the store, `not-saved`, exit 0 as every store failure of a save) and, once the server
/// is back, there is no entry: nothing to restore, and the next save of the key publishes. If
/// the server is back in time for the abort, no multipart upload is left open; if not, the one
/// upload waits for the bucket's `AbortIncompleteMultipartUpload` rule, and still no entry.
#[test]
fn the_server_gone_mid_save_leaves_no_entry() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("gone-mid-save");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 30);
    let before = snapshot(&dir);
    let faults = &proxy.faults;
    let save = || {
        through(
            &run,
            &proxy,
            &["save", "--json", "--path", "cache", "--key", "k"],
        )
    };
    let assert_not_saved = |out: &Output| {
        let text = stderr(out);
        assert!(out.status.success(), "{text}");
        assert_eq!(stdout_json(out)["status"], "not-saved", "{text}");
        assert!(text.contains("warning: Did not save `k`"), "{text}");
        assert!(text.contains(&run.store()), "{text}");
        assert!(text.contains("could not be reached"), "{text}");
        assert!(proxy.injected().contains(&"down"), "{:?}", proxy.injected());
    };

    // Back in time for the abort.
    faults.spare_aborts.store(true, Ordering::SeqCst);
    faults.down_after_parts.store(1, Ordering::SeqCst);
    assert_not_saved(&save());
    faults.down.store(false, Ordering::SeqCst);
    assert_eq!(moto().objects(&run.bucket), Vec::<String>::new());
    assert_eq!(
        moto().open_uploads(&run.bucket),
        0,
        "the upload was not aborted"
    );

    // Gone for good, the abort too.
    faults.spare_aborts.store(false, Ordering::SeqCst);
    faults.down_after_parts.store(1, Ordering::SeqCst);
    assert_not_saved(&save());
    faults.down.store(false, Ordering::SeqCst);
    assert_eq!(moto().objects(&run.bucket), Vec::<String>::new());
    assert_eq!(moto().open_uploads(&run.bucket), 1);
    let out = through(
        &run,
        &proxy,
        &["restore", "--json", "--path", "cache", "--key", "k"],
    );
    assert_eq!(stdout_json(&out)["status"], "miss", "{}", stderr(&out));
    assert_same_tree(&before, &snapshot(&dir));

    let out = save();
    assert_eq!(stdout_json(&out)["status"], "saved", "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
    let out = through(
        &run,
        &proxy,
        &["restore", "--json", "--path", "cache", "--key", "k"],
    );
    assert_eq!(stdout_json(&out)["status"], "exact", "{}", stderr(&out));
    assert_same_tree(&before, &snapshot(&dir));
}

/// The server goes away after the first range of a restore was asked for: a clean miss with a
/// warning, exit 0, both paths (inside and outside the workspace) byte for byte as they were,
/// no staging left behind.
#[test]
fn the_server_gone_mid_restore_is_a_clean_miss() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("gone-mid-restore");
    let proxy = support::s3::FaultProxy::start(moto().port);
    let inside = run.sb.ws().join("cache");
    let outside = run.sb.home().join(".cache/uv");
    incompressible(&inside, 20);
    awkward_tree(&outside);
    let args = ["--path", "cache", "--path", "~/.cache/uv", "--key", "k"];
    run.ok_as(None, &[&["save"][..], &args].concat());

    std::fs::remove_dir_all(&inside).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
    std::fs::create_dir_all(inside.join("sub")).unwrap();
    std::fs::write(inside.join("sub/previous"), "previous inside").unwrap();
    awkward_tree(&outside);
    std::fs::write(outside.join("zero-bytes"), "previous outside").unwrap();
    let (before_inside, before_outside) = (snapshot(&inside), snapshot(&outside));

    proxy.faults.down_after_ranges.store(1, Ordering::SeqCst);
    let out = through(&run, &proxy, &[&["restore", "--json"][..], &args].concat());
    let text = stderr(&out);
    assert!(
        out.status.success(),
        "a restore that fails is a miss: {text}"
    );
    assert_eq!(stdout_json(&out)["status"], "miss", "{text}");
    assert!(text.contains("warning: Did not restore `k`"), "{text}");
    assert!(text.contains("could not be reached"), "{text}");
    assert!(proxy.injected().contains(&"down"), "{:?}", proxy.injected());
    assert_same_tree(&before_inside, &snapshot(&inside));
    assert_same_tree(&before_outside, &snapshot(&outside));
    assert_eq!(leftovers(run.sb.ws().as_path()), Vec::<String>::new());
    assert_eq!(leftovers(&run.sb.home()), Vec::<String>::new());
}

/// A real uv cache, filled by uv from the local index, outside the workspace (`~/.cache/uv`)
/// and a project tree inside it go through S3 and come back identical: the cache as
/// `uv cache prune --ci` leaves it (what a save keeps), the project as it was. With the index
/// gone, uv then installs from the restored cache offline.
#[test]
fn a_real_uv_cache_round_trips() {
    let run = S3Run::new("uv-cache");
    let root = run.sb.root();
    let files = uv::fixtures(&root.join("files"), 0);
    let index = Index::start(&files, 0);
    let uv_bin = uv::uv_bin("0.13.9");
    let cache = run.sb.home().join(".cache/uv");
    let venv = root.join("venv");
    let simple = index.simple();
    let uv_in = |cache: &Path| uv::uv(&uv_bin, cache, &simple);
    uv::check(
        uv_in(&cache)
            .args(["venv", "-q", "-p"])
            .arg(uv::python("3.11"))
            .arg(&venv),
    );
    uv::check(
        uv_in(&cache)
            .args(["pip", "install", "-p"])
            .arg(venv.join("bin/python"))
            .args(["purewheel==1.0", "sdistonly==1.0", "cext==1.0"]),
    );
    let project = run.sb.ws().join("project");
    awkward_tree(&project);
    let pruned = root.join("pruned-by-uv");
    uv::copy_tree(&cache, &pruned);
    uv::check(uv_in(&pruned).args(["cache", "prune", "--ci"]));
    let (expected_cache, expected_project) = (snapshot(&pruned), snapshot(&project));
    assert!(
        expected_cache.keys().any(|p| p.contains("cext-1.0-cp311")),
        "uv built no wheel for cext: {:?}",
        expected_cache.keys().take(20).collect::<Vec<_>>()
    );

    let ws = run.sb.ws();
    let args = [
        "--path",
        "project",
        "--path",
        "~/.cache/uv",
        "--key",
        "uv-1",
        "--workspace",
        ws.to_str().unwrap(),
    ];
    let saved = stdout_json(&run.ok_as(
        None,
        &[&["save", "--json", "--prune", "ci"][..], &args].concat(),
    ));
    assert_eq!(saved["status"], "saved", "{saved}");
    drop(index);
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::remove_dir_all(&project).unwrap();
    let restored = stdout_json(&run.ok_as(
        None,
        &[&["restore", "--json", "--no-heal"][..], &args].concat(),
    ));
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&expected_cache, &snapshot(&cache));
    assert_same_tree(&expected_project, &snapshot(&project));

    let offline = root.join("venv-offline");
    uv::check(
        uv_in(&cache)
            .args(["venv", "-q", "--offline", "-p"])
            .arg(uv::python("3.11"))
            .arg(&offline),
    );
    uv::check(
        uv_in(&cache)
            .args(["pip", "install", "--offline", "-p"])
            .arg(offline.join("bin/python"))
            .args(["sdistonly==1.0", "cext==1.0"]),
    );
}

/// `cmd` with nothing in the environment that gives credentials, so only instance metadata at
/// `endpoint` (if any) can.
fn without_credentials(mut cmd: Command, endpoint: Option<&str>) -> Command {
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        cmd.env_remove(name);
    }
    match endpoint {
        Some(endpoint) => cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint),
        None => cmd.env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    };
    cmd
}

/// An EC2 runner with an instance profile and no keys in its environment: the credentials
/// come from instance metadata, IMDSv2 (every request for them carries the session token),
/// and moto, which checks every signature, takes them. They are never printed.
#[test]
fn an_instance_profile_gives_credentials_through_instance_metadata() {
    let run = S3Run::new("instance-profile");
    let imds = InstanceMetadata::start(Some(moto().credentials.clone()));
    let outputs = support::trees::save_and_restore(&run.sb, "from-imds", || {
        without_credentials(run.cmd(None, &moto().credentials), Some(&imds.endpoint()))
    });
    let asked = &imds.asked;
    use std::sync::atomic::Ordering::SeqCst;
    assert!(
        asked.tokens.load(SeqCst) >= 2,
        "a session token per process"
    );
    assert!(
        asked.credentials.load(SeqCst) >= 2,
        "credentials per process"
    );
    assert_eq!(asked.without_token.load(SeqCst), 0, "every ask was IMDSv2");
    for out in &outputs {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(!text.contains(&moto().credentials.secret), "{text}");
        assert!(!text.contains(&moto().credentials.token), "{text}");
    }
}

/// No keys, no web identity and no instance metadata that answers: one line that says what
/// was tried, at once, whether instance metadata is switched off, is some other cloud's
/// (which refuses the token request) or does not answer at all.
#[test]
fn without_any_credentials_one_line_says_what_was_tried() {
    let run = S3Run::new("no-credentials");
    std::fs::create_dir_all(run.sb.ws().join("cache")).unwrap();
    std::fs::write(run.sb.ws().join("cache/f"), "x").unwrap();
    let not_ec2 = InstanceMetadata::start(None);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let cases = [
        (
            "off",
            Some(not_ec2.endpoint()),
            true,
            "instance metadata is off".to_string(),
        ),
        (
            "not EC2",
            Some(not_ec2.endpoint()),
            false,
            format!("instance metadata at `{}` answered 400", not_ec2.endpoint()),
        ),
        (
            "closed",
            Some(closed.clone()),
            false,
            format!("instance metadata at `{closed}` did not answer"),
        ),
    ];
    for (case, endpoint, disabled, expected) in cases {
        let mut cmd = without_credentials(run.cmd(None, &moto().credentials), endpoint.as_deref());
        if disabled {
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let out = cmd
            .args(["save", "--path", "cache", "--key", "k"])
            .output()
            .unwrap();
        let text = stderr(&out);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("no credentials"))
            .collect();
        assert_eq!(lines.len(), 1, "{case}: {text}");
        assert!(lines[0].contains(&expected), "{case}: {text}");
        assert!(text.contains("configure-aws-credentials"), "{case}: {text}");
    }
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(
        not_ec2.asked.tokens.load(SeqCst) + not_ec2.asked.credentials.load(SeqCst),
        0,
        "the stand-in that is not EC2 hands nothing out"
    );
    assert!(moto().objects(&run.bucket).is_empty(), "nothing saved");
}

/// SIGINT while `gc` removes entries from a slow store: it stops between two removals, says
/// how many went, exits 130, and leaves every other entry whole (metadata and archive), so each
/// still restores.
#[test]
fn gc_interrupted_stops_between_removals_and_leaves_the_rest_whole() {
    use std::sync::atomic::Ordering;
    let run = S3Run::new("gc-interrupted");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    let keys: Vec<String> = (0..6).map(|i| format!("entry-{i}")).collect();
    for key in &keys {
        std::fs::write(dir.join("f"), key).unwrap();
        run.ok_as(None, &["save", "--path", "cache", "--key", key]);
    }
    let proxy = support::s3::FaultProxy::start(moto().port);
    // Each removal is three deletes: about 1.2 s per entry.
    proxy.faults.delete_delay_ms.store(400, Ordering::SeqCst);
    let child = run
        .cmd(None, &moto().credentials)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args(["gc", "--max-size", "0", "--grace", "0s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The signal comes once the first entry is gone, so it falls between two removals.
    let metadata_left = || {
        moto()
            .objects(&run.bucket)
            .iter()
            .filter(|o| o.ends_with(".json"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while metadata_left() == keys.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "gc removed nothing in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let text = stderr(&out);
    let said = text
        .lines()
        .find_map(|l| {
            let rest = l.split("removed ").nth(1)?;
            rest.split_whitespace().next()?.parse::<usize>().ok()
        })
        .unwrap_or_else(|| panic!("no count of removed entries: {text}"));
    assert!((1..keys.len()).contains(&said), "{text}");
    assert!(text.contains("the others stay"), "{text}");

    let objects = moto().objects(&run.bucket);
    let left: Vec<&String> = keys
        .iter()
        .filter(|k| objects.iter().any(|o| o.ends_with(&format!("/{k}.json"))))
        .collect();
    assert_eq!(left.len(), keys.len() - said, "{objects:?}");
    for key in left {
        std::fs::remove_dir_all(&dir).unwrap();
        let out = run.ok_as(
            None,
            &["restore", "--json", "--path", "cache", "--key", key],
        );
        assert_eq!(
            stdout_json(&out)["status"],
            "exact",
            "{key}: {}",
            stderr(&out)
        );
        assert_eq!(&std::fs::read_to_string(dir.join("f")).unwrap(), key);
    }
}
