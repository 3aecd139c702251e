//! The GitHub Actions cache store: GitHub's cache service v2, the one actions/cache talks to, so
//! entries move both ways between actions/cache and cache-heal.
//!
//! Two HTTP surfaces, one module each:
//!
//! - [`twirp`]: the cache service's Twirp JSON API at `ACTIONS_RESULTS_URL`
//!   (`CreateCacheEntry`, `FinalizeCacheEntryUpload`, `GetCacheEntryDownloadURL`), which
//!   reserves, publishes and finds entries and hands out signed URLs;
//! - [`blob`]: the signed Azure Blob URLs themselves (Put Blob, Put Block, Put Block List and
//!   ranged GETs), which carry the archive bytes.
//!
//! This file holds what both share: the error type callers branch on, the retry policy, the
//! `ACTIONS_CACHE_MODE` gate, and [`GhaStore`], which joins the two surfaces behind the
//! synchronous [`Store`] trait. The store owns a small tokio runtime; the archive code on the
//! other side of `Read`/`Write` stays plain blocking code.
//!
//! Facts and their sources are in `docs/gha-cache-protocol.md` (§2 wire format, §3 error
//! classes, §4 blob transfer). Failure policy follows actions/cache: a cache service that says
//! no, or cannot be reached, never fails a build.
//!
//! Self-hosted servers speak the same protocol with other habits (README, "Self-hosted cache
//! servers"; read from falcondev-oss/github-actions-cache-server v9.4.7): unsigned URLs on the
//! server's own host, downloads without `Range` or `Content-Length`, errors in their
//! framework's JSON or plain text rather than Twirp's, re-saves that replace the entry, and an
//! upload they drop after a failed finalize. So errors carry the server's own message
//! ([`server_message`]), GitHub-specific advice is given only when [`Service::is_github`], and
//! a 404 is retried only where GitHub's service is known to answer one transiently. Commands ask [`super::nonfatal`] about an
//! error and turn such failures into a warning (save) or a miss (restore).

pub mod blob;
pub mod twirp;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{EntryInfo, Hit, Lookup, NewEntry, Query, Reservation, Store};
use crate::env_vars;
use blob::{BlobClient, SignedUrl};
use twirp::{DownloadUrl, TwirpClient};

