//! The cache service's Twirp API: three JSON RPCs that reserve, publish and find entries.
//!
//! Wire shape (docs/gha-cache-protocol.md §2): `POST <origin>/twirp/github.actions.results.api.v1.CacheService/<Method>`,
//! Bearer token, proto3 JSON with snake_case names and int64 values as strings. The URL is built
//! the way @actions/cache builds it, `new URL('/twirp/...', ACTIONS_RESULTS_URL)`, so a path in
//! `ACTIONS_RESULTS_URL` is dropped.
//!
//! [`TwirpClient::call`] is the only place that turns a status and a body into a typed
//! [`Error`]; each RPC is a few lines on top of it. Two answers are values, not errors:
//! `already_exists` on `CreateCacheEntry` (another job saved the key; entries are immutable, so
//! its content stands) and `ok: false` on `GetCacheEntryDownloadURL` (a miss).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::time::{Duration, Instant};

use super::blob::SignedUrl;
use super::{Error, RetryPolicy, Service, Token, server_message};

const SERVICE_PATH: &str = "/twirp/github.actions.results.api.v1.CacheService/";
/// How long one RPC may take; they carry a few hundred bytes.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// `FinalizeCacheEntryUpload` right after an upload can briefly answer Twirp's `not_found` on
/// GitHub's service (hestia retries it 5 times, 2 s apart); we do the same, with the retry
/// policy's base delay. A 404 in any other shape, or one that follows a failed attempt, is a
/// server that dropped the upload (falcondev-oss/github-actions-cache-server deletes an upload
/// whose finalize failed, then answers 404 "Upload not found"): never retried.
const FINALIZE_NOT_FOUND_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct TwirpClient {
    http: reqwest::Client,
    base: reqwest::Url,
    service: Service,
    token: Token,
    retry: RetryPolicy,
}

/// What `CreateCacheEntry` gave.
pub enum Reservation {
    Created(SignedUrl),
    AlreadyExists,
}

/// What `GetCacheEntryDownloadURL` found.
pub enum DownloadUrl {
    Hit { url: SignedUrl, matched_key: String },
    Miss,
}

#[derive(Serialize)]
struct CreateRequest<'a> {
    key: &'a str,
    version: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateResponse {
    ok: bool,
    signed_upload_url: String,
    message: String,
}

#[derive(Serialize)]
struct FinalizeRequest<'a> {
    key: &'a str,
    /// int64: a JSON string in proto3 JSON.
    size_bytes: String,
    version: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FinalizeResponse {
    ok: bool,
    entry_id: serde_json::Value,
    message: String,
}

#[derive(Serialize)]
struct DownloadRequest<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    restore_keys: Vec<&'a str>,
    version: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DownloadResponse {
    ok: bool,
    signed_download_url: String,
    matched_key: String,
}

/// A Twirp error body.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TwirpError {
    code: String,
    msg: String,
}

impl TwirpClient {
    pub fn new(
        http: reqwest::Client,
        results_url: &str,
        token: Token,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(results_url.trim()).map_err(|e| {
            anyhow::anyhow!("`ACTIONS_RESULTS_URL` is not a URL ({e}); expected something like `https://results-receiver.actions.githubusercontent.com/`")
        })?;
        let base = parsed
            .join(SERVICE_PATH)
            .map_err(|e| anyhow::anyhow!("`ACTIONS_RESULTS_URL` cannot be a base URL: {e}"))?;
        Ok(Self {
            http,
            service: Service::of(&base),
            base,
            token,
            retry,
        })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// "The cache service at `host`", for retry lines.
    fn who(&self) -> String {
        format!("The cache service at `{}`", self.service.host)
    }

    /// Reserves `key` at `version` and returns where to upload it.
    pub async fn create_entry(&self, key: &str, version: &str) -> Result<Reservation, Error> {
        const RPC: &str = "CreateCacheEntry";
        let request = CreateRequest { key, version };
        let answer: Result<CreateResponse, Error> = self
            .retry
            .run(&self.who(), RPC, false, || self.call(RPC, &request))
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(e) if e.is_already_exists() => return Ok(Reservation::AlreadyExists),
            Err(e) => return Err(e),
        };
        if !response.ok {
            let message = super::redact(response.message.trim());
            return Err(if message.contains("cache write denied") {
                Error::WriteDenied {
                    what: RPC.into(),
                    message,
                }
            } else if message.contains("already exists") {
                return Ok(Reservation::AlreadyExists);
            } else {
                Error::Declined {
                    what: format!("`{RPC}` for `{key}`"),
                    message: if message.is_empty() {
                        // falcondev-oss/github-actions-cache-server answers so while an earlier
                        // upload of the same key and version is unfinished.
                        "no reason given (a self-hosted server answers so while another upload of this key is unfinished)".into()
                    } else {
                        message
                    },
                }
            });
        }
        let url = SignedUrl::parse(&response.signed_upload_url).map_err(|problem| {
            Error::InvalidResponse {
                what: format!("{RPC} for `{key}`"),
                problem: format!("`signed_upload_url` {problem}"),
            }
        })?;
        Ok(Reservation::Created(url))
    }

