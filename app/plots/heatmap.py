"""Matrix heat maps (correlations, QKᵀ maps, layer × metric tables) with a colour bar."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from app.plots._pg import QtCore, QtGui, pg
from app.plots.style import add_save_actions, apply_theme, set_title

DIVERGING = "CET-D1"  # blue–white–red, for signed values such as correlations
SEQUENTIAL = "viridis"  # dark to light, for per-column normalised tables
#: RGBA of a cell without a value (NaN): a mid grey, which neither colour map contains.
NO_VALUE = (128, 128, 128, 255)
MAX_CELL_LABELS = 600  # above this many cells, numbers inside cells become noise


def symmetric_levels(matrix: np.ndarray) -> tuple[float, float]:
    """Levels centred on zero that cover the matrix (at least ±1e-12)."""
    finite = np.abs(matrix[np.isfinite(matrix)])
    top = float(finite.max()) if finite.size else 1.0
    top = max(top, 1e-12)
    return -top, top


def column_ticks(labels: Sequence[str], cell_px: float, metrics: QtGui.QFontMetrics) -> tuple[list, int]:
    """Bottom-axis ticks that never overlap: ``(ticks, lines)``.

    Labels that fit their column go on one line; wider ones alternate between two lines (each may
    then span two columns); wider still, only every k-th label is written (every column is named in
    its cells' tooltips).
    """
    widest = max((metrics.horizontalAdvance(str(t)) for t in labels), default=0) + 8
    if widest <= cell_px:
        return [(i + 0.5, str(t)) for i, t in enumerate(labels)], 1
    step = max(1, math.ceil(widest / (2 * max(cell_px, 1.0))))
    shown = range(0, len(labels), step)
    return [(i + 0.5, ("\n" if k % 2 else "") + str(labels[i])) for k, i in enumerate(shown)], 2


def _ticks(labels: Sequence[str], limit: int = 40) -> list[tuple[float, str]]:
    step = max(1, int(np.ceil(len(labels) / limit)))
    return [(i + 0.5, str(labels[i])) for i in range(0, len(labels), step)]


_LIGHT_TEXT = QtGui.QColor("#ffffff")
_DARK_TEXT = QtGui.QColor("#202020")


class CellText(pg.GraphicsObject):
    """Text centred on heat-map cells, all painted by one item at the screen's font size.

    One ``TextItem`` per cell cost ~0.1 ms each to create, lay out and paint; a 20 × 20 table
    held the GUI thread for tens of milliseconds. This item draws every label in one pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cells: list[tuple[float, float, str, QtGui.QColor]] = []
        self._bounds = QtCore.QRectF()

    def set_cells(self, cells: list[tuple[float, float, str, QtGui.QColor]]) -> None:
        """``(x, y, text, colour)`` per label, ``x, y`` in data coordinates (cell centres)."""
        self.prepareGeometryChange()
        self._cells = cells
        if cells:
            xs, ys = [c[0] for c in cells], [c[1] for c in cells]
            self._bounds = QtCore.QRectF(min(xs) - 0.5, min(ys) - 0.5, max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)
        else:
            self._bounds = QtCore.QRectF()
        self.update()

    def texts(self) -> list[str]:
        return [c[2] for c in self._cells]

    def boundingRect(self) -> QtCore.QRectF:
        return self._bounds

    def paint(self, painter, *args) -> None:
        if not self._cells:
            return
        transform = painter.transform()  # data → device; text is drawn unscaled in device space
        painter.save()
        painter.resetTransform()
        metrics = painter.fontMetrics()
        half_height = metrics.height() / 2
        for x, y, text, colour in self._cells:
            centre = transform.map(QtCore.QPointF(x, y))
            width = metrics.horizontalAdvance(text)
            painter.setPen(colour)
            painter.drawText(QtCore.QPointF(centre.x() - width / 2, centre.y() + half_height - metrics.descent()), text)
        painter.restore()


class HeatmapPlot(pg.PlotWidget):
    """A matrix drawn row-major (row 0 at the top) with a colour bar beside it.

    Signals: cell_clicked(row, column) — the user clicked a cell (left button).
    """

    cell_clicked = QtCore.Signal(int, int)

    def __init__(self, parent=None, *, title: str = "", light: bool | None = None) -> None:
        super().__init__(parent)
        apply_theme(self, light=light)
        self.plotItem.invertY(True)
        self.plotItem.setAspectLocked(False)
        self.image = pg.ImageItem()
        self.plotItem.addItem(self.image)
        # The bar is not linked to the image: the image is coloured here (RGBA), so a missing (NaN)
        # cell can stay empty instead of taking the colour of a real value.
        self.colour_bar = self.plotItem.addColorBar([], colorMap=DIVERGING, values=(-1, 1), width=12, interactive=False)
        self._cell_text = CellText()
        self.plotItem.addItem(self._cell_text)
        self._shown = None  # what show_matrix drew last
        self._table: tuple = (np.zeros((0, 0)), None, None)  # (matrix, row labels, column labels) for CSV
        add_save_actions(self, self.rows)
        self._col_labels: list[str] | None = None
        self._tips: Sequence[Sequence[str]] | None = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.setMinimumSize(160, 120)
        set_title(self.plotItem, title)

    def show_matrix(
        self,
        matrix,
        *,
        levels: tuple[float, float] | None = None,
        colormap: str = DIVERGING,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        cell_text: Sequence[Sequence[str]] | None = None,
        title: str | None = None,
    ) -> None:
        """Draw ``matrix`` (shape (rows, cols)).

        Args:
            matrix: 2-D array; NaN cells (no value) are drawn in :data:`NO_VALUE` grey.
            levels: colour range; symmetric around zero by default.
            colormap: a pyqtgraph colour map name ("CET-D1" diverging by default).
            row_labels, col_labels: tick labels, one per row / column.
            cell_text: optional text per cell, drawn when the matrix is small.
            title: replaces the title when given.
        """
        data = np.asarray(matrix, dtype=float)
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise ValueError(f"a heat map needs a 2-D matrix, got shape {data.shape}")
        levels = levels or symmetric_levels(data)
        key = (
            data.tobytes(),
            data.shape,
            tuple(levels),
            colormap,
            tuple(row_labels or ()),
            tuple(col_labels or ()),
            tuple(map(tuple, cell_text)) if cell_text is not None else None,
            title,
        )
        if key == self._shown:
            return  # the same picture (a source map while only the target changes): no repaint
        self._shown = key
        self._table = (data, row_labels, col_labels)
        cmap = pg.colormap.get(colormap)
        self.colour_bar.setColorMap(cmap)
        self.colour_bar.setLevels(values=levels)
        filled = np.nan_to_num(data, nan=(levels[0] + levels[1]) / 2)  # for the cell text's contrast only
        span = max(levels[1] - levels[0], 1e-12)
        rgba = cmap.map(np.clip((filled - levels[0]) / span, 0, 1).ravel(), mode="byte").reshape(*data.shape, 4)
        rgba[~np.isfinite(data)] = NO_VALUE  # a colour no map uses: a missing cell never reads as a value
        self.image.setImage(rgba, levels=None)
        self.image.setRect(QtCore.QRectF(0, 0, data.shape[1], data.shape[0]))
        left = self.plotItem.getAxis("left")
        left.setTicks([_ticks(row_labels)] if row_labels is not None else None)
        if row_labels is not None:
            # Axis width does not follow custom tick text: size it to the longest label.
            metrics = QtGui.QFontMetrics(left.style.get("tickFont") or QtGui.QFont())
            left.setWidth(max((metrics.horizontalAdvance(str(t)) for t in row_labels), default=0) + 14)
        self._col_labels = list(col_labels) if col_labels is not None else None
        self._set_column_ticks()
        self._set_cell_text(filled, levels, cell_text)
        if title is not None:
            set_title(self.plotItem, title)
        self.plotItem.setRange(xRange=(0, data.shape[1]), yRange=(0, data.shape[0]), padding=0)

    def _set_column_ticks(self) -> None:
        bottom = self.plotItem.getAxis("bottom")
        labels = self._col_labels
        if labels is None:
            bottom.setTicks(None)
            bottom.setHeight(None)
            return
        metrics = QtGui.QFontMetrics(bottom.style.get("tickFont") or QtGui.QFont())
        cell = self.plotItem.getViewBox().width() / max(len(labels), 1)
        ticks, lines = column_ticks(labels, cell, metrics)
        bottom.setTicks([ticks])
        bottom.setHeight(metrics.height() * lines + 14 + (metrics.height() + 4 if bottom.label.isVisible() else 0))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if getattr(self, "_col_labels", None):  # resized during __init__ too, before there are labels
            self._set_column_ticks()  # the columns' width changed: fit the labels again

    def _cell_at(self, scene_pos) -> tuple[int, int] | None:
        """(row, column) of the cell under a scene position, or None outside the matrix."""
        data = self._table[0]
        if not data.size or not self.plotItem.getViewBox().sceneBoundingRect().contains(scene_pos):
            return None
        point = self.plotItem.getViewBox().mapSceneToView(scene_pos)
        row, col = int(math.floor(point.y())), int(math.floor(point.x()))
        return (row, col) if 0 <= row < data.shape[0] and 0 <= col < data.shape[1] else None

    def set_cell_tips(self, tips: Sequence[Sequence[str]] | None) -> None:
        """A tooltip per cell (row-major, like the matrix), shown when the pointer rests on it."""
        self._tips = tips

    def _on_mouse_moved(self, scene_pos) -> None:
        cell = self._cell_at(scene_pos)
        tips = self._tips
        text = tips[cell[0]][cell[1]] if cell is not None and tips else ""
        self.setToolTip(text)

    def _on_mouse_clicked(self, event) -> None:
        cell = self._cell_at(event.scenePos())
        if cell is not None and event.button() == QtCore.Qt.LeftButton:
            self.cell_clicked.emit(*cell)

    @property
    def matrix(self) -> np.ndarray:
        """The values drawn (NaN where a cell has none); empty when nothing is shown."""
        return self._table[0]

    def rows(self) -> list[list]:
        """The matrix shown, as CSV rows: a header of column labels, then each row's label and values."""
        data, row_labels, col_labels = self._table
        cols = list(col_labels) if col_labels is not None else [str(c) for c in range(data.shape[1])]
        names = list(row_labels) if row_labels is not None else [str(r) for r in range(data.shape[0])]
        return [[""] + cols] + [[names[r]] + [float(v) for v in data[r]] for r in range(data.shape[0])]

    def _set_cell_text(self, data, levels, cell_text) -> None:
        if cell_text is None or data.size > MAX_CELL_LABELS:
            self._cell_text.set_cells([])
            return
        cmap = self.colour_bar.colorMap()
        span = max(levels[1] - levels[0], 1e-12)
        cells = []
        for r, row in enumerate(cell_text):
            for c, text in enumerate(row):
                # Dark text on light cells and light text on dark ones, whatever the colour map.
                cell = cmap.map(float(np.clip((data[r, c] - levels[0]) / span, 0, 1)), mode="qcolor")
                cells.append((c + 0.5, r + 0.5, str(text), _LIGHT_TEXT if cell.lightnessF() < 0.55 else _DARK_TEXT))
        self._cell_text.set_cells(cells)

    def clear_data(self) -> None:
        self._shown = None
        self._table = (np.zeros((0, 0)), None, None)
        self._tips = None
        self.image.clear()
        self._set_cell_text(np.zeros((0, 0)), (0, 1), None)
