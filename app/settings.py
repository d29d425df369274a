"""Every persistent setting, declared once: key, type, default and help (Picard's ``options.py``).

Stored with QSettings in an INI file at ``GRAFT_SETTINGS_PATH`` when set (tests point it at a
temporary folder), otherwise in the platform's config folder. Values are stored as JSON text so
types survive INI round-trips. ``VERSION`` and ``UPGRADES`` migrate older files on load.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.qt import QtCore

log = logging.getLogger(__name__)

VERSION = 1
RECENT_LIMIT = 10


@dataclass(frozen=True)
class Option:
    """One setting: its key in the file, its type (from the default) and what it means."""

    key: str
    default: Any
    help: str


OPTIONS: dict[str, Option] = {
    o.key: o
    for o in (
        Option("sources/recent", [], "recently opened sources (paths, repo ids or 'demo'), newest first"),
        Option("sources/offline", False, "never contact the Hub: use the local cache only"),
        Option(
            "sources/endpoint",
            "",
            "Hub URL to download from (empty: HF_ENDPOINT or huggingface.co): a mirror or a private hub",
        ),
        Option("sources/cache_dir", "", "Hugging Face cache folder (empty: HF_HUB_CACHE or the default)"),
        Option("sources/last_folder", "", "folder the open dialogs start in"),
        Option("recipe/last_folder", "", "folder the recipe dialogs start in"),
        Option("export/last_folder", "", "parent folder of the last export"),
        Option("export/max_shard_size", "5GB", "largest safetensors shard (decimal units, as on the Hub)"),
        Option("export/dtype", "", "dtype of exported floats (empty: keep the source's)"),
        Option("target/device", "cpu", "device used to materialise and preview (cpu, cuda, mps)"),
        Option("window/geometry", "", "main window geometry (base64)"),
        Option("window/state", "", "main window dock and splitter state (base64)"),
    )
}

# version → function upgrading a file from that version to the next.
UPGRADES: dict[int, Callable[[QtCore.QSettings], None]] = {}


def settings_path() -> Path:
    """Where settings live: ``GRAFT_SETTINGS_PATH`` or the platform's config folder."""
    override = os.environ.get("GRAFT_SETTINGS_PATH")
    if override:
        return Path(override)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.GenericConfigLocation)
    return Path(base or Path.home() / ".config") / "graft" / "graft.ini"


class Settings:
    """Typed access to :data:`OPTIONS`; unknown keys are a programming error."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = QtCore.QSettings(str(self.path), QtCore.QSettings.IniFormat)
        self._upgrade()

    def _upgrade(self) -> None:
        version = int(self._store.value("meta/version", VERSION if not self._store.allKeys() else 0))
        while version < VERSION:
            if version in UPGRADES:
                UPGRADES[version](self._store)
            version += 1
        self._store.setValue("meta/version", VERSION)

    def get(self, key: str) -> Any:
        option = OPTIONS[key]
        raw = self._store.value(key)
        if raw is None:
            return _copy(option.default)
        try:
            value = json.loads(str(raw))
        except ValueError:
            log.warning("setting %s holds unreadable %r; using the default", key, raw)
            return _copy(option.default)
        if not isinstance(value, type(option.default)) or (isinstance(value, bool) != isinstance(option.default, bool)):
            return _copy(option.default)
        return value

    def set(self, key: str, value: Any) -> None:
        option = OPTIONS[key]
        if not isinstance(value, type(option.default)):
            raise TypeError(f"setting {key} takes {type(option.default).__name__}, not {type(value).__name__}")
        self._store.setValue(key, json.dumps(value))

    def sync(self) -> None:
        self._store.sync()

    # -- helpers -----------------------------------------------------------------------------
    def recent_sources(self) -> list[str]:
        return [str(s) for s in self.get("sources/recent")]

    def add_recent_source(self, location: str) -> list[str]:
        """Put ``location`` first in the recent list (no duplicates, at most ``RECENT_LIMIT``)."""
        recent = [location] + [s for s in self.recent_sources() if s != location]
        self.set("sources/recent", recent[:RECENT_LIMIT])
        return recent[:RECENT_LIMIT]

    def save_bytes(self, key: str, data: QtCore.QByteArray) -> None:
        self.set(key, bytes(data.toBase64()).decode("ascii"))

    def load_bytes(self, key: str) -> QtCore.QByteArray | None:
        text = self.get(key)
        return QtCore.QByteArray.fromBase64(text.encode("ascii")) if text else None


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
