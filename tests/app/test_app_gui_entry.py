"""``graft-gui`` as a user starts it: the entry point opens the demo, previews and materialises it."""

from __future__ import annotations

import os
import subprocess
import sys

from app.qt import QtGui


def test_self_test_runs_the_whole_entry_point(tmp_path):
    png = tmp_path / "self-test.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GRAFT_SETTINGS_PATH": str(tmp_path / "graft.ini")}
    done = subprocess.run(
        [sys.executable, "-m", "app.gui", "--self-test", str(png)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    image = QtGui.QImage(str(png))
    assert not image.isNull() and image.width() >= 800
    assert (tmp_path / "graft.ini").is_file()  # the window saved its settings on the way out
