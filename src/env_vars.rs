//! Every environment variable cache-heal reads, in one place.
//!
//! The `CACHE_HEAL_*` ones are equivalents of flags (clap reads them through `env = …`); the
//! others are set by GitHub Actions or the system.

/// Equivalent to `--store`.
pub const CACHE_HEAL_STORE: &str = "CACHE_HEAL_STORE";
/// Equivalent to `--s3-endpoint`.
pub const CACHE_HEAL_S3_ENDPOINT: &str = "CACHE_HEAL_S3_ENDPOINT";
/// Equivalent to `--s3-path-style`.
pub const CACHE_HEAL_S3_PATH_STYLE: &str = "CACHE_HEAL_S3_PATH_STYLE";
/// Equivalent to `--az-endpoint`.
pub const CACHE_HEAL_AZ_ENDPOINT: &str = "CACHE_HEAL_AZ_ENDPOINT";
/// Equivalent to `--scope`.
pub const CACHE_HEAL_SCOPE: &str = "CACHE_HEAL_SCOPE";
/// Equivalent to `--path`; newline-separated like the action input.
pub const CACHE_HEAL_PATH: &str = "CACHE_HEAL_PATH";
/// Equivalent to `--key`.
pub const CACHE_HEAL_KEY: &str = "CACHE_HEAL_KEY";
/// Equivalent to `--restore-key`; newline-separated.
pub const CACHE_HEAL_RESTORE_KEYS: &str = "CACHE_HEAL_RESTORE_KEYS";
/// Equivalent to `--compression`.
pub const CACHE_HEAL_COMPRESSION: &str = "CACHE_HEAL_COMPRESSION";
/// Equivalent to `--compression-level`.
pub const CACHE_HEAL_COMPRESSION_LEVEL: &str = "CACHE_HEAL_COMPRESSION_LEVEL";
/// Equivalent to `--json`.
pub const CACHE_HEAL_JSON: &str = "CACHE_HEAL_JSON";
/// Equivalent to `--quiet`.
pub const CACHE_HEAL_QUIET: &str = "CACHE_HEAL_QUIET";
/// Equivalent to `--no-progress`.
pub const CACHE_HEAL_NO_PROGRESS: &str = "CACHE_HEAL_NO_PROGRESS";
/// Equivalent to `--dry-run`.
pub const CACHE_HEAL_DRY_RUN: &str = "CACHE_HEAL_DRY_RUN";
/// Equivalent to `--lookup-only`.
pub const CACHE_HEAL_LOOKUP_ONLY: &str = "CACHE_HEAL_LOOKUP_ONLY";
/// Equivalent to `--fail-on-cache-miss`.
pub const CACHE_HEAL_FAIL_ON_CACHE_MISS: &str = "CACHE_HEAL_FAIL_ON_CACHE_MISS";
/// Equivalent to `--max-size`.
pub const CACHE_HEAL_MAX_SIZE: &str = "CACHE_HEAL_MAX_SIZE";
/// Equivalent to `--max-size` of `gc` (not restore's `CACHE_HEAL_MAX_SIZE`: another limit).
pub const CACHE_HEAL_GC_MAX_SIZE: &str = "CACHE_HEAL_GC_MAX_SIZE";
/// Equivalent to `--max-age` of `gc`.
pub const CACHE_HEAL_GC_MAX_AGE: &str = "CACHE_HEAL_GC_MAX_AGE";
/// Equivalent to `--grace` of `gc`.
pub const CACHE_HEAL_GC_GRACE: &str = "CACHE_HEAL_GC_GRACE";
/// How many threads write small files during a restore (default 1); for measurements.
pub const CACHE_HEAL_UNPACK_WRITERS: &str = "CACHE_HEAL_UNPACK_WRITERS";
/// Equivalent to `--prune` (save).
pub const CACHE_HEAL_PRUNE: &str = "CACHE_HEAL_PRUNE";
/// Equivalent to `--no-prune` (save).
pub const CACHE_HEAL_NO_PRUNE: &str = "CACHE_HEAL_NO_PRUNE";
/// Equivalent to `--force` (prune, save, restore): do not wait for uv's cache lock.
pub const CACHE_HEAL_FORCE: &str = "CACHE_HEAL_FORCE";
/// Equivalent to `--no-heal` (restore).
pub const CACHE_HEAL_NO_HEAL: &str = "CACHE_HEAL_NO_HEAL";
/// Equivalent to `--path` of `prune`, `heal` and `inspect`: one uv cache directory.
pub const CACHE_HEAL_UV_CACHE: &str = "CACHE_HEAL_UV_CACHE";
/// Equivalent to `--python`; newline-separated.
pub const CACHE_HEAL_PYTHON: &str = "CACHE_HEAL_PYTHON";
/// Equivalent to `--lock`; newline-separated.
pub const CACHE_HEAL_LOCK: &str = "CACHE_HEAL_LOCK";
/// Equivalent to `--index-url`; newline-separated.
pub const CACHE_HEAL_INDEX_URL: &str = "CACHE_HEAL_INDEX_URL";

