"""JobController and JobQueue with plain callables: awaited results, signals on the GUI thread, cancel, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from graft_gui_driver import await_result, start_awaiting
from PySide6 import QtCore

from app.jobs import CANCELLED, DONE, FAILED, Job, JobController, JobQueue, eta_seconds
from core.errors import Cancelled, SourceError


def sleeper(total: float = 0.3, steps: int = 30, result="done"):
    def fn(progress, cancel):
        for i in range(steps):
            cancel.check()
            time.sleep(total / steps)
            progress((i + 1) / steps, f"step {i + 1}")
        return result

    return fn


def counter(n: int, delay: float = 0.0):
    def fn(progress, cancel):
        def gen():
            for i in range(n):
                if delay:
                    time.sleep(delay)
                yield i
            return "counted"

        return gen()

    return fn


def test_result_and_signals_on_the_gui_thread(qtbot, runner):
    controller = JobController(runner)
    events = []
    controller.started.connect(lambda name: events.append(("started", name)))
    controller.finished.connect(
        lambda: events.append(("finished", QtCore.QThread.currentThread() is controller.thread()))
    )

    async def flow():
        result = await controller.run(Job("sleep", sleeper()))
        events.append(("result", result, threading.current_thread() is threading.main_thread()))
        return result

    assert await_result(qtbot, flow(), timeout=5000) == "done"
    assert events == [("started", "sleep"), ("finished", True), ("result", "done", True)]
    assert not controller.running


def test_job_runs_off_gui_thread(qtbot, runner):
    controller = JobController(runner)
    seen = []

    def fn(progress, cancel):
        seen.append(threading.current_thread())
        return 1

    assert await_result(qtbot, controller.run(Job("where", fn)), timeout=5000) == 1
    assert seen and seen[0] is not threading.main_thread()


def test_progress_is_throttled_and_carries_eta(qtbot, runner):
    controller = JobController(runner)
    updates = []
    controller.progressed.connect(lambda f, m, eta: updates.append((f, m, eta)))

    def fast(progress, cancel):
        for i in range(5000):
            progress(i / 5000, "x")
            if i % 100 == 0:
                time.sleep(0.01)
        progress(1.0, "end")
        return None

    await_result(qtbot, controller.run(Job("fast", fast)), timeout=10000)
    assert 2 <= len(updates) <= 40  # ~0.5 s of work at ≤ 20 Hz, plus the final one
    assert updates[-1][0] == 1.0


def test_generator_items_arrive_in_order(qtbot, runner):
    controller = JobController(runner)
    items = []
    assert (
        await_result(qtbot, controller.run(Job("count", counter(500)), on_item=items.append), timeout=5000) == "counted"
    )
    assert items == list(range(500))


def test_error_is_raised_by_the_await(qtbot, runner):
    controller = JobController(runner)

    def bad(progress, cancel):
        raise SourceError("no such model; check the path")

    with pytest.raises(SourceError, match="check the path"):
        await_result(qtbot, controller.run(Job("bad", bad)), timeout=5000)


def test_cancel_aborts(qtbot, runner):
    controller = JobController(runner)
    task = start_awaiting(controller.run(Job("long", sleeper(total=20.0, steps=2000))))
    qtbot.wait(100)
    with qtbot.waitSignals([controller.aborted, controller.finished], timeout=5000):
        controller.cancel()
    qtbot.waitUntil(task.done, timeout=5000)
    with pytest.raises(Cancelled):
        task.result()


def test_cancel_stops_a_generator(qtbot, runner):
    controller = JobController(runner)
    items = []
    task = start_awaiting(controller.run(Job("stream", counter(100000, delay=0.001)), on_item=items.append))
    qtbot.waitUntil(lambda: len(items) > 5, timeout=5000)
    with qtbot.waitSignal(controller.aborted, timeout=5000):
        controller.cancel()
    qtbot.waitUntil(task.done, timeout=5000)
    assert isinstance(task.exception(), Cancelled)
    assert len(items) < 100000


def test_a_job_waiting_for_a_worker_at_shutdown_is_cancelled_not_lost(qtbot, app_loop):
    """Closing the app drops the jobs no worker has started: their awaits raise ``Cancelled``
    (they waited for ever, and the flows awaiting them with them)."""
    from app.jobs import JobRunner

    one = JobRunner(max_workers=1)
    try:
        busy, waiting = JobController(one), JobController(one)
        first = start_awaiting(busy.run(Job("long", sleeper(total=20.0, steps=2000))))
        second = start_awaiting(waiting.run(Job("queued", sleeper(result="never"))))
        qtbot.wait(100)
        assert not first.done() and not second.done()
    finally:
        one.shutdown(wait=True)
    qtbot.waitUntil(lambda: first.done() and second.done(), timeout=5000)
    assert isinstance(first.exception(), Cancelled)
    assert isinstance(second.exception(), Cancelled) and "closing" in str(second.exception())
    assert not waiting.running


def test_new_run_supersedes_previous(qtbot, runner):
    controller = JobController(runner)
    first = Job("first", sleeper(total=5.0, steps=500, result="first"))
    older = start_awaiting(controller.run(first))
    qtbot.wait(50)
    assert await_result(qtbot, controller.run(Job("second", sleeper(result="second"))), timeout=5000) == "second"
    assert older.done() and isinstance(older.exception(), Cancelled)
    assert first.cancel.cancelled


def test_queue_runs_in_order_and_cancels(qtbot, runner):
    queue = JobQueue(runner)
    order = []

    def make(name, total=0.1):
        def fn(progress, cancel):
            order.append(name)
            for _ in range(int(total * 100)):
                cancel.check()
                time.sleep(0.01)
            return name

        return fn

    a = queue.submit(Job("a", make("a")))
    b = queue.submit(Job("b", make("b", total=30)))
    c = queue.submit(Job("c", make("c")))
    queue.cancel(c)
    assert c.state == CANCELLED
    assert await_result(qtbot, a, timeout=5000) == "a"
    # "running" is set when b is handed to a worker; its function starts a moment later (a cancel
    # before that ends it without a call): wait for the call, which the order below checks
    qtbot.waitUntil(lambda: b.state == "running" and "b" in order, timeout=5000)
    queue.cancel(b)
    with pytest.raises(Cancelled):
        await_result(qtbot, b, timeout=5000)
    assert not queue.busy
    assert (a.state, b.state, c.state) == (DONE, CANCELLED, CANCELLED)
    assert a.result == "a" and order == ["a", "b"]


def test_queue_records_failure(qtbot, runner):
    queue = JobQueue(runner)

    def bad(progress, cancel):
        raise ValueError("boom")

    entry = queue.submit(Job("bad", bad))
    ok = queue.submit(Job("ok", sleeper(total=0.05, steps=5)))
    with pytest.raises(ValueError, match="boom"):
        await_result(qtbot, entry, timeout=5000)
    assert await_result(qtbot, ok, timeout=5000) == "done"
    assert entry.state == FAILED and isinstance(entry.error, ValueError)
    assert ok.state == DONE and not queue.busy


def test_cancelling_the_awaiting_task_cancels_a_queued_entry(qtbot, runner):
    queue = JobQueue(runner)
    running = queue.submit(Job("long", sleeper(total=20.0, steps=2000)))
    waiting = queue.submit(Job("next", sleeper(result="never")))
    task = start_awaiting(waiting)
    qtbot.waitUntil(lambda: running.state == "running", timeout=5000)
    task.cancel()
    qtbot.waitUntil(lambda: waiting.state == CANCELLED, timeout=5000)
    assert task.cancelled() and waiting.job.cancel.cancelled
    queue.cancel(running)
    qtbot.waitUntil(lambda: not queue.busy, timeout=5000)
    assert running.state == CANCELLED


def test_flows_run_on_the_apps_qasync_loop(qtbot, app_loop):
    import qasync

    async def where():
        await asyncio.sleep(0.01)  # needs a running loop whose timers fire while qtbot spins Qt
        return asyncio.get_running_loop()

    assert await_result(qtbot, where(), timeout=5000) is app_loop
    assert isinstance(app_loop, qasync.QEventLoop)


@pytest.mark.parametrize(
    "elapsed, fraction, expected",
    [(10.0, 0.5, 10.0), (10.0, 0.01, None), (0.1, 0.5, None), (4.0, 0.8, 1.0), (5.0, 1.0, None)],
)
def test_eta(elapsed, fraction, expected):
    value = eta_seconds(elapsed, fraction)
    assert value == pytest.approx(expected) if expected is not None else value is None
