"""One read pass over a weight file: its SHA-256 and the NaN/Inf count of every floating tensor.

Both answers come from the same bytes, so they cost one sequential read together (the hash is
what a recipe records to detect a changed source; the count is what stops a transfer from
exporting NaNs). Results are cached under Graft's cache folder, keyed by the file's identity:
resolved path, device, inode, size, modification *and* change time. ``ctime`` cannot be set
from user space, so rewriting a file in place and restoring its mtime (``touch -r``) still
changes the key; a file replaced by another one changes the inode.

Non-finite values are found on the raw bits, which needs no conversion and works for bf16 (that
numpy cannot represent): an IEEE float is Inf or NaN exactly when its exponent bits are all ones.
FP8 E4M3 has no Inf and one NaN pattern per sign (S.1111.111).

A file in the Hugging Face cache is a link to ``blobs/<sha256>``: :func:`blob_sha256` reads its
hash from the name without reading the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

BLOCK_BYTES = 16 << 20
_CACHE_VERSION = "scan-v1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# dtype → (unsigned view, mask, pattern): non-finite where (bits & mask) == pattern.
_NONFINITE_BITS = {
    "F64": (np.uint64, 0x7FF0000000000000, 0x7FF0000000000000),
    "F32": (np.uint32, 0x7F800000, 0x7F800000),
    "F16": (np.uint16, 0x7C00, 0x7C00),
    "BF16": (np.uint16, 0x7F80, 0x7F80),
    "F8_E5M2": (np.uint8, 0x7C, 0x7C),
    "F8_E4M3": (np.uint8, 0x7F, 0x7F),
}


@dataclass(frozen=True)
class FileScan:
    """What one read of a weight file found.

    Attributes:
        sha256: hex digest of the whole file.
        nonfinite: tensor name → number of NaN/Inf entries, only for tensors that have some.
    """

    sha256: str
    nonfinite: dict[str, int] = field(default_factory=dict)


def _cache_dir() -> Path:
    from core.sources.base import cache_dir

    return cache_dir() / "scan"


def identity_key(path: Path) -> str:
    """A cache key that changes whenever the file's bytes may have (see the module docstring)."""
    st = os.stat(path)
    text = f"{_CACHE_VERSION}|{Path(path).resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()


def blob_sha256(path: Path) -> str | None:
    """The SHA-256 a Hugging Face cache blob is named after, or None for any other file."""
    try:
        target = Path(path).resolve()
    except OSError:
        return None
    if (
        target.parent.name == "blobs"
        and _SHA256.match(target.name)
        and target.parent.parent.name.startswith("models--")
    ):
        return target.name
    return None


def known_file_hashes(source) -> dict[str, str] | None:
    """The SHA-256 of every weight file of ``source`` when it is known without reading any file
    (hub blob names, the scan cache), else None."""
    files = getattr(source, "files", None)
    if not files or not hasattr(source, "file_hashes"):
        return None
    out = {}
    for path in files:
        known = blob_sha256(path) or getattr(cached_scan(path), "sha256", None)
        if known is None:
            return None
        out[source.file_name(path)] = known
    return out


def cached_scan(path: Path) -> FileScan | None:
    """The cached scan of ``path`` if its identity has not changed since, else None."""
    try:
        data = json.loads((_cache_dir() / identity_key(path)).read_text())
        return FileScan(str(data["sha256"]), {str(k): int(v) for k, v in data["nonfinite"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _store(path: Path, key: str, scan: FileScan) -> None:
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}"
        tmp.write_text(json.dumps({"sha256": scan.sha256, "nonfinite": scan.nonfinite}))
        os.replace(tmp, folder / key)
    except OSError:  # a read-only home is no reason to fail: the scan is only redone next time
        pass


def count_nonfinite(raw: memoryview, dtype: str) -> int:
    """NaN/Inf entries in ``raw`` (a whole number of elements of safetensors ``dtype``)."""
    rule = _NONFINITE_BITS.get(dtype)
    if rule is None or not len(raw):
        return 0
    view, mask, pattern = rule
    bits = np.frombuffer(raw, dtype=view)
    return int(np.count_nonzero((bits & view(mask)) == view(pattern)))


def scan_file(
    path: Path,
    tensors,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    done: int = 0,
    total: int | None = None,
) -> FileScan:
    """Hash ``path`` and count the non-finite entries of ``tensors`` (its :class:`TensorInfo`s).

    Uses the cache when the file's identity is unchanged; otherwise reads the file once, in
    order, in blocks of ``BLOCK_BYTES`` (each block aligned to its tensor's elements).

    Args:
        done, total: bytes already scanned and to scan overall, for ``progress`` across files.
    """
    key = identity_key(path)
    hit = cached_scan(path)
    if hit is not None:
        return hit
    size = os.stat(path).st_size
    total = size if total is None else total
    regions = sorted((t.offsets[0], t.offsets[1], t) for t in tensors)
    digest = hashlib.sha256()
    nonfinite: dict[str, int] = {}
    # Two buffers in turn: one thread hashes block k (hashlib releases the GIL) while this one
    # counts it and reads block k + 1 into the other buffer; a buffer is refilled only after its
    # hash is done. The hash stays in file order (one hashing thread).
    buffers = (bytearray(BLOCK_BYTES), bytearray(BLOCK_BYTES))
    hashing: list = [None, None]
    turn = position = 0
    with open(path, "rb", buffering=0) as fh, ThreadPoolExecutor(1, thread_name_prefix="graft-hash") as hasher:

        def take(n: int) -> memoryview:
            nonlocal position, turn
            if hashing[turn] is not None:
                hashing[turn].result()
            view = memoryview(buffers[turn])[:n]
            got = 0
            while got < n:
                k = fh.readinto(view[got:])
                if not k:
                    raise SourceError(
                        f"{path.name} ended early while being read; it changed during the scan — try again"
                    )
                got += k
            hashing[turn] = hasher.submit(digest.update, view)
            turn ^= 1
            position += n
            progress((done + position) / total if total else 1.0, f"checking {path.name}")
            return view

        for begin, end, info in regions:
            if begin < position:
                raise SourceError(
                    f"{path.name}: tensor {info.name!r} overlaps the tensor before it; the file is corrupt"
                )
            while position < begin:  # header, padding
                cancel.check()
                take(min(BLOCK_BYTES, begin - position))
            width = max(1, np.dtype(_NONFINITE_BITS[info.dtype][0]).itemsize) if info.dtype in _NONFINITE_BITS else 1
            step = BLOCK_BYTES - BLOCK_BYTES % width
            count = 0
            while position < end:
                cancel.check()
                count += count_nonfinite(take(min(step, end - position)), info.dtype)
            if count:
                nonfinite[info.name] = count
        while position < size:
            cancel.check()
            take(min(BLOCK_BYTES, size - position))
        for pending in hashing:
            if pending is not None:
                pending.result()
    scan = FileScan(digest.hexdigest(), nonfinite)
    _store(path, key, scan)
    return scan
