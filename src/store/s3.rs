//! The S3 store: `--store s3://BUCKET[/PREFIX]` on AWS S3 and S3-compatible servers (MinIO, R2,
//! Ceph RGW, Garage, moto), with GitHub's rules: entries scoped by ref, first save wins, newest
//! match first.
//!
//! The layout, publishing, matching, restore and error safety are the same for every object
//! store and live in `object.rs`; this module knows S3's URL, endpoint, credentials and error
//! codes, and GitHub's scopes (which every object store uses).
//!
//! # Scopes (GitHub's, `docs/field-2026.md` §5: the S3 forks of actions/cache have none)
//!
//! A save writes into the scope of `GITHUB_REF`. A restore looks in `GITHUB_REF`, then in the
//! pull request's base branch (`GITHUB_BASE_REF`), then in the default branch, each scope with
//! the whole matching order (exact key, key as prefix, each restore key exact then as prefix,
//! newest first; `key::find_match`). The runner exports no default branch, so it is read from the
//! event payload (`GITHUB_EVENT_PATH`, `repository.default_branch`), else `main`. Outside
//! GitHub Actions the scope is `--scope` (default `local`); inside, `--scope` is refused, so a
//! pull request can never write into `main`'s scope through a flag (a bucket policy should
//! enforce it on the server as well).
//!
//! # Publishing
//!
//! moto 5.2.5 honours `If-None-Match: *` on the metadata object, as AWS does since 2024-08 and
//! R2 does too. A process killed outright leaves an incomplete multipart upload for the
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule, and never an entry.
//!
//! # Client and credentials
//!
//! `object_store` (apache/arrow-rs-object-store, `aws` and `azure` features) signs and sends the
//! requests on the reqwest + rustls stack the binary already has (`cargo tree`: one reqwest,
//! one hyper, one rustls), and retries 5xx (S3's `SlowDown` is a 503), 429 and broken
//! connections with exponential backoff. Credentials come from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
//! with `AWS_ROLE_ARN`, which is what GitHub OIDC sets up); shared config files, SSO and
//! instance metadata are not read. The region is `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
//! `us-east-1`.
//!
//! # Errors never carry a credential
//!
//! S3's error bodies can echo the canonical request (with the session token) and the access key
//! id; see `object.rs` for how errors keep only the S3 error code.

use anyhow::{Result, anyhow};
use object_store::ClientOptions;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use std::sync::Arc;
use std::time::Duration;

use super::object::{Flavor, ObjectStoreBacked, StoreName, Summaries, env_value, retry_config};
use crate::env_vars;

pub use super::object::Error;

/// The scope outside GitHub Actions when `--scope` is not given.
pub const LOCAL_SCOPE: &str = "local";
/// The default branch when the event payload does not name one.
const FALLBACK_DEFAULT_BRANCH: &str = "main";

/// `--store s3://BUCKET[/PREFIX]` with the flags that go with it, checked but not opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Spec {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `--s3-endpoint`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// `--s3-path-style`: address the bucket in the path even on AWS.
    pub path_style: bool,
    /// `--scope`.
    pub scope: Option<String>,
}

impl S3Spec {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`--store {text}` does not start with `s3://`"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(format!(
                "`--store {text}`: `{bucket}` is not an S3 bucket name (3 to 63 characters: lower-case letters, digits, `-` and `.`)\n\nhint: pass `--store s3://<BUCKET>[/<PREFIX>]`"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                if segment.is_empty()
                    || segment == "."
                    || segment == ".."
                    || segment.chars().any(|c| c.is_control())
                {
                    return Err(format!(
                        "`--store {text}`: the prefix `{prefix}` has an empty, `.` or `..` component or a control character"
                    ));
                }
            }
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            path_style: false,
            scope: None,
        })
    }

    pub fn describe(&self) -> String {
        let mut text = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            text.push('/');
            text.push_str(&self.prefix);
        }
        if let Some(endpoint) = self.resolved_endpoint() {
            text.push_str(&format!(" at `{}`", without_userinfo(&endpoint)));
        }
        text
    }

    fn resolved_endpoint(&self) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env_value(env_vars::AWS_ENDPOINT_URL_S3))
            .or_else(|| env_value(env_vars::AWS_ENDPOINT_URL))
    }
}

/// An endpoint as messages show it: never with a `user:password@`.
fn without_userinfo(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(an endpoint that is not a URL)".to_string(),
    }
}

/// Where a save writes and where a restore looks, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes {
    pub save: String,
    pub read: Vec<String>,
}

impl Scopes {
    /// GitHub's rules from the runner's environment, or `--scope` outside Actions.
    pub fn from_env(explicit: Option<&str>) -> Result<Self> {
        let in_actions = std::env::var(env_vars::GITHUB_ACTIONS).is_ok_and(|v| v == "true");
        let current = env_value(env_vars::GITHUB_REF);
        let base = env_value(env_vars::GITHUB_BASE_REF);
        Self::resolve(
            explicit,
            in_actions,
            current.as_deref(),
            base.as_deref(),
            default_branch,
        )
    }

