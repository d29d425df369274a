"""``graft-gui``: the desktop application (``python -m app.gui [--demo] [SOURCE]``)."""

from __future__ import annotations

import argparse
import logging
import sys

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
    # A worker thread holding the GIL gives it up when another thread has waited this long:
    # 5 ms by default, paid by the GUI thread at every Python ↔ Qt crossing while previews run.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graft-gui", description="Graft's desktop application.")
    parser.add_argument("source", nargs="?", help="a model to open: a path, a hub repo id or 'demo'")
    parser.add_argument("--demo", action="store_true", help="open the demo model")
    parser.add_argument("--recipe", help="open a recipe file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # High-DPI: Qt 6 scales by default; pass fractional factors through instead of rounding them.
    QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    qt_app = create_app()

    from app.jobs import event_loop
    from app.main_window import MainWindow

    loop = event_loop()
    window = MainWindow()
    window.show()
    if args.recipe:
        QtCore.QTimer.singleShot(0, lambda: window.open_recipe(args.recipe))
    elif args.demo or args.source:
        QtCore.QTimer.singleShot(0, lambda: window.open_source(args.source or "demo"))
    with loop:
        loop.run_forever()
    qt_app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
