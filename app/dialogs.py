"""Every message box the app shows goes through here: non-modal, parented, easy to find in tests."""

from __future__ import annotations

import logging

from app.qt import QtCore, QtWidgets

log = logging.getLogger(__name__)

ERROR_OBJECT_NAME = "graft-error-dialog"


def show_error(parent: QtWidgets.QWidget, title: str, error: BaseException | str) -> QtWidgets.QMessageBox:
    """Show ``error`` (its message says what to do) without blocking the event loop.

    The box is window-modal but opened with ``open()``, so jobs keep reporting while it is up;
    tests find it with ``parent.findChildren(QMessageBox, ERROR_OBJECT_NAME)``.
    """
    text = str(error) or type(error).__name__
    if isinstance(error, BaseException) and not _is_expected(error):
        log.error("%s: %s", title, text, exc_info=error)
        text = f"{type(error).__name__}: {text}\n\nThis looks like a bug; the details are in the log."
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, title, text, QtWidgets.QMessageBox.Ok, parent)
    box.setObjectName(ERROR_OBJECT_NAME)
    box.setAttribute(QtCore.Qt.WA_DeleteOnClose, True)
    box.open()
    return box


def _is_expected(error: BaseException) -> bool:
    from core.errors import GraftError

    return isinstance(error, GraftError | OSError)


def open_error_dialogs(parent: QtWidgets.QWidget) -> list[QtWidgets.QMessageBox]:
    """The error boxes currently open on ``parent`` (for tests and for closing them all)."""
    return [b for b in parent.findChildren(QtWidgets.QMessageBox, ERROR_OBJECT_NAME) if b.isVisible()]


HELP_OBJECT_NAME = "graft-help-dialog"


def show_html(parent: QtWidgets.QWidget, title: str, html: str) -> QtWidgets.QDialog:
    """A non-modal help page (Help → Strategies, Keyboard shortcuts) in a scrollable text view."""
    dialog = QtWidgets.QDialog(parent)
    dialog.setObjectName(HELP_OBJECT_NAME)
    dialog.setWindowTitle(title)
    dialog.setAttribute(QtCore.Qt.WA_DeleteOnClose, True)
    layout = QtWidgets.QVBoxLayout(dialog)
    view = QtWidgets.QTextBrowser()
    view.setOpenExternalLinks(True)
    view.setHtml(html)
    layout.addWidget(view)
    buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Close)
    buttons.rejected.connect(dialog.close)
    layout.addWidget(buttons)
    dialog.resize(560, 520)
    dialog.show()
    return dialog
