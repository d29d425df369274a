"""Atomic output on disk: temporary siblings owned by a process, swapped into place, swept when dead.

A folder or file being written lives next to its final path under a hidden name::

    .<name>.graft-<tag>-<host>.<boot>.<pid>.<start>-<random>

``tag`` is ``tmp`` (being written; or, after a swap, the replaced folder waiting to be deleted)
or ``old`` (the replaced folder moved aside by the portable two-rename fallback). The owner part
names the process: a hash of the host name and pid namespace, the kernel's boot id, the pid and
the process start time in clock ticks since boot (Linux ``/proc``). A pid alone is reused; pid +
start time + boot is not. :func:`sweep` removes (or, for a lone ``old`` folder, restores) only
entries that match this pattern exactly, are real files or folders of this user, and whose owner
is provably dead: same host and pid namespace, and another boot, no such process, a zombie, or a
process that started at another time. Anything else — a live export, another machine's or
container's on a shared disk, a link — is left alone.

On Linux, :func:`move_folder_into_place` swaps the finished folder with the old one in one
``renameat2(RENAME_EXCHANGE)``, so a kill at any instant leaves either the old or the new folder
at the final path, never neither.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_UNKNOWN_BOOT = "0" * 8
_NAME = re.compile(
    r"^\.(?P<name>.+)\.graft-(?P<tag>tmp|old)-"
    r"(?P<host>[0-9a-f]{8})\.(?P<boot>[0-9a-f]{8})\.(?P<pid>\d+)\.(?P<start>\d+)-[0-9a-f]{8}$"
)
_MAX_NAME = 255  # bytes in one path component on every file system we meet


# -- owners ---------------------------------------------------------------------------------------


@functools.cache
def _host() -> str:
    """Host name and pid namespace: only a process in our own pid space can be judged by its pid
    (two containers on one kernel share the boot id, not their pids)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


@functools.cache
def _boot() -> str:
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text()
    except OSError:
        return _UNKNOWN_BOOT
    return text.strip().replace("-", "")[:8] or _UNKNOWN_BOOT


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from ``/proc``; None if absent."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])  # fields 3 (state) and 22 (starttime)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def owner_of(pid: int | None = None) -> str | None:
    """The owner token of a running process (default: this one), or None if it is not running."""
    pid = os.getpid() if pid is None else pid
    found = _proc_stat(pid)
    if found is not None:
        start = found[1]
    elif _boot() == _UNKNOWN_BOOT and os.name == "posix" and _alive(pid):
        start = 0  # no /proc (macOS): the pid alone, so a reused pid only ever looks alive
    else:
        return None
    return f"{_host()}.{_boot()}.{pid}.{start}"


def _is_dead(host: str, boot: str, pid: int, start: int) -> bool:
    """True only when the owner is provably gone; every doubt answers False (keep the entry)."""
    if os.name != "posix" or host != _host():
        return False  # another machine on a shared disk: its processes are not ours to judge
    if boot != _boot():
        return _UNKNOWN_BOOT not in (boot, _boot())  # an earlier boot of this machine
    found = _proc_stat(pid)
    if found is not None:
        state, ticks = found
        return state == "Z" or (start != 0 and ticks != start)  # a zombie, or the pid was reused
    if _boot() != _UNKNOWN_BOOT:
        return not _alive(pid)  # /proc knows no such pid; ask the kernel once more
    return False


def sibling(path: Path, tag: str, owner: str | None = None) -> Path:
    """The hidden name next to ``path`` for an entry of ``tag`` owned by ``owner`` (default: us)."""
    owner = owner or owner_of()
    if owner is None:  # pragma: no cover - this process is running by definition
        raise RuntimeError("cannot tell this process's owner token")
    name = path.name
    suffix = f".graft-{tag}-{owner}-{secrets.token_hex(4)}"
    room = _MAX_NAME - len(suffix.encode()) - 1
    if tag == "tmp" and len(name.encode()) > room:
        name = name.encode()[:room].decode(errors="ignore")  # never restored, so the name may be cut
    return path.parent / f".{name}{suffix}"


