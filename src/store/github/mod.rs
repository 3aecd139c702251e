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
//! no, or cannot be reached, never fails a build. Commands ask [`super::nonfatal`] about an
//! error and turn such failures into a warning (save) or a miss (restore).

pub mod blob;
pub mod twirp;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{EntryInfo, Hit, Lookup, Query, Reservation, Store};
use crate::env_vars;
use crate::key::Compression;
use blob::{BlobClient, SignedUrl};
use twirp::{DownloadUrl, TwirpClient};

/// Everything that can go wrong talking to the cache service or the blob store.
///
/// `what` names the request (`CreateCacheEntry`, `Put Block 3`, `GET bytes 0-16777215`), never
/// its URL: signed URLs carry a secret.
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
        /// The Twirp `code`/`msg` or the Azure error code, with a leading separator.
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
    #[error(
        "{what}: the cache service refused the runtime token (HTTP 401); runtime tokens last about six hours, re-run the job for a new one"
    )]
    TokenRefused { what: String },
    #[error("{what}: the signed URL has expired or was refused (HTTP {status}{detail})")]
    UrlExpired {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: the server's answer is not what the protocol says: {problem}")]
    InvalidResponse { what: String, problem: String },
    #[error("{what}: the body ended after {got} of {expected} bytes")]
    Truncated {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error("{what}: the cache service said no: {message}")]
    Rejected { what: String, message: String },
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

    pub fn is_not_found(&self) -> bool {
        matches!(self.root(), Error::Status { status: 404, .. })
            || matches!(self.root(), Error::Status { detail, .. } if detail.starts_with(": not_found"))
    }

    pub fn is_mode_forbidden(&self) -> bool {
        matches!(self.root(), Error::ModeForbids { .. })
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
            Error::Rejected { .. } => "the cache service said no",
            Error::InvalidResponse { .. } => "the cache service answered nonsense",
            _ => "the cache service or its blob store could not be reached",
        }
    }
}

/// How often and how long to retry one unit of work (an RPC, a block, a segment).
///
/// Defaults follow the toolkit's Twirp client: 5 attempts, about 3 s growing by 1.5x. A 429
/// waits for its `Retry-After` when that is at most `max_retry_after`; otherwise the save gives
/// up at once, because the limit is per repository and waiting minutes helps nobody. Tests
/// shrink the delays through `CACHE_HEAL_HTTP_RETRY_DELAY_MS` and
/// `CACHE_HEAL_RETRY_AFTER_MAX_SECS`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_retry_after: Duration,
}

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

    /// The pause before attempt `n + 1`: `base · 1.5^n`, with up to 50 % jitter, at most 60 s.
    fn delay(&self, n: u32) -> Duration {
        let base = self.base_delay.as_secs_f64() * 1.5f64.powi(n as i32);
        let jittered = base * (1.0 + rand::random::<f64>() * 0.5);
        Duration::from_secs_f64(jittered.min(60.0))
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts are used up. With
    /// `renew_urls`, an expired signed URL is retried too (the op renews it first).
    pub async fn run<T, F, Fut>(&self, what: &str, renew_urls: bool, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let wait = if error.is_transient() || (renew_urls && error.is_url_expired()) {
                Some(self.delay(attempt - 1))
            } else if let Error::RateLimited { retry_after, .. } = error.root() {
                let wait = retry_after.unwrap_or(self.base_delay);
                (wait <= self.max_retry_after).then_some(wait)
            } else {
                None
            };
            match wait {
                Some(wait) if attempt < self.attempts => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ if attempt == 1 => return Err(error),
                _ => {
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

/// Tuning for transfers; the defaults match what the Azure SDK does for actions/cache.
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
            download_concurrency: 8,
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("cache-heal/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
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
        "the GitHub Actions cache".to_string()
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
            .ok_or_else(|| anyhow!("`{}` was not found by this store", hit.locator))?;
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

    fn create(&self, key: &str, version: &str, _compression: Compression) -> Result<Reservation> {
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
            .run("x", false, || {
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
            .run("x", false, || {
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
