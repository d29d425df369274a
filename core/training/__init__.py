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

from core.training.arms import BASELINE, Arm, build_arm_model, load_tensors
from core.training.config import ValidationConfig
from core.training.data import batch_digest, dataset_names, register_dataset
from core.training.loop import ArmRunner, StepMetrics, resolve_device, train
from core.training.report import ValidationReport
from core.training.save import SaveTrained
from core.training.session import ValidationSession, run_validation, validation_steps
from core.training.tasks import TASKS, Task, get_task, task_for
from core.training.teacher import Teacher
from core.training.verdict import Verdict, compute_verdicts

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
