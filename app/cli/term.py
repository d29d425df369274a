"""Terminal helpers for the CLI: a progress bar that is a core ``ProgressFn`` and tables."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence


class TerminalProgress:
    """A one-line progress bar on stderr, usable as ``progress(fraction, message)``."""

    def __init__(self, label: str = "", stream=None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()
        self._done = False

    def __call__(self, fraction: float, message: str) -> None:
        if self._done:
            return
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.1:
            return
        self._last = now
        self._done = fraction >= 1.0
        if not self._tty:
            if fraction >= 1.0:
                self.stream.write(f"{self.label} done in {now - self.start:.1f}s\n")
            return
        if fraction < 0:
            bar = "?" * self.width
            eta = ""
        else:
            filled = int(self.width * min(fraction, 1.0))
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = now - self.start
            eta = f" eta {elapsed * (1 - fraction) / fraction:.0f}s" if 0 < fraction < 1 else ""
        self.stream.write(f"\r{self.label} [{bar}] {max(fraction, 0) * 100:5.1f}%{eta} {message[:40]:<40}")
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def ctrl_c_cancels(cancel) -> Iterator[None]:
    """Ctrl-C once cancels ``cancel`` (the job stops after its current step); twice quits at once."""

    def on_interrupt(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        print("\ngraft: stopping after this step (Ctrl-C again to quit now)", file=sys.stderr)
        cancel.cancel()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
