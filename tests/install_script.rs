//! `dist/install.sh`: picks the asset for the runner, downloads it from a release, checks its
//! sha256 against `dist/checksums.txt`, keeps it in the tool cache, and builds from source when
//! the action's ref is not a release.
//!
//! The release is served by a small HTTP server on 127.0.0.1 (port 0, started per test, stopped
//! when the test drops it) holding a fake release: a tarball whose `cache-heal` is a shell
//! script that prints a version.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const TARGET: &str = "x86_64-unknown-linux-musl";
const ASSET: &str = "cache-heal-x86_64-unknown-linux-musl.tar.gz";

/// Serves files below `root` over HTTP/1.0 on 127.0.0.1 until dropped (or for 60 s at most).
struct FileServer {
    url: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (requests.clone(), stop.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = serve(&root, stream);
            }
        });
        Self {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(root: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let inside = !path.contains("..");
    match std::fs::read(&file) {
        Ok(body) if inside && file.is_file() => {
            write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        _ => stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?,
    }
    stream.flush()
}

/// A tarball holding an executable `cache-heal` that prints `version`.
fn fake_asset(version: &str) -> Vec<u8> {
    let script = format!("#!/bin/sh\necho \"cache-heal {version}\"\n");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "cache-heal", script.as_bytes())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A test's world: the action's checkout (with `dist/checksums.txt`), the release directory the
/// server serves, the runner's tool cache and temp, and a `GITHUB_OUTPUT` file.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cache-heal-install-")
            .tempdir()
            .unwrap();
        for sub in ["action/dist", "release", "tool-cache", "runner-temp", "bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Publishes `served` as the release asset of `tag`, and records `recorded`'s sha256 for
    /// it in the action's `dist/checksums.txt`.
    fn release(&self, tag: &str, served: &[u8], recorded: &[u8]) {
        let dir = self.path("release").join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ASSET), served).unwrap();
        std::fs::write(
            self.path("action/dist/checksums.txt"),
            format!(
                "# written by release.yml\n# version: {tag}\n{}  {ASSET}\n{}  cache-heal-aarch64-apple-darwin.tar.gz\n",
                sha256_hex(recorded),
                sha256_hex(b"another asset"),
            ),
        )
        .unwrap();
    }

    /// `bash dist/install.sh` on a Linux X64 runner, with the action at `action_ref`.
    fn install(&self, server: &FileServer, action_ref: &str) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/install.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.path("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("HOME", self.dir.path())
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TOOL_CACHE", self.path("tool-cache"))
            .env("RUNNER_TEMP", self.path("runner-temp"))
            .env("GITHUB_OUTPUT", self.path("github_output"))
            .env("CACHE_HEAL_ACTION_PATH", self.path("action"))
            .env("CACHE_HEAL_ACTION_REPOSITORY", "example/cache-heal")
            .env("CACHE_HEAL_ACTION_REF", action_ref)
            .env("CACHE_HEAL_DOWNLOAD_BASE", &server.url);
        cmd
    }

    fn outputs(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.path("github_output")).unwrap_or_default();
        let mut lines = text.lines();
        let mut out = BTreeMap::new();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").expect("heredoc form");
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
            out.insert(name.to_string(), value.join("\n"));
        }
        out
    }

    /// A stand-in `cargo` on PATH that records its arguments and leaves a binary where
    /// `cargo build --release --target-dir D` would.
    fn fake_cargo(&self) {
        let script = format!(
            "#!/bin/sh\necho \"$@\" > '{log}'\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --target-dir ]; then dir=\"$2\"; fi\n  shift\ndone\nmkdir -p \"$dir/release\"\nprintf '#!/bin/sh\\necho cache-heal built-from-source\\n' > \"$dir/release/cache-heal\"\nchmod +x \"$dir/release/cache-heal\"\n",
            log = self.path("cargo-args").display()
        );
        let path = self.path("bin/cargo");
        std::fs::write(&path, script).unwrap();
        make_executable(&path);
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_bin(path: &str) -> String {
    let out = Command::new(path).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The good asset installs into the tool cache for a floating major tag, and a second install
/// reuses it without downloading.
#[test]
fn good_asset_installs_into_the_tool_cache() {
    let world = World::new();
    let asset = fake_asset("9.9.9");
    world.release("v9.9.9", &asset, &asset);
    let server = FileServer::start(world.path("release"));

    let out = world.install(&server, "v9").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = world.outputs()["bin"].clone();
    assert_eq!(
        PathBuf::from(&bin),
        world.path("tool-cache/cache-heal/9.9.9/x64/cache-heal")
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), bin);
    assert_eq!(run_bin(&bin), "cache-heal 9.9.9");
    assert!(stderr(&out).contains(&format!("Installed cache-heal v9.9.9 for {TARGET}")));
    assert_eq!(server.requests(), 1);

    let again = world.install(&server, "v9.9.9").output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("is in the tool cache"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        server.requests(),
        1,
        "the cached binary was downloaded again"
    );
}

/// An asset whose bytes differ from the recorded sha256 is refused with a clear error, and
/// nothing is installed.
#[test]
fn tampered_asset_is_refused() {
    let world = World::new();
    let good = fake_asset("9.9.9");
    let evil = fake_asset("9.9.9-evil");
    world.release("v9.9.9", &evil, &good);
    let server = FileServer::start(world.path("release"));

    let out = world.install(&server, "v9.9.9").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: Refused `{ASSET}` from `{}/v9.9.9/{ASSET}`: its sha256 is {} but `dist/checksums.txt` says {}; nothing was installed",
            server.url,
            sha256_hex(&evil),
            sha256_hex(&good)
        )),
        "{err}"
    );
    assert!(!world.outputs().contains_key("bin"));
    assert!(
        support_list(&world.path("tool-cache")).is_empty(),
        "the tool cache was written"
    );
    assert!(out.stdout.is_empty());
}

