"""The app's export refuses what ``graft export --force`` refuses, in an error dialog (issue 12)."""

from __future__ import annotations

from cli_expect import digest

from app.dialogs import open_error_dialogs
from app.jobs import FAILED
from app.qt import QtWidgets


def _export_dialog(window):
    window.export_action.trigger()
    dialog = window.findChild(QtWidgets.QDialog, "graft-export-dialog")
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_replace_any_is_a_second_step_after_replace(qtbot, window, gui, tiny_bert_folder):
    window.open_source(str(tiny_bert_folder))
    gui.plan()
    dialog = _export_dialog(window)
    assert not dialog.replace_any_box.isEnabled()
    dialog.force_box.setChecked(True)
    dialog.replace_any_box.setChecked(True)
    assert dialog.options()["force"] and dialog.options()["replace_any"]
    dialog.force_box.setChecked(False)  # unticking the first step clears the second
    assert not dialog.replace_any_box.isChecked() and not dialog.options()["replace_any"]
    dialog.reject()


def test_exporting_over_the_source_shows_the_refusal_and_keeps_the_source(qtbot, window, gui, tiny_model):
    source, _, _ = tiny_model("bert")  # config and weights only: no tokenizer file to trip over first
    before = digest(source)
    window.open_source(str(source))
    gui.plan()
    dialog = _export_dialog(window)
    dialog.folder_edit.setText(str(source))
    dialog.force_box.setChecked(True)  # "Replace the folder if it exists" never means the source
    dialog.accept()
    qtbot.waitUntil(lambda: len(open_error_dialogs(window)) == 1, timeout=120_000)
    box = open_error_dialogs(window)[0]
    assert "source" in box.text() and str(source) in box.text()
    assert "bug" not in box.text()  # an ExportError the user can act on, not a crash report
    assert window.workspace.queue.entries[-1].state == FAILED
    box.accept()
    assert digest(source) == before


def test_a_verifiable_export_records_every_source_file_hash(qtbot, window, gui, tiny_model, tmp_path):
    import hashlib
    import json

    source, _, _ = tiny_model("bert")
    window.open_source(str(source))
    gui.plan()
    exported = []
    window.workspace.exported.connect(exported.append)
    dialog = _export_dialog(window)
    assert not dialog.options()["verifiable"]  # off by default: the first run reads only what it needs
    dialog.folder_edit.setText(str(tmp_path / "verifiable"))
    dialog.verifiable_box.setChecked(True)
    dialog.accept()
    qtbot.waitUntil(lambda: bool(exported), timeout=120_000)
    weights = sorted(source.glob("*.safetensors"))
    checked = json.loads((tmp_path / "verifiable" / "graft_recipe.json").read_text())["provenance"]
    assert checked["verify"] == "files"
    assert checked["shards"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in weights}
