"""Colours and fonts shared by every plot, following the application's light or dark palette."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from app.plots._pg import QtGui, QtWidgets, pg

#: Series colours by role; anything else cycles through ``CYCLE``.
SERIES_COLOURS = {
    "source": "#3b7dd8",
    "target": "#e8743b",
    "transferred": "#e8743b",
    "baseline": "#7f7f7f",
}
CYCLE = ["#3b7dd8", "#e8743b", "#19a979", "#c94f7c", "#8d6cab", "#c4a000", "#4c9fb8"]


def series_colour(label: str, index: int) -> str:
    """The colour for a series: fixed for known roles, otherwise from the cycle."""
    key = label.lower().split(" ")[0]
    return SERIES_COLOURS.get(key, CYCLE[index % len(CYCLE)])


def is_dark() -> bool:
    """Whether the application palette is dark (window darker than its text)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        return False
    palette = app.palette()
    return palette.color(QtGui.QPalette.Window).lightness() < palette.color(QtGui.QPalette.WindowText).lightness()


def apply_theme(widget: pg.PlotWidget | pg.GraphicsLayoutWidget, *, light: bool | None = None) -> None:
    """Give a plot the palette's background and text colours (or a fixed light theme)."""
    dark = (not light) if light is not None else is_dark()
    background = "#1e1f22" if dark else "#ffffff"
    foreground = theme_text_colour(not dark)
    widget.setBackground(background)
    items = [widget.getPlotItem()] if isinstance(widget, pg.PlotWidget) else list(widget.ci.items)
    for item in items:
        if not isinstance(item, pg.PlotItem):
            continue
        for name in ("left", "bottom", "right", "top"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(foreground))
            axis.setTextPen(pg.mkPen(foreground))
            # Ticks in the data's own units: "0.002", not "2" under a "value (x0.001)" label.
            axis.enableAutoSIPrefix(False)
        item.titleLabel.opts["color"] = foreground


def theme_text_colour(light: bool | None = None) -> str:
    """The text colour plots use under the current (or a forced light) theme."""
    dark = (not light) if light is not None else is_dark()
    return "#d4d4d4" if dark else "#303030"


def add_legend(plot: pg.PlotItem, light: bool | None = None) -> pg.LegendItem:
    """A top-right legend with readable text in the current theme."""
    return plot.addLegend(offset=(-10, 10), labelTextSize="8pt", labelTextColor=theme_text_colour(light))


def set_title(plot: pg.PlotItem, title: str) -> None:
    """Set a plot title in the theme's text colour, or hide it when empty."""
    if title:
        plot.setTitle(title, color=plot.titleLabel.opts.get("color"), size="10pt")
    else:
        plot.setTitle(None)


class SeriesItems:
    """The line items of a plot, kept by label and updated in place.

    Replacing a plot's items (``clear()`` then ``plot()``) rebuilds the legend and the items'
    view bookkeeping each time: 10–20 ms per plot on the GUI thread, for a preview that redraws
    on every form change. Updating the existing items costs a fraction of that.
    """

    def __init__(self, plot: pg.PlotItem, legend: pg.LegendItem) -> None:
        self._plot = plot
        self._legend = legend
        self._items: dict[str, pg.PlotDataItem] = {}
        self._order: list[str] = []

    def show(self, series: dict[str, tuple]) -> None:
        """Draw ``label → (x, y, options)`` (options as for ``PlotItem.plot``); drop other labels.

        The legend is rebuilt only when the set or order of labels changes.
        """
        labels = list(series)
        if labels != self._order:
            self.clear()
        for label, (x, y, options) in series.items():
            item = self._items.get(label)
            if item is None:
                self._items[label] = self._plot.plot(x, y, name=label, **options)
            else:
                item.setData(x, y, **options)
        self._order = labels

    def items(self) -> dict[str, pg.PlotDataItem]:
        """The drawn items by label, in drawing order."""
        return {label: self._items[label] for label in self._order if label in self._items}

    def clear(self) -> None:
        for item in self._items.values():
            self._plot.removeItem(item)
        self._items.clear()
        self._order = []
        self._legend.clear()


#: image formats a plot saves as, by file suffix.
IMAGE_SUFFIXES = (".png", ".svg")


def save_image(plot: pg.PlotWidget, path: str | Path) -> Path:
    """Write ``plot`` as a PNG or an SVG (by the suffix of ``path``), as drawn on screen.

    The SVG is Qt's own vector rendering of the widget (pyqtgraph's SVG exporter fails on the paths
    Qt 6.11 writes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"save the plot as .png or .svg, not {path.suffix or 'no suffix'}")
    if suffix == ".png":
        if not plot.grab().save(str(path), "PNG"):
            raise OSError(f"cannot write {path}")
        return path
    from PySide6.QtSvg import QSvgGenerator

    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(plot.size())
    generator.setViewBox(plot.rect())
    generator.setTitle(plot.plotItem.titleLabel.text or "Graft plot")
    painter = QtGui.QPainter(generator)
    try:
        plot.render(painter)
    finally:
        painter.end()
    return path


def save_csv(rows: list[list], path: str | Path) -> Path:
    """Write ``rows`` (the first one the header) as CSV."""
    path = Path(path)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def series_rows(items: SeriesItems) -> list[list]:
    """The drawn series as CSV rows ``series, x, y``; a step histogram's x is each bin's centre."""
    rows: list[list] = [["series", "x", "y"]]
    for label, item in items.items().items():
        x, y = item.xData, item.yData  # the data, not what a log axis displays
        if x is None or y is None:
            continue
        if len(x) == len(y) + 1:  # step mode: bin edges
            x = (x[:-1] + x[1:]) / 2
        rows += [[label, float(a), float(b)] for a, b in zip(x, y)]
    return rows


def add_save_actions(plot: pg.PlotWidget, rows: Callable[[], list[list]]) -> None:
    """Right-click → Save image as PNG / SVG, Save data as CSV (``rows()`` gives the table)."""
    menu = plot.plotItem.getViewBox().menu
    menu.addSeparator()

    def ask(title: str, pattern: str, save) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(plot, title, "", pattern)
        if path:
            save(path)

    for text, pattern, save in (
        ("Save image as PNG…", "PNG images (*.png)", lambda p: save_image(plot, _with_suffix(p, ".png"))),
        ("Save image as SVG…", "SVG images (*.svg)", lambda p: save_image(plot, _with_suffix(p, ".svg"))),
        ("Save data as CSV…", "CSV files (*.csv)", lambda p: save_csv(rows(), _with_suffix(p, ".csv"))),
    ):
        action = menu.addAction(text)
        action.triggered.connect(lambda *_, t=text, pat=pattern, s=save: ask(t.rstrip("…"), pat, s))


def _with_suffix(path: str, suffix: str) -> Path:
    p = Path(path)
    return p if p.suffix.lower() == suffix else p.with_name(p.name + suffix)
