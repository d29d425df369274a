"""The window's working state — source, recipe, plan, materialised target — and the jobs on it.

Panels read from it and subscribe to its signals; user intents come in as method calls. All
heavy work goes through ``app.jobs`` (one controller per kind of job: opening a source, planning,
previewing; long jobs in the queue). It holds core objects but never computes on tensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from app.jobs import JobController, JobQueue, JobRunner, tasks
from app.qt import QtCore
from app.settings import Settings

log = logging.getLogger(__name__)

PLAN_DEBOUNCE_MS = 150
PREVIEW_DEBOUNCE_MS = 120


class Workspace(QtCore.QObject):
    """Signals:
        source_opening(location), source_opened(OpenedSource), source_failed(error)
        recipe_changed(Recipe), plan_changed(PlanResult), plan_failed(message)
        preview_ready(PreviewData), preview_failed(message), preview_busy(bool)
        target_materialised(Materialised), validation_step(StepMetrics)
        validation_cancelled(dict): the run was cancelled; ``{arm: folder}`` of trained weights it kept
        leaderboard_step(StepMetrics), leaderboard_finished(Compared), leaderboard_stopped(why)
        history_loaded(list): the current target's history entries, newest first
        job_failed(title, error): a queued job failed (the window shows a dialog)
    """

    source_opening = QtCore.Signal(str)
    source_opened = QtCore.Signal(object)
    source_failed = QtCore.Signal(object)
    recipe_changed = QtCore.Signal(object)
    plan_changed = QtCore.Signal(object)
    plan_failed = QtCore.Signal(str)
    preview_ready = QtCore.Signal(object)
    preview_failed = QtCore.Signal(str)
    preview_busy = QtCore.Signal(bool)
    target_materialised = QtCore.Signal(object)
    source_analysed = QtCore.Signal(object)
    source_checked = QtCore.Signal(object)
    validation_step = QtCore.Signal(object)
    validation_finished = QtCore.Signal(object)
    validation_cancelled = QtCore.Signal(object)
    leaderboard_step = QtCore.Signal(object)
    leaderboard_finished = QtCore.Signal(object)
    leaderboard_stopped = QtCore.Signal(str)
    history_loaded = QtCore.Signal(object)
    exported = QtCore.Signal(object)
    job_failed = QtCore.Signal(str, object)

    def __init__(self, runner: JobRunner, settings: Settings, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.opened: tasks.OpenedSource | None = None
        self.recipe = None
        self.plan: tasks.PlanResult | None = None
        self.materialised: tasks.Materialised | None = None
        self.selected_tensor: str | None = None
        self.device = settings.get("target/device")

        self.open_controller = JobController(runner, self)
        self.plan_controller = JobController(runner, self)
        self.preview_controller = JobController(runner, self)
        self.check_controller = JobController(runner, self)
        self.history_controller = JobController(runner, self)
        self._history_of: str | None = None  # the recipe whose history is shown (its JSON)
        self._trained_runs: dict[int, Path] = {}  # queue entry id → its validation's trained-weights folder
        #: the user allows transferring a source whose weights hold NaN/Inf (the CLI's --allow-nonfinite)
        self.allow_nonfinite = False
        self.queue = JobQueue(runner, self)

        self.open_controller.returned.connect(self._on_source_returned)
        self.open_controller.errored.connect(self.source_failed)
        self.check_controller.returned.connect(self._on_values_checked)
        self.check_controller.errored.connect(lambda exc: self.job_failed.emit("Checking the source's values failed", exc))
        self.history_controller.returned.connect(self.history_loaded)
        self.history_controller.errored.connect(lambda exc: log.warning("cannot read the history: %s", exc))
        self.plan_controller.returned.connect(self._on_plan_returned)
        self.plan_controller.errored.connect(self._on_plan_errored)
        self.preview_controller.returned.connect(self.preview_ready)
        self.preview_controller.errored.connect(lambda exc: self.preview_failed.emit(str(exc)))
        self.preview_controller.started.connect(lambda _: self.preview_busy.emit(True))
        self.preview_controller.finished.connect(lambda: self.preview_busy.emit(False))
        self.queue.entry_finished.connect(self._on_entry_finished)
        self.queue.entry_yielded.connect(self._on_entry_yielded)

        self._plan_timer = _single_shot(self, PLAN_DEBOUNCE_MS, self._start_plan)
        self._preview_timer = _single_shot(self, PREVIEW_DEBOUNCE_MS, self._start_preview)

    # -- sources -----------------------------------------------------------------------------
    @property
    def source(self):
        return self.opened.source if self.opened else None

    def open_source(self, location: str) -> None:
        """Open 'demo', a path or a repo id in the background (a newer request wins)."""
        location = str(location).strip()
        if not location:
            return
        self.source_opening.emit(location)
        self.open_controller.start(tasks.open_source_job(
            location, offline=self.settings.get("sources/offline"), cache_dir=self.settings.get("sources/cache_dir"),
            endpoint=self.settings.get("sources/endpoint")))

    def cancel_open(self) -> None:
        self.open_controller.cancel()

    def _on_source_returned(self, opened: tasks.OpenedSource) -> None:
        from core.recipe import Recipe

        log.info("opened %s: %s, %d tensors", opened.location, opened.family, len(opened.source.tensors))
        self.opened = opened
        self.plan = None
        self.materialised = None
        self.selected_tensor = None
        self.settings.add_recent_source(opened.location)
        if opened.architecture_error is None:
            # An identity recipe first; listeners of source_opened may replace it (a recipe file).
            self.set_recipe(Recipe(source=opened.location, device=self.device))
        self.allow_nonfinite = False
        self.source_opened.emit(opened)
        if opened.architecture_error is not None:
            self.plan_failed.emit(opened.architecture_error)
        self.check_controller.start(tasks.check_values_job(opened.source))

    def _on_values_checked(self, scan) -> None:
        if scan.nonfinite:
            log.warning("%s: %s", self.source.display_name if self.source else "source", scan.summary())
        self.source_checked.emit(scan)

    # -- recipe and plan ---------------------------------------------------------------------
    def set_recipe(self, recipe, *, immediately: bool = False) -> None:
        """Adopt ``recipe`` and re-plan shortly (debounced: a burst of edits plans once)."""
        self.recipe = recipe
        self.device = recipe.device or self.device
        self.recipe_changed.emit(recipe)
        if immediately:
            self._plan_timer.stop()
            self._start_plan()
        else:
            self._plan_timer.start()

    def _start_plan(self) -> None:
        if self.recipe is None or self.source is None:
            return
        self.plan_controller.start(tasks.plan_job(self.recipe, self.source))

    def _on_plan_returned(self, result: tasks.PlanResult) -> None:
        if result.recipe is not self.recipe:
            return  # an older recipe's plan
        log.debug("plan ready: %d target tensors, %d parameters", len(result.plan.tensors), result.plan.num_parameters)
        self.plan = result
        self.materialised = None
        names = {t.name for t in result.plan.tensors}
        if self.selected_tensor not in names:
            self.selected_tensor = _default_tensor(result.plan)
        self.plan_changed.emit(result)
        self.request_preview()
        self.refresh_history()

    def _on_plan_errored(self, error: BaseException) -> None:
        self.plan = None  # the form no longer describes a valid plan
        self.plan_failed.emit(str(error))

    # -- preview -----------------------------------------------------------------------------
    def select_tensor(self, name: str | None) -> None:
        self.selected_tensor = name
        self.request_preview()

    def request_preview(self) -> None:
        self._preview_timer.start()

    def _start_preview(self) -> None:
        if self.plan is None or self.selected_tensor is None:
            return
        self.preview_controller.start(tasks.preview_job(self.plan, self.source, self.selected_tensor, self.device))

    # -- long jobs ---------------------------------------------------------------------------
    def materialise(self):
        if self.plan is None:
            raise RuntimeError("no plan yet")
        return self.queue.enqueue(tasks.materialise_job(self.plan, self.source, self.device, self.recipe.dtype,
                                                        allow_nonfinite=self.allow_nonfinite))

    def analyse_source(self):
        """Queue the model-wide statistics of the source (layer × role, mean-field diagnostics)."""
        if self.source is None:
            raise RuntimeError("no source yet")
        return self.queue.enqueue(tasks.source_table_job(self.source))

    def validate(self, config, *, teacher: bool = False, keep_trained: bool = False):
        """Queue a validation run of the current recipe (it materialises its own copy); ``teacher``
        distils from the source, ``keep_trained`` keeps the trained arms in a new run folder."""
        if self.plan is None:
            raise RuntimeError("no plan yet")
        tokenizer = self.source.root if self.source is not None else None
        trained = tasks.trained_run_folder() if keep_trained else None
        entry = self.queue.enqueue(tasks.validate_job(
            self.plan.recipe, self.source, config, tokenizer, allow_nonfinite=self.allow_nonfinite, teacher=teacher,
            save_trained=trained, keep_history=True))
        if trained is not None:
            self._trained_runs[entry.id] = trained
        return entry

    def compare(self, specs: list[str], config, *, quick_steps: int | None = None):
        """Queue a leaderboard of ``specs`` (candidate starts) on the current recipe's target."""
        if self.plan is None:
            raise RuntimeError("no plan yet")
        tokenizer = self.source.root if self.source is not None else None
        return self.queue.enqueue(tasks.compare_job(
            self.plan.recipe, self.source, specs, config, tokenizer, quick_steps=quick_steps,
            keep_history=True, allow_nonfinite=self.allow_nonfinite))

    def export_trained(self, trained: str | Path, out_dir: str | Path):
        """Queue a copy of a trained arm's folder to ``out_dir`` (refusals come back through ``job_failed``)."""
        return self.queue.enqueue(tasks.export_trained_job(trained, out_dir, self.source))

    def refresh_history(self, *, force: bool = False) -> None:
        """Re-read the history when the plan's recipe changed (or ``force``: a run was added).

        The history keys are hashed on the job's thread; here the recipe is only compared as JSON.
        """
        if self.plan is None:
            return
        recipe = self.plan.recipe
        question = json.dumps({k: v for k, v in recipe.to_dict().items() if k != "provenance"}, sort_keys=True)
        if force or question != self._history_of:
            self._history_of = question
            self.history_controller.start(tasks.history_job(recipe))

    def export(self, out_dir: str | Path, *, dtype: str | None, max_shard_size: str, force: bool = False,
               replace_any: bool = False):
        """Queue an export of the current recipe; ``force`` replaces an earlier Graft export,
        ``replace_any`` (with ``force``) any folder. Refusals (core.outdir: never the source, …)
        come back through ``job_failed`` as an ExportError, which the window shows in a dialog."""
        if self.plan is None:
            raise RuntimeError("no plan yet")
        from core.recipe import Recipe

        data = self.recipe.to_dict()
        data.update(dtype=dtype or None, max_shard_size=max_shard_size)
        recipe = Recipe.from_dict(data)
        return self.queue.enqueue(tasks.export_job(recipe, out_dir, self.source, force=force,
                                                   replace_any=force and replace_any,
                                                   allow_nonfinite=self.allow_nonfinite))

    def _on_entry_yielded(self, entry, item: Any) -> None:
        if entry.job.name == "validate":
            self.validation_step.emit(item)
        elif entry.job.name.startswith("compare"):
            self.leaderboard_step.emit(item)

    def _on_entry_finished(self, entry) -> None:
        from app.jobs import CANCELLED, DONE, FAILED

        trained = self._trained_runs.pop(entry.id, None)
        if entry.job.name.startswith("compare") and entry.state in (FAILED, CANCELLED):
            self.leaderboard_stopped.emit("failed" if entry.state == FAILED else "cancelled")
        if entry.state == FAILED:
            self.job_failed.emit(f"{entry.job.name.capitalize()} failed", entry.error)
        elif entry.state == CANCELLED and entry.job.name == "validate":
            self.validation_cancelled.emit(_kept_arms(trained))
        elif entry.state == DONE:
            if isinstance(entry.result, tasks.Materialised):
                self.materialised = entry.result
                self.target_materialised.emit(entry.result)
            elif entry.job.name == "analyse source":
                self.source_analysed.emit(entry.result)
            elif entry.job.name == "validate":
                self.validation_finished.emit(entry.result)
                self.refresh_history(force=True)
            elif entry.job.name.startswith("compare"):
                self.leaderboard_finished.emit(entry.result)
                self.refresh_history(force=True)
            elif entry.job.name.startswith("export"):
                self.exported.emit(entry.result)

    # -- lifetime ----------------------------------------------------------------------------
    def cancel_all(self) -> None:
        self._plan_timer.stop()
        self._preview_timer.stop()
        for controller in (self.open_controller, self.plan_controller, self.preview_controller, self.check_controller,
                           self.history_controller):
            controller.cancel()
        self.queue.cancel_all()


def _single_shot(parent: QtCore.QObject, ms: int, slot) -> QtCore.QTimer:
    timer = QtCore.QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer


def _kept_arms(folder: Path | None) -> dict[str, str]:
    """The arms a cancelled run kept in ``folder`` (each ``<arm>/``; hidden names are unfinished copies)."""
    if folder is None or not folder.is_dir():
        return {}
    return {p.name: str(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _default_tensor(plan) -> str | None:
    """The first attention query (or any 2-D weight) of layer 0: a telling first preview."""
    for role in ("attn.q", "mlp.up", "mlp.in"):
        for t in plan.tensors:
            if t.role == role and len(t.shape) == 2:
                return t.name
    two_d = [t for t in plan.tensors if len(t.shape) == 2 and t.kind == "param"]
    return two_d[0].name if two_d else (plan.tensors[0].name if plan.tensors else None)
