//! The GitHub store benchmark: cache-heal against `@actions/cache` through the same stack
//! (Azurite + the test cache service), on the same package-cache-like tree, in the same run,
//! with cache-heal's own local-directory store and GNU `tar -x` as the floors a restore through
//! the network is held to. Every row reports wall time, CPU time and peak RSS (from
//! `/usr/bin/time`, per process); the tools take turns, run after run, so that load from
//! elsewhere falls on all of them alike.
//!
//! Not part of the test suite (`#[ignore]`, and it asserts nothing about time): run it through
//! `bench/gha.sh`, which builds in release mode and prints the ratios.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::gha::{CacheService, azurite, cache_heal, node_command, node_result, token};
use support::{Sandbox, assert_same_tree, snapshot};

/// A uv-like cache: ~40,000 files, median ~2 KiB, a long tail of large files (built wheels,
/// shared objects) bringing it to about `total_mib`. Small files are source-like text (they
/// compress), large ones half text, half incompressible (zipped wheels do not compress).
fn generate_tree(root: &Path, files: usize, total_mib: u64) -> u64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let words: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                "{}_{}",
                ["def", "import", "self", "return", "value", "numpy", "class"][i % 7],
                i
            )
        })
        .collect();
    let text = |rng: &mut rand::rngs::StdRng, len: usize| {
        let mut out = String::with_capacity(len + 32);
        while out.len() < len {
            out.push_str(&words[rng.random_range(0..words.len())]);
            out.push(if rng.random_range(0..8) == 0 {
                '\n'
            } else {
                ' '
            });
        }
        out.truncate(len);
        out.into_bytes()
    };
    let mut written = 0u64;
    let large = 40usize;
    for i in 0..files - large {
        // Log-normal sizes around a 2 KiB median (Box-Muller).
        let (u1, u2): (f64, f64) = (rng.random_range(1e-9..1.0), rng.random());
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let size = (2048.0 * (normal * 1.2).exp()).clamp(16.0, 4.0 * 1024.0 * 1024.0) as usize;
        let dir = root.join(format!("wheels-v5/pypi/pkg{:04}/{}", i / 40, i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("module_{i}.py")), text(&mut rng, size)).unwrap();
        written += size as u64;
    }
    let remaining = (total_mib << 20).saturating_sub(written);
    let per_large = (remaining / large as u64) as usize;
    let dir = root.join("archive-v0/blobs");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..large {
        let mut data = text(&mut rng, per_large / 2);
        let mut noise = vec![0u8; per_large - per_large / 2];
        rng.fill(&mut noise[..]);
        data.extend_from_slice(&noise);
        std::fs::write(dir.join(format!("lib{i}.so")), data).unwrap();
        written += per_large as u64;
    }
    written
}

