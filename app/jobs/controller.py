"""A JobController runs one job at a time: ``result = await controller.run(job)``.

Starting a new job supersedes the one running (a newer preview makes the older one pointless):
the older job is cancelled and its ``await`` raises :class:`~core.errors.Cancelled` at once;
nothing more of it reaches the GUI. (Orange's ``ConcurrentMixin``.)

Awaiting, in a flow (an ``async def`` on the app's loop, see ``app.jobs.loop``)::

    try:
        plan = await self.plan_controller.run(factories.plan_job(recipe, source))
    except Cancelled:      # superseded, or cancelled by the user
        return
    except GraftError as exc:
        ...                # the job's error, as it was raised on the worker thread

The job's progress and streamed items (``on_item``) are delivered in order, on the GUI thread,
before the awaiting coroutine resumes with the result. Cancelling is both ways: ``cancel()`` (or
a newer job) makes the ``await`` raise ``Cancelled``; cancelling the awaiting asyncio task
cancels the job (its ``CancelToken``, which stops a child process too). Cancellation is always
``core.errors.Cancelled`` from the job's side; the awaiting task itself sees asyncio's
``CancelledError`` only when it is the one cancelled.

Signals, for views that show a job's life (busy indicators, progress bars; all emitted on the
GUI thread, for the current job only):
    started(name), progressed(fraction, message, eta) (fraction < 0 when unknown; eta in
    seconds or -1; at most 20 a second), aborted() (the job stopped after a cancel), finished()
    (after the job returned, raised or stopped; not for a superseded job).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from app.jobs.loop import event_loop
from app.jobs.runner import Job, JobRunner
from app.qt import QtCore
from core.errors import Cancelled, GraftError

log = logging.getLogger(__name__)


def eta_seconds(elapsed: float, fraction: float) -> float | None:
    """Remaining seconds by linear extrapolation, or ``None`` while it would be a guess."""
    if fraction <= 0.02 or fraction >= 1.0 or elapsed < 0.5:
        return None
    return elapsed * (1.0 - fraction) / fraction


class _Run:
    """One ``run()`` call, on the GUI thread: its job, the future its caller awaits, its items' sink."""

    def __init__(self, job: Job, future: asyncio.Future, on_item: Callable[[Any], None] | None) -> None:
        self.job = job
        self.future = future
        self.on_item = on_item
        self.started_at = time.monotonic()


class JobController(QtCore.QObject):
    """Runs one :class:`Job` at a time on a :class:`JobRunner` (see the module docstring)."""

    started = QtCore.Signal(str)
    progressed = QtCore.Signal(float, str, float)
    aborted = QtCore.Signal()
    finished = QtCore.Signal()

    def __init__(self, runner: JobRunner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._current: _Run | None = None

    @property
    def running(self) -> bool:
        return self._current is not None

    def run(self, job: Job, *, on_item: Callable[[Any], None] | None = None) -> asyncio.Future:
        """Supersede the running job, if any, and start ``job``; await the returned future for its result.

        ``on_item(item)`` receives a generator job's items, in order, on the GUI thread. Once
        the runner is shut down (the app is closing) the job does not start and the future
        raises ``Cancelled``.
        """
        self._supersede()
        future = event_loop().create_future()
        if self._runner.closed:
            log.debug("not starting %s: the app is closing", job.name)
            future.set_exception(Cancelled("the app is closing"))
            return future
        run = _Run(job, future, on_item)
        self._current = run
        future.add_done_callback(partial(self._on_future_done, run))
        self._runner.start(
            job,
            on_progress=partial(self._on_progress, run),
            on_items=partial(self._on_items, run),
            on_outcome=partial(self._on_outcome, run),
        )
        self.started.emit(job.name)
        return future

    def cancel(self) -> None:
        """Ask the running job to stop; ``aborted`` and ``finished`` follow, and its ``await``
        raises ``Cancelled``, once it has stopped."""
        if self._current is not None:
            self._current.job.cancel.cancel()

    def _supersede(self) -> None:
        run, self._current = self._current, None  # drop everything it still sends
        if run is not None:
            run.job.cancel.cancel()
            if not run.future.done():
                run.future.set_exception(Cancelled(f"{run.job.name}: superseded by a newer job"))

    # -- GUI side ----------------------------------------------------------------------------
    def _on_future_done(self, run: _Run, future: asyncio.Future) -> None:
        if future.cancelled():  # the awaiting task was cancelled: so is the job
            run.job.cancel.cancel()
        else:
            future.exception()  # retrieved here: a superseded job's error is no one's business

    def _on_progress(self, run: _Run, fraction: float, message: str) -> None:
        if run is self._current:
            eta = eta_seconds(time.monotonic() - run.started_at, fraction)
            self.progressed.emit(float(fraction), str(message), -1.0 if eta is None else eta)

    def _on_items(self, run: _Run, batch: list[Any]) -> None:
        if run is self._current and run.on_item is not None:
            for item in batch:
                run.on_item(item)

    def _on_outcome(self, run: _Run, ok: bool, value: Any) -> None:
        # Delivered through the same ordered queue as progress and items, so it comes last.
        if run is not self._current:
            return
        self._current = None
        if not ok and not isinstance(value, Cancelled):  # the traceback goes to the log
            expected = isinstance(value, GraftError)  # a user-facing message, not a bug
            log.log(logging.DEBUG if expected else logging.ERROR, "job %s failed", run.job.name, exc_info=value)
        if not run.future.done():
            if ok:
                run.future.set_result(value)
            else:
                run.future.set_exception(value)
        if not ok and isinstance(value, Cancelled):
            self.aborted.emit()
        self.finished.emit()
