"""Issue 2 benchmark: inspect and shrink-transfer a ≥2 GB synthetic llama-shaped sharded checkpoint.

Prints, in one run:
* ``graft inspect`` time (open + describe, headers only) on the 2 GB checkpoint and on a
  same-named checkpoint ~1000× smaller — it must not grow with data size;
* a shrink transfer to half width and half depth: wall time as a ratio to ``cp -r`` of the same
  source files, bytes read from disk (page cache dropped with posix_fadvise first), and peak RSS
  against the checkpoint size (must stay under a quarter). Run twice: with a cold shard-hash cache
  (the recipe's SHA-256 of every source shard reads each byte once) and with it warm.

Usage: python benchmarks/bench_transfer.py [--dir /tmp/graft-bench] [--gb 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]


def llama_config(hidden: int, layers: int, heads: int, kv: int, ffn: int, vocab: int) -> dict:
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
    }


def tensors_for(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = h // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "mlp.gate_proj.weight", (f, h)),
            (p + "mlp.up_proj.weight", (f, h)),
            (p + "mlp.down_proj.weight", (h, f)),
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
        ]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def write_checkpoint(folder: Path, cfg: dict, shard_bytes: int = 500_000_000) -> int:
    """Write a sharded bf16 checkpoint, one shard in memory at a time; returns total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(0)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors_for(cfg):
        n = 2 * int(torch.tensor(shape).prod())
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += n
    weight_map, total = {}, 0
    for i, group in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        data = {n: (torch.randn(s, generator=g) * 0.02).to(torch.bfloat16) for n, s in group}
        save_file(data, str(folder / fname), metadata={"format": "pt"})
        for n, t in data.items():
            weight_map[n] = fname
            total += t.numel() * 2
        del data
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    return total


def drop_cache(folder: Path) -> None:
    """Evict the folder's files from the page cache so the next read hits the disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def time_inspect(folder: Path, repeats: int = 5) -> float:
    from core.architectures import describe
    from core.sources import open_source

    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        describe(open_source(folder))
        best = min(best, time.perf_counter() - t)
    return best


RUNNER = """
import json, sys
from app.cli import main
rc = main(sys.argv[1:])
io = dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())
# VmHWM, not ru_maxrss: after fork+exec Linux's ru_maxrss keeps the parent's peak.
hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024
print(json.dumps({'rc': rc, 'read_bytes': int(io['read_bytes']), 'rchar': int(io['rchar']),
                  'maxrss': hwm}), file=sys.stderr)
"""


def run_transfer(src: Path, out: Path, cache: Path, target: dict) -> dict:
    argv = ["transfer", str(src), "--out", str(out), "--force"]
    for k, v in target.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "GRAFT_CACHE_DIR": str(cache)}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    if stats["rc"] != 0:
        raise SystemExit(proc.stderr)
    stats["wall"] = wall
    return stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "graft-bench"))
    ap.add_argument("--gb", type=float, default=2.0)
    args = ap.parse_args()
    work = Path(args.dir)
    src, small = work / "llama-src", work / "llama-small-src"
    layers = max(
        2, round((args.gb * 1e9 - 2 * 2 * 32000 * 2048) / (2 * (4 * 2048 * 2048 - 2 * 2048 * 1024 + 3 * 2048 * 5504)))
    )
    cfg = llama_config(2048, layers, 16, 8, 5504, 32000)
    if not (src / "model.safetensors.index.json").is_file():
        print(f"writing a synthetic llama checkpoint ({layers} layers) to {src} …", flush=True)
        write_checkpoint(src, cfg)
    if not (small / "model.safetensors.index.json").is_file():
        write_checkpoint(small, llama_config(64, layers, 4, 2, 128, 256))
    size = sum(p.stat().st_size for p in src.glob("*.safetensors"))
    small_size = sum(p.stat().st_size for p in small.glob("*.safetensors"))
    print(
        f"checkpoint: {size / 1e9:.2f} GB in {len(list(src.glob('*.safetensors')))} shards, {layers} layers, hidden 2048"
    )

    t_big, t_small = time_inspect(src), time_inspect(small)
    print(
        f"inspect (open + describe, headers only): {t_big * 1e3:.1f} ms on {size / 1e9:.2f} GB vs "
        f"{t_small * 1e3:.1f} ms on {small_size / 1e6:.1f} MB with the same tensor names; ratio {t_big / t_small:.2f}"
    )

    cp_dst = work / "cp-copy"
    shutil.rmtree(cp_dst, ignore_errors=True)
    drop_cache(src)
    t = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(cp_dst)], check=True)
    os.sync()
    t_cp = time.perf_counter() - t
    shutil.rmtree(cp_dst)
    print(f"cp -r of the source: {t_cp:.2f} s")

    target = {"layers": layers // 2, "hidden": 1024, "ffn": 2752, "heads": 8, "kv_heads": 4}
    cache = Path(tempfile.mkdtemp(prefix="graft-hash-cache-"))
    for label in ("cold hash cache", "warm hash cache"):
        drop_cache(src)
        stats = run_transfer(src, work / "out", cache, target)
        out_size = sum(p.stat().st_size for p in (work / "out").glob("*.safetensors"))
        print(
            f"transfer to half width/depth ({label}): {stats['wall']:.2f} s = {stats['wall'] / t_cp:.2f}× cp; "
            f"read from disk {stats['read_bytes'] / 1e9:.2f} GB ({stats['read_bytes'] / size:.0%} of the source); "
            f"peak RSS {stats['maxrss'] / 1e6:.0f} MB = {stats['maxrss'] / size:.1%} of the checkpoint "
            f"(limit 25%); wrote {out_size / 1e9:.2f} GB"
        )
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
