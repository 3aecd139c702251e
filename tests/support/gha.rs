//! The GitHub Actions cache stack for tests, all on 127.0.0.1 and all stopping by themselves:
//!
//! - **Azurite** (Microsoft's blob emulator, from `tests/node/node_modules`) as the blob store,
//!   started once per test process ([`azurite`]) and killed with it (`PR_SET_PDEATHSIG`);
//! - **[`CacheService`]**, a test implementation of GitHub's Twirp cache service v2 that follows
//!   the server rules of `docs/gha-cache-protocol.md` §7: scopes come from the JWT `ac` claim of
//!   the Bearer token ([`token`] mints one, unsigned); matching is exact key, then key prefix,
//!   then each restore key exactly and as a prefix, newest first, within each readable scope in
//!   order; the version must match; a second `CreateCacheEntry` for the same key, version and
//!   scope is a 409 `already_exists`; a token without a writable scope gets `ok: false` with
//!   `cache write denied`, one without a readable scope a 403 `cache read denied`. It hands out
//!   real service SAS URLs for Azurite, signed with the well-known `devstoreaccount1` key
//!   (HMAC-SHA256), so Azurite checks signatures and expiry itself;
//! - **[`node`]**: the official `@actions/cache` client, driven by `tests/node/run.mjs`.
//!
//! Fault switches on [`Faults`] (each a count of requests it affects, then it is off again):
//!
//! - `rpc_5xx`: the next N Twirp calls answer 503 `unavailable`;
//! - `rpc_429` (+ `retry_after_secs`): the next N Twirp calls answer 429 with `Retry-After`;
//! - `rpc_drop`: the next N Twirp calls send headers and then drop the connection;
//! - `blob_5xx`: the next N blob requests answer 503 `ServerBusy`;
//! - `blob_drop`: the next N blob requests send headers and then drop the connection;
//! - `truncate`: the next N blob GETs send half their body and then drop the connection;
//! - `expire_urls`: the next N signed URLs handed out expired an hour ago (Azurite answers 403);
//! - `stall`: the next N blob GETs wait 5 s before answering (for segment timeouts);
//! - `ignore_range` (a flag): blob GETs lose their `Range`, as on servers without range support;
//! - `hold_later_gets` (a flag): while set, blob GETs of a range that starts at or past 16 MiB
//!   wait (a download that stalls once the unpacker has had a few frames, whatever the segment
//!   size, for interrupt tests);
//! - `hold_puts` (a flag): while set, blob PUTs wait after they are logged (an upload that
//!   stalls, for interrupt tests);
//! - `blob_get_mbps` (a rate, 0 for none): every blob GET's body is sent at this many MB/s, as
//!   over a link whose limit is each connection's rate (for `bench/gha.sh`'s `BENCH_LINK_MBPS`).
//!
//! A held request waits at most 120 s; clear the flag before dropping the service.
//!
//! Blob faults need the bytes to pass through this server, so with `via_proxy` set (it is, by
//! [`CacheService::with_proxy`]) signed URLs point at `/blob/...` here, which forwards to Azurite
//! after applying the switches. Without it they point at Azurite directly, as the benchmark
//! uses it.
//!
//! **The self-hosted profile** ([`CacheService::self_hosted`]) behaves as
//! falcondev-oss/github-actions-cache-server v9.4.7 does (read from its `routes/` and
//! `lib/storage.ts`, not copied), the server self-hosted runners most often point
//! `ACTIONS_RESULTS_URL` at. It keeps the bytes itself, in memory, instead of Azurite:
//!
//! - upload and download URLs are plain, unsigned URLs on the server's own host
//!   (`/devstoreaccount1/upload/<id>`, `/download/<entry id>`);
//! - a PUT takes its part's position from the block id (the 12-digit index after the 36
//!   characters of the UUID; no block id is part 0); `comp=blocklist` does nothing; a PUT for an
//!   upload it does not know answers 201 and stores nothing;
//! - downloads ignore `Range` and send no `Content-Length` (chunked), parts in index order;
//! - `CreateCacheEntry` answers `ok: false` with no message while an upload of the same key,
//!   version and scope is unfinished, and never 409: finalizing a key that exists replaces
//!   its entry (a re-save "wins");
//! - `FinalizeCacheEntryUpload` checks no size; when a part failed (started but not finished)
//!   it deletes the upload and answers 500 "Not all parts have been uploaded (only F of S parts
//!   uploaded)", and from then on 404 "Upload not found";
//! - errors are its framework's JSON (`statusCode`, `statusMessage`, `message`), never Twirp's,
//!   and a download of an entry whose bytes are gone is a 404 with a plain-text body (what a
//!   reverse proxy in front of it, or its framework for a non-JSON client, sends);
//! - a token that is not a JWT with cache scopes is a 401 "Invalid token"; scopes are tried in
//!   order of permission, write scopes first.
//!
//! The RPC switches apply as on GitHub's profile (answered in the framework's JSON); of the blob
//! switches only `truncate` does (the chunked download breaks after half its chunks). Its own
//! switch: `part_fail` (the next N part PUTs break on the server's side: counted as started,
//! nothing stored, 500). The test hooks [`CacheService::damage`] (rewrite an
//! entry's stored bytes) and [`CacheService::lose_archive`] (its storage loses the bytes, the
//! entry stays listed), both on either profile.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "caches";
const SAS_VERSION: &str = "2020-12-06";

