"""Before Qt starts: can its xcb platform plugin load? If not, say which system libraries are missing.

Without them Qt prints only "could not load the Qt platform plugin xcb" and aborts. The check
runs ``ldd`` on PySide6's ``libqxcb.so`` (when QT_QPA_PLATFORM is unset or xcb and DISPLAY is
set, on Linux), collects the ``not found`` libraries and maps them to Debian/Ubuntu packages.
It imports no Qt module, so it runs before the QApplication exists.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: shared library → the Debian/Ubuntu package that installs it (what Qt 6's xcb plugin needs)
XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def wants_xcb(env=None, platform: str | None = None) -> bool:
    """Whether Qt will pick its xcb plugin: Linux, DISPLAY set, QT_QPA_PLATFORM unset or xcb."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    return platform.startswith("linux") and bool(env.get("DISPLAY")) and qpa in ("", "xcb")


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so, found without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in (Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so",):
            if candidate.is_file():
                return candidate
    return None


def missing_libraries(plugin: Path | str) -> list[str]:
    """The shared libraries ``ldd`` reports ``not found`` for ``plugin`` (empty without ldd)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd(out)


def parse_ldd(text: str) -> list[str]:
    """The ``name => not found`` libraries of ``ldd`` output, in order, once each."""
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", text, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def xcb_message(missing: list[str]) -> str:
    """What to tell the user when ``missing`` libraries keep the xcb plugin from loading."""
    packages = list(dict.fromkeys(XCB_PACKAGES.get(lib, _guess_package(lib)) for lib in missing))
    return (
        "graft-gui cannot start: Qt's xcb platform plugin needs system libraries that are missing: "
        + ", ".join(missing)
        + ".\nInstall them (Debian/Ubuntu) with:\n  sudo apt install "
        + " ".join(packages)
        + "\n(or run headless with QT_QPA_PLATFORM=offscreen, or under Wayland with QT_QPA_PLATFORM=wayland)"
    )


def _guess_package(lib: str) -> str:
    base = lib.split(".so")[0]
    return base.lower().replace("_", "-")


def xcb_problem(env=None, platform: str | None = None, missing: list[str] | None = None) -> str | None:
    """The message to print before creating the QApplication, or None when Qt can start.

    ``missing`` replaces the ``ldd`` scan (the libraries to treat as missing: tests, or a caller
    that scanned already)."""
    if not wants_xcb(env, platform):
        return None
    if missing is None:
        plugin = xcb_plugin()
        missing = missing_libraries(plugin) if plugin is not None else []
    return xcb_message(missing) if missing else None
