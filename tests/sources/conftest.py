"""A local stand-in for the Hugging Face Hub, for the real ``huggingface_hub`` client.

It serves exactly what ``snapshot_download`` / ``hf_hub_download`` of huggingface_hub 2.x ask:

- ``GET /api/models/{repo}/revision/{rev}[?blobs=true]`` → ``{"id", "sha", "siblings"}``
- ``GET /api/models/{repo}/tree/{rev}?recursive=…`` → ``[{"type": "file", "path", "size", "oid"}]``
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` → the bytes, with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` (no ``X-Xet-*`` headers, so the client uses plain HTTP)

and the error headers the client turns into exceptions (``X-Error-Code: RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``). Every request is logged for the tests to inspect.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
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

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloaded(self, repo_id: str) -> set[str]:
        """Files of ``repo_id`` fetched with GET."""
        prefix = f"/{repo_id}/resolve/"
        return {p[len(prefix):].split("/", 1)[1] for m, p in self.requests if m == "GET" and p.startswith(prefix)}

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

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, status: int, code: str, head: bool = False) -> None:
                self._send(status, json.dumps({"error": code}).encode(),
                           {"X-Error-Code": code, "Content-Type": "application/json"}, head)

            def _json(self, data) -> None:
                self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = urlsplit(self.path).path
                with hub.lock:
                    hub.requests.append(("HEAD" if head else "GET", unquote(path)))
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
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
                    return self._json([
                        {"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for n, d in sorted(repo.files.items())
                    ])
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
                    return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"',
                                                  "Content-Type": "application/octet-stream"}, head)
                return self._error(404, "RepoNotFound", head)

        return Handler


@pytest.fixture
def hub_online(monkeypatch):
    """Let huggingface_hub make requests (tests/conftest.py sets HF_HUB_OFFLINE=1 for safety).

    Only ever aim it at 127.0.0.1: pass ``endpoint=`` explicitly.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path, hub_online):
    """A running FakeHub; the client is online and reads small chunks so progress moves."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 << 10)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Never send a developer's saved token to the test server.
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub = FakeHub()
    yield hub
    hub.close()


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory) -> Path:
    """A pico BERT saved by transformers (config.json + model.safetensors) plus a WordPiece vocab."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(59)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return folder


@pytest.fixture(scope="session")
def tiny_bert_sharded_folder(tmp_path_factory, tiny_bert_folder) -> Path:
    """The same pico BERT saved in several shards with model.safetensors.index.json."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny-bert-sharded")
    BertModel.from_pretrained(tiny_bert_folder).save_pretrained(folder, safe_serialization=True, max_shard_size="40KB")
    assert (folder / "model.safetensors.index.json").is_file()
    return folder
