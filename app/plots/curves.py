"""Training curves: points arrive as often as they like, the plot redraws on a timer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from app.plots._pg import QtCore, pg
from app.plots.style import add_legend, add_save_actions, apply_theme, series_colour, set_title

REDRAW_HZ = 5  # each repaint costs 15–25 ms of GUI thread under load; 5 Hz still reads as live


class CurvesPlot(pg.PlotWidget):
    """Loss-by-step curves, one per series (e.g. "transferred" vs "baseline").

    ``add_point`` only appends to a buffer; a timer pushes buffers to their curves with
    ``setData`` at most ``REDRAW_HZ`` times a second, so a fast stream never floods the GUI.
    """

    def __init__(
        self, parent=None, *, title: str = "", light: bool | None = None, grid: bool = False, y_label: str = "loss"
    ) -> None:
        super().__init__(parent)
        apply_theme(self, light=light)
        if grid:  # off on screen: pyqtgraph's grid lines cost ~15 ms per repaint (measured)
            self.plotItem.showGrid(x=True, y=True, alpha=0.15)
        self.plotItem.setLabel("left", y_label)
        self.plotItem.setLabel("bottom", "step")
        self._legend = add_legend(self.plotItem, light)
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._markers: list[pg.InfiniteLine] = []
        self._dirty: set[str] = set()  # series with points not drawn yet
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(1000 / REDRAW_HZ))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()
        add_save_actions(self, self.rows)
        self.setMinimumSize(160, 120)
        set_title(self.plotItem, title)

    def rows(self) -> list[list]:
        """Every point received, as CSV rows ``series, step, value``."""
        return [["series", "step", "value"]] + [
            [label, x, y] for label, (xs, ys) in self._points.items() for x, y in zip(xs, ys)
        ]

    def add_point(self, series: str, step: float, value: float) -> None:
        """Append one point; drawn at the next timer tick."""
        xs, ys = self._points.setdefault(series, ([], []))
        xs.append(float(step))
        ys.append(float(value))
        self._dirty.add(series)

    def set_curves(self, curves: Mapping[str, Sequence[tuple[float, float]]]) -> None:
        """Replace every series by ``label → [(step, value), ...]`` and draw now."""
        self.clear_data()
        for label, points in curves.items():
            for step, value in points:
                self.add_point(label, step, value)
        self.redraw()

    def mark_step(self, step: float, label: str) -> None:
        """A labelled vertical line, e.g. where the transferred run reached the baseline."""
        line = pg.InfiniteLine(
            pos=step,
            angle=90,
            pen=pg.mkPen("#19a979", width=1.5, style=QtCore.Qt.DashLine),
            label=label,
            labelOpts={"position": 0.9, "color": "#19a979"},
        )
        self.plotItem.addItem(line)
        self._markers.append(line)

    def close(self) -> bool:
        """Stop the redraw timer with the plot (pyqtgraph's close drops ``plotItem``, which a tick would use)."""
        self._timer.stop()
        return super().close()

    def redraw(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for i, (label, (xs, ys)) in enumerate(self._points.items()):
            if label not in dirty:  # an evaluation series changes every few hundred steps: leave it be
                continue
            curve = self._curves.get(label)
            if curve is None:
                colour = series_colour(label, i)
                if label.endswith("(eval)"):  # evaluations: sparse points, dashed and marked
                    curve = self.plotItem.plot(
                        pen=pg.mkPen(colour, width=2, style=QtCore.Qt.DashLine),
                        name=label,
                        symbol="o",
                        symbolSize=6,
                        symbolBrush=colour,
                        symbolPen=None,
                    )
                else:
                    curve = self.plotItem.plot(pen=pg.mkPen(colour, width=2), name=label)
                self._curves[label] = curve
            curve.setData(np.asarray(xs), np.asarray(ys))

    def series(self) -> dict[str, list[tuple[float, float]]]:
        """The points received so far, by series."""
        return {k: list(zip(xs, ys)) for k, (xs, ys) in self._points.items()}

    def clear_data(self) -> None:
        self._points.clear()
        self._curves.clear()
        self._markers.clear()
        self.plotItem.clear()
        self._legend.clear()
        self._dirty.clear()

    def set_title(self, title: str) -> None:
        set_title(self.plotItem, title)
