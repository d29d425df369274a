"""Plot widgets take numpy data; histograms normalise to densities; curves redraw by timer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app.plots import CurvesPlot, HeatmapPlot, HistogramPlot, SpectrumPlot, coerce_histogram
from app.plots._pg import QtGui, pg
from app.plots.heatmap import NO_VALUE
from app.plots.histogram import HistogramData, to_density
from app.plots.style import save_csv, save_image, series_rows


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
    assert heat.image.image.shape == (3, 3, 4)  # coloured here, RGBA
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


def test_nan_cells_are_drawn_in_no_colour_of_the_map_with_readable_labels(qtbot, qtlog):
    heat = HeatmapPlot()
    qtbot.addWidget(heat)
    matrix = np.array([[np.nan, 0.5], [1.0, np.nan]])
    heat.show_matrix(matrix, levels=(0.0, 1.0), colormap="viridis", cell_text=[["n/a", "0.5"], ["1", "n/a"]])
    image = heat.image.image  # RGBA, coloured here
    assert tuple(image[0, 0]) == NO_VALUE and tuple(image[1, 1]) == NO_VALUE
    assert tuple(image[0, 1]) != NO_VALUE  # a value between the ends: teal, never the missing grey
    teal = pg.colormap.get("viridis").map(0.5, mode="byte")
    assert tuple(image[0, 1][:3]) == tuple(teal[:3])
    assert sorted(heat._cell_text.texts()) == ["0.5", "1", "n/a", "n/a"]
    assert not [r for r in qtlog.records if "invalid value nan" in r.message]
    assert heat.rows() == [
        ["", "0", "1"],
        ["0", pytest.approx(np.nan, nan_ok=True), 0.5],
        ["1", 1.0, pytest.approx(np.nan, nan_ok=True)],
    ]


def test_ticks_are_in_the_datas_units_and_fits_are_named_by_family(qtbot):
    plot = HistogramPlot()
    qtbot.addWidget(plot)
    edges = np.linspace(-0.003, 0.003, 31)
    centres = (edges[:-1] + edges[1:]) / 2
    pdf = np.exp(-(centres**2) / (2 * 0.001**2))
    plot.show_histogram({"edges": edges, "source": pdf, "target": pdf, "fits": {"source laplace": (centres, pdf)}})
    for side in ("left", "bottom"):
        assert not plot.plotItem.getAxis(side).autoSIPrefix  # "0.002", never "2" under "value (x0.001)"
    labels = [item.name() for item in plot.plotItem.listDataItems()]
    assert labels == ["source", "target", "source: Laplace fit"]
    fit = plot.plotItem.listDataItems()[2]
    bars = plot.plotItem.listDataItems()[0]
    assert fit.opts["pen"].color() != bars.opts["pen"].color()  # the fit reads apart from its histogram


def test_log_density_shows_the_tails_without_empty_bins(qtbot):
    plot = HistogramPlot()
    qtbot.addWidget(plot)
    edges = np.arange(6.0)
    plot.set_log_density(True)
    plot.show_histogram({"edges": edges, "source": np.array([0.0, 1, 10, 100, 0])})
    assert plot.plotItem.getAxis("left").logMode
    _, y = plot.plotItem.listDataItems()[0].getData()
    assert np.isnan(y[0]) and np.isnan(y[-1]) and not np.isinf(y[np.isfinite(y)]).any()
    plot.set_log_density(False)
    assert not plot.plotItem.getAxis("left").logMode


def test_every_plot_saves_png_svg_and_its_data_as_csv(qtbot, tmp_path):
    hist, spectrum, curves, heat = HistogramPlot(), SpectrumPlot(), CurvesPlot(), HeatmapPlot()
    for widget in (hist, spectrum, curves, heat):
        qtbot.addWidget(widget)
        widget.resize(320, 240)
        texts = [a.text() for a in widget.plotItem.getViewBox().menu.actions()]
        assert {"Save image as PNG…", "Save image as SVG…", "Save data as CSV…"} <= set(texts)
    edges = np.array([0.0, 1.0, 2.0])
    hist.show_histogram({"edges": edges, "source": np.array([1.0, 3.0])})
    spectrum.show_spectrum({"source": np.array([3.0, 2.0, 1.0])})
    curves.add_point("baseline", 0, 2.0)
    curves.add_point("baseline", 5, 1.5)
    heat.show_matrix(np.eye(2), row_labels=["a", "b"], col_labels=["x", "y"])
    for name, widget in (("hist", hist), ("spectrum", spectrum), ("curves", curves), ("heat", heat)):
        for suffix in (".png", ".svg"):
            path = save_image(widget, tmp_path / f"{name}{suffix}")
            assert path.stat().st_size > 500
    assert (tmp_path / "hist.svg").read_text().lstrip().startswith("<?xml")
    assert not QtGui.QImage(str(tmp_path / "heat.png")).isNull()
    with pytest.raises(ValueError, match="png or .svg"):
        save_image(hist, tmp_path / "hist.jpg")

    def table(rows):
        return list(csv.reader(open(save_csv(rows, tmp_path / "t.csv"))))

    assert table(series_rows(hist._series)) == [
        ["series", "x", "y"],
        ["source", "0.5", "0.25"],
        ["source", "1.5", "0.75"],
    ]
    assert table(series_rows(spectrum._series))[1:] == [
        ["source", "1.0", "3.0"],
        ["source", "2.0", "2.0"],
        ["source", "3.0", "1.0"],
    ]
    assert table(curves.rows()) == [["series", "step", "value"], ["baseline", "0.0", "2.0"], ["baseline", "5.0", "1.5"]]
    assert table(heat.rows()) == [["", "x", "y"], ["a", "1.0", "0.0"], ["b", "0.0", "1.0"]]


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
