//! The S3 peers: the moto server (`moto[server]` from PyPI) as the object store and the AWS CLI
//! (`awscli` from PyPI) as the other client, both installed by `scripts/install-test-deps.sh`
//! into `.test-deps/s3`.
//!
//! One moto server per test process, on 127.0.0.1 and a free port, started on first use and
//! killed with the process (`PR_SET_PDEATHSIG`). It runs with authentication on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`): the first three requests create an IAM user with a policy
//! and an access key; with that key the harness creates a role and assumes it, so the tests
//! hold temporary credentials (key id, secret, session token) that moto checks on every
//! request, as AWS does. A wrong secret then gets `SignatureDoesNotMatch`, as on AWS.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::gha::{die_with_parent, free_port};

/// Requests moto serves before it checks credentials: create-user, put-user-policy,
/// create-access-key.
const UNAUTHENTICATED_ACTIONS: &str = "3";

/// `.test-deps/s3/bin`, where moto and the AWS CLI live.
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".test-deps/s3/bin")
}

fn require_tools() {
    for tool in ["moto_server", "aws"] {
        let path = tools_dir().join(tool);
        assert!(
            path.exists(),
            "`{}` is missing: the S3 tests need moto and the AWS CLI from PyPI\n\nhint: run `bash scripts/install-test-deps.sh`",
            path.display()
        );
    }
}

/// Temporary credentials moto knows.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: String,
}

/// The running moto server.
pub struct Moto {
    pub port: u16,
    pub credentials: Credentials,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets what `cache-heal` and `aws` need to reach this server with these credentials;
    /// retries are fast so failures do not wait.
    pub fn env(&self, cmd: &mut Command, credentials: &Credentials) {
        cmd.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", &credentials.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.secret)
            .env("AWS_SESSION_TOKEN", &credentials.token)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_REGION")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env("CACHE_HEAL_HTTP_RETRIES", "2")
            .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "10");
    }

    /// `aws ARGS` against this server with the tests' credentials.
    pub fn aws(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tools_dir().join("aws"));
        self.env(&mut cmd, &self.credentials);
        cmd.args(args).output().expect("run aws")
    }

    /// `aws ARGS`, failing the test unless it exits 0; returns stdout.
    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A fresh bucket for one test.
    pub fn bucket(&self, name: &str) -> String {
        self.aws_ok(&["s3api", "create-bucket", "--bucket", name]);
        name.to_string()
    }

    /// Every object name in `bucket`.
    pub fn objects(&self, bucket: &str) -> Vec<String> {
        let text = self.aws_ok(&["s3api", "list-objects-v2", "--bucket", bucket]);
        let listing: serde_json::Value = if text.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&text).unwrap()
        };
        let mut names: Vec<String> = listing["Contents"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|o| o["Key"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        let text = self.aws_ok(&["s3api", "list-multipart-uploads", "--bucket", bucket]);
        if text.trim().is_empty() {
            return 0;
        }
        let listing: serde_json::Value = serde_json::from_str(&text).unwrap();
        listing["Uploads"].as_array().map_or(0, Vec::len)
    }
}

/// The moto server of this test process, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

fn start_moto() -> Moto {
    require_tools();
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    // The child dies with the thread that spawned it, so that thread lives as long as the
    // process: moto stops when the tests do, however they end.
    std::thread::spawn(move || {
        let mut cmd = Command::new(tools_dir().join("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", UNAUTHENTICATED_ACTIONS)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        match cmd.spawn() {
            Ok(_child) => {
                let _ = tx.send(Ok(()));
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(format!("starting moto_server: {e}")));
            }
        }
    });
    rx.recv().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not listen on 127.0.0.1:{port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let anyone = Credentials {
        key_id: "bootstrap".into(),
        secret: "bootstrap".into(),
        token: String::new(),
    };
    let mut moto = Moto {
        port,
        credentials: anyone,
    };
    let run = |moto: &Moto, args: &[&str]| -> serde_json::Value {
        let mut cmd = Command::new(tools_dir().join("aws"));
        moto.env(&mut cmd, &moto.credentials);
        if moto.credentials.token.is_empty() {
            cmd.env_remove("AWS_SESSION_TOKEN");
        }
        let out = cmd.args(args).output().expect("run aws");
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    };
    let allow_all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    run(&moto, &["iam", "create-user", "--user-name", "ci"]);
    run(
        &moto,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "ci",
            "--policy-name",
            "all",
            "--policy-document",
            allow_all,
        ],
    );
    let key = run(&moto, &["iam", "create-access-key", "--user-name", "ci"]);
    moto.credentials = Credentials {
        key_id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
        secret: key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
        token: String::new(),
    };
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    let role = run(
        &moto,
        &[
            "iam",
            "create-role",
            "--role-name",
            "cache",
            "--assume-role-policy-document",
            trust,
        ],
    );
    run(
        &moto,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "cache",
            "--policy-name",
            "all",
            "--policy-document",
            allow_all,
        ],
    );
    let assumed = run(
        &moto,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            role["Role"]["Arn"].as_str().unwrap(),
            "--role-session-name",
            "cache-heal-tests",
        ],
    );
    let c = &assumed["Credentials"];
    moto.credentials = Credentials {
        key_id: c["AccessKeyId"].as_str().unwrap().into(),
        secret: c["SecretAccessKey"].as_str().unwrap().into(),
        token: c["SessionToken"].as_str().unwrap().into(),
    };
    moto
}
