"""Singular-value spectra on a log scale, one line per series."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.plots._pg import pg
from app.plots.style import (
    SeriesItems,
    add_legend,
    add_save_actions,
    apply_theme,
    series_colour,
    series_rows,
    set_title,
)


def coerce_spectra(values) -> dict[str, np.ndarray]:
    """One array of singular values, or label → array, as a dict of float arrays."""
    if isinstance(values, Mapping):
        return {str(k): np.asarray(v, float).ravel() for k, v in values.items()}
    return {"singular values": np.asarray(values, float).ravel()}


class SpectrumPlot(pg.PlotWidget):
    """Singular values by rank (descending), log-scaled, so source and target shapes compare."""

    def __init__(self, parent=None, *, title: str = "", light: bool | None = None, grid: bool = False) -> None:
        super().__init__(parent)
        apply_theme(self, light=light)
        self.plotItem.setLogMode(x=False, y=True)
        if grid:  # off on screen: pyqtgraph's grid lines cost ~15 ms per repaint (measured)
            self.plotItem.showGrid(x=True, y=True, alpha=0.15)
        self.plotItem.setLabel("left", "singular value")
        self.plotItem.setLabel("bottom", "rank")
        self._legend = add_legend(self.plotItem, light)
        self._series = SeriesItems(self.plotItem, self._legend)
        # Label the decades only: minor labels on a log axis (2, 3 … 9 ×) overlap in a small plot.
        self.plotItem.getAxis("left").setStyle(maxTextLevel=0)
        add_save_actions(self, lambda: series_rows(self._series))
        self.setMinimumSize(160, 120)
        set_title(self.plotItem, title)

    def show_spectrum(self, values, *, title: str | None = None) -> None:
        """Draw one spectrum or several (label → values), replacing what was shown."""
        series: dict[str, tuple] = {}
        for i, (label, sv) in enumerate(coerce_spectra(values).items()):
            sv = np.sort(sv[np.isfinite(sv)])[::-1]
            sv = np.maximum(sv, 1e-12)  # a log axis cannot show zeros
            series[label] = (np.arange(1, sv.size + 1), sv, {"pen": pg.mkPen(series_colour(label, i), width=2)})
        self._series.show(series)
        if title is not None:
            set_title(self.plotItem, title)
        self.plotItem.enableAutoRange()

    def clear_data(self) -> None:
        self._series.clear()
