//! The Azure Blob peers: Azurite (the one [`gha::azurite`] starts for this test process, on
//! 127.0.0.1) as the service, and Microsoft's `@azure/storage-blob` (`tests/node/azure-peer.mjs`)
//! as the other client, both from `tests/node/node_modules` (`scripts/install-test-deps.sh`);
//! [`FaultProxy`] between them injects Azure's faults: throttling, 500s, broken ranges.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU32;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::gha::{self, ACCOUNT, answer, azurite, cut_off, node_dir, send_upstream, take};

/// The account's blob endpoint, as `--az-endpoint` and connection strings name it.
pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}/{ACCOUNT}", azurite().port)
}

/// Runs `node azure-peer.mjs ENDPOINT ARGS` and returns its stdout, failing the test if it
/// fails.
pub fn peer(args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(node_dir().join("azure-peer.mjs"))
        .arg(endpoint())
        .args(args)
        .current_dir(node_dir())
        .output()
        .expect("run node azure-peer.mjs");
    assert!(
        out.status.success(),
        "node azure-peer.mjs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Creates a container (Azurite keeps them in memory for this test process) and returns its
/// name.
pub fn container(name: &str) -> String {
    peer(&["create", name]);
    name.to_string()
}

/// The committed blobs in a container.
pub fn blobs(container: &str) -> Vec<String> {
    peer(&["list", container])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Blobs that have uncommitted blocks only (an upload that was never committed).
pub fn uncommitted(container: &str) -> Vec<String> {
    peer(&["uncommitted", container])
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn download(container: &str, blob: &str, file: &Path) {
    peer(&["download", container, blob, file.to_str().unwrap()]);
}

/// Writes `file` as the block blob `blob`, as another client would.
pub fn upload(container: &str, blob: &str, file: &Path) {
    peer(&["upload", container, blob, file.to_str().unwrap()]);
}

/// A container SAS valid for `minutes` (negative: expired that long ago).
pub fn sas(container: &str, minutes: i64) -> String {
    peer(&["sas", container, &minutes.to_string()])
        .trim()
        .to_string()
}

/// The development account's key (published, not a secret).
pub fn key() -> &'static str {
    gha::ACCOUNT_KEY
}

/// The fault switches of a [`FaultProxy`], each a counter of the next N requests it hits.
#[derive(Default)]
pub struct AzureFaults {
    /// Put Block List (`PUT …?comp=blocklist`) answers 500 `InternalError`, after the blocks
    /// went through: a save that cannot commit its archive.
    pub fail_block_lists: AtomicU32,
    /// Put Block (`PUT …?comp=block`) answers 503 `ServerBusy`, Azure's throttling.
    pub busy_blocks: AtomicU32,
    /// Ranged GETs answer 503 `ServerBusy`.
    pub busy_ranges: AtomicU32,
    /// Ranged GETs send half their body, then reset the connection.
    pub cut_ranges: AtomicU32,
    /// A conditional create (`If-None-Match: *`) is sent to Azurite twice: the first copy
    /// creates the blob, so the client's own request loses the race at the last moment, as
    /// when another runner publishes the same key between our check and our create.
    pub lose_creates: AtomicU32,
    /// What was injected, in order.
    pub injected: Mutex<Vec<&'static str>>,
}

/// A proxy in front of Azurite that injects what Azure throws in production (see
/// [`AzureFaults`]). Stops when dropped.
pub struct FaultProxy {
    pub port: u16,
    pub faults: Arc<AzureFaults>,
    _served: super::served::Served,
}

struct ProxyState {
    faults: Arc<AzureFaults>,
    upstream: u16,
    http: reqwest::Client,
}

impl FaultProxy {
    pub fn start() -> Self {
        let listener = super::served::Served::listener();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(AzureFaults::default());
        let state = Arc::new(ProxyState {
            faults: Arc::clone(&faults),
            upstream: azurite().port,
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
            port,
            faults,
            _served: super::served::Served::start(listener, app),
        }
    }

    /// The account's blob endpoint through this proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn injected(&self) -> Vec<&'static str> {
        self.faults.injected.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert("x-ms-error-code", code.parse().unwrap());
    response
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let query = uri.query().unwrap_or("");
    let comp = |value: &str| {
        method == Method::PUT && query.split('&').any(|p| p == format!("comp={value}"))
    };
    let (is_block, is_block_list) = (comp("block"), comp("blocklist"));
    let is_range = method == Method::GET && headers.contains_key("range");
    let faults = &state.faults;
    let note = |what| faults.injected.lock().unwrap().push(what);
    if is_block_list && take(&faults.fail_block_lists) {
        note("InternalError block list");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The server encountered an internal error.",
        );
    }
    let busy = "Operations per second is over the account limit.";
    if is_block && take(&faults.busy_blocks) {
        note("ServerBusy block");
        return error(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", busy);
    }
    if is_range && take(&faults.busy_ranges) {
        note("ServerBusy range");
        return error(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", busy);
    }
    let target = format!("http://127.0.0.1:{}{}?{query}", state.upstream, uri.path());
    let request = || {
        let mut request = state
            .http
            .request(method.clone(), &target)
            .body(body.clone());
        for (name, value) in &headers {
            if !matches!(
                name.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            ) {
                request = request.header(name, value);
            }
        }
        request
    };
    let is_create = method == Method::PUT
        && headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == b"*");
    if is_create && take(&faults.lose_creates) {
        note("lost create");
        if let Err(response) = send_upstream(request()).await {
            return response;
        }
    }
    let (status, out_headers, bytes) = match send_upstream(request()).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if is_range && status.is_success() && take(&faults.cut_ranges) {
        note("cut range");
        let half = bytes.len() / 2;
        return cut_off(status, out_headers, bytes, half);
    }
    answer(status, out_headers, bytes)
}
