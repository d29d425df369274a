"""Validation training across processes and machines: the torchrun entry point.

    torchrun --nproc_per_node 2 --standalone -m core.training.ddp --export out/small --steps 300 --out out/val
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m core.training.ddp ...

Every rank builds the same arms from the same seed, the loop wraps each arm's loss module in
DistributedDataParallel (gloo on CPU, nccl on CUDA) and each rank trains on rows ``rank::world``
of every batch (so the global batch stays ``--batch-size``). Rank 0 writes the report; every
rank's parameter digests are gathered into ``ddp.json`` so a run can prove the replicas stayed
identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from core.params import add_arguments, from_args
from core.training.arms import Arm
from core.training.config import ValidationConfig
from core.training.report import ValidationReport
from core.training.session import ValidationSession


def parameter_digest(model: torch.nn.Module) -> str:
    """A hash of every parameter's name and bytes (same digest ⇔ same weights)."""
    digest = hashlib.blake2b(digest_size=12)
    for name, p in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join the process group torchrun describes; returns ``(rank, world_size, device)``."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    use_cuda = device != "cpu" and torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.training.ddp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", action="append", required=True, help="export folder (an arm); repeat for more")
    parser.add_argument("--no-baseline", action="store_true", help="do not add the baseline arm")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the first export's)")
    parser.add_argument("--out", required=True, help="run folder for the report")
    add_arguments(parser, ValidationConfig)
    args = parser.parse_args(argv)
    config = from_args(ValidationConfig, args)
    rank, world, device = init_distributed(
        config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    config = config.with_(device=device)
    try:
        arms = [Arm.from_export(path) for path in args.export]
        if not args.no_baseline:
            arms.append(Arm.baseline(arms[0].config))
        session = ValidationSession(arms, None, config, tokenizer=args.tokenizer)
        for _ in session.steps():
            pass
        report: ValidationReport = session.report()
        digests = {r.name: parameter_digest(r.model) for r in session.runners}
        curves = report.train_curves()
        gathered: list = [None] * world
        if world > 1:
            dist.all_gather_object(gathered, {"rank": rank, "digests": digests, "train": curves})
        else:
            gathered = [{"rank": 0, "digests": digests, "train": curves}]
        if rank == 0:
            out = Path(args.out)
            report.write(out)
            agree = all(g["digests"] == gathered[0]["digests"] for g in gathered)
            (out / "ddp.json").write_text(
                json.dumps({"world_size": world, "parameters_identical": agree, "ranks": gathered}, indent=1)
            )
            print(report.summary())
            print(f"ddp: world size {world}, parameters identical across ranks: {agree}")
    finally:
        if world > 1:
            dist.barrier()
            dist.destroy_process_group()
    return 0


def _exit_past_teardown(code: int) -> None:
    """Leave a torchrun worker without the interpreter's teardown: its work is done and written,
    and the process group destroyed, but Gloo's C++ threads can still be torn down after Python's
    (a rank then aborts with "terminate called without an active exception", and torchrun fails
    the whole run: seen once in CI here; pytorch/pytorch#179291 describes the race)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    status = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _exit_past_teardown(status)
    sys.exit(status)
