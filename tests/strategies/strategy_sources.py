"""Plain builders of MLP-shaped sources for the strategy tests (imported, not fixtures)."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from core.sources import open_source


def mlp_model(widths, seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(a, b))
    return torch.nn.Sequential(*layers)


def save_mlp(model: torch.nn.Sequential, path):
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"format": "pt", "graft.mlp.activation": "relu"},
    )
    return open_source(path)


def save_tensors(tensors: dict, path):
    """An MLP-shaped source whose weights are given (e.g. drawn from a known distribution)."""
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(path),
        metadata={"format": "pt", "graft.mlp.activation": "relu"},
    )
    return open_source(path)
