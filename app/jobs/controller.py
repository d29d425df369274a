"""A JobController runs one job at a time and turns its life into Qt signals on the GUI thread.

Starting a new job cancels the one running (a newer preview makes the older one pointless);
the superseded job finishes in the background and nothing of it reaches the GUI any more.
(Orange's ``ConcurrentMixin``.)
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any

from app.jobs.runner import Job, JobRunner
from app.qt import QtCore
from core.errors import Cancelled, GraftError
from core.jobs import Throttle

log = logging.getLogger(__name__)

PROGRESS_HZ = 20.0
YIELD_FLUSH_S = 0.05  # streamed items cross threads in batches, at most 20 times a second


def eta_seconds(elapsed: float, fraction: float) -> float | None:
    """Remaining seconds by linear extrapolation, or ``None`` while it would be a guess."""
    if fraction <= 0.02 or fraction >= 1.0 or elapsed < 0.5:
        return None
    return elapsed * (1.0 - fraction) / fraction


class _Run:
    """Book-keeping for one start() call; lives on the GUI thread except ``work``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.started_at = time.monotonic()
        self.pending: list[Any] = []  # yielded items not yet posted (worker side)
        self.last_flush = 0.0


class JobController(QtCore.QObject):
    """Runs one :class:`Job` at a time on a :class:`JobRunner`.

    Signals (all emitted on the GUI thread, for the current job only):
        started(name): the job was submitted.
        progressed(fraction, message, eta): fraction in [0, 1] or < 0 when unknown; eta in
            seconds or -1 when unknown. At most 20 a second.
        yielded(item): one item a generator job produced, in order.
        returned(result): the job finished normally.
        errored(exception): the job raised; ``str(exception)`` is for the user.
        aborted(): the job was cancelled.
        finished(): after any of returned / errored / aborted.
    """

    started = QtCore.Signal(str)
    progressed = QtCore.Signal(float, str, float)
    yielded = QtCore.Signal(object)
    returned = QtCore.Signal(object)
    errored = QtCore.Signal(object)
    aborted = QtCore.Signal()
    finished = QtCore.Signal()

    def __init__(self, runner: JobRunner, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._current: _Run | None = None

    # -- public ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._current is not None

    @property
    def current_job(self) -> Job | None:
        return self._current.job if self._current else None

    def start(self, job: Job) -> None:
        """Cancel the running job, if any, and start ``job`` (ignored once the runner is shut down)."""
        self.cancel(silently=True)
        if self._runner.closed:
            log.debug("not starting %s: the app is closing", job.name)
            return
        run = _Run(job)
        self._current = run
        self._runner.submit(lambda: self._work(run), job.cancel)
        self.started.emit(job.name)

    def cancel(self, *, silently: bool = False) -> None:
        """Ask the running job to stop. ``aborted`` follows unless ``silently`` (superseded)."""
        run = self._current
        if run is None:
            return
        run.job.cancel.cancel()
        if silently:
            self._current = None  # drop everything it still sends

    # -- worker side -------------------------------------------------------------------------
    def _work(self, run: _Run) -> None:
        token = run.job.cancel
        try:
            token.check()
            progress = Throttle(lambda f, m: self._runner.post(self._on_progress, run, f, m), hz=PROGRESS_HZ)
            result = run.job.fn(progress=progress, cancel=token)
            if inspect.isgenerator(result):
                result = self._drain(run, result)
            outcome = (True, result)
        except Exception as exc:  # reported through ``errored`` / ``aborted``
            outcome = (False, exc)
        self._flush(run)
        self._runner.post(self._on_outcome, run, outcome)

    def _drain(self, run: _Run, generator) -> Any:
        token = run.job.cancel
        try:
            while True:
                token.check()
                try:
                    item = next(generator)
                except StopIteration as stop:
                    return stop.value
                run.pending.append(item)
                now = time.monotonic()
                if now - run.last_flush >= YIELD_FLUSH_S:
                    self._flush(run)
                    run.last_flush = now
        finally:
            generator.close()  # lets the generator's own cleanup run on this worker thread

    def _flush(self, run: _Run) -> None:
        if run.pending:
            batch, run.pending = run.pending, []
            self._runner.post(self._on_yielded, run, batch)

    # -- GUI side ----------------------------------------------------------------------------
    def _on_outcome(self, run: _Run, outcome: tuple[bool, Any]) -> None:
        # Delivered through the same ordered queue as progress and items, so it comes last.
        ok, value = outcome
        if ok:
            self._finish(run, lambda: self.returned.emit(value))
        elif isinstance(value, Cancelled):
            self._finish(run, self.aborted.emit)
        else:  # shown to the user by whoever listens to ``errored``; the traceback goes to the log
            if run is self._current:
                expected = isinstance(value, GraftError)  # a user-facing message, not a bug
                log.log(logging.DEBUG if expected else logging.ERROR, "job %s failed", run.job.name, exc_info=value)
            self._finish(run, lambda: self.errored.emit(value))

    def _finish(self, run: _Run, emit) -> None:
        if run is not self._current:
            return
        self._current = None
        emit()
        self.finished.emit()

    def _on_progress(self, run: _Run, fraction: float, message: str) -> None:
        if run is self._current:
            eta = eta_seconds(time.monotonic() - run.started_at, fraction)
            self.progressed.emit(float(fraction), str(message), -1.0 if eta is None else eta)

    def _on_yielded(self, run: _Run, batch: list[Any]) -> None:
        if run is self._current:
            for item in batch:
                self.yielded.emit(item)


def on_gui_thread() -> bool:
    """Whether the caller runs on the thread that owns the QApplication."""
    app = QtCore.QCoreApplication.instance()
    return app is not None and app.thread() is QtCore.QThread.currentThread() and threading.current_thread() is threading.main_thread()