/// `tests/node`, where the npm peers are installed.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("node")
}

fn require_node_modules() {
    let marker = node_dir().join("node_modules/@actions/cache/package.json");
    assert!(
        marker.exists(),
        "`{}` is missing: the GitHub cache tests need @actions/cache and Azurite from npm\n\nhint: run `bash scripts/install-test-deps.sh`",
        marker.display()
    );
}

/// A running Azurite blob service.
pub struct Azurite {
    pub port: u16,
    /// Its process id, for the benchmark's CPU accounting.
    pub pid: u32,
}

/// The Azurite of this test process, started on first use.
pub fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(|| start_azurite(&[], None))
}

/// Starts an Azurite blob service with `extra` arguments and creates the cache service's
/// container in it; over HTTPS when `ca` is given (the CA of the certificate `extra` names, see
/// `azure::azurite_oauth`).
pub fn start_azurite(extra: &[String], ca: Option<&Path>) -> Azurite {
    require_node_modules();
    let extra = extra.to_vec();
    let port = free_port();
    // With in-memory persistence Azurite writes no files; its working directory is only where
    // it would.
    let workdir = std::env::temp_dir();
    let (tx, rx) = std::sync::mpsc::channel::<Result<u32, String>>();
    // The child dies with the thread that spawned it (PR_SET_PDEATHSIG), so that thread lives
    // as long as the process: Azurite stops when the tests do, however they end.
    std::thread::spawn(move || {
        let main = node_dir().join("node_modules/azurite/dist/src/blob/main.js");
        let mut cmd = Command::new("node");
        cmd.arg(main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
            ])
            .args(&extra)
            .current_dir(&workdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = tx.send(Err(format!("starting Azurite with `node`: {e}")));
                return;
            }
        };
        let stdout = child.stdout.take().unwrap();
        let mut told = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !told && line.contains("successfully listen") {
                let _ = tx.send(Ok(child.id()));
                told = true;
            }
        }
        if !told {
            let _ = tx.send(Err(format!("Azurite exited: {:?}", child.wait())));
        }
        // Keep the spawning thread alive for the child's sake.
        loop {
            std::thread::park();
        }
    });
    let pid = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(pid)) => pid,
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("Azurite did not start listening on 127.0.0.1:{port} within 60 s"),
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut create = Command::new("node");
    if let Some(ca) = ca {
        create.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let status = create
        .arg(node_dir().join("create-container.mjs"))
        .arg(format!("{scheme}://127.0.0.1:{port}/{ACCOUNT}"))
        .arg(CONTAINER)
        .current_dir(node_dir())
        .output()
        .expect("run node create-container.mjs");
    assert!(
        status.status.success(),
        "creating the Azurite container failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Azurite { port, pid }
}

#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An unsigned JWT runtime token whose `ac` claim grants `scopes` (`(ref, permission)`,
/// permission 1 = read, 2 = write, 3 = both), like the runner's.
pub fn token(scopes: &[(&str, u8)]) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let ac: Vec<Value> = scopes
        .iter()
        .map(|(scope, permission)| json!({"Scope": scope, "Permission": permission}))
        .collect();
    let payload = json!({
        "ac": Value::Array(ac).to_string(),
        "repository_id": "123",
        "scp": "Actions.Results:1:1",
        "exp": now_secs() + 3600,
        "nonce": rand_hex(),
    });
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&payload)
    )
}

fn rand_hex() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Fault switches; see the module doc.
#[derive(Default)]
pub struct Faults {
    pub rpc_5xx: AtomicU32,
    pub rpc_429: AtomicU32,
    pub retry_after_secs: AtomicU64,
    pub rpc_drop: AtomicU32,
    pub blob_5xx: AtomicU32,
    pub blob_drop: AtomicU32,
    pub truncate: AtomicU32,
    pub expire_urls: AtomicU32,
    pub stall: AtomicU32,
    pub ignore_range: AtomicBool,
    /// Self-hosted profile: the next N part PUTs break on the server's side.
    pub part_fail: AtomicU32,
    pub hold_later_gets: AtomicBool,
    pub hold_puts: AtomicBool,
    pub blob_get_mbps: AtomicU64,
}

/// Waits while `flag` is set, for at most 120 s.
async fn hold_while(flag: &AtomicBool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while flag.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which server the service behaves as; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    GitHub,
    SelfHosted,
}

/// An upload in progress on the self-hosted profile.
struct PendingUpload {
    id: u64,
    key: String,
    version: String,
    scope: String,
    started: u32,
    finished: u32,
    parts: BTreeMap<u64, Vec<u8>>,
}

pub fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub id: u64,
    pub key: String,
    pub version: String,
    pub scope: String,
    pub blob: String,
    pub finalized: bool,
    pub size: u64,
}

