//! Subcommands and flags. This module only parses and checks what the user typed; turning it
//! into paths, keys and a store happens in `commands`, so `--help` stays cheap and a dry run
//! can show the plan without side effects. Every flag can also come from a `CACHE_HEAL_*`
//! variable, which is how the GitHub action passes its inputs.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use crate::archive::level::Level;
use crate::autokey::Tool;
use crate::env_vars as env;
use crate::key::Compression;

/// The version `--version` prints: `0.1.0 (14b4b98 2026-11-28)` from a git checkout (the commit
/// and its date, from `build.rs`), else the version alone.
const VERSION: &str = env!("CACHE_HEAL_LONG_VERSION");

const GLOBAL: &str = "Global options";
const STORE: &str = "Store options";
const HEAL: &str = "Heal options";

const EXIT_CODES: &str = "\
Exit codes:
  0    success, including a cache miss and a save skipped because the entry
       exists
  1    an error (and a miss with `--fail-on-cache-miss`); nothing was
       half-written
  2    a usage error: an unknown flag, a missing value, a key that breaks the
       rules
  130  interrupted by Ctrl-C (SIGINT); nothing was half-written
  143  interrupted by SIGTERM (what GitHub sends to a cancelled job); nothing
       was half-written

Run `cache-heal <COMMAND> --help` for a command's flags and examples.";

const SAVE_EXAMPLES: &str = "\
Examples:
  Save uv's cache as `demo` in the default local store, pruned to what
  `uv cache prune --ci` keeps:
    $ cache-heal save --path ~/.cache/uv --key demo

  Keep the pre-built wheels too (no unpacked sources), for a slow index:
    $ cache-heal save --path ~/.cache/uv --key demo --prune wheels

  Save it at zstd level 19, smaller and slower:
    $ cache-heal save --path ~/.cache/uv --key demo --compression-level 19

  Save into a directory store that outlives the runner:
    $ cache-heal save --path ~/.cache/uv --key demo --store dir:$HOME/ci-cache";

const RESTORE_EXAMPLES: &str = "\
Examples:
  Restore `uv-3.12`, else the newest entry whose key starts with `uv-`,
  replacing `~/.cache/uv` whole, then heal it for `python3`:
    $ cache-heal restore --path ~/.cache/uv --key uv-3.12 --restore-key uv-

  Show which entry would be restored and its size; change nothing:
    $ cache-heal restore --path ~/.cache/uv --key uv-3.12 --dry-run

  Restore the entry for this project's automatic key (see `cache-heal key`):
    $ cache-heal restore --path ~/.cache/uv --key \"$(cache-heal key)\"";

const INSPECT_EXAMPLES: &str = "\
Examples:
  List the entries of the default local store, newest first:
    $ cache-heal inspect

  The same for a directory store, as JSON:
    $ cache-heal inspect --store dir:$HOME/ci-cache --json

  Show what a uv cache holds: buckets and sizes, sdists with the tags of their
  built wheels, missing sources:
    $ cache-heal inspect --path ~/.cache/uv";

const DELETE_EXAMPLES: &str = "\
Examples:
  Remove the entries saved under `demo` from a directory store:
    $ cache-heal delete --store dir:$HOME/ci-cache --key demo

  In an S3 bucket, `--scope` picks the scope outside GitHub Actions, for
  example `--scope refs/heads/main`.";

const GC_EXAMPLES: &str = "\
Examples:
  Show what would go to bring a store under 50 GiB; remove nothing:
    $ cache-heal gc --store dir:$HOME/ci-cache --max-size 50G --dry-run

  Remove entries not restored for two weeks, then the least recently used
  until the store holds at most 20 GiB:
    $ cache-heal gc --store dir:$HOME/ci-cache --max-age 14d --max-size 20G";

const KEY_EXAMPLES: &str = "\
Examples:
  Print the key for the project in the current directory, and log what went
  into it:
    $ cache-heal key

  The key for Python 3.12, with its restore keys and inputs, as JSON:
    $ cache-heal key --python-version 3.12 --json";

const PRUNE_EXAMPLES: &str = "\
Examples:
  List what pruning would remove; change nothing:
    $ cache-heal prune --path \"$(uv cache dir)\" --dry-run

  Prune in place, as `uv cache prune --ci` does:
    $ cache-heal prune --path ~/.cache/uv";

