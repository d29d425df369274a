"""Tensor work never runs on the GUI thread.

Every Python call into core's tensor modules is recorded with the thread that made it
(``sys.setprofile`` on the GUI thread, ``threading.setprofile`` on every thread the jobs start,
and ``GRAFT_TRACE_CHILD_CALLS`` in the child processes the long jobs run in), while the window
opens the demo, re-plans, previews, materialises and exports. Nothing of core is mocked: the
real calls are observed.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from pathlib import Path

import core
from core.process import TRACE_ENV

CORE_DIR = str(Path(core.__file__).parent)
#: Modules whose functions touch tensor data (reading, filling, statistics, writing, training).
TENSOR_MODULES = ("transfer.py", "export", "safetensors_stream.py", "stats", "training", "strategies")
REGISTRY_FUNCTIONS = {"names", "get", "_load_all", "make_params", "param", "params_to_dict", "<genexpr>", "<dictcomp>"}
TENSOR_FUNCTIONS = {
    "read",
    "read_slice",
    "read_gather",
    "iter_tensors",
    "open_source",
    "open_local",
    "make_plan",
    "plan_recipe",
}


def _tensor_call(code) -> bool:
    path = code.co_filename
    if not path.startswith(CORE_DIR):
        return False
    relative = path[len(CORE_DIR) + 1 :]
    if relative == "strategies/base.py" and code.co_name in REGISTRY_FUNCTIONS:
        return False  # the registry itself: the forms list strategies and their parameters
    if not code.co_flags & inspect.CO_NEWLOCALS:
        return False  # a module or class body being imported (the first import's timing), not a call
    return relative.startswith(TENSOR_MODULES) or code.co_name in TENSOR_FUNCTIONS


def _child_calls(trace: Path) -> set[str]:
    """``file:function`` of the core tensor calls the jobs' child processes made."""
    if not trace.is_file():
        return set()
    out = set()
    for line in trace.read_text().splitlines():
        pid, _, name = line.split("\t")
        path, _, function = name.rpartition(":")
        assert int(pid) != os.getpid()
        relative = path
        if relative.startswith(TENSOR_MODULES) or function in TENSOR_FUNCTIONS:
            out.add(f"{Path(path).name}:{function}")
    return out


def test_core_tensor_calls_stay_off_the_gui_thread(qtbot, runner, tmp_path, monkeypatch):
    from graft_gui_driver import GuiDriver

    from app.main_window import MainWindow

    calls: list[tuple[str, str, bool]] = []
    gui_thread = threading.main_thread()
    trace = tmp_path / "child-calls.tsv"  # long jobs run in child processes; they log calls here
    monkeypatch.setenv(TRACE_ENV, str(trace))

    def profile(frame, event, arg):
        if event == "call" and _tensor_call(frame.f_code):
            thread = threading.current_thread()
            calls.append(
                (thread.name, f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}", thread is gui_thread)
            )

    sys.setprofile(profile)
    threading.setprofile(profile)  # before the window exists, so every worker thread is observed
    window = MainWindow(runner=runner)
    qtbot.addWidget(window)
    window.show()
    gui = GuiDriver(qtbot, window)
    try:
        gui.open_demo()
        gui.set_target({"layers": 1, "hidden": 96, "heads": 3, "ffn": 192})
        gui.plan(lambda p: p.target_sizes["hidden"] == 96)
        gui.preview()
        with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
            window.materialise_action.trigger()
        with qtbot.waitSignal(window.workspace.exported, timeout=120_000):
            window.workspace.export(tmp_path / "out", dtype=None, max_shard_size="5GB")
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        window.workspace.cancel_all()
        window.close()

    on_gui = sorted({name for _, name, gui_side in calls if gui_side})
    on_workers = {name for _, name, gui_side in calls if not gui_side}
    in_children = _child_calls(trace)
    assert not on_gui, f"core tensor functions called on the GUI thread: {on_gui}"
    # Previews run on worker threads; materialise and export in child processes.
    for expected in ("transfer.py:fill_tensor", "base.py:read_gather"):
        assert expected in on_workers, f"{expected} never ran on a worker thread (the test did not exercise it)"
    for expected in ("transfer.py:fill_tensor", "writer.py:export_checkpoint", "summary.py:summarise"):
        assert expected in in_children, f"{expected} never ran in a child process (the test did not exercise it)"
    assert all(thread.startswith("graft-job") for thread, _, gui_side in calls if not gui_side)
