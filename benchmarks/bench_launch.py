"""Launch phases of the app: from starting Python to the first drawn preview of the demo model.

Each run starts a fresh interpreter that opens the main window the way ``graft-gui --demo`` does and
stamps the wall clock at every phase: modules imported, QApplication created, window painted (its
first frame: the background warm-up starts then, so torch must not be imported yet), window shown,
demo opened, plan ready, first preview drawn, background warm-up (torch) done. The baseline, run
interleaved in the same script, is a bare PySide6 ``QMainWindow`` shown by a fresh interpreter: the floor any Qt app pays. Offscreen; the
median of ``--runs`` runs is printed, with each phase as a ratio to the baseline.

Usage:
    python benchmarks/bench_launch.py [--runs 3] [--json out.json] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """
import json, sys, time
from PySide6 import QtWidgets
app = QtWidgets.QApplication(sys.argv[:1])
w = QtWidgets.QMainWindow(); w.resize(1440, 900); w.show(); app.processEvents()
print(json.dumps({"window shown": time.time()}))
"""

GRAFT = """
import json, sys, time
stamps = {}
from app.gui import create_app
stamps["app modules imported"] = time.time()
app = create_app()
stamps["QApplication"] = time.time()
from app.jobs import event_loop
from app.main_window import MainWindow
event_loop()
window = MainWindow(); window.resize(1440, 900)

def painted():
    stamps["window painted"] = time.time()
    stamps["torch imported before the first frame"] = "torch" in sys.modules

window.first_painted.connect(painted)
window.show(); app.processEvents()
stamps["window shown"] = time.time()
ws = window.workspace
ws.source_opened.connect(lambda _: stamps.setdefault("demo opened", time.time()))
ws.plan_changed.connect(lambda _: stamps.setdefault("plan ready", time.time()))
window.warm_up.finished.connect(lambda: stamps.setdefault("warm-up (torch) done", time.time()))
window.open_source("demo")
from app.qt import QtCore

def check():
    if window.preview.data is not None and window.preview.settled and "first preview drawn" not in stamps:
        stamps["first preview drawn"] = time.time()
    if "first preview drawn" in stamps and "warm-up (torch) done" in stamps:
        print(json.dumps(stamps)); app.quit()

timer = QtCore.QTimer(); timer.timeout.connect(check); timer.start(10)
QtCore.QTimer.singleShot(120_000, app.quit)
app.exec()
"""


def run(code: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    env["GRAFT_SETTINGS_PATH"] = str(Path(tempfile.mkdtemp()) / "graft.ini")
    start = time.time()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise SystemExit(f"the launch did not finish:\n{done.stderr[-2000:]}")
    return {k: (v - start if isinstance(v, float) else v) for k, v in json.loads(line).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="write the medians here")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="byte-compile app/ and core/ first, as pip does for an installed package (`make run` does "
        "it too); without it a checkout under PYTHONDONTWRITEBYTECODE compiles every module at each launch",
    )
    args = parser.parse_args()
    if args.compile:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "app"), str(ROOT / "core")], check=True)
    cached = any((ROOT / "app" / "__pycache__").glob("main_window.*.pyc"))
    print(f"bytecode of app/ and core/: {'cached' if cached else 'compiled at each launch'}")
    bare, graft = [], []
    for _ in range(args.runs):  # interleaved, so a busy moment hits both
        bare.append(run(BARE)["window shown"])
        graft.append(run(GRAFT))
    floor = statistics.median(bare)
    print(f"bare PySide6 window shown: {floor:.2f} s (median of {args.runs}; the baseline)")
    out = {"bare window shown": floor}
    for phase in graft[0]:
        values = [g[phase] for g in graft]
        if isinstance(values[0], bool):
            print(f"  {phase}: {values}")
            out[phase] = values
            continue
        median = statistics.median(values)
        out[phase] = median
        print(f"  {phase:<28} {median:6.2f} s  ({median / floor:5.1f}× the bare window)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
