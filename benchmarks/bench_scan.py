"""Benchmark the source scan (SHA-256 + NaN/Inf count in one pass) against a plain read and sha256sum.

The first transfer of a source reads every shard once to hash it (for the recipe's provenance)
and to count non-finite values. This measures what the NaN/Inf count adds to the hashing pass:
on a synthetic bf16 safetensors file (page cache warm for every contender, so the numbers are
CPU cost, not disk), each run in the same script:

* ``read``: ``readinto`` of the whole file in 16 MB blocks (the floor),
* ``sha256``: ``hashlib.sha256`` over the same blocks (what 0.1.0 did on the first run),
* ``scan``: :func:`core.sources.scan.scan_file` (hash + count; cache disabled).

    python benchmarks/bench_scan.py --size-gb 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLOCK = 16 << 20


def make_file(path: Path, size_gb: float) -> None:
    import torch
    from safetensors.torch import save_file

    n = int(size_gb * 1e9 / 2 / 4096)
    torch.manual_seed(0)
    tensors = {f"w{i}": torch.randn(n // 8, 4096).to(torch.bfloat16) for i in range(8)}
    tensors["w3"][0, :5] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})


def plain(path: Path, digest=None) -> float:
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while True:
            k = fh.readinto(view)
            if not k:
                break
            if digest is not None:
                digest.update(view[:k])
    return time.perf_counter() - start


def scan(path: Path) -> float:
    from core.sources.local import read_header
    from core.sources.scan import scan_file

    tensors, _ = read_header(path)
    start = time.perf_counter()
    result = scan_file(path, list(tensors.values()))
    elapsed = time.perf_counter() - start
    assert result.nonfinite == {"w3": 5}, result.nonfinite
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GRAFT_CACHE_DIR"] = str(Path(tmp) / "cache-off")
        path = Path(tmp) / "model.safetensors"
        make_file(path, args.size_gb)
        size = path.stat().st_size
        plain(path)  # warm the page cache
        best = {"read": [], "sha256": [], "scan": []}
        for _ in range(args.repeat):
            best["read"].append(plain(path))
            best["sha256"].append(plain(path, hashlib.sha256()))
            for f in Path(os.environ["GRAFT_CACHE_DIR"]).glob("scan/*"):
                f.unlink()  # a cold cache every time: the scan really reads
            best["scan"].append(scan(path))
        t = {k: min(v) for k, v in best.items()}
        print(f"file {size / 1e9:.2f} GB (bf16), page cache warm, best of {args.repeat}")
        for k in ("read", "sha256", "scan"):
            print(f"  {k:<7} {t[k]:6.2f} s  {size / t[k] / 1e9:5.2f} GB/s  {t[k] / t['sha256']:.2f}× sha256")


if __name__ == "__main__":
    main()