def fresh_dir(path: Path, tag: str = "tmp", *, into: list[Path] | None = None) -> Path:
    """Create an empty folder named by :func:`sibling` (honours the umask, unlike mkdtemp).

    Args:
        into: a list the name is appended to *before* the folder is made, so a clean-up that
            runs after an interrupt (SIGTERM, Ctrl-C) at any instant knows what to remove.
    """
    while True:
        candidate = sibling(path, tag)
        if into is not None:
            into.append(candidate)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            if into is not None:
                into.remove(candidate)  # someone else's (same owner: another thread): not ours
            continue
        except BaseException:
            if into is not None and not os.path.lexists(candidate):
                into.remove(candidate)
            raise


def sweep(parent: Path) -> list[Path]:
    """Remove the dead-owned temporaries in ``parent``; restore a lone ``old`` folder.

    Returns:
        The entries removed or restored. Failures are logged, never raised: a sweep must not
        stop the export that runs it.
    """
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    done = []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            continue
        if not _is_dead(match["host"], match["boot"], int(match["pid"]), int(match["start"])):
            continue
        path, final = Path(entry.path), Path(parent) / match["name"]
        try:
            if match["tag"] == "old" and stat.S_ISDIR(info.st_mode) and not os.path.lexists(final):
                rename_noreplace(path, final)  # killed between the fallback's two renames
                log.warning("restored %s from %s, left by an export that was killed", final, path.name)
            elif stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
                log.info("removed %s, left by an export that was killed", path)
            elif stat.S_ISREG(info.st_mode):
                path.unlink()
                log.info("removed %s, left by a conversion that was killed", path)
            else:
                continue
        except OSError as exc:
            log.warning("cannot clean up %s: %s", path, exc)
            continue
        done.append(path)
    return done


# -- renames ----------------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Callable | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _try_renameat2(src: Path, dst: Path, flags: int) -> bool:
    """True when done; False when this kernel or file system lacks the flag; raises otherwise."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, raising FileExistsError rather than replacing anything there."""
    if _try_renameat2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.isfile(src) and not os.path.islink(src):
        try:
            os.link(src, dst)  # fails with EEXIST: no window in which dst could be clobbered
        except FileExistsError:
            raise
        except OSError:
            pass  # no hard links on this file system: fall through
        else:
            os.unlink(src)
            return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``RENAME_EXCHANGE``); False where unsupported."""
    return _try_renameat2(a, b, _RENAME_EXCHANGE)


def move_folder_into_place(tmp: Path, out: Path, recheck: Callable[[], None]) -> None:
    """Make the finished folder ``tmp`` appear at ``out``; whatever was there goes afterwards.

    Args:
        tmp: the complete new folder (a sibling of ``out``).
        out: the final path; absent, an empty folder or a folder to replace.
        recheck: raises if ``out``, as it is now, may not be replaced (it may have changed
            while the new folder was written).
    """
    if not os.path.lexists(out):
        try:
            rename_noreplace(tmp, out)
            return
        except FileExistsError:
            pass  # created meanwhile: treat it like any existing folder
    recheck()
    if exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # it holds the replaced folder now
        return
    with os.scandir(out) as entries:
        empty = next(entries, None) is None
    if empty:
        os.rmdir(out)
        os.rename(tmp, out)
        return
    # Portable fallback: two renames. A kill between them leaves the old folder under an "old"
    # name with our owner token, and the next sweep renames it back.
    old = sibling(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- durability and parents -------------------------------------------------------------------------


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush one file's data (or a folder's entries) to the disk."""
    if directory and os.name != "posix":
        return  # folders cannot be opened for fsync on Windows
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise  # some file systems cannot fsync a folder; a file must always work
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file directly in ``folder``, then ``folder`` itself."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            fsync_path(Path(entry.path))
    fsync_path(folder, directory=True)


def make_parents(folder: Path, created: list[Path]) -> None:
    """``mkdir -p folder``, appending each folder this call creates to ``created`` (outermost
    first) as soon as it exists, so an interrupted caller still knows what to remove."""
    missing = []
    path = Path(folder)
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue  # made concurrently by someone else: not ours to remove
        created.append(path)


def remove_created(created: list[Path]) -> None:
    """Remove the folders :func:`make_parents` created, innermost first, while they are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            return  # something else lives there now


__all__ = [
    "exchange",
    "fresh_dir",
    "fsync_path",
    "fsync_tree",
    "make_parents",
    "move_folder_into_place",
    "owner_of",
    "remove_created",
    "rename_noreplace",
    "sibling",
    "sweep",
]
