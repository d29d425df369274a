"""End to end on the demo model: open, size, pick a strategy, preview, materialise, export, validate."""

from __future__ import annotations

import torch
from transformers import AutoModel

from app.jobs import DONE
from app.qt import QtWidgets
from core.transfer import materialize

SMALL = {"layers": 2, "hidden": 192, "heads": 6, "ffn": 384}


def test_demo_flow(qtbot, window, gui, tmp_path):
    plan = gui.open_demo()
    assert plan.family == "bert"
    assert window.model.tree.topLevelItemCount() > 2
    assert window.workspace.settings.recent_sources()[0] == "demo"

    # A smaller target and another strategy: the plan and the preview follow the form.
    gui.set_target(SMALL)
    combo = window.target.value_combo
    combo.setCurrentIndex(combo.findData("mean_field"))
    plan = gui.plan(
        lambda p: (
            p.target_sizes["hidden"] == 192
            and p.target_sizes["layers"] == 2
            and any(t.strategy == "mean_field" for t in p.tensors)
        )
    )
    data = gui.preview()
    assert data.target_shape[-1] == 192 and data.histogram.target.sum() > 0
    assert "parameters" in window.target.count_label.text()

    # Picking another tensor in the model tree previews it.
    name = next(t.name for t in plan.tensors if t.role == "mlp.up" and t.name.endswith("weight"))
    assert window.model.select(name)
    data = gui.preview(name)
    assert data.role == "mlp.up" and data.spectrum["target"].size > 0

    # Materialise → the model overview fills in.
    with qtbot.waitSignal(window.workspace.target_materialised, timeout=120_000):
        window.materialise_action.trigger()
    materialised = window.workspace.materialised
    assert [s.name for s in materialised.summaries] == [t.name for t in plan.tensors]
    assert sum(s.std > 0 for s in materialised.summaries) > len(plan.tensors) // 2
    assert window.overview.heatmap.matrix.size > 0

    # Export through the dialog; the folder loads in transformers with the recipe's weights (the
    # same recipe gives the same bytes in this process as in the export's child process).
    out = tmp_path / "small-export"
    window.export_action.trigger()
    dialog = window.findChild(QtWidgets.QDialog, "graft-export-dialog")
    assert dialog is not None and dialog.isVisible()
    dialog.folder_edit.setText(str(out))
    with qtbot.waitSignal(window.workspace.exported, timeout=180_000):
        dialog.accept()
    model = AutoModel.from_pretrained(out)
    assert model.config.hidden_size == 192 and model.config.num_hidden_layers == 2
    loaded = dict(model.named_parameters())["embeddings.word_embeddings.weight"]
    expected = dict(materialize(window.workspace.plan.plan, window.workspace.source))[
        "embeddings.word_embeddings.weight"
    ]
    torch.testing.assert_close(loaded, expected, rtol=0, atol=0)

    # A short validation run draws both curves.
    window.jobs.steps_spin.setValue(4)
    with qtbot.waitSignal(window.workspace.validation_finished, timeout=300_000):
        window.validate_action.trigger()
    series = window.validation.curves.series()
    assert {"transferred", "baseline"} <= set(series)
    assert len(series["transferred"]) >= 3
    assert "Validation complete" in window.validation.summary.text()
    assert all(e.state == DONE for e in window.workspace.queue.entries)
