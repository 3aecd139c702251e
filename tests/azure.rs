//! `--store az://…` against a real Azure Blob service (Azurite, which checks Shared Key
//! signatures and SAS expiry) and a real peer client (Microsoft's `@azure/storage-blob`):
//! round trips, what a peer reads, GitHub's scopes, first-wins publishing, clear failures, and
//! no credential in any output. The store's code is the S3 store's (`src/store/object.rs`);
//! these tests show it holds on Azure too, with each way of passing credentials.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use std::process::{Command, Output, Stdio};
use support::azure::{self, blobs, uncommitted};
use support::trees::{awkward_tree, incompressible};
use support::{Sandbox, assert_same_tree, snapshot, stderr, stdout_json};

/// How a run passes its credentials.
#[derive(Clone, Debug)]
enum Credential {
    /// `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`, endpoint from `CACHE_HEAL_AZ_ENDPOINT`.
    Key(String),
    /// `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_SAS_TOKEN`, endpoint from `--az-endpoint`
    /// (see [`AzRun::run_with`]).
    Sas(String),
    /// `AZURE_STORAGE_CONNECTION_STRING`, beside a wrong `AZURE_STORAGE_KEY`.
    Connection(String),
}

fn good_key() -> Credential {
    Credential::Key(azure::key().to_string())
}

/// A key of the right shape that is not the account's.
fn wrong_key() -> String {
    azure::key().replace('E', "F")
}

/// What a run must not inherit from the environment the tests run in: GitHub's run context,
/// and every variable that names an Azure account or gives a credential.
const INHERITED: [&str; 14] = [
    "GITHUB_REF",
    "GITHUB_BASE_REF",
    "GITHUB_EVENT_PATH",
    "GITHUB_EVENT_NAME",
    "CACHE_HEAL_SCOPE",
    "CACHE_HEAL_AZ_ENDPOINT",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
];

/// A test's view of the service: a sandbox whose `cache-heal` talks to one container.
struct AzRun {
    sb: Sandbox,
    container: String,
}

impl AzRun {
    fn new(container: &str) -> Self {
        Self {
            sb: Sandbox::new(),
            container: azure::container(container),
        }
    }

    fn store(&self) -> String {
        format!("az://{}/ci", self.container)
    }

    /// `cache-heal` on this container, outside GitHub Actions unless `git_ref` is given.
    fn cmd(&self, git_ref: Option<(&str, Option<&str>)>, credential: &Credential) -> Command {
        let mut cmd = self.sb.cmd();
        cmd.env("CACHE_HEAL_STORE", self.store())
            .env("CACHE_HEAL_HTTP_RETRIES", "2")
            .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "10");
        for name in INHERITED {
            cmd.env_remove(name);
        }
        match credential {
            Credential::Key(key) => {
                cmd.env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
                    .env("AZURE_STORAGE_KEY", key)
                    .env("CACHE_HEAL_AZ_ENDPOINT", azure::endpoint());
            }
            Credential::Sas(sas) => {
                cmd.env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
                    .env("AZURE_STORAGE_SAS_TOKEN", sas)
                    .env("CACHE_HEAL_AZ_ENDPOINT", azure::endpoint());
            }
            Credential::Connection(text) => {
                // What the connection string gives wins: a wrong key beside it is not used.
                cmd.env("AZURE_STORAGE_CONNECTION_STRING", text)
                    .env("AZURE_STORAGE_KEY", wrong_key());
            }
        }
        if let Some((git_ref, base)) = git_ref {
            cmd.env("GITHUB_REF", git_ref);
            if let Some(base) = base {
                cmd.env("GITHUB_BASE_REF", base);
            }
        }
        cmd
    }

    /// Runs `cache-heal ARGS`; a SAS run names the endpoint with `--az-endpoint` (after the
    /// subcommand, where the store's flags are) instead of `CACHE_HEAL_AZ_ENDPOINT`.
    fn run_with(
        &self,
        git_ref: Option<(&str, Option<&str>)>,
        credential: &Credential,
        args: &[&str],
    ) -> Output {
        let mut cmd = self.cmd(git_ref, credential);
        cmd.arg(args[0]);
        if let Credential::Sas(_) = credential {
            cmd.env_remove("CACHE_HEAL_AZ_ENDPOINT")
                .args(["--az-endpoint", &azure::endpoint()]);
        }
        cmd.args(&args[1..]).output().expect("run cache-heal")
    }

    fn ok_with(
        &self,
        git_ref: Option<(&str, Option<&str>)>,
        credential: &Credential,
        args: &[&str],
    ) -> Output {
        let out = self.run_with(git_ref, credential, args);
        assert!(
            out.status.success(),
            "cache-heal {args:?} failed: {}\n{}",
            out.status,
            stderr(&out)
        );
        out
    }

    fn ok_as(&self, git_ref: Option<(&str, Option<&str>)>, args: &[&str]) -> Output {
        self.ok_with(git_ref, &good_key(), args)
    }
}