struct Inner {
    entries: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
    prefix: String,
    azurite_port: u16,
    own_port: u16,
    via_proxy: AtomicBool,
    faults: Faults,
    /// Every request seen: `CreateCacheEntry`, `PUT blob`, `GET blob` (with a `block`/
    /// `blocklist` note), for tests that check how a transfer was made.
    log: Mutex<Vec<String>>,
    /// The `Range` of every blob GET through the proxy (empty for none), in arrival order.
    ranges: Mutex<Vec<String>>,
    /// Every `sig` handed out, for the test that no output shows one.
    sigs: Mutex<Vec<String>>,
    http: reqwest::Client,
    profile: Profile,
    /// Self-hosted profile: uploads in progress, and each entry's bytes by its `blob` name
    /// (`None` once its storage lost them).
    uploads: Mutex<Vec<PendingUpload>>,
    stored: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

/// The test cache service; see the module doc. Stops when dropped.
pub struct CacheService {
    inner: Arc<Inner>,
    pub url: String,
    _served: super::served::Served,
}

impl CacheService {
    /// A service whose signed URLs point at Azurite directly.
    pub fn start() -> Self {
        Self::start_as(Profile::GitHub)
    }

    /// A service that behaves as a self-hosted cache server; see the module doc.
    pub fn self_hosted() -> Self {
        Self::start_as(Profile::SelfHosted)
    }

    fn start_as(profile: Profile) -> Self {
        let azurite_port = match profile {
            Profile::GitHub => azurite().port,
            Profile::SelfHosted => 0,
        };
        let listener = super::served::Served::listener();
        let own_port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            entries: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            prefix: format!("svc-{}", rand_hex()),
            azurite_port,
            own_port,
            via_proxy: AtomicBool::new(false),
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            ranges: Mutex::new(Vec::new()),
            sigs: Mutex::new(Vec::new()),
            // No pooled connections: Azurite (node) closes idle ones after 5 s, and a request
            // sent on one it just closed fails in the proxy, not in the client under test.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            profile,
            uploads: Mutex::new(Vec::new()),
            stored: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route(
                "/twirp/github.actions.results.api.v1.CacheService/{method}",
                post(rpc),
            )
            .route("/blob/{*path}", any(proxy))
            .route(
                "/devstoreaccount1/upload/{id}",
                axum::routing::put(self_hosted_put),
            )
            .route("/upload/{id}", axum::routing::put(self_hosted_put))
            .route("/download/{id}", axum::routing::get(self_hosted_download))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(Arc::clone(&inner));
        Self {
            inner,
            url: format!("http://127.0.0.1:{own_port}/"),
            _served: super::served::Served::start(listener, app),
        }
    }

    /// A service whose signed URLs go through its own `/blob/` proxy, where blob faults apply.
    pub fn with_proxy() -> Self {
        let service = Self::start();
        service.inner.via_proxy.store(true, Ordering::SeqCst);
        service
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.inner.entries.lock().unwrap().clone()
    }

    pub fn log(&self) -> Vec<String> {
        self.inner.log.lock().unwrap().clone()
    }

    /// The `Range` of every blob GET through the proxy (empty for none), in arrival order.
    pub fn blob_get_ranges(&self) -> Vec<String> {
        self.inner.ranges.lock().unwrap().clone()
    }

    pub fn sigs(&self) -> Vec<String> {
        self.inner.sigs.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.inner.log.lock().unwrap().clear();
    }

    /// `host:port` of the service, as messages name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.inner.own_port)
    }

    fn finalized_entry(&self, key: &str) -> Entry {
        self.entries()
            .into_iter()
            .filter(|e| e.key == key && e.finalized)
            .max_by_key(|e| e.id)
            .unwrap_or_else(|| panic!("no finalized entry `{key}`"))
    }

