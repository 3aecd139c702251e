"""Time from a cold CI job to a ready virtual environment, per caching strategy.

Driven by bench/ready-env.sh, which builds cache-heal and finds uv and the Pythons; see there for
the knobs. Python standard library only.

1. Fetch (once, into .bench-cache/ready-env/): the wheels of bench/ready-env-lock.txt for CPython
   3.11 and 3.12 on x86_64 manylinux, both versions of the bumped package, setuptools for the
   builds, and the sdists of SDISTS (markupsafe is served as its sdist only, so every job without
   a built wheel compiles its C extension).
2. Serve them on 127.0.0.1 as PyPI does (PEP 691 JSON and PEP 503 HTML pages with PEP 658
   metadata, pages revalidated with ETags as a cache older than PyPI's 10-minute max-age is,
   files immutable), with a latency added to every request, a bandwidth cap per connection and
   one for all connections together (a runner's network card); the server counts requests and
   bytes, and lives in this process, so it ends with the bench.
3. Seed: one cold job per strategy (Python 3.11, the base lock) saves its entry into that
   strategy's store, a local directory standing in for the cache service. A restore then waits
   as long as the cache service would take to send the entry (its size at --cache-mbps, 125
   MB/s by default, what hosted runners get from GitHub's cache), the same for every strategy:
   without it a local directory makes a big entry free, and no CI cache is. The wait is added
   after the restore, so it is the serial model of actions/cache (download, then extract) and
   pessimistic for cache-heal, whose restore overlaps the download with unpacking.
4. Measure, round-robin: same lock, changed lock (one dependency bumped), new Python (3.12
   against the 3.11 entry). A job empties the uv cache and the venv, then, timed: restores as its
   strategy does, `uv venv` and `uv pip sync` of the lock. Measured jobs do not save, so every
   run sees the store the seed left.
5. Print the table (medians of the runs) and check the bars.
"""
import argparse
import hashlib
import html
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
LOCK = os.path.join(HERE, "ready-env-lock.txt")
# Distributions served as sdists only: two that PyPI has only as sdists (pure Python), and
# markupsafe's, whose C extension must then be compiled (setuptools and a C compiler only).
SDISTS = ["docopt==0.6.2", "langdetect==1.0.9", "markupsafe==3.0.4"]
BUMP = ("requests", "2.34.1", "2.34.2")
BUILD_BACKEND = "setuptools==80.9.0"
PYTHONS = ["3.11", "3.12"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
FETCH_FORMAT = "1"

STRATEGIES = {
    "none": "no cache",
    "setup-uv": "setup-uv: exact key, whole cache",
    "setup-uv-prune": "setup-uv, prune-cache: true",
    "actions-cache": "actions/cache + restore-keys",
    "cache-heal": "cache-heal (defaults)",
    "cache-heal-prune-wheels": "cache-heal --prune wheels (not a default)",
}
REFERENCE = ["none", "setup-uv", "setup-uv-prune", "actions-cache"]
SCENARIOS = {
    "same-lock": ("same lock", "3.11", "base"),
    "changed-lock": ("changed lock", "3.11", "bumped"),
    "new-python": ("new Python (3.11 entry, 3.12 job)", "3.12", "base"),
}


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------------------------

def lock_lines(bumped=False):
    lines = []
    with open(LOCK) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if bumped and line == f"{BUMP[0]}=={BUMP[1]}":
                line = f"{BUMP[0]}=={BUMP[2]}"
            lines.append(line)
    return lines


def fetch_stamp():
    with open(LOCK, "rb") as f:
        text = f.read()
    h = hashlib.sha256(text + repr((SDISTS, BUMP, BUILD_BACKEND, PYTHONS, FETCH_FORMAT)).encode())
    return h.hexdigest()


def pip_download(python, dest, args):
    env = dict(os.environ)
    env.pop("PIP_FIND_LINKS", None)  # this machine's local wheel directory is not PyPI
    cmd = [python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "-d", dest] + args
    subprocess.run(cmd, check=True, env=env)


def fetch(files, pip_python):
    """Downloads the lock's distributions from PyPI once; a stamp says which lock they are for."""
    stamp = os.path.join(files, ".fetched")
    want = fetch_stamp()
    if os.path.exists(stamp) and open(stamp).read().strip() == want:
        return
    log(f"==> fetching the lock's distributions from PyPI into {files} (once)")
    shutil.rmtree(files, ignore_errors=True)
    os.makedirs(files)
    sdist_names = {s.split("==")[0] for s in SDISTS}
    wheels = [p for p in lock_lines() if p.split("==")[0] not in sdist_names] + [BUILD_BACKEND]
    for py in PYTHONS:
        tag = "cp" + py.replace(".", "")
        target = ["--only-binary", ":all:", "--implementation", "cp", "--python-version", py,
                  "--abi", tag, "--abi", "abi3", "--abi", "none"]
        for platform in PLATFORMS:
            target += ["--platform", platform]
        # One version per pip call: pip refuses two pins of one name even with --no-deps.
        pip_download(pip_python, files, target + wheels)
        pip_download(pip_python, files, target + [f"{BUMP[0]}=={BUMP[2]}"])
    pip_download(pip_python, files, ["--no-binary", ":all:"] + SDISTS)
    with open(stamp, "w") as f:
        f.write(want + "\n")


# ---------------------------------------------------------------------------------------------
# The throttled index
# ---------------------------------------------------------------------------------------------

def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename):
    if filename.endswith(".whl"):
        return normalize(filename.split("-")[0])
    return normalize(re.sub(r"\.(tar\.gz|zip|tgz)$", "", filename).rsplit("-", 1)[0])