/// The archive blobs in a container (not the metadata).
fn archives(blobs: &[String]) -> Vec<&String> {
    blobs.iter().filter(|b| b.contains("/archives/")).collect()
}

/// The saved tree restores identically, both the path inside the workspace and the one
/// outside it; and the archive blob, downloaded with `@azure/storage-blob` and unpacked with
/// GNU `zstd -d | tar -x` as actions/cache does, gives the same trees too. The archive spans
/// several blocks, committed once: nothing uncommitted is left.
#[test]
fn round_trip_and_a_peer_reads_the_archive() {
    let run = AzRun::new("round-trip");
    let inside = run.sb.ws().join("data");
    let outside = run.sb.home().join(".cache/uv");
    awkward_tree(&inside);
    awkward_tree(&outside);
    incompressible(&inside.join("big"), 20);
    let (before_inside, before_outside) = (snapshot(&inside), snapshot(&outside));
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
    let names = blobs(&run.container);
    let archive = archives(&names);
    assert_eq!(archive.len(), 1, "{names:?}");
    assert!(
        names
            .iter()
            .any(|b| b.starts_with("ci/local/") && b.ends_with("/tree-1.json")),
        "{names:?}"
    );
    assert_eq!(uncommitted(&run.container), Vec::<String>::new());

    std::fs::remove_dir_all(&inside).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
    let restored = stdout_json(&run.ok_as(None, &[&["restore", "--json"][..], &args].concat()));
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&before_inside, &snapshot(&inside));
    assert_same_tree(&before_outside, &snapshot(&outside));

    let peer = Sandbox::new();
    let file = peer.root().join("cache.tzst");
    azure::download(&run.container, archive[0], &file);
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

/// GitHub's scopes, with a connection string that carries a SAS: a pull request restores
/// `main`'s entry, its own save of the same key goes into its own scope and leaves `main`'s
/// alone, and what it saves is invisible to `main`; `inspect` lists each entry's scope.
#[test]
fn scopes_keep_pull_requests_from_main() {
    let run = AzRun::new("scopes");
    let connection = Credential::Connection(format!(
        "BlobEndpoint={};SharedAccessSignature={}",
        azure::endpoint(),
        azure::sas(&run.container, 60)
    ));
    let main = Some(("refs/heads/main", None));
    let pr = Some(("refs/pull/7/merge", Some("main")));
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    let content = || std::fs::read_to_string(dir.join("who")).unwrap();
    let json = |git_ref, command: &str, key: &str| {
        let args = [command, "--json", "--path", "cache", "--key", key];
        stdout_json(&run.ok_with(git_ref, &connection, &args))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };

    std::fs::write(dir.join("who"), "main").unwrap();
    assert_eq!(json(main, "save", "k"), "saved");

    std::fs::write(dir.join("who"), "nothing yet").unwrap();
    assert_eq!(json(pr, "restore", "k"), "exact");
    assert_eq!(content(), "main");

    std::fs::write(dir.join("who"), "pr").unwrap();
    assert_eq!(json(pr, "save", "k"), "saved");
    assert_eq!(json(main, "restore", "k"), "exact");
    assert_eq!(content(), "main", "the pull request replaced main's entry");
    assert_eq!(json(pr, "restore", "k"), "exact");
    assert_eq!(
        content(),
        "pr",
        "the pull request reads its own scope first"
    );

    std::fs::write(dir.join("who"), "pr only").unwrap();
    assert_eq!(json(pr, "save", "pr-only"), "saved");
    assert_eq!(json(main, "restore", "pr-only"), "miss");

    let listed = stdout_json(&run.ok_with(None, &connection, &["inspect", "--json"]));
    let mut seen: Vec<(String, String)> = listed["entries"]
        .as_array()
        .expect("entries")
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
    let human =
        String::from_utf8_lossy(&run.ok_with(None, &connection, &["inspect"]).stdout).into_owned();
    assert!(human.contains("scope: `refs/pull/7/merge`"), "{human}");
}

