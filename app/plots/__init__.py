"""pyqtgraph views of the numbers core computes: histograms, heat maps, spectra, curves.

Plots take plain numpy arrays (never tensors) and import no torch; ``app/render.py`` draws
the same classes into PNG files for the CLI's reports.
"""

from app.plots.curves import CurvesPlot
from app.plots.heatmap import HeatmapPlot
from app.plots.histogram import HistogramData, HistogramPlot, coerce_histogram
from app.plots.spectrum import SpectrumPlot

__all__ = ["CurvesPlot", "HeatmapPlot", "HistogramData", "HistogramPlot", "SpectrumPlot", "coerce_histogram"]