    /// The rules themselves: `--scope` outside Actions; else the run's ref, then the pull
    /// request's base branch, then the default branch (asked for only when needed); else
    /// `local`.
    fn resolve(
        explicit: Option<&str>,
        in_actions: bool,
        current: Option<&str>,
        base: Option<&str>,
        default_branch: impl FnOnce() -> String,
    ) -> Result<Self> {
        if let Some(scope) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
            if in_actions {
                return Err(crate::UsageError::Invalid(format!(
                    "`--scope {scope}` is for runs outside GitHub Actions; in Actions the scope is the run's ref (`GITHUB_REF`), so a pull request cannot write into another ref's scope"
                ))
                .into());
            }
            check_scope(scope)?;
            return Ok(Self {
                save: scope.to_string(),
                read: vec![scope.to_string()],
            });
        }
        let Some(current) = current.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(Self {
                save: LOCAL_SCOPE.to_string(),
                read: vec![LOCAL_SCOPE.to_string()],
            });
        };
        check_scope(current)?;
        let mut read = vec![current.to_string()];
        let base = base
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| format!("refs/heads/{b}"));
        let default = format!("refs/heads/{}", default_branch());
        for scope in base.into_iter().chain(std::iter::once(default)) {
            if !read.contains(&scope) && check_scope(&scope).is_ok() {
                read.push(scope);
            }
        }
        Ok(Self {
            save: current.to_string(),
            read,
        })
    }
}

/// The repository's default branch, from the event payload the runner writes; `main` when
/// there is none (the runner exports no variable for it).
fn default_branch() -> String {
    env_value(env_vars::GITHUB_EVENT_PATH)
        .and_then(|path| fs_err::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|event| {
            event["repository"]["default_branch"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| FALLBACK_DEFAULT_BRANCH.to_string())
}

fn check_scope(scope: &str) -> Result<()> {
    let bad = scope
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(|c| c.is_control()));
    if bad {
        return Err(crate::UsageError::Invalid(format!(
            "scope `{scope}` has an empty, `.` or `..` component; expected a ref like `refs/heads/main` or a name like `local`"
        ))
        .into());
    }
    Ok(())
}

/// S3 error codes that mean "these credentials will not do".
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
    "AllAccessDisabled",
];

/// S3's words and error codes for the shared object store code.
static FLAVOR: Flavor = Flavor {
    service: "S3",
    container: "bucket",
    missing_container_codes: &["NoSuchBucket"],
    credential_codes: CREDENTIAL_CODES,
    // No token provider whose failures need naming: web identity failures are classified as
    // any other request's.
    token_failures: &[],
    check_container: "the bucket name in `--store` and the endpoint (`--s3-endpoint`, `AWS_ENDPOINT_URL`)",
    check_credentials: "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (an expired session needs new ones) and that they may use this bucket",
    summaries: Summaries {
        no_container: "the S3 bucket does not exist",
        denied: "the S3 server refused the credentials",
        unreachable: "the S3 server could not be reached",
        not_found: "the entry's archive is gone from the S3 store",
        failed: "the S3 server failed the request",
        corrupt: "the entry in the S3 store is damaged",
    },
};

/// The S3 store: the shared object store code on an S3 client.
pub struct S3Store;

impl S3Store {
    /// Builds the client from the spec and the environment; nothing is sent yet.
    pub fn open(spec: &S3Spec) -> Result<ObjectStoreBacked> {
        let scopes = Scopes::from_env(spec.scope.as_deref())?;
        let describe = spec.describe();
        let region = env_value(env_vars::AWS_REGION)
            .or_else(|| env_value(env_vars::AWS_DEFAULT_REGION))
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&spec.bucket)
            .with_region(region)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry_config()?)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(true),
            );
        let endpoint = spec.resolved_endpoint();
        let on_aws = endpoint.as_deref().is_none_or(|e| {
            reqwest::Url::parse(e)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.ends_with(".amazonaws.com")))
                .unwrap_or(false)
        });
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        builder = builder.with_virtual_hosted_style_request(on_aws && !spec.path_style);
        builder = with_credentials(builder, &describe)?;
        let client = builder
            .build()
            .map_err(|_| anyhow!("{describe}: the S3 client could not be configured from `--store`, the endpoint and the `AWS_*` variables"))?;
        let name = StoreName {
            text: describe,
            flavor: &FLAVOR,
        };
        ObjectStoreBacked::new(Arc::new(client), &spec.prefix, scopes, name)
    }
}

