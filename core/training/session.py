"""The validation job: arms trained side by side on the same batches, with a report and a verdict.

Arms are **interleaved step by step**: step k of every arm runs before step k+1 of any arm, on the
one batch ``task.batch(data, k)`` built once per step. The GUI draws every curve live, and a
cancel leaves all arms at the same step. The cost: all arms sit in memory together (three copies
of a small model plus AdamW state — fine for validation-sized targets).

Two ways in:

- :class:`ValidationSession` ``.steps()``: a generator of :class:`StepMetrics` (stop asking to
  cancel; ``.report()`` then holds the completed steps);
- :func:`run_validation`: the job form (progress callback, cancel token, files written).

With a :class:`~core.training.teacher.Teacher`, the teacher's forward runs once per step on that
step's batch and every arm with ``distill`` set adds the distillation term to its loss; the
report's ``teacher`` block holds its cost. ``save_trained`` keeps each arm's trained weights as a
checkpoint folder (:mod:`core.training.save`), after the last step or after a cancel (partial).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

from core.errors import Cancelled, TrainingError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.sources.base import TOKENIZER_FILE_PATTERNS, aux_file_names
from core.training.arms import Arm, build_arm_model
from core.training.config import ValidationConfig
from core.training.data import batch_digest
from core.training.loop import ArmRunner, StepMetrics, _world, resolve_device
from core.training.report import ValidationReport
from core.training.tasks import Task, get_task, task_for

log = logging.getLogger(__name__)


def find_tokenizer(arms: Sequence[Arm]) -> Path | None:
    """The first arm folder holding tokenizer files (export folders copy the source's)."""
    for arm in arms:
        if arm.path is not None and any(
            (arm.path / n).is_file() for n in aux_file_names(arm.path, TOKENIZER_FILE_PATTERNS)
        ):
            return arm.path
    return None


class ValidationSession:
    """Prepared data and one :class:`ArmRunner` per arm; :meth:`steps` trains them interleaved.

    Args:
        arms: the arms; names must be unique, every arm must have the same model type.
        task: a task name or object; default: the task of the arms' model type.
        config: the options (default :class:`ValidationConfig`).
        tokenizer: folder of the tokenizer for language models (default: an arm's folder).
        teacher: a :class:`~core.training.teacher.Teacher` of the same task: every arm with
            ``distill`` set adds ``teacher_weight`` × its distillation term (moved to this device).
    """

    def __init__(
        self,
        arms: Sequence[Arm],
        task: str | Task | None = None,
        config: ValidationConfig | None = None,
        *,
        tokenizer: str | Path | None = None,
        teacher=None,
    ) -> None:
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
        self.tokenizer = str(tokenizer) if tokenizer else None
        reference = base[0] if base else arms[0]
        self.data = self.task.prepare(reference.config, self.config, self.tokenizer)
        n_train = len(self.data.split.train_index)
        if self.config.batch_size > n_train:
            raise TrainingError(
                f"batch size {self.config.batch_size} is larger than the {n_train} training examples "
                f"of the data set; choose --batch-size {n_train} or less, or give more data (--dataset)"
            )
        self.eval_batches = self.task.eval_set(self.data, self.config)
        self.device = resolve_device(self.config.device)
        self.teacher = teacher
        if teacher is not None:
            if teacher.task.name != self.task.name:
                raise TrainingError(
                    f"the teacher is a {teacher.task.name} model but the arms train on {self.task.name}; "
                    "give a teacher of the arms' architecture"
                )
            teacher.to(self.device)
        self.runners: list[ArmRunner] = []
        arm_info: dict[str, dict] = {}
        for arm in arms:
            model, load = build_arm_model(self.task, arm, self.config.seed, data=self.data, options=self.config)
            runner = ArmRunner(arm.name, model, self.task, self.config, self.device)
            self.runners.append(runner)
            arm_info[arm.name] = {
                "description": arm.description,
                "trainable": runner.trainable,
                "load": load.to_dict(),
                "distill": bool(teacher is not None and arm.distill),
            }
        _, world = _world()
        self._report = ValidationReport(
            task=self.task.name,
            metric=self.task.metric,
            config=asdict(self.config),
            arms=arm_info,
            baseline=self.baseline,
            records={a.name: [] for a in arms},
            device=str(self.device),
            world_size=world,
        )
        self._teacher_steps = 0
        if teacher is not None:
            self._report.teacher = teacher.info(self.config.teacher_weight, self.config.teacher_temperature, 0)
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
            distill = self._distill_fns(batch)
            round_ = []
            for runner, fn in zip(self.runners, distill):
                metrics = runner.step(batch, digest, distill=fn)
                if metrics.step in eval_at:
                    loss, metric = runner.evaluate(self.eval_batches)
                    metrics.eval_loss, metrics.eval_metric, metrics.metric_name = loss, metric, self.task.metric
                round_.append(metrics)
                yield metrics
            self._commit(round_)
        self._report.status = "complete"

    def _distill_fns(self, batch) -> list:
        """Per runner: its distillation term on ``batch`` (None: no teacher, or the arm skips it).

        The teacher's forward runs here, once for every arm, and only when some arm distils.
        """
        if self.teacher is None or not any(a.distill for a in self.arms):
            return [None] * len(self.runners)
        targets = self.teacher.targets(self.runners[0]._shard(batch), bf16=self.config.bf16)
        self._teacher_steps += 1
        self._report.teacher = self.teacher.info(
            self.config.teacher_weight, self.config.teacher_temperature, self._teacher_steps
        )
        return [
            partial(
                self.teacher.loss,
                teacher_out=targets,
                hidden_index=arm.teacher_map,
                temperature=self.config.teacher_temperature,
            )
            if arm.distill
            else None
            for arm in self.arms
        ]

    def protected_paths(self) -> tuple[Path, ...]:
        """Folders the session reads from (export arms, the tokenizer): never written over."""
        paths = [a.path for a in self.arms if a.path is not None]
        return tuple(dict.fromkeys(paths + ([Path(self.tokenizer)] if self.tokenizer else [])))

    def save_trained(
        self,
        out_dir: str | Path,
        names: Sequence[str] | None = None,
        *,
        force: bool = False,
        protect: Sequence[Path] = (),
        recipes: Mapping[str, dict] | None = None,
    ) -> dict[str, Path]:
        """Write each arm's trained model to ``out_dir/<arm>/`` (default: every arm but the
        baseline); see :func:`core.training.save.save_trained`. The report's ``saved`` lists them."""
        from core.training.save import save_trained

        saved = save_trained(self, out_dir, names, force=force, protect=protect, recipes=recipes)
        self._report.saved.update({k: str(v) for k, v in saved.items()})
        return saved

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
    teacher=None,
    save_trained=None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Iterator[StepMetrics]:
    """A generator over every arm-step's metrics (live curves); its return value is the report.

    The job form of a session (what the app runs, in a child process through
    :func:`core.process.run_in_child`). Cancel raises :class:`~core.errors.Cancelled` within one
    arm-step.

    Args:
        teacher: a :class:`~core.training.teacher.Teacher` (see :class:`ValidationSession`).
        save_trained: a folder or a :class:`~core.training.save.SaveTrained`: the trained arms
            are written there after the last step, or after a cancel (marked partial) before
            :class:`~core.errors.Cancelled` is raised; the folder is checked before training.
    """
    progress(-1.0, "preparing data and models")
    cancel.check()
    save = _check_save(save_trained, arms, tokenizer)
    session = ValidationSession(arms, config=config, tokenizer=tokenizer, teacher=teacher)
    total = (session.config.steps + 1) * len(session.runners)
    try:
        for done, metrics in enumerate(session.steps(), start=1):
            cancel.check()
            progress(done / total, f"{metrics.arm} step {metrics.step}/{session.config.steps}")
            yield metrics
    except Cancelled:
        if save is not None:
            session.report().status = "cancelled"
            save.save(session)
        raise
    if save is not None:
        progress(1.0, "saving the trained models")
        save.save(session)
    return session.report()


def _check_save(save_trained, arms: Sequence[Arm], tokenizer):
    """The :class:`SaveTrained` of ``save_trained``, checked against the arms (or None)."""
    from core.training.save import SaveTrained

    save = SaveTrained.of(save_trained)
    if save is None or _world()[0] != 0:  # under torchrun only rank 0 writes
        return None
    save.check_arms(arms, tokenizer)
    return save


def run_validation(
    arms: Sequence[Arm],
    task: str | Task | None = None,
    config: ValidationConfig | None = None,
    *,
    tokenizer: str | Path | None = None,
    out_dir: str | Path | None = None,
    teacher=None,
    save_trained=None,
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
        teacher: a :class:`~core.training.teacher.Teacher` (see :class:`ValidationSession`).
        save_trained: a folder or a :class:`~core.training.save.SaveTrained`: the trained arms
            are written there at the end, complete or cancelled (partial); checked before training.
    """
    progress(-1.0, "preparing data and models")
    cancel.check()
    save = _check_save(save_trained, arms, tokenizer)
    session = ValidationSession(arms, task, config, tokenizer=tokenizer, teacher=teacher)
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
    if save is not None:
        progress(1.0, "saving the trained models")
        save.save(session)
    if writer is not None:
        report.write(writer)
    progress(1.0, report.status)
    return report
