"""The device picker offers what this machine has; a recipe asking for a missing GPU runs on cpu."""

from __future__ import annotations

import json

import pytest
import torch

from core.devices import device_availability


def _enabled(combo, device: str) -> bool:
    return combo.model().item(combo.findData(device)).isEnabled()


def _wait_for_devices(qtbot, combo) -> None:
    """Until the window's warm-up job has reported the devices (it sets every item's tooltip)."""
    qtbot.waitUntil(lambda: combo.itemData(combo.findData("cpu"), 3) == "run on cpu", timeout=120_000)


def test_devices_this_machine_lacks_are_greyed_out(window, qtbot):
    combo = window.target.device_combo
    _wait_for_devices(qtbot, combo)
    assert _enabled(combo, "cuda") == torch.cuda.is_available()
    assert _enabled(combo, "cpu")
    why = device_availability()["cuda"]
    index = combo.findData("cuda")
    assert combo.itemData(index, 3) == (why or "run on cuda")  # 3: Qt.ToolTipRole


def test_a_recipe_for_a_missing_gpu_falls_back_to_cpu(window, gui, qtbot, tmp_path):
    _wait_for_devices(qtbot, window.target.device_combo)
    missing = [d for d, why in device_availability().items() if why is not None]
    if not missing:
        pytest.skip("this machine has cuda and mps both, so no recipe device is missing here")
    device = missing[0]
    path = tmp_path / "recipe.json"
    path.write_text(
        json.dumps({"graft_recipe": 1, "source": "demo", "target": {"hidden": 192, "heads": 6}, "device": device})
    )
    window.open_recipe(str(path))
    gui.plan(lambda p: p.target_sizes["hidden"] == 192)
    assert window.target.device_combo.currentData() == "cpu"
    assert window.workspace.recipe.device == "cpu" and window.workspace.device == "cpu"
    note = window.target.device_note
    assert not note.isHidden() and device in note.text() and "cpu" in note.text()
    gui.preview()  # and the preview runs there


def test_the_warm_up_waits_for_the_windows_first_frame(qtbot, runner):
    from app.main_window import MainWindow

    w = MainWindow(runner=runner)
    qtbot.addWidget(w)
    painted = []
    w.first_painted.connect(lambda: painted.append(w.warm_up.running))
    qtbot.wait(200)  # not shown: nothing painted, nothing warming up
    assert painted == [] and not w.warm_up.running
    w.show()
    qtbot.waitUntil(lambda: bool(painted), timeout=10_000)
    assert painted == [False]  # the warm-up starts only once the frame is painted…
    _wait_for_devices(qtbot, w.target.device_combo)  # …and then reports the devices
    w.workspace.cancel_all()
    w.close()
