"""Where the app's threads start: one stdlib thread pool, reporting back through Qt's event loop.

Nothing else in the app creates threads. Work is submitted as a :class:`Job`; its progress,
yielded items and outcome come back to the GUI thread through one queued Qt signal (a
:class:`_Bridge`), so they arrive in the order the worker sent them. (qasync's
``call_soon_threadsafe`` turns each message into its own zero-delay timer, and those were seen
to overtake each other: a job's result arrived before its last progress.) The qasync loop runs
the Qt event loop in ``gui.main``, so asyncio code can live in the app; jobs do not depend on it.
qasync's own ``QThreadExecutor`` is not used: with PySide6 it crashed the interpreter at exit
(see ECOSYSTEM.md "Qt and threads"); the stdlib executor exits cleanly.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.qt import QtCore, QtWidgets  # PySide6 first: qasync takes the binding loaded

# isort: split
import qasync

from core.jobs import CancelToken

log = logging.getLogger(__name__)

#: ``fn(progress=..., cancel=...)`` → a result, or a generator whose items are streamed.
JobFn = Callable[..., Any]

_LOOP: qasync.QEventLoop | None = None


def event_loop() -> qasync.QEventLoop:
    """The application's qasync loop (created on first use; ``gui.main`` runs it)."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        app = QtWidgets.QApplication.instance()
        if app is None:
            raise RuntimeError("create the QApplication before starting jobs")
        _LOOP = qasync.QEventLoop(app)
    return _LOOP


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
    """One unit of long work.

    Attributes:
        name: shown in the jobs panel ("materialise", "preview q_proj", ...).
        fn: called on a worker thread as ``fn(progress=..., cancel=...)``. It returns a result,
            or is a generator whose items are streamed back one by one (e.g. training steps)
            and whose ``return`` value is the result.
        cancel: the token ``fn`` checks between steps; set by the controller's ``cancel()``.
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
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or _default_workers(), thread_name_prefix="graft-job",
            initializer=_lower_worker_priority,
        )
        self._bridge = _Bridge()
        self._tokens: set[CancelToken] = set()
        self._lock = threading.Lock()
        self.closed = False

    def submit(self, fn: Callable[[], Any], token: CancelToken) -> concurrent.futures.Future:
        """Run ``fn()`` on a worker thread; ``token`` is cancelled if the runner shuts down."""
        if self.closed:
            raise RuntimeError("the job runner is shut down")
        with self._lock:
            self._tokens.add(token)

        def work():
            try:
                return fn()
            finally:
                with self._lock:
                    self._tokens.discard(token)

        return self._executor.submit(work)

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
