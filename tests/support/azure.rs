//! The Azure Blob peers: Azurite (the one [`gha::azurite`] starts for this test process, on
//! 127.0.0.1) as the service, and Microsoft's `@azure/storage-blob` (`tests/node/azure-peer.mjs`)
//! as the other client, both from `tests/node/node_modules` (`scripts/install-test-deps.sh`);
//! [`BlockListProxy`] between them makes a save unable to commit its archive.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::gha::{self, ACCOUNT, answer, azurite, node_dir, send_upstream, take};

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

/// A proxy in front of Azurite that fails the next `fail_block_lists` Put Block List requests
/// (`PUT …?comp=blocklist`) with 500 `InternalError`, after the blocks went through: a save
/// that can never commit its archive. Stops when dropped.
pub struct BlockListProxy {
    pub port: u16,
    pub fail_block_lists: Arc<AtomicU32>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct ProxyState {
    fail_block_lists: Arc<AtomicU32>,
    upstream: u16,
    http: reqwest::Client,
}

impl BlockListProxy {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let fail_block_lists = Arc::new(AtomicU32::new(0));
        let state = Arc::new(ProxyState {
            fail_block_lists: Arc::clone(&fail_block_lists),
            upstream: azurite().port,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        });
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = Router::new()
                    .fallback(forward)
                    .layer(axum::extract::DefaultBodyLimit::disable())
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            port,
            fail_block_lists,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The account's blob endpoint through this proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

impl Drop for BlockListProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let query = uri.query().unwrap_or("");
    if method == Method::PUT && query.contains("comp=blocklist") && take(&state.fail_block_lists) {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>InternalError</Code><Message>The server encountered an internal error.</Message></Error>";
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    let target = format!("http://127.0.0.1:{}{}?{query}", state.upstream, uri.path());
    let mut request = state.http.request(method, target).body(body);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            request = request.header(name, value);
        }
    }
    match send_upstream(request).await {
        Ok((status, headers, bytes)) => answer(status, headers, bytes),
        Err(response) => response,
    }
}