/// Everything that can go wrong talking to the cache service or the blob store.
///
/// `what` names the request (`CreateCacheEntry`, `Put Block 3`, `GET bytes 0-16777215`), never
/// its URL: signed URLs carry a secret. A `detail` is the server's own message, trimmed and
/// redacted (see [`server_message`]), with a leading separator, or empty.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: the connection failed")]
    Connection {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: no complete answer within {:.1}s", .after.as_secs_f64())]
    TimedOut { what: String, after: Duration },
    #[error("{what}: HTTP {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: HTTP 429, the cache service is rate-limiting{}", retry_after_text(.retry_after))]
    RateLimited {
        what: String,
        retry_after: Option<Duration>,
    },
    #[error("{what}: another job saved this key first, or is saving it now")]
    AlreadyExists { what: String },
    #[error(
        "{what}: the cache service denied writing ({message}); pull requests from forks and read-only tokens cannot save"
    )]
    WriteDenied { what: String, message: String },
    #[error("{what}: the cache service denied reading ({message})")]
    ReadDenied { what: String, message: String },
    #[error("{}", token_refused_text(.what, .service, .detail))]
    TokenRefused {
        what: String,
        service: Service,
        detail: String,
    },
    #[error("{what}: the signed URL has expired or was refused (HTTP {status}{detail})")]
    UrlExpired {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: the answer does not follow the protocol: {problem}")]
    InvalidResponse { what: String, problem: String },
    #[error("{what}: the body ended after {got} of {expected} bytes")]
    Truncated {
        what: String,
        got: u64,
        expected: u64,
    },
    /// `ok: false` from an RPC: the service did answer, and declined.
    #[error("{what} answered `ok: false`: {message}")]
    Declined { what: String, message: String },
    /// A lookup listed the entry, and its archive is not there (HTTP 404 on the download).
    #[error(
        "the entry `{key}` is listed but its archive is gone (HTTP {status} from the server{detail})"
    )]
    EntryGone {
        key: String,
        status: u16,
        detail: String,
    },
    /// The entry disappeared while it was being downloaded (evicted or replaced).
    #[error("the entry `{key}` was no longer listed when its download URL had to be renewed")]
    EntryVanished { key: String },
    #[error("renewing the download URL of `{key}`: it expired {renewals} times in one download")]
    UrlKeepsExpiring { key: String, renewals: u32 },
    /// A retried request whose retry the server no longer recognises: it dropped the upload
    /// after its first failure, so the first failure is what happened.
    #[error(
        "{first}; the server then dropped the upload (HTTP {status}{detail}), so retrying cannot help"
    )]
    UploadDropped {
        first: Box<Error>,
        status: u16,
        detail: String,
    },
    /// One of cache-heal's own transfer tasks panicked: a bug here, not a fault of the server.
    #[error(
        "{what}: a cache-heal transfer task panicked (a bug in cache-heal, not a fault of the server)"
    )]
    TaskPanicked { what: String },
    #[error("`ACTIONS_CACHE_MODE={mode}` does not allow {action}")]
    ModeForbids { mode: String, action: &'static str },
    #[error("{what} failed after {attempts} attempts in {:.1}s", .elapsed.as_secs_f64())]
    RetriesExhausted {
        what: String,
        attempts: u32,
        elapsed: Duration,
        #[source]
        last: Box<Error>,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (`Retry-After: {}s`)", d.as_secs()),
        None => String::new(),
    }
}

fn token_refused_text(what: &str, service: &Service, detail: &str) -> String {
    if service.is_github {
        format!(
            "{what}: the cache service refused the runtime token (HTTP 401{detail}); runtime tokens last about six hours, re-run the job for a new one"
        )
    } else {
        format!(
            "{what}: the cache service at `{}` refused the runtime token (HTTP 401{detail})",
            service.host
        )
    }
}

/// Which cache service `ACTIONS_RESULTS_URL` names: GitHub's own, or a self-hosted one (such as
/// falcondev-oss/github-actions-cache-server), whose answers and rules differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `host[:port]`, for messages.
    pub host: String,
    pub is_github: bool,
}

impl Service {
    pub fn of(url: &reqwest::Url) -> Self {
        let name = url.host_str().unwrap_or("").to_ascii_lowercase();
        let host = match url.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.clone(),
        };
        Self {
            is_github: is_github_host(&name),
            host,
        }
    }
}

