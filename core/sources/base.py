"""What a source is once opened: tensor headers, config and aux files; data read lazily.

Opening reads safetensors headers only (name → dtype, shape, file, byte range) and
``config.json``. Tensor data is read on demand, and only the slices asked for.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from core.errors import SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

#: The auxiliary files of a model folder — tokenizer, generation and preprocessing files — as fnmatch
#: patterns on the names of its root files, each with what it holds. The hub download fetches them,
#: an export or a trained model copies them, an output folder counts them as Graft's own.
AUX_FILES: dict[str, str] = {
    "tokenizer.json": "vocabulary",  # a fast tokenizer, complete
    "tokenizer_config.json": "tokenizer",
    "special_tokens_map.json": "tokenizer",
    "vocab.*": "vocabulary",  # vocab.txt (WordPiece), vocab.json (BPE)
    "merges.txt": "tokenizer",
    "*.model": "vocabulary",  # sentencepiece: tokenizer.model, spiece.model, …
    "added_tokens.json": "tokenizer",
    "generation_config.json": "generation",
    "preprocessor_config.json": "preprocessing",
    "chat_template.jinja": "tokenizer",
}
AUX_FILE_PATTERNS = tuple(AUX_FILES)
#: the auxiliary files that hold a vocabulary: a folder with one of them has a tokenizer.
TOKENIZER_FILE_PATTERNS = tuple(p for p, what in AUX_FILES.items() if what == "vocabulary")


def is_aux_file(name: str, patterns: tuple[str, ...] = AUX_FILE_PATTERNS) -> bool:
    """Whether the root file name ``name`` is one of the auxiliary files (of ``patterns``)."""
    return any(fnmatchcase(name, p) for p in patterns)


def aux_file_names(folder: Path, patterns: tuple[str, ...] = AUX_FILE_PATTERNS) -> list[str]:
    """The auxiliary files (of ``patterns``) at the root of ``folder``, links included, in pattern order.

    A broken link is listed too (callers check each with :func:`core.sources.trust.checked_file`);
    a folder that cannot be listed has none.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except OSError:
        return []
    out: list[str] = []
    for pattern in patterns:
        out += [n for n in names if fnmatchcase(n, pattern) and n not in out]
    return out


def cache_dir() -> Path:
    """Graft's own cache folder (``GRAFT_CACHE_DIR`` overrides)."""
    base = os.environ.get("GRAFT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graft"
    )
    return Path(base)


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


@dataclass(frozen=True)
class SourceScan:
    """NaN/Inf entries of a source's weights, by tensor (only tensors that have some), in file order."""

    nonfinite: dict[str, int]
    sizes: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.nonfinite.values())

    @property
    def first(self) -> str | None:
        return next(iter(self.nonfinite), None)

    def summary(self) -> str:
        """``"all finite"``, or the count, the tensors and the first one."""
        if not self.nonfinite:
            return "all finite"
        first = self.first
        more = f" and {len(self.nonfinite) - 1} more tensor(s)" if len(self.nonfinite) > 1 else ""
        return (
            f"{self.total:,} NaN/Inf value(s) in {len(self.nonfinite)} tensor(s), first {first!r} "
            f"({self.nonfinite[first]:,} of {self.sizes[first]:,}){more}"
        )