    /// Rewrites the stored archive of `key` with `change`, as a broken disk or a cut copy
    /// would: the entry stays listed, its bytes differ.
    pub fn damage(&self, key: &str, change: impl FnOnce(&mut Vec<u8>)) {
        let entry = self.finalized_entry(key);
        match self.inner.profile {
            Profile::SelfHosted => {
                let mut stored = self.inner.stored.lock().unwrap();
                let bytes = stored
                    .get_mut(&entry.blob)
                    .and_then(Option::as_mut)
                    .expect("stored bytes");
                change(bytes);
            }
            Profile::GitHub => {
                let url = |permissions: &str| {
                    format!(
                        "http://127.0.0.1:{}/{ACCOUNT}/{CONTAINER}/{}?{}",
                        self.inner.azurite_port,
                        entry.blob,
                        sas(&entry.blob, permissions, now_secs() + 3600).0
                    )
                };
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let http = reqwest::Client::new();
                    let got = http
                        .get(url("r"))
                        .header("x-ms-version", SAS_VERSION)
                        .send()
                        .await
                        .unwrap();
                    assert!(got.status().is_success(), "GET blob: {}", got.status());
                    let mut bytes = got.bytes().await.unwrap().to_vec();
                    change(&mut bytes);
                    let put = http
                        .put(url("cw"))
                        .header("x-ms-version", SAS_VERSION)
                        .header("x-ms-blob-type", "BlockBlob")
                        .body(bytes)
                        .send()
                        .await
                        .unwrap();
                    assert!(put.status().is_success(), "PUT blob: {}", put.status());
                });
            }
        }
    }

    /// The storage behind `key` loses its bytes while the entry stays listed, as with a wiped
    /// storage folder on falcondev-oss's server, or a blob deleted behind GitHub's back.
    pub fn lose_archive(&self, key: &str) {
        let entry = self.finalized_entry(key);
        match self.inner.profile {
            Profile::SelfHosted => {
                self.inner.stored.lock().unwrap().insert(entry.blob, None);
            }
            Profile::GitHub => {
                let url = format!(
                    "http://127.0.0.1:{}/{ACCOUNT}/{CONTAINER}/{}?{}",
                    self.inner.azurite_port,
                    entry.blob,
                    sas(&entry.blob, "d", now_secs() + 3600).0
                );
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let status = runtime.block_on(async {
                    reqwest::Client::new()
                        .delete(url)
                        .header("x-ms-version", SAS_VERSION)
                        .send()
                        .await
                        .unwrap()
                        .status()
                });
                assert!(status.is_success(), "DELETE blob: {status}");
            }
        }
    }
}

fn twirp_error(status: StatusCode, code: &str, msg: &str) -> Response {
    (status, axum::Json(json!({"code": code, "msg": msg}))).into_response()
}

/// An error as the self-hosted server's framework (nitro/h3) sends it: JSON, not Twirp's.
fn framework_error(status: StatusCode, message: &str) -> Response {
    let status_message = if status.is_server_error() {
        "Server Error"
    } else {
        message
    };
    (
        status,
        axum::Json(json!({
            "error": true,
            "statusCode": status.as_u16(),
            "statusMessage": status_message,
            "message": message,
        })),
    )
        .into_response()
}

/// A fault answered in the profile's own error shape.
fn fault_error(profile: Profile, status: StatusCode, code: &str, msg: &str) -> Response {
    match profile {
        Profile::GitHub => twirp_error(status, code, msg),
        Profile::SelfHosted => framework_error(status, msg),
    }
}

/// A response that promises a body and then breaks the connection after `sent` bytes.
pub fn cut_off(status: StatusCode, mut headers: HeaderMap, full: Vec<u8>, sent: usize) -> Response {
    let head = axum::body::Bytes::from(full[..sent.min(full.len())].to_vec());
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
        Ok(head),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault: connection dropped",
        )),
    ];
    headers.insert(
        "content-length",
        full.len().max(1).to_string().parse().unwrap(),
    );
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The readable and writable scopes of a Bearer token, in claim order.
fn scopes(headers: &HeaderMap) -> Option<Vec<(String, u64)>> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let jwt = auth.strip_prefix("Bearer ")?;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let ac: Value = serde_json::from_str(claims.get("ac")?.as_str()?).ok()?;
    Some(
        ac.as_array()?
            .iter()
            .filter_map(|s| {
                Some((
                    s.get("Scope")?.as_str()?.to_string(),
                    s.get("Permission")?.as_u64()?,
                ))
            })
            .collect(),
    )
}

fn int64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

