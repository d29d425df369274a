"""The main window: composes the panels, wires them to the workspace, owns menus and shortcuts.

Its few flows (``app.jobs.flow``) are the ones that need a view: warming up (the target form
learns which devices work) and applying a recipe (open its source, then show it in the form and plan it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.dialogs import show_error, show_html
from app.jobs import JobController, JobRunner, factories, flow
from app.panels.checkpoint_compare import CheckpointCompareWindow
from app.panels.export_dialog import ExportDialog
from app.panels.jobs import JobsPanel
from app.panels.leaderboard import LeaderboardPanel
from app.panels.model import ModelPanel
from app.panels.overview import OverviewPanel
from app.panels.preview import PreviewPanel
from app.panels.runs import RunsPanel
from app.panels.sources import SourcesPanel
from app.panels.target import TargetPanel
from app.panels.validation import ValidationPanel
from app.qt import QtCore, QtGui, QtWidgets
from app.settings import Settings
from app.undo import RecipeHistory
from app.words import strategy_label
from app.workspace import Workspace

log = logging.getLogger(__name__)


class _FirstPaint(QtCore.QObject):
    """Calls ``then`` once, on the event loop right after ``widget``'s first paint."""

    def __init__(self, widget: QtWidgets.QWidget, then) -> None:
        super().__init__(widget)
        self._then = then
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QtCore.QEvent.Type.Paint:
            obj.removeEventFilter(self)
            # the rest of this frame is painted before the event loop runs the timer
            QtCore.QTimer.singleShot(0, self, self._then)
        return False


