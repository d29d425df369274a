"""The app's asyncio loop — qasync's, on Qt's event loop — and ``flow``, which starts a coroutine on it.

A *flow* is an ``async def`` of the app that reads top to bottom and awaits jobs
(``result = await controller.run(job)``). Decorated with :func:`flow`, calling it starts it as
an asyncio task on the app's loop and returns that task: Qt signals, timers and tests call it
like a plain method, and other flows may ``await`` it. (What ``qasync.asyncSlot`` does, on this
loop explicitly and without a Qt slot signature, so keyword arguments pass as they are.)

The loop is created ``already_running``: it is asyncio's running loop from the start, and
whoever spins Qt's event loop runs its callbacks — ``gui.main``'s ``exec()``, pytest-qt's
``qtbot`` waits, a benchmark's ``QEventLoop``. The same loop thus runs the app's coroutines in
the app and in its tests.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from app.qt import QtWidgets  # PySide6 first: qasync takes the binding loaded

# isort: split
import qasync

T = TypeVar("T")

_LOOP: qasync.QEventLoop | None = None
_RUNNING: set[asyncio.Task] = set()  # asyncio keeps only weak references to tasks


def event_loop() -> qasync.QEventLoop:
    """The application's qasync loop: created on first use, and asyncio's running loop from then on."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        app = QtWidgets.QApplication.instance()
        if app is None:
            raise RuntimeError("create the QApplication before starting jobs")
        _LOOP = qasync.QEventLoop(app, already_running=True)
        asyncio.set_event_loop(_LOOP)
    return _LOOP


def close_event_loop() -> None:
    """Cancel the flows still waiting, then stop and close the app's loop (``gui.main``, once
    Qt's event loop has returned and the window's jobs are cancelled)."""
    global _LOOP
    if _LOOP is not None and not _LOOP.is_closed():
        tasks = asyncio.all_tasks(_LOOP)
        for task in tasks:
            task.cancel()
        app = QtWidgets.QApplication.instance()
        for _ in range(10):  # each round runs the loop's due callbacks: the cancelled flows unwind
            if app is None or all(t.done() for t in tasks):
                break
            app.processEvents()
        _LOOP.stop()
        _LOOP.close()
    _LOOP = None


def start_flow(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``coroutine`` as a task on the app's loop; an exception it lets escape goes to
    ``sys.excepthook``, as one raised in a Qt slot does (a bug: flows handle the errors of jobs)."""
    task = event_loop().create_task(coroutine)
    _RUNNING.add(task)
    task.add_done_callback(_on_flow_done)
    return task


def flow(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., asyncio.Task[T]]:
    """Decorate an ``async def``: calling it starts it with :func:`start_flow` and returns the task."""

    @functools.wraps(method)
    def start(*args: Any, **kwargs: Any) -> asyncio.Task[T]:
        return start_flow(method(*args, **kwargs))

    return start


def _on_flow_done(task: asyncio.Task) -> None:
    _RUNNING.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        sys.excepthook(type(exc), exc, exc.__traceback__)
