"""The whole-model table cached per source content, so a second analysis of the same files is instant.

An entry is the list of :class:`~core.stats.table.TensorRow` of one table, stored as JSON under
``$GRAFT_CACHE_DIR/stats`` (``~/.cache/graft/stats``) and keyed by SHA-256 over:

- the SHA-256 of every weight file (:meth:`core.sources.base.Source.file_hashes`: a Hugging Face
  blob's name, or the cached scan of :mod:`core.sources.scan`, whose key changes whenever a
  file's bytes may have), so a changed file is a different key;
- the labelled tensors (name, role, layer, fan-in: the config decides them, not the weights);
- the metrics, by name *and* help text, and every parameter of the statistics (roles, vectors,
  seed, sample size, spectrum cap);
- :data:`FORMAT`, bumped whenever a statistic's computation changes.

The device is not in the key: CPU and CUDA compute the same quantities (to float rounding).

The lookup needs the files' hashes without reading the files: when a file's SHA-256 is not known
(nothing in the scan cache, not a hub blob) its key part is the file's identity instead (resolved
path, device, inode, size, modification and change time, as :func:`core.sources.scan.identity_key`):
an analysis reads every tensor once and nothing more (hashing the files afterwards was one more
read pass, +20% on a 7B), the same file opens instantly the second time, and any rewrite of it
(even one restoring its mtime) misses. A copy or a move of the file is a new identity: its first
analysis recomputes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from core.sources.scan import known_file_hashes  # noqa: F401  (re-exported: the cache key's hashes)

log = logging.getLogger(__name__)

#: Part of every key: a new statistic rule is a new entry (v2: Lanczos ‖W‖_2 instead of ARPACK;
#: v3: Krylov estimates above a smaller side of 512, float32 row norms, rows say which metrics
#: are estimated).
FORMAT = "stats-table-v3"


def _cache_path(key: str) -> Path:
    from core.sources.base import cache_dir

    return cache_dir() / "stats" / f"{key}.json"


def file_keys(source) -> dict[str, str] | None:
    """Each weight file's key part: its SHA-256 when known without reading, else its identity."""
    from core.sources.scan import blob_sha256, cached_scan, identity_key

    files = getattr(source, "files", None)
    if not files or not hasattr(source, "file_name"):
        return None
    out = {}
    for path in files:
        known = blob_sha256(path) or getattr(cached_scan(path), "sha256", None)
        out[source.file_name(path)] = known or f"identity:{identity_key(path)}"
    return out


def table_key(hashes: dict[str, str], labels: Sequence, metrics: Sequence[str], params: dict) -> str:
    """The cache key of a table (see the module docstring)."""
    from core.stats.metrics import METRICS

    registered = dict(METRICS.items())
    head = {
        "format": FORMAT,
        "shards": sorted(hashes.items()),
        "tensors": [(t.name, t.role, t.layer, t.fan_in, column) for t, column in labels],
        "metrics": [(m, registered[m].help if m in registered else None) for m in metrics],
        "params": params,
    }
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()


def read_rows(key: str) -> list | None:
    """The cached rows of ``key`` (None when absent or unreadable)."""
    from core.stats.table import TensorRow

    path = _cache_path(key)
    try:
        entry = json.loads(path.read_text())
        return [
            TensorRow(r["name"], r["layer"], r["column"], r["values"], r["nonfinite"], tuple(r["estimated"]))
            for r in entry["rows"]
        ]
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged or older entry is recomputed
        log.info("ignoring the stats cache entry %s: %s", path.name, exc)
        return None


def write_rows(key: str, rows: Sequence) -> None:
    """Store ``rows`` under ``key`` atomically; a read-only cache only costs a recomputation."""
    path = _cache_path(key)
    entry = {
        "format": FORMAT,
        "rows": [
            {
                "name": r.name,
                "layer": r.layer,
                "column": r.column,
                "values": r.values,
                "nonfinite": r.nonfinite,
                "estimated": list(r.estimated),
            }
            for r in rows
        ],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entry))  # NaN is written as NaN and read back as nan
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write the stats cache %s: %s", path, exc)
