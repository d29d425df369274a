"""The one way the app imports pyqtgraph: PySide6 first, then pyqtgraph configured once.

PyQt5/PyQt6 wheels exist on some machines; pyqtgraph picks the first binding it finds unless
told otherwise, and two Qt bindings in one process crash. So every plot module does
``from app.plots._pg import pg, QtCore, QtGui, QtWidgets``.
"""

from __future__ import annotations

from app.qt import QtCore, QtGui, QtWidgets  # PySide6 first: pyqtgraph takes the binding loaded

# isort: split
import pyqtgraph as pg

# Matrices are (rows, cols) like numpy; without this pyqtgraph draws them transposed.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

__all__ = ["pg", "QtCore", "QtGui", "QtWidgets"]
