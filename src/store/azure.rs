//! The Azure Blob store: `--store az://CONTAINER[/PREFIX]` on Azure Storage and Azurite, with
//! the same layout, scopes, publishing and matching as the S3 store (all of it in `object.rs`;
//! scopes in `s3.rs`). This module knows the URL, the account and its endpoint, credentials
//! and Azure's error codes.
//!
//! # Publishing
//!
//! The archive is a block blob: each part is a Put Block, and one Put Block List commits them
//! once the archive is whole. Until then the blob does not exist; a save that fails or is
//! killed leaves only uncommitted blocks, which Azure drops after seven days, and never an
//! entry. The metadata blob is created with `If-None-Match: *`: Azure answers 412 to the second
//! save of a key, Azurite 409, and both are "already exists".
//!
//! # Account, endpoint and credentials
//!
//! Read from the environment only, in this order:
//!
//! - `AZURE_STORAGE_CONNECTION_STRING` (`AccountName`, `AccountKey`, `SharedAccessSignature`,
//!   `BlobEndpoint`, `DefaultEndpointsProtocol`, `EndpointSuffix`, `UseDevelopmentStorage`),
//!   parsed here; a value it gives wins over the variables below;
//! - the account `AZURE_STORAGE_ACCOUNT`; the key `AZURE_STORAGE_KEY` (or
//!   `AZURE_STORAGE_ACCESS_KEY`), else a SAS `AZURE_STORAGE_SAS_TOKEN`;
//! - else workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
//!   `AZURE_FEDERATED_TOKEN_FILE` (what AKS workload identity injects), with
//!   `AZURE_AUTHORITY_HOST` when set;
//! - else managed identity, from instance metadata (a VM or scale set with an identity:
//!   autoscaled self-hosted runners), once it has handed out a token for Azure Storage to a
//!   first request with 1 s to answer (`super::instance_metadata`); `AZURE_CLIENT_ID` picks a
//!   user-assigned identity, `AZURE_MSI_ENDPOINT` moves the endpoint;
//! - else the Azure CLI's login (`az account get-access-token`), when `az` is on `PATH`: what
//!   `azure/login` with OIDC leaves behind in GitHub Actions.
//!
//! Managed identity comes before the CLI, as in Azure's own SDKs, because runner images ship
//! `az` whether or not anyone logged in. The endpoint is
//! `--az-endpoint`, else the connection string's, else `https://ACCOUNT.blob.core.windows.net`;
//! an endpoint names the account's blob service, path included for Azurite
//! (`http://127.0.0.1:10000/devstoreaccount1`). Keys and SAS tokens are masked in Actions logs
//! and never shown: a SAS travels in the URL, and errors never carry a URL (`object.rs`).

use anyhow::{Result, anyhow};
use object_store::ClientOptions;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use std::sync::Arc;
use std::time::Duration;

use super::object::{Flavor, ObjectStoreBacked, StoreName, Summaries, env_value, retry_config};
use super::scope::Scopes;
use crate::env_vars;

/// Azurite's well-known account, for `UseDevelopmentStorage=true`.
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret), for `UseDevelopmentStorage=true`.
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default blob endpoint, for `UseDevelopmentStorage=true`.
const DEVELOPMENT_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Azure error codes that mean "these credentials will not do".
const CREDENTIAL_CODES: &[&str] = &[
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
    "InsufficientAccountPermissions",
    "AccountIsDisabled",
];

/// Azure's words and error codes for the shared object store code.
static FLAVOR: Flavor = Flavor {
    service: "Azure Blob",
    container: "container",
    missing_container_codes: &["ContainerNotFound"],
    credential_codes: CREDENTIAL_CODES,
    token_failures: &[
        ("error performing token request", "TokenRequestFailed"),
        (
            "error reading federated token file",
            "FederatedTokenFileUnreadable",
        ),
        ("az account get-access-token", "AzureCliLoginFailed"),
        ("failed to parse azure cli response", "AzureCliLoginFailed"),
    ],
    check_container: "the container name in `--store`, the account (`AZURE_STORAGE_ACCOUNT` or the connection string) and the endpoint (`--az-endpoint`)",
    check_credentials: "`AZURE_STORAGE_KEY`, `AZURE_STORAGE_SAS_TOKEN` or `AZURE_STORAGE_CONNECTION_STRING` (a SAS past its expiry time needs a new one; a SAS needs read, write, create, list and delete permissions) or the identity's role on this container (`Storage Blob Data Contributor`)",
    summaries: Summaries {
        no_container: "the Azure Blob container does not exist",
        denied: "the Azure Blob service refused the credentials",
        unreachable: "the Azure Blob service could not be reached",
        not_found: "the entry's archive is gone from the Azure Blob store",
        failed: "the Azure Blob service failed the request",
        corrupt: "the entry in the Azure Blob store is damaged",
    },
};

