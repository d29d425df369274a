"""``core.process.run_in_child``: items, progress and results cross over; errors, cancel and crashes are reported."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch
from cancelling import CancelMidway
from child_jobs import count, crash, fail, forever, ignore_cancel

from core.errors import Cancelled, GraftError, PlanError
from core.process import run_in_child
from core.progress import CancelToken


def drain(gen):
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            return items, stop.value


def test_items_progress_and_result_come_back_in_order():
    seen = []
    items, result = drain(run_in_child(count, 4, scale=2.0, progress=lambda f, m: seen.append((f, m))))
    assert [t.tolist() for t in items] == [[0.0] * 3, [2.0] * 3, [4.0] * 3, [6.0] * 3]
    assert all(isinstance(t, torch.Tensor) for t in items)
    assert result["n"] == 4 and result["pid"] != os.getpid()  # it really ran elsewhere
    assert seen == [(0.25, "item 0"), (0.5, "item 1"), (0.75, "item 2"), (1.0, "item 3")]


def test_a_graft_error_keeps_its_class_and_message():
    with pytest.raises(PlanError, match="does not divide by 7"):
        drain(run_in_child(fail))


def test_cancel_stops_the_child():
    token = CancelToken()
    gen = run_in_child(forever, cancel=token)
    assert next(gen) == 1
    token.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        drain(gen)
    assert time.monotonic() - started < 5


def test_a_child_that_ignores_cancel_is_terminated():
    token = CancelToken()
    timer = threading.Timer(0.5, token.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        drain(run_in_child(ignore_cancel, cancel=token, grace_s=1.0))
    assert time.monotonic() - started < 10


def test_a_crashed_child_is_a_clear_error():
    with pytest.raises(GraftError, match=r"exited unexpectedly \(exit code 3\)"):
        drain(run_in_child(crash))


def test_cancelling_an_export_in_a_child_leaves_no_folder(tmp_path):
    """The app's export runs in a child: a cancel mid-way removes its temporary folder there."""
    from core.pipeline import export_recipe
    from core.recipe import Recipe

    midway = CancelMidway()
    seen = midway.seen
    out = tmp_path / "export"
    with pytest.raises(Cancelled):
        drain(
            run_in_child(export_recipe, Recipe(source="demo"), str(out), progress=midway.progress, cancel=midway.token)
        )
    assert any(0 < f < 1 for f in seen) and 1.0 not in seen
    assert not out.exists() and list(tmp_path.iterdir()) == []
