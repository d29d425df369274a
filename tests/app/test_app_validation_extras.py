"""Validation with the source as teacher, trained weights kept and exported; a cancel says so.

The demo model is a sentence-transformer BERT without an MLM head, so its teacher is of kind
"hidden" (its final hidden states). A tiny target and 3 steps keep each run to seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from app.dialogs import open_error_dialogs
from app.jobs import CANCELLED, DONE, FAILED

TINY = {"layers": 1, "hidden": 96, "heads": 3, "ffn": 192}
SCREENSHOT = os.environ.get("GRAFT_VALIDATION_SCREENSHOT", "/tmp/validation_extras.png")


def _tiny_demo(gui):
    gui.open_demo()
    gui.set_target(TINY)
    return gui.plan(lambda p: p.target_sizes["hidden"] == 96 and p.target_sizes["layers"] == 1)


def _weights(folder) -> dict:
    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def test_teacher_keep_trained_and_export(qtbot, window, gui, tmp_path, fresh_history):
    _tiny_demo(gui)
    panel = window.validation
    assert not panel.export_button.isEnabled()
    panel.teacher_box.setChecked(True)
    panel.keep_box.setChecked(True)
    window.jobs.steps_spin.setValue(3)
    with qtbot.waitSignal(window.workspace.validation_finished, timeout=180_000) as finished:
        window.validate_action.trigger()
    report = finished.args[0]
    assert report.status == "complete" and report.teacher["kind"] == "hidden"
    assert "Teacher (hidden states of the source)" in panel.summary.text()
    assert set(report.saved) == {"transferred"}
    trained = report.saved["transferred"]
    assert os.path.dirname(os.path.dirname(trained)) == str(fresh_history.parent / "trained")
    assert panel.saved == {"transferred": trained} and panel.export_button.isEnabled()
    assert "Trained weights kept in" in panel.summary.text()

    panel.resize(1000, 520)
    qtbot.wait(300)
    assert panel.grab().save(SCREENSHOT)

    # Export trained… copies the arm's folder; transformers loads it with the trained weights.
    out = tmp_path / "exported" / "trained-small"
    with qtbot.waitSignal(window.workspace.exported, timeout=60_000) as exported:
        panel.export_trained(str(out))
    assert str(exported.args[0]) == str(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.hidden_size == 96 and model.config.num_hidden_layers == 1
    kept = _weights(Path(trained))
    copied = _weights(out)
    assert kept.keys() == copied.keys() and kept
    for name, tensor in kept.items():
        torch.testing.assert_close(copied[name], tensor, rtol=0, atol=0)
    loaded = model.state_dict()
    shared = [k for k in kept if k in loaded]
    assert any(k.endswith("word_embeddings.weight") for k in shared)
    for name in shared:
        torch.testing.assert_close(loaded[name], kept[name], rtol=0, atol=0)
    assert not list(out.parent.glob(".*"))  # no temporary folder left behind

    # The same folder again (not empty now), and the source folder: refused in a dialog.
    for refused, words in ((out, "not empty"), (window.workspace.source.root, "source")):
        entry = gui.queued(lambda r=refused: panel.export_trained(str(r)))
        qtbot.waitUntil(lambda e=entry: e.state == FAILED, timeout=30_000)
        qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=60_000)
        box = open_error_dialogs(window)[0]
        assert words in box.text() and "bug" not in box.text()
        box.accept()
        qtbot.waitUntil(lambda: not open_error_dialogs(window), timeout=5_000)

    # The run is in the history of this recipe: the Leaderboard tab lists it and can show it.
    board = window.leaderboard
    qtbot.waitUntil(lambda: any(e["kind"] == "validation" for e in board.entries), timeout=60_000)
    index = next(i for i, e in enumerate(board.entries) if e["kind"] == "validation")
    text = board.history_list.item(index).text()
    assert "· validation\n3 steps · transferred (select)" in text
    board.show_entry(index)
    assert [board.table.item(i, 1).text() for i in range(board.table.rowCount())][-1] == "baseline"
    assert {"transferred", "baseline"} <= set(board.curves.series())
    stored = json.loads(open(board.entries[index]["path"]).read())
    assert stored["payload"]["report"]["saved"] == {"transferred": trained}


def test_a_cancelled_validation_says_cancelled_and_keeps_partial_weights(qtbot, window, gui, fresh_history):
    _tiny_demo(gui)
    window.validation.keep_box.setChecked(True)
    window.jobs.steps_spin.setValue(100_000)
    entry = gui.queued(window.validate_action.trigger)
    assert "running" in window.validation.summary.text()
    qtbot.waitUntil(lambda: len(window.validation.curves.series().get("transferred", [])) >= 2, timeout=300_000)
    with qtbot.waitSignal(window.workspace.validation_cancelled, timeout=60_000) as cancelled:
        window.workspace.queue.cancel(entry)
    assert entry.state == CANCELLED
    text = window.validation.summary.text()
    assert "cancelled after" in text and "running" not in text
    # The child saved the arm's partial weights before it stopped: they can be exported.
    kept = cancelled.args[0]
    assert set(kept) == {"transferred"} and window.validation.export_button.isEnabled()
    info = json.loads((Path(kept["transferred"]) / "graft_trained.json").read_text())
    assert info["partial"] is True and info["steps"] >= 2
    assert "partly trained weights were kept" in text
    assert all(e.state in (DONE, CANCELLED) for e in window.workspace.queue.entries)