/// `--store az://CONTAINER[/PREFIX]` with the flags that go with it, checked but not opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureSpec {
    pub container: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `--az-endpoint`.
    pub endpoint: Option<String>,
    /// `--scope`.
    pub scope: Option<String>,
}

impl AzureSpec {
    /// Parses `az://CONTAINER[/PREFIX]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("az://")
            .ok_or_else(|| format!("`--store {text}` does not start with `az://`"))?;
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_container_name(container) {
            return Err(format!(
                "`--store {text}`: `{container}` is not an Azure container name (3 to 63 characters: lower-case letters, digits and single `-` between them)\n\nhint: pass `--store az://<CONTAINER>[/<PREFIX>]`; the account comes from `AZURE_STORAGE_ACCOUNT`"
            ));
        }
        let prefix = prefix.trim_matches('/');
        let bad_segment =
            |s: &str| s.is_empty() || s == "." || s == ".." || s.chars().any(|c| c.is_control());
        if !prefix.is_empty() && prefix.split('/').any(bad_segment) {
            return Err(format!(
                "`--store {text}`: the prefix `{prefix}` has an empty, `.` or `..` component or a control character"
            ));
        }
        Ok(Self {
            container: container.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            scope: None,
        })
    }

    /// `az://CONTAINER[/PREFIX] at `ENDPOINT``, the endpoint without query or user info (it
    /// never shows a SAS).
    pub fn describe(&self) -> String {
        let mut text = format!("az://{}", self.container);
        if !self.prefix.is_empty() {
            text.push('/');
            text.push_str(&self.prefix);
        }
        let account = Account::from_env(self.endpoint.as_deref());
        if let Some(endpoint) = account.ok().and_then(|a| a.endpoint) {
            text.push_str(&format!(" at `{}`", shown_endpoint(&endpoint)));
        }
        text
    }
}

/// Azure's rule: 3 to 63 of lower-case letters, digits and `-`, starting and ending with a
/// letter or digit, no `--`.
fn is_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// An endpoint as messages show it: no user info, no query (where a SAS would be).
fn shown_endpoint(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(an endpoint that is not a URL)".to_string(),
    }
}

/// A storage connection string's fields that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    endpoint: Option<String>,
}

impl ConnectionString {
    /// Parses `Name=Value;Name=Value` (a value may hold `=`, as keys and SAS tokens do). The
    /// error shows nothing of the text, which holds a key or a SAS.
    fn parse(text: &str) -> Result<Self> {
        let mut fields = std::collections::HashMap::new();
        let parts = text.split(';').map(str::trim).filter(|p| !p.is_empty());
        for (n, part) in parts.enumerate() {
            // Nothing of a broken part is shown: it may be a key that lost its name.
            let Some((name, value)) = part.split_once('=') else {
                return Err(anyhow!(
                    "`{}` is not a connection string: its part {} (counting from 1, split at `;`) has no `=`\n\nhint: copy it from the storage account's \"Access keys\" page; it looks like `DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net`",
                    env_vars::AZURE_STORAGE_CONNECTION_STRING,
                    n + 1
                ));
            };
            fields.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self {
                account: Some(DEVELOPMENT_ACCOUNT.into()),
                key: Some(DEVELOPMENT_KEY.into()),
                sas: None,
                endpoint: Some(DEVELOPMENT_ENDPOINT.into()),
            });
        }
        let account = field("accountname");
        let endpoint = field("blobendpoint").or_else(|| {
            let account = account.as_deref()?;
            let protocol = field("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
            let suffix = field("endpointsuffix").unwrap_or_else(|| "core.windows.net".into());
            Some(format!("{protocol}://{account}.blob.{suffix}"))
        });
        Ok(Self {
            account,
            key: field("accountkey"),
            sas: field("sharedaccesssignature"),
            endpoint,
        })
    }
}

/// Which account, where, and with what credential: gathered from the environment once.
#[derive(Debug, Default)]
struct Account {
    name: Option<String>,
    endpoint: Option<String>,
    key: Option<String>,
    sas: Option<String>,
}

