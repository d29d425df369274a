"""A queue of long jobs (materialise, validate, export, compare) run one after another.

``entry = queue.submit(job)`` adds a job and returns its :class:`QueueEntry` at once (the jobs
panel shows it); ``result = await entry`` waits for it. The await raises the job's error, or
``core.errors.Cancelled`` when the entry was cancelled (in the jobs panel, or by cancelling the
awaiting asyncio task). The entries are run by one coroutine, :meth:`JobQueue._run_entries`,
on a :class:`~app.jobs.controller.JobController`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.jobs.controller import JobController
from app.jobs.loop import event_loop, start_flow
from app.jobs.runner import Job, JobRunner
from app.qt import QtCore
from core.errors import Cancelled

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass(eq=False)
class QueueEntry:
    """A job in the queue and what is known of it so far (read on the GUI thread); awaitable."""

    job: Job
    id: int
    future: asyncio.Future = field(repr=False)
    on_item: Callable[[Any], None] | None = field(default=None, repr=False)
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    eta: float = -1.0
    started_at: float | None = None
    ended_at: float | None = None
    result: Any = None
    error: BaseException | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self.future.__await__()

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

    Signals, for the jobs panel:
        entry_added(entry), entry_changed(entry): an entry was queued; its state or progress changed.
    """

    entry_added = QtCore.Signal(object)
    entry_changed = QtCore.Signal(object)

    def __init__(self, runner: JobRunner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = JobController(runner, self)
        self.controller.progressed.connect(self._on_progressed)
        self.entries: list[QueueEntry] = []
        self._ids = itertools.count(1)
        self._running: QueueEntry | None = None
        self._runs: asyncio.Task | None = None  # the coroutine running the entries, while there are any

    @property
    def busy(self) -> bool:
        return any(e.active for e in self.entries)

    def submit(self, job: Job, *, on_item: Callable[[Any], None] | None = None) -> QueueEntry:
        """Queue ``job``; ``await`` the entry for its result. ``on_item(item)`` receives a
        generator job's items, in order, on the GUI thread."""
        entry = QueueEntry(job, next(self._ids), event_loop().create_future(), on_item)
        entry.future.add_done_callback(partial(self._on_future_done, entry))
        self.entries.append(entry)
        self.entry_added.emit(entry)
        if self._runs is None:
            self._runs = start_flow(self._run_entries())
        return entry

    def cancel(self, entry: QueueEntry) -> None:
        if entry.state == QUEUED:
            entry.job.cancel.cancel()
            self._end(entry, CANCELLED, error=Cancelled(f"{entry.job.name}: cancelled before it started"))
        elif entry is self._running:
            self.controller.cancel()

    def cancel_all(self) -> None:
        for entry in list(self.entries):
            self.cancel(entry)

    async def _run_entries(self) -> None:
        try:
            while (entry := next((e for e in self.entries if e.state == QUEUED), None)) is not None:
                self._running = entry
                entry.state = RUNNING
                entry.started_at = time.monotonic()
                self.entry_changed.emit(entry)
                try:
                    result = await self.controller.run(entry.job, on_item=entry.on_item)
                except Cancelled as exc:
                    self._end(entry, CANCELLED, error=exc)
                except Exception as exc:
                    self._end(entry, FAILED, error=exc)
                else:
                    self._end(entry, DONE, result=result)
                finally:
                    self._running = None
        finally:
            self._runs = None

    def _end(self, entry: QueueEntry, state: str, *, result: Any = None, error: BaseException | None = None) -> None:
        entry.state = state
        entry.ended_at = time.monotonic()
        if state == DONE:
            entry.fraction, entry.result = 1.0, result
        elif state == FAILED:
            entry.error = error
        if not entry.future.done():
            if state == DONE:
                entry.future.set_result(result)
            else:
                entry.future.set_exception(error)
        self.entry_changed.emit(entry)

    def _on_future_done(self, entry: QueueEntry, future: asyncio.Future) -> None:
        if future.cancelled():  # the awaiting task was cancelled: so is the entry
            self.cancel(entry)
        else:
            future.exception()  # retrieved here: whoever awaited it has it; nobody else needs it

    def _on_progressed(self, fraction: float, message: str, eta: float) -> None:
        if self._running:
            e = self._running
            e.fraction, e.message, e.eta = fraction, message, eta
            self.entry_changed.emit(e)
