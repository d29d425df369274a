"""Guards for every app test: fresh settings, worker exceptions fail the test, no thread leaks, the app's
asyncio loop running (qasync's, as in the app) and no flow left behind."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import app.qt  # noqa: E402,F401  (binds PySide6 and guards its bool refcount bug before any emit)


@pytest.fixture(autouse=True)
def fresh_settings(tmp_path, monkeypatch):
    """Every test gets its own settings file (never the user's)."""
    path = tmp_path / "settings" / "graft.ini"
    monkeypatch.setenv("GRAFT_SETTINGS_PATH", str(path))
    return path


@pytest.fixture(autouse=True)
def fresh_history(tmp_path, monkeypatch):
    """Every test keeps its runs (history, trained weights) in its own folder (never the user's)."""
    path = tmp_path / "data" / "history"
    monkeypatch.setenv("GRAFT_HISTORY_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def thread_exceptions():
    """An exception escaping any thread fails the test (threads swallow them otherwise)."""
    errors: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    yield errors
    threading.excepthook = previous
    if errors:
        first = errors[0]
        pytest.fail(
            f"exception in thread {first.thread.name if first.thread else '?'}: {first.exc_type.__name__}: {first.exc_value}"
        )


#: Threads libraries keep for the whole process (tqdm's monitor, started by a progress bar).
PROCESS_THREADS = ("tqdm_monitor",)


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Fail a test that leaves a thread running (the runner must be shut down)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    leftover = []
    while time.monotonic() < deadline:
        leftover = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and t.name not in PROCESS_THREADS
        ]
        if not leftover:
            break
        time.sleep(0.02)
    assert not leftover, f"threads still running after the test: {[t.name for t in leftover]}"


@pytest.fixture
def app_loop(qapp):
    """The app's qasync loop: asyncio's running loop, whose callbacks run whenever qtbot spins Qt
    (as ``gui.main``'s ``exec()`` does in the app). Flows a test leaves behind are ended after it."""
    from app.jobs import event_loop

    loop = event_loop()
    assert asyncio.get_running_loop() is loop
    yield loop
    settle_flows(qapp, loop)


def settle_flows(qapp, loop, timeout_s: float = 5.0) -> None:
    """Deliver what the jobs sent last, so the flows awaiting them end; a flow still waiting
    after ``timeout_s`` (its job's runner is shut down by now) awaits nothing that will come."""
    deadline = time.monotonic() + timeout_s
    while True:
        qapp.processEvents()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            return
        if time.monotonic() > deadline:
            for task in pending:
                task.cancel()
            qapp.processEvents()
            pytest.fail(f"flows still waiting after the test: {[t.get_coro().__qualname__ for t in pending]}")
        time.sleep(0.005)


@pytest.fixture
def runner(app_loop):
    """A job runner, shut down (threads joined) when the test ends."""
    from app.jobs import JobRunner

    r = JobRunner(max_workers=3)
    yield r
    r.shutdown(wait=True)


@pytest.fixture
def window(qtbot, runner):
    """The main window on a test runner; closed (jobs cancelled) before the runner shuts down."""
    from app.main_window import MainWindow

    w = MainWindow(runner=runner)
    qtbot.addWidget(w)
    w.resize(1440, 900)
    w.show()
    yield w
    w.workspace.cancel_all()
    w.close()


@pytest.fixture
def gui(qtbot, window):
    """Waits on the window's workspace (see ``graft_gui_driver.GuiDriver``)."""
    from graft_gui_driver import GuiDriver

    return GuiDriver(qtbot, window)
