"""Issue 17 benchmark: Graft on a checkpoint in the shape and file layout of Llama-2-7B.

Writes a synthetic LlamaForCausalLM checkpoint (32 layers, hidden 4096, 32 heads, ffn 11008,
vocab 32000, untied head, bf16, ~5 GB shards with ``model.safetensors.index.json``, 13.5 GB) one
tensor chunk at a time, then times, interleaved, each job in a child process with the source
evicted from the page cache first (``posix_fadvise(DONTNEED)``, no root needed) and its outputs
flushed (the flush counted in its wall time) and evicted after:

* ``cp -r`` of the source: the baseline; ``cat`` of the shards: one cold read pass;
* the *pread floor*: exactly the source bytes a shrink to 16 layers × 2048 (16 heads, ffn 5504)
  needs, from Graft's own plan (``graft plan --json``: each kept tensor's kept rows' kept columns),
  one ``os.pread`` per contiguous run with ``POSIX_FADV_RANDOM``;
* that shrink with ``select``: a first run (a fresh, empty ``GRAFT_CACHE_DIR``: whatever Graft
  reads to hash and scan a source it has not seen) and a second (same cache, cold page cache);
  ``mean_field``, ``distribution``, ``covariance`` and ``templates`` (with that cache);
  ``covariance_f32``: covariance as a CPU without fast bf16 products draws it (``--param
  products=float32``), and ``covariance_f32_blas`` the same through torch's BLAS alone
  (``GRAFT_FLOAT32_GEMM=blas``; on an Intel CPU the two are the same run);
* a growth of an 8-layer 2048-wide llama to the 7B shape, against ``cp`` of as many bytes;
* ``graft inspect`` (empty cache, then warm) and ``graft stats --json`` against the cold read pass
  (``stats_f32``, ``stats_f32_blas``: with ``--products float32``, as ``covariance_f32`` above),
  and the table against the matrix products its spectrum estimate cannot do without
  (``stats_products``: a plain PyTorch loop of the four 48-column float32 products of the block
  Krylov estimate, per matrix whose smaller side is over 512, on random matrices of the model's
  shapes, nothing read; the table itself runs them in bf16 on one thread per worker where bf16
  products are fast, so on such a CPU this job is a float32 reference, not a floor);
* a layer slice keeping layers 0, 2, 4, … (``--layer-map``) against mergekit's passthrough merge
  of the same single-layer slices (mergekit in a scratch venv, ``--mergekit-venv``; installed
  there when missing; skipped with a message when that fails), with the outputs compared tensor
  by tensor, raw bytes.

Each child's wall time, bytes read from disk and written (``/proc/PID/io`` read_bytes,
write_bytes; rchar: bytes asked for, cached or not) and peak RSS (``ru_maxrss`` from ``wait4`` of
a small metering process, which bounds it from below at the meter's ~10 MB; ``VmHWM`` polled) are
printed as a table, with each job's ratio to its baseline. ``--rounds N`` repeats the whole
interleaved sequence and reports each job's median run.

Usage: python benchmarks/bench_7b.py [--dir /tmp/graft-bench-7b] [--layers 32] [--hidden 4096]
    [--heads 32] [--ffn 11008] [--vocab 32000] [--shard-gb 5] [--rounds 1] [--only JOBS]
    [--skip JOBS] [--job-timeout S] [--mergekit-venv /tmp/mergekit-venv] [--json-out FILE] [--keep]

A small run to check the script: --layers 4 --hidden 512 --ffn 1376 --vocab 4000 --shard-gb 0.05
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import llama_config, tensors_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
#: elements drawn per chunk when writing a tensor (bounds the writer's memory: 4 B × 16 Mi).
CHUNK = 16 << 20
JOBS = (
    "cp",
    "cat",
    "pread_floor",
    "select_first",
    "select_second",
    "mean_field",
    "distribution",
    "covariance",
    "covariance_f32",
    "covariance_f32_blas",
    "templates",
    "growth",
    "inspect_first",
    "inspect_second",
    "stats",
    "stats_f32",
    "stats_f32_blas",
    "stats_products",
    "slice_first",
    "slice_second",
    "mergekit",
)

# -- the checkpoint ------------------------------------------------------------------------------


def llama2_config(layers: int, hidden: int, heads: int, ffn: int, vocab: int) -> dict:
    """Llama-2-7b-hf's config.json with these sizes (multi-head attention: kv heads = heads)."""
    cfg = llama_config(hidden, layers, heads, heads, ffn, vocab)
    cfg.update(
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.02,
        max_position_embeddings=4096,
        pretraining_tp=1,
        rope_scaling=None,
        torch_dtype="bfloat16",
        use_cache=True,
    )
    return cfg


