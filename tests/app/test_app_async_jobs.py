"""Jobs awaited in coroutines on the app's qasync loop: ``result = await controller.run(job)``.

A thread job and a child-process job (``core.process.run_in_child`` from the worker thread)
each return their result only after all their progress and items were delivered; a superseded
job's await raises ``Cancelled``; cancelling the awaiting asyncio task stops the child process;
a job's error is raised by the await, with its class and message.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from child_jobs import count, fail, forever
from graft_gui_driver import await_result, start_awaiting

from app.jobs import Job, JobController
from core.errors import Cancelled, PlanError
from core.process import run_in_child


def in_child(fn, *args):
    """A job whose work runs in a child process; its items stream back through the worker thread."""

    def job(progress, cancel):
        return (yield from run_in_child(fn, *args, progress=progress, cancel=cancel))

    return job


def steps(n: int):
    def job(progress, cancel):
        for i in range(n):
            time.sleep(0.002)
            progress((i + 1) / n, f"step {i + 1}")
        return "stepped"

    return job


def children(name: str) -> list:
    return [p for p in multiprocessing.active_children() if p.name == name]


def test_a_thread_job_returns_after_all_its_progress(qtbot, runner):
    controller = JobController(runner)
    events = []
    controller.progressed.connect(lambda f, m, eta: events.append(("progress", f)))

    async def flow():
        result = await controller.run(Job("steps", steps(200)))
        events.append(("result", result))

    await_result(qtbot, flow(), timeout=10_000)
    assert events[-1] == ("result", "stepped")
    assert events[-2] == ("progress", 1.0)  # the last progress (never throttled away) came first
    assert len(events) > 3


def test_a_child_process_job_returns_after_all_its_items_and_progress(qtbot, runner):
    controller = JobController(runner)
    events = []
    controller.progressed.connect(lambda f, m, eta: events.append(("progress", f)))

    async def flow():
        result = await controller.run(
            Job("count", in_child(count, 6)), on_item=lambda t: events.append(("item", t[0].item()))
        )
        events.append(("result", result["n"]))
        return result

    result = await_result(qtbot, flow(), timeout=60_000)
    assert result["pid"] != multiprocessing.current_process().pid  # it really ran in a child
    assert [e for e in events if e[0] == "item"] == [("item", float(i)) for i in range(6)]
    assert events[-1] == ("result", 6)
    assert ("progress", 1.0) in events[:-1]


def test_a_superseded_jobs_await_raises_cancelled(qtbot, runner):
    controller = JobController(runner)
    older_job = Job("older", in_child(forever))
    older = start_awaiting(controller.run(older_job))
    qtbot.wait(50)
    assert await_result(qtbot, controller.run(Job("newer", steps(5))), timeout=10_000) == "stepped"
    assert older.done() and isinstance(older.exception(), Cancelled)
    assert older_job.cancel.cancelled


def test_cancelling_the_awaiting_task_stops_the_child_process(qtbot, runner):
    controller = JobController(runner)
    items = []
    job = Job("forever", in_child(forever))
    task = start_awaiting(controller.run(job, on_item=items.append))
    qtbot.waitUntil(lambda: len(items) >= 3 and bool(children("graft-forever")), timeout=60_000)
    with qtbot.waitSignals([controller.aborted, controller.finished], timeout=30_000):
        task.cancel()
    assert task.cancelled() and job.cancel.cancelled
    qtbot.waitUntil(lambda: not children("graft-forever"), timeout=10_000)
    assert not controller.running


def test_an_error_arrives_as_the_exception(qtbot, runner):
    controller = JobController(runner)
    with pytest.raises(PlanError, match="does not divide by 7"):
        await_result(qtbot, controller.run(Job("fail", in_child(fail))), timeout=60_000)
    assert not controller.running


def test_a_cancel_from_the_controller_reaches_the_awaiting_coroutine(qtbot, runner):
    controller = JobController(runner)
    items = []
    task = start_awaiting(controller.run(Job("forever", in_child(forever)), on_item=items.append))
    qtbot.waitUntil(lambda: len(items) >= 3, timeout=60_000)
    controller.cancel()
    qtbot.waitUntil(task.done, timeout=30_000)
    assert isinstance(task.exception(), Cancelled)
    qtbot.waitUntil(lambda: not children("graft-forever"), timeout=10_000)
