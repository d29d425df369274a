"""Where the app's threads start: one stdlib thread pool, reporting back to the GUI thread in order.

Nothing else in the app creates threads. A :class:`Job` runs on a worker thread; its progress,
yielded items and outcome come back to the GUI thread through one queued Qt signal (a
:class:`_Bridge`), so they arrive in the order the worker sent them. (qasync's
``call_soon_threadsafe`` turns each message into its own zero-delay timer, and those were seen
to overtake each other: a job's result arrived before its last progress.) The outcome is always
the last message of a job: whoever turns it into the result of an awaited future
(:class:`~app.jobs.controller.JobController`) resumes the awaiting coroutine only after every
progress call and item was delivered.

The pool is a stdlib ``ThreadPoolExecutor`` under qasync's loop, not qasync's own
``QThreadExecutor``: with PySide6 that one crashed the interpreter at exit (ECOSYSTEM.md, "Qt
and threads"); the stdlib executor exits cleanly. Tensor work of the long jobs runs one step
further away, in child processes (``core.process.run_in_child``, called from the worker thread).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.jobs.loop import event_loop
from app.qt import QtCore
from core.errors import Cancelled
from core.progress import CancelToken, Throttle

log = logging.getLogger(__name__)

#: ``fn(progress=..., cancel=...)`` → a result, or a generator whose items are streamed.
JobFn = Callable[..., Any]

PROGRESS_HZ = 20.0
YIELD_FLUSH_S = 0.05  # streamed items cross threads in batches, at most 20 times a second
WORKER_NICENESS = 10


def _lower_worker_priority() -> None:
    """Run each worker thread at a lower OS priority than the GUI thread (Linux: per thread).

    When cores are scarce, the scheduler then gives the GUI thread the CPU — and, when a worker
    drops the GIL, the GIL — before the workers, which keeps the window responsive.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: keep the default priority
        pass


def _default_workers() -> int:
    # Leave the GUI a core: torch kernels release the GIL and would otherwise starve it.
    return max(2, min(4, (os.cpu_count() or 2) - 1))


@dataclass
class Job:
    """One unit of background work the app runs.

    Attributes:
        name: shown in the jobs panel ("materialise", "preview q_proj", ...).
        fn: called on a worker thread as ``fn(progress=..., cancel=...)``. It returns a result,
            or is a generator whose items are streamed back one by one (e.g. training steps)
            and whose ``return`` value is the result.
        cancel: the token ``fn`` checks between steps; set when the job is cancelled.
    """

    name: str
    fn: JobFn
    cancel: CancelToken = field(default_factory=CancelToken)


class _Bridge(QtCore.QObject):
    """Carries ``(callback, args)`` from any thread to the GUI thread, in order."""

    posted = QtCore.Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self.posted.connect(self._dispatch, QtCore.Qt.QueuedConnection)

    def _dispatch(self, callback, args) -> None:
        callback(*args)


class JobRunner:
    """Owns the worker threads. One per window; ``shutdown()`` joins them (call on close)."""

    def __init__(self, max_workers: int | None = None) -> None:
        event_loop()  # the loop the jobs' results are awaited on exists before the first job
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or _default_workers(),
            thread_name_prefix="graft-job",
            initializer=_lower_worker_priority,
        )
        self._bridge = _Bridge()
        self._tokens: set[CancelToken] = set()
        self._lock = threading.Lock()
        self.closed = False

    def start(
        self,
        job: Job,
        *,
        on_progress: Callable[[float, str], None],
        on_items: Callable[[list], None],
        on_outcome: Callable[[bool, Any], None],
    ) -> None:
        """Run ``job`` on a worker thread. On the GUI thread, in the order the worker sent them:
        ``on_progress(fraction, message)`` (at most 20 a second), ``on_items(batch)`` (a
        generator job's items, in order, batched at most 20 times a second), then once
        ``on_outcome(True, result)`` or ``on_outcome(False, exception)`` (``Cancelled`` when
        cancelled). ``job.cancel`` is set if the runner shuts down first."""
        if self.closed:
            raise RuntimeError("the job runner is shut down")
        with self._lock:
            self._tokens.add(job.cancel)
        queued = self._executor.submit(self._work, job, on_progress, on_items, on_outcome)
        queued.add_done_callback(partial(self._dropped, job, on_outcome))

    def _dropped(self, job: Job, on_outcome, queued: concurrent.futures.Future) -> None:
        """A job still waiting for a worker when the runner shut down never runs: its awaiter
        hears ``Cancelled`` all the same (it would wait for ever)."""
        if queued.cancelled():
            with self._lock:
                self._tokens.discard(job.cancel)
            self.post(on_outcome, False, Cancelled(f"{job.name}: the app is closing"))

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """From any thread: run ``callback(*args)`` on the GUI thread soon, after earlier posts."""
        self._bridge.posted.emit(callback, args)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every running job and join the worker threads."""
        self.closed = True
        with self._lock:
            tokens = list(self._tokens)
        for token in tokens:
            token.cancel()
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # -- worker side -------------------------------------------------------------------------
    def _work(self, job: Job, on_progress, on_items, on_outcome) -> None:
        token = job.cancel
        try:
            token.check()
            progress = Throttle(lambda f, m: self.post(on_progress, f, m), hz=PROGRESS_HZ)
            result = job.fn(progress=progress, cancel=token)
            if inspect.isgenerator(result):
                result = self._drain(job, result, on_items)
            outcome = (True, result)
        except Exception as exc:  # the outcome: raised again where the job is awaited
            outcome = (False, exc)
        finally:
            with self._lock:
                self._tokens.discard(token)
        self.post(on_outcome, *outcome)

    def _drain(self, job: Job, generator, on_items) -> Any:
        pending: list[Any] = []
        last_flush = 0.0
        try:
            while True:
                job.cancel.check()
                try:
                    item = next(generator)
                except StopIteration as stop:
                    return stop.value
                pending.append(item)
                now = time.monotonic()
                if now - last_flush >= YIELD_FLUSH_S:
                    self.post(on_items, pending)
                    pending, last_flush = [], now
        finally:
            if pending:  # what was yielded before the end (or the cancel) still arrives, in order
                self.post(on_items, pending)
            generator.close()  # lets the generator's own cleanup run on this worker thread
