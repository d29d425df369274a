"""A source with NaN/Inf weights: the window says how many and where, and refuses to transfer it
until the user allows it (the CLI's ``--allow-nonfinite``)."""

from __future__ import annotations

import shutil

from safetensors.torch import load_file, save_file

from app.dialogs import open_error_dialogs
from app.jobs import DONE, FAILED
from core.sources import demo_model_path

BAD = "encoder.layer.1.attention.self.key.weight"


def test_nonfinite_weights_are_shown_and_block_until_allowed(qtbot, window, gui, tmp_path):
    folder = tmp_path / "nan-demo"
    shutil.copytree(demo_model_path(), folder)
    tensors = load_file(folder / "model.safetensors")
    tensors[BAD][0, :3] = float("nan")
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})

    window.open_source(str(folder))
    gui.plan()
    qtbot.waitUntil(lambda: window.model.values_banner.isVisible(), timeout=60_000)
    assert f"3 NaN/Inf value(s) in 1 tensor(s), first '{BAD}'" in window.model.values_label.text()
    marked = window.model.tree.findItems(BAD, _recursive(), 0)
    assert marked and "3 NaN/Inf" in marked[0].text(3)

    gui.set_target({"layers": 1, "hidden": 96, "heads": 3, "ffn": 192})
    gui.plan(lambda p: p.target_sizes["hidden"] == 96)
    refused = gui.queued(window.materialise_action.trigger)
    qtbot.waitUntil(lambda: refused.state == FAILED, timeout=120_000)
    qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=10_000)
    box = open_error_dialogs(window)[0]
    assert "NaN/Inf" in box.text() and BAD in box.text()
    box.accept()

    window.jobs.steps_spin.setValue(20)
    refused = gui.queued(window.validate_action.trigger)  # a validation materialises: refused alike
    qtbot.waitUntil(lambda: refused.state == FAILED, timeout=120_000)
    qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=10_000)
    open_error_dialogs(window)[0].accept()
    assert not window.validation.stamp.live  # the panel says it failed, not "running"
    assert window.validation.summary.text().startswith("Validation failed: ")
    assert "NaN/Inf" in window.validation.summary.text()

    out = tmp_path / "export"
    refused = gui.queued(lambda: window.workspace.export(out, dtype=None, max_shard_size="5GB"))
    qtbot.waitUntil(lambda: refused.state == FAILED, timeout=120_000)
    qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=10_000)
    open_error_dialogs(window)[0].accept()
    assert not out.exists()

    window.model.allow_nonfinite_box.setChecked(True)
    allowed = gui.queued(window.materialise_action.trigger)
    qtbot.waitUntil(lambda: allowed.state == DONE, timeout=120_000)
    exported = gui.queued(lambda: window.workspace.export(out, dtype=None, max_shard_size="5GB"))
    qtbot.waitUntil(lambda: exported.state == DONE, timeout=120_000)
    assert (out / "config.json").is_file()

    window.open_source("demo")  # a clean source hides the banner and forgets the permission
    qtbot.waitUntil(
        lambda: (
            window.workspace.source is not None
            and window.workspace.source.display_name != str(folder)
            and not window.model.values_banner.isVisible()
        ),
        timeout=60_000,
    )
    assert not window.workspace.allow_nonfinite
    gui.plan(lambda p: p.target_sizes["hidden"] == 384)  # the demo's own flows end before the test does
    gui.preview()


def _recursive():
    from app.qt import QtCore

    return QtCore.Qt.MatchExactly | QtCore.Qt.MatchRecursive
