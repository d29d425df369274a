"""Plot widgets take numpy data; histograms normalise to densities; curves redraw by timer."""

from __future__ import annotations

import numpy as np
import pytest

from app.plots import CurvesPlot, HeatmapPlot, HistogramPlot, SpectrumPlot, coerce_histogram
from app.plots.histogram import HistogramData, to_density


def test_coerce_histogram_shapes():
    edges = np.linspace(0, 1, 5)
    data = coerce_histogram((np.array([1, 2, 3, 4]), edges))
    assert list(data.series) == ["values"]
    data = coerce_histogram(
        {"edges": edges, "source": [1, 1, 1, 1], "target": [0, 2, 2, 0], "target_fit": (edges, edges)}
    )
    assert list(data.series) == ["source", "target"] and "target" in data.fits

    class Pair:
        def __init__(self):
            self.edges = edges
            self.series = {"a": [1, 2, 3, 4]}
            self.fits = {"a": type("Fit", (), {"x": edges, "pdf": edges})()}

    assert set(coerce_histogram(Pair()).fits) == {"a"}


def test_density_integrates_to_one():
    edges = np.linspace(-1, 1, 11)
    density = to_density(np.arange(10.0), edges)
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    assert not to_density(np.zeros(10), edges).any()


def test_widgets_accept_data(qtbot):
    hist = HistogramPlot()
    qtbot.addWidget(hist)
    hist.show_histogram(HistogramData(np.linspace(0, 1, 4), {"source": np.array([1.0, 2, 1])}), title="t")
    assert len(hist.plotItem.listDataItems()) == 1
    heat = HeatmapPlot()
    qtbot.addWidget(heat)
    heat.show_matrix(np.eye(3), row_labels=["a", "b", "c"], col_labels=["x", "y", "z"], cell_text=[["1"] * 3] * 3)
    assert heat.image.image.shape == (3, 3)
    with pytest.raises(ValueError):
        heat.show_matrix(np.zeros((2, 2, 2)))
    spec = SpectrumPlot()
    qtbot.addWidget(spec)
    spec.show_spectrum({"source": [3, 2, 1], "target": [2, 0, 1]})
    assert len(spec.plotItem.listDataItems()) == 2


def test_curves_redraw_on_timer(qtbot):
    plot = CurvesPlot()
    qtbot.addWidget(plot)
    for step in range(100):
        plot.add_point("transferred", step, 1.0 / (step + 1))
    assert plot.plotItem.listDataItems() == []  # nothing drawn until the timer fires
    qtbot.waitUntil(lambda: len(plot.plotItem.listDataItems()) == 1, timeout=2000)
    xs, _ = plot.plotItem.listDataItems()[0].getData()
    assert len(xs) == 100
    assert plot.series()["transferred"][0] == (0.0, 1.0)


def test_nan_cells_are_drawn_in_the_middle_colour_with_readable_labels(qtbot, qtlog):
    heat = HeatmapPlot()
    qtbot.addWidget(heat)
    matrix = np.array([[np.nan, 0.5], [1.0, np.nan]])
    heat.show_matrix(matrix, levels=(0.0, 1.0), cell_text=[["n/a", "0.5"], ["1", "n/a"]])
    assert heat.image.image[0, 0] == pytest.approx(0.5)
    assert sorted(heat._cell_text.texts()) == ["0.5", "1", "n/a", "n/a"]
    assert not [r for r in qtlog.records if "invalid value nan" in r.message]


def test_a_redraw_sets_only_the_series_that_got_points(qtbot):
    plot = CurvesPlot()
    qtbot.addWidget(plot)
    plot.add_point("transferred", 0, 2.0)
    plot.add_point("transferred (eval)", 0, 2.5)
    plot.redraw()
    eval_curve = plot._curves["transferred (eval)"]
    sets = []
    eval_curve.sigPlotChanged.connect(lambda *_: sets.append(1))
    plot.add_point("transferred", 1, 1.5)
    plot.redraw()
    assert sets == []  # the evaluation curve, with no new point, was left alone
    assert len(plot._curves["transferred"].getData()[0]) == 2
    plot.add_point("transferred (eval)", 1, 1.8)
    plot.redraw()
    assert sets and len(eval_curve.getData()[0]) == 2
