"""The streaming safetensors writer against the reference reader."""

from __future__ import annotations

import json
import struct

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from core.safetensors_stream import (
    DTYPE_NAMES,
    SafetensorsStreamWriter,
    TensorSpec,
    build_header,
    save_file_streaming,
)


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        # 30 bytes: every tensor after it starts unaligned, which readers must accept.
        "bf16": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "f32": torch.randn(4, 2, generator=g),
        "f16": torch.randn(7, generator=g).to(torch.float16),
        "f64": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3) - 3,
        "i32": torch.tensor([1, -2, 3], dtype=torch.int32),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4, dtype=torch.float16),
        "strided": torch.randn(4, 6, generator=g).t(),  # not contiguous
    }


def _specs(tensors: dict[str, torch.Tensor]) -> list[TensorSpec]:
    return [TensorSpec(n, tuple(t.shape), t.dtype) for n, t in tensors.items()]


def test_round_trip_matches_reference_reader(tmp_path):
    tensors = _tensors()
    path = tmp_path / "x.safetensors"
    save_file_streaming(path, _specs(tensors), tensors.__getitem__, {"answer": "42"})

    loaded = load_file(path)
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    with safe_open(path, framework="pt") as fh:
        assert fh.metadata() == {"format": "pt", "answer": "42"}
        torch.testing.assert_close(fh.get_slice("f32")[1:3, :], tensors["f32"][1:3], rtol=0, atol=0)


def test_layout_header_padded_and_data_in_header_order(tmp_path):
    tensors = _tensors()
    path = tmp_path / "x.safetensors"
    save_file_streaming(path, _specs(tensors), tensors.__getitem__)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and raw[8:9] == b"{"
    header = json.loads(raw[8 : 8 + n])
    assert list(header)[0] == "__metadata__"
    names = [k for k in header if k != "__metadata__"]
    assert names == list(tensors)
    end = 0
    for name in names:
        begin, stop = header[name]["data_offsets"]
        assert begin == end
        end = stop
    assert 8 + n + end == len(raw)


def test_same_inputs_give_same_bytes(tmp_path):
    tensors = _tensors()
    meta = {"b": "2", "a": "1"}
    save_file_streaming(tmp_path / "1.safetensors", _specs(tensors), tensors.__getitem__, meta)
    save_file_streaming(
        tmp_path / "2.safetensors",
        _specs(tensors),
        tensors.__getitem__,
        dict(reversed(meta.items())),
    )
    assert (tmp_path / "1.safetensors").read_bytes() == (tmp_path / "2.safetensors").read_bytes()


def test_dtype_names_agree_with_safetensors():
    reference = {v: k for k, v in safetensors.torch._TYPES.items() if v is not None}
    for dtype, name in DTYPE_NAMES.items():
        assert reference[dtype] == name


def test_produce_is_called_lazily_in_order(tmp_path):
    tensors = _tensors()
    path = tmp_path / "x.safetensors"
    specs = _specs(tensors)
    header_len = len(build_header(specs))
    sizes_seen = []

    def produce(name):
        sizes_seen.append((name, path.stat().st_size))
        return tensors[name]

    save_file_streaming(path, specs, produce)
    assert [n for n, _ in sizes_seen] == list(tensors)
    expected = header_len
    for name, size in sizes_seen:  # each tensor is asked for only once the previous one is on disk
        assert size == expected
        expected += tensors[name].numel() * tensors[name].element_size()


@pytest.mark.parametrize(
    ("name", "tensor", "message"),
    [
        ("b", torch.zeros(2), "expected tensor 'a'"),
        ("a", torch.zeros(3), "shape"),
        ("a", torch.zeros(2, dtype=torch.float16), "dtype"),
    ],
)
def test_wrong_tensor_is_refused(tmp_path, name, tensor, message):
    specs = [TensorSpec("a", (2,), torch.float32), TensorSpec("b", (2,), torch.float32)]
    with SafetensorsStreamWriter(tmp_path / "x.safetensors", specs) as writer:
        with pytest.raises(ValueError, match=message):
            writer.write(name, tensor)
        writer.write("a", torch.zeros(2))
        writer.write("b", torch.zeros(2))


def test_incomplete_file_is_an_error_and_removed(tmp_path):
    path = tmp_path / "x.safetensors"
    specs = [TensorSpec("a", (2,), torch.float32), TensorSpec("b", (2,), torch.float32)]
    with pytest.raises(ValueError, match="never written"):
        with SafetensorsStreamWriter(path, specs) as writer:
            writer.write("a", torch.zeros(2))
    assert not path.exists()


def test_exception_removes_partial_file(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(RuntimeError):
        with SafetensorsStreamWriter(path, [TensorSpec("a", (2,), torch.float32)]):
            raise RuntimeError("boom")
    assert not path.exists()


def test_bad_header_inputs():
    with pytest.raises(ValueError, match="twice"):
        build_header([TensorSpec("a", (1,), torch.float32)] * 2)
    with pytest.raises(ValueError, match="strings"):
        build_header([], {"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot store"):
        build_header([TensorSpec("a", (1,), torch.complex128)])
