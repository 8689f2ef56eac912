"""A stand-in for the Hugging Face hub, serving local directories on 127.0.0.1 only.

The endpoints huggingface_hub's downloads and HfFileSystem (what `datasets.load_dataset`
reads a hub dataset through) call: repo info, tree listing, paths-info and file resolve,
for model and dataset repos. `repos` maps a repo id to its directory; dataset repos are
keyed "datasets/ORG/NAME". Staging (quantstudy.stage) pointed at it with HF_ENDPOINT takes
the libraries' own download path, so the cache it writes is the one a real download writes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"


def _oid(p: Path) -> str:
    return hashlib.sha1(p.read_bytes()).hexdigest()


def serve(repos: dict) -> ThreadingHTTPServer:
    repos = {k: Path(v) for k, v in repos.items()}

    def split_repo(parts):  # ["datasets", "ORG", "NAME", ...] or ["ORG", "NAME", ...]
        if parts and parts[0] == "datasets":
            return "datasets/" + "/".join(parts[1:3]), parts[3:]
        return "/".join(parts[:2]), parts[2:]

    def entry(root: Path, f: Path) -> dict:
        rel = str(f.relative_to(root))
        if f.is_dir():
            return {"type": "directory", "path": rel, "oid": hashlib.sha1(rel.encode()).hexdigest()}
        return {"type": "file", "path": rel, "size": f.stat().st_size, "oid": _oid(f)}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _json(self, obj, code=200):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _missing(self, code_name):
            self.send_response(404)
            self.send_header("X-Error-Code", code_name)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _api(self, parts, query):
            kind = parts[1]  # models | datasets
            prefix = "datasets/" if kind == "datasets" else ""
            repo = prefix + "/".join(parts[2:4])
            rest = parts[4:]
            if repo not in repos:
                return self._missing("RepoNotFound")
            root = repos[repo]
            if not rest or rest[0] == "revision":
                files = sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())
                return self._json(
                    {
                        "id": "/".join(parts[2:4]),
                        "sha": SHA,
                        "private": False,
                        "siblings": [{"rfilename": f} for f in files],
                    }
                )
            if rest[0] == "tree":
                sub = root.joinpath(*[urllib.parse.unquote(p) for p in rest[2:]])
                if not sub.exists():
                    return self._missing("EntryNotFound")
                recursive = query.get("recursive", ["False"])[0].lower() == "true"
                found = sub.rglob("*") if recursive else sub.iterdir()
                return self._json([entry(root, f) for f in sorted(found)])
            if rest[0] == "paths-info":
                n = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                out = [entry(root, root / p) for p in form.get("paths", []) if (root / p).exists()]
                return self._json(out)
            return self._missing("EntryNotFound")

        def _resolve(self, parts, body):
            repo, rest = split_repo(parts)
            if len(rest) < 3 or rest[0] != "resolve" or repo not in repos:
                return self._missing("RepoNotFound" if repo not in repos else "EntryNotFound")
            p = repos[repo].joinpath(*[urllib.parse.unquote(x) for x in rest[2:]])
            if not p.is_file():
                return self._missing("EntryNotFound")
            data = p.read_bytes()
            start, end = 0, len(data)
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                start, end = int(a or 0), (int(b) + 1 if b else len(data))
                end = min(end, len(data))
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", f'"{_oid(p)}"')
            self.send_header("X-Repo-Commit", SHA)
            self.send_header("Accept-Ranges", "bytes")
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start:end])

        def _route(self, body):
            url = urllib.parse.urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts[:1] == ["api"] and len(parts) > 1 and parts[1] in ("models", "datasets"):
                return self._api(parts, urllib.parse.parse_qs(url.query))
            return self._resolve(parts, body)

        def do_HEAD(self):
            self._route(False)

        def do_GET(self):
            self._route(True)

        def do_POST(self):
            self._route(True)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