const HEAL_EXAMPLES: &str = "\
Examples:
  Show which sources the cache lacks for Python 3.12, and where they would
  come from; change nothing:
    $ cache-heal heal --path ~/.cache/uv --python 3.12 --dry-run

  Heal for Python 3.12, taking sdist URLs from the project's lock file:
    $ cache-heal heal --path ~/.cache/uv --python 3.12 --lock uv.lock";

/// A fast, safe cache for Python dependency caches in CI
///
/// cache-heal saves and restores directories in the archive format of actions/cache (entries
/// are interchangeable both ways). Restores are checked member by member and swapped into place
/// only when the whole archive was read, so a bad archive never leaves a half-written cache.
/// A restored uv cache is healed for the interpreters about to use it, and a saved one is
/// pruned to what `uv cache prune --ci` keeps.
#[derive(Debug, Parser)]
#[command(
    name = "cache-heal",
    bin_name = "cache-heal",
    version = VERSION,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print the result as one JSON object on stdout
    ///
    /// By default the result is told in lines for people. With `--json`, stdout carries one
    /// JSON object and nothing else, and progress is off.
    #[arg(
        long,
        global = true,
        env = env::CACHE_HEAL_JSON,
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub json: bool,

    /// Print only warnings and errors
    ///
    /// By default each command also says what it did, with sizes and times.
    #[arg(
        long,
        short,
        global = true,
        env = env::CACHE_HEAL_QUIET,
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub quiet: bool,

    /// Hide progress bars and progress lines
    ///
    /// By default a bar is drawn on a terminal, and elsewhere (an Actions log, a pipe) a plain
    /// progress line every few seconds.
    #[arg(
        long,
        global = true,
        env = env::CACHE_HEAL_NO_PROGRESS,
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub no_progress: bool,
}

/// Where entries are kept; only the commands that read or write entries take it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where entries are kept: `gha`, `s3://BUCKET[/PREFIX]`, `az://CONTAINER[/PREFIX]`, or
    /// `dir:PATH`
    ///
    /// `gha` is the GitHub Actions cache service; `s3://` is S3 or an S3-compatible server;
    /// `az://` is an Azure Blob container in the account `AZURE_STORAGE_ACCOUNT`;
    /// `dir:PATH` (or a plain path) is a local directory. By default `gha` when
    /// `ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN` are set (inside the cache-heal
    /// action), else a local directory: `$XDG_CACHE_HOME/cache-heal`, else
    /// `~/.cache/cache-heal`.
    #[arg(
        long,
        env = env::CACHE_HEAL_STORE,
        hide_env_values = true,
        value_name = "STORE",
        help_heading = STORE
    )]
    pub store: Option<String>,

    /// The S3 endpoint, for S3-compatible servers (MinIO, R2, Ceph, Garage)
    ///
    /// By default `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS S3 in `AWS_REGION`.
    /// An endpoint that is not AWS is addressed path-style (`ENDPOINT/BUCKET/…`).
    #[arg(
        long,
        env = env::CACHE_HEAL_S3_ENDPOINT,
        hide_env_values = true,
        value_name = "URL",
        help_heading = STORE
    )]
    pub s3_endpoint: Option<String>,

    /// Address the bucket in the path (`ENDPOINT/BUCKET/…`) even on AWS
    ///
    /// By default only endpoints that are not AWS are addressed path-style.
    #[arg(
        long,
        env = env::CACHE_HEAL_S3_PATH_STYLE,
        hide_env_values = true,
        help_heading = STORE
    )]
    pub s3_path_style: bool,

    /// The Azure Blob endpoint: the account's blob service URL (Azurite, sovereign clouds)
    ///
    /// By default the connection string's `BlobEndpoint`, else
    /// `https://ACCOUNT.blob.core.windows.net`. For Azurite the URL holds the account:
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    #[arg(
        long,
        env = env::CACHE_HEAL_AZ_ENDPOINT,
        hide_env_values = true,
        value_name = "URL",
        help_heading = STORE
    )]
    pub az_endpoint: Option<String>,

    /// The scope entries are saved in and restored from outside GitHub Actions (`s3://`,
    /// `az://`, `dir:`)
    ///
    /// By default `local`. In GitHub Actions the scope follows GitHub's rules instead: a save
    /// writes into the run's ref (`GITHUB_REF`); a restore looks there, then in the pull
    /// request's base branch, then in the default branch. The flag is refused there, so a pull
    /// request cannot write into `main`'s scope.
    #[arg(
        long,
        env = env::CACHE_HEAL_SCOPE,
        hide_env_values = true,
        value_name = "SCOPE",
        help_heading = STORE
    )]
    pub scope: Option<String>,
}

