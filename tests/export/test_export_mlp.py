"""The generic MLP: exported as safetensors + metadata, rebuilt by load_mlp."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from core.errors import ExportError
from core.export import build_mlp, export_checkpoint, load_mlp, mlp_entries, mlp_metadata


@pytest.mark.parametrize(
    ("activation", "dtype", "shard"),
    [("gelu", torch.float32, "5GB"), ("tanh", torch.bfloat16, 300)],
)
def test_round_trip(tmp_path, activation, dtype, shard):
    torch.manual_seed(0)
    widths = [8, 16, 12, 3]
    model = build_mlp(widths, activation).to(dtype)
    state = model.state_dict()
    entries = mlp_entries(widths, dtype)
    assert [e.name for e in entries] == list(state)
    out = export_checkpoint(
        tmp_path / "mlp",
        entries=entries,
        produce=state.__getitem__,
        config=None,
        metadata=mlp_metadata(widths, activation),
        max_shard_size=shard,
    )
    loaded = load_mlp(out)
    assert [type(m) for m in loaded] == [type(m) for m in model]
    x = torch.randn(5, 8, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_single_file_and_no_bias(tmp_path):
    model = build_mlp([4, 5, 2], "silu", bias=False)
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), path, metadata={"format": "pt", **mlp_metadata([4, 5, 2], "silu")})
    loaded = load_mlp(path)
    assert loaded[0].bias is None and isinstance(loaded[1], torch.nn.SiLU)


def test_missing_metadata_is_refused_unless_activation_given(tmp_path):
    model = build_mlp([4, 5, 2], "relu")
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), path, metadata={"format": "pt"})
    with pytest.raises(ExportError, match="no graft.mlp.widths"):
        load_mlp(path)
    loaded = load_mlp(path, activation="relu")
    x = torch.randn(3, 4)
    torch.testing.assert_close(loaded(x), model(x))


def test_mismatched_widths_and_bad_activation(tmp_path):
    model = build_mlp([4, 5, 2], "relu")
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), path, metadata={"format": "pt", **mlp_metadata([4, 6, 2], "relu")})
    with pytest.raises(ExportError, match="do not fit"):
        load_mlp(path)
    with pytest.raises(ExportError, match="unknown MLP activation"):
        mlp_metadata([4, 2], "swish")
    with pytest.raises(ExportError, match="no MLP weights"):
        load_mlp(tmp_path / "nothing")
