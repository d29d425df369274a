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


def test_rows_stream_in_and_a_cell_opens_its_tensor(qtbot, window, gui, tiny_model):
    folder, _, _ = tiny_model("bert")
    window.open_source(str(folder))
    gui.plan()
    overview = window.overview
    assert overview.pages.currentIndex() == 0  # an explanation, not an empty plot with ±0.5 axes
    assert overview.pages.currentWidget().objectName() == "overview-empty"
    partial = []
    window.workspace.source_table_grew.connect(partial.append)
    with qtbot.waitSignal(window.workspace.source_analysed, timeout=120_000) as blocker:
        window.analyse_action.trigger()
    table = blocker.args[0]
    assert partial and len(partial[0].cells() and list(partial[0].cells())) < len(list(table.cells()))
    assert overview.pages.currentIndex() == 1 and overview.heatmap.colour_bar.isVisible()

    # People's words with the identifier beside them, and what the metric measures.
    metric = overview.view_combo.currentData()
    assert metric == table.metrics[0] and "(std)" in overview.view_combo.currentText()
    assert f"<code>{metric}</code>" in overview.legend.text() and "Grey cells" in overview.legend.text()

    # A cell's tooltip names its tensor; a click previews the target tensor it feeds.
    i, j = next((i, j) for i in range(len(table.layers)) for j in range(len(table.columns)) if table.names[i, j])
    name = str(table.names[i, j])
    assert name in overview.heatmap._tips[i][j]
    overview.heatmap.cell_clicked.emit(i, j)
    target = next(t.name for t in window.workspace.plan.plan.tensors if t.source_name == name)
    assert window.centre_tabs.currentWidget() is window.preview
    qtbot.waitUntil(lambda: window.workspace.selected_tensor == target, timeout=10_000)


def test_column_labels_never_overlap():
    from app.plots.heatmap import column_ticks
    from app.qt import QtGui
    from app.words import short_column

    metrics = QtGui.QFontMetrics(QtGui.QFont())
    labels = ["embed", "pos", "attn.q", "mlp.down"]
    ticks, lines = column_ticks(labels, 200, metrics)
    assert lines == 1 and [t for _, t in ticks] == labels
    ticks, lines = column_ticks(labels, metrics.horizontalAdvance("mlp.down") * 0.8, metrics)
    assert lines == 2 and [t for _, t in ticks] == ["embed", "\npos", "attn.q", "\nmlp.down"]  # staggered
    ticks, lines = column_ticks(labels, 5, metrics)
    assert len(ticks) < len(labels)  # too narrow even staggered: every k-th label only
    widest = max(metrics.horizontalAdvance(t.strip()) for _, t in ticks)
    xs = [x for x, _ in ticks]
    assert all((b - a) * 5 * 2 >= widest for a, b in zip(xs, xs[1:]))  # same-line neighbours do not touch
    assert short_column("embed (word_embeddings)") == "embed (word)"
    assert short_column("embed (token_type_embeddings)") == "embed (token_type)"
    assert short_column("attn.q") == "attn.q"


def test_estimated_cells_say_so_in_their_tooltip_and_the_legend(qtbot, tmp_path):
    import numpy as np
    from tiny_models import WIDE_MATRIX, save_wide_checkpoint

    from app.panels.overview import OverviewPanel
    from app.qt import QtCore
    from core.sources import open_source
    from core.stats import model_table

    source = open_source(save_wide_checkpoint(tmp_path / "wide.safetensors"))
    table = model_table(source, ("alpha", "top1_norm_ratio"), cache=False)
    panel = OverviewPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    panel.show_source_table(table)
    heatmap = panel.heatmap
    assert panel.view_combo.currentData() == "alpha"
    wide = tuple(int(k) for k in np.argwhere(table.names == WIDE_MATRIX)[0])
    exact = tuple(int(k) for k in np.argwhere(table.names == "model.layers.1.mlp.up_proj.weight")[0])

    # the tooltip the pointer gets on each cell
    def tooltip(cell) -> str:
        centre = QtCore.QPointF(cell[1] + 0.5, cell[0] + 0.5)
        heatmap._on_mouse_moved(heatmap.plotItem.getViewBox().mapViewToScene(centre))
        return heatmap.toolTip()

    assert WIDE_MATRIX in tooltip(wide) and tooltip(wide).endswith("\nestimated (block Krylov, top 96 eigenvalues)")
    assert tooltip(exact).endswith("\nexact")
    assert sum(t.startswith("≈") for t in heatmap._cell_text.texts()) == 1  # the cell's number is marked too
    legend = panel.legend.text()
    assert "≈ marks estimates: 1 of the 4 values (block Krylov, top 96 eigenvalues;" in legend
    assert "the other 3 are exact" in legend

    panel.view_combo.setCurrentIndex(panel.view_combo.findData("top1_norm_ratio"))  # every row norm: exact
    assert tooltip(wide).endswith("\nexact") and "All 4 values are exact." in panel.legend.text()
    assert not any(t.startswith("≈") for t in heatmap._cell_text.texts())
