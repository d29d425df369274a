"""Opening local safetensors: single files, folders, sharded folders, and every way they break."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import save_file

from core.errors import SourceError
from core.sources import open_source


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(50, 16, generator=g),
        "layers.0.attn.q.weight": torch.randn(16, 16, generator=g),
        "layers.0.mlp.up.weight": torch.randn(32, 16, generator=g).to(torch.bfloat16),
        "layers.0.mlp.up.bias": torch.randn(32, generator=g).to(torch.float16),
        "layers.1.attn.q.weight": torch.randn(16, 16, generator=g),
        "cube": torch.randn(4, 5, 6, generator=g),
        "position_ids": torch.arange(20, dtype=torch.int64)[None],
    }


def _hashes(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def single_file(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(_state(), str(path), metadata={"format": "pt"})
    return path


@pytest.fixture
def sharded_folder(tmp_path) -> Path:
    folder = tmp_path / "sharded"
    folder.mkdir()
    save_torch_state_dict(_state(), folder, max_shard_size="4KB")
    (folder / "config.json").write_text(json.dumps({"model_type": "toy", "hidden_size": 16}))
    return folder


def _assert_matches(source, state):
    assert set(source.tensors) == set(state)
    for name, tensor in state.items():
        info = source.tensors[name]
        assert info.shape == tuple(tensor.shape)
        assert info.nbytes == tensor.numel() * tensor.element_size()
        torch.testing.assert_close(source.read(name), tensor, rtol=0, atol=0)


def test_single_file(single_file):
    source = open_source(single_file)
    _assert_matches(source, _state())
    assert source.tensors["layers.0.mlp.up.weight"].dtype == "BF16"
    assert source.files == [single_file.resolve()]
    assert source.metadata == {"format": "pt"}
    assert source.identity["kind"] == "local"
    assert source.config is None


def test_folder_with_one_file_and_config(single_file):
    (single_file.parent / "config.json").write_text(json.dumps({"model_type": "toy"}))
    (single_file.parent / "tokenizer.json").write_text("{}")
    source = open_source(single_file.parent)
    _assert_matches(source, _state())
    assert source.config == {"model_type": "toy"}
    assert [p.name for p in source.aux_files()] == ["tokenizer.json"]


def test_sharded_folder_with_index(sharded_folder):
    assert (sharded_folder / "model.safetensors.index.json").is_file()
    source = open_source(sharded_folder)
    assert len(source.files) > 1
    _assert_matches(source, _state())
    assert source.config["hidden_size"] == 16


@pytest.mark.parametrize(
    "index",
    [
        (slice(2, 7),),
        (slice(None), slice(3, 9)),
        (3,),
        (slice(1, 3), 2, slice(None, 4)),
        (slice(0, 4, 2),),
    ],
)
def test_lazy_slice_equals_slice_of_full_read(sharded_folder, index):
    source = open_source(sharded_folder)
    name = "cube" if len(index) == 3 else "embed.weight"
    full = source.read(name)
    torch.testing.assert_close(source.read_slice(name, index), full[index], rtol=0, atol=0)


def test_opening_and_reading_never_modify_source_files(single_file, sharded_folder):
    for root in (single_file, sharded_folder):
        before = _hashes(root)
        source = open_source(root)
        for name in source.tensors:
            source.read(name)
            source.read_slice(name, (slice(0, 1),))
        source.file_hashes()
        assert _hashes(root) == before


def test_truncated_file(single_file):
    data = single_file.read_bytes()
    single_file.write_bytes(data[:-100])
    with pytest.raises(SourceError, match="truncated"):
        open_source(single_file)


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 500) + b'{"a": ')
    with pytest.raises(SourceError, match="truncated|corrupt"):
        open_source(path)
    path.write_bytes(b"abc")
    with pytest.raises(SourceError, match="too short"):
        open_source(path)


def test_garbage_header(tmp_path):
    path = tmp_path / "garbage.safetensors"
    body = b"\xff\xfenot json at all" + bytes(range(200))
    path.write_bytes(struct.pack("<Q", 40) + body)
    with pytest.raises(SourceError, match="valid safetensors header"):
        open_source(path)
    path.write_bytes(struct.pack("<Q", 2) + b"[]" + bytes(8))
    with pytest.raises(SourceError, match="valid safetensors header"):
        open_source(path)


def test_inconsistent_offsets(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(SourceError, match="inconsistent offsets"):
        open_source(path)


def test_missing_shard(sharded_folder):
    index = json.loads((sharded_folder / "model.safetensors.index.json").read_text())
    victim = sorted(set(index["weight_map"].values()))[-1]
    (sharded_folder / victim).unlink()
    with pytest.raises(SourceError, match=f"missing shard.*{victim}"):
        open_source(sharded_folder)


def test_pickle_file_is_refused_with_the_convert_hint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_state(), path)
    before = _hashes(path)
    with pytest.raises(SourceError, match="never unpickles.*graft convert"):
        open_source(path)
    assert _hashes(path) == before


def test_folder_with_only_pytorch_model_bin(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    torch.save(_state(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text("{}")
    with pytest.raises(SourceError, match="pytorch_model.bin is a pickle checkpoint.*graft convert"):
        open_source(folder)


def test_nonexistent_path(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "nope" / "model.safetensors")
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nope"))


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="holds no .safetensors"):
        open_source(tmp_path)


def test_unknown_tensor_name(single_file):
    with pytest.raises(SourceError, match="no tensor named 'nope'"):
        open_source(single_file).read("nope")
