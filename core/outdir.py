"""Where Graft may write: never over a source, only over what Graft wrote, and atomically.

The export (:mod:`core.export`), the pickle conversion (:mod:`core.sources.convert`) and
``graft report`` all go through here, so the CLI and the app refuse the same things.

An output folder:

1. is never the source, never holds any of the source's files, and never lies inside a source
   folder (every path is compared as given and with its links resolved, on both sides);
2. if it exists, is a real folder (not a file, a FIFO or a link);
3. if it is not empty, needs ``force``;
4. is replaced by ``force`` only when it is a Graft folder of its kind (see :class:`Kind`: its
   marker file, and only files Graft writes), unless ``replace_any`` is also given;
5. is never replaced when it is, or holds, the home folder or the working folder.

An output file (the conversion) is never the input (through symbolic or hard links), never a
folder, FIFO or link, and is replaced by ``force`` only when it is a safetensors file Graft wrote
(``graft.version`` in its metadata), unless ``replace_any``.

:class:`AtomicFolder` writes a folder under a temporary sibling name and moves it into place when
complete (mechanics in :mod:`core.atomic`).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core import atomic
from core.errors import ExportError

#: The safetensors metadata key Graft writes into every file it makes.
GRAFT_METADATA_KEY = "graft.version"
_MAX_MARKER = 64 << 20
_MAX_NAME = 255  # bytes in one path component (NAME_MAX) on the file systems we meet


@dataclass(frozen=True)
class Kind:
    """A kind of output folder, and how to recognise one Graft wrote.

    Attributes:
        what: ``"export"`` or ``"report"``, for messages.
        marker: the JSON file Graft writes into every such folder.
        marker_key: a key that file must hold (Graft's format version).
        names: whether a file name is one Graft writes into such a folder.
    """

    what: str
    marker: str
    marker_key: str
    names: Callable[[str], bool]
    #: sub-folders Graft writes into such a folder → whether a file name in it is Graft's.
    folders: dict[str, Callable[[str], bool]] = field(default_factory=dict)


def _export_name(name: str) -> bool:
    from core.sources.base import is_aux_file

    return (
        name in ("config.json", "graft_recipe.json", "README.md")
        or is_aux_file(name)
        or name.endswith((".safetensors", ".safetensors.index.json"))
    )


def _validation_name(name: str) -> bool:
    # what `graft validate EXPORT` leaves in EXPORT/validation (core.training.report, the PNG of the curves)
    return name.startswith("validation") and name.endswith((".json", ".csv", ".png"))


EXPORT = Kind("export", "graft_recipe.json", "graft_recipe", _export_name, {"validation": _validation_name})
REPORT = Kind("report", "report.json", "graft_report", lambda n: n == "report.json" or n.endswith(".png"))


# -- what belongs to the source -------------------------------------------------------------------


def protected_paths(source) -> tuple[Path, ...]:
    """The paths an output must never replace: a source's files, index, config and aux files,
    and its folder when the source is a folder (not a single file).

    Args:
        source: an opened :class:`core.sources.Source` (``root``, ``files``, ``aux_files()``, ``identity``).
    """
    root = Path(source.root)
    paths = [Path(f) for f in source.files] + [Path(f) for f in source.aux_files()]
    paths += [root / n for n in ("config.json", "model.safetensors.index.json") if (root / n).exists()]
    if not os.path.isfile(source.identity.get("path", root)):
        paths.append(root)
    return tuple(dict.fromkeys(paths))


def _forms(path: str | os.PathLike) -> set[str]:
    absolute = os.path.abspath(path)
    return {absolute, os.path.realpath(absolute)}  # realpath never raises on a loop, Path.resolve does


def _within(child: str, parent: str) -> bool:
    return child != parent and os.path.commonpath([child, parent]) == parent


def check_not_source(out: Path, protect: Iterable[Path], what: str) -> None:
    """Refuse an ``out`` that is, holds or lies inside one of the ``protect`` paths.

    Raises:
        ExportError: naming the source path involved.
    """
    outs = _forms(out)
    for path in protect:
        folder = os.path.isdir(path)
        for p in _forms(path):
            for o in outs:
                if o == p:
                    kind = "folder" if folder else f"file {Path(path).name}"
                    raise ExportError(
                        f"cannot write the {what} to {out}: it is the source {kind}; choose a folder outside the source"
                    )
                if _within(p, o):
                    raise ExportError(
                        f"cannot write the {what} to {out}: it holds the source "
                        f"{'folder' if folder else 'file'} {os.path.relpath(p, o)}, which "
                        "would be lost; choose a folder outside the source"
                    )
                if folder and _within(o, p):
                    raise ExportError(
                        f"cannot write the {what} to {out}: it lies inside the source folder "
                        f"{path}; choose a folder outside the source"
                    )


def _check_not_home_or_cwd(out: Path) -> None:
    places = [("your home folder", Path.home())]
    try:
        places.append(("the working folder", Path.cwd()))
    except OSError:  # the working folder was deleted: nothing to protect
        pass
    outs = _forms(out)
    for label, place in places:
        if any(o == p or _within(p, o) for o in outs for p in _forms(place)):
            raise ExportError(f"{out} is or holds {label} ({place}), which Graft never replaces; choose another folder")


# -- what Graft wrote -----------------------------------------------------------------------------


def foreign_reason(folder: Path, kind: Kind) -> str | None:
    """Why ``folder`` is not a Graft folder of ``kind`` (None when it is one, and only that)."""
    marker = folder / kind.marker
    try:
        if not marker.is_file() or marker.is_symlink() or marker.stat().st_size > _MAX_MARKER:
            return f"it has no {kind.marker} written by Graft"
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return f"its {kind.marker} is not one Graft wrote"
    if not isinstance(data, dict) or kind.marker_key not in data:
        return f"its {kind.marker} is not one Graft wrote"
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            inner = kind.folders.get(entry.name)
            if inner is not None and entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as files:
                    stray = next(
                        (f.name for f in files if not (f.is_file(follow_symlinks=False) and inner(f.name))), None
                    )
                if stray is not None:
                    return f"it holds {entry.name}/{stray}, which Graft does not write"
            elif not entry.is_file(follow_symlinks=False) or not kind.names(entry.name):
                return f"it holds {entry.name}, which Graft does not write"
    return None


def is_graft_safetensors(path: Path) -> bool:
    """Whether ``path`` is a safetensors file whose metadata says Graft wrote it."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > _MAX_MARKER:
                return False
            header = json.loads(fh.read(size).decode("utf-8"))
    except (OSError, struct.error, UnicodeDecodeError, ValueError):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and GRAFT_METADATA_KEY in meta


# -- the checks -------------------------------------------------------------------------------------


def check_out_dir(
    out: Path, *, kind: Kind = EXPORT, force: bool = False, replace_any: bool = False, protect: Sequence[Path] = ()
) -> None:
    """Refuse an output folder that the rules above do not allow (see the module docstring).

    Raises:
        ExportError: one sentence naming the folder and what to do.
    """
    _check_name_lengths(out)
    check_not_source(out, protect, kind.what)
    if not os.path.lexists(out):
        return
    if os.path.islink(out) or not os.path.isdir(out):
        raise ExportError(f"{out} exists and is not a folder (or is a link); choose another path")
    try:
        with os.scandir(out) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise ExportError(f"cannot read the folder {out}: {exc.strerror or exc}; choose another folder") from exc
    if empty:
        return
    if not force:
        raise ExportError(f"{out} exists and is not empty; choose another folder or pass --force")
    _check_not_home_or_cwd(out)
    if replace_any:
        return
    reason = foreign_reason(out, kind)
    if reason is not None:
        raise ExportError(
            f"{out} is not a {kind.what} Graft wrote ({reason}), so --force does not replace "
            "it; choose another folder, or pass --force --replace-any to replace it anyway"
        )


def _check_name_lengths(out: Path) -> None:
    # Refused here, in one sentence, rather than by the first stat() of the path (ENAMETOOLONG).
    for part in Path(os.path.abspath(out)).parts:
        if len(os.fsencode(part)) > _MAX_NAME:
            raise ExportError(
                f"the name {part[:40]}… in the output path is longer than the {_MAX_NAME} bytes "
                "a file system allows; choose a shorter one"
            )


def check_out_file(out: Path, *, inputs: Sequence[Path], force: bool = False, replace_any: bool = False) -> None:
    """Refuse an output file that is an input, not a regular file, or not replaceable.

    Raises:
        ExportError: one sentence naming the file and what to do.
    """
    _check_name_lengths(out)
    for path in inputs:
        same = _forms(out) & _forms(path)
        try:
            same = same or os.path.samefile(out, path)  # a hard link is the same file too
        except OSError:
            pass
        if same:
            raise ExportError(
                f"{out} is the input {Path(path).name} (or a link to it) and would overwrite it; choose another --out"
            )
    if not os.path.lexists(out):
        return
    if os.path.islink(out):
        raise ExportError(f"{out} is a symbolic link; give the path of a regular file or a new one")
    if not os.path.isfile(out):
        raise ExportError(f"{out} exists and is not a regular file; choose another --out")
    if not force:
        raise ExportError(f"{out} already exists; remove it, choose another --out or pass --force")
    if not replace_any and not is_graft_safetensors(out):
        raise ExportError(
            f"{out} was not written by Graft, so --force does not replace it; choose another "
            "--out, or pass --force --replace-any to replace it anyway"
        )


# -- writing a folder atomically --------------------------------------------------------------------


class AtomicFolder:
    """An output folder written under a temporary sibling name and moved into place when complete.

    ``open()`` sweeps what dead exports left in the parent folder, checks the rules, creates the
    missing parents and the temporary folder; ``commit()`` fsyncs everything and swaps it into
    place; ``abort()`` removes the temporary folder and the parents ``open()`` created. As a
    context manager it yields the temporary folder and commits on success, aborts on any error
    (an ``OSError`` becomes an :class:`ExportError`).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        kind: Kind = EXPORT,
        force: bool = False,
        replace_any: bool = False,
        protect: Sequence[Path] = (),
    ) -> None:
        self.out_dir = Path(os.path.abspath(out_dir))
        self.kind, self.force, self.replace_any, self.protect = kind, force, replace_any, tuple(protect)
        self.tmp: Path | None = None
        self._tried: list[Path] = []  # temporary names, recorded before each is created
        self._created: list[Path] = []

    def check(self) -> None:
        """Sweep, then check the rules; raises :class:`ExportError` without writing anything."""
        # A dead export's lone "old" folder is restored first, so the rules see what is really there.
        atomic.sweep(self.out_dir.parent)
        self._check()

    def _check(self) -> None:
        check_out_dir(
            self.out_dir, kind=self.kind, force=self.force, replace_any=self.replace_any, protect=self.protect
        )

    def open(self) -> Path:
        """Check, then create the temporary folder (and missing parents); returns it."""
        self.check()
        try:
            atomic.make_parents(self.out_dir.parent, self._created)
            self.tmp = atomic.fresh_dir(self.out_dir, "tmp", into=self._tried)
        except OSError as exc:
            self.abort()
            raise ExportError(f"cannot create a folder next to {self.out_dir}: {exc.strerror or exc}") from exc
        except BaseException:  # SIGTERM or Ctrl-C right now: nothing may stay behind
            self.abort()
            raise
        return self.tmp

    def commit(self) -> None:
        """fsync the new folder, swap it into place, fsync the parent."""
        assert self.tmp is not None, "open() first"
        atomic.fsync_tree(self.tmp)
        atomic.move_folder_into_place(self.tmp, self.out_dir, self._check)
        self.tmp, self._tried, self._created = None, [], []
        atomic.fsync_path(self.out_dir.parent, directory=True)

    def abort(self) -> None:
        """Remove the temporary folder and the parents this export created (if still empty)."""
        for tmp in {*self._tried, *([self.tmp] if self.tmp else [])}:
            shutil.rmtree(tmp, ignore_errors=True)
        self.tmp, self._tried = None, []
        atomic.remove_created(self._created)
        self._created = []

    def __enter__(self) -> Path:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.commit()
            except OSError as error:
                self.abort()
                raise ExportError(
                    f"cannot write the {self.kind.what} to {self.out_dir}: {error.strerror or error}"
                ) from error
            except BaseException:
                self.abort()
                raise
            return False
        self.abort()
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write the {self.kind.what} to {self.out_dir}: {exc.strerror or exc}") from exc
        return False


__all__ = [
    "EXPORT",
    "REPORT",
    "AtomicFolder",
    "Kind",
    "check_not_source",
    "check_out_dir",
    "check_out_file",
    "foreign_reason",
    "is_graft_safetensors",
    "protected_paths",
]
