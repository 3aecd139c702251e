//! Every environment variable cache-heal reads, in one place.
//!
//! The `CACHE_HEAL_*` ones are equivalents of flags (clap reads them through `env = …`); the
//! others are set by GitHub Actions or the system.

/// Equivalent to `--store`.
pub const CACHE_HEAL_STORE: &str = "CACHE_HEAL_STORE";
/// Equivalent to `--path`; newline-separated like the action input.
pub const CACHE_HEAL_PATH: &str = "CACHE_HEAL_PATH";
/// Equivalent to `--key`.
pub const CACHE_HEAL_KEY: &str = "CACHE_HEAL_KEY";
/// Equivalent to `--restore-key`; newline-separated.
pub const CACHE_HEAL_RESTORE_KEYS: &str = "CACHE_HEAL_RESTORE_KEYS";
/// Equivalent to `--compression`.
pub const CACHE_HEAL_COMPRESSION: &str = "CACHE_HEAL_COMPRESSION";
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
/// Equivalent to `--no-prune` (save).
pub const CACHE_HEAL_NO_PRUNE: &str = "CACHE_HEAL_NO_PRUNE";
/// Equivalent to `--force` (prune, save): do not wait for uv's cache lock.
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

/// uv's interpreter choice; heal's default target when `--python` is not given.
pub const UV_PYTHON: &str = "UV_PYTHON";
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
