"""The compare window (File → Compare checkpoints…): two checkpoints compared in a background job, heat map, table, one pair's plots."""

from __future__ import annotations

import os

import numpy as np
import torch

QUERY = "bert.encoder.layer.0.attention.self.query.weight"


def _fine_tuned(folder_a, folder_b) -> None:
    """A copy of the tiny BERT at ``folder_a`` with layer 1 scaled and one matrix moved."""
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(folder_a)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".layer.1." in name:
                p.mul_(1.25)
            elif name == QUERY:
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
    model.save_pretrained(folder_b, safe_serialization=True)


def test_compare_two_checkpoints_in_the_compare_window(qtbot, window, tiny_model, tmp_path):
    folder_a, _, _ = tiny_model("bert")
    folder_b = tmp_path / "tuned"
    _fine_tuned(folder_a, folder_b)
    window.compare_checkpoints_action.trigger()
    panel = window.checkpoint_compare
    assert window.compare_window.isVisible()
    panel.set_locations(folder_a, folder_b)
    with qtbot.waitSignal(panel.compared, timeout=120_000) as blocker:
        panel.compare_button.click()
    result = blocker.args[0]
    assert panel.compare_button.isEnabled() and not panel.cancel_button.isEnabled()

    # The heat map is the metric's layer × role matrix (matrices only: no bias or norm columns).
    table = result.table
    assert panel.metric_combo.currentData() == "rel_frobenius"
    kept = [j for j, c in enumerate(table.columns) if "bias" not in c and not c.startswith("norm")]
    shown = panel.heatmap.matrix
    np.testing.assert_array_equal(shown, table.values["rel_frobenius"][:, kept])
    rows = table.row_labels()
    layer1 = shown[rows.index("layer 1")]
    assert np.allclose(layer1[np.isfinite(layer1)], 0.25)  # every layer-1 matrix scaled by 1.25
    assert shown[rows.index("layer 0"), [table.columns[j] for j in kept].index("attn.q")] > 0
    panel.matrices_only.setChecked(False)
    assert panel.heatmap.matrix.shape == table.values["rel_frobenius"].shape
    panel.metric_combo.setCurrentIndex(panel.metric_combo.findData("cos_min"))
    np.testing.assert_array_equal(panel.heatmap.matrix, table.values["cos_min"])
    panel.matrices_only.setChecked(True)
    assert panel.table.rowCount() == len(result.diff.pairs)
    assert "identical" in panel.status.text()

    # A cell click selects its tensor; both histograms and both spectra are drawn.
    i, j = rows.index("layer 0"), [table.columns[j] for j in kept].index("attn.q")
    with qtbot.waitSignal(panel.detail_shown, timeout=60_000) as shown_detail:
        panel.heatmap.cell_clicked.emit(i, j)
    assert shown_detail.args[0] == QUERY
    assert panel.table.selectionModel().selectedRows()[0].row() == [p.name for p in result.diff.pairs].index(QUERY)
    hist_labels = list(panel.histogram._series.items())
    assert any(label.startswith("A ") for label in hist_labels) and any(label.startswith("B ") for label in hist_labels)
    assert set(panel.spectrum._series.items()) == {"A", "B"}
    shot = os.environ.get("GRAFT_COMPARE_SHOT")
    if shot:
        window.compare_window.grab().save(shot)


def test_compare_a_missing_checkpoint_says_why(qtbot, window, tiny_model, tmp_path):
    folder_a, _, _ = tiny_model("bert")
    panel = window.checkpoint_compare
    panel.set_locations(folder_a, tmp_path / "nowhere")
    panel.compare_button.click()
    qtbot.waitUntil(
        lambda: panel.compare_button.isEnabled() and "Cannot compare" in panel.status.text(), timeout=30_000
    )
    assert "does not exist" in panel.status.text() and panel.result is None
    panel.set_locations("", folder_a)
    panel.compare_button.click()
    qtbot.waitUntil(lambda: "Choose both" in panel.status.text(), timeout=5_000)


def test_a_running_comparison_can_be_cancelled(qtbot, window):
    panel = window.checkpoint_compare
    panel.set_locations("demo", "demo")
    panel.compare_button.click()
    qtbot.waitUntil(panel.cancel_button.isEnabled, timeout=10_000)
    assert not panel.compare_button.isEnabled()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: "cancelled" in panel.status.text(), timeout=60_000)
    assert panel.compare_button.isEnabled() and panel.result is None
