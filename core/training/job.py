"""The validation job: arms trained side by side on the same batches, with a report and a verdict.

Arms are **interleaved step by step**: step k of every arm runs before step k+1 of any arm, on the
one batch ``task.batch(data, k)`` built once per step. The GUI draws every curve live, and a
cancel leaves all arms at the same step. The cost: all arms sit in memory together (three copies
of a small model plus AdamW state — fine for validation-sized targets).

Two ways in:

- :class:`ValidationSession` ``.steps()``: a generator of :class:`StepMetrics` (stop asking to
  cancel; ``.report()`` then holds the completed steps);
- :func:`run_validation`: the job form (progress callback, cancel token, files written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from core.errors import TrainingError
from core.jobs import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.training.arms import Arm, build_arm_model
from core.training.config import ValidationConfig
from core.training.data import batch_digest
from core.training.loop import ArmRunner, StepMetrics, _world, resolve_device
from core.training.report import ValidationReport
from core.training.tasks import Task, get_task, task_for

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")


def find_tokenizer(arms: Sequence[Arm]) -> Path | None:
    """The first arm folder holding tokenizer files (export folders copy the source's)."""
    for arm in arms:
        if arm.path is not None and any((arm.path / n).is_file() for n in TOKENIZER_FILES):
            return arm.path
    return None


class ValidationSession:
    """Prepared data and one :class:`ArmRunner` per arm; :meth:`steps` trains them interleaved.

    Args:
        arms: the arms; names must be unique, every arm must have the same model type.
        task: a task name or object; default: the task of the arms' model type.
        config: the options (default :class:`ValidationConfig`).
        tokenizer: folder of the tokenizer for language models (default: an arm's folder).
    """

    def __init__(self, arms: Sequence[Arm], task: str | Task | None = None, config: ValidationConfig | None = None, *, tokenizer: str | Path | None = None) -> None:
        if not arms:
            raise TrainingError("a validation run needs at least one arm")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise TrainingError(f"arm names must be unique, got {names}")
        types = {a.model_type for a in arms}
        if len(types) != 1:
            raise TrainingError(f"all arms must share one architecture, got model types {sorted(types)}")
        self.config = config or ValidationConfig()
        self.task = task if isinstance(task, Task) else get_task(task) if task else task_for(types.pop())
        self.arms = list(arms)
        base = [a for a in arms if a.is_baseline]
        self.baseline = base[0].name if base else None
        tokenizer = tokenizer or find_tokenizer(arms)
        reference = base[0] if base else arms[0]
        self.data = self.task.prepare(reference.config, self.config, str(tokenizer) if tokenizer else None)
        n_train = len(self.data.split.train_index)
        if self.config.batch_size > n_train:
            raise TrainingError(f"batch size {self.config.batch_size} is larger than the {n_train} training examples "
                                f"of the data set; choose --batch-size {n_train} or less, or give more data (--dataset)")
        self.eval_batches = self.task.eval_set(self.data, self.config)
        self.device = resolve_device(self.config.device)
        self.runners: list[ArmRunner] = []
        arm_info: dict[str, dict] = {}
        for arm in arms:
            model, load = build_arm_model(self.task, arm, self.config.seed)
            runner = ArmRunner(arm.name, model, self.task, self.config, self.device)
            self.runners.append(runner)
            arm_info[arm.name] = {"description": arm.description, "trainable": runner.trainable, "load": load.to_dict()}
        _, world = _world()
        self._report = ValidationReport(
            task=self.task.name, metric=self.task.metric, config=asdict(self.config), arms=arm_info,
            baseline=self.baseline, records={a.name: [] for a in arms}, device=str(self.device), world_size=world,
        )
        self._started = time.perf_counter()

    def steps(self) -> Iterator[StepMetrics]:
        """Yield each arm's metrics as it happens: step 0 (evaluation) for all, then step 1, …

        The report gains a step only once every arm has completed it.
        """
        eval_at = set(self.config.eval_steps())
        round_: list[StepMetrics] = []
        for runner in self.runners:
            metrics = runner.eval_metrics(self.eval_batches)
            round_.append(metrics)
            yield metrics
        self._commit(round_)
        for step in range(self.config.steps):
            batch = self.task.batch(self.data, step, self.config)
            digest = batch_digest(batch)
            round_ = []
            for runner in self.runners:
                metrics = runner.step(batch, digest)
                if metrics.step in eval_at:
                    loss, metric = runner.evaluate(self.eval_batches)
                    metrics.eval_loss, metrics.eval_metric, metrics.metric_name = loss, metric, self.task.metric
                round_.append(metrics)
                yield metrics
            self._commit(round_)
        self._report.status = "complete"

    def _commit(self, round_: list[StepMetrics]) -> None:
        for metrics in round_:
            self._report.records[metrics.arm].append(metrics)
        self._report.elapsed_s = time.perf_counter() - self._started

    def report(self) -> ValidationReport:
        """The results so far (only steps every arm completed)."""
        return self._report


def validation_steps(
    arms: Sequence[Arm],
    config: ValidationConfig | None = None,
    *,
    tokenizer: str | Path | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Iterator[StepMetrics]:
    """A generator over every arm-step's metrics (live curves); its return value is the report.

    The job form of a session (what the app runs, in a child process through
    :func:`core.process.run_in_child`). Cancel raises :class:`~core.errors.Cancelled` within one
    arm-step.
    """
    progress(-1.0, "preparing data and models")
    cancel.check()
    session = ValidationSession(arms, config=config, tokenizer=tokenizer)
    total = (session.config.steps + 1) * len(session.runners)
    for done, metrics in enumerate(session.steps(), start=1):
        cancel.check()
        progress(done / total, f"{metrics.arm} step {metrics.step}/{session.config.steps}")
        yield metrics
    return session.report()


def run_validation(
    arms: Sequence[Arm],
    task: str | Task | None = None,
    config: ValidationConfig | None = None,
    *,
    tokenizer: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    on_step: Callable[[StepMetrics], None] | None = None,
) -> ValidationReport:
    """Train every arm on the same batches and return the report (also written to ``out_dir``).

    Cancel is checked after every arm-step (so within one step); a cancelled run returns its
    partial report with ``status == "cancelled"`` (files written too) instead of raising.
    Under torchrun only rank 0 writes files.

    Args:
        arms: the arms (see :class:`~core.training.arms.Arm`); include ``Arm.baseline(config)``
            to get verdicts.
        task: task name or object; default from the arms' model type.
        config: the options.
        tokenizer: tokenizer folder for language models (default: an arm's export folder).
        out_dir: where ``validation.json`` and the CSVs go (rewritten at every eval step).
        progress: ``progress(fraction, message)``.
        cancel: cooperative cancel token.
        on_step: called with every :class:`StepMetrics` (live curves).
    """
    progress(-1.0, "preparing data and models")
    cancel.check()
    session = ValidationSession(arms, task, config, tokenizer=tokenizer)
    cfg = session.config
    total = (cfg.steps + 1) * len(session.runners)
    eval_at = set(cfg.eval_steps())
    rank, _ = _world()
    writer = out_dir if (out_dir is not None and rank == 0) else None
    done = 0
    report = session.report()
    try:
        for metrics in session.steps():
            done += 1
            if on_step is not None:
                on_step(metrics)
            progress(done / total, f"{metrics.arm} step {metrics.step}/{cfg.steps}")
            last_of_round = metrics.arm == session.runners[-1].name
            if writer is not None and last_of_round and metrics.step in eval_at and metrics.step < cfg.steps:
                report.write(writer)
            if cancel.cancelled:
                report.status = "cancelled"
                log.info("validation cancelled after %d complete steps", report.steps_completed)
                break
    except Exception as exc:  # keep what was done (e.g. a loss that diverged), then re-raise
        report.status = f"failed: {exc}"
        if writer is not None:
            report.write(writer)
        raise
    if writer is not None:
        report.write(writer)
    progress(1.0, report.status)
    return report
