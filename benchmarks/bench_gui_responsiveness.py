"""GUI responsiveness while a transfer and a validation run are in progress (target: < 50 ms).

A QTimer on the GUI thread ticks every 5 ms and records the gap between ticks; the longest gap
beyond the interval is the longest the GUI was unable to process events (a stall). The window
opens the demo model, shrinks it, materialises it (the transfer) and then runs a validation
(transferred vs baseline), while a second timer keeps changing the target form so previews
and plans are recomputed — the interactive load a user would add. Offscreen; no display needed.
The baseline, measured first in the same run, is the same window idle for a few seconds; the
result gives the busy phases' stalls as a ratio of the idle ones.

Usage:
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_responsiveness.py [--steps 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GRAFT_SETTINGS_PATH", str(Path(tempfile.mkdtemp()) / "graft.ini"))

from app.qt import QtCore  # noqa: E402

TICK_MS = 5
IDLE_S = 3.0  # the baseline: the window with nothing running


class StallMeter(QtCore.QObject):
    """Records the gaps between ticks of a fast GUI-thread timer."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps: list[float] = []
        self.phase = "idle"
        self.by_phase: dict[str, list[float]] = {}
        self._last = time.perf_counter()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        stall = max(0.0, (now - self._last) * 1000 - TICK_MS)
        self._last = now
        self.gaps.append(stall)
        self.by_phase.setdefault(self.phase, []).append(stall)


def run(steps: int, nudge: bool = True) -> dict:
    from app.gui import create_app
    from app.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.resize(1440, 900)
    window.show()
    meter = StallMeter()
    begun = time.perf_counter()

    def wait(condition, timeout=600.0) -> None:
        deadline = time.monotonic() + timeout
        loop = QtCore.QEventLoop()
        poll = QtCore.QTimer()
        poll.timeout.connect(lambda: loop.quit() if condition() or time.monotonic() > deadline else None)
        poll.start(20)
        loop.exec()
        poll.stop()
        if not condition():
            raise TimeoutError("the benchmark timed out")

    ws = window.workspace
    # The window imports torch and transformers in the background right after it appears (a
    # GIL-heavy second or two); a user reads the window meanwhile. Measure after that.
    wait(lambda: window.warm_up.running is False and time.perf_counter() - begun > 1.0)
    window.open_source("demo")
    wait(lambda: ws.plan is not None and window.preview.data is not None)
    for key, value in {"layers": 4, "hidden": 256, "heads": 8, "ffn": 1024}.items():
        window.target.size_spins[key].setValue(value)
    wait(lambda: ws.plan is not None and ws.plan.plan.target_sizes["hidden"] == 256)

    # Interactive load: the user keeps nudging the seed, so plans and previews keep coming.
    nudger = QtCore.QTimer()
    nudger.timeout.connect(lambda: window.target.seed_spin.setValue(window.target.seed_spin.value() + 1))
    # Baseline in the same run: the same window, idle (no job, no edits) for a few seconds.
    meter.phase = "idle"
    meter.start()
    idle_until = time.perf_counter() + IDLE_S
    wait(lambda: time.perf_counter() > idle_until)
    if nudge:
        nudger.start(700)
    meter.phase = "transfer"
    started = time.perf_counter()
    window.materialise()
    wait(lambda: ws.materialised is not None and not ws.queue.busy)
    transfer_s = time.perf_counter() - started
    meter.phase = "validation"
    window.validate(steps)
    started = time.perf_counter()
    wait(lambda: not ws.queue.busy)
    validation_s = time.perf_counter() - started
    nudger.stop()
    meter.timer.stop()
    window.close()
    app.processEvents()

    def summary(values: list[float]) -> dict:
        ordered = sorted(values)
        return {
            "ticks": len(values),
            "max_stall_ms": round(ordered[-1], 1),
            "p99_stall_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "median_stall_ms": round(statistics.median(ordered), 2),
        }

    jobs = [(e.job.name, e.state, str(e.error) if e.error else "") for e in ws.queue.entries]
    busy = [g for phase, gaps in meter.by_phase.items() if phase != "idle" for g in gaps]
    result = {
        "jobs": jobs,
        "busy": summary(busy),
        **{k: summary(v) for k, v in meter.by_phase.items()},
        "transfer_s": round(transfer_s, 1),
        "validation_s": round(validation_s, 1),
        "validation_steps": steps,
        "cpus": os.cpu_count(),
        "target_max_stall_ms": 50,
    }
    idle = result["idle"]
    result["ratio_max_busy_vs_idle"] = round(result["busy"]["max_stall_ms"] / max(idle["max_stall_ms"], 0.1), 1)
    result["ratio_p99_busy_vs_idle"] = round(result["busy"]["p99_stall_ms"] / max(idle["p99_stall_ms"], 0.1), 1)
    result["pass"] = result["busy"]["max_stall_ms"] < 50
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="validation steps")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--no-nudge", action="store_true", help="no interactive load (no seed changes, so no previews)")
    args = parser.parse_args()
    result = run(args.steps, nudge=not args.no_nudge)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