/// GitHub's own hosts: github.com and its Actions services (`*.actions.githubusercontent.com`),
/// and GitHub Enterprise Cloud with data residency (`*.ghe.com`).
fn is_github_host(host: &str) -> bool {
    ["github.com", "githubusercontent.com", "ghe.com"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

impl Error {
    /// The error behind any retry wrapper.
    pub fn root(&self) -> &Error {
        match self {
            Error::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// Worth trying the same unit again: a broken connection, a timeout, a 5xx or 408, a body
    /// cut short, an answer that does not parse (the toolkit retries those too).
    pub fn is_transient(&self) -> bool {
        match self.root() {
            Error::Connection { source, .. } => !source.is_builder(),
            Error::TimedOut { .. } | Error::Truncated { .. } | Error::InvalidResponse { .. } => {
                true
            }
            Error::Status { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self.root(), Error::RateLimited { .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self.root(), Error::AlreadyExists { .. })
    }

    pub fn is_write_denied(&self) -> bool {
        matches!(self.root(), Error::WriteDenied { .. })
    }

    pub fn is_read_denied(&self) -> bool {
        matches!(self.root(), Error::ReadDenied { .. })
    }

    pub fn is_url_expired(&self) -> bool {
        matches!(self.root(), Error::UrlExpired { .. })
    }

    /// Any 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self.root(), Error::Status { status: 404, .. })
            || matches!(self.root(), Error::Status { detail, .. } if detail.starts_with(": not_found"))
    }

    /// Twirp's own `not_found`, as GitHub's service answers it (a self-hosted server's 404
    /// carries its own body, and means what it says).
    pub fn is_twirp_not_found(&self) -> bool {
        matches!(self.root(), Error::Status { detail, .. } if detail.starts_with(": not_found"))
    }

    pub fn is_mode_forbidden(&self) -> bool {
        matches!(self.root(), Error::ModeForbids { .. })
    }

    /// The entry itself is damaged (listed, and its archive gone): a restore reports a damaged
    /// entry, not a failing service.
    pub fn is_damaged_entry(&self) -> bool {
        matches!(self.root(), Error::EntryGone { .. })
    }

    /// What it means for the user, in a few words, for the first line of a warning.
    pub fn summary(&self) -> &'static str {
        match self.root() {
            Error::RateLimited { .. } => "the cache service is rate-limiting",
            Error::AlreadyExists { .. } => "another job saved this key first",
            Error::WriteDenied { .. } => "this job may not write to the cache",
            Error::ReadDenied { .. } => "this job may not read from the cache",
            Error::TokenRefused { .. } => "the runtime token was refused",
            Error::UrlExpired { .. } => "the signed URL expired",
            Error::ModeForbids { .. } => "`ACTIONS_CACHE_MODE` turns it off",
            Error::Declined { .. } => "the cache service declined",
            Error::InvalidResponse { .. } => {
                "the cache service's answer does not follow the protocol"
            }
            Error::EntryGone { .. } => "the entry is listed but its archive is gone",
            Error::EntryVanished { .. } => "the entry disappeared during the download",
            Error::UrlKeepsExpiring { .. } => "the download URL kept expiring",
            Error::UploadDropped { .. } => "the server dropped the upload",
            Error::TaskPanicked { .. } => "a cache-heal transfer task panicked",
            Error::Truncated { .. } => "the transfer was cut short",
            Error::Status { status, .. } if *status >= 500 => "the server failed the request",
            Error::Status { .. } => "the server refused the request",
            Error::Connection { what, .. } | Error::TimedOut { what, .. } if is_rpc(what) => {
                "the cache service could not be reached"
            }
            Error::Connection { .. } | Error::TimedOut { .. } => {
                "the blob store could not be reached"
            }
            // `root` never returns a retry wrapper; this arm only completes the match.
            Error::RetriesExhausted { .. } => "the cache service could not be reached",
        }
    }

    /// Why a retry happens, as the rest of "The cache service at `h` …": what it did to `what`.
    fn retry_reason(&self) -> String {
        match self.root() {
            Error::Connection { what, source } => {
                format!("did not answer `{what}` ({})", innermost(source))
            }
            Error::TimedOut { what, after } => {
                format!("did not answer `{what}` within {:.0}s", after.as_secs_f64())
            }
            Error::Status {
                what,
                status,
                detail,
            } => format!("answered `{what}` with HTTP {status}{detail}"),
            Error::RateLimited { what, .. } => format!("is rate-limiting `{what}`"),
            Error::Truncated { what, .. } => format!("cut the answer to `{what}` short"),
            Error::UrlExpired { what, .. } => format!("refused the signed URL of `{what}`"),
            other => format!("failed: {other}"),
        }
    }
}

/// Whether a request is one of the cache service's RPCs (else it went to the blob store).
fn is_rpc(what: &str) -> bool {
    [
        "CreateCacheEntry",
        "FinalizeCacheEntryUpload",
        "GetCacheEntryDownloadURL",
    ]
    .iter()
    .any(|rpc| what.starts_with(rpc))
}

/// The innermost cause of an error, which for a connection is what the OS said.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Query parameters that are secrets: Azure's `sig`, and S3's in case a server presigns there.
pub(crate) const SECRET_PARAMS: [&str; 3] = ["sig", "X-Amz-Signature", "X-Amz-Credential"];

/// The server's own words from an error body, for a message: Twirp's `code`/`msg`, the
/// `message` of other JSON bodies (a self-hosted server's framework), Azure's `<Message>`, or
/// plain text; trimmed to one line of at most 200 characters, with signatures and bearer
/// tokens masked. Empty when the body says nothing usable (empty, or an HTML page).
pub fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let said = if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let field = |name: &str| {
            json.get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let message = field("msg")
            .or_else(|| field("message"))
            .or_else(|| field("statusMessage"))
            .or_else(|| field("error"));
        match (field("code"), message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            (None, Some(message)) => message.to_string(),
            (None, None) => String::new(),
        }
    } else if let Some(message) = xml_element(text, "Message") {
        match xml_element(text, "Code") {
            Some(code) => format!("{code}: {message}"),
            None => message,
        }
    } else if text.starts_with('<') {
        // An HTML error page: nothing worth a line.
        String::new()
    } else {
        text.to_string()
    };
    let one_line = said.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut trimmed: String = one_line.chars().take(200).collect();
    if trimmed.len() < one_line.len() {
        trimmed.push('…');
    }
    redact(&trimmed)
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(text[start..end].trim().to_string())
}

/// Masks signature query values (`sig=…`) and bearer tokens in free text from a server.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    let lower = |s: &str| s.to_ascii_lowercase();
    for name in SECRET_PARAMS
        .iter()
        .map(|n| format!("{n}="))
        .chain(["Bearer ".to_string()])
    {
        let mut searched = 0;
        while let Some(found) = lower(&out[searched..]).find(&lower(&name)) {
            let value_start = searched + found + name.len();
            let value_end = out[value_start..]
                .find(|c: char| c == '&' || c == '"' || c == '\'' || c == '<' || c.is_whitespace())
                .map_or(out.len(), |n| value_start + n);
            if value_end > value_start {
                out.replace_range(value_start..value_end, "****");
                searched = value_start + 4;
            } else {
                searched = value_start;
            }
        }
    }
    out
}

/// How often and how long to retry one unit of work (an RPC, a block, a segment).
///
/// Defaults follow the toolkit's Twirp client: 5 attempts, about 3 s growing by 1.5x. A 429
/// waits for its `Retry-After` when that is at most `max_retry_after`; otherwise the save gives
/// up at once, because the limit is per repository and waiting minutes helps nobody. Tests
/// shrink the delays through `CACHE_HEAL_HTTP_RETRY_DELAY_MS` and
/// `CACHE_HEAL_RETRY_AFTER_MAX_SECS`.
///
/// A wait longer than [`ANNOUNCED_WAIT`] is announced with one info line that names the server,
/// what it did and how long the retries may take, so a long retry is never silent.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_retry_after: Duration,
}

/// Waits longer than this get an info line (STYLE.md §4: never silent for more than a moment).
const ANNOUNCED_WAIT: Duration = Duration::from_secs(2);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(3000),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub fn from_env() -> Result<Self> {
        let mut policy = Self::default();
        if let Some(n) = env_number(env_vars::CACHE_HEAL_HTTP_RETRIES)? {
            policy.attempts = (n as u32).max(1);
        }
        if let Some(ms) = env_number(env_vars::CACHE_HEAL_HTTP_RETRY_DELAY_MS)? {
            policy.base_delay = Duration::from_millis(ms);
        }
        if let Some(s) = env_number(env_vars::CACHE_HEAL_RETRY_AFTER_MAX_SECS)? {
            policy.max_retry_after = Duration::from_secs(s);
        }
        Ok(policy)
    }

    /// The pause before attempt `n + 2`: `base · 1.5^n`, with up to 50 % jitter, at most 60 s.
    fn delay(&self, n: u32) -> Duration {
        let base = self.base_delay.as_secs_f64() * 1.5f64.powi(n as i32);
        let jittered = base * (1.0 + rand::random::<f64>() * 0.5);
        Duration::from_secs_f64(jittered.min(60.0))
    }

    /// The longest the retries after attempt `attempt` may still wait in all.
    fn longest_remaining(&self, attempt: u32) -> Duration {
        let secs: f64 = (attempt - 1..self.attempts.saturating_sub(1))
            .map(|n| (self.base_delay.as_secs_f64() * 1.5f64.powi(n as i32) * 1.5).min(60.0))
            .sum();
        Duration::from_secs_f64(secs)
    }

    /// How long to wait before trying again after `error` on attempt `attempt`, or `None` to
    /// give up now. With `renew_urls`, an expired signed URL is retried too.
    fn wait_for(&self, error: &Error, attempt: u32, renew_urls: bool) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        if error.is_transient() || (renew_urls && error.is_url_expired()) {
            Some(self.delay(attempt - 1))
        } else if let Error::RateLimited { retry_after, .. } = error.root() {
            let wait = retry_after.unwrap_or(self.base_delay);
            (wait <= self.max_retry_after).then_some(wait)
        } else {
            None
        }
    }

    /// Says, once per unit of work, that a long wait is coming and why.
    fn announce(&self, who: &str, error: &Error, attempt: u32, wait: Duration, told: &mut bool) {
        if *told || wait <= ANNOUNCED_WAIT {
            return;
        }
        *told = true;
        let mut budget = self.longest_remaining(attempt);
        if error.is_rate_limited() {
            budget = budget.max(wait);
        }
        crate::output::info(&format!(
            "{who} {}; retrying for up to {}s",
            error.retry_reason(),
            budget.as_secs_f64().ceil() as u64
        ));
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts are used up. With
    /// `renew_urls`, an expired signed URL is retried too (the op renews it first). `who` names
    /// the server for the line that announces a long wait (`The cache service at `…``).
    pub async fn run<T, F, Fut>(
        &self,
        who: &str,
        what: &str,
        renew_urls: bool,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let mut attempt = 1;
        let mut told = false;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match self.wait_for(&error, attempt, renew_urls) {
                Some(wait) => {
                    self.announce(who, &error, attempt, wait, &mut told);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None if attempt == 1 => return Err(error),
                None => {
                    return Err(Error::RetriesExhausted {
                        what: what.to_string(),
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        last: Box::new(error),
                    });
                }
            }
        }
    }
}

