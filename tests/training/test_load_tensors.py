"""An arm's checkpoint loads whole into the task model, whatever names transformers saved it under."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import build_tiny

from core.training import get_task, load_tensors


@pytest.mark.parametrize(
    "family,task", [("vit", "image_classification"), ("bert", "masked_lm"), ("llama", "causal_lm")]
)
def test_a_saved_checkpoint_loads_every_tensor(tmp_path, family, task):
    # transformers 5 saves ViT under its legacy names (…attention.attention.query) and builds it
    # with new ones (…attention.q_proj): loading must rename them as from_pretrained does.
    saved, _ = build_tiny(family, tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    torch.manual_seed(1)
    model = get_task(task).build_model(saved.config.to_dict())
    report = load_tensors(model, state)
    assert report.loaded == len(state) and not report.unexpected and not report.mismatched, report.to_dict()
    mine = model.state_dict()
    for name, value in saved.state_dict().items():
        assert torch.equal(mine[name], value), name