/// Two processes saving one key at once, with a SAS: one entry, one "already exists" (the
/// metadata blob is created with `If-None-Match: *`), both exit 0, and no archive of the loser
/// left behind.
#[test]
fn two_concurrent_saves_of_one_key_publish_one_entry() {
    let run = AzRun::new("concurrent");
    let sas = Credential::Sas(azure::sas(&run.container, 60));
    let children: Vec<_> = (0..2)
        .map(|n| {
            let ws = run.sb.root().join(format!("ws{n}"));
            incompressible(&ws.join("cache"), 12);
            let mut cmd = run.cmd(None, &sas);
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
    let names = blobs(&run.container);
    assert_eq!(archives(&names).len(), 1, "{names:?}");
    assert_eq!(
        names.iter().filter(|b| b.ends_with(".json")).count(),
        1,
        "{names:?}"
    );
}

/// Lines of stderr that name the store and say `what`.
fn lines_saying<'a>(text: &'a str, store: &str, what: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.contains(store) && l.contains(what))
        .collect()
}

/// A missing container, a wrong key and an expired SAS each give one line naming the store
/// and what to check; the restore is a miss and the save is not saved, and all exit 0.
#[test]
fn missing_container_wrong_key_and_expired_sas_say_what_to_check() {
    let run = AzRun::new("failures");
    std::fs::create_dir_all(run.sb.ws().join("cache")).unwrap();
    std::fs::write(run.sb.ws().join("cache/f"), "x").unwrap();
    let args = ["--json", "--path", "cache", "--key", "k"];

    let mut cmd = run.cmd(None, &good_key());
    let out = cmd
        .env("CACHE_HEAL_STORE", "az://no-such-container/ci")
        .args([&["restore"][..], &args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "miss");
    let text = stderr(&out);
    let lines = lines_saying(
        &text,
        "az://no-such-container/ci",
        "the container does not exist",
    );
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("check the container name"), "{text}");

    let wrong_key = Credential::Key(wrong_key());
    let expired = Credential::Sas(azure::sas(&run.container, -10));
    for (credential, names) in [
        (&wrong_key, "`AZURE_STORAGE_KEY`"),
        (&expired, "a SAS past its expiry time"),
    ] {
        for command in ["restore", "save"] {
            let out = run.run_with(None, credential, &[&[command][..], &args].concat());
            assert!(out.status.success(), "{command}: {}", stderr(&out));
            let report = stdout_json(&out);
            let expected = if command == "save" {
                "not-saved"
            } else {
                "miss"
            };
            assert_eq!(report["status"], expected, "{report}");
            let text = stderr(&out);
            let lines = lines_saying(&text, &run.store(), "refused the credentials");
            assert_eq!(lines.len(), 1, "{credential:?} {command}: {text}");
            assert!(lines[0].contains(names), "{text}");
        }
    }
    assert_eq!(blobs(&run.container), Vec::<String>::new());
}

