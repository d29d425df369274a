"""Screenshots of the main window in each main state: saved as PNGs and checked not to be blank.

Only when asked for: the demo flow it walks through (open, preview, materialise, validate, an
error) is the flow test's (``test_app_window_flow.py``), which runs every time. To draw them::

    GRAFT_SCREENSHOT_DIR=docs/screenshots QT_QPA_PLATFORM=offscreen pytest tests/app/test_app_screenshots.py

(``docs/screenshots/`` holds the committed ones; any folder will do.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.dialogs import open_error_dialogs
from app.qt import QtCore, QtGui


@pytest.fixture
def shots() -> Path:
    """The folder screenshots were asked for in (``$GRAFT_SCREENSHOT_DIR``); the test is skipped otherwise."""
    if not os.environ.get("GRAFT_SCREENSHOT_DIR"):
        pytest.skip("screenshots not asked for: set GRAFT_SCREENSHOT_DIR to a folder to draw them there")
    folder = Path(os.environ["GRAFT_SCREENSHOT_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settle(qtbot, ms: int = 250) -> None:
    qtbot.wait(ms)  # let plots redraw on their timers


def save(window, path: Path) -> QtGui.QImage:
    """The window, with any open error dialog painted where it sits, as a PNG."""
    image = window.grab().toImage()
    painter = QtGui.QPainter(image)
    for box in open_error_dialogs(window):
        offset = box.mapToGlobal(QtCore.QPoint(0, 0)) - window.mapToGlobal(QtCore.QPoint(0, 0))
        if offset.x() < 0 or offset.y() < 0:  # offscreen platforms place it at the origin: centre it
            offset = QtCore.QPoint((window.width() - box.width()) // 2, (window.height() - box.height()) // 2)
        painter.drawPixmap(offset, box.grab())
    painter.end()
    assert image.save(str(path)), path
    return image


def assert_not_blank(image: QtGui.QImage) -> None:
    assert not image.isNull() and image.width() >= 800
    step = 11
    colours = {image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)}
    assert len(colours) > 40, f"only {len(colours)} colours: the window looks blank"


def test_screenshots(shots, qtbot, window, gui, tmp_path):
    settle(qtbot)
    assert_not_blank(save(window, shots / "01-start.png"))

    gui.open_demo()
    settle(qtbot)
    assert_not_blank(save(window, shots / "02-demo-opened.png"))

    gui.set_target({"layers": 2, "hidden": 192, "heads": 6, "ffn": 768})
    combo = window.target.value_combo
    combo.setCurrentIndex(combo.findData("mean_field"))
    window.target.add_override("attn", "mimetic")  # a per-role override with its own form
    gui.plan(
        lambda p: (
            p.target_sizes["hidden"] == 192
            and any(t.strategy == "mean_field" for t in p.tensors)
            and any(t.strategy == "mimetic" for t in p.tensors)
        )
    )
    window.target.scroll.ensureWidgetVisible(window.target.override_rows()[0])
    window.preview.map_combo.setCurrentIndex(window.preview.map_combo.findData("heads_qk"))
    gui.preview()
    settle(qtbot)
    assert_not_blank(save(window, shots / "03-smaller-target-preview.png"))

    with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
        window.materialise_action.trigger()
    window.centre_tabs.setCurrentWidget(window.overview)
    settle(qtbot)
    assert_not_blank(save(window, shots / "04-model-overview.png"))

    window.jobs.steps_spin.setValue(6)
    with qtbot.waitSignal(window.workspace.validation_finished, timeout=300_000):
        window.validate_action.trigger()
    settle(qtbot, 400)
    assert_not_blank(save(window, shots / "05-validation-curves.png"))

    missing = tmp_path / "no-such-model"
    window.open_source(str(missing))
    qtbot.waitUntil(lambda: bool(open_error_dialogs(window)), timeout=60_000)
    settle(qtbot)
    assert_not_blank(save(window, shots / "06-error-dialog.png"))
    assert len(list(shots.glob("*.png"))) >= 6
