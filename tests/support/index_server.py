"""A local package index for the tests and benchmarks, on 127.0.0.1 only.

    python index_server.py --files DIR [--latency-ms N] [--control DIR] [--log FILE] [--html-only]

Serves every distribution in DIR under /files/<filename> and a simple-API page per project
under /simple/<name>/: PEP 691 JSON when the client asks for it (unless --html-only), PEP 503
HTML otherwise, with `#sha256=` fragments and, as PyPI does, each file's `Requires-Python` (read
from the sdist's PKG-INFO or the wheel's METADATA) as `requires-python` / `data-requires-python`.
Every response carries PyPI's `Cache-Control: max-age=365000000, immutable`: without it uv
treats its cache as stale and rebuilds into new revisions (docs/uv-cache.md §0).

Switches, read on every request from the --control directory, so a test flips them without a
restart: a file `tamper` makes /files/ serve other bytes for sdists (same name, same listed
hash: a compromised file host); a file `latency_ms` overrides --latency-ms.

It binds port 0, prints `PORT <n>` on stdout, logs `GET <path> <unix time>` lines to --log, and exits by
itself when its parent dies, its stdin closes, or after --max-seconds.
"""
import argparse
import hashlib
import html
import io
import json
import os
import re
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CACHE_CONTROL = "max-age=365000000, immutable"


def project_of(filename):
    if filename.endswith(".whl"):
        name = filename.split("-")[0]
    else:
        name = re.sub(r"\.(tar\.gz|zip|tgz)$", "", filename).rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def requires_python(filename, data):
    """The `Requires-Python` header of a distribution's metadata, or None."""
    try:
        if filename.endswith((".tar.gz", ".tgz")):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                member = next((m for m in tar.getmembers() if m.name.count("/") == 1
                               and m.name.endswith("/PKG-INFO")), None)
                text = tar.extractfile(member).read().decode() if member else ""
        else:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                suffix = "/METADATA" if filename.endswith(".whl") else "/PKG-INFO"
                name = next((n for n in zf.namelist() if n.count("/") == 1 and n.endswith(suffix)), None)
                text = zf.read(name).decode() if name else ""
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == "requires-python":
            return value.strip()
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--control", default=None)
    parser.add_argument("--log", default=None)
    parser.add_argument("--html-only", action="store_true")
    parser.add_argument("--max-seconds", type=int, default=3600)
    args = parser.parse_args()

    files = {}
    for name in sorted(os.listdir(args.files)):
        path = os.path.join(args.files, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        files[name] = (data, hashlib.sha256(data).hexdigest(), requires_python(name, data))
    projects = {}
    for name in files:
        projects.setdefault(project_of(name), []).append(name)
    log_lock = threading.Lock()

    def control(name):
        return args.control and os.path.exists(os.path.join(args.control, name))

    def latency():
        if args.control:
            try:
                with open(os.path.join(args.control, "latency_ms")) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                pass
        return args.latency_ms

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", CACHE_CONTROL)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            if args.log:
                with log_lock, open(args.log, "a") as f:
                    f.write(f"{self.command} {self.path} {time.time():.3f}\n")
            delay = latency()
            if delay:
                time.sleep(delay / 1000)
            path = self.path.split("?")[0]
            if path.startswith("/simple/"):
                parts = [p for p in path[len("/simple/"):].split("/") if p]
                if not parts:
                    body = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
                    return self.send(200, body.encode(), "text/html")
                name = re.sub(r"[-_.]+", "-", parts[0]).lower()
                if name not in projects:
                    return self.send(404, b"not found", "text/plain")
                accept = self.headers.get("Accept", "")
                if "application/vnd.pypi.simple.v1+json" in accept and not args.html_only:
                    body = json.dumps({
                        "meta": {"api-version": "1.1"},
                        "name": name,
                        "files": [
                            dict(
                                {"filename": fn, "url": f"/files/{fn}", "hashes": {"sha256": files[fn][1]},
                                 "size": len(files[fn][0])},
                                **({"requires-python": files[fn][2]} if files[fn][2] else {}),
                            )
                            for fn in projects[name]
                        ],
                    }).encode()
                    return self.send(200, body, "application/vnd.pypi.simple.v1+json")
                def link(fn):
                    rp = files[fn][2]
                    attr = f' data-requires-python="{html.escape(rp)}"' if rp else ""
                    return f'<a href="/files/{html.escape(fn)}#sha256={files[fn][1]}"{attr}>{html.escape(fn)}</a><br/>\n'

                links = "".join(link(fn) for fn in projects[name])
                body = f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()
                return self.send(200, body, "text/html")
            if path.startswith("/files/"):
                fn = path[len("/files/"):]
                if fn not in files:
                    return self.send(404, b"not found", "text/plain")
                data = files[fn][0]
                if control("tamper") and not fn.endswith(".whl"):
                    data = data + b"tampered"
                return self.send(200, data, "application/octet-stream")
            return self.send(404, b"not found", "text/plain")

    # The default backlog of 5 drops connections when a client opens dozens at once.
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)

    parent = os.getppid()
    started = time.time()

    def watchdog():
        while True:
            time.sleep(0.2)
            if os.getppid() != parent or time.time() - started > args.max_seconds:
                os._exit(0)

    def stdin_watch():
        try:
            sys.stdin.read()
        except Exception:
            pass
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    threading.Thread(target=stdin_watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