impl Account {
    /// The connection string first, then the single variables; `--az-endpoint` over both.
    fn from_env(endpoint_flag: Option<&str>) -> Result<Self> {
        let connection = match env_value(env_vars::AZURE_STORAGE_CONNECTION_STRING) {
            Some(text) => ConnectionString::parse(&text)?,
            None => ConnectionString::default(),
        };
        let endpoint = endpoint_flag
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .or(connection.endpoint);
        let name = connection
            .account
            .or_else(|| env_value(env_vars::AZURE_STORAGE_ACCOUNT))
            .or_else(|| endpoint.as_deref().and_then(account_in_endpoint));
        let endpoint = endpoint.or_else(|| {
            name.as_ref()
                .map(|n| format!("https://{n}.blob.core.windows.net"))
        });
        // A connection string's credential is the whole credential: a key in the environment
        // does not override its SAS.
        let (key, sas) = if connection.key.is_some() || connection.sas.is_some() {
            (connection.key, connection.sas)
        } else {
            let key = env_value(env_vars::AZURE_STORAGE_KEY)
                .or_else(|| env_value(env_vars::AZURE_STORAGE_ACCESS_KEY));
            (key, env_value(env_vars::AZURE_STORAGE_SAS_TOKEN))
        };
        Ok(Self {
            name,
            endpoint,
            key,
            sas,
        })
    }
}

/// The account an endpoint names: the first label of `ACCOUNT.blob.…`, else the first path
/// segment (Azurite's `http://127.0.0.1:10000/ACCOUNT`).
fn account_in_endpoint(endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    if let Some((account, rest)) = host.split_once('.')
        && rest.starts_with("blob.")
    {
        return Some(account.to_string());
    }
    url.path_segments()?
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// The Azure Blob store: the shared object store code on an Azure client.
pub struct AzureStore;

impl AzureStore {
    /// Builds the client from the spec and the environment; nothing is sent yet.
    pub fn open(spec: &AzureSpec) -> Result<ObjectStoreBacked> {
        let scopes = Scopes::from_env(spec.scope.as_deref())?;
        let describe = spec.describe();
        let account = Account::from_env(spec.endpoint.as_deref())?;
        let Some(name) = account.name.clone() else {
            return Err(anyhow!(
                "{describe}: no storage account: `AZURE_STORAGE_ACCOUNT` is not set, and neither `AZURE_STORAGE_CONNECTION_STRING` nor `--az-endpoint` names one"
            ));
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(name)
            .with_container_name(&spec.container)
            .with_retry(retry_config()?)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(true),
            );
        if let Some(endpoint) = &account.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
        }
        builder = with_credentials(builder, &account, &describe)?;
        let client = builder.build().map_err(|_| {
            anyhow!(
                "{describe}: the Azure client could not be configured from `--store`, the endpoint and the `AZURE_*` variables\n\nhint: an account key is base64 (as the portal shows it); a SAS token is the query string `sv=…&sig=…`; the endpoint is a URL"
            )
        })?;
        let name = StoreName {
            text: describe,
            flavor: &FLAVOR,
        };
        ObjectStoreBacked::new(Arc::new(client), &spec.prefix, scopes, name)
    }
}

/// A key, a SAS, workload identity, managed identity or the Azure CLI, in that order (see the
/// module doc).
fn with_credentials(
    builder: MicrosoftAzureBuilder,
    account: &Account,
    describe: &str,
) -> Result<MicrosoftAzureBuilder> {
    if let Some(key) = &account.key {
        crate::store::github::mask(key);
        return Ok(builder.with_access_key(key));
    }
    if let Some(sas) = &account.sas {
        crate::store::github::mask(sas);
        return Ok(builder.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?')));
    }
    let client_id = env_value(env_vars::AZURE_CLIENT_ID);
    let tenant_id = env_value(env_vars::AZURE_TENANT_ID);
    let token_file = env_value(env_vars::AZURE_FEDERATED_TOKEN_FILE);
    if let (Some(client_id), Some(tenant_id), Some(token_file)) = (client_id, tenant_id, token_file)
    {
        let mut builder = builder
            .with_client_id(client_id)
            .with_tenant_id(tenant_id)
            .with_federated_token_file(token_file);
        if let Some(host) = env_value(env_vars::AZURE_AUTHORITY_HOST) {
            builder = builder.with_authority_host(host);
        }
        return Ok(builder);
    }
    let client_id = env_value(env_vars::AZURE_CLIENT_ID);
    let no_identity = match managed_identity(client_id.as_deref()) {
        Ok(endpoint) => {
            let builder = builder.with_msi_endpoint(endpoint);
            return Ok(match client_id {
                Some(id) => builder.with_client_id(id),
                None => builder,
            });
        }
        Err(why) => why,
    };
    if azure_cli_on_path() {
        return Ok(builder.with_use_azure_cli(true));
    }
    Err(anyhow!(
        "{describe}: no credentials: none of `AZURE_STORAGE_KEY`, `AZURE_STORAGE_SAS_TOKEN` or `AZURE_STORAGE_CONNECTION_STRING` is set, nor `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE`; {no_identity}; and there is no `az` for an Azure CLI login\n\nhint: in GitHub Actions, `azure/login` with OIDC logs in the Azure CLI; on an Azure VM, give it a managed identity with `Storage Blob Data Contributor` on the container"
    ))
}

/// The managed identity token endpoint, once instance metadata handed out a token for Azure
/// Storage (for the identity `client_id` names, else the VM's own); else why not, in words.
/// A VM without an identity answers 400, another cloud's service 403 or 404.
fn managed_identity(client_id: Option<&str>) -> Result<String, String> {
    let endpoint = env_value(env_vars::AZURE_MSI_ENDPOINT).unwrap_or_else(|| {
        format!(
            "{}/metadata/identity/oauth2/token",
            super::instance_metadata::ADDRESS
        )
    });
    let mut url =
        format!("{endpoint}?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com");
    if let Some(id) = client_id {
        url.push_str("&client_id=");
        url.push_str(&id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', ""));
    }
    match super::instance_metadata::status("GET", &url, &[("Metadata", "true")]) {
        Ok(200) => Ok(endpoint),
        Ok(status) => Err(format!(
            "managed identity at `{endpoint}` answered {status} (no identity for this machine)"
        )),
        Err(why) => Err(format!("managed identity at `{endpoint}` {why}")),
    }
}

/// Whether an `az` executable is on `PATH`, for the Azure CLI login `azure/login` leaves.
fn azure_cli_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("az").is_file()))
}