/// uv's default index; heal's default `--index-url`.
pub const UV_DEFAULT_INDEX: &str = "UV_DEFAULT_INDEX";
/// uv's older name for the default index.
pub const UV_INDEX_URL: &str = "UV_INDEX_URL";
/// Where pyenv keeps its Pythons (`$PYENV_ROOT/versions/X/bin/python`).
pub const PYENV_ROOT: &str = "PYENV_ROOT";

/// Set to `true` by the runner in every step.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// The checkout directory; archive member names are relative to it. Equivalent to
/// `--workspace`.
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// Where the default local store lives, when set.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";

/// Equivalent to `key --python-version`.
pub const CACHE_HEAL_PYTHON_VERSION: &str = "CACHE_HEAL_PYTHON_VERSION";
/// Equivalent to `key --tool`.
pub const CACHE_HEAL_TOOL: &str = "CACHE_HEAL_TOOL";
/// Equivalent to `key --project-dir`.
pub const CACHE_HEAL_PROJECT_DIR: &str = "CACHE_HEAL_PROJECT_DIR";
/// Equivalent to `restore --allow-untrusted-event`.
pub const CACHE_HEAL_ALLOW_UNTRUSTED_EVENT: &str = "CACHE_HEAL_ALLOW_UNTRUSTED_EVENT";

/// uv's own choice of interpreter: `cache-heal key` reads it for the Python version, and it
/// is heal's default target when `--python` is not given.
pub const UV_PYTHON: &str = "UV_PYTHON";
/// The runner's OS (`Linux`, `macOS`, `Windows`); part of the automatic key.
pub const RUNNER_OS: &str = "RUNNER_OS";
/// The runner's architecture (`X64`, `ARM64`); part of the automatic key.
pub const RUNNER_ARCH: &str = "RUNNER_ARCH";
/// A per-job temporary directory; the restore step leaves its state for the save step there.
pub const RUNNER_TEMP: &str = "RUNNER_TEMP";
/// The file step outputs are appended to.
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// The file the job's Markdown summary is appended to.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// The event that started the run; some events do not restore by default (see `trust`).
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// The ref the run is for; tag pushes do not restore by default (see `trust`).
pub const GITHUB_REF: &str = "GITHUB_REF";
/// The cache service's base URL (GitHub cache service v2). Set by the runner for JavaScript and
/// container actions only; the cache-heal action hands it to the binary.
pub const ACTIONS_RESULTS_URL: &str = "ACTIONS_RESULTS_URL";
/// The JWT the cache service takes as a Bearer token. A secret: never printed, masked in
/// Actions logs.
pub const ACTIONS_RUNTIME_TOKEN: &str = "ACTIONS_RUNTIME_TOKEN";
/// `read`, `write`, `write-only` or `none`: which of restore and save the job may do, as
/// @actions/cache 6.3 reads it. Unset or unknown allows both.
pub const ACTIONS_CACHE_MODE: &str = "ACTIONS_CACHE_MODE";
/// Minutes one download segment may take before the restore gives up (a miss); default 10, as
/// in @actions/cache.
pub const SEGMENT_DOWNLOAD_TIMEOUT_MINS: &str = "SEGMENT_DOWNLOAD_TIMEOUT_MINS";
/// How many attempts a request to the cache service or its blob store gets; default 5.
pub const CACHE_HEAL_HTTP_RETRIES: &str = "CACHE_HEAL_HTTP_RETRIES";
/// The pause before the first retry, in milliseconds; later ones grow by 1.5x. Default 3000,
/// as in @actions/cache. Tests set it low.
pub const CACHE_HEAL_HTTP_RETRY_DELAY_MS: &str = "CACHE_HEAL_HTTP_RETRY_DELAY_MS";
/// The longest `Retry-After` a 429 is waited out for, in seconds; longer ones give up at once.
/// Default 60.
pub const CACHE_HEAL_RETRY_AFTER_MAX_SECS: &str = "CACHE_HEAL_RETRY_AFTER_MAX_SECS";

