"""A queue of long jobs (materialise, validate, export) run one after another."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from app.jobs.controller import JobController
from app.jobs.runner import Job, JobRunner
from app.qt import QtCore

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass(eq=False)
class QueueEntry:
    """A job in the queue and what is known of it so far (read on the GUI thread)."""

    job: Job
    id: int
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    eta: float = -1.0
    started_at: float | None = None
    ended_at: float | None = None
    result: Any = None
    error: BaseException | None = None
    items: list[Any] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at


class JobQueue(QtCore.QObject):
    """Runs queued jobs in order on one :class:`JobController`.

    Signals:
        entry_added(entry), entry_changed(entry): for the jobs panel.
        entry_yielded(entry, item): a streamed item (e.g. a training step) of a running entry.
        entry_finished(entry): it is done, failed or cancelled (see ``entry.state``).
    """

    entry_added = QtCore.Signal(object)
    entry_changed = QtCore.Signal(object)
    entry_yielded = QtCore.Signal(object, object)
    entry_finished = QtCore.Signal(object)

    def __init__(self, runner: JobRunner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = JobController(runner, self)
        self.entries: list[QueueEntry] = []
        self._ids = itertools.count(1)
        self._running: QueueEntry | None = None
        c = self.controller
        c.progressed.connect(self._on_progressed)
        c.yielded.connect(self._on_yielded)
        c.returned.connect(self._on_returned)
        c.errored.connect(self._on_errored)
        c.aborted.connect(self._on_aborted)
        c.finished.connect(self._on_finished)

    @property
    def busy(self) -> bool:
        return any(e.active for e in self.entries)

    def enqueue(self, job: Job) -> QueueEntry:
        entry = QueueEntry(job, next(self._ids))
        self.entries.append(entry)
        self.entry_added.emit(entry)
        self._next()
        return entry

    def cancel(self, entry: QueueEntry) -> None:
        if entry.state == QUEUED:
            entry.job.cancel.cancel()
            self._end(entry, CANCELLED)
        elif entry is self._running:
            self.controller.cancel()

    def cancel_all(self) -> None:
        for entry in list(self.entries):
            self.cancel(entry)

    def _next(self) -> None:
        if self._running is not None:
            return
        entry = next((e for e in self.entries if e.state == QUEUED), None)
        if entry is None:
            return
        self._running = entry
        entry.state = RUNNING
        entry.started_at = time.monotonic()
        self.controller.start(entry.job)
        self.entry_changed.emit(entry)

    def _end(self, entry: QueueEntry, state: str) -> None:
        entry.state = state
        entry.ended_at = time.monotonic()
        if state == DONE:
            entry.fraction = 1.0
        self.entry_changed.emit(entry)
        self.entry_finished.emit(entry)

    def _on_progressed(self, fraction: float, message: str, eta: float) -> None:
        if self._running:
            e = self._running
            e.fraction, e.message, e.eta = fraction, message, eta
            self.entry_changed.emit(e)

    def _on_yielded(self, item: Any) -> None:
        if self._running:
            self._running.items.append(item)
            self.entry_yielded.emit(self._running, item)

    def _on_returned(self, result: Any) -> None:
        if self._running:
            self._running.result = result
            self._end(self._running, DONE)

    def _on_errored(self, error: BaseException) -> None:
        if self._running:
            self._running.error = error
            self._end(self._running, FAILED)

    def _on_aborted(self) -> None:
        if self._running:
            self._end(self._running, CANCELLED)

    def _on_finished(self) -> None:
        self._running = None
        self._next()