    /// Publishes the entry reserved for `key` at `version` with its true size.
    pub async fn finalize(&self, key: &str, version: &str, size: u64) -> Result<String, Error> {
        const RPC: &str = "FinalizeCacheEntryUpload";
        let request = FinalizeRequest {
            key,
            size_bytes: size.to_string(),
            version,
        };
        let what = format!("{RPC} for `{key}`");
        let started = Instant::now();
        let (mut attempt, mut not_found_waits, mut told) = (1, 0, false);
        let mut first_failure: Option<Error> = None;
        let response: FinalizeResponse = loop {
            let error = match self.call(RPC, &request).await {
                Ok(response) => break response,
                Err(error) => error,
            };
            if let Error::Status {
                status: 404,
                detail,
                ..
            } = &error
            {
                if let Some(first) = first_failure {
                    return Err(Error::UploadDropped {
                        first: Box::new(first),
                        status: 404,
                        detail: detail.clone(),
                    });
                }
                if error.is_twirp_not_found() && not_found_waits + 1 < FINALIZE_NOT_FOUND_ATTEMPTS {
                    not_found_waits += 1;
                    tokio::time::sleep(self.retry.base_delay).await;
                    continue;
                }
                return Err(error);
            }
            match self.retry.wait_for(&error, attempt, false) {
                Some(wait) => {
                    self.retry
                        .announce(&self.who(), &error, attempt, wait, &mut told);
                    first_failure.get_or_insert(error);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None if attempt == 1 => return Err(error),
                None => {
                    return Err(Error::RetriesExhausted {
                        what,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        last: Box::new(error),
                    });
                }
            }
        };
        if !response.ok {
            let message = super::redact(response.message.trim());
            return Err(Error::Declined {
                what: format!("`{RPC}` for `{key}`"),
                message: if message.is_empty() {
                    "no reason given".into()
                } else {
                    message
                },
            });
        }
        Ok(match response.entry_id {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Finds the entry for `key`, else for the restore keys, at `version`.
    ///
    /// The key is sent again as the first restore key, as go-actions-cache and hestia do: hestia
    /// reports that the real service matches on `restore_keys` only, and on every server we read
    /// the repetition changes nothing.
    pub async fn download_url(
        &self,
        key: &str,
        restore_keys: &[String],
        version: &str,
    ) -> Result<DownloadUrl, Error> {
        const RPC: &str = "GetCacheEntryDownloadURL";
        let mut keys: Vec<&str> = vec![key];
        keys.extend(
            restore_keys
                .iter()
                .map(String::as_str)
                .filter(|k| *k != key),
        );
        let request = DownloadRequest {
            key,
            restore_keys: keys,
            version,
        };
        let answer: Result<DownloadResponse, Error> = self
            .retry
            .run(&self.who(), RPC, false, || self.call(RPC, &request))
            .await;
        let response = match answer {
            Ok(response) => response,
            // hestia treats twirp `not_found` as a miss; so do we. Any other 404 is a wrong
            // `ACTIONS_RESULTS_URL` or a broken server, and says so.
            Err(e) if e.is_twirp_not_found() => return Ok(DownloadUrl::Miss),
            Err(e) => return Err(e),
        };
        if !response.ok {
            return Ok(DownloadUrl::Miss);
        }
        let what = || format!("{RPC} for `{key}`");
        if response.matched_key.is_empty() {
            return Err(Error::InvalidResponse {
                what: what(),
                problem: "`ok: true` without a `matched_key`".into(),
            });
        }
        let url = SignedUrl::parse(&response.signed_download_url).map_err(|problem| {
            Error::InvalidResponse {
                what: what(),
                problem: format!("`signed_download_url` {problem}"),
            }
        })?;
        Ok(DownloadUrl::Hit {
            url,
            matched_key: response.matched_key,
        })
    }

    /// One RPC, one attempt: the only place that maps HTTP to [`Error`].
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, Error> {
        let url = self.base.join(method).expect("an RPC name is a valid path");
        let connection = |source: reqwest::Error| {
            if source.is_timeout() {
                Error::TimedOut {
                    what: method.into(),
                    after: RPC_TIMEOUT,
                }
            } else {
                Error::Connection {
                    what: method.into(),
                    source: source.without_url(),
                }
            }
        };
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(request)
            .timeout(RPC_TIMEOUT)
            .send()
            .await
            .map_err(connection)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(connection)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse {
                what: method.into(),
                problem: format!(
                    "HTTP {} with a body that is not the expected JSON ({e}){}",
                    status.as_u16(),
                    match server_message(&body) {
                        m if m.is_empty() => String::new(),
                        m => format!(": `{m}`"),
                    }
                ),
            });
        }
        let twirp: TwirpError = serde_json::from_slice(&body).unwrap_or_default();
        // The server's own words, whatever shape they came in (Twirp's, or a self-hosted
        // server's framework JSON or plain text), with the runtime token masked if echoed.
        let message = server_message(&body).replace(self.token.expose(), "****");
        let detail = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        let what = method.to_string();
        Err(match status.as_u16() {
            429 => Error::RateLimited { what, retry_after },
            401 => Error::TokenRefused {
                what,
                service: self.service.clone(),
                detail,
            },
            409 => Error::AlreadyExists { what },
            _ if twirp.code == "already_exists" => Error::AlreadyExists { what },
            403 if twirp.msg.contains("cache read denied") => Error::ReadDenied {
                what,
                message: twirp.msg,
            },
            403 if twirp.msg.contains("cache write denied") => Error::WriteDenied {
                what,
                message: twirp.msg,
            },
            code => Error::Status {
                what,
                status: code,
                detail,
            },
        })
    }
}

/// `Retry-After` in seconds (the only form the cache service sends).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Gets a fresh signed download URL for an entry already found, when the first one expired.
pub struct UrlRenewer {
    twirp: TwirpClient,
    pub(super) matched_key: String,
    version: String,
    state: tokio::sync::Mutex<(SignedUrl, u32)>,
}

/// A download may renew its URL this many times before it gives up.
const MAX_RENEWALS: u32 = 3;

impl UrlRenewer {
    pub fn new(twirp: TwirpClient, matched_key: String, version: String, url: SignedUrl) -> Self {
        Self {
            twirp,
            matched_key,
            version,
            state: tokio::sync::Mutex::new((url, 0)),
        }
    }

    pub async fn current(&self) -> SignedUrl {
        self.state.lock().await.0.clone()
    }

    /// Replaces `failed` with a fresh URL, unless another segment already did.
    pub async fn renew(&self, failed: &SignedUrl) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if state.0 != *failed {
            return Ok(());
        }
        if state.1 >= MAX_RENEWALS {
            return Err(Error::UrlKeepsExpiring {
                key: self.matched_key.clone(),
                renewals: MAX_RENEWALS,
            });
        }
        state.1 += 1;
        match self
            .twirp
            .download_url(&self.matched_key, &[], &self.version)
            .await?
        {
            DownloadUrl::Hit { url, matched_key } if matched_key == self.matched_key => {
                state.0 = url;
                Ok(())
            }
            _ => Err(Error::EntryVanished {
                key: self.matched_key.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_built_like_the_toolkit_builds_it() {
        let client = TwirpClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1234/some/path/",
            Token::new("t".into()),
            RetryPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            client.base.join("CreateCacheEntry").unwrap().as_str(),
            "http://127.0.0.1:1234/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry"
        );
    }

    #[test]
    fn int64_fields_are_strings_and_empty_restore_keys_are_left_out() {
        let finalize = serde_json::to_string(&FinalizeRequest {
            key: "k",
            size_bytes: 238u64.to_string(),
            version: "v",
        })
        .unwrap();
        assert_eq!(finalize, r#"{"key":"k","size_bytes":"238","version":"v"}"#);
        let lookup = serde_json::to_string(&DownloadRequest {
            key: "k",
            restore_keys: vec![],
            version: "v",
        })
        .unwrap();
        assert_eq!(lookup, r#"{"key":"k","version":"v"}"#);
    }
}
