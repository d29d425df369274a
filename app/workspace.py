"""The window's working state — source, recipe, plan, materialised target — and the flows on it.

Panels read from it and subscribe to its signals; user intents come in as method calls. Each
intent is a flow (``app.jobs.flow``: an ``async def`` started on the app's loop; calling it
returns the asyncio task) that awaits its jobs and reads top to bottom: open a source → plan →
preview; materialise, analyse, validate, compare, export. Heavy work goes through ``app.jobs``:
one controller per kind of short job (opening a source, planning, previewing, checking values,
reading the history: a newer one supersedes the older), the queue for the long ones. The
workspace holds core objects but never computes on tensors.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from app.jobs import JobController, JobQueue, JobRunner, factories, flow
from app.jobs.results import Compared, Materialised, OpenedSource, PlanResult
from app.qt import QtCore
from app.settings import Settings
from core.errors import Cancelled

log = logging.getLogger(__name__)

PLAN_DEBOUNCE_MS = 150
PREVIEW_DEBOUNCE_MS = 120
PARTIAL_TABLE_S = 0.3  # how often a growing source table is redrawn while it is analysed


class Workspace(QtCore.QObject):
    """Signals:
    source_opening(location), source_opened(OpenedSource), source_failed(error)
    recipe_changed(Recipe), plan_changed(PlanResult), plan_failed(message)
    preview_ready(PreviewData), preview_failed(message), preview_busy(bool)
    source_checked(ValueScan): the source's weights were read once (NaN/Inf counts)
    target_materialised(Materialised), source_analysed(table)
    source_table_grew(table): the source's statistics so far (rows stream in while it is analysed)
    validation_step(StepMetrics), validation_finished(ValidationReport)
    validation_cancelled(dict): the run was cancelled; ``{arm: folder}`` of trained weights it kept
    leaderboard_step(StepMetrics), leaderboard_finished(Compared), leaderboard_stopped(why)
    history_loaded(list): the current target's history entries, newest first
    runs_loaded(list): every history entry of the open source (all recipes, all kinds), newest first
    exported(path): an export (or a copy of trained weights) is written
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
    source_table_grew = QtCore.Signal(object)
    source_checked = QtCore.Signal(object)
    validation_step = QtCore.Signal(object)
    validation_finished = QtCore.Signal(object)
    validation_cancelled = QtCore.Signal(object)
    validation_failed = QtCore.Signal(str)
    leaderboard_step = QtCore.Signal(object)
    leaderboard_finished = QtCore.Signal(object)
    leaderboard_stopped = QtCore.Signal(str)
    history_loaded = QtCore.Signal(object)
    runs_loaded = QtCore.Signal(object)
    exported = QtCore.Signal(object)
    job_failed = QtCore.Signal(str, object)

    def __init__(self, runner: JobRunner, settings: Settings, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.opened: OpenedSource | None = None
        self.recipe = None
        self.plan: PlanResult | None = None
        self.materialised: Materialised | None = None
        self.selected_tensor: str | None = None
        #: the recipe of the plan the last preview was made from (``preview_ready``'s)
        self.previewed_recipe = None
        self.device = settings.get("target/device")
        #: the user allows transferring a source whose weights hold NaN/Inf (the CLI's --allow-nonfinite)
        self.allow_nonfinite = False

        self.open_controller = JobController(runner, self)
        self.plan_controller = JobController(runner, self)
        self.preview_controller = JobController(runner, self)
        self.check_controller = JobController(runner, self)
        self.history_controller = JobController(runner, self)
        self.runs_controller = JobController(runner, self)
        self.queue = JobQueue(runner, self)
        self._history_of: str | None = None  # the recipe whose history is shown (its JSON)

        self.preview_controller.started.connect(lambda _: self.preview_busy.emit(True))
        self.preview_controller.finished.connect(lambda: self.preview_busy.emit(False))
        self._plan_timer = _single_shot(self, PLAN_DEBOUNCE_MS, self.plan_recipe)
        self._preview_timer = _single_shot(self, PREVIEW_DEBOUNCE_MS, self.preview)

    # -- sources -----------------------------------------------------------------------------
    @property
    def source(self):
        return self.opened.source if self.opened else None

    @flow
    async def open_source(self, location: str, *, then_plan: bool = True) -> OpenedSource | None:
        """Open 'demo', a path or a repo id (downloading it from the hub, or taking it from the
        cache), adopt it with an identity recipe, then plan and preview that recipe (unless
        ``then_plan`` is False: the caller plans a recipe of its own). A newer request wins.

        Returns the opened source; None when it failed (``source_failed``), was cancelled (the
        open controller's ``aborted``) or superseded.
        """
        from core.recipe import Recipe

        location = str(location).strip()
        if not location:
            return None
        self.source_opening.emit(location)
        job = factories.open_source_job(
            location,
            offline=self.settings.get("sources/offline"),
            cache_dir=self.settings.get("sources/cache_dir"),
            endpoint=self.settings.get("sources/endpoint"),
        )
        try:
            opened = await self.open_controller.run(job)
        except Cancelled:
            return None
        except Exception as exc:
            self.source_failed.emit(exc)
            return None

        log.info("opened %s: %s, %d tensors", opened.location, opened.family, len(opened.source.tensors))
        self.opened = opened
        self.plan = None
        self.materialised = None
        self.selected_tensor = None
        self.allow_nonfinite = False
        self.settings.add_recent_source(opened.location)
        if opened.architecture_error is None:
            self._adopt(Recipe(source=opened.location, device=self.device))
        self.source_opened.emit(opened)
        self.refresh_runs()
        self.check_values()
        if opened.architecture_error is not None:
            self.plan_failed.emit(opened.architecture_error)
        elif then_plan:
            await self.plan_recipe()
        return opened

    def cancel_open(self) -> None:
        self.open_controller.cancel()

    @flow
    async def check_values(self) -> None:
        """Read every weight of the source once (in the background): NaN/Inf counts → ``source_checked``."""
        try:
            scan = await self.check_controller.run(factories.check_values_job(self.source))
        except Cancelled:
            return
        except Exception as exc:
            self.job_failed.emit("Checking the source's values failed", exc)
            return
        if scan.nonfinite:
            log.warning("%s: %s", self.source.display_name if self.source else "source", scan.summary())
        self.source_checked.emit(scan)

    # -- recipe and plan ---------------------------------------------------------------------
    def set_recipe(self, recipe) -> None:
        """Adopt ``recipe`` (the form was edited) and plan it shortly: a burst of edits plans once."""
        self._adopt(recipe)
        self._plan_timer.start()

    def _adopt(self, recipe) -> None:
        self.recipe = recipe
        self.device = recipe.device or self.device
        self.recipe_changed.emit(recipe)

    @flow
    async def plan_recipe(self, recipe=None) -> PlanResult | None:
        """Adopt ``recipe`` (default: the current one), plan it on the open source, then preview
        the selected tensor (the first attention query when the plan lacks it).

        Returns the plan; None when it failed (``plan_failed``) or a newer one took its place.
        """
        self._plan_timer.stop()
        if recipe is not None:
            self._adopt(recipe)
        recipe, source = self.recipe, self.source
        if recipe is None or source is None:
            return None
        try:
            result = await self.plan_controller.run(factories.plan_job(recipe, source))
        except Cancelled:
            return None
        except Exception as exc:
            self.plan = None  # the form no longer describes a valid plan
            self.plan_failed.emit(str(exc))
            return None
        if recipe is not self.recipe:
            return None  # edited meanwhile: the newer recipe's plan follows

        log.debug("plan ready: %d target tensors, %d parameters", len(result.plan.tensors), result.plan.num_parameters)
        self.plan = result
        self.materialised = None
        if self.selected_tensor not in {t.name for t in result.plan.tensors}:
            self.selected_tensor = _default_tensor(result.plan)
        self.plan_changed.emit(result)
        self.refresh_history()
        await self.preview()
        return result

    # -- preview -----------------------------------------------------------------------------
    def select_tensor(self, name: str | None) -> None:
        self.selected_tensor = name
        self.request_preview()

    def request_preview(self) -> None:
        """Preview the selected tensor shortly (debounced: a burst of selections previews once)."""
        self._preview_timer.start()

    @flow
    async def preview(self) -> None:
        """Fill the selected tensor of the current plan and compare it with its source → ``preview_ready``."""
        self._preview_timer.stop()
        if self.plan is None or self.selected_tensor is None:
            return
        plan = self.plan
        job = factories.preview_job(plan, self.source, self.selected_tensor, self.device)
        try:
            data = await self.preview_controller.run(job)
        except Cancelled:
            return
        except Exception as exc:
            self.preview_failed.emit(str(exc))
            return
        self.previewed_recipe = plan.recipe
        self.preview_ready.emit(data)

    # -- long jobs (queued) ------------------------------------------------------------------
    async def _queued(self, job, on_item=None):
        """Run ``job`` in the queue: its result; None when it failed (``job_failed``) or was cancelled."""
        try:
            return await self.queue.submit(job, on_item=on_item)
        except Cancelled:
            return None
        except Exception as exc:
            self.job_failed.emit(f"{job.name.capitalize()} failed", exc)
            return None

    @flow
    async def materialise(self) -> Materialised | None:
        """Fill and summarise every target tensor (queued, in a child process) → ``target_materialised``."""
        if self.plan is None:
            return None
        recipe = self.plan.recipe
        materialised = await self._queued(
            factories.materialise_job(
                self.plan,
                self.source,
                self.device,
                self.recipe.dtype,
                allow_nonfinite=self.allow_nonfinite,
                keep_history=True,
            )
        )
        if materialised is not None:
            materialised.recipe = recipe
            self.materialised = materialised
            self.target_materialised.emit(materialised)
            self.refresh_runs()
        return materialised

    @flow
    async def analyse_source(self) -> None:
        """The model-wide statistics of the source (layer × role, mean-field diagnostics; queued) → ``source_analysed``."""
        if self.source is None:
            return
        from core.stats.table import assemble_table

        rows, shown = [], [0.0]

        def grew(row) -> None:  # a tensor's metrics: show the table so far, a few times a second
            rows.append(row)
            if time.monotonic() - shown[0] >= PARTIAL_TABLE_S:
                shown[0] = time.monotonic()
                self.source_table_grew.emit(assemble_table(rows, tuple(row.values)))

        table = await self._queued(factories.source_table_job(self.source, self.device), on_item=grew)
        if table is not None:
            self.source_analysed.emit(table)

    @flow
    async def validate(self, config, *, teacher: bool = False, keep_trained: bool = False):
        """Validate the current recipe (queued; it materialises its own copy): each step →
        ``validation_step``, the report → ``validation_finished``; a cancel → ``validation_cancelled``
        with the arms it kept; a failure → ``validation_failed`` (and ``job_failed``'s dialog). ``teacher`` distils from the source, ``keep_trained`` keeps the
        trained arms in a new run folder."""
        if self.plan is None:
            return None
        tokenizer = self.source.root if self.source is not None else None
        trained = factories.trained_run_folder() if keep_trained else None
        job = factories.validate_job(
            self.plan.recipe,
            self.source,
            config,
            tokenizer,
            allow_nonfinite=self.allow_nonfinite,
            teacher=teacher,
            save_trained=trained,
            keep_history=True,
        )
        try:
            report = await self.queue.submit(job, on_item=self.validation_step.emit)
        except Cancelled:
            self.validation_cancelled.emit(_kept_arms(trained))
            return None
        except Exception as exc:
            self.validation_failed.emit(str(exc))  # the panel stops saying "running"
            self.job_failed.emit(f"{job.name.capitalize()} failed", exc)
            return None
        self.validation_finished.emit(report)
        self.refresh_history(force=True)
        self.refresh_runs()
        return report

    @flow
    async def compare(self, specs: list[str], config, *, quick_steps: int | None = None) -> Compared | None:
        """A leaderboard of ``specs`` (candidate starts) on the current recipe's target (queued):
        each step → ``leaderboard_step``, the board → ``leaderboard_finished``; a failure or a
        cancel → ``leaderboard_stopped``."""
        if self.plan is None:
            return None
        tokenizer = self.source.root if self.source is not None else None
        job = factories.compare_job(
            self.plan.recipe,
            self.source,
            specs,
            config,
            tokenizer,
            quick_steps=quick_steps,
            keep_history=True,
            allow_nonfinite=self.allow_nonfinite,
        )
        try:
            compared = await self.queue.submit(job, on_item=self.leaderboard_step.emit)
        except Cancelled:
            self.leaderboard_stopped.emit("cancelled")
            return None
        except Exception as exc:
            self.leaderboard_stopped.emit("failed")
            self.job_failed.emit(f"{job.name.capitalize()} failed", exc)
            return None
        self.leaderboard_finished.emit(compared)
        self.refresh_history(force=True)
        self.refresh_runs()
        return compared

    @flow
    async def export(
        self,
        out_dir: str | Path,
        *,
        dtype: str | None,
        max_shard_size: str,
        force: bool = False,
        replace_any: bool = False,
        verifiable: bool = False,
    ) -> Path | None:
        """Export the current recipe (queued) → ``exported``; ``force`` replaces an earlier Graft
        export, ``replace_any`` (with ``force``) any folder; ``verifiable`` records every shard's hash. Refusals (core.outdir: never the
        source, …) come back through ``job_failed`` as an ExportError, which the window shows."""
        if self.plan is None:
            return None
        from core.recipe import Recipe

        data = self.recipe.to_dict()
        data.update(dtype=dtype or None, max_shard_size=max_shard_size)
        recipe = Recipe.from_dict(data)
        path = await self._queued(
            factories.export_job(
                recipe,
                out_dir,
                self.source,
                force=force,
                replace_any=force and replace_any,
                allow_nonfinite=self.allow_nonfinite,
                verifiable=verifiable,
            )
        )
        if path is not None:
            self.exported.emit(path)
        return path

    @flow
    async def export_trained(self, trained: str | Path, out_dir: str | Path) -> Path | None:
        """Copy a trained arm's folder to ``out_dir`` (queued) → ``exported``; refusals come
        back through ``job_failed``."""
        path = await self._queued(factories.export_trained_job(trained, out_dir, self.source))
        if path is not None:
            self.exported.emit(path)
        return path

    # -- history -----------------------------------------------------------------------------
    @flow
    async def refresh_history(self, *, force: bool = False) -> None:
        """Re-read the history when the plan's recipe changed (or ``force``: a run was added) →
        ``history_loaded``. The history keys are hashed on the job's thread; here the recipe is
        only compared as JSON."""
        if self.plan is None:
            return
        recipe = self.plan.recipe
        question = json.dumps({k: v for k, v in recipe.to_dict().items() if k != "provenance"}, sort_keys=True)
        if not force and question == self._history_of:
            return
        self._history_of = question
        try:
            entries = await self.history_controller.run(factories.history_job(recipe))
        except Cancelled:
            return
        except Exception as exc:
            log.warning("cannot read the history: %s", exc)
            return
        self.history_loaded.emit(entries)

    @flow
    async def refresh_runs(self) -> None:
        """Re-read every run of the open source (the Runs tab's list) → ``runs_loaded``."""
        if self.opened is None:
            return
        source = self.recipe.source if self.recipe is not None else self.opened.location  # as recipes name it
        try:
            entries = await self.runs_controller.run(factories.runs_job(source))
        except Cancelled:
            return
        except Exception as exc:
            log.warning("cannot read the runs of %s: %s", source, exc)
            return
        self.runs_loaded.emit(entries)

    # -- lifetime ----------------------------------------------------------------------------
    def cancel_all(self) -> None:
        self._plan_timer.stop()
        self._preview_timer.stop()
        for controller in (
            self.open_controller,
            self.plan_controller,
            self.preview_controller,
            self.check_controller,
            self.history_controller,
            self.runs_controller,
        ):
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
