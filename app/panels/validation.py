"""Validation: live loss curves of the transferred start against the baseline."""

from __future__ import annotations

from app.plots import CurvesPlot
from app.qt import QtWidgets


class ValidationPanel(QtWidgets.QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QtWidgets.QLabel("Validate (Ctrl+T) trains the transferred target and a random-init "
                                        "baseline on the same batches; their losses appear here live.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.curves = CurvesPlot(title="loss: training (solid), evaluation (dashed)")
        layout.addWidget(self.curves, 1)

    def start(self) -> None:
        self.curves.clear_data()
        self.summary.setText("Validation running…")

    def add_step(self, metrics) -> None:
        if metrics.train_loss is not None:
            self.curves.add_point(metrics.arm, metrics.step, metrics.train_loss)
        if metrics.eval_loss is not None:
            self.curves.add_point(f"{metrics.arm} (eval)", metrics.step, metrics.eval_loss)

    def finish(self, report) -> None:
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
        self.summary.setText("  ".join(lines))
