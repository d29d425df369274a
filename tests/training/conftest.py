"""Tiny ("pico") models of each task family and a tiny export folder, built on the fly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from core.sources import demo_model_path
from core.training import ValidationConfig

VOCAB = 30522  # the demo model's tokenizer (bert-base-uncased vocabulary)

TINY = {
    "bert": {
        "model_type": "bert",
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    "gpt2": {"model_type": "gpt2", "vocab_size": VOCAB, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64},
    "llama": {
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    "vit": {
        "model_type": "vit",
        "image_size": 16,
        "patch_size": 4,
        "num_channels": 3,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "mlp": {"model_type": "mlp", "widths": [64, 32, 10], "activation": "relu"},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny():
    """Configs of tiny models, one per task family: ``tiny["bert"]``."""
    return {k: dict(v) for k, v in TINY.items()}


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return demo_model_path()


@pytest.fixture
def fast_config() -> ValidationConfig:
    """A few quick steps with a lr that makes every tiny model's loss fall reliably."""
    return ValidationConfig(
        steps=6, batch_size=8, seq_len=32, lr=2e-3, warmup=1, eval_every=3, eval_batches=2, device="cpu"
    )


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny BERT export folder (config.json + model.safetensors + the demo tokenizer files)."""
    from transformers import AutoModelForMaskedLM

    from core.training.tasks import get_task

    folder = tmp_path_factory.mktemp("export") / "tiny-bert"
    torch.manual_seed(123)
    model = AutoModelForMaskedLM.from_config(get_task("masked_lm").hf_config(TINY["bert"]))
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    return folder
