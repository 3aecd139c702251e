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
//!
//! [`FaultProxy`] sits between `cache-heal` and moto and injects what S3 throws in production,
//! each switch a counter of the next N requests it hits:
//!
//! - `slow_down_parts`: part uploads (`PUT …?partNumber=…`) answer 503 `SlowDown`;
//! - `slow_down_ranges`: ranged GETs answer 503 `SlowDown`;
//! - `cut_ranges`: ranged GETs send half their body, then reset the connection;
//! - `short_ranges`: ranged GETs answer with half their body, as a complete response (its
//!   `Content-Length` says half), so only counting the bytes tells;
//! - `fail_parts`: part uploads answer 500 `InternalError`;
//! - `reset_parts`: part uploads are read halfway, then the connection drops with no answer;
//! - `delete_delay_ms`: every delete (a DELETE, or DeleteObjects) waits that long first: a
//!   slow store, for `gc`.
//!
//! And it can play a server that is gone: while `down` is set every request loses its
//! connection with no answer (moto never sees it); `down_after_parts` and `down_after_ranges`
//! set `down` once that many more part uploads or ranged GETs arrived, so the server goes
//! away in the middle of a transfer. `spare_aborts` lets aborting a multipart upload through
//! while down, as a server back in time for it.
//!
//! It forwards the `Host` header as it came, so moto checks the client's own signature.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::gha::{answer, cut_off, die_with_parent, free_port, send_upstream, take};
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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

/// The fault switches of a [`FaultProxy`]; see the module doc.
#[derive(Default)]
pub struct S3Faults {
    pub slow_down_parts: AtomicU32,
    /// Milliseconds every DELETE waits before it goes through: a slow store for `gc`.
    pub delete_delay_ms: AtomicU32,
    pub slow_down_ranges: AtomicU32,
    pub cut_ranges: AtomicU32,
    pub fail_parts: AtomicU32,
    pub short_ranges: AtomicU32,
    pub reset_parts: AtomicU32,
    pub down: AtomicBool,
    pub down_after_parts: AtomicU32,
    pub down_after_ranges: AtomicU32,
    pub spare_aborts: AtomicBool,
    /// What was injected, in order: `SlowDown part`, `SlowDown range`, `cut range`, …
    pub injected: Mutex<Vec<&'static str>>,
}

struct ProxyState {
    faults: Arc<S3Faults>,
    upstream: u16,
    http: reqwest::Client,
}

/// A proxy in front of moto that injects faults. Stops when dropped.
pub struct FaultProxy {
    pub faults: Arc<S3Faults>,
    served: super::served::Served,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = super::served::Served::listener();
        let faults = Arc::new(S3Faults::default());
        let state = Arc::new(ProxyState {
            faults: Arc::clone(&faults),
            upstream,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        });
        let app = Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state);
        Self {
            faults,
            served: super::served::Served::start(listener, app),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.served.port)
    }

    pub fn injected(&self) -> Vec<&'static str> {
        self.faults.injected.lock().unwrap().clone()
    }
}

fn slow_down() -> Response {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/xml".parse().unwrap());
    response
}

/// Counts down one transfer of an armed `down_after_*` switch; the last one takes the server
/// down.
fn count_down(counter: &AtomicU32, down: &AtomicBool) {
    let before = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if before == Ok(1) {
        down.store(true, Ordering::SeqCst);
    }
}

