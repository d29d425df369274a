"""Covariance-aware sampling: row/column covariances and conv tap covariances carry to the target."""

from __future__ import annotations

import torch
from strategy_sources import save_tensors

from core.plan import TargetSizes, make_plan
from core.sources import open_source
from core.transfer import build_state_dict, fill_tensor

COV = {"default": {"method": "covariance"}}


def test_row_covariance_follows_the_maps(tmp_path):
    g = torch.Generator().manual_seed(0)
    n_in, n = 400, 64
    # rows come in correlated pairs (2i, 2i+1) and have different scales
    base = torch.randn(n // 2, n_in, generator=g)
    w = base.repeat_interleave(2, 0) + 0.3 * torch.randn(n, n_in, generator=g)
    w = w * torch.linspace(0.5, 2.0, n)[:, None] * 0.05
    source = save_tensors(
        {"0.weight": w, "0.bias": torch.zeros(n), "2.weight": torch.randn(3, n, generator=g), "2.bias": torch.zeros(3)},
        tmp_path / "s.safetensors",
    )
    plan = make_plan(source, TargetSizes(hidden=32), values=COV, index={"method": "first_n"})
    out = fill_tensor(plan, plan.tensor("0.weight"), source).double()
    assert out.shape == (32, n_in)
    corr = torch.corrcoef(out)
    pairs = torch.stack([corr[2 * i, 2 * i + 1] for i in range(16)])
    others = torch.stack([corr[2 * i, 2 * i + 2] for i in range(15)])
    assert pairs.mean() > 0.8 and others.abs().mean() < 0.2
    # row scales carry over (each realised row std fluctuates: the column covariance has rank ≤ 64)
    ratio = out.std(1) / w[:32].double().std(1)
    assert abs(ratio.mean().item() - 1) < 0.1
    assert torch.corrcoef(torch.stack([out.std(1), w[:32].double().std(1)]))[0, 1] > 0.8


def test_grown_duplicates_get_duplicated_covariance_rows(tmp_path):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 300, generator=g) * 0.1
    source = save_tensors(
        {
            "0.weight": w,
            "0.bias": torch.zeros(16),
            "2.weight": torch.randn(3, 16, generator=g),
            "2.bias": torch.zeros(3),
        },
        tmp_path / "s.safetensors",
    )
    plan = make_plan(
        source,
        TargetSizes(hidden=32),
        values={"default": {"method": "covariance", "params": {"shrinkage": 0.0}}},
        index={"method": "cyclic"},
    )
    out = fill_tensor(plan, plan.tensor("0.weight"), source).double()
    corr = torch.corrcoef(out)
    assert torch.stack([corr[i, i + 16] for i in range(16)]).min() > 0.99  # duplicated neuron ↔ its copy


def test_conv_taps_covariance_is_reused(vit_path, tmp_path):
    import shutil

    vit_path = shutil.copytree(vit_path, tmp_path / "vit")
    source = open_source(vit_path)
    name = "embeddings.patch_embeddings.projection.weight"
    w = source.read(name)  # (32, 3, 4, 4)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(512, 1, 7, 7, generator=torch.Generator().manual_seed(0)), 4, 1)
    assert smooth.shape[-2:] == w.shape[-2:]
    tensors = {n: source.read(n) for n in source.tensors}
    tensors[name] = smooth.reshape(32, 16, 4, 4)[:, :3].contiguous()
    from safetensors.torch import save_file

    save_file(tensors, str(vit_path / "model.safetensors"), metadata={"format": "pt"})
    source = open_source(vit_path)
    plan = make_plan(source, TargetSizes(hidden=64, heads=4), values=COV, index={"method": "cyclic"})
    out = fill_tensor(plan, plan.tensor(name), source)
    assert out.shape == (64, 3, 4, 4)
    src_taps = tensors[name].reshape(-1, 16).double()
    new_taps = out.reshape(-1, 16).double()
    cs, cn = torch.cov(src_taps.T), torch.cov(new_taps.T)
    assert (cn - cs).norm() / cs.norm() < 0.35
    state = build_state_dict(plan, source)
    assert state["embeddings.cls_token"].shape == (1, 1, 64)
    assert state["embeddings.position_embeddings"].shape == (1, 17, 64)
