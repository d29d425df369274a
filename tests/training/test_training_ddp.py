"""The same entry point under torchrun: two CPU processes (gloo) train in step."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_stay_identical(tiny_export, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "core.training.ddp",
        "--export",
        str(tiny_export),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--eval-every",
        "3",
        "--eval-batches",
        "1",
        "--warmup",
        "0",
        "--lr",
        "0.002",
    ]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ddp = json.loads((out / "ddp.json").read_text())
    assert ddp["world_size"] == 2 and ddp["parameters_identical"] is True
    rank0, rank1 = ddp["ranks"]
    assert rank0["train"] == rank1["train"]  # the logged loss is the mean over ranks
    # the weights moved (so "identical" means the replicas synchronised, not that nothing ran)
    from core.training import Arm, build_arm_model, task_for
    from core.training.ddp import parameter_digest

    arm = Arm.from_export(tiny_export)
    start, _ = build_arm_model(task_for("bert"), arm, seed=0)
    assert parameter_digest(start) != rank0["digests"][arm.name]
    report = json.loads((out / "validation.json").read_text())
    assert report["status"] == "complete" and report["world_size"] == 2
    assert [len(r) for r in report["records"].values()] == [4, 4]
