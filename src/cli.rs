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

const EXIT_CODES: &str = "\
Exit codes:
  0  success, including a cache miss and a save skipped because the entry exists
  1  an error (and a miss with `--fail-on-cache-miss`); nothing was half-written
  2  a usage error: an unknown flag, a missing value, a key that breaks the rules";

/// A fast, safe cache for Python dependency caches in CI.
///
/// cache-heal saves and restores directories in the archive format of actions/cache (entries
/// are interchangeable both ways). Restores are checked member by member and swapped into place
/// only when the whole archive was read, so a bad archive never leaves a half-written cache.
#[derive(Debug, Parser)]
#[command(name = "cache-heal", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where entries are kept: `gha` for the GitHub Actions cache, `s3://BUCKET[/PREFIX]` for
    /// S3 or an S3-compatible server, `dir:PATH` (or a plain path) for a local directory.
    ///
    /// By default `gha` when `ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN` are set (inside
    /// the cache-heal action), else a local directory: `$XDG_CACHE_HOME/cache-heal`, else
    /// `~/.cache/cache-heal`.
    #[arg(long, global = true, env = env::CACHE_HEAL_STORE, value_name = "STORE")]
    pub store: Option<String>,

    /// The S3 endpoint, for S3-compatible servers (MinIO, R2, Ceph, Garage).
    ///
    /// By default `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS S3 in `AWS_REGION`.
    /// An endpoint that is not AWS is addressed path-style (`ENDPOINT/BUCKET/…`).
    #[arg(long, global = true, env = env::CACHE_HEAL_S3_ENDPOINT, value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Address the bucket in the path (`ENDPOINT/BUCKET/…`) even on AWS.
    ///
    /// By default only endpoints that are not AWS are addressed path-style.
    #[arg(long, global = true, env = env::CACHE_HEAL_S3_PATH_STYLE)]
    pub s3_path_style: bool,

    /// The scope entries are saved in and restored from, outside GitHub Actions (`s3://`).
    ///
    /// By default `local`. In GitHub Actions the scope follows GitHub's rules instead: a save
    /// writes into the run's ref (`GITHUB_REF`); a restore looks there, then in the pull
    /// request's base branch, then in the default branch. The flag is refused there, so a pull
    /// request cannot write into `main`'s scope.
    #[arg(long, global = true, env = env::CACHE_HEAL_SCOPE, value_name = "SCOPE")]
    pub scope: Option<String>,

    /// Print one JSON object with the result on stdout, and no progress.
    #[arg(long, global = true, env = env::CACHE_HEAL_JSON)]
    pub json: bool,

    /// Print only warnings and errors.
    #[arg(long, short, global = true, env = env::CACHE_HEAL_QUIET)]
    pub quiet: bool,

    /// Hide progress bars and progress lines.
    #[arg(long, global = true, env = env::CACHE_HEAL_NO_PROGRESS)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Archive paths and store them under a key.
    Save(SaveArgs),
    /// Find the entry for a key (or a restore key) and restore it into its paths.
    Restore(RestoreArgs),
    /// List the entries in a store, or with `--path`, what a uv cache holds.
    Inspect(InspectArgs),
    /// Print the automatic key and restore keys for this project, and what went into them.
    Key(KeyArgs),
    /// Prune a uv cache to wheels built from source, as `uv cache prune --ci` does.
    Prune(PruneArgs),
    /// Re-create the sources a uv cache lacks for the interpreters about to use it.
    Heal(HealArgs),
}