/// Nothing cache-heal prints, in any outcome, holds the account key or a SAS signature: with
/// a key, a connection string, a good SAS, a wrong key and an expired SAS.
#[test]
fn no_credential_in_any_output() {
    let run = AzRun::new("secrets");
    awkward_tree(&run.sb.ws().join("cache"));
    let sas = azure::sas(&run.container, 60);
    let expired = azure::sas(&run.container, -10);
    let wrong_key = wrong_key();
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint={}",
        azure::key(),
        azure::endpoint()
    );
    let signature = |sas: &str| {
        sas.split('&')
            .find_map(|p| p.strip_prefix("sig="))
            .expect("a SAS has a signature")
            .to_string()
    };
    let secrets = [
        azure::key().to_string(),
        wrong_key.clone(),
        signature(&sas),
        signature(&expired),
    ];
    let credentials = [
        good_key(),
        Credential::Connection(connection),
        Credential::Sas(sas.clone()),
        Credential::Key(wrong_key.clone()),
        Credential::Sas(expired.clone()),
    ];
    let mut outputs = Vec::new();
    for credential in &credentials {
        for json in [false, true] {
            for command in ["save", "restore", "inspect"] {
                let mut all: Vec<&str> = vec![command];
                if json {
                    all.push("--json");
                }
                if command != "inspect" {
                    all.extend(["--path", "cache", "--key", "k"]);
                }
                let out = run.run_with(None, credential, &all);
                outputs.push((format!("{credential:?} {}", all.join(" ")), out));
            }
        }
    }
    for (what, out) in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in &secrets {
            // The signature may appear percent-encoded or not.
            let decoded = secret
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "=");
            assert!(
                !text.contains(secret.as_str()) && !text.contains(&decoded),
                "`{what}` printed a credential:\n{text}"
            );
        }
    }
    // The good runs saved and restored; the bad ones did fail (so error paths were covered).
    assert!(
        outputs
            .iter()
            .any(|(_, out)| String::from_utf8_lossy(&out.stdout).contains("\"exact\""))
    );
    let refused = outputs
        .iter()
        .filter(|(_, out)| stderr(out).contains("refused the credentials"))
        .count();
    assert!(refused >= 8, "{refused} runs were refused");
}

/// A save whose archive cannot be committed (Put Block List fails past the retries) is a
/// warning and no entry: its blocks stay uncommitted (Azure drops them after seven days),
/// nothing is listed, the next restore is a miss, and the next save of the key succeeds.
#[test]
fn a_save_that_cannot_commit_leaves_no_entry() {
    let run = AzRun::new("abandoned");
    let proxy = azure::FaultProxy::start();
    incompressible(&run.sb.ws().join("cache"), 8);
    proxy
        .faults
        .fail_block_lists
        .store(10, std::sync::atomic::Ordering::SeqCst);
    let args = ["--json", "--path", "cache", "--key", "k"];
    let out = run
        .cmd(None, &good_key())
        .env("CACHE_HEAL_AZ_ENDPOINT", proxy.endpoint())
        .args([&["save"][..], &args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "not-saved", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the Azure Blob service failed the request"),
        "{}",
        stderr(&out)
    );
    assert_eq!(blobs(&run.container), Vec::<String>::new());
    let left = uncommitted(&run.container);
    assert_eq!(archives(&left).len(), 1, "{left:?}");

    let restored = stdout_json(&run.ok_as(None, &[&["restore"][..], &args].concat()));
    assert_eq!(restored["status"], "miss", "{restored}");
    let saved = stdout_json(&run.ok_as(None, &[&["save"][..], &args].concat()));
    assert_eq!(saved["status"], "saved", "{saved}");
    assert_eq!(
        blobs(&run.container)
            .iter()
            .filter(|b| b.ends_with("/k.json"))
            .count(),
        1
    );
}

/// A service that is not there: the restore is a clean miss with a warning, the save a
/// warning; both exit 0 and nothing local changes.
#[test]
fn a_service_that_is_gone_is_a_clean_miss() {
    let run = AzRun::new("gone");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "previous").unwrap();
    let port = support::gha::free_port();
    for command in ["restore", "save"] {
        let out = run
            .cmd(None, &good_key())
            .env(
                "CACHE_HEAL_AZ_ENDPOINT",
                format!("http://127.0.0.1:{port}/devstoreaccount1"),
            )
            .args([command, "--json", "--path", "cache", "--key", "k"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("the Azure Blob service could not be reached"),
            "{command}: {text}"
        );
    }
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "previous");
}

