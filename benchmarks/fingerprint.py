"""Not a speed benchmark: the bytes every kind of recipe produces, to prove a refactor changes none.

Builds tiny checkpoints of every family (transformers config classes, fixed seeds) plus a generic
MLP, runs ``graft transfer`` (the CLI, in child processes, so the check does not depend on any
internal API) for every strategy, index strategy and layer map on them and on the demo model, and
prints one SHA-256 per exported file. Run it before and after a change and diff the outputs::

    .venv/bin/python benchmarks/fingerprint.py --out /tmp/fp-before.json
    # … change the code …
    .venv/bin/python benchmarks/fingerprint.py --out /tmp/fp-after.json --compare /tmp/fp-before.json

The recipe's ``graft_version`` field and the model card's version line are the only bytes
expected to differ between versions; they are blanked before hashing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMALL = ["--layers", "1", "--hidden", "16", "--heads", "2", "--ffn", "32"]
GROW = ["--layers", "3", "--hidden", "48", "--heads", "6", "--ffn", "96"]

#: (name, source key, extra flags)
CASES = [
    *[
        (f"{fam}-{strategy}", fam, [*SMALL, "--strategy", strategy])
        for fam in ("bert", "llama", "qwen2", "gpt2", "vit")
        for strategy in ("select", "mean_field", "distribution", "covariance", "baseline", "templates")
    ],
    *[(f"{fam}-mimetic", fam, [*SMALL, "--role", "attn=mimetic"]) for fam in ("bert", "llama", "gpt2")],
    *[(f"{fam}-growth", fam, [*GROW, "--strategy", "growth"]) for fam in ("bert", "llama", "qwen2", "gpt2", "vit")],
    *[
        (f"llama-index-{index}", "llama", [*SMALL, "--index", index])
        for index in ("first_n", "uniform", "random", "iid", "cyclic", "by_norm")
    ],
    ("llama-layers-uniform", "llama", [*SMALL, "--layer-map", "last_n"]),
    ("llama-grow-iid", "llama", [*GROW, "--strategy", "mean_field", "--index", "iid"]),
    ("llama-bf16", "llama", [*SMALL, "--dtype", "bfloat16"]),
    ("llama-seed7", "llama", [*SMALL, "--strategy", "distribution", "--seed", "7"]),
    ("roberta-select", "roberta", [*SMALL]),
    ("mlp-select", "mlp", ["--hidden", "8"]),
    ("mlp-mean_field", "mlp", ["--hidden", "24", "--strategy", "mean_field", "--index", "iid"]),
    ("mlp-growth", "mlp", ["--hidden", "24", "--strategy", "growth"]),
    ("demo-select", "demo", ["--layers", "2", "--hidden", "128", "--heads", "4", "--ffn", "512"]),
    (
        "demo-by_activation",
        "demo",
        [
            "--layers",
            "2",
            "--hidden",
            "128",
            "--heads",
            "4",
            "--ffn",
            "512",
            "--index",
            "by_activation",
            "--layer-map",
            "by_influence",
        ],
    ),
    (
        "demo-templates",
        "demo",
        ["--layers", "2", "--hidden", "128", "--heads", "4", "--ffn", "512", "--strategy", "templates"],
    ),
]

VERSION_LINE = re.compile(rb"(graft[ _-]?version[\"']?\s*[:=]\s*)[\"']?[0-9][^\"'\s,]*[\"']?", re.I)


def build_sources(folder: Path) -> dict[str, str]:
    """Tiny checkpoints of every family and a generic MLP, each from a fixed seed."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from safetensors.torch import save_file
    from tiny_models import build_tiny

    out = {}
    for fam in ("bert", "roberta", "llama", "qwen2", "gpt2", "vit"):
        build_tiny(fam, folder / fam, seed=3)
        out[fam] = str(folder / fam)
    torch.manual_seed(5)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
    )
    path = folder / "mlp.safetensors"
    save_file(
        {k: v.contiguous() for k, v in mlp.state_dict().items()},
        str(path),
        metadata={"graft.mlp.activation": "relu", "graft.mlp.widths": "[12, 16, 16, 4]"},
    )
    out["mlp"] = str(path)
    out["demo"] = "demo"
    return out


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, with the version stamps blanked."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix in (".json", ".md"):
            data = VERSION_LINE.sub(rb"\1<version>", data)
        hashes[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the fingerprints (JSON)")
    parser.add_argument("--compare", help="an earlier fingerprint file: print every difference, exit 1 if any")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument(
        "--work",
        default=str(Path(tempfile.gettempdir()) / "graft-fingerprint"),
        help="scratch folder, emptied first (the same path on both runs: recipes record it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (to diff two runs' files)")
    args = parser.parse_args()
    # The CLI of THIS checkout (not whatever an editable install points at): run it from ROOT.
    graft = [sys.executable, "-m", "app.cli"]
    results: dict[str, dict] = {}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    tmp = Path(args.work)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        env["GRAFT_CACHE_DIR"] = str(tmp / "cache")
        sources = build_sources(tmp / "src")
        for name, key, flags in CASES:
            if args.only and args.only not in name:
                continue
            out = tmp / "out" / name
            start = time.perf_counter()
            proc = subprocess.run(
                [*graft, "transfer", sources[key], *flags, "--out", str(out)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
            )
            took = time.perf_counter() - start
            if proc.returncode != 0:
                results[name] = {"exit": proc.returncode, "stderr": proc.stderr.strip().splitlines()[-1:]}
            else:
                results[name] = {"exit": 0, "files": digest(out)}
            print(f"{name:<28} exit {proc.returncode}  {took:5.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    diffs = 0
    for name in sorted(set(before) | set(results)):
        if args.only and args.only not in name:
            continue
        if before.get(name) != results.get(name):
            diffs += 1
            print(f"DIFFERENT: {name}\n  before {before.get(name)}\n  after  {results.get(name)}")
    print(f"{len(results)} cases, {diffs} different")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