fn env_number(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("`{name}` is `{v}`; expected a whole number")),
        _ => Ok(None),
    }
}

/// `ACTIONS_CACHE_MODE`, as @actions/cache 6.3 reads it: `read` and `write` allow restores,
/// `write` and `write-only` allow saves, `none` allows neither; unset or unknown allows both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMode(String);

impl CacheMode {
    pub fn new(value: Option<String>) -> Self {
        Self(value.unwrap_or_default().trim().to_ascii_lowercase())
    }

    pub fn allows_restore(&self) -> bool {
        !matches!(self.0.as_str(), "write-only" | "none")
    }

    pub fn allows_save(&self) -> bool {
        !matches!(self.0.as_str(), "read" | "none")
    }

    fn forbids(&self, action: &'static str) -> Error {
        Error::ModeForbids {
            mode: self.0.clone(),
            action,
        }
    }
}

/// The runtime token: kept out of every `Debug` and `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: String) -> Self {
        Self(token)
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(****)")
    }
}

/// Tells the Actions runner to hide `secret` in every later log line.
pub(crate) fn mask(secret: &str) {
    if !secret.is_empty() && crate::output::in_github_actions() {
        eprintln!("::add-mask::{secret}");
    }
}

/// Tuning for transfers. Four uploads in flight as actions/cache; three download segments (it
/// runs eight of 4 MiB), each holding at most 8 MiB for the unpacker, so that they stay within
/// the memory bound with few requests (see `blob`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub retry: RetryPolicy,
    /// `SEGMENT_DOWNLOAD_TIMEOUT_MINS`: how long one attempt at a download segment may take;
    /// a segment that times out is retried like any transient failure, then the restore is a
    /// miss.
    pub segment_timeout: Duration,
    pub upload_concurrency: usize,
    pub download_concurrency: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self> {
        // The toolkit reads it with `Number(...)`, so fractions are valid (`0.5` is 30 s).
        let name = env_vars::SEGMENT_DOWNLOAD_TIMEOUT_MINS;
        let segment_minutes = match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m > 0.0)
                .ok_or_else(|| {
                    anyhow!("`{name}` is `{v}`; expected a positive number of minutes")
                })?,
            _ => 10.0,
        };
        Ok(Self {
            retry: RetryPolicy::from_env()?,
            segment_timeout: Duration::from_secs_f64(segment_minutes * 60.0),
            upload_concurrency: 4,
            download_concurrency: 3,
        })
    }
}

