"""The generic MLP: inferred from nn.Sequential shapes, transferred, rebuilt as nn.Sequential."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch.testing import assert_close

from core.architectures import detect
from core.export import load_mlp
from core.pipeline import export_recipe
from core.recipe import Recipe
from core.sources import open_source


@pytest.fixture
def mlp_file(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3)
    )
    path = tmp_path / "mlp.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net


def test_mlp_is_inferred_from_shapes(mlp_file):
    spec, config = detect(open_source(mlp_file[0]))
    assert spec.family == "mlp"
    assert config["widths"] == [8, 16, 12, 3]


def test_mlp_identity_and_shrink(mlp_file, tmp_path):
    path, net = mlp_file
    x = torch.randn(5, 8)
    same = load_mlp(export_recipe(Recipe(source=str(path)), tmp_path / "same"))
    assert_close(same(x), net(x), rtol=0, atol=0)
    small = load_mlp(export_recipe(Recipe(source=str(path), target={"hidden": 6}), tmp_path / "small"))
    assert [m.out_features for m in small if isinstance(m, torch.nn.Linear)] == [6, 6, 3]
    assert_close(small[0].weight, net[0].weight[:6], rtol=0, atol=0)
    assert_close(small[2].weight, net[2].weight[:6, :6], rtol=0, atol=0)
