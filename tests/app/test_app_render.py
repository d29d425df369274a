"""app.render writes non-blank PNGs offscreen, with the plot classes the window uses."""

from __future__ import annotations

import numpy as np
import pytest

from app import render
from app.qt import QtGui


def _non_blank(path) -> bool:
    image = QtGui.QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    return len(colours) > 5


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_histogram_pair_with_fits(tmp_path, qapp, rng):
    edges = np.linspace(-3, 3, 41)
    x = np.linspace(-3, 3, 100)
    hist = {
        "edges": edges,
        "source": np.histogram(rng.normal(size=2000), edges)[0],
        "target": np.histogram(rng.normal(scale=1.3, size=900), edges)[0],
        "fits": {"source": (x, np.exp(-x * x / 2) / np.sqrt(2 * np.pi))},
    }
    out = render.render_histogram_png(hist, tmp_path / "h" / "hist.png", title="q_proj")
    assert out.is_file() and _non_blank(out)


def test_histogram_from_numpy(tmp_path, qapp, rng):
    out = render.render_histogram_png(np.histogram(rng.normal(size=500), 30), tmp_path / "n.png")
    assert _non_blank(out)


def test_histogram_rejects_unknown(tmp_path, qapp):
    with pytest.raises(TypeError, match="edges"):
        render.render_histogram_png({"counts": [1, 2]}, tmp_path / "x.png")


def test_heatmap_and_spectrum(tmp_path, qapp, rng):
    matrix = np.corrcoef(rng.normal(size=(16, 64)))
    assert _non_blank(render.render_heatmap_png(matrix, tmp_path / "c.png", title="rows"))
    spectra = {"source": np.linalg.svd(rng.normal(size=(32, 32)), compute_uv=False), "target": np.linspace(3, 0, 20)}
    assert _non_blank(render.render_spectrum_png(spectra, tmp_path / "s.png"))
    assert _non_blank(render.render_spectrum_png(np.array([3.0, 2.0, 1.0]), tmp_path / "s1.png"))


def test_table_heatmap(tmp_path, qapp, rng):
    values = rng.normal(size=(4, 3)) * [1, 100, 0.01]
    values[1, 1] = np.nan
    out = render.render_table_heatmap_png(
        values, [f"layer {i}" for i in range(4)], ["mean", "std", "kurt"], tmp_path / "t.png"
    )
    assert _non_blank(out)
    with pytest.raises(ValueError, match="do not match"):
        render.render_table_heatmap_png(values, ["a"], ["b"], tmp_path / "bad.png")


def test_curves(tmp_path, qapp):
    curves = {
        "transferred": [(s, 3 / (1 + s)) for s in range(50)],
        "baseline": [(s, 4 / (1 + s) + 0.5) for s in range(50)],
    }
    out = render.render_curves_png(curves, tmp_path / "curves.png", title="loss", marks={"reached": 10})
    assert _non_blank(out)


def test_table_heatmap_with_an_empty_column(tmp_path, qapp):
    import warnings

    values = np.array([[1.0, np.nan], [2.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = render.render_table_heatmap_png(values, ["a", "b"], ["x", "empty"], tmp_path / "t.png")
    assert out.is_file()
