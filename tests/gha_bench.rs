//! The GitHub store benchmark: cache-heal against `@actions/cache` through the same stack
//! (Azurite + the test cache service), on the same package-cache-like tree, in the same run.
//!
//! Not part of the test suite (`#[ignore]`, and it asserts nothing about time): run it through
//! `bench/gha.sh`, which builds in release mode and prints the ratios.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use serde_json::json;
use std::path::Path;
use std::time::Instant;
use support::gha::{CacheService, azurite, cache_heal, node, token};
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

/// Runs `f`, printing its wall time and the CPU time the client and Azurite spent meanwhile:
/// both share this machine's cores, which a real runner and the real service do not.
fn timed(what: &str, f: impl FnOnce()) -> f64 {
    let (client, service) = (children_cpu(), azurite_cpu());
    let started = Instant::now();
    f();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "  {what}: {seconds:.2}s (CPU: client {:.1}s, Azurite {:.1}s)",
        children_cpu() - client,
        azurite_cpu() - service
    );
    seconds
}

#[test]
#[ignore = "a benchmark: run bench/gha.sh"]
fn bench_gha_save_and_restore() {
    let files: usize = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let mib: u64 = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let service = CacheService::start();
    let sandbox = Sandbox::new();
    let token = token(&[("refs/heads/main", 3)]);
    let cache = sandbox.home().join(".cache/uv");
    let bytes = generate_tree(&cache, files, mib);
    eprintln!(
        "tree: {files} files, {:.0} MiB at `{}`",
        bytes as f64 / 1048576.0,
        cache.display()
    );
    let expected = snapshot(&cache);
    let paths = ["~/.cache/uv"];

    let node_save = timed("@actions/cache saveCache", || {
        let run = node(
            &sandbox,
            &service,
            &token,
            "save",
            &json!({"key": "bench-node", "paths": paths}),
        );
        assert!(
            run.result["cache_id"].as_i64().unwrap() > 0,
            "{}",
            run.result
        );
    });
    let ch_save = timed("cache-heal save", || {
        let out = succeeded(
            cache_heal(&sandbox, &service, &token)
                .args(["save", "--key", "bench-ch", "--path", paths[0], "--json"]),
        );
        let result = support::stdout_json(&out);
        assert_eq!(result["status"], "saved", "{result}");
        eprintln!("  zstd levels: {}", result["compression_levels"]);
    });

    // For reference: the same save into a local-directory store, which separates packing time
    // from transfer time.
    let local = sandbox.root().join("local-store");
    timed("cache-heal save, local store (reference)", || {
        succeeded(
            cache_heal(&sandbox, &service, &token)
                .env("CACHE_HEAL_STORE", format!("dir:{}", local.display()))
                .args(["save", "--key", "bench-local", "--path", paths[0]]),
        );
    });

    std::fs::remove_dir_all(&cache).unwrap();
    let node_restore = timed("@actions/cache restoreCache", || {
        let run = node(
            &sandbox,
            &service,
            &token,
            "restore",
            &json!({"key": "bench-node", "paths": paths}),
        );
        assert_eq!(run.result["matched_key"], "bench-node");
    });
    assert_same_tree(&expected, &snapshot(&cache));
    std::fs::remove_dir_all(&cache).unwrap();
    let ch_restore = timed("cache-heal restore", || {
        let out = succeeded(
            cache_heal(&sandbox, &service, &token)
                .args(["restore", "--key", "bench-ch", "--path", paths[0], "--json"]),
        );
        assert_eq!(support::stdout_json(&out)["status"], "exact");
    });
    assert_same_tree(&expected, &snapshot(&cache));
    let sizes: Vec<String> = service
        .entries()
        .iter()
        .map(|e| format!("{} {:.0} MiB", e.key, e.size as f64 / 1048576.0))
        .collect();
    eprintln!("archives: {}", sizes.join(", "));
    println!(
        "RATIO save    cache-heal {ch_save:.2}s / @actions/cache {node_save:.2}s = {:.2}x",
        ch_save / node_save
    );
    println!(
        "RATIO restore cache-heal {ch_restore:.2}s / @actions/cache {node_restore:.2}s = {:.2}x",
        ch_restore / node_restore
    );
}
