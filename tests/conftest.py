"""Shared fixtures: tiny "pico" checkpoints of every supported family, built with transformers."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _graft_cache(tmp_path_factory):
    """Keep Graft's hash cache out of the user's home during tests."""
    os.environ["GRAFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("graft-cache"))


from fake_hub import FakeHub  # noqa: E402
from tiny_models import build_tiny  # noqa: E402


@pytest.fixture
def tiny_model(tmp_path):
    """Factory: ``tiny_model("llama") -> (folder, model, auto_class_name)``."""

    def make(family: str, seed: int = 0, name: str | None = None):
        folder = tmp_path / (name or f"src-{family}")
        model, auto = build_tiny(family, folder, seed)
        return folder, model, auto

    return make


@pytest.fixture(autouse=True)
def _fail_on_thread_exceptions():
    """An exception in a worker thread fails the test (pytest would not see it otherwise)."""
    errors = []
    previous = threading.excepthook

    def hook(args):
        errors.append(args)
        previous(args)

    threading.excepthook = hook
    yield
    threading.excepthook = previous
    if errors:
        raise AssertionError(f"exception in a thread: {errors[0].exc_value!r}")


# -- a local hub and a pico BERT to serve from it (tests/sources, tests/app) -------------------
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
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(59)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})
    )
    return folder


@pytest.fixture(scope="session")
def tiny_bert_sharded_folder(tmp_path_factory, tiny_bert_folder) -> Path:
    """The same pico BERT saved in several shards with model.safetensors.index.json."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny-bert-sharded")
    BertModel.from_pretrained(tiny_bert_folder).save_pretrained(folder, safe_serialization=True, max_shard_size="40KB")
    assert (folder / "model.safetensors.index.json").is_file()
    return folder