/// Workload identity is read (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
/// `AZURE_FEDERATED_TOKEN_FILE`): a token file that is not there is a warning that says so
/// (no token request is sent; the authority points at a closed local port all the same).
/// With no credential at all, and no `az` on `PATH`, the command fails naming what to set.
#[test]
fn workload_identity_is_read_and_no_credentials_say_what_to_set() {
    let run = AzRun::new("identity");
    std::fs::create_dir_all(run.sb.ws().join("cache")).unwrap();
    std::fs::write(run.sb.ws().join("cache/f"), "x").unwrap();
    let args = ["save", "--json", "--path", "cache", "--key", "k"];
    let closed = support::gha::free_port();
    let out = run
        .cmd(None, &good_key())
        .env_remove("AZURE_STORAGE_KEY")
        .env("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
        .env("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000002")
        .env(
            "AZURE_FEDERATED_TOKEN_FILE",
            run.sb.root().join("no-such-token"),
        )
        .env("AZURE_AUTHORITY_HOST", format!("http://127.0.0.1:{closed}"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "not-saved");
    let text = stderr(&out);
    let lines = lines_saying(&text, &run.store(), "refused the credentials");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("FederatedTokenFileUnreadable"), "{text}");

    let no_az = tempfile::tempdir().unwrap();
    let out = run
        .cmd(None, &good_key())
        .env_remove("AZURE_STORAGE_KEY")
        .env("PATH", no_az.path())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("no credentials"), "{text}");
    for name in [
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_FEDERATED_TOKEN_FILE",
        "azure/login",
    ] {
        assert!(text.contains(name), "{name}: {text}");
    }
}

/// Keys with `/`, spaces, `%` and non-ASCII letters round trip, and match as prefixes, in
/// blob names as they do in S3 object names.
#[test]
fn awkward_keys_round_trip_and_match_as_prefixes() {
    let run = AzRun::new("keys");
    let dir = run.sb.ws().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    let key = "deps/Linux x64 100%-ключ-ü";
    std::fs::write(dir.join("who"), key).unwrap();
    run.ok_as(None, &["save", "--path", "cache", "--key", key]);
    std::fs::write(dir.join("who"), "nothing").unwrap();
    let restored = stdout_json(&run.ok_as(
        None,
        &[
            "restore",
            "--json",
            "--path",
            "cache",
            "--key",
            "deps/other",
            "--restore-key",
            "deps/Linux x64 100%-клю",
        ],
    ));
    assert_eq!(restored["status"], "partial", "{restored}");
    assert_eq!(restored["matched_key"], key);
    assert_eq!(std::fs::read_to_string(dir.join("who")).unwrap(), key);
    let listed = stdout_json(&run.ok_as(None, &["inspect", "--json"]));
    assert_eq!(listed["entries"][0]["key"], key, "{listed}");
}