async fn rpc(
    State(inner): State<Arc<Inner>>,
    AxPath(method): AxPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    inner.log.lock().unwrap().push(method.clone());
    let faults = &inner.faults;
    if take(&faults.rpc_drop) {
        return cut_off(
            StatusCode::OK,
            HeaderMap::new(),
            b"{\"ok\": true}".to_vec(),
            3,
        );
    }
    if take(&faults.rpc_5xx) {
        return fault_error(
            inner.profile,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "fault: service unavailable",
        );
    }
    if take(&faults.rpc_429) {
        let mut response = fault_error(
            inner.profile,
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            "fault: rate limited",
        );
        let secs = faults.retry_after_secs.load(Ordering::SeqCst);
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
        return response;
    }
    if inner.profile == Profile::SelfHosted {
        return self_hosted_rpc(&inner, &method, &headers, &body);
    }
    let Some(scopes) = scopes(&headers) else {
        return twirp_error(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid token");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return twirp_error(StatusCode::BAD_REQUEST, "malformed", "body is not JSON");
    };
    let text = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (key, version) = (text("key"), text("version"));
    if key.is_empty() || version.is_empty() {
        return twirp_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "key and version are required",
        );
    }
    let writable = scopes
        .iter()
        .find(|(_, p)| p & 2 != 0)
        .map(|(s, _)| s.clone());
    let readable: Vec<String> = scopes
        .iter()
        .filter(|(_, p)| p & 1 != 0)
        .map(|(s, _)| s.clone())
        .collect();
    match method.as_str() {
        "CreateCacheEntry" => {
            let Some(scope) = writable else {
                return axum::Json(json!({"ok": false, "message": "cache write denied: token has no writable scopes"})).into_response();
            };
            let mut entries = inner.entries.lock().unwrap();
            if entries
                .iter()
                .any(|e| e.key == key && e.version == version && e.scope == scope)
            {
                return twirp_error(
                    StatusCode::CONFLICT,
                    "already_exists",
                    "cache entry with the same key, version, and scope already exists",
                );
            }
            let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
            let blob = format!("{}/{id}", inner.prefix);
            entries.push(Entry {
                id,
                key,
                version,
                scope,
                blob: blob.clone(),
                finalized: false,
                size: 0,
            });
            drop(entries);
            let url = inner.signed_url(&blob, "cw");
            axum::Json(json!({"ok": true, "signed_upload_url": url})).into_response()
        }
        "FinalizeCacheEntryUpload" => {
            let Some(scope) = writable else {
                return axum::Json(json!({"ok": false, "message": "cache write denied: token has no writable scopes"})).into_response();
            };
            let Some(size) = int64(request.get("size_bytes")) else {
                return twirp_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "size_bytes is required",
                );
            };
            let mut entries = inner.entries.lock().unwrap();
            let Some(entry) = entries
                .iter_mut()
                .find(|e| e.key == key && e.version == version && e.scope == scope && !e.finalized)
            else {
                return twirp_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no reserved entry for this key and version",
                );
            };
            entry.finalized = true;
            entry.size = size;
            axum::Json(json!({"ok": true, "entry_id": entry.id.to_string()})).into_response()
        }
        "GetCacheEntryDownloadURL" => {
            if readable.is_empty() {
                return twirp_error(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    "cache read denied: token has no readable scopes",
                );
            }
            let mut keys = vec![key.clone()];
            if let Some(more) = request.get("restore_keys").and_then(Value::as_array) {
                keys.extend(more.iter().filter_map(Value::as_str).map(str::to_string));
            }
            let found = {
                let entries = inner.entries.lock().unwrap();
                find_entry(&entries, &readable, &version, &keys)
            };
            match found {
                Some(entry) => {
                    let url = inner.signed_url(&entry.blob, "r");
                    axum::Json(
                        json!({"ok": true, "signed_download_url": url, "matched_key": entry.key}),
                    )
                    .into_response()
                }
                None => axum::Json(json!({"ok": false})).into_response(),
            }
        }
        _ => twirp_error(StatusCode::NOT_FOUND, "bad_route", "no such method"),
    }
}

/// GitHub's matching (docs §7): per readable scope in order; the first key exactly, then as a
/// prefix; then each further key exactly, then as a prefix; newest first; same version only.
fn find_entry(
    entries: &[Entry],
    scopes: &[String],
    version: &str,
    keys: &[String],
) -> Option<Entry> {
    for scope in scopes {
        let candidates: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.finalized && &e.scope == scope && e.version == version)
            .collect();
        for key in keys {
            let newest = |pred: &dyn Fn(&Entry) -> bool| {
                candidates
                    .iter()
                    .filter(|e| pred(e))
                    .max_by_key(|e| e.id)
                    .map(|e| (*e).clone())
            };
            if let Some(e) = newest(&|e| &e.key == key) {
                return Some(e);
            }
            if let Some(e) = newest(&|e| e.key.starts_with(key.as_str())) {
                return Some(e);
            }
        }
    }
    None
}

impl Inner {
    /// A service SAS for one blob (Azure's 2020-12-06 string-to-sign, as Azurite checks it).
    fn signed_url(&self, blob: &str, permissions: &str) -> String {
        let expired = take(&self.faults.expire_urls);
        let expiry = if expired {
            now_secs() - 3600
        } else {
            now_secs() + 3600
        };
        let (query, sig) = sas(blob, permissions, expiry);
        self.sigs.lock().unwrap().push(sig);
        if self.via_proxy.load(Ordering::SeqCst) {
            format!(
                "http://127.0.0.1:{}/blob/{ACCOUNT}/{CONTAINER}/{blob}?{query}",
                self.own_port
            )
        } else {
            format!(
                "http://127.0.0.1:{}/{ACCOUNT}/{CONTAINER}/{blob}?{query}",
                self.azurite_port
            )
        }
    }
}

