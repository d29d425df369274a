"""Input and first-run guards: the wheel over an unfocused spin box scrolls the panel, Help shows the
strategy guide and the window's real shortcuts, and a missing xcb library is named before Qt aborts."""

from __future__ import annotations

import os
import subprocess
import sys

from app.gui import create_app
from app.platform_check import missing_libraries, parse_ldd, wants_xcb, xcb_plugin, xcb_problem
from app.qt import QtCore, QtGui, QtWidgets
from app.words import STRATEGY_LABELS, strategy_label
from core.strategies.base import names


def _wheel(widget: QtWidgets.QWidget, steps: int) -> None:
    """One real wheel event at the widget's centre, delivered like the window system does (to the app)."""
    centre = QtCore.QPointF(widget.width() / 2, widget.height() / 2)
    event = QtGui.QWheelEvent(
        centre,
        widget.mapToGlobal(centre),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120 * steps),
        QtCore.Qt.NoButton,
        QtCore.Qt.NoModifier,
        QtCore.Qt.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(widget, event)


def _scrolled_spin(qtbot):
    create_app()  # installs the wheel guard on the application, as graft-gui does
    area = QtWidgets.QScrollArea()
    inner = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(inner)
    spin = QtWidgets.QDoubleSpinBox()
    spin.setRange(0, 1)
    spin.setSingleStep(0.1)
    spin.setValue(0.7)
    layout.addWidget(spin)
    layout.addSpacing(2000)  # taller than the view: the area can scroll
    area.setWidget(inner)
    area.resize(300, 200)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    return area, spin


def test_the_wheel_over_an_unfocused_spin_box_scrolls_the_panel_and_keeps_the_value(qtbot):
    area, spin = _scrolled_spin(qtbot)
    assert not spin.hasFocus()
    _wheel(spin, -1)
    assert spin.value() == 0.7  # alpha qk stays 0.700
    assert area.verticalScrollBar().value() > 0  # the panel scrolled instead


def test_a_focused_spin_box_takes_the_wheel(qtbot):
    area, spin = _scrolled_spin(qtbot)
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin, -1)
    assert abs(spin.value() - 0.6) < 1e-9


def test_help_lists_every_value_strategy_by_name_and_the_windows_real_shortcuts(qtbot, window):
    shortcuts = dict((what, keys) for keys, what in window.shortcuts())
    assert shortcuts["Materialise"] == "Ctrl+M" and shortcuts["Validate"] == "Ctrl+T"
    assert shortcuts["Open the demo model"] == "Ctrl+D"
    window._strategy_guide()
    dialog = window.findChild(QtWidgets.QDialog, "graft-help-dialog")
    text = dialog.findChild(QtWidgets.QTextBrowser).toPlainText()
    for name in names("value"):
        assert strategy_label(name) in text and name in text
    assert strategy_label("unknown_strategy") == "unknown_strategy"
    assert set(names()) <= set(STRATEGY_LABELS)  # every registered strategy has a human name


def test_the_xcb_check_names_the_missing_libraries_and_the_install_command():
    ldd = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibxcb-icccm.so.4 => not found\n"
        "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)\n"
        "\tlibxcb-keysyms.so.1 => not found\n"
        "\tlibxcb-icccm.so.4 => not found\n"
    )
    assert parse_ldd(ldd) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    message = xcb_problem({"DISPLAY": ":0"}, "linux", missing=parse_ldd(ldd))
    assert "libxcb-icccm.so.4" in message and "apt install libxcb-icccm4 libxcb-keysyms1" in message
    assert xcb_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", missing=["libx.so"]) is None
    assert not wants_xcb({}, "linux") and not wants_xcb({"DISPLAY": ":0"}, "darwin")
    assert wants_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux")


def test_graft_gui_stops_with_the_message_when_this_machine_lacks_them(tmp_path):
    """Real ldd on PySide6's real plugin: where libraries are missing (this CI image lacks two), graft-gui
    prints them and exits 2 before Qt aborts; where none are, the check stays silent."""
    missing = missing_libraries(xcb_plugin())
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=":77", GRAFT_SETTINGS_PATH=str(tmp_path / "graft.ini"))
    if not missing:
        assert xcb_problem(env) is None
        return
    done = subprocess.run([sys.executable, "-m", "app.gui"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "apt install" in done.stderr and missing[0] in done.stderr
    assert "could not load the Qt platform plugin" not in done.stderr
