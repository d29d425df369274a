"""Shared fixtures: tiny "pico" checkpoints of every supported family, built with transformers."""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _graft_cache(tmp_path_factory):
    """Keep Graft's hash cache out of the user's home during tests."""
    os.environ["GRAFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("graft-cache"))


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