/// What `save --prune` leaves out of a uv cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PruneMode {
    /// What `uv cache prune --ci` removes, pre-built wheels included
    #[value(alias = "true")]
    Ci,
    /// The same, but every wheel stays
    Wheels,
    /// Nothing
    #[value(alias = "false")]
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Archive paths and store them under a key
    ///
    /// Of every saved path that is a uv cache, only what `uv cache prune --ci` keeps is archived
    /// (`--prune`); the cache on disk is not changed.
    /// The archive is written in actions/cache's format and streamed to the store.
    #[command(after_help = SAVE_EXAMPLES)]
    Save(SaveArgs),
    /// Restore the entry for a key (or a restore key) into its paths
    ///
    /// Each path is replaced whole, and only once the whole archive was read and checked. Every
    /// restored path that is a uv cache is then healed for the target interpreters.
    #[command(after_help = RESTORE_EXAMPLES)]
    Restore(RestoreArgs),
    /// List the entries in a store, or with `--path`, what a uv cache holds
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Print the automatic key and restore keys for this project
    ///
    /// The key is `cache-heal-v1-<os>-<arch>-<tool>-py<X.Y>-<hash>`, the hash taken over the
    /// lock and requirement files found. It goes to stdout; every input and why it is there
    /// goes to stderr.
    #[command(after_help = KEY_EXAMPLES)]
    Key(KeyArgs),
    /// Remove a key's entries from a `dir:`, `s3://` or `az://` store
    ///
    /// Every version of the key in the scope (`--scope`, or in GitHub Actions the run's ref) is
    /// removed; entries of other keys and scopes stay. A key that has no entry there is an error
    /// (exit 1).
    #[command(after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Evict entries of a store (`dir:`, `s3://`, `az://`), least recently used first
    ///
    /// Across all scopes: first the entries not restored (or, if never restored, not saved) for
    /// longer than `--max-age`, then the least recently used until the store holds at most
    /// `--max-size`. An entry used or saved within the grace window stays, so a restore in
    /// flight is never cut off. The GitHub Actions cache evicts by itself and is refused.
    #[command(after_help = GC_EXAMPLES)]
    Gc(GcArgs),
    /// Prune a uv cache to what `uv cache prune --ci` keeps
    ///
    /// What stays: the wheels uv built from source, their metadata, the revision pointers and
    /// index pages. What goes is what uv downloads again: pre-built wheels, unpacked sources,
    /// build environments. The cache is pruned in place, under uv's cache lock.
    #[command(after_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
    /// Re-create the sources a uv cache lacks for the target interpreters
    ///
    /// After `uv cache prune --ci`, a cache restored for another Python has wheels that do not
    /// fit and no sources to build new ones. Heal fetches those sources (checked against the
    /// sha256 uv recorded) and puts them where uv looks, so an offline build works.
    #[command(after_help = HEAL_EXAMPLES)]
    Heal(HealArgs),
}

