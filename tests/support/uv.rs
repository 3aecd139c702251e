//! Real peers for the uv tests: the uv binaries and packaging installed by
//! `scripts/install-test-deps.sh`, pyenv's interpreters, fixture distributions built at test
//! time, and a local package index on 127.0.0.1. Anything missing fails the test loudly: these
//! tests never skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn test_deps() -> PathBuf {
    repo_root().join(".test-deps")
}

/// `uv` of one release: `0.13.9` or `0.12.24`.
pub fn uv_bin(version: &str) -> PathBuf {
    let bin = test_deps()
        .join(format!("uv-{version}"))
        .join("bin")
        .join("uv");
    assert!(
        bin.is_file(),
        "uv {version} is missing at `{}`: run `bash scripts/install-test-deps.sh`",
        bin.display()
    );
    bin
}

/// The pyenv interpreter for `3.11`, `3.12`, … (the newest patch release installed).
pub fn python(version: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".pyenv"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .unwrap_or_else(|e| panic!("no pyenv versions under `{}`: {e}", root.display()))
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == version || name.starts_with(&format!("{version}."))
        })
        .map(|e| e.path().join("bin").join("python3"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("Python {version} is not installed in pyenv (`pyenv install {version}`)")
    })
}

/// Every pyenv interpreter that is Python 3.6 or newer, as `(version dir name, python)`.
pub fn all_pythons() -> Vec<(String, PathBuf)> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".pyenv"));
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root.join("versions"))
        .expect("pyenv versions")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let minor: u32 = name.strip_prefix("3.")?.split('.').next()?.parse().ok()?;
            let python = e.path().join("bin").join("python3");
            (minor >= 6 && python.is_file()).then_some((name, python))
        })
        .collect();
    out.sort();
    out
}

/// `packaging` for one interpreter: 26.x for 3.10+, 25.0 for 3.8 and 3.9, 21.3 for 3.6 and 3.7.
pub fn packaging_path(minor: u32) -> PathBuf {
    let dir = test_deps().join(match minor {
        10.. => "packaging",
        8 | 9 => "packaging-25",
        _ => "packaging-21",
    });
    assert!(
        dir.join("packaging").is_dir(),
        "packaging is missing at `{}`: run `bash scripts/install-test-deps.sh`",
        dir.display()
    );
    dir
}

/// Builds the fixture distributions into `dir` (plus `bench` extra sdists) and adds the
/// setuptools wheel downloaded by the install script, so builds need nothing from outside.
pub fn fixtures(dir: &Path, bench: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new(python("3.11"))
        .arg(repo_root().join("tests/support/make_fixtures.py"))
        .arg(dir)
        .args(["--bench", &bench.to_string()])
        .status()
        .expect("run make_fixtures.py");
    assert!(status.success(), "make_fixtures.py failed");
    let backends = test_deps().join("index-files");
    let mut copied = 0;
    for entry in std::fs::read_dir(&backends).unwrap_or_else(|_| {
        panic!(
            "`{}` is missing: run `bash scripts/install-test-deps.sh`",
            backends.display()
        )
    }) {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().ends_with(".whl") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            copied += 1;
        }
    }
    assert!(
        copied > 0,
        "no build backend wheel in `{}`",
        backends.display()
    );
    dir.to_path_buf()
}

/// The local index (`tests/support/index_server.py`), stopped on drop.
pub struct Index {
    child: Option<Child>,
    pub url: String,
    pub control: tempfile::TempDir,
    pub log: PathBuf,
}

impl Index {
    pub fn start(files: &Path, latency_ms: u64) -> Self {
        Self::start_with(files, latency_ms, false)
    }

    /// With `html_only`, project pages are PEP 503 HTML whatever the client asks for.
    pub fn start_with(files: &Path, latency_ms: u64, html_only: bool) -> Self {
        let control = tempfile::tempdir().unwrap();
        let log = control.path().join("requests.log");
        let mut child = Command::new(python("3.11"));
        if html_only {
            child
                .arg(repo_root().join("tests/support/index_server.py"))
                .arg("--html-only");
        } else {
            child.arg(repo_root().join("tests/support/index_server.py"));
        }
        let mut child = child
            .arg("--files")
            .arg(files)
            .args(["--latency-ms", &latency_ms.to_string()])
            .arg("--control")
            .arg(control.path())
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the local index");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the index port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the local index said `{line}` instead of its port"));
        Self {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            control,
            log,
        }
    }

    pub fn simple(&self) -> String {
        format!("{}/simple", self.url)
    }

    pub fn set_tamper(&self, on: bool) {
        let flag = self.control.path().join("tamper");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// `GET /files/...` lines so far.
    pub fn file_requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/files/"))
            .map(str::to_string)
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `uv` with a cache, an index and none of the caller's configuration.
pub fn uv(bin: &Path, cache: &Path, index: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("UV_CACHE_DIR", cache)
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env("UV_INDEX_URL", index)
        .env("UV_LINK_MODE", "copy")
        .env_remove("UV_OFFLINE")
        .env_remove("UV_PYTHON")
        .env_remove("VIRTUAL_ENV");
    cmd
}

/// Runs a command, failing the test with its output unless it succeeds.
pub fn check(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cp -a`: a copy that keeps symlinks, modes and hard links.
pub fn copy_tree(from: &Path, to: &Path) {
    check(Command::new("cp").arg("-a").arg(from).arg(to));
}
