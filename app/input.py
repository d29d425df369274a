"""Input guards: the mouse wheel scrolls the panel, not the value under the pointer.

A wheel event over a spin box or combo box that does not have the keyboard focus goes to the
scroll area that holds it instead (so the panel scrolls); once the user clicks or tabs into the
editor, the wheel changes its value as usual.
"""

from __future__ import annotations

from app.qt import QtCore, QtWidgets


class WheelGuard(QtCore.QObject):
    """An event filter (install on the application, or on single editors)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() != QtCore.QEvent.Wheel:
            return False
        if not isinstance(obj, QtWidgets.QAbstractSpinBox | QtWidgets.QComboBox) or obj.hasFocus():
            return False
        # Qt does not propagate a re-sent wheel event, so hand it to the scroll area that holds the editor.
        area = obj.parentWidget()
        while area is not None and not isinstance(area, QtWidgets.QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:
            QtCore.QCoreApplication.sendEvent(area.viewport(), event)
        return True
