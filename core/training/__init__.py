"""Short validation training: transferred starts against the baseline, same data, seeds, schedule.

Public API::

    from core.training import Arm, ValidationConfig, run_validation
    report = run_validation([Arm.from_export("out/small"), Arm.baseline(cfg)], config=ValidationConfig(steps=300))
    report.verdicts["small"].speedup

Modules: ``config`` (options), ``data`` (data sets, packing, seeded split), ``tasks`` (what each
family trains on: language, vision), ``arms`` (initial states), ``loop`` (one arm's steps; ``train``
generator), ``session`` (interleaved arms, ``run_validation``), ``teacher`` (distillation from the
source), ``save`` (the trained weights as checkpoints), ``verdict``, ``report``, ``ddp`` (the
torchrun entry point).
"""

import importlib

#: public name → the submodule that defines it: imported on first use (PEP 562), so importing one
#: light submodule (``core.training.verdict`` for a leaderboard's words) does not import torch.
_EXPORTS = {
    "BASELINE": "arms",
    "Arm": "arms",
    "build_arm_model": "arms",
    "load_tensors": "arms",
    "ValidationConfig": "config",
    "batch_digest": "data",
    "dataset_names": "data",
    "register_dataset": "data",
    "ArmRunner": "loop",
    "StepMetrics": "loop",
    "resolve_device": "loop",
    "train": "loop",
    "ValidationReport": "report",
    "SaveTrained": "save",
    "ValidationSession": "session",
    "run_validation": "session",
    "validation_steps": "session",
    "TASKS": "tasks",
    "Task": "tasks",
    "get_task": "tasks",
    "task_for": "tasks",
    "Teacher": "teacher",
    "Verdict": "verdict",
    "compute_verdicts": "verdict",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.training.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BASELINE",
    "TASKS",
    "Arm",
    "ArmRunner",
    "SaveTrained",
    "StepMetrics",
    "Task",
    "Teacher",
    "ValidationConfig",
    "ValidationReport",
    "ValidationSession",
    "Verdict",
    "batch_digest",
    "build_arm_model",
    "compute_verdicts",
    "dataset_names",
    "get_task",
    "load_tensors",
    "register_dataset",
    "resolve_device",
    "run_validation",
    "task_for",
    "train",
    "validation_steps",
]