/// The path inputs and how member names are made; shared by save and restore so that both
/// compute the same version.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// A path to cache; repeat it, or give several lines in one value.
    ///
    /// Takes what actions/cache's `path` takes: `~`, globs, and `!` excludes. Relative paths
    /// resolve against the current directory. The text, exactly as typed, goes into the entry
    /// version, so save and restore must be given the same lines.
    #[arg(long = "path", required = true, env = env::CACHE_HEAL_PATH, value_name = "PATH")]
    pub paths: Vec<String>,

    /// How the archive is compressed. It is part of the entry version, as in actions/cache.
    #[arg(long, value_enum, default_value_t = Compression::Zstd, env = env::CACHE_HEAL_COMPRESSION)]
    pub compression: Compression,

    /// The directory archive member names are relative to.
    ///
    /// By default `GITHUB_WORKSPACE`, else the current directory, as in actions/cache.
    #[arg(long, env = env::GITHUB_WORKSPACE, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub paths: PathArgs,

    /// The key to save under: at most 512 characters, no commas.
    ///
    /// By default, the key a `restore` of the same paths looked for earlier in this job (in
    /// GitHub Actions, where the restore step leaves it under `RUNNER_TEMP`).
    #[arg(long, env = env::CACHE_HEAL_KEY)]
    pub key: Option<String>,

    /// How hard to compress: `auto`, or a fixed level (zstd 1 to 19, gzip 1 to 9).
    ///
    /// `auto` starts zstd at level 3, what actions/cache writes, then follows whatever holds
    /// the save back: while the upload waits for the compressor (a fast network, a local store)
    /// it steps down to level 1; while the compressor waits for the upload it steps back up to
    /// 3. For gzip, `auto` is level 6. Any level restores with any tool: the level is not part
    /// of the entry version.
    #[arg(
        long,
        env = env::CACHE_HEAL_COMPRESSION_LEVEL,
        value_name = "LEVEL",
        default_value = "auto"
    )]
    pub compression_level: Level,

    /// Save uv caches as they are, without pruning them first.
    ///
    /// By default, every saved path that is a uv cache is pruned to what `uv cache prune --ci`
    /// keeps (wheels built from source and their metadata) before it is archived: pre-built
    /// wheels are faster to download again than to restore.
    #[arg(long, env = env::CACHE_HEAL_NO_PRUNE)]
    pub no_prune: bool,

    /// Prune without waiting for uv's cache lock.
    #[arg(long, env = env::CACHE_HEAL_FORCE)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub paths: PathArgs,

    /// The key to restore; an exact match is a hit.
    #[arg(long, env = env::CACHE_HEAL_KEY)]
    pub key: String,

    /// A fallback key prefix, tried in order when the key has no match; repeatable, or
    /// newline-separated.
    #[arg(long = "restore-key", env = env::CACHE_HEAL_RESTORE_KEYS, value_name = "KEY")]
    pub restore_keys: Vec<String>,

    /// Show what would be restored (matched key and size) and change nothing.
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN)]
    pub dry_run: bool,

    /// Look the entry up and report it, without downloading it.
    #[arg(long, env = env::CACHE_HEAL_LOOKUP_ONLY)]
    pub lookup_only: bool,

    /// Exit 1 when neither the key nor a restore key matches.
    #[arg(long, env = env::CACHE_HEAL_FAIL_ON_CACHE_MISS)]
    pub fail_on_cache_miss: bool,

    /// The most file content a restore may write, in bytes (suffixes K, M, G, T and KiB, MiB,
    /// GiB, TiB are understood).
    ///
    /// By default, the free space at the destination less a margin. Crossing the limit stops
    /// the restore before the member that would cross it is written, so a compression bomb
    /// cannot fill the disk.
    #[arg(long, env = env::CACHE_HEAL_MAX_SIZE, value_name = "BYTES", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Restore even in a `release`, tag push, `pull_request_target` or `workflow_run` run.
    ///
    /// By default those runs start with an empty cache: an entry written by less trusted code
    /// (a pull request) must not reach a job that publishes or holds the repository's secrets.
    #[arg(long, env = env::CACHE_HEAL_ALLOW_UNTRUSTED_EVENT)]
    pub allow_untrusted_event: bool,
    /// Restore uv caches without healing them.
    ///
    /// By default, after a successful restore, every restored path that is a uv cache is
    /// healed for the target interpreters (see `cache-heal heal`). A failed heal is reported
    /// but does not fail the restore.
    #[arg(long, env = env::CACHE_HEAL_NO_HEAL)]
    pub no_heal: bool,

    #[command(flatten)]
    pub heal: HealTargets,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Show what the uv cache at this path holds instead of listing store entries: buckets
    /// and sizes, sdists with the tags of their built wheels, missing sources.
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The uv cache to prune (what `uv cache dir` prints).
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, value_name = "DIR")]
    pub path: PathBuf,

    /// List what would be removed and change nothing.
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN)]
    pub dry_run: bool,

    /// Do not wait for uv's cache lock.
    ///
    /// By default prune holds `<cache>/.lock` exclusively, as `uv cache prune` does, and waits
    /// while a uv process uses the cache.
    #[arg(long, env = env::CACHE_HEAL_FORCE)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    /// The uv cache to heal (what `uv cache dir` prints).
    #[arg(long, env = env::CACHE_HEAL_UV_CACHE, value_name = "DIR")]
    pub path: PathBuf,

    /// Print the plan (package, version, targets lacking a wheel, bytes to fetch, where the
    /// URL came from) and change nothing.
    #[arg(long, env = env::CACHE_HEAL_DRY_RUN)]
    pub dry_run: bool,

    #[command(flatten)]
    pub targets: HealTargets,
}

/// Who the cache is healed for and where sources come from; shared by `heal` and `restore`.
#[derive(Clone, Debug, Args)]
pub struct HealTargets {
    /// An interpreter the cache is healed for: a version (`3.12`, found as `python3.12` on
    /// `PATH` or in pyenv) or a path; repeatable, or newline-separated.
    ///
    /// By default `UV_PYTHON` if it is set, else `python3` on `PATH`.
    #[arg(long = "python", env = env::CACHE_HEAL_PYTHON, value_name = "PYTHON")]
    pub pythons: Vec<String>,

    /// A `uv.lock` or `pylock.toml` to take sdist URLs from (matched by sha256); repeatable.
    ///
    /// By default `uv.lock` and `pylock.toml` in the current directory, if present.
    #[arg(long = "lock", env = env::CACHE_HEAL_LOCK, value_name = "FILE")]
    pub locks: Vec<PathBuf>,

    /// A simple-API index to find sdists on when no lock file has them (PEP 691 JSON, else PEP
    /// 503 HTML); repeatable.
    ///
    /// By default `UV_DEFAULT_INDEX` or `UV_INDEX_URL` if set, else `https://pypi.org/simple`.
    #[arg(long = "index-url", env = env::CACHE_HEAL_INDEX_URL, value_name = "URL")]
    pub index_urls: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The Python version the cache is for; only `X.Y` goes into the key.
    ///
    /// By default `UV_PYTHON`, else the first line of `.python-version` in the project
    /// directory, else what `python3 --version` prints.
    #[arg(long, env = env::CACHE_HEAL_PYTHON_VERSION, value_name = "VERSION", value_parser = parse_python_version)]
    pub python_version: Option<String>,

    /// Which tool's cache the key is for.
    #[arg(long, value_enum, default_value_t = Tool::Uv, env = env::CACHE_HEAL_TOOL)]
    pub tool: Tool,

    /// Where to look for `uv.lock`, `pylock.toml`, `requirements*.txt` and `pyproject.toml`
    /// (and `.python-version`).
    ///
    /// By default the current directory. Subdirectories are searched too, except hidden ones,
    /// virtualenvs and build trees.
    #[arg(long, env = env::CACHE_HEAL_PROJECT_DIR, value_name = "DIR")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
