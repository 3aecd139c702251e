//! The S3 store: `--store s3://BUCKET[/PREFIX]` on AWS S3 and S3-compatible servers (MinIO, R2,
//! Ceph RGW, Garage, moto), with GitHub's rules: entries scoped by ref, first save wins, newest
//! match first.
//!
//! The layout, publishing, matching, restore and error safety are the same for every object
//! store and live in `object.rs`; this module knows S3's URL, endpoint, credentials and error
//! codes, and GitHub's scopes (which every object store uses).
//!
//! # Scopes
//!
//! GitHub's, see [`super::scope`]: a save writes into the run's ref, a restore reads the ref,
//! the pull request's base, then the default branch.
//!
//! # Publishing
//!
//! moto 5.2.5 honours `If-None-Match: *` on the metadata object, as AWS does since 2024-08 and
//! R2 does too. A process killed outright leaves an incomplete multipart upload for the
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule (it is no object, so `gc` cannot
//! list it), and never an entry; killed after completing the upload, it leaves an archive that
//! no entry names, which `gc` sweeps (see `object.rs`).
//!
//! # Client and credentials
//!
//! `object_store` (apache/arrow-rs-object-store, `aws` and `azure` features) signs and sends the
//! requests on the reqwest + rustls stack the binary already has (`cargo tree`: one reqwest,
//! one hyper, one rustls), and retries 5xx (S3's `SlowDown` is a 503), 429 and broken
//! connections with exponential backoff. Credentials come from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, else web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, which is what GitHub OIDC sets up), else
//! an EC2 instance profile through instance metadata (IMDSv2, probed first with a 1 s timeout);
//! shared config files and SSO are not read. The region is `AWS_REGION`, else
//! `AWS_DEFAULT_REGION`, else `us-east-1`.
//!
//! # Errors never carry a credential
//!
//! S3's error bodies can echo the canonical request (with the session token) and the access key
//! id; see `object.rs` for how errors keep only the S3 error code.

use anyhow::{Result, anyhow};
use object_store::ClientOptions;
use object_store::aws::{AmazonS3Builder, Checksum, S3ConditionalPut};
use std::sync::Arc;
use std::time::Duration;

use super::object::{Flavor, ObjectStoreBacked, StoreName, Summaries, env_value, retry_config};
use super::scope::Scopes;
use crate::env_vars;

pub use super::object::Error;

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
    check_credentials: "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (an expired session needs new ones), or the instance profile's role, and that they may use this bucket",
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
        builder = with_body_integrity(builder, uses_tls(endpoint.as_deref()));
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

/// How the server knows a body arrived whole. Bodies are never signed: the signature's sha256
/// of every byte is there to stop a changed body, and each restore checks the archive's size
/// and sha256 against the entry before the swap anyway. Over TLS that is all: TLS keeps the
/// bytes whole in transit. Over plain HTTP (a MinIO or Garage next to the runners) a body
/// damaged on the way would become an entry that every restore then refuses and no save can
/// replace (first save wins), so each body carries its SHA-256 as an S3 flexible checksum
/// (`x-amz-checksum-sha256`, what AWS's own SDKs send since 2025 in CRC form): the server
/// refuses a damaged part, the client sends it again, and the object records a composite
/// checksum. That costs what signing cost in CPU, and on moto it makes the completing request
/// cheaper (without an algorithm moto copies the whole archive twice to checksum it).
fn with_body_integrity(builder: AmazonS3Builder, over_tls: bool) -> AmazonS3Builder {
    let builder = builder.with_unsigned_payload(true);
    if over_tls {
        builder
    } else {
        builder.with_checksum_algorithm(Checksum::SHA256)
    }
}

/// Whether requests go over TLS: AWS's own endpoints do, any other says so by its scheme.
fn uses_tls(endpoint: Option<&str>) -> bool {
    endpoint.is_none_or(|e| e.trim_start().to_ascii_lowercase().starts_with("https://"))
}

/// Credentials from the job's environment, in the AWS SDKs' order: keys (and a session token),
/// then web identity, then the instance profile of an EC2 machine (autoscaled runners) through
/// instance metadata. Shared config files and SSO are not read.
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
    match instance_metadata() {
        Ok(endpoint) => Ok(builder.with_metadata_endpoint(endpoint)),
        Err(why) => Err(anyhow!(
            "{describe}: no credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are not both set, nor `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, and {why}\n\nhint: in GitHub Actions, `aws-actions/configure-aws-credentials` sets them; on EC2, attach an instance profile; cache-heal does not read `~/.aws`"
        )),
    }
}

/// The instance metadata endpoint to take credentials from, once it has answered an IMDSv2
/// token request; else why not, in words that finish "no credentials: … and ". Asked up front
/// for the reasons in [`super::instance_metadata`].
fn instance_metadata() -> Result<String, String> {
    if env_value(env_vars::AWS_EC2_METADATA_DISABLED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err("instance metadata is off (`AWS_EC2_METADATA_DISABLED=true`)".into());
    }
    let endpoint = env_value(env_vars::AWS_EC2_METADATA_SERVICE_ENDPOINT)
        .unwrap_or_else(|| super::instance_metadata::ADDRESS.to_string());
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    let answer = super::instance_metadata::status(
        "PUT",
        &format!("{endpoint}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    match answer {
        Ok(200) => Ok(endpoint),
        Ok(status) => Err(format!(
            "instance metadata at `{endpoint}` answered {status} to an IMDSv2 token request, so it is not EC2's"
        )),
        Err(why) => Err(format!("instance metadata at `{endpoint}` {why}")),
    }
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
    fn plain_http_bodies_carry_a_checksum_and_tls_ones_need_none() {
        assert!(uses_tls(None), "AWS's own endpoints are https");
        assert!(uses_tls(Some("https://minio.internal:9000")));
        assert!(uses_tls(Some("HTTPS://r2.example")));
        assert!(!uses_tls(Some("http://127.0.0.1:9000")));
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
