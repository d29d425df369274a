"""Runs kept across launches, one JSON file per run, grouped by the question they answer.

A leaderboard on the same source, revision, target sizes, seed and validation options asks the
same question as an earlier one, whatever candidates it ranks: :func:`recipe_key` hashes exactly
those parts, so the app can list "earlier answers to this question" (a quick run next to the full
one, last week's run next to today's). A single validation's key is the whole recipe minus its
provenance (the recorded hashes and fitted values say where the bytes came from, not what was
asked) and the Graft version.

Layout: ``<root>/<key>/<UTC time>-<kind>-<8 random hex>.json``, each file written to a temporary
sibling and renamed into place, so a crash never leaves half a file under a real name. ``root`` is
``$GRAFT_HISTORY_DIR``, else ``$XDG_DATA_HOME/graft/history``, else
``~/.local/share/graft/history``. A file that cannot be read (truncated, edited by hand, another
format) is skipped with a warning: one bad file never hides the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

from core.errors import GraftError
from core.recipe import Recipe

log = logging.getLogger(__name__)

HISTORY_FORMAT = 1
KEY_LENGTH = 16  # hex digits of the SHA-256: 64 bits, plenty for one user's questions
KINDS = ("leaderboard", "validation", "materialised")


def history_root() -> Path:
    """Where history lives (``GRAFT_HISTORY_DIR`` overrides; tests set it)."""
    base = os.environ.get("GRAFT_HISTORY_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "graft", "history"
    )
    return Path(base)


def _config_dict(config) -> dict:
    """Every validation option, defaults filled in, so an omitted default equals an explicit one."""
    from core.training.config import ValidationConfig

    if config is None:
        config = {}
    if isinstance(config, ValidationConfig):
        return asdict(config)
    known = {f.name for f in fields(ValidationConfig)}
    return asdict(ValidationConfig(**{k: v for k, v in dict(config).items() if k in known}))


def recipe_key(recipe: Recipe | dict, *, what: str = "leaderboard", config=None) -> str:
    """A short SHA-256 (16 hex digits) of the canonical JSON of what defines the question.

    Args:
        recipe: the base recipe (or its dict).
        what: ``"leaderboard"``: source, revision, target sizes and seed — the question "which start
            is best here", so runs with other training options (steps, quick) are listed together
            and each entry shows its own; ``"validation"``: the whole recipe minus provenance and
            the Graft version, with the validation options; ``"materialised"``: the whole recipe
            minus provenance, the Graft version and the validation options (they do not change the
            weights), for a materialised target's per-tensor summaries.
        config: the validation options actually used (a ``ValidationConfig`` or dict; validation
            keys only); default the recipe's ``validation`` block.
    """
    data = recipe.to_dict() if isinstance(recipe, Recipe) else dict(recipe)
    options = _config_dict(config if config is not None else data.get("validation"))
    if what == "leaderboard":
        from core.plan import TargetSizes

        question = {
            "source": data.get("source"),
            "revision": data.get("revision"),
            "target": TargetSizes.from_dict(data.get("target") or {}).to_dict(),
            "seed": data.get("seed", 0),
        }
    elif what == "validation":
        question = {k: v for k, v in data.items() if k not in ("provenance", "graft_version")}
        question["validation"] = options
    elif what == "materialised":
        question = {k: v for k, v in data.items() if k not in ("provenance", "graft_version", "validation")}
    else:
        raise GraftError(f"history key kind {what!r} is unknown; use leaderboard, validation or materialised")
    text = json.dumps({"what": what, **question}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


class History:
    """The runs on disk: :meth:`add` one, list them with :meth:`entries`, :meth:`remove` one.

    Args:
        root: the history folder (default :func:`history_root`).
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else history_root()

    def add(self, kind: str, key: str, payload: dict) -> Path:
        """Write one run (atomically) and return its file.

        Args:
            kind: one of :data:`KINDS`.
            key: :func:`recipe_key` of the run's recipe.
            payload: the run as plain JSON data (e.g. ``Leaderboard.to_dict()``).
        """
        if kind not in KINDS:
            raise GraftError(f"history kind {kind!r} is unknown; use {' or '.join(KINDS)}")
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise GraftError(f"history key {key!r} is not a recipe_key (hex digits)")
        now = datetime.now(timezone.utc)
        record = {
            "graft_history": HISTORY_FORMAT,
            "kind": kind,
            "key": key,
            "created": now.isoformat(timespec="microseconds"),
            "payload": payload,
        }
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{secrets.token_hex(4)}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=1, allow_nan=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def entries(self, key: str | None = None, kind: str | None = None) -> list[dict]:
        """Runs, newest first: each ``{"kind", "key", "created", "payload", "path"}``.

        Unreadable files are skipped with a warning.
        """
        folders = (
            [self.root / key]
            if key
            else (sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else [])
        )
        out = []
        for folder in folders:
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                record = _read(path)
                if record is None or (kind is not None and record["kind"] != kind):
                    continue
                record["path"] = str(path)
                out.append(record)
        out.sort(key=lambda r: (r["created"], r["path"]), reverse=True)
        return out

    def remove(self, path: str | os.PathLike) -> None:
        """Delete one run's file (only a file inside this history)."""
        path = Path(path)
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.dirname(os.path.dirname(real)) != root or path.suffix != ".json":
            raise GraftError(f"{path} is not a run of the history in {self.root}; give a path from entries()")
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("history: skipping %s, which cannot be read (%s)", path, exc)
        return None
    ok = (
        isinstance(record, dict)
        and record.get("graft_history") == HISTORY_FORMAT
        and isinstance(record.get("kind"), str)
        and isinstance(record.get("created"), str)
        and isinstance(record.get("payload"), dict)
    )
    if not ok:
        log.warning("history: skipping %s, which is not a Graft history file of format %d", path, HISTORY_FORMAT)
        return None
    record.setdefault("key", path.parent.name)
    return record
