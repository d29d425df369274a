"""What Graft may read from a source: regular files inside it, never anything it points elsewhere to.

A model folder is data from someone else. A file in it may be a link to a file outside (a
tokenizer linked to ``~/.ssh/id_rsa`` would be copied into an export), or a FIFO, a device or a
socket (opening a FIFO blocks until someone writes to it: Graft would hang). So every file Graft
opens from a source passes :func:`checked_file` first:

* it is a regular file (``os.stat`` + ``S_ISREG``, before any ``open``);
* it lies inside the source folder once every link is resolved, or, for a snapshot of the
  Hugging Face cache (``…/models--owner--name/snapshots/<commit>/``), it is one of that repo's
  own blobs (``../../blobs/<hash>``, the link ``huggingface_hub`` creates) — nothing else.

:func:`read_small` opens with ``O_NONBLOCK`` and checks the descriptor again (a file swapped for
a FIFO between the check and the open cannot block us either). :func:`shown` escapes control
characters so that a hostile name (``"\\x1b[31m"``) never reaches a terminal raw.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from core.errors import SourceError

#: Largest JSON side file (config.json, the index, …) Graft reads into memory.
MAX_JSON_BYTES = 64 << 20

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def shown(text: object) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\u202e``, ``\\n``, …)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def json_type(value: object) -> str:
    """How a message names the JSON type of ``value``: "an object", "a list", "a number", …"""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _repo_blobs(folder: Path) -> Path | None:
    """The ``blobs`` folder of the cache repo when ``folder`` (resolved) is one of its snapshots."""
    snapshots = folder.parent
    repo = snapshots.parent
    if snapshots.name == "snapshots" and repo.name.startswith(("models--", "datasets--", "spaces--")):
        return (repo / "blobs").resolve()
    return None


def checked_file(path: Path, folder: Path | None, what: str = "") -> Path:
    """The resolved target of ``path`` once it is known to be safe to open.

    Args:
        path: a file of the source (usually ``folder / name``).
        folder: the source folder the file must stay inside; None for a file the user named
            directly (a link the user gives is the user's choice, only its kind is checked).
        what: how a message names the file (``"config.json"``, ``"shard 'model-1.safetensors'"``);
            its quoted name if empty.

    Raises:
        SourceError: a broken link, a link leaving the folder (or the cache repo), or not a
            regular file (a FIFO, a device, a socket, a folder).
    """
    label = what or repr(path.name)
    try:
        target = path.resolve(strict=True)
        mode = os.stat(target).st_mode
    except (OSError, RuntimeError) as exc:  # broken link, link loop, permission
        reason = getattr(exc, "strerror", None) or "a link loop"
        raise SourceError(
            f"cannot open {label} ({reason}); it is a broken link or unreadable: replace it with the real file"
        ) from exc
    if folder is not None:
        root = folder.resolve()
        blobs = _repo_blobs(root)
        inside = target.is_relative_to(root)
        if not inside and not (blobs is not None and target.parent == blobs):
            where = "its Hugging Face cache repo" if blobs is not None else "the model folder"
            raise SourceError(
                f"{label} is a link to {str(target)!r}, outside {where}, and Graft reads only files inside "
                "the source: copy the real file into the folder (or open the folder it points into)"
            )
    if not stat.S_ISREG(mode):
        raise SourceError(
            f"{label} is {_kind(mode)}, not a regular file, so Graft will not open it: replace it with the real file"
        )
    return target


def open_regular(path: Path):
    """Open ``path`` for binary reading without ever blocking on a FIFO or device.

    The kind is checked on the open descriptor, so a file swapped between :func:`checked_file`
    and this call is still refused.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SourceError(f"{path.name!r} is {_kind(mode)}, not a regular file; replace it with the real file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small(path: Path, folder: Path | None, what: str = "", limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a small side file of the source, after :func:`checked_file`.

    Raises:
        SourceError: see :func:`checked_file`; larger than ``limit``; unreadable.
    """
    target = checked_file(path, folder, what)
    what = what or repr(path.name)
    try:
        with open_regular(target) as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise SourceError(f"cannot read {what} ({exc.strerror or exc}); check its permissions") from exc
    if len(data) > limit:
        raise SourceError(
            f"{what} is larger than {limit >> 20} MB, far more than such a file holds; replace it with the real one"
        )
    return data


def load_json(path: Path, folder: Path | None, what: str):
    """Parse a JSON side file (any JSON value: the caller checks its shape).

    Raises:
        SourceError: see :func:`read_small`; not UTF-8; not JSON; nested too deeply to parse.
    """
    data = read_small(path, folder, what)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{what} is not UTF-8 text (byte {exc.start}); replace it with the file that came with the weights"
        ) from exc
    except RecursionError as exc:
        raise SourceError(
            f"{what} nests its JSON too deeply to be a real model file; replace it with the file that came with the weights"
        ) from exc
    except ValueError as exc:
        raise SourceError(
            f"{what} is not valid JSON ({shown(exc)}); fix it or replace it with the file that came with the weights"
        ) from exc
