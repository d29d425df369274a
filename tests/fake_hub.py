"""A local stand-in for the Hugging Face Hub, for the real ``huggingface_hub`` client.

It serves exactly what ``snapshot_download`` / ``hf_hub_download`` of huggingface_hub 2.x ask:

- ``GET /api/models/{repo}/revision/{rev}[?blobs=true]`` → ``{"id", "sha", "siblings"}``
- ``GET /api/models/{repo}/tree/{rev}?recursive=…`` → ``[{"type": "file", "path", "size", "oid"}]``
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` → the bytes, with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` (no ``X-Xet-*`` headers, so the client uses plain HTTP)

and the error headers the client turns into exceptions (``X-Error-Code: RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``). Every request is logged for the tests to inspect.

``misbehave(how, on)`` turns it into a hostile or broken hub for some requests (see
:data:`MISBEHAVIOURS`): one that never answers, stops or drips mid-body, or answers with an HTML
page or garbage where JSON belongs. Every misbehaving handler ends when the hub is closed.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 64 << 10

#: What ``FakeHub.misbehave`` can make a request get.
MISBEHAVIOURS = {
    "hang": "read the request, then never send a byte",
    "stop": "send the status line and headers (a 1 MiB body announced), then nothing",
    "drip": "send the headers, then one byte every `drip_seconds`, forever",
    "html": "200 with an HTML page (a captive portal or a proxy's login form)",
    "garbage": "200 with binary garbage labelled application/json",
}
#: Where a misbehaviour applies: the JSON API (/api/...), HEAD or GET of /{repo}/resolve/...
AREAS = ("api", "head", "get")
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>proxy login</form></body></html>"


@dataclass
class Misbehaviour:
    how: str
    only: str | None = None  # a substring the (unquoted) request path must contain


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    sha: str
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path, extra: dict[str, bytes] | None = None) -> FakeRepo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        files.update(extra or {})
        return cls.from_files(files)

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> FakeRepo:
        digest = hashlib.sha1()
        for name, data in sorted(files.items()):
            digest.update(name.encode() + hashlib.sha1(data).digest())
        sha = digest.hexdigest()
        return cls(files=files, sha=sha, refs={"main": sha})


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.lock = threading.Lock()
        self.seconds_per_chunk = 0.0  # > 0: file bodies trickle out (64 KiB at a time), to cancel mid-way
        self.misbehaving: dict[str, Misbehaviour] = {}  # area (see AREAS) → what those requests get
        self.drip_seconds = 0.2
        self._closing = threading.Event()  # set by close(): every misbehaving handler returns
        self._closed = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._connections: set = set()  # open client sockets (keep-alive), closed by close()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def add_repo(self, repo_id: str, folder: Path | None = None, extra: dict[str, bytes] | None = None) -> FakeRepo:
        """Serve the files of ``folder`` (plus ``extra``: path → bytes) as ``repo_id``."""
        if folder is None:
            repo = FakeRepo.from_files(dict(extra or {}))
        else:
            repo = FakeRepo.from_folder(folder, extra)
        self.repos[repo_id] = repo
        return repo

    def misbehave(self, how: str, on: str | tuple[str, ...] = AREAS, only: str | None = None) -> None:
        """Make requests in area(s) ``on`` (see AREAS) misbehave as ``how`` (see MISBEHAVIOURS).

        Args:
            only: restrict it to request paths containing this text (e.g. ``"model.safetensors"``,
                ``"/tree/"``).
        """
        if how not in MISBEHAVIOURS:
            raise ValueError(f"unknown misbehaviour {how!r}; one of {', '.join(MISBEHAVIOURS)}")
        for area in (on,) if isinstance(on, str) else on:
            if area not in AREAS:
                raise ValueError(f"unknown area {area!r}; one of {', '.join(AREAS)}")
            self.misbehaving[area] = Misbehaviour(how, only)

    def close(self) -> None:
        """Stop serving, drop the clients' keep-alive connections and join every request thread."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._server.shutdown()
        with self.lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()  # joins the request threads (block_on_close)

    def downloaded(self, repo_id: str) -> set[str]:
        """Files of ``repo_id`` fetched with GET."""
        prefix = f"/{repo_id}/resolve/"
        return {p[len(prefix) :].split("/", 1)[1] for m, p in self.requests if m == "GET" and p.startswith(prefix)}

    def _resolve(self, repo_id: str, rev: str) -> tuple[FakeRepo | None, str | None]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, None
        if rev in repo.refs:
            return repo, repo.refs[rev]
        if rev == repo.sha:
            return repo, rev
        return repo, None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with hub.lock:
                    hub._connections.add(self.connection)

            def finish(self) -> None:
                with hub.lock:
                    hub._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # the socket was shut down under it
                    pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                if hub.seconds_per_chunk <= 0 or len(body) <= CHUNK:
                    self.wfile.write(body)
                    return
                for start in range(0, len(body), CHUNK):
                    time.sleep(hub.seconds_per_chunk)
                    try:
                        self.wfile.write(body[start : start + CHUNK])
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up (cancel)
                        return

            def _error(self, status: int, code: str, head: bool = False) -> None:
                self._send(
                    status,
                    json.dumps({"error": code}).encode(),
                    {"X-Error-Code": code, "Content-Type": "application/json"},
                    head,
                )

            def _json(self, data) -> None:
                self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def _misbehave(self, rule: Misbehaviour, head: bool, json_body: bool) -> None:
                self.close_connection = True
                if rule.how == "hang":
                    hub._closing.wait()
                    return
                if rule.how in ("html", "garbage"):
                    body = HTML_PAGE if rule.how == "html" else bytes(range(256)) * 8
                    kind = "text/html" if rule.how == "html" else "application/json"
                    return self._send(200, body, {"Content-Type": kind}, head)
                self.send_response(200)
                self.send_header("Content-Type", "application/json" if json_body else "application/octet-stream")
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                try:
                    self.wfile.flush()
                    while not hub._closing.is_set():
                        if rule.how == "drip" and not head:
                            self.wfile.write(b" ")  # whitespace: still a valid start of a JSON body
                        hub._closing.wait(hub.drip_seconds)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    return

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = urlsplit(self.path).path
                with hub.lock:
                    hub.requests.append(("HEAD" if head else "GET", unquote(path)))
                area = "api" if path.startswith("/api/") else ("head" if head else "get")
                rule = hub.misbehaving.get(area)
                if rule is not None and (rule.only is None or rule.only in unquote(path)):
                    return self._misbehave(rule, head, json_body=area == "api")
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/") :]
                    for marker in ("/revision/", "/tree/"):
                        if marker in rest:
                            repo_id, rev = rest.split(marker, 1)
                            break
                    else:  # GET /api/models/{repo}: the default branch
                        repo_id, rev, marker = rest.rstrip("/"), "main", "/revision/"
                    rev = unquote(rev).rstrip("/")
                    repo, commit = hub._resolve(repo_id, rev)
                    if repo is None:
                        return self._error(404, "RepoNotFound")
                    if commit is None:
                        return self._error(404, "RevisionNotFound")
                    if marker == "/revision/":
                        siblings = [{"rfilename": n, "size": len(d)} for n, d in sorted(repo.files.items())]
                        return self._json({"id": repo_id, "sha": commit, "private": False, "siblings": siblings})
                    return self._json(
                        [
                            {"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                            for n, d in sorted(repo.files.items())
                        ]
                    )
                if "/resolve/" in path:
                    repo_id, rest = path.lstrip("/").split("/resolve/", 1)
                    rev, _, filename = rest.partition("/")
                    repo, commit = hub._resolve(repo_id, unquote(rev))
                    if repo is None:
                        return self._error(404, "RepoNotFound", head)
                    if commit is None:
                        return self._error(404, "RevisionNotFound", head)
                    data = repo.files.get(unquote(filename))
                    if data is None:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "EntryNotFound")
                        self.send_header("X-Repo-Commit", commit)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    etag = hashlib.sha256(data).hexdigest()
                    return self._send(
                        200,
                        data,
                        {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"},
                        head,
                    )
                return self._error(404, "RepoNotFound", head)

        return Handler
