"""Benchmark the streaming export: throughput against `cp`, and peak memory against file size.

A synthetic llama-shaped checkpoint (bf16) is produced one tensor at a time and exported with
sharding; then the exported folder is copied with `cp -r` in the same run for a reference.
Peak RSS is measured in a child process so the parent's imports do not count twice.

    python benchmarks/bench_export.py --size-gb 2 --out bench-out/export
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def llama_entries(size_gb: float):
    import torch

    from core.export import ExportEntry

    hidden, ffn, vocab = 2048, 5632, 32000
    per_layer = 4 * hidden * hidden + 3 * hidden * ffn + 2 * hidden
    fixed = 2 * vocab * hidden + hidden
    layers = max(1, int((size_gb * 1e9 / 2 - fixed) // per_layer))
    dt = torch.bfloat16
    entries = [ExportEntry("model.embed_tokens.weight", (vocab, hidden), dt)]
    for i in range(layers):
        p = f"model.layers.{i}."
        entries += [
            ExportEntry(p + "input_layernorm.weight", (hidden,), dt),
            ExportEntry(p + "self_attn.q_proj.weight", (hidden, hidden), dt),
            ExportEntry(p + "self_attn.k_proj.weight", (hidden, hidden), dt),
            ExportEntry(p + "self_attn.v_proj.weight", (hidden, hidden), dt),
            ExportEntry(p + "self_attn.o_proj.weight", (hidden, hidden), dt),
            ExportEntry(p + "post_attention_layernorm.weight", (hidden,), dt),
            ExportEntry(p + "mlp.gate_proj.weight", (ffn, hidden), dt),
            ExportEntry(p + "mlp.up_proj.weight", (ffn, hidden), dt),
            ExportEntry(p + "mlp.down_proj.weight", (hidden, ffn), dt),
        ]
    entries += [
        ExportEntry("model.norm.weight", (hidden,), dt),
        ExportEntry("lm_head.weight", (vocab, hidden), dt),
    ]
    return entries


def child(size_gb: float, out: Path, shard: str) -> None:
    """Run the export and print one JSON line of measurements."""
    import torch

    from core.export import export_checkpoint

    entries = llama_entries(size_gb)
    shapes = {e.name: e.shape for e in entries}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    export_checkpoint(
        out,
        entries=entries,
        produce=lambda n: torch.full(shapes[n], 0.5, dtype=torch.bfloat16),
        config=None,
        max_shard_size=shard,
        force=True,
        replace_any=True,  # its own bench folder, which has no graft_recipe.json to recognise it by
    )
    wall = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = sum(e.nbytes for e in entries)
    largest = max(e.nbytes for e in entries)
    print(
        json.dumps(
            {
                "bytes": total,
                "tensors": len(entries),
                "largest_tensor": largest,
                "export_s": wall,
                "peak_rss_before": rss0,
                "peak_rss_after": rss1,
                "peak_rss_growth": rss1 - rss0,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out/export"))
    ap.add_argument("--shard", default="500MB")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.size_gb, args.out, args.shard)
        return
    cmd = [sys.executable, __file__, "--child", f"--size-gb={args.size_gb}", f"--out={args.out}"]
    cmd.append(f"--shard={args.shard}")
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    copy = args.out.with_name(args.out.name + "-cp")
    shutil.rmtree(copy, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(args.out), str(copy)], check=True)
    res["cp_s"] = time.perf_counter() - t0
    shutil.rmtree(copy, ignore_errors=True)
    gb = res["bytes"] / 1e9
    print(f"exported {gb:.2f} GB in {res['tensors']} tensors ({args.shard} shards)")
    print(f"  export   {res['export_s']:.2f} s  ({gb / res['export_s']:.2f} GB/s)")
    print(f"  cp -r    {res['cp_s']:.2f} s  (export/cp = {res['export_s'] / res['cp_s']:.2f})")
    print(
        f"  peak RSS growth {res['peak_rss_growth'] / 1e6:.0f} MB "
        f"(largest tensor {res['largest_tensor'] / 1e6:.0f} MB, "
        f"{res['peak_rss_growth'] / res['bytes']:.1%} of the checkpoint)"
    )


if __name__ == "__main__":
    main()
