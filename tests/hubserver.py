"""A small local stand-in for the Hugging Face Hub endpoints that huggingface_hub's download and
upload code calls (resolve with commit/ETag/size headers and ranges; create repo; preupload; commit).
It serves on 127.0.0.1 only; the real huggingface_hub client talks to it through HF_ENDPOINT."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.repos: dict[str, list[tuple[str, dict[str, bytes]]]] = {}  # repo -> [(commit, files)]
        self.log: list[tuple[str, str, str | None]] = []
        self.drop_once: set[str] = set()     # paths whose next full GET is cut half-way
        self.serve_instead: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def add_commit(self, repo_id: str, files: dict[str, bytes]) -> str:
        with self.lock:
            history = self.repos.setdefault(repo_id, [])
            prev = dict(history[-1][1]) if history else {}
            prev.update(files)
            oid = hashlib.sha1(json.dumps([repo_id, len(history), sorted(prev)]).encode()).hexdigest()
            history.append((oid, prev))
            return oid

    def lookup(self, repo_id: str, rev: str):
        history = self.repos.get(repo_id)
        if history is None:
            return None, None
        if rev == "main":
            return history[-1]
        for oid, files in history:
            if oid == rev:
                return oid, files
        return "missing-revision", None

    def start(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, code, obj, headers=None):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _resolve(self, head: bool):
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
                if not m:
                    return self._json(404, {"error": "not found"})
                repo, rev, path = m.groups()
                hub.log.append((self.command, path, self.headers.get("Range")))
                oid, files = hub.lookup(repo, rev)
                if oid is None:
                    return self._json(404, {"error": "repo"}, {"X-Error-Code": "RepoNotFound"})
                if files is None:
                    return self._json(404, {"error": "rev"}, {"X-Error-Code": "RevisionNotFound"})
                if path not in files:
                    return self._json(404, {"error": "entry"}, {"X-Error-Code": "EntryNotFound",
                                                                 "X-Repo-Commit": oid})
                data = hub.serve_instead.get(path, files[path])
                etag = hashlib.sha256(data).hexdigest()
                start = 0
                rng = self.headers.get("Range")
                if rng and not head:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", oid)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                if path in hub.drop_once and not start:
                    hub.drop_once.discard(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def do_HEAD(self):
                self._resolve(True)

            def do_GET(self):
                self._resolve(False)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                path = self.path.split("?")[0]
                hub.log.append(("POST", path, None))
                if path == "/api/repos/create":
                    body = json.loads(raw or b"{}")
                    repo = f"{body.get('organization') or 'user'}/{body['name']}" if "/" not in body["name"] \
                        else body["name"]
                    hub.repos.setdefault(repo, [])
                    return self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":  # model-card metadata check before commits with a README
                    return self._json(200, {"errors": [], "warnings": []})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/preupload/([^/]+)$", path)
                if m:
                    files = json.loads(raw)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False, "oid": None} for f in files]})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/commit/([^/]+)$", path)
                if m:
                    files = {}
                    for line in raw.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    oid = hub.add_commit(m.group(1), files)
                    return self._json(200, {"commitUrl": f"{hub.url}/{m.group(1)}/commit/{oid}",
                                            "commitOid": oid, "pullRequestUrl": None})
                return self._json(404, {"error": f"unknown endpoint {path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