def write_safetensors(path: Path, group: list[tuple[str, tuple[int, ...]]], gen) -> int:
    """Write one bf16 shard tensor by tensor, ``CHUNK`` values at a time; flushed and evicted after."""
    import torch

    header, offset = {}, 0
    for name, shape in group:
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    buf = torch.empty(CHUNK)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for _name, shape in group:
            left = math.prod(shape)
            while left:
                k = min(left, CHUNK)
                x = torch.randn(k, generator=gen, out=buf[:k]).mul_(0.02)
                if len(shape) == 1:  # a norm's weight: around 1, like a trained one
                    x.add_(1.0)
                fh.write(x.to(torch.bfloat16).view(torch.int16).numpy())
                left -= k
        fh.flush()
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return offset


def write_checkpoint(folder: Path, cfg: dict, shard_bytes: int, seed: int = 0) -> int:
    """A sharded bf16 checkpoint in HF's layout (tensors in state-dict order, shards filled up to
    ``shard_bytes``), never more than one chunk of values in memory; returns the weight bytes."""
    import torch

    stamp = folder / ".bench-7b.json"
    want = {"config": cfg, "shard_bytes": shard_bytes, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shards: list[list] = [[]]
    size = 0
    for name, shape in tensors_for(cfg):
        n = 2 * math.prod(shape)
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += n
    gen = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for i, group in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(folder / fname, group, gen)
        weight_map.update((name, fname) for name, _ in group)
        print(f"  {fname}: {len(group)} tensors", flush=True)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    stamp.write_text(json.dumps(want))
    return total


def read_headers(folder: Path) -> dict[str, tuple[Path, int, list[int], int]]:
    """Tensor name → (file, absolute offset of its data, shape, item size) of a safetensors folder."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                out[name] = (path, 8 + n + info["data_offsets"][0], info["shape"], sizes[info["dtype"]])
    return out


def files_under(*paths: Path) -> list[Path]:
    out = []
    for p in paths:
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [q for q in p.rglob("*") if q.is_file() and not q.is_symlink()]
    return out


def evict(*paths: Path) -> float:
    """fsync (written pages reach the disk) and drop from the page cache; returns the seconds spent."""
    t = time.perf_counter()
    for path in files_under(*paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return time.perf_counter() - t


# -- the bytes a shrink needs (from Graft's plan) ------------------------------------------------


def plan_json(src: Path, target_args: list[str], log: Path) -> dict:
    cmd = [sys.executable, "-m", "app.cli", "plan", str(src), *target_args, "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    log.write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"graft plan failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _runs(index) -> list[tuple[int, int]]:
    """Sorted unique positions as [start, end) runs of consecutive ones."""
    import numpy as np

    idx = np.unique(np.asarray(index, dtype=np.int64))
    breaks = np.nonzero(np.diff(idx) != 1)[0]
    starts = np.concatenate([idx[:1], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks] + 1, idx[-1:] + 1])
    return list(zip(starts.tolist(), ends.tolist()))


def needed_ranges(src: Path, plan: dict) -> tuple[list[Path], list[tuple[int, int, int]], int]:
    """The source byte ranges a plan's selections read: for every target tensor, its source
    tensor's kept rows' kept columns (``core.transfer.composite_index`` per axis; None = all),
    merged into contiguous runs per file. Returns (files, [(file number, offset, length)], bytes)."""
    import numpy as np

    from core.plan import Plan
    from core.transfer import composite_index

    p = Plan.from_dict(plan)
    headers = read_headers(src)
    per_file: dict[Path, list[np.ndarray]] = defaultdict(list)
    for t in p.tensors:
        if t.source_name is None or t.source_name not in headers:
            continue
        path, start, shape, item = headers[t.source_name]
        if len(t.axes) != len(shape) or not shape:
            per_file[path].append(np.array([[start, start + item * math.prod(shape)]], dtype=np.int64))
            continue
        index = [composite_index(p, axis) for axis in t.axes]
        index = [np.arange(n) if ix is None else np.unique(ix.numpy()) for ix, n in zip(index, shape)]
        strides = [math.prod(shape[a + 1 :]) for a in range(len(shape))]
        base = np.zeros(1, dtype=np.int64)
        for a in range(len(shape) - 1):  # flat offsets of every kept position of the leading axes
            base = (base[:, None] + index[a][None, :].astype(np.int64) * strides[a]).reshape(-1)
        runs = np.array(_runs(index[-1]), dtype=np.int64)
        spans = (base[:, None, None] + runs[None, :, :]).reshape(-1, 2)
        per_file[path].append(start + spans * item)
    files = sorted(per_file)
    ranges, total = [], 0
    for number, path in enumerate(files):
        spans = np.concatenate(per_file[path])
        spans = spans[np.argsort(spans[:, 0], kind="stable")]
        merged_start, merged_end = int(spans[0, 0]), int(spans[0, 1])
        for s, e in spans[1:].tolist():
            if s <= merged_end:
                merged_end = max(merged_end, e)
            else:
                ranges.append((number, merged_start, merged_end - merged_start))
                merged_start, merged_end = s, e
        ranges.append((number, merged_start, merged_end - merged_start))
    total = sum(n for _, _, n in ranges)
    return files, ranges, total


def pages_touched(ranges: list[tuple[int, int, int]], page: int = os.sysconf("SC_PAGE_SIZE")) -> int:
    """Bytes of the distinct pages the ranges touch: what a cold read must bring from disk at least."""
    count, last = 0, (-1, -1)
    for number, offset, length in ranges:  # sorted by file, then offset
        first, end = offset // page, (offset + length - 1) // page
        if last[0] == number and first <= last[1]:
            first = last[1] + 1
        count += max(0, end - first + 1)
        last = (number, max(end, last[1] if last[0] == number else -1))
    return count * page


PREAD = r"""
import array, os, sys
files = sys.argv[1].split("\n")
ranges = array.array("q")
with open(sys.argv[2], "rb") as fh:
    ranges.frombytes(fh.read())
fds = []
for f in files:
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    fds.append(fd)
block = 8 << 20
buf = memoryview(bytearray(block))
got = 0
for i in range(0, len(ranges), 3):
    fd, off, left = fds[ranges[i]], ranges[i + 1], ranges[i + 2]
    while left:
        n = os.preadv(fd, [buf[: min(left, block)]], off)
        if n <= 0:
            raise SystemExit(f"short read at {off} of {files[ranges[i]]}")
        got += n
        off += n
        left -= n
print(f"pread {got} bytes in {len(ranges) // 3} runs")
"""

# -- metering a child ----------------------------------------------------------------------------

#: spawns the command, polls its VmHWM, reads its /proc/PID/io once it exits (a zombie still has
#: it, its reaped children's counts included) and its ru_maxrss from wait4 (a peak over it and its
#: descendants; from below it is bounded by this small meter's own, ``meter_hwm``).
#: The table's spectrum-estimate products alone (core.stats.spectrum.top_eigenvalues: y = WΩ, then
#: Z = WᵀQ and Y = WZ, then WᵀQ again, 48 columns each, on the smaller side) for each matrix shape
#: in argv[1] (JSON [[rows, cols], …]); matrices whose smaller side is ≤ 512 are exact there (skipped).
PRODUCTS = r"""
import json, sys, time, torch
shapes = [tuple(sorted(s)) for s in json.loads(sys.argv[1]) if min(s) > 512]
matrices = {s: torch.rand(s) for s in sorted(set(shapes))}  # each distinct shape once (~0.8 GB here)
t0 = time.perf_counter()
for s in shapes:
    w = matrices[s]  # the smaller side first, as the estimate works
    y = w @ torch.randn(s[1], 48)
    z = w.T @ y
    y = w @ z
    z = w.T @ y
print(f"{len(shapes)} matrices, {time.perf_counter() - t0:.2f} s of products")
"""

METER = r"""
import json, os, sys, time
out, limit, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
own = hwm("self")
t = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
polled = 0
timed_out = False
while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
    polled = max(polled, hwm(pid))
    if limit and not timed_out and time.perf_counter() - t > limit:
        os.kill(pid, 15)
        timed_out = True
    time.sleep(0.01)
wall = time.perf_counter() - t
with open(f"/proc/{pid}/io") as fh:
    io = {k: int(v) for k, v in (line.split(": ") for line in fh.read().splitlines())}
_, status, usage = os.wait4(pid, 0)
rc = os.waitstatus_to_exitcode(status)
maxrss = usage.ru_maxrss * 1024
with open(out, "w") as fh:
    json.dump({"rc": rc, "timed_out": timed_out, "wall": wall, "read_bytes": io["read_bytes"], "write_bytes": io["write_bytes"],
               "rchar": io["rchar"], "wchar": io["wchar"], "ru_maxrss": maxrss, "polled_hwm": polled,
               "meter_hwm": own, "peak_rss": max(polled, maxrss if maxrss > own else 0)}, fh)
"""


class Bench:
    def __init__(self, work: Path, timeout: float = 0):
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, list[dict]] = defaultdict(list)
        self.round = 0
        self.timeout = timeout

    def run(self, job: str, cmd: list[str], *, outputs=(), env=None, cwd=ROOT, keep_outputs=False) -> dict | None:
        """Run ``cmd`` metered, cold: the sources and the work folder evicted before, its outputs
        flushed (counted in its wall time) and evicted after, then deleted unless ``keep_outputs``."""
        for out in outputs:
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
        evict(self.work)
        stats_file = self.logs / f"{job}-{self.round}.meter.json"
        log = self.logs / f"{job}-{self.round}.log"
        print(f"[round {self.round}] {job} …", end=" ", flush=True)
        with open(log, "w") as fh:
            proc = subprocess.run(
                [sys.executable, "-S", "-c", METER, str(stats_file), str(self.timeout), *cmd],
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        if proc.returncode != 0 or not stats_file.is_file():
            print(f"meter failed (rc {proc.returncode}); see {log}")
            return None
        stats = json.loads(stats_file.read_text())
        stats["flush"] = evict(*outputs)
        stats["child_wall"] = stats["wall"]
        stats["wall"] += stats["flush"]
        stats["out_bytes"] = sum(p.stat().st_size for p in files_under(*outputs))
        if stats["timed_out"]:
            print(f"stopped after --job-timeout {self.timeout:g} s; see {log}")
            return None
        if stats["rc"] != 0:
            tail = log.read_text(errors="replace")[-2000:]
            print(f"FAILED (rc {stats['rc']}); {log}:\n{tail}")
            return None
        print(f"{stats['wall']:.2f} s", flush=True)
        self.runs[job].append(stats)
        if not keep_outputs:
            for out in outputs:
                shutil.rmtree(out, ignore_errors=True)
        return stats

    def median(self, job: str) -> dict | None:
        runs = self.runs.get(job)
        if not runs:
            return None
        wall = statistics.median_low(r["wall"] for r in runs)
        return next(r for r in runs if r["wall"] == wall)


def graft_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


# -- mergekit ------------------------------------------------------------------------------------


def ensure_mergekit(venv: Path, log: Path) -> Path | None:
    """``mergekit-yaml`` in ``venv``, installing it there (torch pinned to the CPU build first)."""
    exe = venv / "bin" / "mergekit-yaml"
    if exe.is_file():
        return exe
    print(f"installing mergekit into {venv} (a few minutes) …", flush=True)
    steps = [
        ["python3.11" if shutil.which("python3.11") else sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "torch==2.13.0"],
        [str(venv / "bin" / "pip"), "install", "-q", "mergekit"],
    ]
    with open(log, "w") as fh:
        for step in steps:
            try:
                failed = subprocess.run(step, stdout=fh, stderr=subprocess.STDOUT).returncode != 0
            except OSError:
                failed = True
            if failed:
                print(f"mergekit install failed at `{' '.join(step)}` (see {log}); skipping the mergekit comparison")
                return None
    return exe if exe.is_file() else None


def mergekit_config(src: Path, kept: list[int]) -> str:
    lines = ["slices:"]
    for i in kept:
        lines += ["  - sources:", f"      - model: {src}", f"        layer_range: [{i}, {i + 1}]"]
    return "\n".join([*lines, "merge_method: passthrough", "dtype: bfloat16", ""])


def layer_keyed(name: str, to_source: dict[int, int]) -> str:
    """``model.layers.J.x`` → ``model.layers.<source layer of J>.x``; other names unchanged."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "model" and parts[1] == "layers" and parts[2].isdigit():
        parts[2] = str(to_source[int(parts[2])])
    return ".".join(parts)


def compare_outputs(a: Path, a_layers: dict[int, int], b: Path, b_layers: dict[int, int]) -> str:
    """Tensor by tensor, raw bytes, after naming each output layer by its source layer."""
    ha = {layer_keyed(n, a_layers): v for n, v in read_headers(a).items()}
    hb = {layer_keyed(n, b_layers): v for n, v in read_headers(b).items()}
    if set(ha) != set(hb):
        only_a, only_b = sorted(set(ha) - set(hb)), sorted(set(hb) - set(ha))
        return f"different tensor names: only in graft {only_a[:3]}…, only in mergekit {only_b[:3]}…"
    compared = 0
    for name in sorted(ha):
        (pa, oa, sa, ia), (pb, ob, sb, ib) = ha[name], hb[name]
        if sa != sb or ia != ib:
            return f"first difference: {name}: shape {sa}×{ia} B vs {sb}×{ib} B"
        n = ia * math.prod(sa)
        with open(pa, "rb") as fa, open(pb, "rb") as fb:
            fa.seek(oa)
            fb.seek(ob)
            done = 0
            while done < n:
                k = min(n - done, 64 << 20)
                if fa.read(k) != fb.read(k):
                    return f"first difference: {name} (within bytes {done}…{done + k} of {n})"
                done += k
        compared += n
    return f"byte-identical: {len(ha)} tensors, {compared / GB:.2f} GB"


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "graft-bench-7b"), help="work folder")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=None, help="default: hidden / 128 (Llama-2's head width)")
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--shard-gb", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the interleaved sequence; medians are reported")
    ap.add_argument("--only", default="", help=f"comma-separated jobs to run (of {','.join(JOBS)})")
    ap.add_argument("--skip", default="", help="comma-separated jobs to leave out")
    ap.add_argument("--job-timeout", type=float, default=0, help="stop a job after this many seconds (0: never)")
    ap.add_argument("--mergekit-venv", default="/tmp/mergekit-venv")
    ap.add_argument("--json-out", help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoints (reused by a later run)")
    args = ap.parse_args()
    heads = args.heads or max(1, args.hidden // 128)
    only = {j for j in args.only.split(",") if j}
    skip = {j for j in args.skip.split(",") if j}
    unknown = (only | skip) - set(JOBS)
    if unknown:
        ap.error(f"unknown job(s) {', '.join(sorted(unknown))}; jobs: {', '.join(JOBS)}")
    wanted = [j for j in JOBS if (not only or j in only) and j not in skip]

    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    src, grow_src = work / "llama2-7b-shape", work / "growth-src"
    cfg = llama2_config(args.layers, args.hidden, heads, args.ffn, args.vocab)
    half = {"layers": args.layers // 2, "hidden": args.hidden // 2, "heads": heads // 2, "ffn": args.ffn // 2}
    half["kv_heads"] = half["heads"]
    target_args = [a for k, v in half.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    shard_bytes = int(args.shard_gb * GB)

    t = time.perf_counter()
    print(f"source checkpoint {src}:", flush=True)
    size = write_checkpoint(src, cfg, shard_bytes)
    grow_cfg = llama2_config(max(1, args.layers // 4), half["hidden"], half["heads"], half["ffn"], args.vocab)
    if "growth" in wanted:
        print(f"growth source {grow_src} ({grow_cfg['num_hidden_layers']} layers, hidden {half['hidden']}):")
        write_checkpoint(grow_src, grow_cfg, shard_bytes, seed=1)
    print(f"checkpoints ready in {time.perf_counter() - t:.1f} s")
    shards = sorted(src.glob("*.safetensors"))
    print(
        f"source: {size / GB:.2f} GB in {len(shards)} shards; {args.layers} layers, hidden {args.hidden}, "
        f"{heads} heads, ffn {args.ffn}, vocab {args.vocab}; shrink target {half}"
    )

    bench = Bench(work, args.job_timeout)
    results: dict = {"source_bytes": size, "source": cfg, "target": half, "jobs": {}, "notes": []}
    files, ranges, needed = [], [], 0
    if {"pread_floor", "select_first", "select_second"} & set(wanted):
        plan = plan_json(src, target_args, work / "logs" / "plan.log")
        files, ranges, needed = needed_ranges(src, plan)
        results["bytes_needed"] = needed
        results["page_bytes_needed"] = pages_touched(ranges)
        print(
            f"a select shrink reads {needed / GB:.3f} GB in {len(ranges)} contiguous runs (from graft plan --json), "
            f"in pages {results['page_bytes_needed'] / GB:.3f} GB"
        )
        flat = array.array("q", [x for r in ranges for x in r])
        (work / "ranges.bin").write_bytes(flat.tobytes())

    mergekit = (
        ensure_mergekit(Path(args.mergekit_venv), work / "logs" / "mergekit-install.log")
        if "mergekit" in wanted
        else None
    )
    if "mergekit" in wanted and mergekit is None:
        results["notes"].append("mergekit could not be installed: its comparison was skipped")
    kept = list(range(0, args.layers, 2))
    slice_args = ["--layers", str(len(kept)), "--layer-map", ",".join(map(str, kept))]
    (work / "mergekit.yml").write_text(mergekit_config(src, kept))
    mergekit_opts = []
    if mergekit is not None:
        helptext = subprocess.run([str(mergekit), "--help"], capture_output=True, text=True).stdout
        for opt in ("--no-copy-tokenizer", "--lazy-unpickle", "--quiet"):
            if opt in helptext:
                mergekit_opts.append(opt)
        if "--out-shard-size" in helptext:  # in parameters: as many bytes per shard as Graft's shards
            mergekit_opts += ["--out-shard-size", f"{max(1, shard_bytes // 2_000_000)}M"]

    out = work / "out"
    shard_size = f"{max(1, shard_bytes // 1_000_000)}MB"  # Graft's exports sharded like the source
    for r in range(args.rounds):
        bench.round = r
        caches = {name: Path(tempfile.mkdtemp(prefix=f"graft-cache-{name}-", dir=work)) for name in ("select", "misc")}

        def env(cache: Path) -> dict:
            return {"GRAFT_CACHE_DIR": str(cache)}

        def warm(cache: Path, source: Path) -> None:
            cmd = graft_cmd("inspect", str(source))
            subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env(cache)}, capture_output=True, check=True)

        def transfer(
            job: str, cache: Path, extra: list[str], source: Path = src, keep: bool = False, more_env=None
        ) -> None:
            if job in wanted:
                cmd = graft_cmd("transfer", str(source), *extra, "--max-shard-size", shard_size)
                cmd += ["--out", str(out / job), "--force"]
                bench.run(job, cmd, outputs=[out / job], env={**env(cache), **(more_env or {})}, keep_outputs=keep)

        # a second run's cache without its first run (--only / --skip): filled untimed by an inspect
        if "select_first" not in wanted and {"select_second", *SAMPLING} & set(wanted):
            warm(caches["select"], src)
        if "slice_first" not in wanted and "slice_second" in wanted:
            warm(caches["misc"], src)
        if "cp" in wanted:
            bench.run("cp", ["cp", "-r", str(src), str(out / "cp")], outputs=[out / "cp"])
        if "cat" in wanted:
            bench.run("cat", ["sh", "-c", 'cat "$@" > /dev/null', "cat", *map(str, shards)])
        if "pread_floor" in wanted:
            pread = [sys.executable, "-S", "-c", PREAD, "\n".join(map(str, files)), str(work / "ranges.bin")]
            bench.run("pread_floor", pread)
        transfer("select_first", caches["select"], target_args)
        transfer("select_second", caches["select"], target_args)
        for strategy in SAMPLING:
            transfer(strategy, caches["select"], [*target_args, "--strategy", strategy])
        # covariance as a CPU without fast bf16 products draws it: float32 products, through the library
        # core.devices.onednn_products picks here, then through torch's BLAS (MKL on x86)
        f32 = [*target_args, "--strategy", "covariance", "--param", "products=float32"]
        transfer("covariance_f32", caches["select"], f32)
        transfer("covariance_f32_blas", caches["select"], f32, more_env={"GRAFT_FLOAT32_GEMM": "blas"})
        if "growth" in wanted:
            grow_cache = Path(tempfile.mkdtemp(prefix="graft-cache-growth-", dir=work))
            # untimed: the growth source's shard hashes and NaN scan into the cache (as a second run's)
            warm(grow_cache, grow_src)
            grow = ["--layers", str(args.layers), "--hidden", str(args.hidden), "--heads", str(heads)]
            grow += ["--kv-heads", str(heads), "--ffn", str(args.ffn), "--strategy", "growth"]
            transfer("growth", grow_cache, grow, source=grow_src)
        if "inspect_first" in wanted or "inspect_second" in wanted:
            cache = Path(tempfile.mkdtemp(prefix="graft-cache-inspect-", dir=work))
            for job in ("inspect_first", "inspect_second"):
                if job in wanted:
                    bench.run(job, graft_cmd("inspect", str(src)), env=env(cache))
        if "stats" in wanted:
            cache = Path(tempfile.mkdtemp(prefix="graft-cache-stats-", dir=work))
            bench.run("stats", graft_cmd("stats", str(src), "--json"), env=env(cache))
        # the table as a CPU without fast bf16 products makes it, through oneDNN where Graft picks it, then the BLAS
        for job, gemm in (("stats_f32", "auto"), ("stats_f32_blas", "blas")):
            if job in wanted:
                cache = Path(tempfile.mkdtemp(prefix="graft-cache-stats-", dir=work))
                cmd = graft_cmd("stats", str(src), "--json", "--products", "float32")
                bench.run(job, cmd, env={**env(cache), "GRAFT_FLOAT32_GEMM": gemm})
        if "stats_products" in wanted:
            shapes = json.dumps([list(shape) for _, shape in tensors_for(cfg) if len(shape) == 2])
            bench.run("stats_products", [sys.executable, "-c", PRODUCTS, shapes])
        transfer("slice_first", caches["misc"], slice_args, keep=True)
        transfer("slice_second", caches["misc"], slice_args, keep=True)
        if mergekit is not None:
            cmd = [str(mergekit), str(work / "mergekit.yml"), str(out / "mergekit"), *mergekit_opts]
            stats = bench.run("mergekit", cmd, outputs=[out / "mergekit"], keep_outputs=True)
            graft_out = next((out / j for j in ("slice_second", "slice_first") if (out / j).is_dir()), None)
            if stats is not None and graft_out is not None and "slice_identical" not in results:
                same = dict(enumerate(kept))
                results["slice_identical"] = compare_outputs(graft_out, same, out / "mergekit", same)
                print(f"graft slice vs mergekit passthrough: {results['slice_identical']}")
        shutil.rmtree(out, ignore_errors=True)
        for cache in work.glob("graft-cache-*"):
            shutil.rmtree(cache, ignore_errors=True)

    report(bench, results, size, needed)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json_out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


#: the shrinks by a strategy other than select, each timed against select's second run
SAMPLING = ("mean_field", "distribution", "covariance", "templates")

#: job → (its baseline job, what the ratio means)
BASELINES = {
    "cp": (None, ""),
    "cat": ("cp", "× cp"),
    "pread_floor": ("cp", "× cp"),
    "select_first": ("cp", "× cp"),
    "select_second": ("pread_floor", "× pread floor"),
    "mean_field": ("select_second", "× select"),
    "distribution": ("select_second", "× select"),
    "covariance": ("select_second", "× select"),
    "covariance_f32": ("select_second", "× select"),
    "covariance_f32_blas": ("select_second", "× select"),
    "templates": ("select_second", "× select"),
    "growth": ("cp", "× cp (same bytes)"),
    "inspect_first": ("cat", "× cat"),
    "inspect_second": ("cat", "× cat"),
    "stats": ("cat", "× cat"),
    "stats_f32": ("cat", "× cat"),
    "stats_f32_blas": ("cat", "× cat"),
    "stats_products": ("cat", "× cat"),
    "slice_first": ("mergekit", "× mergekit"),
    "slice_second": ("mergekit", "× mergekit"),
    "mergekit": ("cp", "× cp"),
}


def report(bench: Bench, results: dict, size: int, needed: int) -> None:
    rows = []
    for job in JOBS:
        r = bench.median(job)
        if r is None:
            continue
        base_job, what = BASELINES[job]
        base = bench.median(base_job) if base_job else None
        ratio = None
        if base is not None:
            denominator = base["wall"]
            if job == "growth" and base["out_bytes"]:  # cp of as many bytes as the growth writes
                denominator *= r["out_bytes"] / base["out_bytes"]
            ratio = r["wall"] / denominator
        results["jobs"][job] = {**r, "ratio": ratio, "baseline": base_job, "runs": bench.runs[job]}
        rows.append((job, r, ratio, what))
    print()
    print(
        f"{'job':<19} {'wall s':>8} {'ratio':>24} {'GB read':>8} {'GB written':>10} {'GB rchar':>9} {'peak RSS MB':>11}"
    )
    for job, r, ratio, what in rows:
        shown = f"{ratio:.2f}{what}" if ratio is not None else "—"
        print(
            f"{job:<19} {r['wall']:8.2f} {shown:>24} {r['read_bytes'] / GB:8.3f} {r['write_bytes'] / GB:10.3f} "
            f"{r['rchar'] / GB:9.3f} {r['peak_rss'] / 1e6:11.0f}"
        )
    print(f"\nsource {size / GB:.3f} GB")
    if needed:
        pages = results["page_bytes_needed"]
        print(f"bytes a select shrink needs {needed / GB:.3f} GB; the pages holding them {pages / GB:.3f} GB")
    for job in ("pread_floor", "select_first", "select_second"):
        r = bench.median(job)
        if r is not None and needed:
            print(
                f"{job}: read {r['read_bytes'] / GB:.3f} GB from disk = {r['read_bytes'] / needed:.2f}× the bytes needed"
            )
            results["jobs"][job]["read_over_needed"] = r["read_bytes"] / needed
    stats, products = bench.median("stats"), bench.median("stats_products")
    if stats is not None and products is not None:
        ratio = stats["wall"] / products["wall"]
        results["stats_over_products"] = ratio
        print(f"stats table: {ratio:.2f}× its spectrum estimate's matrix products alone (nothing read)")
    if "slice_identical" in results:
        print(f"graft layer slice vs mergekit passthrough: {results['slice_identical']}")
    for note in results["notes"]:
        print(note)
    print("peak RSS is bounded below by the meter's own (~10 MB); wall includes flushing the job's outputs")


if __name__ == "__main__":
    main()