/// Credentials from the environment only: keys (and a session token), or web identity. Never
/// instance metadata, which would send requests to a link-local address on any machine.
fn with_credentials(builder: AmazonS3Builder, describe: &str) -> Result<AmazonS3Builder> {
    let key_id = env_value(env_vars::AWS_ACCESS_KEY_ID);
    let secret = env_value(env_vars::AWS_SECRET_ACCESS_KEY);
    let token = env_value(env_vars::AWS_SESSION_TOKEN);
    if let (Some(key_id), Some(secret)) = (key_id, secret) {
        crate::store::github::mask(&secret);
        let mut builder = builder
            .with_access_key_id(key_id)
            .with_secret_access_key(secret);
        if let Some(token) = token {
            crate::store::github::mask(&token);
            builder = builder.with_token(token);
        }
        return Ok(builder);
    }
    let token_file = env_value(env_vars::AWS_WEB_IDENTITY_TOKEN_FILE);
    let role = env_value(env_vars::AWS_ROLE_ARN);
    if let (Some(token_file), Some(role)) = (token_file, role) {
        use object_store::aws::AmazonS3ConfigKey as K;
        let mut builder = builder
            .with_config(K::WebIdentityTokenFile, token_file)
            .with_config(K::RoleArn, role);
        if let Some(name) = env_value(env_vars::AWS_ROLE_SESSION_NAME) {
            builder = builder.with_config(K::RoleSessionName, name);
        }
        return Ok(builder);
    }
    Err(anyhow!(
        "{describe}: no credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are not both set, nor `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`\n\nhint: in GitHub Actions, `aws-actions/configure-aws-credentials` sets them; cache-heal does not read `~/.aws` or instance metadata"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::object::classify;
    use super::*;

    fn store() -> StoreName {
        StoreName {
            text: "s3://bucket".into(),
            flavor: &FLAVOR,
        }
    }

    #[test]
    fn scopes_follow_github() {
        let main = || "main".to_string();
        let pr = Scopes::resolve(None, true, Some("refs/pull/7/merge"), Some("dev"), main).unwrap();
        assert_eq!(pr.save, "refs/pull/7/merge");
        assert_eq!(
            pr.read,
            ["refs/pull/7/merge", "refs/heads/dev", "refs/heads/main"]
        );
        let on_main = Scopes::resolve(None, true, Some("refs/heads/main"), None, main).unwrap();
        assert_eq!(on_main.read, ["refs/heads/main"]);
        let trunk = || "trunk".to_string();
        let tag = Scopes::resolve(None, true, Some("refs/tags/v1"), None, trunk).unwrap();
        assert_eq!(tag.read, ["refs/tags/v1", "refs/heads/trunk"]);
        let laptop = Scopes::resolve(None, false, None, None, main).unwrap();
        assert_eq!((laptop.save.as_str(), laptop.read.len()), ("local", 1));
        let named = Scopes::resolve(Some("team-a"), false, None, None, main).unwrap();
        assert_eq!((named.save.as_str(), named.read.len()), ("team-a", 1));
        assert!(
            Scopes::resolve(
                Some("refs/heads/main"),
                true,
                Some("refs/pull/7/merge"),
                None,
                main
            )
            .is_err()
        );
        assert!(Scopes::resolve(Some("a/../b"), false, None, None, main).is_err());
    }

    #[test]
    fn store_urls_parse() {
        let spec = S3Spec::parse("s3://my-bucket/ci/cache/").unwrap();
        assert_eq!(
            (spec.bucket.as_str(), spec.prefix.as_str()),
            ("my-bucket", "ci/cache")
        );
        let spec = S3Spec::parse("s3://my-bucket").unwrap();
        assert_eq!(spec.prefix, "");
        assert!(S3Spec::parse("s3://My_Bucket").is_err());
        assert!(S3Spec::parse("s3://ab").is_err());
        assert!(S3Spec::parse("s3://bucket/a/../b").is_err());
    }

    #[test]
    fn errors_keep_only_the_s3_code() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let source: Box<dyn std::error::Error + Send + Sync> = format!(
            "Server returned non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><CanonicalRequest>x-amz-security-token:{secret}</CanonicalRequest></Error>"
        )
        .into();
        let error = object_store::Error::PermissionDenied {
            path: "p".into(),
            source,
        };
        let ours = classify(&store(), "listing", &error);
        let shown = format!("{ours} {ours:?}");
        assert!(shown.contains("SignatureDoesNotMatch"), "{shown}");
        assert!(!shown.contains(secret), "{shown}");
        let missing: Box<dyn std::error::Error + Send + Sync> =
            "<Error><Code>NoSuchBucket</Code></Error>".into();
        let error = object_store::Error::NotFound {
            path: "p".into(),
            source: missing,
        };
        assert!(matches!(
            classify(&store(), "listing", &error),
            Error::NoContainer { .. }
        ));
    }
}
