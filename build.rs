//! Stamps the version `--version` prints with the commit and its date when the crate is built
//! from its own git checkout: `cache-heal 0.1.0 (14b4b98 2026-11-28)`. Anywhere else (`cargo
//! install` from a tarball, git missing, a checkout git refuses to read) it is the version
//! alone: the build never fails for want of git.
//!
//! Cargo re-runs this script when `HEAD` moves: it watches the `HEAD` file and the branch ref
//! `HEAD` points to (the loose ref file, else the directory it would appear in, and
//! `packed-refs`). Paths come from `git rev-parse --git-path`, so a linked worktree, whose
//! `.git` is a file, works too.
#![allow(clippy::disallowed_methods)] // no fs-err here: every file-system error is dropped, not shown

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let long = match commit(&dir) {
        Some((hash, date)) => format!("{version} ({hash} {date})"),
        None => version,
    };
    println!("cargo:rustc-env=CACHE_HEAL_LONG_VERSION={long}");
}

/// The short hash and commit date of `HEAD`, if `dir` is the top of a git checkout.
fn commit(dir: &Path) -> Option<(String, String)> {
    // A tarball unpacked inside some other repository must not take that repository's commit.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    watch_head(dir);
    let hash = git(dir, &["rev-parse", "--short=7", "HEAD"])?;
    let date = git(dir, &["log", "-1", "--format=%cs"])?;
    let is_hash = hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    // `%cs` needs git 2.21; an older git prints it back verbatim.
    let is_date = date.len() == 10 && date.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    (is_hash && is_date).then_some((hash, date))
}

fn watch_head(dir: &Path) {
    let git_path = |name: &str| git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p));
    let mut watched = Vec::new();
    watched.extend(git_path("HEAD"));
    // On a branch, HEAD names a ref; a detached HEAD holds the hash itself.
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(loose) = git_path(&reference) {
            // A packed ref has no file until the next commit writes one: watch where it will
            // appear.
            if loose.exists() {
                watched.push(loose);
            } else {
                watched.extend(loose.parent().map(Path::to_path_buf));
            }
        }
        watched.extend(git_path("packed-refs").filter(|p| p.exists()));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// What `git -C dir ARGS` prints, trimmed; `None` if git is missing, fails or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