/// The store: Twirp for metadata, signed blob URLs for bytes.
pub struct GhaStore {
    runtime: Arc<tokio::runtime::Runtime>,
    twirp: TwirpClient,
    blob: BlobClient,
    mode: CacheMode,
    /// Signed download URLs by the opaque locator handed out in `Hit`, so a URL never sits in a
    /// value that may be printed.
    hits: Mutex<HashMap<String, (SignedUrl, String)>>,
}

impl GhaStore {
    /// A store for the service at `results_url`, authenticated by `token`.
    pub fn new(
        results_url: &str,
        token: Token,
        mode: CacheMode,
        settings: Settings,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cache-heal-http")
            .enable_all()
            .build()
            .context("starting the HTTP runtime")?;
        let http = crate::http::client(16)?;
        let twirp = TwirpClient::new(http.clone(), results_url, token, settings.retry.clone())?;
        let blob = BlobClient::new(http, settings);
        Ok(Self {
            runtime: Arc::new(runtime),
            twirp,
            blob,
            mode,
            hits: Mutex::new(HashMap::new()),
        })
    }

    /// The store the runner's environment describes: `ACTIONS_RESULTS_URL`,
    /// `ACTIONS_RUNTIME_TOKEN`, `ACTIONS_CACHE_MODE`.
    pub fn from_env() -> Result<Self> {
        let token = std::env::var(env_vars::ACTIONS_RUNTIME_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty());
        let Some(token) = token else {
            bail!(
                "`{}` is not set, so `--store gha` cannot reach the cache service\n\
                 `run:` steps never receive it; only the cache-heal action hands it to the binary\n\n\
                 hint: outside GitHub Actions, use `--store dir:<DIR>` (the default is a local directory)",
                env_vars::ACTIONS_RUNTIME_TOKEN
            );
        };
        mask(&token);
        let url = std::env::var(env_vars::ACTIONS_RESULTS_URL)
            .ok()
            .filter(|t| !t.trim().is_empty());
        let Some(url) = url else {
            bail!(
                "`{}` is not set, so `--store gha` cannot reach the cache service\n\n\
                 hint: outside GitHub Actions, use `--store dir:<DIR>` (the default is a local directory)",
                env_vars::ACTIONS_RESULTS_URL
            );
        };
        let mode = CacheMode::new(std::env::var(env_vars::ACTIONS_CACHE_MODE).ok());
        Self::new(&url, Token::new(token), mode, Settings::from_env()?)
    }
}

