"""``graft-gui``: the desktop application (``python -m app.gui [--demo] [SOURCE]``).

Qt's event loop runs the app's asyncio loop (qasync, ``app.jobs.loop``): the flows of the
window — and the self-test below, one ``async def`` from opening the demo to the screenshot —
are coroutines on it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys

from app.input import WheelGuard
from app.platform_check import xcb_problem
from app.qt import QtCore, QtGui, QtWidgets

log = logging.getLogger("graft")


def _icon() -> QtGui.QIcon:
    from importlib.resources import files

    icon = QtGui.QIcon()
    for name in ("graft.svg", "graft.png"):
        path = files("resources") / name
        if path.is_file():
            icon.addFile(str(path))
    return icon


SWITCH_INTERVAL_S = 0.001


def create_app(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The QApplication with Graft's names and icon (reused when one exists, e.g. in tests)."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(argv or sys.argv[:1])
    app.setApplicationName("Graft")
    app.setOrganizationName("Graft")
    app.setApplicationDisplayName("Graft")
    QtGui.QGuiApplication.setDesktopFileName("graft")  # the icon under Wayland (graft.desktop)
    app.setWindowIcon(_icon())
    if not hasattr(app, "wheel_guard"):  # the wheel scrolls the panel, not an unfocused spin box under it
        app.wheel_guard = WheelGuard(app)
        app.installEventFilter(app.wheel_guard)
    # A worker thread holding the GIL gives it up when another thread has waited this long:
    # 5 ms by default, paid by the GUI thread at every Python ↔ Qt crossing while previews run.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return app


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen bundle starts its job children through this executable
    parser = argparse.ArgumentParser(prog="graft-gui", description="Graft's desktop application.")
    parser.add_argument("source", nargs="?", help="a model to open: a path, a hub repo id or 'demo'")
    parser.add_argument("--demo", action="store_true", help="open the demo model")
    parser.add_argument("--recipe", help="open a recipe file")
    parser.add_argument(
        "--self-test",
        metavar="PNG",
        help="open the demo, preview, materialise it in a child process, save a screenshot to PNG "
        "and quit (exit code 0 when all of that worked): checks an install or a bundle",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    problem = xcb_problem()  # Qt would only say "could not load the Qt platform plugin xcb" and abort
    if problem:
        print(problem, file=sys.stderr)
        return 2
    # High-DPI: Qt 6 scales by default; pass fractional factors through instead of rounding them.
    QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    qt_app = create_app()

    from app.jobs import event_loop, start_flow
    from app.jobs.loop import close_event_loop
    from app.main_window import MainWindow

    event_loop()  # before the window: its flows run on it
    window = MainWindow()
    window.show()
    outcome = {"code": 0}
    if args.self_test:
        outcome["code"] = 1
        start_flow(_self_test(window, args.self_test, outcome))
    elif args.recipe:
        QtCore.QTimer.singleShot(0, window, lambda: window.open_recipe(args.recipe))
    elif args.demo or args.source:
        QtCore.QTimer.singleShot(0, window, lambda: window.open_source(args.source or "demo"))
    qt_app.exec()
    qt_app.processEvents()
    close_event_loop()
    return outcome["code"]


SELF_TEST_TIMEOUT_S = 300.0


async def _self_test(window, png: str, outcome: dict) -> None:
    """Open the demo, plan and preview it, materialise it in a child process; then save ``png``
    and close the window.

    ``outcome["code"]`` becomes 0 only if every step finished; a failure or the timeout closes
    the window with code 1 (the reason goes to the log).
    """
    ws = window.workspace
    window.resize(1440, 900)  # the screenshot at one size, whatever the screen (offscreen's is 800 × 800)
    failures: list[str] = []
    ws.source_failed.connect(lambda exc: failures.append(str(exc)))
    ws.plan_failed.connect(failures.append)
    ws.preview_failed.connect(failures.append)
    ws.job_failed.connect(lambda title, exc: failures.append(f"{title}: {exc}"))

    async def steps() -> str | None:  # why it failed, or None
        if await window.open_source("demo") is None or ws.plan is None or window.preview.data is None:
            return "the demo did not open, plan and preview"
        if await ws.materialise() is None:
            return "the demo did not materialise"
        await asyncio.sleep(0.3)  # the overview draws on its timers
        return None

    try:
        why = await asyncio.wait_for(steps(), SELF_TEST_TIMEOUT_S)
    except asyncio.TimeoutError:
        why = "timed out"
    why = "; ".join(failures) or why
    if why:
        log.error("self-test failed: %s", why)
    window.grab().save(png)
    outcome["code"] = 1 if why else 0
    window.close()
    QtWidgets.QApplication.quit()


if __name__ == "__main__":
    sys.exit(main())
