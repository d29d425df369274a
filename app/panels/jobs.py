"""Jobs: materialise, validate, export — each queued with a progress bar, an ETA and cancel."""

from __future__ import annotations

from app.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING
from app.qt import QtCore, QtWidgets

STATE_TEXT = {QUEUED: "queued", RUNNING: "", DONE: "done", FAILED: "failed", CANCELLED: "cancelled"}


def format_eta(seconds: float) -> str:
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s left"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


class JobRow(QtWidgets.QWidget):
    """One queue entry: name, progress with message and ETA, cancel."""

    def __init__(self, entry, on_cancel, parent=None) -> None:
        super().__init__(parent)
        self.entry = entry
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.name = QtWidgets.QLabel(entry.job.name)
        self.name.setMinimumWidth(90)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setText("✕")
        self.cancel_button.setToolTip(f"Cancel {entry.job.name}")
        self.cancel_button.clicked.connect(lambda: on_cancel(entry))
        layout.addWidget(self.name)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.refresh()

    def refresh(self) -> None:
        e = self.entry
        if e.state == RUNNING and e.fraction < 0:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(max(e.fraction, 0) * 1000))
        if e.state == RUNNING:
            # The ETA first and the message (often a long tensor name) elided in the middle, so the bar
            # never shows a clipped "oder.layer.1.output.dense.wei…"; the whole message is the tooltip.
            eta = format_eta(e.eta)
            room = self.bar.width() - self.bar.fontMetrics().horizontalAdvance(f"{eta} · ") - 16
            message = self.bar.fontMetrics().elidedText(e.message, QtCore.Qt.ElideMiddle, max(room, 40))
            self.bar.setFormat(" · ".join(p for p in (eta, message or "%p%") if p))
            self.bar.setToolTip(e.message)
        elif e.state == DONE:
            self.bar.setFormat(f"done in {e.elapsed:.1f} s")
        elif e.state == FAILED:
            self.bar.setFormat(f"failed: {e.error}")
            self.bar.setToolTip(str(e.error))
        else:
            self.bar.setFormat(STATE_TEXT[e.state])
        self.cancel_button.setEnabled(e.active)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.refresh()  # the message is elided to the bar's new width


class JobsPanel(QtWidgets.QWidget):
    """Signals (user intents): materialise_requested, validate_requested(steps), export_requested."""

    materialise_requested = QtCore.Signal()
    validate_requested = QtCore.Signal(int)
    export_requested = QtCore.Signal()

    def __init__(self, queue, parent=None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.rows: dict[int, JobRow] = {}
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel("<b>Jobs</b>"))
        buttons = QtWidgets.QHBoxLayout()
        self.materialise_button = QtWidgets.QPushButton("Materialise")
        self.materialise_button.setToolTip("Fill every target tensor (Ctrl+M)")
        self.materialise_button.clicked.connect(self.materialise_requested)
        self.validate_button = QtWidgets.QPushButton("Validate")
        self.validate_button.setToolTip("Train transferred vs baseline for a few steps (Ctrl+T)")
        self.validate_button.clicked.connect(lambda: self.validate_requested.emit(self.steps_spin.value()))
        self.export_button = QtWidgets.QPushButton("Export…")
        self.export_button.setToolTip("Write a Hugging Face folder (Ctrl+E)")
        self.export_button.clicked.connect(self.export_requested)
        for b in (self.materialise_button, self.validate_button, self.export_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        steps_row = QtWidgets.QHBoxLayout()
        steps_row.addWidget(QtWidgets.QLabel("Validation steps"))
        self.steps_spin = QtWidgets.QSpinBox()
        self.steps_spin.setRange(1, 100_000)
        self.steps_spin.setValue(100)
        steps_row.addWidget(self.steps_spin)
        steps_row.addStretch(1)
        self.clear_button = QtWidgets.QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove the jobs that are done, failed or cancelled from this list")
        self.clear_button.clicked.connect(self.clear_finished)
        steps_row.addWidget(self.clear_button)
        layout.addLayout(steps_row)
        self.list = QtWidgets.QListWidget()
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.NoSelection)
        layout.addWidget(self.list, 1)
        queue.entry_added.connect(self._on_entry_added)
        queue.entry_changed.connect(self._on_entry_changed)
        self.set_ready(False)

    def set_ready(self, ready: bool) -> None:
        for b in (self.materialise_button, self.validate_button, self.export_button):
            b.setEnabled(ready)

    def _on_entry_added(self, entry) -> None:
        item = QtWidgets.QListWidgetItem()
        row = JobRow(entry, self.queue.cancel)
        item.setSizeHint(row.sizeHint())
        self.list.insertItem(0, item)
        self.list.setItemWidget(item, row)
        self.rows[entry.id] = row

    def clear_finished(self) -> None:
        """Drop the rows of finished jobs (the running and queued ones stay)."""
        for i in reversed(range(self.list.count())):
            row = self.list.itemWidget(self.list.item(i))
            if row is not None and not row.entry.active:
                self.rows.pop(row.entry.id, None)
                self.list.takeItem(i)
                row.deleteLater()

    def _on_entry_changed(self, entry) -> None:
        row = self.rows.get(entry.id)
        if row is not None:
            row.refresh()