/// The pull request's base branch (a branch name, set for `pull_request` events only): the
/// second scope an S3 or Azure restore looks in.
pub const GITHUB_BASE_REF: &str = "GITHUB_BASE_REF";
/// The event payload; its `repository.default_branch` is the last scope an S3 or Azure restore
/// looks in.
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";

/// The S3 endpoint for every AWS service (the AWS CLI and SDKs read it too).
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The S3 endpoint, ahead of `AWS_ENDPOINT_URL`.
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// The region; ahead of `AWS_DEFAULT_REGION`.
pub const AWS_REGION: &str = "AWS_REGION";
/// The region when `AWS_REGION` is not set.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// S3 credentials: the key id.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// S3 credentials: the secret. Never printed, masked in Actions logs.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// S3 credentials: the session token of temporary credentials. Never printed, masked.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Web identity (GitHub OIDC through `aws-actions/configure-aws-credentials`): the token file.
pub const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// Web identity: the role to assume.
pub const AWS_ROLE_ARN: &str = "AWS_ROLE_ARN";
/// Web identity: the session name.
pub const AWS_ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
/// Instance metadata (EC2 instance profiles): where it is asked, instead of
/// `http://169.254.169.254`; the AWS SDKs' name.
pub const AWS_EC2_METADATA_SERVICE_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// Instance metadata: `true` and it is never asked; the AWS SDKs' name.
pub const AWS_EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";

/// Azure Blob: the storage account.
pub const AZURE_STORAGE_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
/// Azure Blob: the account key. Never printed, masked in Actions logs.
pub const AZURE_STORAGE_KEY: &str = "AZURE_STORAGE_KEY";
/// Azure Blob: the account key when `AZURE_STORAGE_KEY` is not set (the name some tools use).
pub const AZURE_STORAGE_ACCESS_KEY: &str = "AZURE_STORAGE_ACCESS_KEY";
/// Azure Blob: a SAS token (`sv=…&sig=…`), when there is no key. Never printed, masked.
pub const AZURE_STORAGE_SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";
/// Azure Blob: a connection string (account, key or SAS, endpoint); its values come first.
pub const AZURE_STORAGE_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// Azure workload identity: the application (client) id.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Azure workload identity: the tenant id.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Azure workload identity: the file holding the federated (OIDC) token.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// Azure workload identity: the Entra ID authority, when not the public cloud's.
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Managed identity: the token endpoint of instance metadata, instead of
/// `http://169.254.169.254/metadata/identity/oauth2/token` (object_store's name for it).
pub const AZURE_MSI_ENDPOINT: &str = "AZURE_MSI_ENDPOINT";
