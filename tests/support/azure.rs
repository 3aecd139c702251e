//! The Azure Blob peers: Azurite (the one [`gha::azurite`] starts for this test process, on
//! 127.0.0.1) as the service, and Microsoft's `@azure/storage-blob` (`tests/node/azure-peer.mjs`)
//! as the other client, both from `tests/node/node_modules` (`scripts/install-test-deps.sh`);
//! [`FaultProxy`] between them injects Azure's faults: throttling, 500s, broken ranges.

use std::path::{Path, PathBuf};
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
    pub faults: Arc<AzureFaults>,
    served: super::served::Served,
}

struct ProxyState {
    faults: Arc<AzureFaults>,
    upstream: u16,
    http: reqwest::Client,
}

impl FaultProxy {
    pub fn start() -> Self {
        let listener = super::served::Served::listener();
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
            faults,
            served: super::served::Served::start(listener, app),
        }
    }

    /// The account's blob endpoint through this proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.served.port)
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

/// An Azurite that serves HTTPS and takes OAuth bearer tokens (`--oauth basic`: it checks a
/// token's audience, issuer and lifetime, not its signature), for the credentials that are
/// tokens: managed identity and the Azure CLI's login. Its certificate comes from a CA made
/// for this test process with `openssl`; `cache-heal` trusts the CA through `SSL_CERT_FILE`.
pub struct OauthAzurite {
    pub port: u16,
    /// The CA's certificate (PEM).
    pub ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl OauthAzurite {
    /// The account's blob endpoint, over HTTPS.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Creates a container (with the account key) and returns its name.
    pub fn container(&self, name: &str) -> String {
        let out = Command::new("node")
            .arg(node_dir().join("azure-peer.mjs"))
            .arg(self.endpoint())
            .args(["create", name])
            .env("NODE_EXTRA_CA_CERTS", &self.ca)
            .current_dir(node_dir())
            .output()
            .expect("run node azure-peer.mjs");
        assert!(
            out.status.success(),
            "creating `{name}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name.to_string()
    }
}

/// The HTTPS + OAuth Azurite of this test process, started on first use.
pub fn azurite_oauth() -> &'static OauthAzurite {
    static AZURITE: std::sync::OnceLock<OauthAzurite> = std::sync::OnceLock::new();
    AZURITE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = test_certificates(dir.path());
        let extra = [
            "--oauth".to_string(),
            "basic".to_string(),
            "--cert".to_string(),
            cert.display().to_string(),
            "--key".to_string(),
            key.display().to_string(),
        ];
        let port = gha::start_azurite(&extra, Some(&ca)).port;
        OauthAzurite {
            port,
            ca,
            _dir: dir,
        }
    })
}

/// A CA and a certificate for `127.0.0.1` signed by it, made with `openssl` in `dir`:
/// (the CA's certificate, the server's certificate, the server's key).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (ca_key, ca, csr) = (path("ca.key"), path("ca.pem"), path("server.csr"));
    let (key, cert, ext) = (path("server.key"), path("server.pem"), path("server.ext"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=cache-heal test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca.into(), cert.into(), key.into())
}

/// Runs `openssl ARGS`, failing the test loudly if it is missing or fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("running `openssl` failed ({e}): the HTTPS Azurite needs it\n\nhint: install the Debian package `openssl`")
    });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bearer token for Azure Storage as Entra ID shapes one (a JWT: audience, issuer, lifetime),
/// which `--oauth basic` Azurite accepts; `audience` another than `https://storage.azure.com`
/// makes one it refuses. Unsigned: Azurite does not check signatures.
pub fn storage_token(audience: &str) -> String {
    use base64::Engine;
    let encode = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tenant = "ab1f708d-50f6-404c-a006-d71b2ac7a606";
    let claims = serde_json::json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": tenant,
    });
    format!(
        "{}.{}.unsigned",
        encode(serde_json::json!({"alg": "none", "typ": "JWT"})),
        encode(claims)
    )
}

/// What a [`ManagedIdentity`] stand-in was asked.
#[derive(Default)]
pub struct MsiAsked {
    /// Every request.
    pub requests: AtomicU32,
    /// Token requests with `Metadata: true` for Azure Storage.
    pub tokens: AtomicU32,
    /// Requests without `Metadata: true` or for another resource.
    pub malformed: AtomicU32,
}

/// A stand-in for Azure instance metadata's managed identity token endpoint on 127.0.0.1,
/// handing out `token` (there is no Azure VM here). Without a token it plays a VM that has no
/// identity: 400, as Azure answers. Stops when dropped.
pub struct ManagedIdentity {
    pub asked: Arc<MsiAsked>,
    served: super::served::Served,
}