/// The path inputs and how member names are made; shared by save and restore so that both
/// compute the same version.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// A path to cache; repeat it, or give several lines in one value
    ///
    /// Takes what actions/cache's `path` takes: `~`, globs, and `!` excludes. Relative paths
    /// resolve against the current directory. The text, exactly as typed, goes into the entry
    /// version, so save and restore must be given the same lines.
    #[arg(
        long = "path",
        required = true,
        env = env::CACHE_HEAL_PATH,
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub paths: Vec<String>,

    /// How the archive is compressed
    ///
    /// By default zstd, as actions/cache. The compression is part of the entry version, so a
    /// restore finds only entries saved with the same one.
    #[arg(
        long,
        value_enum,
        default_value_t = Compression::Zstd,
        env = env::CACHE_HEAL_COMPRESSION,
        hide_env_values = true
    )]
    pub compression: Compression,

    /// The directory archive member names are relative to
    ///
    /// By default `GITHUB_WORKSPACE`, as in actions/cache, so entries move between the two
    /// tools. Without a workspace (a laptop), the matches of absolute paths (`/…`, `~/…`) are
    /// named by their absolute path and relative ones relative to the current directory: the
    /// same absolute `--path` then restores from any directory.
    #[arg(long, env = env::GITHUB_WORKSPACE, hide_env_values = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub paths: PathArgs,

    /// The key to save under: at most 512 characters, no commas
    ///
    /// By default, the key a `restore` of the same paths looked for earlier in this job (in
    /// GitHub Actions, where the restore step leaves it under `RUNNER_TEMP`).
    #[arg(long, env = env::CACHE_HEAL_KEY, hide_env_values = true)]
    pub key: Option<String>,

    /// How hard to compress: `auto`, or a level (zstd 1 to 19, gzip 1 to 9)
    ///
    /// By default `auto`: zstd starts at level 3, what actions/cache writes, then follows
    /// whatever holds the save back: while the upload waits for the compressor (a fast
    /// network, a local store) it steps down to level 1; while the compressor waits for the
    /// upload it steps back up to 3. For gzip, `auto` is level 6. Any level restores with any
    /// tool: the level is not part of the entry version.
    #[arg(
        long,
        env = env::CACHE_HEAL_COMPRESSION_LEVEL,
        hide_env_values = true,
        value_name = "LEVEL",
        default_value = "auto"
    )]
    pub compression_level: Level,

    /// What to leave out of every saved path that is a uv cache
    ///
    /// `ci` (the default): what `uv cache prune --ci` removes, that is unpacked sources, stale
    /// revisions, build environments and the pre-built wheels, which an index serves about as
    /// fast as a cache restores them. `wheels`: the same, but every wheel stays, so a job that
    /// restores the entry asks the index for nothing it already had (for a slow or rationed
    /// index). `none`: the cache whole. The cache on disk is never changed.
    #[arg(
        long,
        env = env::CACHE_HEAL_PRUNE,
        hide_env_values = true,
        value_name = "MODE",
        value_enum,
        default_value = "ci"
    )]
    pub prune: PruneMode,

    /// The same as `--prune none`
    #[arg(long, env = env::CACHE_HEAL_NO_PRUNE, hide_env_values = true)]
    pub no_prune: bool,

    /// Read uv caches without waiting for uv's cache lock
    ///
    /// By default save holds `<cache>/.lock` shared while it reads a uv cache, as every uv
    /// command does, and waits while `uv cache prune` or `uv cache clean` holds it.
    #[arg(long, env = env::CACHE_HEAL_FORCE, hide_env_values = true)]
    pub force: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub paths: PathArgs,

    /// The key to restore; an exact match is a hit
    ///
    /// Without an exact match, the newest entry whose key starts with it is restored, then the
    /// restore keys are tried.
    #[arg(long, env = env::CACHE_HEAL_KEY, hide_env_values = true)]
    pub key: String,

    /// A fallback key prefix, tried in order when the key has no match
    ///
    /// Repeat it, or give several lines in one value; at most 10 keys in all, the key
    /// included. Each matches exactly, then as a prefix (newest first). By default there is
    /// none.
    #[arg(
        long = "restore-key",
        env = env::CACHE_HEAL_RESTORE_KEYS,
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub restore_keys: Vec<String>,

    /// Show the plan: the entry that would be restored, what it replaces, who heal runs for;
    /// change nothing
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN, hide_env_values = true)]
    pub dry_run: bool,

    /// Look the entry up and report it, without downloading it
    #[arg(long, env = env::CACHE_HEAL_LOOKUP_ONLY, hide_env_values = true)]
    pub lookup_only: bool,

    /// Exit 1 when neither the key nor a restore key matches
    ///
    /// By default a miss exits 0 and leaves the paths as they are.
    #[arg(long, env = env::CACHE_HEAL_FAIL_ON_CACHE_MISS, hide_env_values = true)]
    pub fail_on_cache_miss: bool,

    /// The most file content a restore may write, in bytes (`5G`, `512MiB`)
    ///
    /// Suffixes K, M, G, T and KiB, MiB, GiB, TiB are understood. By default 32 times the
    /// archive's size (at least 512 MiB: real caches compress 2 to 10 times, a compression bomb
    /// thousands of times), and never more than the free space at the destination less a
    /// margin. Crossing the limit stops the restore before the member that would cross it is
    /// written, and nothing stays.
    #[arg(
        long,
        env = env::CACHE_HEAL_MAX_SIZE,
        hide_env_values = true,
        value_name = "BYTES",
        value_parser = parse_size
    )]
    pub max_size: Option<u64>,

    /// Restore even in a `release`, tag push, `pull_request_target` or `workflow_run` run
    ///
    /// By default those runs start with an empty cache: an entry written by less trusted code
    /// (a pull request) must not reach a job that publishes or holds the repository's secrets.
    #[arg(long, env = env::CACHE_HEAL_ALLOW_UNTRUSTED_EVENT, hide_env_values = true)]
    pub allow_untrusted_event: bool,

    /// Restore uv caches without healing them
    ///
    /// By default, after a successful restore, every restored path that is a uv cache is
    /// healed for the target interpreters (see `cache-heal heal`). A failed heal is reported
    /// but does not fail the restore.
    #[arg(
        long,
        env = env::CACHE_HEAL_NO_HEAL,
        hide_env_values = true,
        help_heading = HEAL
    )]
    pub no_heal: bool,

    /// Replace uv caches without waiting for uv's cache lock
    ///
    /// By default, a restored path that is a uv cache is replaced only under uv's cache lock
    /// (`<cache>/.lock`, taken exclusive as `uv cache clean` does), waiting while another uv
    /// process uses the cache: replacing it under a running uv breaks that uv's build.
    #[arg(long, env = env::CACHE_HEAL_FORCE, hide_env_values = true)]
    pub force: bool,

    #[command(flatten, next_help_heading = HEAL)]
    pub heal: HealTargets,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Show what the uv cache at this path holds, instead of the store's entries
    ///
    /// Buckets and sizes, sdists with the tags of their built wheels, and missing sources. By
    /// default `inspect` lists the entries of the store, newest first.
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, hide_env_values = true, value_name = "DIR")]
    pub path: Option<PathBuf>,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key whose entries are removed (exactly this key, not a prefix)
    #[arg(long, env = env::CACHE_HEAL_KEY, hide_env_values = true)]
    pub key: String,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Evict least recently used entries until the store holds at most this much
    ///
    /// Archive sizes, across all scopes. Suffixes K, M, G, T and KiB, MiB, GiB, TiB are
    /// understood. By default no size limit.
    #[arg(
        long,
        env = env::CACHE_HEAL_GC_MAX_SIZE,
        hide_env_values = true,
        value_name = "BYTES",
        value_parser = parse_size
    )]
    pub max_size: Option<u64>,

    /// Evict entries not used for longer than this, like `30d`, `12h`, `90m`
    ///
    /// "Used" is the last restore that started; an entry never restored counts from its save.
    /// Suffixes s, m, h, d and w; a bare number is seconds. By default no age limit.
    #[arg(
        long,
        env = env::CACHE_HEAL_GC_MAX_AGE,
        hide_env_values = true,
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub max_age: Option<std::time::Duration>,

    /// Never evict an entry used or saved this recently
    ///
    /// A restore records its use before it downloads, so this is how long a restore in flight
    /// is protected: longer than the slowest restore. Default `1h`.
    #[arg(
        long,
        env = env::CACHE_HEAL_GC_GRACE,
        hide_env_values = true,
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "1h"
    )]
    pub grace: std::time::Duration,

    /// Show what would be evicted and what kept; remove nothing
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN, hide_env_values = true)]
    pub dry_run: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The uv cache to prune (what `uv cache dir` prints)
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, hide_env_values = true, value_name = "DIR")]
    pub path: PathBuf,

    /// List what would be removed; change nothing
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN, hide_env_values = true)]
    pub dry_run: bool,

    /// Do not wait for uv's cache lock
    ///
    /// By default prune holds `<cache>/.lock` exclusively, as `uv cache prune` does, and waits
    /// while a uv process uses the cache.
    #[arg(long, env = env::CACHE_HEAL_FORCE, hide_env_values = true)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    /// The uv cache to heal (what `uv cache dir` prints)
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, hide_env_values = true, value_name = "DIR")]
    pub path: PathBuf,

    /// Print the plan and change nothing
    ///
    /// The plan lists each package and version, the targets lacking a wheel, the bytes to
    /// fetch, and where each URL came from.
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN, hide_env_values = true)]
    pub dry_run: bool,

    #[command(flatten)]
    pub targets: HealTargets,
}