/// Azure's throttling (503 `ServerBusy`) on blocks and on ranged GETs, and a range whose body
/// breaks off, are retried: the save and the restore succeed and the tree is right.
#[test]
fn server_busy_and_broken_ranges_are_retried() {
    use std::sync::atomic::Ordering;
    let run = AzRun::new("faults");
    let proxy = azure::FaultProxy::start();
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 20);
    let before = snapshot(&dir);
    let through_proxy = |args: &[&str]| {
        let out = run
            .cmd(None, &good_key())
            .env("CACHE_HEAL_AZ_ENDPOINT", proxy.endpoint())
            .env("CACHE_HEAL_HTTP_RETRIES", "4")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout_json(&out)
    };
    proxy.faults.busy_blocks.store(2, Ordering::SeqCst);
    let saved = through_proxy(&["save", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(saved["status"], "saved", "{saved}");
    assert_eq!(proxy.injected(), ["ServerBusy block", "ServerBusy block"]);

    std::fs::remove_dir_all(&dir).unwrap();
    proxy.faults.busy_ranges.store(2, Ordering::SeqCst);
    proxy.faults.cut_ranges.store(1, Ordering::SeqCst);
    let restored = through_proxy(&["restore", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(restored["status"], "exact", "{restored}");
    assert_same_tree(&before, &snapshot(&dir));
    let injected = proxy.injected();
    assert_eq!(injected.len(), 5, "{injected:?}");
    assert!(injected.contains(&"cut range"), "{injected:?}");
}

/// The conditional create of the metadata: when another writer creates it between our check
/// and our create (the proxy sends our create twice), Azurite answers 409 and the save says
/// "already exists", exits 0 and deletes its own archive. The entry the "other writer" made
/// names that deleted archive, so the next restore is a warned miss, not an error.
#[test]
fn a_create_that_loses_the_race_is_already_exists() {
    use std::sync::atomic::Ordering;
    let run = AzRun::new("lost-race");
    let proxy = azure::FaultProxy::start();
    let dir = run.sb.ws().join("cache");
    incompressible(&dir, 2);
    let through_proxy = |args: &[&str]| {
        let out = run
            .cmd(None, &good_key())
            .env("CACHE_HEAL_AZ_ENDPOINT", proxy.endpoint())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    proxy.faults.lose_creates.store(1, Ordering::SeqCst);
    let saved = stdout_json(&through_proxy(&[
        "save", "--json", "--path", "cache", "--key", "k",
    ]));
    assert_eq!(proxy.injected(), ["lost create"]);
    assert_eq!(saved["status"], "exists", "{saved}");
    let names = blobs(&run.container);
    assert_eq!(archives(&names), Vec::<&String>::new(), "{names:?}");
    assert_eq!(names.len(), 1, "{names:?}");

    let out = through_proxy(&["restore", "--json", "--path", "cache", "--key", "k"]);
    assert_eq!(stdout_json(&out)["status"], "miss");
    let text = stderr(&out);
    assert!(text.contains("the entry is damaged"), "{text}");
    assert!(text.contains("the object is gone"), "{text}");
}

/// `cache-heal` on `container` of the HTTPS + OAuth Azurite, with nothing in the environment
/// that gives a key, a SAS or workload identity, trusting the test CA, managed identity asked
/// at `msi_endpoint`, and `path` as all of `PATH`.
fn token_cmd(sb: &Sandbox, container: &str, msi_endpoint: &str, path: &std::ffi::OsStr) -> Command {
    let azurite = azure::azurite_oauth();
    let mut cmd = sb.cmd();
    for name in INHERITED.iter().chain(&["SSL_CERT_DIR"]) {
        cmd.env_remove(name);
    }
    cmd.env("CACHE_HEAL_STORE", format!("az://{container}/ci"))
        .env("CACHE_HEAL_AZ_ENDPOINT", azurite.endpoint())
        .env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
        .env("SSL_CERT_FILE", &azurite.ca)
        .env("AZURE_MSI_ENDPOINT", msi_endpoint)
        .env("PATH", path)
        .env("CACHE_HEAL_HTTP_RETRIES", "2")
        .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "10");
    cmd
}

/// A fake `az` in `dir` that logs its arguments to `dir/az.log` and prints `token` as
/// `az account get-access-token --output json` does, valid for an hour.
fn fake_az(dir: &std::path::Path, token: &str) {
    let script = dir.join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nprintf '{{\"accessToken\":\"%s\",\"expiresOn\":\"%s\",\"tokenType\":\"Bearer\"}}\\n' '{token}' \"$(date -d '+1 hour' '+%Y-%m-%d %H:%M:%S.000000')\"\n",
            dir.join("az.log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// With no key or SAS, on a machine without a managed identity (instance metadata answers
/// 400), the Azure CLI's login (what `azure/login` leaves) gives the token, over HTTPS to an
/// Azurite that checks bearer tokens; a token for another audience is refused, in one line.
#[test]
fn an_azure_cli_login_gives_a_token() {
    let container = azure::azurite_oauth().container("az-cli");
    let sb = Sandbox::new();
    let no_identity = azure::ManagedIdentity::start(None);
    let bin = tempfile::tempdir().unwrap();
    fake_az(
        bin.path(),
        &azure::storage_token("https://storage.azure.com"),
    );
    let path = std::env::join_paths([
        bin.path(),
        std::path::Path::new("/usr/bin"),
        std::path::Path::new("/bin"),
    ])
    .unwrap();
    support::trees::save_and_restore(&sb, "from-az", || {
        token_cmd(&sb, &container, &no_identity.endpoint(), &path)
    });
    let log = std::fs::read_to_string(bin.path().join("az.log")).unwrap();
    assert!(log.contains("account get-access-token"), "{log}");
    assert!(log.contains("https://storage.azure.com"), "{log}");

    fake_az(
        bin.path(),
        &azure::storage_token("https://management.azure.com"),
    );
    let out = token_cmd(&sb, &container, &no_identity.endpoint(), &path)
        .args(["restore", "--json", "--path", "cache", "--key", "from-az"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "miss");
    let text = stderr(&out);
    let store = format!("az://{container}/ci");
    let lines = lines_saying(&text, &store, "refused the credentials");
    assert_eq!(lines.len(), 1, "{text}");
}

/// A VM or scale set with a managed identity: with no key, SAS or `az`, the token comes from
/// instance metadata (a stand-in, asked with `Metadata: true` for Azure Storage), and Azurite
/// takes it. Without an identity (400) one line says what was tried.
#[test]
fn a_managed_identity_gives_a_token_through_instance_metadata() {
    use std::sync::atomic::Ordering::SeqCst;
    let container = azure::azurite_oauth().container("managed-identity");
    let sb = Sandbox::new();
    let token = azure::storage_token("https://storage.azure.com");
    let identity = azure::ManagedIdentity::start(Some(token.clone()));
    let no_az = tempfile::tempdir().unwrap();
    let outputs = support::trees::save_and_restore(&sb, "from-msi", || {
        token_cmd(
            &sb,
            &container,
            &identity.endpoint(),
            no_az.path().as_os_str(),
        )
    });
    assert!(identity.asked.tokens.load(SeqCst) >= 2, "asked per process");
    assert_eq!(identity.asked.malformed.load(SeqCst), 0);
    for out in &outputs {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(!text.contains(&token), "{text}");
    }

    let no_identity = azure::ManagedIdentity::start(None);
    let out = token_cmd(
        &sb,
        &container,
        &no_identity.endpoint(),
        no_az.path().as_os_str(),
    )
    .args(["save", "--path", "cache", "--key", "k"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no credentials"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains(&format!(
            "managed identity at `{}` answered 400",
            no_identity.endpoint()
        )),
        "{text}"
    );
}

/// Workload identity (AKS, or GitHub OIDC set up by hand): the federated token in
/// `AZURE_FEDERATED_TOKEN_FILE` is traded at Entra ID (a stand-in at `AZURE_AUTHORITY_HOST`)
/// for a token Azurite takes, over HTTPS; neither token is printed.
#[test]
fn workload_identity_trades_the_federated_token_at_entra_id() {
    use std::sync::atomic::Ordering::SeqCst;
    let container = azure::azurite_oauth().container("workload-identity");
    let sb = Sandbox::new();
    let (tenant, client) = (
        "ab1f708d-50f6-404c-a006-d71b2ac7a606",
        "11111111-2222-3333-4444-555555555555",
    );
    let assertion = "federated.oidc.token-for-tests";
    let token_file = sb.root().join("federated-token");
    std::fs::write(&token_file, assertion).unwrap();
    let token = azure::storage_token("https://storage.azure.com");
    let entra = azure::EntraId::start(tenant, client, assertion, &token);
    let no_identity = azure::ManagedIdentity::start(None);
    let no_az = tempfile::tempdir().unwrap();
    let outputs = support::trees::save_and_restore(&sb, "from-workload-identity", || {
        let mut cmd = token_cmd(
            &sb,
            &container,
            &no_identity.endpoint(),
            no_az.path().as_os_str(),
        );
        cmd.env("AZURE_CLIENT_ID", client)
            .env("AZURE_TENANT_ID", tenant)
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
            .env("AZURE_AUTHORITY_HOST", entra.authority_host());
        cmd
    });
    assert!(entra.asked.tokens.load(SeqCst) >= 2, "a token per process");
    assert_eq!(entra.asked.malformed.load(SeqCst), 0);
    assert_eq!(
        no_identity.asked.requests.load(SeqCst),
        0,
        "managed identity not asked"
    );
    for out in &outputs {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(
            !text.contains(&token) && !text.contains(assertion),
            "{text}"
        );
    }
}