/// A service SAS for one blob (Azure's 2020-12-06 string-to-sign, as Azurite checks it), valid
/// until `expiry`: the URL query and the signature in it.
fn sas(blob: &str, permissions: &str, expiry: u64) -> (String, String) {
    {
        let se = iso8601(expiry);
        let canonical = format!("/blob/{ACCOUNT}/{CONTAINER}/{blob}");
        let string_to_sign = [
            permissions,
            "",
            &se,
            &canonical,
            "",
            "",
            "",
            SAS_VERSION,
            "b",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n");
        let key = base64::engine::general_purpose::STANDARD
            .decode(ACCOUNT_KEY)
            .unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(&key, string_to_sign.as_bytes()));
        let query = format!(
            "sv={SAS_VERSION}&sr=b&sp={permissions}&se={}&sig={}",
            encode(&se),
            encode(&sig)
        );
        (query, sig)
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn iso8601(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Forwards a blob request to Azurite, applying the blob fault switches on the way.
async fn proxy(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let query = uri.query().unwrap_or("");
    let note = if query.contains("comp=blocklist") {
        " blocklist"
    } else if query.contains("comp=block") {
        " block"
    } else {
        ""
    };
    inner
        .log
        .lock()
        .unwrap()
        .push(format!("{method} blob{note}"));
    let faults = &inner.faults;
    if take(&faults.blob_5xx) {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, "fault: server busy").into_response();
        response
            .headers_mut()
            .insert("x-ms-error-code", "ServerBusy".parse().unwrap());
        return response;
    }
    if take(&faults.blob_drop) {
        return cut_off(StatusCode::OK, HeaderMap::new(), vec![0; 1024], 0);
    }
    if method == Method::GET && take(&faults.stall) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if method == Method::GET {
        let range = headers
            .get("x-ms-range")
            .or_else(|| headers.get("range"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        inner.ranges.lock().unwrap().push(range.to_string());
        if range_start(range).is_some_and(|start| start >= HELD_AFTER) {
            hold_while(&faults.hold_later_gets).await;
        }
    }
    if method == Method::PUT {
        hold_while(&faults.hold_puts).await;
    }
    let path = uri.path().strip_prefix("/blob").unwrap_or(uri.path());
    let target = format!("http://127.0.0.1:{}{path}?{query}", inner.azurite_port);
    let mut request = inner.http.request(method.clone(), target).body(body);
    for (name, value) in &headers {
        let name_text = name.as_str();
        if matches!(
            name_text,
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            continue;
        }
        if inner.faults.ignore_range.load(Ordering::SeqCst)
            && matches!(name_text, "range" | "x-ms-range")
        {
            continue;
        }
        request = request.header(name, value);
    }
    let (status, out_headers, bytes) = match send_upstream(request).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if method == Method::GET && status.is_success() && take(&faults.truncate) {
        let half = bytes.len() / 2;
        return cut_off(status, out_headers, bytes, half);
    }
    let mbps = faults.blob_get_mbps.load(Ordering::SeqCst);
    if method == Method::GET && status.is_success() && mbps > 0 {
        return paced(status, out_headers, bytes, mbps);
    }
    answer(status, out_headers, bytes)
}

/// A proxied answer whose body goes out at `mbps` MB/s, in 64 KiB pieces, each sent when the
/// rate allows it (so the pace holds however coarse the timer is).
fn paced(status: StatusCode, headers: HeaderMap, bytes: Vec<u8>, mbps: u64) -> Response {
    const PIECE: usize = 64 << 10;
    let started = tokio::time::Instant::now();
    let bytes = bytes::Bytes::from(bytes);
    let pieces = futures_util::stream::unfold(0usize, move |sent| {
        let bytes = bytes.clone();
        async move {
            if sent >= bytes.len() {
                return None;
            }
            let due = Duration::from_secs_f64(sent as f64 / (mbps as f64 * 1e6));
            tokio::time::sleep_until(started + due).await;
            let end = (sent + PIECE).min(bytes.len());
            Some((Ok::<_, std::io::Error>(bytes.slice(sent..end)), end))
        }
    });
    answer_with(status, headers, Body::from_stream(pieces))
}

/// Where `hold_later_gets` starts holding: past the first few frames of any archive.
const HELD_AFTER: u64 = 16 << 20;

/// The first byte a `Range` header asks for (`bytes=S-E`), if it is one.
fn range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes=")?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

/// Sends a proxied request upstream and reads the whole answer: its status, its headers less
/// the hop-by-hop ones, and its body. A request that cannot be sent is a 502 to hand back.
pub async fn send_upstream(
    request: reqwest::RequestBuilder,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), Response> {
    let upstream = request
        .send()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response())?;
    let status = upstream.status();
    let mut headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "keep-alive"
        ) {
            headers.insert(name, value.clone());
        }
    }
    let bytes = upstream.bytes().await.unwrap_or_default().to_vec();
    Ok((status, headers, bytes))
}

/// A proxied answer passed on unchanged.
pub fn answer(status: StatusCode, headers: HeaderMap, bytes: Vec<u8>) -> Response {
    answer_with(status, headers, Body::from(bytes))
}

/// A proxied answer's status and headers with `body`.
fn answer_with(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The self-hosted profile's three RPCs; see the module doc.
fn self_hosted_rpc(inner: &Inner, method: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(mut scopes) = scopes(headers).filter(|s| !s.is_empty()) else {
        return framework_error(StatusCode::UNAUTHORIZED, "Invalid token");
    };
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return framework_error(StatusCode::BAD_REQUEST, &format!("Invalid body: {e}")),
    };
    let text = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (Some(key), Some(version)) = (text("key"), text("version")) else {
        return framework_error(
            StatusCode::BAD_REQUEST,
            "Invalid body: key and version are required",
        );
    };
    // Write scopes first, as the server sorts them by permission.
    scopes.sort_by_key(|(_, permission)| std::cmp::Reverse(*permission));
    let write_scope = scopes.iter().find(|(_, p)| *p >= 2).map(|(s, _)| s.clone());
    let own = format!("http://127.0.0.1:{}", inner.own_port);
    match method {
        "CreateCacheEntry" => {
            let Some(scope) = write_scope else {
                return framework_error(
                    StatusCode::FORBIDDEN,
                    "No scope with write permission found",
                );
            };
            let mut uploads = inner.uploads.lock().unwrap();
            if uploads
                .iter()
                .any(|u| u.key == key && u.version == version && u.scope == scope)
            {
                return axum::Json(json!({"ok": false})).into_response();
            }
            let id = 1_000_000_000 + rand::random::<u64>() % 9_000_000_000;
            uploads.push(PendingUpload {
                id,
                key,
                version,
                scope,
                started: 0,
                finished: 0,
                parts: BTreeMap::new(),
            });
            axum::Json(json!({
                "ok": true,
                "signed_upload_url": format!("{own}/devstoreaccount1/upload/{id}"),
            }))
            .into_response()
        }
        "FinalizeCacheEntryUpload" => {
            let Some(scope) = write_scope else {
                return framework_error(
                    StatusCode::FORBIDDEN,
                    "No scope with write permission found",
                );
            };
            let mut uploads = inner.uploads.lock().unwrap();
            let Some(index) = uploads
                .iter()
                .position(|u| u.key == key && u.version == version && u.scope == scope)
            else {
                return framework_error(StatusCode::NOT_FOUND, "Upload not found");
            };
            // Every check below deletes the upload first, as the server does.
            let upload = uploads.remove(index);
            drop(uploads);
            if upload.finished == 0 {
                return framework_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No parts have been uploaded",
                );
            }
            if upload.started != upload.finished {
                return framework_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Not all parts have been uploaded (only {} of {} parts uploaded)",
                        upload.finished, upload.started
                    ),
                );
            }
            if upload.parts.len() as u32 != upload.finished {
                return framework_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Uploaded part count does not match actual part count in storage (expected {} but found {})",
                        upload.finished,
                        upload.parts.len()
                    ),
                );
            }
            // Parts are read back in index order 0, 1, 2, …; a gap loses the entry's bytes.
            let data = (0..upload.parts.len() as u64)
                .map(|i| upload.parts.get(&i).cloned())
                .collect::<Option<Vec<Vec<u8>>>>()
                .map(|parts| parts.concat());
            let order = inner.next_id.fetch_add(1, Ordering::SeqCst);
            let blob = format!("{}-{order}", inner.prefix);
            let size = data.as_ref().map_or(0, |d| d.len() as u64);
            inner.stored.lock().unwrap().insert(blob.clone(), data);
            let mut entries = inner.entries.lock().unwrap();
            // A key that exists is replaced: its id (the server's `updatedAt` order) and bytes.
            entries.retain(|e| !(e.key == key && e.version == version && e.scope == scope));
            entries.push(Entry {
                id: order,
                key,
                version,
                scope,
                blob: blob.clone(),
                finalized: true,
                size,
            });
            axum::Json(json!({"ok": true, "entry_id": upload.id.to_string()})).into_response()
        }
        "GetCacheEntryDownloadURL" => {
            let mut keys = vec![key.clone()];
            if let Some(more) = request.get("restore_keys").and_then(Value::as_array) {
                keys.extend(more.iter().filter_map(Value::as_str).map(str::to_string));
            }
            let order: Vec<String> = scopes.iter().map(|(s, _)| s.clone()).collect();
            let found = {
                let entries = inner.entries.lock().unwrap();
                find_entry(&entries, &order, &version, &keys)
            };
            match found {
                Some(entry) => axum::Json(json!({
                    "ok": true,
                    "signed_download_url": format!("{own}/download/{}", entry.blob),
                    "matched_key": entry.key,
                }))
                .into_response(),
                None => axum::Json(json!({"ok": false})).into_response(),
            }
        }
        _ => framework_error(StatusCode::NOT_FOUND, "Page Not Found"),
    }
}