/// Who the cache is healed for and where sources come from; shared by `heal` and `restore`.
#[derive(Clone, Debug, Args)]
pub struct HealTargets {
    /// An interpreter to heal for: a version (`3.12`) or a path; repeatable
    ///
    /// A version is found as `python3.12` on `PATH` or in pyenv. Repeat the flag, or give
    /// several lines in one value. By default `UV_PYTHON` if it is set, else `python3` on
    /// `PATH`.
    #[arg(
        long = "python",
        env = env::CACHE_HEAL_PYTHON,
        hide_env_values = true,
        value_name = "PYTHON"
    )]
    pub pythons: Vec<String>,

    /// A `uv.lock` or `pylock.toml` to take sdist URLs from; repeatable
    ///
    /// Sources are matched by sha256. By default `uv.lock` and `pylock.toml` in the current
    /// directory, if present.
    #[arg(
        long = "lock",
        env = env::CACHE_HEAL_LOCK,
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub locks: Vec<PathBuf>,

    /// A simple-API index to find sdists on; repeatable
    ///
    /// Used for sources no lock file has (PEP 691 JSON, else PEP 503 HTML); an absolute
    /// http(s) URL. By default `UV_DEFAULT_INDEX` or `UV_INDEX_URL` if set, else
    /// `https://pypi.org/simple`.
    #[arg(
        long = "index-url",
        env = env::CACHE_HEAL_INDEX_URL,
        hide_env_values = true,
        value_name = "URL",
        value_parser = parse_index_urls
    )]
    pub index_urls: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The Python version the key is for; only `X.Y` goes into the key
    ///
    /// By default `UV_PYTHON`, else the first line of `.python-version` in the project
    /// directory, else what `python3 --version` prints.
    #[arg(
        long,
        env = env::CACHE_HEAL_PYTHON_VERSION,
        hide_env_values = true,
        value_name = "VERSION",
        value_parser = parse_python_version
    )]
    pub python_version: Option<String>,

    /// Which tool's cache the key is for
    #[arg(
        long,
        value_enum,
        default_value_t = Tool::Uv,
        env = env::CACHE_HEAL_TOOL,
        hide_env_values = true
    )]
    pub tool: Tool,

    /// Where to look for the files hashed into the key
    ///
    /// Those are `uv.lock`, `pylock.toml`, `requirements*.txt` and `pyproject.toml` (and
    /// `.python-version`). By default the current directory. Subdirectories are searched too,
    /// except hidden ones, virtualenvs and build trees.
    #[arg(
        long,
        env = env::CACHE_HEAL_PROJECT_DIR,
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub project_dir: Option<PathBuf>,
}

