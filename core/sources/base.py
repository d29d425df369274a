"""What a source is once opened: tensor headers, config and aux files; data read lazily.

Opening reads safetensors headers only (name → dtype, shape, file, byte range) and
``config.json``. Tensor data is read on demand, and only the slices asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import SourceError

#: Files copied next to an exported checkpoint when the source has them.
AUX_FILE_PATTERNS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "added_tokens.json",
    "generation_config.json",
    "preprocessor_config.json",
    "chat_template.jinja",
)

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}


def cache_dir() -> Path:
    """Graft's own cache folder (``GRAFT_CACHE_DIR`` overrides)."""
    base = os.environ.get("GRAFT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graft")
    return Path(base)


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    entry = cache_dir() / "sha256" / key
    try:
        return entry.read_text().strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(value)
    except OSError:  # a read-only home is no reason to fail an export
        pass
    return value


@dataclass(frozen=True)
class TensorInfo:
    """Header facts of one tensor: nothing here needs the tensor's data."""

    name: str
    dtype: str  # safetensors spelling: "F32", "BF16", "I64", …
    shape: tuple[int, ...]
    file: Path
    offsets: tuple[int, int]  # absolute byte range [begin, end) inside ``file``

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.offsets[1] - self.offsets[0]

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("F", "BF"))


@dataclass
class Source:
    """An opened checkpoint. Cheap to create; reads tensor bytes only when asked."""

    root: Path
    files: list[Path]
    tensors: dict[str, TensorInfo]
    config: dict | None = None
    identity: dict = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    _hashes: dict[str, str] = field(default_factory=dict, repr=False)

    # -- description -------------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        return self.identity.get("repo_id") or self.identity.get("path") or str(self.root)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values() if t.is_float)

    def aux_files(self) -> list[Path]:
        """Tokenizer, generation and preprocessing files to copy on export."""
        return [self.root / n for n in AUX_FILE_PATTERNS if (self.root / n).is_file()]

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise SourceError(f"the source has no tensor named {name!r}; run 'graft inspect' to list them") from None

    # -- data --------------------------------------------------------------------------------
    def _open(self, info: TensorInfo):
        from safetensors import safe_open

        try:
            return safe_open(str(info.file), framework="pt")
        except Exception as exc:  # safetensors raises its own error types
            raise SourceError(f"cannot read {info.file.name}: {exc}; check that the file is complete") from exc

    def read(self, name: str):
        """The whole tensor ``name`` as a torch tensor (in its stored dtype)."""
        info = self.info(name)
        with self._open(info) as handle:
            return handle.get_tensor(name)

    def read_slice(self, name: str, index: tuple):
        """``tensor[index]`` reading only the bytes needed (basic slicing: ints and slices)."""
        info = self.info(name)
        with self._open(info) as handle:
            return handle.get_slice(name)[index]

    def iter_tensors(self) -> Iterator[tuple[str, object]]:
        """Yield ``(name, tensor)`` one at a time, file by file (bounded memory)."""
        for name in self.tensors:
            yield name, self.read(name)

    # -- identity ----------------------------------------------------------------------------
    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of every shard, by file name.

        Computed once per file version: results are cached under the user cache folder keyed
        by (path, size, mtime), so a second export of the same source reads no extra bytes.
        """
        for path in self.files:
            if path.name not in self._hashes:
                self._hashes[path.name] = _cached_sha256(path)
        return dict(self._hashes)

    def config_json(self) -> str:
        return json.dumps(self.config or {}, indent=2, sort_keys=True)