/// The part position a block id names: the 12-digit index after a 36-character UUID (48
/// bytes, what the Azure SDK and cache-heal send), or a big-endian u32 at byte 16 (64 bytes).
fn part_index(block_id: &str) -> Option<u64> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(block_id)
        .ok()?;
    match decoded.len() {
        64 => Some(u32::from_be_bytes(decoded[16..20].try_into().ok()?) as u64),
        48 => std::str::from_utf8(&decoded[36..]).ok()?.parse().ok(),
        _ => None,
    }
}

/// A part PUT on the self-hosted profile.
async fn self_hosted_put(
    State(inner): State<Arc<Inner>>,
    AxPath(id): AxPath<String>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    let created = || {
        let mut response = StatusCode::CREATED.into_response();
        response
            .headers_mut()
            .insert("x-ms-request-id", rand_hex().parse().unwrap());
        response
    };
    if query.get("comp").map(String::as_str) == Some("blocklist") {
        inner.log.lock().unwrap().push("PUT blob blocklist".into());
        return created();
    }
    let index = match query.get("blockid") {
        Some(block_id) => match part_index(block_id) {
            Some(index) => index,
            None => {
                return framework_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid block id: {block_id}"),
                );
            }
        },
        None => 0,
    };
    inner
        .log
        .lock()
        .unwrap()
        .push(if query.contains_key("blockid") {
            "PUT blob block".into()
        } else {
            "PUT blob".into()
        });
    let Ok(id) = id.parse::<u64>() else {
        return framework_error(StatusCode::BAD_REQUEST, "Invalid path parameters");
    };
    let mut uploads = inner.uploads.lock().unwrap();
    // An upload it does not know: 201, and nothing stored.
    let Some(upload) = uploads.iter_mut().find(|u| u.id == id) else {
        return created();
    };
    upload.started += 1;
    if take(&inner.faults.part_fail) {
        return framework_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "fault: the part's upload stream broke",
        );
    }
    upload.parts.insert(index, body.to_vec());
    upload.finished += 1;
    created()
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), url_decode(value)))
        .collect()
}