/// Whether the runner's environment names a cache service (both variables set).
pub fn configured_in_env() -> bool {
    [
        env_vars::ACTIONS_RESULTS_URL,
        env_vars::ACTIONS_RUNTIME_TOKEN,
    ]
    .iter()
    .all(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

impl Store for GhaStore {
    fn describe(&self) -> String {
        let service = self.twirp.service();
        if service.is_github {
            "the GitHub Actions cache".to_string()
        } else {
            // A self-hosted server (or a test stand-in): name it, so messages say which.
            format!("the GitHub Actions cache at `{}`", service.host)
        }
    }

    fn lookup(&self, query: &Query) -> Result<Lookup> {
        if !self.mode.allows_restore() {
            return Err(self.mode.forbids("restores").into());
        }
        let found = self
            .runtime
            .block_on(crate::interrupt::race(self.twirp.download_url(
                &query.key,
                &query.restore_keys,
                &query.version,
            )))??;
        Ok(match found {
            DownloadUrl::Miss => Lookup::Miss,
            DownloadUrl::Hit { url, matched_key } => {
                let mut hits = self.hits.lock().expect("hits lock");
                let locator = format!("gha-hit-{}", hits.len());
                hits.insert(locator.clone(), (url, query.version.clone()));
                Lookup::Found(Hit {
                    matched_key,
                    size: None,
                    compression: None,
                    locator,
                })
            }
        })
    }

    fn open(&self, hit: &Hit) -> Result<Box<dyn Read + Send>> {
        let (url, version) = self
            .hits
            .lock()
            .expect("hits lock")
            .get(&hit.locator)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "the download URL of `{}` was not kept from its lookup (a bug in cache-heal)",
                    hit.matched_key
                )
            })?;
        let renewer = Arc::new(twirp::UrlRenewer::new(
            self.twirp.clone(),
            hit.matched_key.clone(),
            version,
            url,
        ));
        Ok(Box::new(blob::Download::start(
            Arc::clone(&self.runtime),
            self.blob.clone(),
            renewer,
        )))
    }

    fn check_writable(&self) -> Result<()> {
        if !self.mode.allows_save() {
            return Err(self.mode.forbids("saves").into());
        }
        Ok(())
    }

    fn create(&self, entry: &NewEntry) -> Result<Reservation> {
        let (key, version) = (entry.key, entry.version);
        if !self.mode.allows_save() {
            return Err(self.mode.forbids("saves").into());
        }
        match self.runtime.block_on(crate::interrupt::race(
            self.twirp.create_entry(key, version),
        ))?? {
            twirp::Reservation::AlreadyExists => Ok(Reservation::AlreadyExists),
            twirp::Reservation::Created(url) => {
                Ok(Reservation::Created(Box::new(blob::Upload::new(
                    Arc::clone(&self.runtime),
                    self.blob.clone(),
                    self.twirp.clone(),
                    key.to_string(),
                    version.to_string(),
                    url,
                ))))
            }
        }
    }

    fn list(&self) -> Result<Vec<EntryInfo>> {
        bail!(
            "the GitHub Actions cache service v2 has no listing call\n\n\
             hint: list entries with `gh cache list`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        Error::Status {
            what: "x".into(),
            status: code,
            detail: String::new(),
        }
    }

    #[test]
    fn retry_classification() {
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(status(408).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).is_transient());
        let limited = Error::RateLimited {
            what: "x".into(),
            retry_after: None,
        };
        assert!(!limited.is_transient() && limited.is_rate_limited());
        let wrapped = Error::RetriesExhausted {
            what: "x".into(),
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(limited),
        };
        assert!(wrapped.is_rate_limited());
    }

    #[test]
    fn server_messages_come_from_any_body_shape_and_hide_secrets() {
        assert_eq!(
            server_message(br#"{"code":"not_found","msg":"no entry"}"#),
            "not_found: no entry"
        );
        // falcondev-oss/github-actions-cache-server answers in its framework's JSON.
        assert_eq!(
            server_message(
                br#"{"error":true,"url":"/x","statusCode":500,"statusMessage":"Server Error","message":"Not all parts have been uploaded (only 1 of 2 parts uploaded)"}"#
            ),
            "Not all parts have been uploaded (only 1 of 2 parts uploaded)"
        );
        assert_eq!(
            server_message(b"  Cache file not found\n\n"),
            "Cache file not found"
        );
        assert_eq!(server_message(b"<html><body>bad</body></html>"), "");
        assert_eq!(
            server_message(br#"{"code":"not_found","msg":""}"#),
            "not_found"
        );
        assert_eq!(
            server_message(b"<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>"),
            "BlobNotFound: The specified blob does not exist."
        );
        let shown = server_message(
            b"denied https://x.blob.core.windows.net/c/b?sv=1&sig=SECRET%2B&se=2 with Bearer eyJabc.def",
        );
        assert!(
            !shown.contains("SECRET") && !shown.contains("eyJabc"),
            "{shown}"
        );
        assert!(shown.contains("sig=****&se=2"), "{shown}");
        let long = "x".repeat(500);
        assert!(server_message(long.as_bytes()).chars().count() <= 201);
    }

    #[test]
    fn githubs_hint_only_for_githubs_service() {
        let service = |url: &str| Service::of(&reqwest::Url::parse(url).unwrap());
        assert!(service("https://results-receiver.actions.githubusercontent.com/").is_github);
        assert!(service("https://acme.ghe.com/").is_github);
        assert!(!service("http://cache.internal:3000/").is_github);
        assert!(!service("https://notgithub.com/").is_github);
        let refused = |url: &str| {
            Error::TokenRefused {
                what: "CreateCacheEntry".into(),
                service: service(url),
                detail: ": Invalid token".into(),
            }
            .to_string()
        };
        assert!(
            refused("https://results-receiver.actions.githubusercontent.com/")
                .contains("six hours")
        );
        let own = refused("http://cache.internal:3000/");
        assert!(!own.contains("six hours"), "{own}");
        assert!(own.contains("the cache service at `cache.internal:3000` refused the runtime token (HTTP 401: Invalid token)"), "{own}");
    }

    #[test]
    fn retries_say_how_long_they_may_take() {
        let policy = RetryPolicy::default();
        // 3 + 4.5 + 6.75 + 10.125 s, each with up to 50 % jitter.
        assert_eq!(policy.longest_remaining(1).as_secs_f64().ceil() as u64, 37);
        assert_eq!(policy.longest_remaining(5), Duration::ZERO);
        let error = Error::Status {
            what: "CreateCacheEntry".into(),
            status: 503,
            detail: ": unavailable".into(),
        };
        assert_eq!(
            error.retry_reason(),
            "answered `CreateCacheEntry` with HTTP 503: unavailable"
        );
    }

    #[test]
    fn cache_mode_gates_like_actions_cache() {
        let m = |v: &str| CacheMode::new(Some(v.to_string()));
        assert!(m("read").allows_restore() && !m("read").allows_save());
        assert!(m("write").allows_restore() && m("write").allows_save());
        assert!(!m("write-only").allows_restore() && m("write-only").allows_save());
        assert!(!m("none").allows_restore() && !m("none").allows_save());
        assert!(CacheMode::new(None).allows_restore() && CacheMode::new(None).allows_save());
        assert!(m("bogus").allows_restore() && m("bogus").allows_save());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rate_limits_wait_for_retry_after_only_when_bounded() {
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_retry_after: Duration::from_millis(500),
        };
        let mut calls = 0;
        let result: Result<(), Error> = policy
            .run("The test server", "x", false, || {
                calls += 1;
                async {
                    Err(Error::RateLimited {
                        what: "x".into(),
                        retry_after: Some(Duration::from_secs(60)),
                    })
                }
            })
            .await;
        assert_eq!(calls, 1, "a Retry-After beyond the bound gives up at once");
        assert!(result.unwrap_err().is_rate_limited());

        let mut calls = 0;
        let result: Result<u8, Error> = policy
            .run("The test server", "x", false, || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Error::RateLimited {
                            what: "x".into(),
                            retry_after: Some(Duration::from_millis(20)),
                        })
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
    }
}
