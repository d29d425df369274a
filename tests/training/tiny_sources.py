"""Tiny BERT sources for the teacher tests: a bare BertModel (no MLM head) and a BertForMaskedLM."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def save_bert_source(folder: Path, tokenizer_dir: Path, config: dict, *, head: bool, seed: int = 0) -> Path:
    """A tiny BERT checkpoint with the demo tokenizer: ``head`` False → BertModel (like the demo
    sentence-transformer), True → BertForMaskedLM. Every tensor is perturbed so that no two
    models built from the same config agree by accident."""
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM

    from core.training.tasks import get_task

    torch.manual_seed(seed)
    cls = AutoModelForMaskedLM if head else AutoModel
    model = cls.from_config(get_task("masked_lm").hf_config(config))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, folder / name)
    return folder