class MainWindow(QtWidgets.QMainWindow):
    """Sources | Model + preview tabs | Target & strategy + jobs."""

    #: the window's first frame is painted (the background warm-up starts then)
    first_painted = QtCore.Signal()

    def __init__(self, settings: Settings | None = None, runner: JobRunner | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Graft")
        self.setObjectName("graft-main-window")
        self.settings = settings or Settings()
        self._owns_runner = runner is None
        self.runner = runner or JobRunner()
        self.workspace = Workspace(self.runner, self.settings, self)
        self.history = RecipeHistory()  # the form's recipes, for Edit → Undo / Redo
        self._applying_history = False
        ws = self.workspace

        self.sources = SourcesPanel(self.settings, JobController(self.runner, self))
        self.model = ModelPanel()
        self.target = TargetPanel()
        self.preview = PreviewPanel()
        self.overview = OverviewPanel()
        self.validation = ValidationPanel()
        self.validation.last_folder = self.settings.get("export/last_folder") or str(Path.home())
        self.leaderboard = LeaderboardPanel()
        self.runs = RunsPanel()
        self._compare_window: CheckpointCompareWindow | None = None  # built when first shown
        self._open_location: str | None = None
        self.jobs = JobsPanel(ws.queue)

        self.centre_tabs = QtWidgets.QTabWidget()
        self.centre_tabs.addTab(self.preview, "Tensor preview")
        self.centre_tabs.addTab(self.overview, "Model overview")
        self.centre_tabs.addTab(self.validation, "Validation")
        self.centre_tabs.addTab(self.leaderboard, "Leaderboard")
        self.centre_tabs.addTab(self.runs, "Runs")
        self.centre = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        self.centre.addWidget(self.model)
        self.centre.addWidget(self.centre_tabs)
        self.centre.setStretchFactor(0, 2)
        self.centre.setStretchFactor(1, 3)
        self.centre.setSizes([300, 560])
        self.right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        self.right.addWidget(self.target)
        self.right.addWidget(self.jobs)
        self.right.setStretchFactor(0, 3)
        self.right.setStretchFactor(1, 2)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.splitter.addWidget(self.sources)
        self.splitter.addWidget(self.centre)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([250, 800, 330])
        self.setCentralWidget(self.splitter)
        self.status = self.statusBar()

        self._make_actions()
        self._connect()
        self._restore_geometry()
        self.sources.refresh_cache()
        self.warm_up = JobController(self.runner, self)
        # The heavy imports wait for the window's first frame: the user sees the app first, and
        # the import (which holds the GIL for seconds) does not slow that frame down.
        self.first_painted.connect(self._warm_up)
        self._paint_watch = _FirstPaint(self, self.first_painted.emit)

    @flow
    async def _warm_up(self) -> None:
        """Import the heavy libraries in the background (``factories.warm_up_job``), then grey out
        the devices this machine lacks."""
        try:
            availability = await self.warm_up.run(factories.warm_up_job())
        except Exception:  # logged by the controller; every device stays offered
            return
        self.target.set_devices(availability)

    # -- wiring ------------------------------------------------------------------------------
    def _connect(self) -> None:
        ws = self.workspace
        self.sources.source_requested.connect(self.open_source)
        self.sources.cancel_requested.connect(ws.cancel_open)
        ws.open_controller.progressed.connect(self.sources.show_progress)
        ws.open_controller.finished.connect(lambda: self.sources.show_busy(None))
        ws.source_opening.connect(self._on_source_opening)
        ws.source_opening.connect(lambda _: self.history.reset())  # undo covers one source's form
        ws.recipe_changed.connect(self._on_recipe_changed)
        ws.source_opened.connect(self._on_source_opened)
        ws.source_failed.connect(self._on_source_failed)
        ws.open_controller.aborted.connect(lambda: self.status.showMessage("Opening cancelled", 4000))
        self.target.recipe_edited.connect(ws.set_recipe)
        ws.plan_changed.connect(self._on_plan_changed)
        ws.plan_failed.connect(self._on_plan_failed)
        self.model.tensor_selected.connect(ws.select_tensor)
        ws.source_checked.connect(lambda scan: self.model.show_values(scan.nonfinite, scan.summary()))
        self.model.nonfinite_allowed.connect(lambda allowed: setattr(ws, "allow_nonfinite", allowed))
        # Bound methods of the panel (not lambdas): Qt drops them with the panel if it is deleted.
        self.preview.recipe_of_preview = lambda: ws.previewed_recipe
        self.preview.describe_busy = self._previewing
        ws.preview_ready.connect(self.preview.show_preview)
        # The preview shown stays the last valid plan's when a plan fails: grey it then (bound slots:
        # dropped with the panel if it is deleted).
        ws.plan_changed.connect(self.preview.stamp.plan_made)
        ws.source_opening.connect(self.preview.show_opening)
        ws.source_failed.connect(self.preview.source_failed)
        ws.plan_failed.connect(self.preview.stamp.plan_failed)
        for stamp in (self.preview.stamp, self.validation.stamp, self.overview.stamp):
            ws.recipe_changed.connect(stamp.recipe_changed)
        ws.preview_failed.connect(self.preview.show_error)
        ws.preview_busy.connect(self.preview.set_busy)
        self.jobs.materialise_requested.connect(self.materialise)
        self.jobs.validate_requested.connect(self.validate)
        self.jobs.export_requested.connect(self.export)
        ws.target_materialised.connect(self._on_materialised)
        self.overview.analysis_requested.connect(self.analyse_source)
        ws.source_analysed.connect(self.overview.show_source_table)
        ws.source_table_grew.connect(self.overview.grow_source_table)
        self.overview.tensor_requested.connect(self.show_tensor)
        ws.validation_step.connect(self.validation.add_step)
        ws.validation_finished.connect(self.validation.finish)
        ws.validation_cancelled.connect(self.validation.cancelled)
        ws.validation_failed.connect(self.validation.failed)
        self.validation.export_trained_requested.connect(ws.export_trained)
        self.leaderboard.compare_requested.connect(self.compare)
        self.leaderboard.recipe_requested.connect(self.use_recipe)
        ws.leaderboard_step.connect(self.leaderboard.add_step)
        ws.leaderboard_finished.connect(lambda done: self.leaderboard.finish(done.board, done.history_path))
        ws.leaderboard_stopped.connect(self.leaderboard.stopped)
        ws.history_loaded.connect(self.leaderboard.show_history)
        ws.runs_loaded.connect(self.runs.show_runs)
        self.runs.recipe_requested.connect(self.use_recipe)
        ws.exported.connect(lambda path: self.status.showMessage(f"Exported to {path}", 10000))
        ws.job_failed.connect(lambda title, exc: show_error(self, title, exc))

    def _make_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.open_file_action = self._action(
            file_menu, "Open &file…", QtGui.QKeySequence.Open, self.sources.choose_file
        )
        self.open_folder_action = self._action(file_menu, "Open f&older…", "Ctrl+Shift+O", self.sources.choose_folder)
        self.open_demo_action = self._action(
            file_menu, "Open the &demo model", "Ctrl+D", lambda: self.open_source("demo")
        )
        file_menu.addSeparator()
        self.open_recipe_action = self._action(file_menu, "Open &recipe…", "Ctrl+R", self.open_recipe)
        self.save_recipe_action = self._action(file_menu, "&Save recipe…", QtGui.QKeySequence.Save, self.save_recipe)
        self.compare_checkpoints_action = self._action(
            file_menu, "&Compare checkpoints…", "Ctrl+Shift+D", self.show_checkpoint_compare
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QtGui.QKeySequence.Quit, self.close)
        edit_menu = menu.addMenu("&Edit")
        self.undo_action = self._action(edit_menu, "&Undo form change", QtGui.QKeySequence.Undo, self.undo)
        self.redo_action = self._action(edit_menu, "&Redo form change", "Ctrl+Shift+Z", self.redo)
        view_menu = menu.addMenu("&View")
        self._action(view_menu, "&Reset layout", None, self.reset_layout)
        run_menu = menu.addMenu("&Run")
        self.materialise_action = self._action(run_menu, "&Materialise", "Ctrl+M", self.materialise)
        self.validate_action = self._action(
            run_menu, "&Validate", "Ctrl+T", lambda: self.validate(self.jobs.steps_spin.value())
        )
        self.export_action = self._action(run_menu, "&Export…", "Ctrl+E", self.export)
        run_menu.addSeparator()
        self.analyse_action = self._action(run_menu, "&Analyse the source", "Ctrl+Shift+A", self.analyse_source)
        self._action(run_menu, "&Cancel all jobs", "Ctrl+.", self.workspace.cancel_all)
        help_menu = menu.addMenu("&Help")
        self._action(help_menu, "&Strategies…", None, self._strategy_guide)
        self._action(help_menu, "&Keyboard shortcuts…", None, self._shortcuts)
        help_menu.addSeparator()
        self._action(help_menu, "&About Graft", None, self._about)
        self._set_ready(False)
        self._update_history_actions()

    # -- undo, redo, layout --------------------------------------------------------------------
    def _on_recipe_changed(self, recipe) -> None:
        if not self._applying_history:
            self.history.push(recipe)
        self._update_history_actions()

    def _update_history_actions(self) -> None:
        self.undo_action.setEnabled(self.history.can_undo)
        self.redo_action.setEnabled(self.history.can_redo)

    def _apply_history(self, recipe) -> None:
        if recipe is None:
            return
        self._applying_history = True
        try:
            self.target.set_recipe(recipe)
            self.workspace.set_recipe(recipe)
        finally:
            self._applying_history = False
        self._update_history_actions()

    def undo(self) -> None:
        """Back to the form's previous recipe (Ctrl+Z)."""
        self._apply_history(self.history.undo())

    def redo(self) -> None:
        """Forward to the recipe an undo left (Ctrl+Shift+Z)."""
        self._apply_history(self.history.redo())

    def default_size(self) -> QtCore.QSize:
        """1440 × 900, or less on a smaller screen (what a 1366 × 768 laptop shows, title bar and panel aside)."""
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else QtCore.QRect(0, 0, 1440, 900)
        return QtCore.QSize(min(1440, int(available.width() * 0.96)), min(900, int(available.height() * 0.92)))

    def reset_layout(self) -> None:
        """View → Reset layout: the default window size and panel proportions."""
        if self.isMaximized():
            self.showNormal()
        self.resize(self.default_size())
        width = self.width()
        self.splitter.setSizes([int(width * 0.18), int(width * 0.58), int(width * 0.24)])
        self.centre.setSizes([300, 560])
        self.right.setSizes([560, 300])

    def _action(self, menu, text, shortcut, slot) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _set_ready(self, ready: bool) -> None:
        for action in (self.materialise_action, self.validate_action, self.export_action, self.save_recipe_action):
            action.setEnabled(ready)
        self.jobs.set_ready(ready)
        self.leaderboard.set_ready(ready)

    @property
    def compare_window(self) -> CheckpointCompareWindow:
        """The checkpoint-compare window, built on first use (it is not part of the first paint)."""
        if self._compare_window is None:
            self._compare_window = CheckpointCompareWindow(
                JobController(self.runner, self), JobController(self.runner, self), self
            )
            if self._open_location is not None:
                self._compare_window.panel.set_open_source(self._open_location)
        return self._compare_window

    @property
    def checkpoint_compare(self):
        return self.compare_window.panel

    # -- intents -----------------------------------------------------------------------------
    def open_source(self, location: str):
        """Open ``location`` (see ``Workspace.open_source``); returns the flow's task."""
        return self.workspace.open_source(location)

    def show_checkpoint_compare(self) -> None:
        """Open the compare window (two checkpoints, tensor by tensor; ``graft diff A B``)."""
        self.compare_window.reveal()
        self.checkpoint_compare.side_b.edit.setFocus()

    def analyse_source(self) -> None:
        if self.workspace.source is not None:
            self.workspace.analyse_source()

    def show_tensor(self, source_name: str) -> None:
        """Preview the target tensor filled from source tensor ``source_name`` (a click on an overview
        cell): selected in the model tree, the preview tab brought up; said in the status bar when the
        plan leaves that tensor out (a dropped layer)."""
        plan = self.workspace.plan.plan if self.workspace.plan is not None else None
        target = next((t.name for t in plan.tensors if t.source_name == source_name), None) if plan else None
        if target is None:
            self.status.showMessage(f"{source_name} feeds no tensor of this target (its layer is not kept)", 8000)
            return
        self.model.select(target)
        self.centre_tabs.setCurrentWidget(self.preview)

    def materialise(self) -> None:
        if self.workspace.plan is not None:
            self.workspace.materialise()

    def _validation_config(self, steps: int):
        from core.training import ValidationConfig

        return ValidationConfig(
            steps=steps,
            eval_every=max(1, steps // 8),
            warmup=min(30, steps // 5),
            device=self.workspace.device,
            batch_size=8,
            seq_len=64,
        )

    def validate(self, steps: int) -> None:
        if self.workspace.plan is None:
            return
        self.validation.start(self.workspace.plan.recipe)
        self.centre_tabs.setCurrentWidget(self.validation)
        self.workspace.validate(self._validation_config(steps), **self.validation.options())

    def compare(self, request: dict) -> None:
        """Queue a leaderboard: ``{"candidates": [spec, ...], "steps": N, "quick_steps": K | None}``."""
        if self.workspace.plan is None:
            return
        self.leaderboard.start(request["candidates"], request["steps"], request.get("quick_steps"))
        self.centre_tabs.setCurrentWidget(self.leaderboard)
        self.workspace.compare(
            request["candidates"], self._validation_config(request["steps"]), quick_steps=request.get("quick_steps")
        )

    def export(self) -> None:
        if self.workspace.plan is None:
            return
        source = self.workspace.source
        default_parent = self.settings.get("export/last_folder") or str(Path.home())
        name = Path(source.display_name).name + "-graft" if source is not None else "graft-export"
        dialog = ExportDialog(
            str(Path(default_parent) / name),
            self.settings.get("export/max_shard_size"),
            self.settings.get("export/dtype"),
            self,
        )
        dialog.setObjectName("graft-export-dialog")
        dialog.accepted.connect(lambda: self._export_accepted(dialog.options()))
        dialog.open()

    def _export_accepted(self, options: dict) -> None:
        if not options["out_dir"]:
            show_error(self, "Export", "choose a folder to export into")
            return
        self.settings.set("export/last_folder", str(Path(options["out_dir"]).parent))
        self.settings.set("export/max_shard_size", options["max_shard_size"])
        self.settings.set("export/dtype", options["dtype"] or "")
        self.workspace.export(
            options["out_dir"],
            dtype=options["dtype"],
            max_shard_size=options["max_shard_size"],
            force=options["force"],
            replace_any=options["replace_any"],
            verifiable=options.get("verifiable", False),
        )

    def save_recipe(self, path: str | None = None) -> None:
        recipe = self.workspace.recipe
        if recipe is None:
            return
        if path is None:
            start = str(Path(self.settings.get("recipe/last_folder") or Path.home()) / "recipe.json")
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the recipe", start, "Recipes (*.json)")
            if not path:
                return
        try:
            recipe.save(path)
        except OSError as exc:
            show_error(self, "Cannot save the recipe", exc)
            return
        self.settings.set("recipe/last_folder", str(Path(path).parent))
        self.status.showMessage(f"Recipe saved to {path}; run it with: graft export --recipe {path} --out FOLDER", 8000)

    def open_recipe(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Open a recipe", self.settings.get("recipe/last_folder"), "Recipes (*.json);;All files (*)"
            )
            if not path:
                return
        from app.jobs.factories import load_recipe
        from core.errors import GraftError

        try:
            recipe = load_recipe(path)
        except GraftError as exc:
            show_error(self, "Cannot open the recipe", exc)
            return
        self.settings.set("recipe/last_folder", str(Path(path).parent))
        self.apply_recipe(recipe)

    def use_recipe(self, data: dict) -> None:
        """Load a recipe given as a dict (a leaderboard row's) the way a recipe file opens."""
        from core.errors import GraftError
        from core.recipe import Recipe

        try:
            recipe = Recipe.from_dict(data)
        except GraftError as exc:
            show_error(self, "Cannot use this recipe", exc)
            return
        self.apply_recipe(recipe)

    @flow
    async def apply_recipe(self, recipe) -> None:
        """Open the recipe's source; once open, show the recipe in the form, then plan and preview it."""
        from core.recipe import Recipe

        location = recipe.source if recipe.revision is None else f"{recipe.source}@{recipe.revision}"
        if await self.workspace.open_source(location, then_plan=False) is None:
            return  # failed (a dialog says why), cancelled or superseded
        self.target.set_recipe(recipe)
        device = self.target.device_combo.currentData()
        if recipe.device != device:  # the form fell back from a device this machine lacks
            recipe = Recipe.from_dict({**recipe.to_dict(), "device": device})
        await self.workspace.plan_recipe(recipe)

    # -- workspace events --------------------------------------------------------------------
    def _on_source_opening(self, location: str) -> None:
        self.sources.show_busy(location)
        self.status.showMessage(f"Opening {location}…")

    def _on_source_opened(self, opened) -> None:
        self.sources.show_recent()
        self.model.show_source(opened)
        self.target.set_source(opened)
        self.overview.set_source_ready(opened.architecture_error is None)
        self._open_location = opened.location
        if self._compare_window is not None:
            self.checkpoint_compare.set_open_source(opened.location)
        self.setWindowTitle(f"Graft — {opened.source.display_name}")
        self.status.showMessage(f"Opened {opened.source.display_name}", 5000)
        if opened.source.identity.get("kind") == "hub":
            self.sources.refresh_cache()  # a download just added it (or a new revision) to the cache

    def _previewing(self) -> str:
        """``<b>tensor</b> · strategy`` of the preview being computed (for its busy header)."""
        plan, name = self.workspace.plan, self.workspace.selected_tensor
        if plan is None or name is None:
            return ""
        strategy = next((t.strategy for t in plan.plan.tensors if t.name == name), "")
        return f"<b>{name}</b> · {strategy_label(strategy)}"

    def _on_source_failed(self, error: BaseException) -> None:
        self.status.clearMessage()
        show_error(self, "Cannot open the source", error)

    def _on_plan_changed(self, result) -> None:
        self.model.show_plan(result, self.workspace.selected_tensor)
        self.target.show_plan(result)
        self._set_ready(True)

    def _on_plan_failed(self, message: str) -> None:
        self.target.show_plan_error(message)
        self._set_ready(False)

    def _on_materialised(self, materialised) -> None:
        self.overview.show_materialised(materialised, materialised.recipe)

    def _strategy_guide(self) -> None:
        from app.words import guide_html
        from core.strategies.base import names

        show_html(self, "Strategies", guide_html(names("value")))

    def shortcuts(self) -> list[tuple[str, str]]:
        """``(keys, what)`` of every menu action with a shortcut, as the menus show them."""
        out = []
        for menu_action in self.menuBar().actions():
            for action in menu_action.menu().actions():
                keys = action.shortcut().toString(QtGui.QKeySequence.NativeText)
                if keys:
                    out.append((keys, action.text().replace("&", "").rstrip("…")))
        return out

    def _shortcuts(self) -> None:
        from app.words import shortcuts_html

        show_html(self, "Keyboard shortcuts", shortcuts_html(self.shortcuts()))

    def _about(self) -> None:
        from core import __version__

        QtWidgets.QMessageBox.about(
            self,
            "About Graft",
            f"Graft {__version__}\nBuild a new model's starting "
            "weights from a pretrained one, preview them, validate them, export them.",
        )

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt API)
        # The system switched between light and dark: plots are not styled by the palette.
        if event.type() in (QtCore.QEvent.PaletteChange, QtCore.QEvent.ApplicationPaletteChange):
            from app.plots._pg import pg
            from app.plots.style import apply_theme

            for plot in self.findChildren(pg.PlotWidget):
                apply_theme(plot)
        super().changeEvent(event)

    # -- lifetime ----------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = self.settings.load_bytes("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(self.default_size())
        state = self.settings.load_bytes("window/state")
        if state is not None:
            self.splitter.restoreState(state)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.settings.save_bytes("window/geometry", self.saveGeometry())
        self.settings.save_bytes("window/state", self.splitter.saveState())
        self.settings.sync()
        self.workspace.cancel_all()
        if self._owns_runner:
            self.runner.shutdown(wait=True)  # join workers: Qt aborts if a thread outlives the app
        super().closeEvent(event)
