"""Progress callbacks and cancel tokens: how every long operation in core reports and stops, no Qt.

Every long operation in core (download, materialise, whole-model stats, training, export) takes
``progress`` and ``cancel`` keyword arguments. The CLI draws a terminal bar from the progress
calls; the app awaits the operation as a job (:mod:`app.jobs`: a worker thread, or a child
process for tensor work, :mod:`core.process`) and turns the calls into signals. Cancellation is
cooperative: the operation calls ``cancel.check()`` between steps (a child process that does not
stop within its grace period is terminated).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import Cancelled

#: ``progress(fraction, message)``; fraction in [0, 1], or a negative number when unknown.
ProgressFn = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """A thread-safe flag that a job checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


NEVER_CANCELLED = CancelToken()


@dataclass
class Throttle:
    """Forward progress at most ``hz`` times a second (always the first and the last call)."""

    callback: ProgressFn
    hz: float = 20.0
    _last: float = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last >= 1.0 / self.hz:
            self._last = now
            self.callback(fraction, message)
