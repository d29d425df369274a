"""The options of a validation run: one frozen dataclass, from which CLI flags and forms derive.

Every field carries ``help`` (and ``min`` where it has a bound) in its metadata, so the CLI
(:func:`add_arguments`) and the GUI form are generated from this one declaration.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, dataclass, field, fields, replace

from core.errors import TrainingError

SCHEDULES = ("cosine", "linear", "constant")
HEAD_INITS = ("auto", "random")


_KINDS = {"int": int, "float": float, "str": str, "bool": bool}
_KIND_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _is_a(value, kind: type) -> bool:
    """JSON-typed check: an int is a float, but a bool is neither an int nor a float."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _opt(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class ValidationConfig:
    """Options of a short A/B validation run. Defaults finish on the demo model in minutes on a CPU.

    Schedule: AdamW; the learning rate rises linearly from 0 to ``lr`` over ``warmup`` steps, then
    decays to ``min_lr_ratio * lr`` at ``steps`` (cosine by default, or linearly). Weight decay
    applies to matrices only (ndim ≥ 2), never to biases and norm vectors. Gradients are clipped
    to a global L2 norm of ``grad_clip`` (0 disables clipping).
    """

    steps: int = _opt(200, "optimizer steps per arm", min=1)
    batch_size: int = _opt(16, "sequences (or images) per step", min=1)
    seq_len: int = _opt(128, "tokens per sequence (language models)", min=8)
    lr: float = _opt(5e-4, "peak learning rate of AdamW", min=0.0)
    warmup: int = _opt(30, "linear warm-up steps", min=0)
    schedule: str = _opt("cosine", "decay after warm-up: cosine, linear or constant", choices=SCHEDULES)
    min_lr_ratio: float = _opt(0.1, "final learning rate as a fraction of lr", min=0.0)
    weight_decay: float = _opt(0.01, "AdamW weight decay on matrices", min=0.0)
    grad_clip: float = _opt(1.0, "clip the global gradient norm to this (0: off)", min=0.0)
    eval_every: int = _opt(25, "evaluate every N steps (and at step 0 and the last step)", min=1)
    eval_batches: int = _opt(4, "batches in the fixed evaluation set", min=1)
    device: str = _opt("auto", "auto (cuda, mps, cpu), cuda, cuda:1, mps or cpu")
    bf16: bool = _opt(True, "bf16 autocast on CUDA (ignored elsewhere)")
    seed: int = _opt(0, "seed of the init, data split, batch order, masks and dropout")
    param_filter: str | None = _opt(
        None,
        "train only parameters whose names match: globs separated by commas, or 're:' + a regex",
    )
    dataset: str | None = _opt(None, "registered data set name or a path (default: pydoc or digits)")
    mlm_probability: float = _opt(0.15, "fraction of tokens masked for masked LM", min=0.0, max=1.0)
    eval_fraction: float = _opt(0.1, "fraction of the data held out for evaluation", min=0.0, max=0.9)
    head_init: str = _opt("auto", "a task head the arm lacks (the demo's MLM head): auto (tied to the embeddings, "
                          "identity transform, the body's final norm, scale and unigram bias fitted on training "
                          "batches) or random (the architecture's default draw)", choices=HEAD_INITS)
    teacher_weight: float = _opt(1.0, "with a teacher: loss = task loss + this × distillation term", min=0.0)
    teacher_temperature: float = _opt(2.0, "with a teacher matched on logits: softmax temperature T of the "
                                      "KL term (scaled by T²)", min=0.01)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if value is None:
                continue
            kind = _KINDS.get(str(f.type).split(" |")[0])
            if kind is not None and not _is_a(value, kind):
                raise TrainingError(f"validation option {f.name} must be {_KIND_NAMES[kind]}, not {value!r}; change it")
            if isinstance(value, (str, bool)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingError(f"validation option {f.name} must be a finite number, not {value}; change it")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise TrainingError(f"{f.name}={value} is out of range [{lo}, {hi}]; change it")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"schedule {self.schedule!r} is unknown; use one of {', '.join(SCHEDULES)}")
        if self.head_init not in HEAD_INITS:
            raise TrainingError(f"head_init {self.head_init!r} is unknown; use one of {', '.join(HEAD_INITS)}")

    def eval_steps(self) -> list[int]:
        """Steps after which the arms are evaluated: 0, every ``eval_every``, and the last."""
        return sorted({0, self.steps, *range(self.eval_every, self.steps + 1, self.eval_every)})

    def lr_at(self, step: int) -> float:
        """Learning rate used for optimizer step ``step`` (0-based)."""
        import math

        if step < self.warmup:
            return self.lr * (step + 1) / (self.warmup + 1)
        if self.schedule == "constant":
            return self.lr
        span = max(1, self.steps - self.warmup)
        t = min(1.0, (step - self.warmup) / span)
        shape = 0.5 * (1 + math.cos(math.pi * t)) if self.schedule == "cosine" else 1 - t
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * shape)

    def with_(self, **changes) -> ValidationConfig:
        """A copy with ``changes`` (``None`` values are ignored, handy for CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add one ``--flag`` per field (default None = keep the dataclass default)."""
    for f in fields(ValidationConfig):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{f.metadata['help']} (default {default})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(flag, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text)


def config_from_args(args: argparse.Namespace, base: ValidationConfig | None = None) -> ValidationConfig:
    """The config given by flags added with :func:`add_arguments`."""
    base = base or ValidationConfig()
    return base.with_(**{f.name: getattr(args, f.name, None) for f in fields(ValidationConfig)})
