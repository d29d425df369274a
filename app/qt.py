"""The one way the app imports Qt: PySide6, with a guard against a refcount bug in 6.12.0.

PySide6-Essentials 6.12.0 on Python < 3.12 gives back ``None``, ``True`` and ``False`` without
taking a reference (every void method call, every ``Signal.emit()``), as if they were immortal —
which they are only from Python 3.12 on. Each call lowers the count by one, and after a few
hundred calls the interpreter aborts ("Fatal Python error: none_dealloc" / "bool_dealloc").
6.11.3 is fine. When a probe of a few calls shows the leak, we do what Python 3.12 does: give
those singletons (and the other objects 3.12 makes immortal) a reference count no run can
exhaust. Depending on ``PySide6-Essentials!=6.12.0`` is the proper fix; this keeps an existing
environment working.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # pyqtgraph: never PyQt5/6, which exist here too
os.environ.setdefault("QT_API", "pyside6")  # qasync reads this

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

log = logging.getLogger(__name__)

_HEADROOM = 1 << 40


def _leaks_singletons() -> bool:
    class _Probe(QtCore.QObject):
        ping = QtCore.Signal()

    probe = _Probe()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
        probe.setObjectName("probe")
    after = sys.getrefcount(None), sys.getrefcount(True)
    probe.deleteLater()
    return after[0] < before[0] or after[1] < before[1]


def _immortalise(value: object) -> None:
    refcount = ctypes.c_ssize_t.from_address(id(value))
    if refcount.value < _HEADROOM:
        refcount.value += _HEADROOM


def _guard_singletons() -> bool:
    """Make Python 3.12's immortal objects effectively immortal when PySide6 leaks them."""
    if sys.version_info >= (3, 12) or not _leaks_singletons():
        return False
    for value in (None, True, False, Ellipsis, NotImplemented, (), "", b"", *range(-5, 257)):
        _immortalise(value)
    log.debug("PySide6 %s leaks references to None/True/False; guarded", QtCore.__version__)
    return True


SINGLETON_GUARD_APPLIED = _guard_singletons()

__all__ = ["QtCore", "QtGui", "QtWidgets", "SINGLETON_GUARD_APPLIED"]