fn url_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A download on the self-hosted profile: no `Range`, no `Content-Length`, chunks as they come.
async fn self_hosted_download(
    State(inner): State<Arc<Inner>>,
    AxPath(id): AxPath<String>,
) -> Response {
    inner.log.lock().unwrap().push("GET blob".into());
    let data = inner.stored.lock().unwrap().get(&id).cloned().flatten();
    let Some(data) = data else {
        return (StatusCode::NOT_FOUND, "Cache file not found").into_response();
    };
    let cut = take(&inner.faults.truncate);
    let mut chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = data
        .chunks(1 << 20)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    if cut {
        let keep = chunks.len() / 2;
        chunks.truncate(keep);
        chunks.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault: connection dropped",
        )));
    }
    // A body from a stream has no length: hyper sends it chunked.
    Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
}

/// The sandbox-side environment of a job that can reach `service` with `token`.
pub fn job_env(cmd: &mut Command, service: &CacheService, token: &str) {
    cmd.env("ACTIONS_RESULTS_URL", &service.url)
        .env("ACTIONS_RUNTIME_TOKEN", token)
        .env("ACTIONS_CACHE_SERVICE_V2", "true")
        .env_remove("ACTIONS_CACHE_MODE")
        .env_remove("GITHUB_SERVER_URL")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("ACTIONS_CACHE_URL");
}

/// What an `@actions/cache` call printed and returned.
pub struct NodeRun {
    pub output: std::process::Output,
    pub result: Value,
}

/// Runs `@actions/cache` `command` (`save` or `restore`) with `args` in the sandbox: cwd and
/// `GITHUB_WORKSPACE` are `ws`, `HOME` is `home`, `RUNNER_TEMP` a fresh directory.
pub fn node(
    sandbox: &super::Sandbox,
    service: &CacheService,
    token: &str,
    command: &str,
    args: &Value,
) -> NodeRun {
    let output = node_command(sandbox, service, token, command, args)
        .output()
        .expect("run node");
    node_result(command, output)
}

/// The command [`node`] runs, for a caller that runs it its own way (the benchmark measures it).
pub fn node_command(
    sandbox: &super::Sandbox,
    service: &CacheService,
    token: &str,
    command: &str,
    args: &Value,
) -> Command {
    require_node_modules();
    let runner_temp = sandbox.root().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join("run.mjs"))
        .arg(command)
        .arg(args.to_string())
        .current_dir(sandbox.ws())
        .env("HOME", sandbox.home())
        .env("GITHUB_WORKSPACE", sandbox.ws())
        .env("RUNNER_TEMP", &runner_temp);
    job_env(&mut cmd, service, token);
    cmd
}

/// What the `@actions/cache` `command` returned, from its `output`.
pub fn node_result(command: &str, output: std::process::Output) -> NodeRun {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| {
            panic!(
                "@actions/cache {command} printed no result ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    NodeRun { output, result }
}

/// `cache-heal` in the sandbox, pointed at `service` with `token`, with fast retries.
pub fn cache_heal(sandbox: &super::Sandbox, service: &CacheService, token: &str) -> Command {
    let mut cmd = sandbox.cmd();
    job_env(&mut cmd, service, token);
    cmd.env("CACHE_HEAL_STORE", "gha")
        .env("CACHE_HEAL_HTTP_RETRY_DELAY_MS", "20")
        .env("CACHE_HEAL_RETRY_AFTER_MAX_SECS", "5")
        .env("CACHE_HEAL_NO_PROGRESS", "true");
    cmd
}

/// Writes `len` bytes no compressor can shrink to `path`.
pub fn write_incompressible(path: &Path, len: usize) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = Sha256::digest(path.to_string_lossy().as_bytes()).to_vec();
    let mut written = 0;
    while written < len {
        // A hash chain: fast enough, and incompressible.
        let mut block = Vec::with_capacity(32 * 1024);
        for _ in 0..1024 {
            state = Sha256::digest(&state).to_vec();
            block.extend_from_slice(&state);
        }
        let n = block.len().min(len - written);
        file.write_all(&block[..n]).unwrap();
        written += n;
    }
}