def wheel_metadata(path):
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return zf.read(name)


def requires_python(metadata):
    for line in metadata.decode(errors="replace").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == "requires-python":
            return value.strip()
    return None


class Index:
    """A PyPI-like simple index over a directory, with latency, bandwidth caps and counters."""

    def __init__(self, files, latency_ms, mb_per_s, total_mb_per_s):
        self.latency = latency_ms / 1000
        self.rate = mb_per_s * 1_000_000 if mb_per_s > 0 else None
        self.total_rate = total_mb_per_s * 1_000_000 if total_mb_per_s > 0 else None
        self.link_free_at = 0.0
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.files = {}
        self.projects = {}
        for name in sorted(os.listdir(files)):
            path = os.path.join(files, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            meta = wheel_metadata(path) if name.endswith(".whl") else None
            self.files[name] = {
                "path": path, "sha256": digest, "size": os.path.getsize(path), "metadata": meta,
                "requires_python": requires_python(meta) if meta else None,
            }
            self.projects.setdefault(project_of(name), []).append(name)
        self.pages = {p: self.render(p) for p in self.projects}

    def render(self, project):
        entries = []
        links = []
        for fn in self.projects[project]:
            info = self.files[fn]
            entry = {"filename": fn, "url": f"/files/{fn}", "hashes": {"sha256": info["sha256"]},
                     "size": info["size"]}
            attrs = ""
            if info["requires_python"]:
                entry["requires-python"] = info["requires_python"]
                attrs += f' data-requires-python="{html.escape(info["requires_python"])}"'
            if info["metadata"]:
                meta_hash = hashlib.sha256(info["metadata"]).hexdigest()
                entry["core-metadata"] = {"sha256": meta_hash}
                attrs += f' data-core-metadata="sha256={meta_hash}"'
            entries.append(entry)
            links.append(f'<a href="/files/{html.escape(fn)}#sha256={info["sha256"]}"{attrs}>'
                         f"{html.escape(fn)}</a><br/>\n")
        as_json = json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": entries}).encode()
        as_html = f"<!DOCTYPE html><html><body>\n{''.join(links)}</body></html>\n".encode()
        etag = '"' + hashlib.sha256(as_json + as_html).hexdigest()[:32] + '"'
        return as_json, as_html, etag

    def counted(self, nbytes):
        """Counts bytes sent, and says when the shared link has carried them (the runner's NIC)."""
        with self.lock:
            self.bytes += nbytes
            if not self.total_rate:
                return 0.0
            self.link_free_at = max(self.link_free_at, time.monotonic()) + nbytes / self.total_rate
            return self.link_free_at

    def snapshot(self):
        with self.lock:
            return self.requests, self.bytes

    def serve(self):
        index = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def head(self, status, content_type, length, cache_control, etag=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(length))
                self.send_header("Cache-Control", cache_control)
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()

            def body(self, chunks):
                """Writes the body no faster than this connection's cap, nor than the shared link
                carries it."""
                start = time.monotonic()
                sent = 0
                for chunk in chunks:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    link_done = index.counted(len(chunk))
                    own_done = start + sent / index.rate if index.rate else 0.0
                    wait = max(link_done, own_done) - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)

            def do_GET(self):
                with index.lock:
                    index.requests += 1
                if index.latency:
                    time.sleep(index.latency)
                path = self.path.split("?")[0]
                if path.startswith("/simple/"):
                    return self.page(path)
                if path.startswith("/files/"):
                    return self.file(path[len("/files/"):])
                self.head(404, "text/plain", 0, "no-store")

            def page(self, path):
                parts = [p for p in path[len("/simple/"):].split("/") if p]
                project = normalize(parts[0]) if parts else None
                if project not in index.pages:
                    return self.head(404, "text/plain", 0, "no-store")
                as_json, as_html, etag = index.pages[project]
                # PyPI says `max-age=600`; a CI cache is older than that when restored, so uv
                # revalidates every page. max-age=0 makes it do so here too.
                cache_control = "max-age=0, public"
                if self.headers.get("If-None-Match") == etag:
                    return self.head(304, "text/html", 0, cache_control, etag)
                if "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
                    body, kind = as_json, "application/vnd.pypi.simple.v1+json"
                else:
                    body, kind = as_html, "text/html"
                self.head(200, kind, len(body), cache_control, etag)
                self.body([body])

            def file(self, name):
                immutable = "max-age=365000000, immutable, public"
                if name.endswith(".metadata") and name[:-len(".metadata")] in index.files:
                    meta = index.files[name[:-len(".metadata")]]["metadata"]
                    if meta:
                        self.head(200, "application/octet-stream", len(meta), immutable)
                        return self.body([meta])
                info = index.files.get(name)
                if not info:
                    return self.head(404, "text/plain", 0, "no-store")
                self.head(200, "application/octet-stream", info["size"], immutable)
                with open(info["path"], "rb") as f:
                    self.body(iter(lambda: f.read(256 * 1024), b""))

        # uv opens dozens of connections at once; the default backlog of 5 would drop some.
        ThreadingHTTPServer.request_queue_size = 256
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/simple"


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, index, index_url):
        self.args = args
        self.index = index
        self.scratch = args.scratch
        self.cache = os.path.join(self.scratch, "job", "uv-cache")
        self.venv = os.path.join(self.scratch, "job", ".venv")
        # Outside the scratch directory, which goes when the bench ends: a failed job names its log.
        self.logs = args.logs
        shutil.rmtree(self.logs, ignore_errors=True)
        os.makedirs(self.logs)
        self.env = dict(os.environ)
        for var in list(self.env):
            if var.startswith(("UV_", "CACHE_HEAL_", "GITHUB_", "ACTIONS_", "PIP_")):
                del self.env[var]
        self.env.update({
            "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1",
            "UV_INDEX_URL": index_url, "UV_CACHE_DIR": self.cache,
        })
        self.projects = {}
        for lock in ("base", "bumped"):
            project = os.path.join(self.scratch, "project-" + lock)
            os.makedirs(project, exist_ok=True)
            with open(os.path.join(project, "requirements.txt"), "w") as f:
                f.write("\n".join(lock_lines(bumped=lock == "bumped")) + "\n")
            self.projects[lock] = project
        self.job_count = 0

    def python(self, version):
        return self.args.py311 if version == "3.11" else self.args.py312

    def store(self, strategy):
        path = os.path.join(self.scratch, "store", strategy)
        os.makedirs(path, exist_ok=True)
        return path

    def run(self, cmd, cwd, logname, shell=False):
        with open(os.path.join(self.logs, logname), "ab") as out:
            out.write(("$ " + (cmd if shell else " ".join(cmd)) + "\n").encode())
            out.flush()
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd] if shell else cmd, cwd=cwd,
                                  env=self.env, stdout=subprocess.PIPE, stderr=out)
            out.write(proc.stdout)
        if proc.returncode != 0:
            raise SystemExit(f"ready-env: `{cmd if shell else ' '.join(cmd)}` failed with exit "
                             f"code {proc.returncode}; see {os.path.join(self.logs, logname)}")
        return proc.stdout

    # Keys, as each tool builds them ----------------------------------------------------------

    def lock_hash(self, lock):
        with open(os.path.join(self.projects[lock], "requirements.txt"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def tar_keys(self, strategy, version, lock):
        """(key, restore keys) of the actions/cache-based strategies."""
        h = self.lock_hash(lock)
        if strategy == "setup-uv":
            return f"setup-uv-2-x86_64-unknown-linux-gnu-py{version}-{h}", []
        if strategy == "setup-uv-prune":
            return f"setup-uv-2-x86_64-unknown-linux-gnu-py{version}-pruned-{h}", []
        # The usual actions/cache recipe, generous to it: the same Python first, then any.
        return f"uv-Linux-py{version}-{h}", [f"uv-Linux-py{version}-", "uv-Linux-"]

    # Restores ---------------------------------------------------------------------------------

    def tar_restore(self, strategy, key, restore_keys, logname):
        """actions/cache's lookup: the exact key, else the newest entry a restore key prefixes."""
        store = self.store(strategy)
        entries = sorted(os.listdir(store), key=lambda n: os.path.getmtime(os.path.join(store, n)),
                         reverse=True)
        names = [n[:-len(".tar.zst")] for n in entries if n.endswith(".tar.zst")]
        match, outcome = (key, "exact") if key in names else (None, "miss")
        for prefix in restore_keys:
            if match is None:
                match = next((n for n in names if n.startswith(prefix)), None)
                outcome = "partial" if match else "miss"
        if match:
            archive = os.path.join(store, match + ".tar.zst")
            self.run(f"zstd -d -q -c '{archive}' | tar -xf - -C '{self.cache}'", None, logname, shell=True)
            self.last_entry_bytes = os.path.getsize(archive)
        return outcome

    def cache_heal_key(self, version, lock, logname):
        out = self.run([self.args.cache_heal, "key", "--json", "--python-version", version,
                        "--project-dir", self.projects[lock]], None, logname)
        report = json.loads(out)
        return report["key"], report["restore_keys"]

    def cache_heal_restore(self, strategy, version, lock, logname):
        key, restore_keys = self.cache_heal_key(version, lock, logname)
        cmd = [self.args.cache_heal, "restore", "--json", "--store", "dir:" + self.store(strategy),
               "--path", self.cache, "--key", key, "--python", self.python(version)]
        for prefix in restore_keys:
            cmd += ["--restore-key", prefix]
        report = json.loads(self.run(cmd, self.projects[lock], logname))
        self.last_timings = report.get("timings") or {}
        self.last_entry_bytes = report.get("bytes") or 0
        return report["status"]

    # Saves ------------------------------------------------------------------------------------

    def save(self, strategy, version, lock, outcome, logname):
        if strategy == "none" or outcome == "exact":
            return
        if strategy.startswith("cache-heal"):
            key, _ = self.cache_heal_key(version, lock, logname)
            cmd = [self.args.cache_heal, "save", "--store", "dir:" + self.store(strategy),
                   "--path", self.cache, "--key", key]
            if strategy == "cache-heal-prune-wheels":
                cmd += ["--prune", "wheels"]
            self.run(cmd, self.projects[lock], logname)
            return
        if strategy == "setup-uv-prune":
            self.run([self.args.uv, "cache", "prune", "--ci", "--force"], None, logname)
        key, _ = self.tar_keys(strategy, version, lock)
        archive = os.path.join(self.store(strategy), key + ".tar.zst")
        # What @actions/cache runs: POSIX tar into zstdmt at level 3, no long mode.
        self.run(f"tar --posix -cf - -C '{self.cache}' . | zstd -T0 -3 -q -o '{archive}.tmp' "
                 f"&& mv '{archive}.tmp' '{archive}'", None, logname, shell=True)

    # One job ----------------------------------------------------------------------------------

    def job(self, strategy, version, lock, save=False):
        self.job_count += 1
        logname = f"{self.job_count:03d}-{strategy}-py{version}-{lock}.log"
        for path in (self.cache, self.venv):
            shutil.rmtree(path, ignore_errors=True)
        os.makedirs(self.cache)
        requests0, bytes0 = self.index.snapshot()
        start = time.monotonic()
        self.last_timings = {}
        self.last_entry_bytes = 0
        if strategy == "none":
            outcome = "-"
        elif strategy.startswith("cache-heal"):
            outcome = self.cache_heal_restore(strategy, version, lock, logname)
        else:
            key, restore_keys = self.tar_keys(strategy, version, lock)
            outcome = self.tar_restore(strategy, key, restore_keys, logname)
        transfer = self.last_entry_bytes / (self.args.cache_mbps * 1e6) if self.args.cache_mbps else 0
        time.sleep(transfer)
        restored = time.monotonic()
        project = self.projects[lock]
        self.run([self.args.uv, "venv", "-q", "-p", self.python(version), self.venv], project, logname)
        self.run([self.args.uv, "pip", "sync", "-q", "-p", os.path.join(self.venv, "bin", "python"),
                  "requirements.txt"], project, logname)
        ready = time.monotonic()
        requests1, bytes1 = self.index.snapshot()
        result = {
            "total": ready - start, "restore": restored - start, "outcome": outcome,
            "transfer": transfer,
            "requests": requests1 - requests0, "bytes": bytes1 - bytes0,
            "timings": self.last_timings,
        }
        if save:
            t = time.monotonic()
            self.save(strategy, version, lock, outcome, logname)
            result["save"] = time.monotonic() - t
            result["entry"] = sum(os.path.getsize(os.path.join(d, n))
                                  for d, _, names in os.walk(self.store(strategy)) for n in names)
        return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def mb(n):
    return f"{n / 1e6:.1f} MB"


def timings_note(timings):
    """cache-heal's own account of its restore (`restore --json` timings), for the job lines."""
    if not timings:
        return ""
    parts = ", ".join(f"{name} {timings[name]:.2f}" for name in ("transfer", "store_wait", "heal")
                      if name in timings)
    return f"  [cache-heal s: {parts}]"


def link_floor(run, args):
    """The least time a job's bytes take on the runner's link: the index's bytes at its cap for
    all connections, and the entry's at the cache service's rate (the wait every restore gets).
    Fetching both at once would not beat it, as both come through the same network card."""
    index_rate = (args.total_mbps or args.mbps) * 1e6
    return (run["bytes"] / index_rate if index_rate else 0) + run["transfer"]


def summarize(runs, args):
    return {
        "floor": statistics.median(link_floor(r, args) for r in runs),
        "total": statistics.median(r["total"] for r in runs),
        "restore": statistics.median(r["restore"] for r in runs),
        "requests": statistics.median(r["requests"] for r in runs),
        "bytes": statistics.median(r["bytes"] for r in runs),
        "outcome": "/".join(sorted({r["outcome"] for r in runs})),
        "all": [r["total"] for r in runs],
    }


def report(results, seeds, args):
    log("")
    log(f"Time to a ready venv (`uv venv` + `uv pip sync` of 76 packages), median of {args.runs} runs;")
    log(f"index: {args.latency_ms:g} ms per request, {args.mbps:g} MB/s per connection, "
        f"{args.total_mbps:g} MB/s in all; cache service {args.cache_mbps:g} MB/s; "
        f"{args.uv_version}; scratch on {args.scratch_kind}.")
    log("")
    log("| scenario | strategy | restored | total s | of which restore s | link floor s | index requests | index bytes | runs s |")
    log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for scenario, (title, _, _) in SCENARIOS.items():
        for strategy, label in STRATEGIES.items():
            s = summarize(results[scenario][strategy], args)
            runs = " ".join(f"{t:.2f}" for t in s["all"])
            log(f"| {title} | {label} | {s['outcome']} | {s['total']:.2f} | {s['restore']:.2f} | "
                f"{s['floor']:.2f} | "
                f"{s['requests']:.0f} | {mb(s['bytes'])} | {runs} |")
    log("")
    log("Seed jobs (cold, Python 3.11, base lock), save not counted in the totals above:")
    log("| strategy | cold job s | save s | entry size |")
    log("| --- | ---: | ---: | ---: |")
    for strategy, label in STRATEGIES.items():
        if strategy in seeds:
            s = seeds[strategy]
            log(f"| {label} | {s['total']:.2f} | {s.get('save', 0):.2f} | {mb(s.get('entry', 0))} |")
    log("")
    failed = 0
    for scenario, (title, _, _) in SCENARIOS.items():
        ours = summarize(results[scenario]["cache-heal"], args)["total"]
        best_name, best = min(((n, summarize(results[scenario][n], args)["total"]) for n in REFERENCE),
                              key=lambda x: x[1])
        ok = ours <= best + 0.1
        failed += not ok
        log(f"{'PASS' if ok else 'FAIL'} {title}: cache-heal {ours:.2f} s, best reference "
            f"{STRATEGIES[best_name]} {best:.2f} s (bar: at most 0.1 s behind; "
            f"{'ahead' if ours <= best else 'behind'} by {abs(ours - best):.2f} s)")
    exact = summarize(results["changed-lock"]["setup-uv"], args)["total"]
    ours = summarize(results["changed-lock"]["cache-heal"], args)["total"]
    ok = exact >= 2 * ours
    failed += not ok
    log(f"{'PASS' if ok else 'FAIL'} changed lock: cache-heal {ours:.2f} s against setup-uv's exact "
        f"key {exact:.2f} s = {exact / ours:.2f}x faster (bar: at least 2x)")
    # What any strategy could reach: its bytes at the link's rates, and nothing else.
    least_name, least = min(((n, summarize(results["changed-lock"][n], args)["floor"])
                             for n in STRATEGIES), key=lambda x: x[1])
    log(f"     the least link floor of any strategy on a changed lock is {least:.2f} s "
        f"({STRATEGIES[least_name]}); 2x the exact key needs {exact / 2:.2f} s in all")
    return failed


def main():
    parser = argparse.ArgumentParser()
    for name in ("uv", "cache-heal", "py311", "py312", "scratch", "fetch-dir", "scratch-kind", "logs"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--mbps", type=float, default=40)
    parser.add_argument("--total-mbps", type=float, default=125)
    parser.add_argument("--cache-mbps", type=float, default=125,
                        help="the cache service's download rate a restore waits for (0: none)")
    parser.add_argument("--json", default=None, help="also write every job's figures here")
    args = parser.parse_args()
    args.uv_version = subprocess.run([args.uv, "--version"], capture_output=True, text=True).stdout.strip()

    files = os.path.join(args.fetch_dir, "files")
    fetch(files, args.py311)
    index = Index(files, args.latency_ms, args.mbps, args.total_mbps)
    url = index.serve()
    total = sum(f["size"] for f in index.files.values())
    log(f"==> index on {url}: {len(index.projects)} projects, {len(index.files)} files, {mb(total)}")

    shutil.rmtree(args.scratch, ignore_errors=True)
    bench = Bench(args, index, url)
    seeds = {}
    for strategy in STRATEGIES:
        if strategy == "none":
            continue
        seeds[strategy] = bench.job(strategy, "3.11", "base", save=True)
        log(f"    seed {strategy}: {seeds[strategy]['total']:.2f} s, save {seeds[strategy]['save']:.2f} s")
    results = {s: {t: [] for t in STRATEGIES} for s in SCENARIOS}
    for run in range(args.runs):
        log(f"==> run {run + 1} of {args.runs}")
        for scenario, (title, version, lock) in SCENARIOS.items():
            for strategy in STRATEGIES:
                r = bench.job(strategy, version, lock)
                results[scenario][strategy].append(r)
                log(f"    {scenario:12} {strategy:20} {r['outcome']:8} {r['total']:6.2f} s "
                    f"(restore {r['restore']:.2f} s)  {r['requests']:4d} requests  {mb(r['bytes'])}"
                    + timings_note(r["timings"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": seeds, "results": results}, f, indent=1)
    failed = report(results, seeds, args)
    shutil.rmtree(args.scratch, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