/// Checks `--python-version`: anything a tool prints that holds `X.Y` (`3.12`, `3.12.4`,
/// `cpython-3.12`, `pypy@3.10`); empty means "not given" (the action passes empty inputs).
fn parse_python_version(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    crate::autokey::parse_minor(text, crate::autokey::PythonSource::Flag)
        .map(|_| text.to_string())
        .map_err(|_| {
            format!("`{text}` is not a Python version; expected `X.Y`, like `3.12` or `3.12.4`")
        })
}

/// Checks each line of an `--index-url` value (an action input may hold several) and keeps
/// the value as given.
fn parse_index_urls(text: &str) -> Result<String, String> {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .try_for_each(crate::python::index::check_index_url)?;
    Ok(text.to_string())
}

/// Parses `1048576`, `10G`, `512MiB`, `1.5GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; expected a number of bytes like 5G"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("`{other}` is not a size unit; use K, M, G or T")),
    };
    Ok((number * factor as f64) as u64)
}

/// Parses `90`, `45s`, `90m`, `12h`, `30d`, `2w`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration; expected a number and a unit like 30d")
    })?;
    let seconds: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit; use s, m, h, d or w"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(
        number.saturating_mul(seconds),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86400);
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_environment_variable() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_env().is_some(),
                    "`{} --{id}` has no environment variable",
                    sub.get_name()
                );
            }
        }
    }

    /// `--help` names each variable but never shows its value: a store spec or a path can be
    /// private, and help output ends up in CI logs.
    #[test]
    fn help_never_shows_an_environment_value() {
        let cli = Cli::command();
        let top = cli.get_arguments().map(|arg| ("cache-heal", arg));
        let subs = cli
            .get_subcommands()
            .flat_map(|sub| sub.get_arguments().map(|arg| (sub.get_name(), arg)));
        for (command, arg) in top.chain(subs) {
            if arg.get_env().is_some() {
                assert!(
                    arg.is_hide_env_values_set(),
                    "`{command} --{}` shows its environment value in `--help`; add `hide_env_values = true`",
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
    }
}
