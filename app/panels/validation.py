"""Validation: live loss curves of the transferred start against the baseline.

Two options go with the next run: distil from the source (the source model as a teacher for
every arm, ``core.training.teacher``) and keep the trained weights (each trained arm saved as a
Hugging Face folder in a run folder of the app's data). Kept weights can then be exported: the
arm's folder is copied atomically to a folder the user picks, refused as an export is.
"""

from __future__ import annotations

from pathlib import Path

from app.panels.stale import ResultStamp
from app.plots import CurvesPlot
from app.qt import QtCore, QtWidgets


class ValidationPanel(QtWidgets.QWidget):
    """Signals (user intents):
    export_trained_requested(trained_folder, out_folder): copy a kept arm's folder there.
    """

    export_trained_requested = QtCore.Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.saved: dict[str, str] = {}  # arm → folder of its trained weights (last run)
        self.last_folder = str(Path.home())  # where the export dialog starts
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        options = QtWidgets.QHBoxLayout()
        self.teacher_box = QtWidgets.QCheckBox("Distil from the source (teacher)")
        self.teacher_box.setToolTip(
            "Every arm, the baseline too, also learns to match the source model's outputs "
            "(its logits, or its hidden states when it has no task head); eval loss stays the task's"
        )
        self.keep_box = QtWidgets.QCheckBox("Keep trained weights")
        self.keep_box.setToolTip(
            "Save each trained arm (not the baseline) as a Hugging Face folder, to export afterwards"
        )
        self.arm_combo = QtWidgets.QComboBox()
        self.arm_combo.setToolTip("which trained arm to export")
        self.arm_combo.hide()
        self.export_button = QtWidgets.QPushButton("Export trained…")
        self.export_button.setToolTip("Copy the trained weights of the last run to a new folder")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self.export_trained())
        for widget in (self.teacher_box, self.keep_box):
            options.addWidget(widget)
        options.addStretch(1)
        options.addWidget(self.arm_combo)
        options.addWidget(self.export_button)
        layout.addLayout(options)
        self.summary = QtWidgets.QLabel(
            "Validate (Ctrl+T) trains the transferred target and a random-init "
            "baseline on the same batches; their losses appear here live."
        )
        self.summary.setWordWrap(True)
        self.curves = CurvesPlot(title="loss: training (solid), evaluation (dashed)")
        self.stamp = ResultStamp("validation", [self.summary, self.curves])
        layout.addWidget(self.stamp)
        layout.addWidget(self.summary)
        layout.addWidget(self.curves, 1)

    def options(self) -> dict:
        """The options of the next run: ``teacher`` and ``keep_trained``."""
        return {"teacher": self.teacher_box.isChecked(), "keep_trained": self.keep_box.isChecked()}

    def start(self, recipe) -> None:
        """A run of ``recipe`` starts: its curves replace the last run's."""
        self.stamp.stamp(recipe)
        self.stamp.set_live(True)
        self.curves.clear_data()
        self._set_saved({})
        self.summary.setText("Validation running…")

    def add_step(self, metrics) -> None:
        if metrics.train_loss is not None:
            self.curves.add_point(metrics.arm, metrics.step, metrics.train_loss)
        if metrics.eval_loss is not None:
            self.curves.add_point(f"{metrics.arm} (eval)", metrics.step, metrics.eval_loss)

    def finish(self, report) -> None:
        self.stamp.set_live(False)
        self.curves.redraw()
        lines = [f"Validation {report.status}: {report.steps_completed} steps on {report.task}."]
        try:
            verdicts = report.verdicts
        except Exception:  # a partial run may have too few evaluations for a verdict
            verdicts = {}
        for verdict in verdicts.values():
            lines.append(verdict.sentence())
            if verdict.steps_to_baseline is not None:
                self.curves.mark_step(verdict.steps_to_baseline, f"{verdict.arm} reaches baseline")
        lines = ["  ".join(lines)]  # the verdicts read as one paragraph; what follows, one line each
        teacher = getattr(report, "teacher", None)
        if teacher:
            lines.append(
                f"Teacher ({_teacher_kind(teacher)}): {teacher.get('seconds', 0):.1f} s, "
                f"{teacher.get('ms_per_step', 0):.0f} ms/step."
            )
        saved = {arm: str(path) for arm, path in (getattr(report, "saved", None) or {}).items()}
        self._set_saved(saved)
        if saved:
            lines.append(f"Trained weights kept in {Path(next(iter(saved.values()))).parent}.")
        self.summary.setText("\n".join(lines))

    def cancelled(self, saved: dict | None = None) -> None:
        """The run was cancelled: say so (with the steps every arm completed) and keep its curves."""
        self.stamp.set_live(False)
        self.curves.redraw()
        steps = self._steps_done()
        text = f"Validation cancelled after {steps} step{'s' if steps != 1 else ''}."
        self._set_saved(dict(saved or {}))
        if self.saved:
            text += " The partly trained weights were kept; Export trained… copies them."
        self.summary.setText(text)

    def failed(self, message: str) -> None:
        """The run stopped with an error (its dialog says why): the panel no longer says "running"."""
        self.stamp.set_live(False)
        self.curves.redraw()
        reason = (message.strip().splitlines() or ["unknown error"])[0]
        steps = self._steps_done()
        after = f" after {steps} step{'s' if steps != 1 else ''}" if steps else ""
        self.summary.setText(f"Validation failed{after}: {reason}")

    def _steps_done(self) -> int:
        """Steps completed by every arm so far (the shortest training curve)."""
        lengths = [
            int(points[-1][0])
            for label, points in self.curves.series().items()
            if points and not label.endswith("(eval)")
        ]
        return min(lengths, default=0)

    def _set_saved(self, saved: dict[str, str]) -> None:
        self.saved = saved
        self.arm_combo.clear()
        for arm, path in saved.items():
            self.arm_combo.addItem(arm, path)
        self.arm_combo.setVisible(len(saved) > 1)
        self.export_button.setEnabled(bool(saved))

    def export_trained(self, out_dir: str | None = None, arm: str | None = None) -> None:
        """Ask for a new folder (unless ``out_dir`` is given) and request the copy of ``arm``'s
        trained weights (default: the arm chosen in the combo)."""
        if not self.saved:
            return
        arm = arm or self.arm_combo.currentText() or next(iter(self.saved))
        trained = self.saved.get(arm)
        if trained is None:
            return
        if out_dir is None:
            start = str(Path(self.last_folder) / f"{arm}-trained")
            out_dir, _ = QtWidgets.QFileDialog.getSaveFileName(
                self,
                "Export the trained weights to a new folder",
                start,
                "Folders (*)",
                options=QtWidgets.QFileDialog.ShowDirsOnly,
            )
            if not out_dir:
                return
        self.last_folder = str(Path(out_dir).parent)
        self.export_trained_requested.emit(trained, str(out_dir))


def _teacher_kind(teacher: dict) -> str:
    kind = teacher.get("kind")
    return {"logits": "logits of the source", "hidden": "hidden states of the source"}.get(kind, str(kind))