#[cfg(test)]
mod tests {
    use super::super::object::{Error, classify};
    use super::*;

    #[test]
    fn store_urls_parse() {
        let spec = AzureSpec::parse("az://ci-cache/team/a/").unwrap();
        assert_eq!(
            (spec.container.as_str(), spec.prefix.as_str()),
            ("ci-cache", "team/a")
        );
        assert_eq!(AzureSpec::parse("az://cache").unwrap().prefix, "");
        for bad in [
            "az://Cache",
            "az://ab",
            "az://a--b",
            "az://-abc",
            "az://ci_cache",
        ] {
            assert!(AzureSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(AzureSpec::parse("az://cache/a/../b").is_err());
    }

    #[test]
    fn connection_strings_parse() {
        let parsed = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(parsed.account.as_deref(), Some("acct"));
        assert_eq!(parsed.key.as_deref(), Some("a2V5=="));
        assert_eq!(
            parsed.endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );
        let sas = ConnectionString::parse(
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2020-12-06&sig=abc%3D",
        )
        .unwrap();
        assert_eq!(sas.sas.as_deref(), Some("sv=2020-12-06&sig=abc%3D"));
        assert_eq!(sas.account, None);
        let dev = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.account.as_deref(), Some(DEVELOPMENT_ACCOUNT));
        let broken = ConnectionString::parse("AccountName=acct;AccountKeysecret").unwrap_err();
        assert!(!broken.to_string().contains("secret"), "{broken}");
    }

    #[test]
    fn endpoints_name_their_account_and_show_no_sas() {
        assert_eq!(
            account_in_endpoint("https://acct.blob.core.windows.net/").as_deref(),
            Some("acct")
        );
        assert_eq!(
            account_in_endpoint("http://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(
            shown_endpoint("https://u:p@acct.blob.core.windows.net/?sv=1&sig=secret"),
            "https://acct.blob.core.windows.net"
        );
    }

    #[test]
    fn errors_keep_only_the_azure_code() {
        let store = StoreName {
            text: "az://cache".into(),
            flavor: &FLAVOR,
        };
        let secret = "sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D";
        let source: Box<dyn std::error::Error + Send + Sync> = format!(
            "Server returned non-2xx status code: 403 Forbidden: <Error><Code>AuthenticationFailed</Code><Message>Signature fields not well formed. {secret}</Message></Error>"
        )
        .into();
        let error = object_store::Error::PermissionDenied {
            path: "p".into(),
            source,
        };
        let ours = classify(&store, "listing", &error);
        let shown = format!("{ours} {ours:?}");
        assert!(shown.contains("AuthenticationFailed"), "{shown}");
        assert!(shown.contains("AZURE_STORAGE_SAS_TOKEN"), "{shown}");
        assert!(!shown.contains(secret), "{shown}");
        let missing: Box<dyn std::error::Error + Send + Sync> =
            "<Error><Code>ContainerNotFound</Code></Error>".into();
        let error = object_store::Error::NotFound {
            path: "p".into(),
            source: missing,
        };
        let ours = classify(&store, "listing", &error);
        assert!(matches!(ours, Error::NoContainer { .. }), "{ours}");
        assert_eq!(ours.summary(), "the Azure Blob container does not exist");
    }
}
