"""A stand-in for the Hugging Face hub's model file API (what snapshot_download calls),
serving local directories: GET /api/models/ORG/NAME/revision/REV and HEAD/GET
/ORG/NAME/resolve/REV/FILE, on 127.0.0.1 only."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"


def serve(repos: dict):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _file(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, rel = "/".join(parts[:2]), "/".join(parts[4:])
                p = repos.get(repo, Path("/nonexistent")) / rel
                return p if p.is_file() else None
            return None

        def _send_file(self, body):
            p = self._file()
            if p is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            data = p.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", SHA)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self._send_file(False)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path.startswith("/api/models/") and "/tree/" in path:
                repo = "/".join(path[len("/api/models/") :].split("/")[:2])
                root = repos[repo]
                body = json.dumps(
                    [
                        {
                            "type": "file",
                            "path": str(f.relative_to(root)),
                            "size": f.stat().st_size,
                            "oid": hashlib.sha1(f.read_bytes()).hexdigest(),
                        }
                        for f in sorted(root.rglob("*"))
                        if f.is_file()
                    ]
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path.startswith("/api/models/"):
                repo = "/".join(path[len("/api/models/") :].split("/")[:2])
                if repo not in repos:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.end_headers()
                    return
                files = sorted(str(f.relative_to(repos[repo])) for f in repos[repo].rglob("*") if f.is_file())
                body = json.dumps({"id": repo, "sha": SHA, "siblings": [{"rfilename": f} for f in files]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self._send_file(True)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
