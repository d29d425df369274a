"""Reading a transfer's next tensor while the current one is computed.

A transfer makes its tensors one at a time, in file order: read the kept bytes, compute, write
(the write overlaps the next tensor: :class:`core.export.writer._Ahead`). A strategy that
computes much per byte read (a covariance draw: about 2·samples multiply-adds per output value)
left the disk idle while it computed, and the CPU idle while it read. :class:`Prefetcher` reads
the requests a strategy declares for the next tensor (:meth:`core.strategies.base.ValueStrategy.reads`)
in one background thread, so the disk works while the CPU computes.

Only the timing changes: a declared request is read with the same ``read_gather`` call, and its
result is handed to the strategy when it asks for exactly that request (the read ledger, which
wraps this source, sees the same reads in the same order); a request the strategy makes that was
not declared is read there and then; one declared and never asked for is dropped. At most the
next tensor's requests are held (one tensor's kept bytes), so peak memory still follows the
largest tensor.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor


def _key(name: str, rows, cols) -> tuple:
    return (name, None if rows is None else rows.tobytes(), None if cols is None else cols.tobytes())


class Prefetcher:
    """``source`` with ``read_gather`` requests read ahead (everything else is the source's).

    The transfer's producer thread uses it: :meth:`schedule` the next tensor's requests, fill the
    current one (its ``read_gather`` calls take what was read ahead), :meth:`retire` it. Another
    thread may :meth:`close` it at any time (a cancelled or failed export).
    """

    def __init__(self, source) -> None:
        self._source = source
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="graft-prefetch")
        self._pending: dict[tuple, tuple[object, Future]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def schedule(self, tag, requests) -> None:
        """Start reading ``requests`` (``(name, rows, cols)`` each), in order, after those already scheduled."""
        with self._lock:
            for name, rows, cols in requests:
                key = _key(name, rows, cols)
                if not self._closed and key not in self._pending:
                    self._pending[key] = (tag, self._pool.submit(self._source.read_gather, name, rows, cols))

    def read_gather(self, name: str, rows, cols):
        with self._lock:
            entry = self._pending.pop(_key(name, rows, cols), None)
        if entry is None:
            return self._source.read_gather(name, rows, cols)
        return entry[1].result()  # a failed read raises here, where the strategy asked for it

    def retire(self, tag) -> None:
        """Drop what was read ahead for ``tag`` and never asked for."""
        with self._lock:
            for key in [key for key, (owner, _) in self._pending.items() if owner == tag]:
                self._pending.pop(key)[1].cancel()

    @property
    def pending(self) -> int:
        """How many requests are read ahead and not yet taken."""
        return len(self._pending)

    def close(self) -> None:
        """Drop every pending read and stop the thread; a read under way finishes in the background."""
        with self._lock:
            self._closed = True
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
