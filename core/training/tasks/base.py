"""The task interface, its registry, and which task trains a model type.

A task is found by name in :data:`TASKS` (``get_task("masked_lm")``) or by model type through the
architecture spec (``task_for("bert")``: the bert family's ``task``). Its model is built by the
family's spec (:meth:`core.architectures.ArchitectureSpec.build_model`) as the task's
``model_class``, from the config the task fixes (``model_config``: ViT's ten digit classes).

Every batch is a pure function of (data, seed, step): arms and DDP ranks see the same batches.
A task's :meth:`Task.loss_module` wraps the model in an ``nn.Module`` whose ``forward(**batch)``
returns ``{"loss": mean, "count": n, "correct": k, "logits", "hidden"}``, so DistributedDataParallel
can wrap it; ``logits`` and ``hidden`` (final hidden states) are the tensors the loss was computed
from, at its positions (masked tokens, next-token positions, the [CLS] token), which a distillation
term (:mod:`core.training.teacher`) matches without a second forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import ArchitectureError, TrainingError
from core.registry import Registry
from core.training.config import ValidationConfig
from core.training.data import Split

#: Task name → the task; the modules below register theirs.
TASKS: Registry[Task] = Registry(
    "training task", TrainingError, modules=("core.training.tasks.language", "core.training.tasks.vision")
)


def get_task(name: str) -> Task:
    """The task registered as ``name``."""
    return TASKS.get(name)


def task_for(model_type: str) -> Task:
    """The task that trains a model of ``model_type`` (from its config.json): its family spec's ``task``."""
    from core.architectures import model_types, spec_for_model_type

    spec = spec_for_model_type(model_type)
    if spec is None:
        raise TrainingError(f"no validation task for model type {model_type!r}; supported: {', '.join(model_types())}")
    return TASKS.get(spec.task)


def family_of(config: dict):
    """The architecture spec of a config dict's ``model_type``."""
    from core.architectures import model_types, spec_for_model_type

    spec = spec_for_model_type(config.get("model_type"))
    if spec is None:
        raise TrainingError(
            f"model type {config.get('model_type')!r} is not supported; supported: {', '.join(model_types())}"
        )
    return spec


@dataclass
class TaskData:
    """Prepared examples: ``inputs`` rows (token ids or images), optional ``labels``, the split."""

    inputs: torch.Tensor
    labels: torch.Tensor | None
    split: Split
    extra: dict = field(default_factory=dict)


class _LossModule(nn.Module):
    """``forward(**batch) -> {"loss", "count", "correct"}`` around ``model`` (DDP-wrappable)."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, **batch):
        return self._fn(self.model, batch)


class Task:
    """Base of the tasks; subclasses set the class attributes and the batch/loss methods."""

    name: str = ""
    #: the transformers class trained (an Auto class is built with ``from_config``); None: the family's own.
    model_class: str | None = None
    data_kind: str = "text"  # "text" or "images"
    default_dataset: str = "pydoc"
    metric: str = "perplexity"  # "perplexity" or "accuracy"

    # -- model ---------------------------------------------------------------------------------
    def model_config(self, config: dict) -> dict:
        """The config the task's model is built from: the arm's, unless the task fixes part of it."""
        return config

    def hf_config(self, config: dict):
        """The transformers config object of the task's model, from a config dict (config.json's content)."""
        try:
            return family_of(config).hf_config(self.model_config(config))
        except ArchitectureError as exc:
            raise TrainingError(str(exc)) from exc

    def build_model(self, config: dict) -> nn.Module:
        """A freshly initialised model (the architecture's default init; seed set by the caller)."""
        try:
            spec = family_of(config)
            return spec.build_model(self.model_config(config), spec.task_class or self.model_class)
        except ArchitectureError as exc:
            raise TrainingError(str(exc)) from exc

    def loss_module(self, model: nn.Module) -> nn.Module:
        return _LossModule(model, self.compute)

    # -- data ----------------------------------------------------------------------------------
    def prepare(self, config: dict, options: ValidationConfig, tokenizer_dir: str | None) -> TaskData:
        raise NotImplementedError

    def batch(self, data: TaskData, step: int, options: ValidationConfig) -> dict[str, torch.Tensor]:
        """Training batch ``step`` (0-based) on the CPU."""
        raise NotImplementedError

    def eval_set(self, data: TaskData, options: ValidationConfig) -> list[dict[str, torch.Tensor]]:
        """The fixed evaluation batches (the same for every arm and every eval step)."""
        raise NotImplementedError

    def compute(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """``{"loss", "count", "correct", "logits", "hidden"}``: the loss and the tensors it was
        computed from, at the positions the loss uses (what distillation matches, no extra forward)."""
        raise NotImplementedError

    def outputs(self, model: nn.Module, batch: dict, *, logits: bool = True) -> dict[str, torch.Tensor | None]:
        """The final hidden states ``(N, H)`` or ``(B, T, H)`` and the logits at the loss's positions.

        ``logits=False`` may skip the output layer (a teacher matched on hidden states needs none);
        ``"logits"`` is then None.
        """
        raise TrainingError(
            f"task {self.name!r} does not expose its hidden states and logits, so it cannot be distilled"
        )

    def metric_value(self, loss: float, correct: float, count: float) -> float:
        if self.metric == "accuracy":
            return correct / max(count, 1)
        return math.exp(min(loss, 50.0))