/// Runs `cmd`, failing with its stderr unless it exits 0.
fn succeeded(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// CPU seconds (user + system) of the children this process has waited for: the tool under
/// test, with everything it ran (`@actions/cache` runs tar and zstd).
fn children_cpu() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds of the Azurite process so far (`/proc/PID/stat`, utime + stime in ticks).
fn azurite_cpu() -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", azurite().pid)).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One measured run of a row.
#[derive(Clone, Copy)]
struct Sample {
    seconds: f64,
    /// CPU seconds of the tool and everything it ran.
    cpu: f64,
    /// CPU seconds Azurite spent meanwhile.
    azurite: f64,
    /// The tool's peak resident set, MiB (for `@actions/cache`, its node process; tar and zstd
    /// run beside it with a few MiB each).
    rss_mib: f64,
}

/// Runs `cmd` under `/usr/bin/time`, failing with its stderr unless it exits 0; returns its
/// output and what it cost.
fn measured(cmd: &Command) -> (std::process::Output, Sample) {
    let rss_file = std::env::temp_dir().join(format!("gha-bench-rss-{}", std::process::id()));
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    let (client, service) = (children_cpu(), azurite_cpu());
    let started = Instant::now();
    let out = succeeded(&mut timed);
    let seconds = started.elapsed().as_secs_f64();
    let kib: f64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("/usr/bin/time wrote the peak RSS");
    std::fs::remove_file(&rss_file).unwrap();
    let sample = Sample {
        seconds,
        cpu: children_cpu() - client,
        azurite: azurite_cpu() - service,
        rss_mib: kib / 1024.0,
    };
    (out, sample)
}

/// A row of the table: its samples, one per run.
struct Row {
    what: &'static str,
    samples: Vec<Sample>,
}

impl Row {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, sample: Sample) {
        eprintln!(
            "  {}: {:.2}s (CPU: client {:.2}s, Azurite {:.2}s), peak RSS {:.0} MiB",
            self.what, sample.seconds, sample.cpu, sample.azurite, sample.rss_mib
        );
        self.samples.push(sample);
    }

    fn median(&self, field: impl Fn(&Sample) -> f64) -> f64 {
        let mut values: Vec<f64> = self.samples.iter().map(field).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    fn seconds(&self) -> f64 {
        self.median(|s| s.seconds)
    }

    fn print(&self) {
        let peak = self.samples.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
        println!(
            "| {:<50} | {:>7.2} s | {:>7.2} s | {:>7.2} s | {:>6.0} MiB |",
            self.what,
            self.seconds(),
            self.median(|s| s.cpu),
            self.median(|s| s.azurite),
            peak
        );
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The archive file of the one entry of a local-directory store.
fn local_archive(store: &Path) -> std::path::PathBuf {
    std::fs::read_dir(store.join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tzst"))
        .expect("the local store holds the entry's archive")
}

#[test]
#[ignore = "a benchmark: run bench/gha.sh"]
fn bench_gha_save_and_restore() {
    let files: usize = env_or("BENCH_FILES", 20_000);
    let mib: u64 = env_or("BENCH_MIB", 600);
    let runs: usize = env_or("BENCH_RUNS", 3).max(1);
    // The uncompressed tar of the floor row takes as much room as the tree again.
    let floor = env_or("BENCH_FLOOR", mib <= 2048);
    // A link whose limit is each connection's rate, as from a runner to Azure: blob bodies go
    // through the test service's proxy at this pace. 0: straight to Azurite.
    let link_mbps: u64 = env_or("BENCH_LINK_MBPS", 0);
    let service = if link_mbps > 0 {
        let service = CacheService::with_proxy();
        service
            .faults()
            .blob_get_mbps
            .store(link_mbps, std::sync::atomic::Ordering::SeqCst);
        service
    } else {
        CacheService::start()
    };
    let sandbox = Sandbox::new();
    let token = token(&[("refs/heads/main", 3)]);
    let cache = sandbox.home().join(".cache/uv");
    let bytes = generate_tree(&cache, files, mib);
    eprintln!(
        "tree: {files} files, {:.0} MiB at `{}`; {runs} run(s), medians",
        bytes as f64 / 1048576.0,
        cache.display()
    );
    let expected = snapshot(&cache);
    let paths = ["~/.cache/uv"];
    let ch_gha = || cache_heal(&sandbox, &service, &token);
    let ch_local = |run: usize| {
        let mut cmd = cache_heal(&sandbox, &service, &token);
        let store = sandbox.root().join(format!("local-store-{run}"));
        cmd.env("CACHE_HEAL_STORE", format!("dir:{}", store.display()));
        (cmd, store)
    };

    let mut node_save = Row::new("@actions/cache saveCache");
    let mut ch_save = Row::new("cache-heal save, GitHub store");
    let mut local_save = Row::new("cache-heal save, local directory store");
    let mut node_restore = Row::new("@actions/cache restoreCache");
    let mut ch_restore = Row::new("cache-heal restore, GitHub store");
    let mut local_restore = Row::new("cache-heal restore, local directory store");
    let mut tar_floor = Row::new("GNU tar -x of the uncompressed tar (floor)");
    let mut levels = Vec::new();
    let mut local_size = 0;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap();
    for run in 0..runs {
        eprintln!("run {}:", run + 1);
        let key = |tool: &str| format!("bench-{tool}-{run}");
        let node_args = |tool: &str| json!({"key": key(tool), "paths": paths});

        let (out, sample) = measured(&node_command(
            &sandbox,
            &service,
            &token,
            "save",
            &node_args("node"),
        ));
        let saved = node_result("save", out);
        assert!(
            saved.result["cache_id"].as_i64().unwrap() > 0,
            "{}",
            saved.result
        );
        node_save.add(sample);

        let (out, sample) =
            measured(ch_gha().args(["save", "--key", &key("ch"), "--path", paths[0], "--json"]));
        let result = support::stdout_json(&out);
        assert_eq!(result["status"], "saved", "{result}");
        levels.push(result["compression_levels"].to_string());
        ch_save.add(sample);

        let (mut local, store) = ch_local(run);
        let (_, sample) =
            measured(local.args(["save", "--key", &key("local"), "--path", paths[0]]));
        local_save.add(sample);
        local_size = std::fs::metadata(local_archive(&store)).unwrap().len();

        // The floor: the same entry's tar, decompressed beforehand, extracted where the tools
        // restore to (member names are relative to the current directory, as in the tools'
        // own runs).
        let tar = sandbox.root().join("floor.tar");
        if floor {
            succeeded(
                Command::new("sh")
                    .arg("-c")
                    .arg("zstd -dc \"$1\" > \"$2\"")
                    .arg("sh")
                    .arg(local_archive(&store))
                    .arg(&tar),
            );
        }

        std::fs::remove_dir_all(&cache).unwrap();
        let (out, sample) = measured(&node_command(
            &sandbox,
            &service,
            &token,
            "restore",
            &node_args("node"),
        ));
        assert_eq!(
            node_result("restore", out).result["matched_key"],
            key("node")
        );
        node_restore.add(sample);
        assert_same_tree(&expected, &snapshot(&cache));

        std::fs::remove_dir_all(&cache).unwrap();
        let (out, sample) =
            measured(ch_gha().args(["restore", "--key", &key("ch"), "--path", paths[0], "--json"]));
        assert_eq!(support::stdout_json(&out)["status"], "exact");
        ch_restore.add(sample);
        assert_same_tree(&expected, &snapshot(&cache));

        std::fs::remove_dir_all(&cache).unwrap();
        let (mut local, store) = ch_local(run);
        let (out, sample) = measured(local.args([
            "restore",
            "--key",
            &key("local"),
            "--path",
            paths[0],
            "--json",
        ]));
        assert_eq!(support::stdout_json(&out)["status"], "exact");
        local_restore.add(sample);
        assert_same_tree(&expected, &snapshot(&cache));
        std::fs::remove_dir_all(&store).unwrap();

        if floor {
            std::fs::remove_dir_all(&cache).unwrap();
            let mut tar_x = Command::new("tar");
            tar_x.arg("-xPf").arg(&tar).current_dir(sandbox.ws());
            let (_, sample) = measured(&tar_x);
            tar_floor.add(sample);
            assert_same_tree(&expected, &snapshot(&cache));
            std::fs::remove_file(&tar).unwrap();
        }
    }

    let mut sizes: Vec<String> = service
        .entries()
        .iter()
        .filter(|e| e.key.ends_with("-0"))
        .map(|e| format!("{} {:.0} MiB", e.key, e.size as f64 / 1048576.0))
        .collect();
    sizes.push(format!(
        "the local store's (a save of the same tree) {:.0} MiB",
        local_size as f64 / 1048576.0
    ));
    println!();
    println!(
        "Corpus: a generated uv-like cache, {files} files, {:.0} MiB: source-like text files \
         (log-normal sizes, median 2 KiB) and 40 large files, half text, half incompressible; \
         archives {}; cache-heal's zstd levels per run: {}. Azurite and the cache service run \
         on loopback; the tree lives under {}.",
        bytes as f64 / 1048576.0,
        sizes.join(", "),
        levels.join(" "),
        std::env::temp_dir().display()
    );
    println!(
        "Requests: @actions/cache downloads with one plain GET here (it takes its 4 MiB x 8 \
         ranged path only for hosts under blob.core.windows.net) and uploads 32 MiB blocks; \
         cache-heal sends ranged GETs of 8 MiB, growing to 32 MiB while the unpacker hardly \
         waits for them, and 4 MiB blocks everywhere. Azurite spends CPU per \
         request on the same cores as the tools (the Azurite column), which GitHub's service \
         does not."
    );
    if link_mbps > 0 {
        println!(
            "Link: every blob GET's body went through the test service's proxy at \
             {link_mbps} MB/s per connection (BENCH_LINK_MBPS); the proxy reads Azurite's answer \
             whole first, and its CPU is in no column."
        );
    }
    println!(
        "Medians of {runs} run(s); peak RSS is the largest of the runs. Load average before: {}, \
         after: {}.",
        load_before.trim(),
        std::fs::read_to_string("/proc/loadavg").unwrap().trim()
    );
    println!();
    println!(
        "| {:<50} | {:>9} | {:>9} | {:>9} | {:>10} |",
        "what", "wall", "CPU", "Azurite", "peak RSS"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(52),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(12)
    );
    for row in [&node_restore, &ch_restore, &local_restore] {
        row.print();
    }
    if floor {
        tar_floor.print();
    }
    for row in [&node_save, &ch_save, &local_save] {
        row.print();
    }
    println!();
    println!(
        "RATIO restore cache-heal {:.2}s / @actions/cache {:.2}s = {:.2}x (bar 0.6x)",
        ch_restore.seconds(),
        node_restore.seconds(),
        ch_restore.seconds() / node_restore.seconds()
    );
    println!(
        "RATIO restore GitHub store {:.2}s / local directory store {:.2}s = {:.2}x (bar 1.2x)",
        ch_restore.seconds(),
        local_restore.seconds(),
        ch_restore.seconds() / local_restore.seconds()
    );
    println!(
        "RATIO save    cache-heal {:.2}s / @actions/cache {:.2}s = {:.2}x (bar 0.6x)",
        ch_save.seconds(),
        node_save.seconds(),
        ch_save.seconds() / node_save.seconds()
    );
}
