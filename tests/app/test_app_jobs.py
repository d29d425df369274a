"""JobController and JobQueue with plain callables: signals on the GUI thread, cancel, errors."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6 import QtCore

from app.jobs import CANCELLED, DONE, FAILED, Job, JobController, JobQueue, eta_seconds
from core.errors import SourceError


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


def test_returned_on_gui_thread(qtbot, runner):
    controller = JobController(runner)
    threads: list[bool] = []
    events = []
    controller.started.connect(lambda name: events.append(("started", name)))
    controller.returned.connect(lambda r: events.append(("returned", r)))
    controller.finished.connect(lambda: events.append(("finished",)))
    controller.returned.connect(lambda r: threads.append(QtCore.QThread.currentThread() is controller.thread()))
    with qtbot.waitSignal(controller.finished, timeout=5000):
        controller.start(Job("sleep", sleeper()))
    assert events == [("started", "sleep"), ("returned", "done"), ("finished",)]
    assert threads == [True]
    assert not controller.running


def test_job_runs_off_gui_thread(qtbot, runner):
    controller = JobController(runner)
    seen = []

    def fn(progress, cancel):
        seen.append(threading.current_thread())
        return 1

    with qtbot.waitSignal(controller.finished, timeout=5000):
        controller.start(Job("where", fn))
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

    with qtbot.waitSignal(controller.finished, timeout=10000):
        controller.start(Job("fast", fast))
    qtbot.wait(50)
    assert 2 <= len(updates) <= 40  # ~0.5 s of work at ≤ 20 Hz, plus the final one
    assert updates[-1][0] == 1.0


def test_generator_items_arrive_in_order(qtbot, runner):
    controller = JobController(runner)
    items = []
    controller.yielded.connect(lambda item: items.append(item))
    with qtbot.waitSignal(controller.returned, timeout=5000) as blocker:
        controller.start(Job("count", counter(500)))
    assert items == list(range(500))
    assert blocker.args == ["counted"]


def test_error_becomes_errored_signal(qtbot, runner):
    controller = JobController(runner)

    def bad(progress, cancel):
        raise SourceError("no such model; check the path")

    with qtbot.waitSignal(controller.errored, timeout=5000) as blocker:
        controller.start(Job("bad", bad))
    assert isinstance(blocker.args[0], SourceError)
    assert "check the path" in str(blocker.args[0])


def test_cancel_aborts(qtbot, runner):
    controller = JobController(runner)
    returned = []
    controller.returned.connect(lambda r: returned.append(r))
    controller.start(Job("long", sleeper(total=20.0, steps=2000)))
    qtbot.wait(100)
    with qtbot.waitSignals([controller.aborted, controller.finished], timeout=5000):
        controller.cancel()
    assert returned == []


def test_cancel_stops_a_generator(qtbot, runner):
    controller = JobController(runner)
    items = []
    controller.yielded.connect(lambda item: items.append(item))
    controller.start(Job("stream", counter(100000, delay=0.001)))
    qtbot.waitUntil(lambda: len(items) > 5, timeout=5000)
    with qtbot.waitSignal(controller.aborted, timeout=5000):
        controller.cancel()
    assert len(items) < 100000


def test_new_start_supersedes_previous(qtbot, runner):
    controller = JobController(runner)
    results = []
    controller.returned.connect(lambda r: results.append(r))
    first = Job("first", sleeper(total=5.0, steps=500, result="first"))
    controller.start(first)
    qtbot.wait(50)
    with qtbot.waitSignal(controller.returned, timeout=5000):
        controller.start(Job("second", sleeper(result="second")))
    qtbot.wait(100)
    assert results == ["second"]
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

    a = queue.enqueue(Job("a", make("a")))
    b = queue.enqueue(Job("b", make("b", total=30)))
    c = queue.enqueue(Job("c", make("c")))
    queue.cancel(c)
    assert c.state == CANCELLED
    qtbot.waitUntil(lambda: b.state == "running", timeout=5000)
    queue.cancel(b)
    qtbot.waitUntil(lambda: not queue.busy, timeout=5000)
    assert (a.state, b.state, c.state) == (DONE, CANCELLED, CANCELLED)
    assert a.result == "a" and order == ["a", "b"]


def test_queue_records_failure(qtbot, runner):
    queue = JobQueue(runner)

    def bad(progress, cancel):
        raise ValueError("boom")

    entry = queue.enqueue(Job("bad", bad))
    ok = queue.enqueue(Job("ok", sleeper(total=0.05, steps=5)))
    qtbot.waitUntil(lambda: not queue.busy, timeout=5000)
    assert entry.state == FAILED and isinstance(entry.error, ValueError)
    assert ok.state == DONE


@pytest.mark.parametrize(
    "elapsed, fraction, expected",
    [(10.0, 0.5, 10.0), (10.0, 0.01, None), (0.1, 0.5, None), (4.0, 0.8, 1.0), (5.0, 1.0, None)],
)
def test_eta(elapsed, fraction, expected):
    value = eta_seconds(elapsed, fraction)
    assert value == pytest.approx(expected) if expected is not None else value is None
