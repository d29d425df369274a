"""The training loop: one arm's optimizer, schedule, RNG and steps; ``train`` as a generator.

:class:`ArmRunner` holds everything one arm needs and advances it one optimizer step at a time,
so a validation job can interleave arms step by step (the GUI then draws every curve live and a
cancel leaves all arms at the same step). Each runner keeps its own RNG state (dropout), swapped
in around its step: interleaving does not change any arm's random stream, and an arm run alone
gives the same curve as the same arm interleaved with others.

Under ``torchrun`` (``torch.distributed`` initialised with world size > 1) the loss module is
wrapped in DistributedDataParallel and each rank trains on rows ``rank::world_size`` of every
batch; the logged train loss is the mean over ranks, so every rank logs the same number.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.errors import TrainingError
from core.training.config import ValidationConfig
from core.training.data import batch_digest


@dataclass
class StepMetrics:
    """One arm after one step. ``step`` 0 is the evaluation before any update (no train loss)."""

    arm: str
    step: int
    train_loss: float | None
    lr: float
    eval_loss: float | None = None
    eval_metric: float | None = None  # perplexity (LMs) or accuracy (classification)
    metric_name: str = ""
    batch_hash: str = ""
    elapsed_s: float = 0.0
    distill_loss: float | None = None  # the distillation term (unweighted) when the arm has a teacher

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda, else mps, else cpu; anything else as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise TrainingError(f"device {name!r} is not understood; use auto, cpu, cuda, cuda:N or mps") from exc


def select_trainable(model: nn.Module, pattern: str | None) -> int:
    """Freeze every parameter whose name does not match ``pattern``; returns the trainable count.

    ``pattern``: comma-separated globs (``*scaler*,*.bias``) or ``re:`` + a regular expression
    (searched). ``None`` trains everything.
    """
    params = dict(model.named_parameters())
    if pattern:
        if pattern.startswith("re:"):
            try:
                regex = re.compile(pattern[3:])
            except re.error as exc:
                raise TrainingError(f"param_filter regex is invalid: {exc}") from exc
            keep = {n for n in params if regex.search(n)}
        else:
            globs = [g.strip() for g in pattern.split(",") if g.strip()]
            keep = {n for n in params if any(fnmatch.fnmatchcase(n, g) for g in globs)}
        if not keep:
            raise TrainingError(
                f"param_filter {pattern!r} matches no parameter; names look like {next(iter(params), '?')!r}"
            )
        for name, p in params.items():
            p.requires_grad_(name in keep)
    return sum(p.numel() for p in params.values() if p.requires_grad)


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ArmRunner:
    """One arm in training: model, optimizer, schedule, RNG state; :meth:`step` and :meth:`evaluate`.

    Args:
        name: the arm's name in metrics and reports.
        model: the initialised model (any device; moved to ``device``).
        task: the :class:`~core.training.tasks.Task` that knows batches and the loss.
        config: the run's options.
        device: where to train (defaults to ``resolve_device(config.device)``).
    """

    def __init__(
        self, name: str, model: nn.Module, task, config: ValidationConfig, device: torch.device | None = None
    ) -> None:
        self.name = name
        self.task = task
        self.config = config
        self.device = device or resolve_device(config.device)
        self.rank, self.world = _world()
        self.model = model.to(self.device)
        self.trainable = select_trainable(self.model, config.param_filter)
        self.module = task.loss_module(self.model)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.module, device_ids=ids)
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr_at(0), **fused)
        self.params = decay + no_decay
        self.autocast = self.device.type == "cuda" and config.bf16
        gen = torch.Generator().manual_seed(config.seed)
        self._rng = gen.get_state()  # this arm's dropout stream, swapped in around each step
        self._cuda_rng = None
        self.step_count = 0
        self.elapsed = 0.0

    @contextlib.contextmanager
    def _own_rng(self):
        outer = torch.get_rng_state()
        outer_cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        torch.set_rng_state(self._rng)
        if outer_cuda is not None:
            if self._cuda_rng is None:
                torch.cuda.manual_seed(self.config.seed)
            else:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
        try:
            yield
        finally:
            self._rng = torch.get_rng_state()
            torch.set_rng_state(outer)
            if outer_cuda is not None:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(outer_cuda, self.device)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()}

    def _shard(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.world == 1:
            return batch
        return {k: v[self.rank :: self.world] for k, v in batch.items()}

    def _autocast(self):
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(
        self, batch: dict[str, torch.Tensor], digest: str = "", distill: Callable[[dict], torch.Tensor] | None = None
    ) -> StepMetrics:
        """One optimizer step on ``batch`` (the whole batch; this rank takes its shard).

        Args:
            distill: ``distill(outputs) -> term`` (the task's compute dict → a scalar); the step
                then minimises ``loss + teacher_weight · term``. The logged ``train_loss`` stays
                the task loss; the term goes to ``distill_loss``.
        """
        start = time.perf_counter()
        lr = self.config.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with self._own_rng():
            with self._autocast():
                out = self.module(**self._to_device(self._shard(batch)))
            loss = out["loss"]
            term = distill(out) if distill is not None else None
            total = loss if term is None else loss + self.config.teacher_weight * term
            if not torch.isfinite(total):
                raise TrainingError(
                    f"arm {self.name}: the loss became {total.item()} at step {self.step_count + 1}; lower the learning rate"
                )
            total.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.detach() if term is None else torch.stack([loss.detach().float(), term.detach().float()])
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(value)
            value = value / self.world
        self.step_count += 1
        self.elapsed += time.perf_counter() - start
        train_loss, term_value = (float(value), None) if term is None else (float(value[0]), float(value[1]))
        return StepMetrics(
            self.name,
            self.step_count,
            train_loss,
            lr,
            batch_hash=digest,
            elapsed_s=self.elapsed,
            distill_loss=term_value,
        )

    @torch.no_grad()
    def evaluate(self, batches: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
        """Token/example-weighted eval loss and the task's metric over the fixed eval batches."""
        self.model.eval()
        total = count = correct = 0.0
        for batch in batches:
            with self._autocast():
                out = self.task.compute(self.model, self._to_device(batch))
            n = float(out["count"])
            total += float(out["loss"]) * n
            count += n
            correct += float(out["correct"])
        self.model.train()
        loss = total / max(count, 1.0)
        return loss, self.task.metric_value(loss, correct, count)

    def eval_metrics(self, batches, digest: str = "", train_loss: float | None = None) -> StepMetrics:
        loss, metric = self.evaluate(batches)
        return StepMetrics(
            self.name,
            self.step_count,
            train_loss,
            self.config.lr_at(max(self.step_count - 1, 0)),
            loss,
            metric,
            self.task.metric,
            digest,
            self.elapsed,
        )


def train(
    name: str, model: nn.Module, task, data, config: ValidationConfig, *, device: torch.device | None = None
) -> Iterator[StepMetrics]:
    """Train one arm; yields a :class:`StepMetrics` per step (step 0: the initial evaluation).

    Eval steps (``config.eval_steps()``) carry ``eval_loss`` and ``eval_metric``. Cancel by not
    asking for the next item (or ``close()`` the generator).

    Args:
        name: the arm's name.
        model: an initialised model (see :func:`core.training.arms.build_arm_model`).
        task: its task; ``data``: ``task.prepare(...)``'s result.
        config: the options.
    """
    runner = ArmRunner(name, model, task, config, device)
    eval_batches = task.eval_set(data, config)
    eval_at = set(config.eval_steps())
    yield runner.eval_metrics(eval_batches)
    for step in range(config.steps):
        batch = task.batch(data, step, config)
        metrics = runner.step(batch, batch_digest(batch))
        if metrics.step in eval_at:
            loss, metric = runner.evaluate(eval_batches)
            metrics.eval_loss, metrics.eval_metric, metrics.metric_name = loss, metric, task.metric
        yield metrics
