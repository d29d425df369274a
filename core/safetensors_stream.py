"""Write a safetensors file one tensor at a time, so peak memory is one tensor, not the file.

The safetensors layout is ``<u64 little-endian header length N><N bytes of JSON><tensor data>``.
The JSON maps every tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the end of the header) plus an optional ``"__metadata__"`` of string → string. Since
offsets follow from shapes and dtypes alone, the whole header can be written before any tensor
exists; the tensors then follow in header order as a producer hands them over.

The output is deterministic: the header lists ``__metadata__`` first (its keys sorted), then the
tensors in the order they were declared, in compact JSON padded with spaces to a multiple of 8
bytes as the reference implementation does; data follows the same order with no gaps.

Example:
    >>> entries = [TensorSpec("w", (2, 3), torch.float32)]
    >>> with SafetensorsStreamWriter(path, entries) as writer:
    ...     writer.write("w", torch.zeros(2, 3))
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from core.dtypes import TABLE

#: torch dtype → safetensors dtype string (the names of the safetensors format specification).
#: (Derived from :data:`core.dtypes.TABLE`; a dtype this torch lacks, an older float8, is left out.)
DTYPE_NAMES: dict[torch.dtype, str] = {
    getattr(torch, d.torch_name): d.code for d in TABLE if hasattr(torch, d.torch_name)
}

#: Bytes are handed to the file in pieces of this size, so progress moves inside big tensors.
CHUNK_BYTES = 64 << 20


class TensorEntry(Protocol):
    """What the writer needs to know of a tensor before it exists (``ExportEntry`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> torch.dtype: ...


@dataclass(frozen=True)
class TensorSpec:
    """A plain :class:`TensorEntry`."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype


def dtype_name(dtype: torch.dtype) -> str:
    """The safetensors name of ``dtype`` (``torch.bfloat16`` → ``"BF16"``).

    Raises:
        ValueError: safetensors cannot store this dtype.
    """
    try:
        return DTYPE_NAMES[dtype]
    except KeyError:
        raise ValueError(f"safetensors cannot store dtype {dtype}") from None


def nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    """Size in bytes of a tensor of ``shape`` and ``dtype`` as stored in safetensors."""
    return math.prod(shape) * dtype.itemsize


def build_header(entries: Sequence[TensorEntry], metadata: Mapping[str, str] | None = None) -> bytes:
    """The complete header block: length prefix, JSON and space padding.

    Args:
        entries: tensors in file order; names must be unique.
        metadata: string → string pairs for ``__metadata__``; ``{"format": "pt"}`` is always
            included (``transformers`` refuses files without it).

    Returns:
        The bytes that precede the first tensor; their length is a multiple of 8.

    Raises:
        ValueError: duplicate names, a bad shape, an unsupported dtype or non-string metadata.
    """
    meta = {"format": "pt", **(metadata or {})}
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"safetensors metadata must map strings to strings, got {key!r}: {value!r}")
    if meta["format"] != "pt":
        raise ValueError(f"metadata 'format' must be 'pt' for torch checkpoints, got {meta['format']!r}")
    header: dict[str, object] = {"__metadata__": dict(sorted(meta.items()))}
    offset = 0
    for entry in entries:
        name, shape = entry.name, tuple(entry.shape)
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        if name in header:
            raise ValueError(f"tensor {name!r} is listed twice")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise ValueError(f"tensor {name!r} has an invalid shape {shape}")
        size = nbytes(shape, entry.dtype)
        header[name] = {
            "dtype": dtype_name(entry.dtype),
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of ``tensor`` in C order, as a flat ``memoryview``.

    Goes through a ``uint8`` view of the tensor, not through numpy's dtypes, so bf16 and float8
    work; no copy is made when the tensor is already contiguous on the CPU.
    """
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


class SafetensorsStreamWriter:
    """Writes the header at once, then each tensor as it is handed over, in header order.

    Use as a context manager: on a clean exit the writer checks that every declared tensor was
    written; on an exception the partial file is deleted.

    Args:
        path: the file to create (an existing file is overwritten).
        entries: every tensor of the file, in file order.
        metadata: extra ``__metadata__`` pairs (strings only).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        entries: Sequence[TensorEntry],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if sys.byteorder != "little":  # the format is little-endian; we write memory as is
            raise RuntimeError("writing safetensors on a big-endian machine is not supported")
        self.path = Path(path)
        self.entries = list(entries)
        self._header = build_header(self.entries, metadata)
        self.total_bytes = sum(nbytes(e.shape, e.dtype) for e in self.entries)
        self._next = 0
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()/abort()
        try:
            self._fh.write(self._header)
            self._fh.flush()
        except BaseException:
            self.abort()
            raise

    @property
    def pending(self) -> list[str]:
        """Names not written yet, in order."""
        return [e.name for e in self.entries[self._next :]]

    def write(self, name: str, tensor: torch.Tensor, on_bytes: Callable[[int], None] | None = None) -> int:
        """Append the next tensor's bytes.

        Args:
            name: must be the next name in header order.
            tensor: must have exactly the declared shape and dtype (no casting here).
            on_bytes: called with the number of bytes after each chunk written.

        Returns:
            The number of bytes written.

        Raises:
            ValueError: wrong name, order, shape or dtype.
        """
        if self._next >= len(self.entries):
            raise ValueError(f"tensor {name!r} was not declared, or all tensors are written")
        entry = self.entries[self._next]
        if name != entry.name:
            raise ValueError(f"expected tensor {entry.name!r} next, got {name!r}")
        if tuple(tensor.shape) != tuple(entry.shape):
            raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)}, declared {tuple(entry.shape)}")
        if tensor.dtype != entry.dtype:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, declared {entry.dtype}")
        data = tensor_bytes(tensor)
        for start in range(0, len(data), CHUNK_BYTES):
            piece = data[start : start + CHUNK_BYTES]
            self._fh.write(piece)
            if on_bytes is not None:
                on_bytes(len(piece))
        self._fh.flush()  # hand the bytes to the OS before the producer builds the next tensor
        self._next += 1
        return len(data)

    def close(self) -> None:
        """Finish the file.

        Raises:
            ValueError: some declared tensors were never written (the file is deleted).
        """
        if self._fh.closed:
            return
        if self._next != len(self.entries):
            missing = self.pending
            self.abort()
            raise ValueError(f"{len(missing)} declared tensor(s) never written, first {missing[0]!r}")
        self._fh.close()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._fh.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SafetensorsStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_file_streaming(
    path: str | os.PathLike[str],
    entries: Sequence[TensorEntry],
    produce: Callable[[str], torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a safetensors file, asking ``produce(name)`` for each tensor in order, lazily."""
    with SafetensorsStreamWriter(path, entries, metadata) as writer:
        for entry in entries:
            writer.write(entry.name, produce(entry.name))