struct MsiState {
    token: Option<String>,
    asked: Arc<MsiAsked>,
}

impl ManagedIdentity {
    pub fn start(token: Option<String>) -> Self {
        let listener = super::served::Served::listener();
        let asked = Arc::new(MsiAsked::default());
        let state = Arc::new(MsiState {
            token,
            asked: Arc::clone(&asked),
        });
        let app = Router::new().fallback(msi_answer).with_state(state);
        Self {
            asked,
            served: super::served::Served::start(listener, app),
        }
    }

    /// The token endpoint, as `AZURE_MSI_ENDPOINT` names it.
    pub fn endpoint(&self) -> String {
        format!(
            "http://127.0.0.1:{}/metadata/identity/oauth2/token",
            self.served.port
        )
    }
}

async fn msi_answer(State(state): State<Arc<MsiState>>, headers: HeaderMap, uri: Uri) -> Response {
    use std::sync::atomic::Ordering::SeqCst;
    state.asked.requests.fetch_add(1, SeqCst);
    let query = uri.query().unwrap_or_default();
    let for_storage = query.contains("resource=https%3A%2F%2Fstorage.azure.com")
        || query.contains("resource=https://storage.azure.com");
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok()) == Some("true");
    if uri.path() != "/metadata/identity/oauth2/token" || !for_storage || !metadata {
        state.asked.malformed.fetch_add(1, SeqCst);
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    let Some(token) = &state.token else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        )
            .into_response();
    };
    state.asked.tokens.fetch_add(1, SeqCst);
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let body = serde_json::json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": "https://storage.azure.com",
        "token_type": "Bearer",
    });
    (StatusCode::OK, body.to_string()).into_response()
}

/// What an [`EntraId`] stand-in was asked.
#[derive(Default)]
pub struct EntraAsked {
    /// Client-credential token requests with the expected client, assertion and scope.
    pub tokens: AtomicU32,
    /// Any other request.
    pub malformed: AtomicU32,
}

/// A stand-in for Entra ID's token endpoint (`AZURE_AUTHORITY_HOST`) on 127.0.0.1, for
/// workload identity: it trades the federated token `assertion` of client `client_id` in
/// tenant `tenant` for `token`, as Entra ID does for an identity that trusts the issuer.
/// Stops when dropped.
pub struct EntraId {
    pub asked: Arc<EntraAsked>,
    served: super::served::Served,
}

struct EntraState {
    expected_path: String,
    client_id: String,
    assertion: String,
    token: String,
    asked: Arc<EntraAsked>,
}

impl EntraId {
    pub fn start(tenant: &str, client_id: &str, assertion: &str, token: &str) -> Self {
        let listener = super::served::Served::listener();
        let asked = Arc::new(EntraAsked::default());
        let state = Arc::new(EntraState {
            expected_path: format!("/{tenant}/oauth2/v2.0/token"),
            client_id: client_id.to_string(),
            assertion: assertion.to_string(),
            token: token.to_string(),
            asked: Arc::clone(&asked),
        });
        let app = Router::new().fallback(entra_answer).with_state(state);
        Self {
            asked,
            served: super::served::Served::start(listener, app),
        }
    }

    /// The authority host, as `AZURE_AUTHORITY_HOST` names it.
    pub fn authority_host(&self) -> String {
        format!("http://127.0.0.1:{}", self.served.port)
    }
}

async fn entra_answer(
    State(state): State<Arc<EntraState>>,
    method: Method,
    uri: Uri,
    body: String,
) -> Response {
    use std::sync::atomic::Ordering::SeqCst;
    let form: std::collections::HashMap<String, String> =
        reqwest::Url::parse(&format!("http://form/?{body}"))
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default();
    let field = |name: &str| form.get(name).map(String::as_str);
    let good = method == Method::POST
        && uri.path() == state.expected_path
        && field("client_id") == Some(state.client_id.as_str())
        && field("client_assertion") == Some(state.assertion.as_str())
        && field("client_assertion_type")
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && field("scope") == Some("https://storage.azure.com/.default")
        && field("grant_type") == Some("client_credentials");
    if !good {
        state.asked.malformed.fetch_add(1, SeqCst);
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#).into_response();
    }
    state.asked.tokens.fetch_add(1, SeqCst);
    let body = serde_json::json!({
        "access_token": state.token,
        "expires_in": 3600,
        "token_type": "Bearer",
    });
    (StatusCode::OK, body.to_string()).into_response()
}