/// A connection that breaks before any answer: the response body fails before its head is
/// written, so the client sees the connection close (a reset, with the request unread).
fn dropped() -> Response {
    let failed: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fault: connection dropped",
    ))];
    Response::new(axum::body::Body::from_stream(futures_util::stream::iter(
        failed,
    )))
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let query = uri.query().unwrap_or("");
    let is_part = method == Method::PUT && query.contains("partNumber=");
    let is_range = method == Method::GET && headers.contains_key("range");
    let is_abort = method == Method::DELETE && query.contains("uploadId=");
    let faults = &state.faults;
    let note = |what| faults.injected.lock().unwrap().push(what);
    if faults.down.load(Ordering::SeqCst)
        && !(is_abort && faults.spare_aborts.load(Ordering::SeqCst))
    {
        note("down");
        return dropped();
    }
    // Counted as they arrive: the one that takes the server down still goes through.
    if is_part {
        count_down(&faults.down_after_parts, &faults.down);
    }
    if is_range {
        count_down(&faults.down_after_ranges, &faults.down);
    }
    if is_part && take(&faults.reset_parts) {
        note("reset part");
        let half = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(0)
            / 2;
        let mut stream = body.into_data_stream();
        let mut read = 0;
        while read < half {
            match futures_util::StreamExt::next(&mut stream).await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        return dropped();
    }
    // Read whole before any answer, as a server does: an answer to a request still being sent
    // would break the connection instead of saying what it says.
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return dropped();
    };
    if is_part && take(&faults.slow_down_parts) {
        note("SlowDown part");
        return slow_down();
    }
    if is_part && take(&faults.fail_parts) {
        note("InternalError part");
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    if is_range && take(&faults.slow_down_ranges) {
        note("SlowDown range");
        return slow_down();
    }
    let delay = faults.delete_delay_ms.load(Ordering::SeqCst);
    // object_store deletes with DeleteObjects (`POST /BUCKET?delete`), even one object.
    let is_delete = method == Method::DELETE || (method == Method::POST && query == "delete");
    if is_delete && delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay.into())).await;
    }
    let target = match uri.query() {
        Some(query) => format!("http://127.0.0.1:{}{}?{query}", state.upstream, uri.path()),
        None => format!("http://127.0.0.1:{}{}", state.upstream, uri.path()),
    };
    let mut request = state.http.request(method.clone(), target).body(body);
    for (name, value) in &headers {
        // `host` goes through as it came: it is part of the signature moto checks.
        if matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            continue;
        }
        request = request.header(name, value);
    }
    let (status, mut out_headers, mut bytes) = match send_upstream(request).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if is_range && status.is_success() {
        if take(&faults.cut_ranges) {
            note("cut range");
            let half = bytes.len() / 2;
            return cut_off(status, out_headers, bytes, half);
        }
        if take(&faults.short_ranges) {
            note("short range");
            bytes.truncate(bytes.len() / 2);
            out_headers.insert("content-length", bytes.len().into());
        }
    }
    answer(status, out_headers, bytes)
}

/// The session token the [`InstanceMetadata`] stand-in hands out and then asks for.
const IMDS_SESSION: &str = "imds-session-for-tests";
/// The role name the stand-in reports, as an instance profile's.
const IMDS_ROLE: &str = "runner-role";

/// What an [`InstanceMetadata`] stand-in was asked.
#[derive(Default)]
pub struct ImdsAsked {
    /// IMDSv2 session token requests (`PUT /latest/api/token`).
    pub tokens: AtomicU32,
    /// Credential requests that carried the session token.
    pub credentials: AtomicU32,
    /// Requests for the role or its credentials without the session token (IMDSv1).
    pub without_token: AtomicU32,
}

/// A stand-in for EC2 instance metadata (IMDSv2) on 127.0.0.1, handing out `credentials` as an
/// instance profile's. There is no EC2 here, and moto's own emulation answers only requests
/// addressed to the host `169.254.169.254`. Without credentials it plays a metadata service
/// that is not EC2's (an Azure VM's, as on GitHub-hosted runners): 400 to everything. Stops
/// when dropped.
pub struct InstanceMetadata {
    pub asked: Arc<ImdsAsked>,
    served: super::served::Served,
}

struct ImdsState {
    credentials: Option<Credentials>,
    asked: Arc<ImdsAsked>,
}

impl InstanceMetadata {
    pub fn start(credentials: Option<Credentials>) -> Self {
        let listener = super::served::Served::listener();
        let asked = Arc::new(ImdsAsked::default());
        let state = Arc::new(ImdsState {
            credentials,
            asked: Arc::clone(&asked),
        });
        let app = Router::new().fallback(imds_answer).with_state(state);
        Self {
            asked,
            served: super::served::Served::start(listener, app),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.served.port)
    }
}

async fn imds_answer(
    State(state): State<Arc<ImdsState>>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(credentials) = &state.credentials else {
        return (StatusCode::BAD_REQUEST, "not EC2").into_response();
    };
    let path = uri.path();
    if method == Method::PUT && path == "/latest/api/token" {
        state.asked.tokens.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::OK, IMDS_SESSION).into_response();
    }
    let prefix = "/latest/meta-data/iam/security-credentials/";
    let Some(role) = path.strip_prefix(prefix) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let session = headers
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok());
    if session != Some(IMDS_SESSION) {
        state.asked.without_token.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match role {
        "" => (StatusCode::OK, IMDS_ROLE).into_response(),
        IMDS_ROLE => {
            state.asked.credentials.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": credentials.key_id,
                "SecretAccessKey": credentials.secret,
                "Token": credentials.token,
                "Expiration": "2099-01-01T00:00:00Z",
            });
            (StatusCode::OK, body.to_string()).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