@dataclass
class Source:
    """An opened checkpoint. Cheap to create; reads tensor bytes only when asked."""

    root: Path
    files: list[Path]
    tensors: dict[str, TensorInfo]
    config: dict | None = None
    identity: dict = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    #: resolved file → its name in the source folder (a cache snapshot's file links to a blob named by its hash)
    file_names: dict[Path, str] = field(default_factory=dict)
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
        """Tokenizer, generation and preprocessing files to copy on export.

        Each must be a regular file inside the source folder, or a Hugging Face cache blob of
        the same repo for a snapshot (see :func:`core.sources.trust.checked_file`): a link to a
        file elsewhere would copy that file into the export.

        Raises:
            SourceError: one of them is a link leaving the source, broken, or not a regular file.
        """
        from core.sources.trust import checked_file

        found = []
        for name in aux_file_names(self.root):
            path = self.root / name
            checked_file(path, self.root, f"the source's {name}")
            found.append(path)
        return found

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
            raise SourceError(
                f"cannot read {self.file_name(info.file)}: {exc}; check that the file is complete"
            ) from exc

    def read(self, name: str):
        """The whole tensor ``name`` as a torch tensor (in its stored dtype), in one sequential read."""
        from core.sources.reader import read_range

        info = self.info(name)
        dtype = self._dtype(info)
        if dtype is None:
            with self._open(info) as handle:
                return handle.get_tensor(name)
        return read_range(info.file, info.offsets[0], info.numel, dtype).reshape(info.shape)

    def read_slice(self, name: str, index: tuple):
        """``tensor[index]`` reading only the bytes needed (basic slicing: ints and slices)."""
        info = self.info(name)
        if (
            len(index) == 1
            and isinstance(index[0], slice)
            and index[0].step in (None, 1)
            and info.shape
            and self._dtype(info) is not None
        ):
            lo, hi, _ = index[0].indices(info.shape[0])
            import numpy as np

            return self.read_gather(name, np.arange(lo, max(lo, hi)), None)
        with self._open(info) as handle:
            return handle.get_slice(name)[index]

    def read_gather(self, name: str, rows, cols):
        """``tensor[rows]`` with the flattened trailing axes taken at ``cols``: only those bytes are read.

        Args:
            rows: source rows in the order wanted (repeats allowed), or None for all.
            cols: flat positions in the trailing axes (row-major), or None for all (the result
                keeps the trailing shape then; else it is ``(len(rows), len(cols))``).
        """
        import math

        from core.dtypes import torch_dtype
        from core.sources.reader import gather_2d

        info = self.info(name)
        if not info.shape:
            return self.read(name)
        n_rows, n_cols = info.shape[0], math.prod(info.shape[1:])
        data, _ = gather_2d(info.file, info.offsets[0], (n_rows, n_cols), torch_dtype(info.dtype), rows, cols)
        if cols is None:
            return data.reshape((data.shape[0], *info.shape[1:]))
        return data

    @staticmethod
    def _dtype(info: TensorInfo):
        from core.dtypes import torch_dtype

        try:
            return torch_dtype(info.dtype)
        except Exception:  # a dtype this torch lacks: safetensors' own reader says so
            return None

    # -- identity ----------------------------------------------------------------------------
    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of every shard, by file name.

        A Hugging Face cache blob is named after its hash, which is taken without reading the
        file; any other file is hashed once per version (see :mod:`core.sources.scan`, whose
        cache key changes whenever the file's bytes may have), together with its NaN/Inf scan.
        """
        from core.sources.scan import blob_sha256, cached_scan

        for path in self.files:
            if self.file_name(path) in self._hashes:
                continue
            known = blob_sha256(path) or getattr(cached_scan(path), "sha256", None)
            self._hashes[self.file_name(path)] = known or self._scan_file(path).sha256
        return dict(self._hashes)

    def file_name(self, path: Path) -> str:
        """The name a weight file has in the source folder (not its blob's, for a cache snapshot)."""
        return self.file_names.get(path, path.name)

    def scan(self, *, progress: ProgressFn = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> SourceScan:
        """Read every weight file once (or take the cached result): hashes and NaN/Inf counts."""
        by_file: dict[Path, list[TensorInfo]] = {}
        for info in self.tensors.values():
            by_file.setdefault(info.file, []).append(info)
        total = sum(f.stat().st_size for f in self.files) or 1
        done, nonfinite = 0, {}
        for path in self.files:
            result = self._scan_file(path, progress=progress, cancel=cancel, done=done, total=total)
            nonfinite.update(result.nonfinite)
            done += path.stat().st_size
        progress(1.0, "checked every value")
        ordered = {n: nonfinite[n] for n in self.tensors if n in nonfinite}
        return SourceScan(ordered, {n: t.numel for n, t in self.tensors.items() if n in ordered})

    def _scan_file(self, path: Path, **kw):
        from core.sources.scan import scan_file

        tensors = [t for t in self.tensors.values() if t.file == path]
        try:
            result = scan_file(path, tensors, **kw)
        except OSError as exc:
            raise SourceError(
                f"cannot read {self.file_name(path)}: {exc.strerror or exc}; check that the file is complete"
            ) from exc
        self._hashes[self.file_name(path)] = result.sha256
        return result
