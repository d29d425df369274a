"""Hub downloads and the cache, with the real huggingface_hub client against a local server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from cancelling import CancelMidway
from safetensors.torch import save_file

from core.errors import Cancelled, SourceError
from core.sources import list_cached_models, open_source
from core.sources.hub.repo import parse_repo_ref, select_files
from core.sources.local import open_local

REPO = "graft-test/tiny-bert"
NEEDED = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}


def _add_tiny_bert(hub, folder: Path, repo_id: str = REPO):
    extra = {
        "pytorch_model.bin": b"not really a pickle",
        "README.md": b"# tiny\n",
        "onnx/model.onnx": b"onnx",
        "sub/model.safetensors": (folder / "model.safetensors").read_bytes(),
        "training_args.bin": b"x",
    }
    return hub.add_repo(repo_id, folder, extra)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_reports_progress_fetches_only_needed_files_and_opens(fake_hub, tiny_bert_folder, tmp_path):
    repo = _add_tiny_bert(fake_hub, tiny_bert_folder)
    calls: list[tuple[float, str]] = []
    source = open_source(
        REPO, cache_dir=tmp_path / "cache", endpoint=fake_hub.url, progress=lambda f, m: calls.append((f, m))
    )

    assert fake_hub.downloaded(REPO) == NEEDED
    fractions = [f for f, _ in calls if f >= 0]
    assert fractions[-1] == 1.0
    assert any(0 < f < 1 for f in fractions), calls
    assert fractions == sorted(fractions)
    assert source.identity["kind"] == "hub"
    assert source.identity["repo_id"] == REPO
    assert source.identity["revision"] == repo.sha
    assert source.root.name == repo.sha
    assert source.config["model_type"] == "bert"
    assert {p.name for p in source.aux_files()} == {"vocab.txt", "tokenizer_config.json"}
    local = open_local(tiny_bert_folder)
    assert set(source.tensors) == set(local.tensors)
    name = "encoder.layer.1.attention.self.query.weight"
    torch.testing.assert_close(source.read(name), local.read(name), rtol=0, atol=0)


def test_cache_listing_from_a_cache_filled_by_huggingface_hub(fake_hub, tiny_bert_folder, tmp_path):
    repo = _add_tiny_bert(fake_hub, tiny_bert_folder)
    cache = tmp_path / "cache"
    assert list_cached_models(cache) == []  # no cache folder yet: empty, not an error
    open_source(REPO, cache_dir=cache, endpoint=fake_hub.url)

    models = list_cached_models(cache)
    assert len(models) == 1
    model = models[0]
    assert model.repo_id == REPO
    assert model.revision == repo.sha
    assert model.refs == ("main",)
    assert model.size_bytes == sum(len(repo.files[n]) for n in NEEDED)
    assert model.has_safetensors
    assert model.path == cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / repo.sha
    assert model.last_modified > 0

    # The listed location opens offline.
    source = open_source(model.location, cache_dir=cache, local_files_only=True)
    assert source.identity["revision"] == repo.sha


def test_offline_open_uses_the_cache_without_network(fake_hub, tiny_bert_folder, tmp_path, monkeypatch):
    repo = _add_tiny_bert(fake_hub, tiny_bert_folder)
    cache = tmp_path / "cache"
    open_source(REPO, cache_dir=cache, endpoint=fake_hub.url)
    before = len(fake_hub.requests)

    source = open_source(REPO, cache_dir=cache, endpoint=fake_hub.url, local_files_only=True)
    assert source.identity["revision"] == repo.sha
    source = open_source(f"{REPO}@main", cache_dir=cache, endpoint=fake_hub.url, local_files_only=True)
    assert source.identity["revision"] == repo.sha

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at import does
    source = open_source(REPO, cache_dir=cache, endpoint=fake_hub.url)
    assert source.identity["revision"] == repo.sha
    assert len(fake_hub.requests) == before


def test_unreachable_hub_falls_back_to_the_cache(fake_hub, tiny_bert_folder, tmp_path):
    repo = _add_tiny_bert(fake_hub, tiny_bert_folder)
    cache = tmp_path / "cache"
    open_source(REPO, cache_dir=cache, endpoint=fake_hub.url)
    source = open_source(REPO, cache_dir=cache, endpoint=_closed_port_url())
    assert source.identity["revision"] == repo.sha


def test_offline_and_not_cached_is_a_clear_error(fake_hub, tiny_bert_folder, tmp_path):
    _add_tiny_bert(fake_hub, tiny_bert_folder)
    with pytest.raises(SourceError, match="not in the local Hugging Face cache and Graft is offline"):
        open_source(REPO, cache_dir=tmp_path / "cache", endpoint=fake_hub.url, local_files_only=True)
    assert fake_hub.requests == []


def test_network_error_and_not_cached_is_a_clear_error(hub_online, tmp_path):
    with pytest.raises(SourceError, match="cannot reach the hub .* it is not in the local cache"):
        open_source(REPO, cache_dir=tmp_path / "cache", endpoint=_closed_port_url())


def test_revision_by_commit_hash(fake_hub, tiny_bert_folder, tmp_path):
    repo = _add_tiny_bert(fake_hub, tiny_bert_folder)
    source = open_source(f"{REPO}@{repo.sha}", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)
    assert source.identity["revision"] == repo.sha
    assert source.identity["ref"] == repo.sha


def test_repo_and_revision_not_found(fake_hub, tiny_bert_folder, tmp_path):
    _add_tiny_bert(fake_hub, tiny_bert_folder)
    with pytest.raises(SourceError, match="neither a local file or folder nor a model repo on the hub"):
        open_source("graft-test/no-such-model", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)
    with pytest.raises(SourceError, match="has no revision 'v9'"):
        open_source(f"{REPO}@v9", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)


def test_pickle_only_repo_points_to_graft_convert(fake_hub, tmp_path):
    fake_hub.add_repo("graft-test/pickled", extra={"config.json": b"{}", "pytorch_model.bin": b"pickle"})
    with pytest.raises(SourceError, match="graft convert"):
        open_source("graft-test/pickled", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)
    assert fake_hub.downloaded("graft-test/pickled") == set()


def test_sharded_repo_downloads_only_the_indexed_shards(fake_hub, tiny_bert_folder, tiny_bert_sharded_folder, tmp_path):
    extra = {"consolidated.safetensors": (tiny_bert_folder / "model.safetensors").read_bytes()}
    repo = fake_hub.add_repo("graft-test/sharded", tiny_bert_sharded_folder, extra)
    source = open_source("graft-test/sharded", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)

    index = json.loads((tiny_bert_sharded_folder / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1
    assert fake_hub.downloaded("graft-test/sharded") == {"config.json", "model.safetensors.index.json", *shards}
    assert len(source.files) == len(shards)
    assert set(source.tensors) == set(open_local(tiny_bert_folder).tensors)
    # Offline, the same selection is recognised as complete.
    again = open_source("graft-test/sharded", cache_dir=tmp_path / "cache", local_files_only=True)
    assert again.identity["revision"] == repo.sha


def test_cancel_mid_download_leaves_no_usable_partial_snapshot(fake_hub, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    save_file(
        {"w": torch.arange(256 * 1024, dtype=torch.float32).reshape(256, 1024)},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )  # 1 MiB: 16 chunks of 64 KiB
    (folder / "config.json").write_text("{}")
    fake_hub.add_repo("graft-test/big", folder)
    cache = tmp_path / "cache"
    midway = CancelMidway()
    seen = midway.seen
    with pytest.raises(Cancelled):
        open_source(
            "graft-test/big", cache_dir=cache, endpoint=fake_hub.url, progress=midway.progress, cancel=midway.token
        )
    assert 1.0 not in seen
    storage = cache / "models--graft-test--big"
    assert not list(storage.rglob("*.incomplete"))
    assert not list(storage.glob("snapshots/*/model.safetensors"))
    with pytest.raises(SourceError, match="incomplete|not in the local"):
        open_source("graft-test/big", cache_dir=cache, local_files_only=True)

    # Going online again finishes the download.
    source = open_source("graft-test/big", cache_dir=cache, endpoint=fake_hub.url)
    torch.testing.assert_close(
        source.read_slice("w", (slice(2, 3), slice(0, 4))), torch.tensor([[2048.0, 2049.0, 2050.0, 2051.0]])
    )


def test_parse_repo_ref():
    assert parse_repo_ref("owner/name") == ("owner/name", None)
    assert parse_repo_ref("gpt2@v1.0") == ("gpt2", "v1.0")
    assert parse_repo_ref("o/n@refs/pr/4") == ("o/n", "refs/pr/4")
    for not_a_repo in ("model.safetensors", "x/pytorch_model.bin", "/abs/path", "./rel", "a/b/c", "a--b/c", "", "a b"):
        assert parse_repo_ref(not_a_repo) is None, not_a_repo


def test_missing_file_that_is_not_a_repo_id(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.safetensors"))


def test_select_files_prefers_index_then_model_safetensors():
    names = [
        "model.safetensors",
        "model.fp16.safetensors",
        "config.json",
        "vocab.json",
        "merges.txt",
        "sp.model",
        "README.md",
        "sub/model.safetensors",
        "pytorch_model.bin",
    ]
    assert select_files(names, lambda: None) == [
        "model.safetensors",
        "config.json",
        "merges.txt",
        "sp.model",
        "vocab.json",
    ]
    sharded = ["model.safetensors.index.json", "model-1.safetensors", "model-2.safetensors", "consolidated.safetensors"]
    chosen = select_files(sharded, lambda: {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}})
    assert chosen == ["model.safetensors.index.json", "model-1.safetensors", "model-2.safetensors"]
    assert select_files(["pytorch_model.bin", "config.json"], lambda: None) == []