/// A `version` input that is not the recorded release has no checksum, so it is refused.
#[test]
fn a_version_without_a_checksum_is_refused() {
    let world = World::new();
    let asset = fake_asset("9.9.9");
    world.release("v9.9.9", &asset, &asset);
    let server = FileServer::start(world.path("release"));
    let out = world
        .install(&server, "v9")
        .env("CACHE_HEAL_VERSION", "v8.0.0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "`version` `v8.0.0` is not the release this copy of the action records (`v9.9.9`)"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests(), 0);
}

/// An action pinned to a commit is not a release: the binary is built from the action's source
/// with `cargo build --release --locked`, and nothing is downloaded.
#[test]
fn a_commit_pin_builds_from_source() {
    let world = World::new();
    let asset = fake_asset("9.9.9");
    world.release("v9.9.9", &asset, &asset);
    world.fake_cargo();
    let server = FileServer::start(world.path("release"));
    let out = world
        .install(&server, "0123456789abcdef0123456789abcdef01234567")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let args = std::fs::read_to_string(world.path("cargo-args")).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "build --release --locked --manifest-path {}/Cargo.toml --target-dir {}/cache-heal-target",
            world.path("action").display(),
            world.path("runner-temp").display()
        )
    );
    assert_eq!(
        run_bin(&world.outputs()["bin"]),
        "cache-heal built-from-source"
    );
    assert_eq!(server.requests(), 0);
}

/// Without cargo, a non-release ref fails with a hint instead of a shell error.
#[test]
fn a_commit_pin_without_cargo_says_what_to_do() {
    let world = World::new();
    let server = FileServer::start(world.path("release"));
    std::fs::write(world.path("action/dist/checksums.txt"), "# version: none\n").unwrap();
    let hidden = Command::new("sh")
        .args(["-c", "PATH=/usr/bin:/bin command -v cargo"])
        .output()
        .unwrap();
    assert!(
        !hidden.status.success(),
        "cargo is in /usr/bin or /bin on this machine, so this test cannot hide it"
    );
    let out = world
        .install(&server, "main")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot build cache-heal from source: `cargo` is not installed"),
        "{err}"
    );
    assert!(
        err.contains("hint: pin the action to a release tag"),
        "{err}"
    );
}

/// The `binary` input is used as it is.
#[test]
fn a_preinstalled_binary_is_used_as_is() {
    let world = World::new();
    let server = FileServer::start(world.path("release"));
    let bin = world.path("bin/my-cache-heal");
    std::fs::write(&bin, "#!/bin/sh\necho cache-heal mine\n").unwrap();
    make_executable(&bin);
    let out = world
        .install(&server, "v1")
        .env("CACHE_HEAL_BINARY", &bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(PathBuf::from(&world.outputs()["bin"]), bin);

    let out = world
        .install(&server, "v1")
        .env("CACHE_HEAL_BINARY", world.path("bin/missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not an executable file"),
        "{}",
        stderr(&out)
    );
}

fn support_list(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect()
}
