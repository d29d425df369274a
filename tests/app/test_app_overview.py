"""Model overview: the source's layer × role statistics with mean-field diagnostics (tiny model)."""

from __future__ import annotations


def test_analyse_a_tiny_source(qtbot, window, gui, tiny_model):
    folder, _, _ = tiny_model("bert")
    window.open_source(str(folder))
    plan = gui.plan()
    assert plan.family == "bert"
    assert window.overview.analyse_button.isEnabled()
    with qtbot.waitSignal(window.workspace.source_analysed, timeout=120_000) as blocker:
        window.analyse_action.trigger()
    table = blocker.args[0]
    assert "row_corr_excess" in table.metrics
    combo = window.overview.view_combo
    assert combo.count() == 1 + len(table.metrics) and combo.currentIndex() == 1
    assert window.overview.heatmap.matrix.shape == table.values[table.metrics[0]].shape
    combo.setCurrentIndex(combo.count() - 1)  # another metric redraws
    assert window.overview.title.text().startswith("Source statistics")
    assert "Mean-field diagnostics" in window.overview.suggestion.text()
