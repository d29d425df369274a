"""The window under bad input: error dialogs, inline plan messages, cancel — and it stays usable."""

from __future__ import annotations

from app.dialogs import open_error_dialogs
from app.jobs import CANCELLED
from app.qt import QtCore


def test_bad_source_shows_an_error_and_the_window_stays_usable(qtbot, window, gui, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    window.open_source(str(bad))
    qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=60_000)
    box = open_error_dialogs(window)[0]
    assert "broken.safetensors" in box.text()
    assert box.windowTitle() == "Cannot open the source"
    box.accept()
    qtbot.waitUntil(lambda: not open_error_dialogs(window), timeout=5_000)
    assert gui.open_demo().family == "bert"  # still usable


def test_impossible_target_shows_inline_message(qtbot, window, gui):
    gui.open_demo()
    window.target.size_spins["heads"].setValue(7)  # 384 is not divisible by 7
    qtbot.waitUntil(lambda: window.target.message.isVisible(), timeout=60_000)
    assert "divisible" in window.target.message.text()
    assert window.workspace.plan is None and not window.materialise_action.isEnabled()
    window.target.size_spins["heads"].setValue(12)
    gui.plan(lambda p: p.target_sizes["heads"] == 12)
    qtbot.waitUntil(lambda: not window.target.message.isVisible(), timeout=60_000)
    assert window.materialise_action.isEnabled()


def test_cancel_a_validation_run(qtbot, window, gui):
    gui.open_demo()
    gui.set_target({"layers": 1, "hidden": 96, "heads": 3, "ffn": 192})
    gui.plan(lambda p: p.target_sizes["hidden"] == 96)
    window.jobs.steps_spin.setValue(100_000)
    entry = gui.queued(window.validate_action.trigger)
    qtbot.waitUntil(lambda: len(window.validation.curves.series().get("transferred", [])) >= 2, timeout=300_000)
    row = window.jobs.rows[entry.id]
    qtbot.mouseClick(row.cancel_button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(lambda: entry.state == CANCELLED, timeout=60_000)
    assert not window.workspace.queue.busy
    assert not row.cancel_button.isEnabled()
