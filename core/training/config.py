"""The options of a validation run: one frozen dataclass, from which CLI flags and forms derive.

Every field is a :func:`core.params.param` carrying ``help`` (and ``min``, ``max``, ``choices``
where it has them), so the checks, the CLI flags (``core.params.add_arguments``) and the GUI form
are generated from this one declaration; a bad value is one sentence naming the recipe key, e.g.
"validation.steps must be ≥ 1, not 0".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.errors import TrainingError
from core.params import check, param

SCHEDULES = ("cosine", "linear", "constant")
HEAD_INITS = ("auto", "random")


@dataclass(frozen=True)
class ValidationConfig:
    """Options of a short A/B validation run. Defaults finish on the demo model in minutes on a CPU.

    Schedule: AdamW; the learning rate rises linearly from 0 to ``lr`` over ``warmup`` steps, then
    decays to ``min_lr_ratio * lr`` at ``steps`` (cosine by default, or linearly). Weight decay
    applies to matrices only (ndim ≥ 2), never to biases and norm vectors. Gradients are clipped
    to a global L2 norm of ``grad_clip`` (0 disables clipping).
    """

    steps: int = param(200, help="optimizer steps per arm", min=1)
    batch_size: int = param(16, help="sequences (or images) per step", min=1)
    seq_len: int = param(128, help="tokens per sequence (language models)", min=8)
    lr: float = param(5e-4, help="peak learning rate of AdamW", min=0.0)
    warmup: int = param(30, help="linear warm-up steps", min=0)
    schedule: str = param("cosine", help="decay after warm-up: cosine, linear or constant", choices=SCHEDULES)
    min_lr_ratio: float = param(0.1, help="final learning rate as a fraction of lr", min=0.0)
    weight_decay: float = param(0.01, help="AdamW weight decay on matrices", min=0.0)
    grad_clip: float = param(1.0, help="clip the global gradient norm to this (0: off)", min=0.0)
    eval_every: int = param(25, help="evaluate every N steps (and at step 0 and the last step)", min=1)
    eval_batches: int = param(4, help="batches in the fixed evaluation set", min=1)
    device: str = param("auto", help="auto (cuda, mps, cpu), cuda, cuda:1, mps or cpu")
    bf16: bool = param(True, help="bf16 autocast on CUDA (ignored elsewhere)")
    seed: int = param(0, help="seed of the init, data split, batch order, masks and dropout")
    param_filter: str | None = param(
        None,
        help="train only parameters whose names match: globs separated by commas, or 're:' + a regex",
    )
    dataset: str | None = param(None, help="registered data set name or a path (default: pydoc or digits)")
    mlm_probability: float = param(0.15, help="fraction of tokens masked for masked LM", min=0.0, max=1.0)
    eval_fraction: float = param(0.1, help="fraction of the data held out for evaluation", min=0.0, max=0.9)
    head_init: str = param(
        "auto",
        help="a task head the arm lacks (the demo's MLM head): auto (tied to the "
        "embeddings, identity transform, the body's final norm, scale and unigram bias fitted on "
        "training batches) or random (the architecture's default draw)",
        choices=HEAD_INITS,
    )
    teacher_weight: float = param(1.0, help="with a teacher: loss = task loss + this × distillation term", min=0.0)
    teacher_temperature: float = param(
        2.0, help="with a teacher matched on logits: softmax temperature T of the KL term (scaled by T²)", min=0.01
    )

    def __post_init__(self) -> None:
        check(self, owner="validation", error=TrainingError)

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
