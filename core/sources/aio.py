"""Many small ``O_DIRECT`` reads in flight from one thread: Linux native AIO through ``syscall``.

A shrink that keeps half of every row reads one run per row: 404,001 runs on the Llama-2-7B shape.
Issued by Python threads, each ``preadv`` wakes a thread and hands the GIL over, and on two cores
that, not the disk, caps the rate (about 30k requests/s at eight threads, less at more; the same
reads from C threads: 42k at eight in flight, 68k at 32). The kernel's AIO interface takes a batch
of requests in one call (``io_submit``) and hands back a batch of completions in another
(``io_getevents``), so one thread keeps :data:`DEPTH` requests in flight with a few calls per
batch, and the request blocks are built by numpy, not per request in Python. It is truly
asynchronous only for ``O_DIRECT`` files, which is the only use here.

There is no libaio binding in the standard library: the four system calls go through libc's
``syscall`` with ctypes (which releases the GIL while they block), on x86-64 and arm64 Linux, the
two ABIs whose numbers are listed below. Anywhere else, or where the kernel refuses a context
(``fs.aio-max-nr`` reached, a sandbox without the calls), :func:`available` is False and callers
read with threads.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
import threading

import numpy as np

#: requests in flight at once: on this machine 404,001 sector reads took 7.7 s at 128 (8.2 s at
#: 256, 9.7 s at 64, 13.1 s at 32) against 6.4 s from 32 C threads; the device queue holds 256.
DEPTH = int(os.environ.get("GRAFT_AIO_DEPTH", 128))

#: (io_setup, io_destroy, io_getevents, io_submit) per machine: the generic table on arm64.
_NUMBERS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2), "arm64": (0, 1, 4, 2)}

#: ``struct iocb`` (linux/aio_abi.h), little-endian: 64 bytes.
IOCB = np.dtype(
    [
        ("data", "<u8"),
        ("key", "<u4"),
        ("rw_flags", "<i4"),
        ("opcode", "<u2"),
        ("reqprio", "<i2"),
        ("fildes", "<u4"),
        ("buf", "<u8"),
        ("nbytes", "<u8"),
        ("offset", "<i8"),
        ("reserved2", "<u8"),
        ("flags", "<u4"),
        ("resfd", "<u4"),
    ]
)
#: ``struct io_event``: 32 bytes.
EVENT = np.dtype([("data", "<u8"), ("obj", "<u8"), ("res", "<i8"), ("res2", "<i8")])
IOCB_CMD_PREAD = 0

_state: dict = {}
#: each thread's context, kept: destroying one waits for an RCU grace period (~30 ms here), more
#: than a whole tensor's reads can take. A forked child makes its own (contexts are per process).
_local = threading.local()


def _libc():
    if "libc" not in _state:
        libc = None
        numbers = _NUMBERS.get(platform.machine())
        if sys.platform.startswith("linux") and numbers is not None and sys.byteorder == "little":
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.syscall.restype = ctypes.c_long
            except (OSError, AttributeError):
                libc = None
        _state["libc"] = (libc, numbers)
    return _state["libc"]


def _call(number: int, *args) -> int:
    libc, _ = _libc()
    result = libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


class _Context:
    """One AIO context of ``depth`` slots; ``close`` waits for (or cancels) what is still in flight,
    so the buffers it reads into may be freed after it."""

    def __init__(self, depth: int) -> None:
        _, (self._setup, self._destroy, self._getevents, self._submit) = _libc()
        handle = ctypes.c_ulong(0)
        _call(self._setup, ctypes.c_long(depth), ctypes.byref(handle))
        self.handle = handle.value
        self.pid = os.getpid()
        self.events = np.zeros(depth, dtype=EVENT)  # completions land here

    def submit(self, pointers: int, count: int) -> int:
        try:
            return _call(self._submit, ctypes.c_ulong(self.handle), ctypes.c_long(count), ctypes.c_void_p(pointers))
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return 0  # the kernel's queue is full for now: reap, then submit again
            raise

    def reap(self, events: np.ndarray, at_least: int) -> int:
        while True:
            try:
                return _call(
                    self._getevents,
                    ctypes.c_ulong(self.handle),
                    ctypes.c_long(at_least),
                    ctypes.c_long(len(events)),
                    ctypes.c_void_p(events.ctypes.data),
                    ctypes.c_void_p(None),
                )
            except InterruptedError:
                continue

    def close(self) -> None:
        if self.handle:
            handle, self.handle = self.handle, 0
            _call(self._destroy, ctypes.c_ulong(handle))

    def __del__(self) -> None:  # a thread's context when the thread ends: the kernel's are few
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown, or already gone
            pass


def available() -> bool:
    """Whether this kernel gives this process an AIO context (checked once), and ``GRAFT_AIO`` is
    not ``0`` (which reads with threads instead)."""
    if os.environ.get("GRAFT_AIO", "1") == "0":
        return False
    if "ok" not in _state:
        ok = _libc()[0] is not None
        if ok:
            ok = _thread_context() is not None  # kept for this thread's reads
        _state["ok"] = ok
    return _state["ok"]


def _thread_context() -> _Context | None:
    """This thread's context, made on first use; None where the kernel gives none now
    (``fs.aio-max-nr`` reached: the caller reads with threads)."""
    context = getattr(_local, "context", None)
    if context is None or context.pid != os.getpid():
        try:
            context = _Context(DEPTH)
        except OSError:
            return None
        _local.context = context
    return context


def _drop_context(context: _Context, in_flight: int) -> None:
    """After a failure: wait for the reads still in flight (or cancel them), then forget the context."""
    _local.context = None
    try:
        while in_flight > 0:
            wait = max(1, min(len(context.events), in_flight))
            in_flight -= context.reap(context.events[:wait], wait)
    except OSError:
        pass
    try:
        context.close()  # waits for anything still in flight
    except OSError:
        pass


def read_many(
    fd: int, buffer: np.ndarray, at: np.ndarray, offsets: np.ndarray, counts: np.ndarray
) -> np.ndarray | None:
    """Read ``counts[i]`` bytes at file offset ``offsets[i]`` of ``fd`` (opened ``O_DIRECT``) into
    ``buffer[at[i]:]``, :data:`DEPTH` at a time, for every i.

    Returns:
        The bytes each read returned (short at the file's end; the caller decides what is short),
        or None (nothing read) where the kernel gives this thread no AIO context.

    Raises:
        OSError: the context cannot be made, or a read fails (``EINVAL``: misaligned for this
            device), with nothing left in flight.
    """
    count = len(offsets)
    results = np.zeros(count, dtype=np.int64)
    if count == 0:
        return results
    context = _thread_context()
    if context is None:
        return None
    blocks = np.zeros(count, dtype=IOCB)
    blocks["data"] = np.arange(count, dtype=np.uint64)
    blocks["opcode"] = IOCB_CMD_PREAD
    blocks["fildes"] = fd
    blocks["buf"] = buffer.ctypes.data + np.asarray(at, dtype=np.uint64)
    blocks["nbytes"] = counts
    blocks["offset"] = offsets
    pointers = blocks.ctypes.data + np.arange(count, dtype=np.uint64) * IOCB.itemsize
    depth = min(DEPTH, count)
    events = context.events
    submitted = done = 0
    try:
        while done < count:
            room = min(depth - (submitted - done), count - submitted)
            if room > 0:
                submitted += context.submit(pointers.ctypes.data + submitted * 8, room)
            if submitted == done:
                raise OSError(errno.EAGAIN, "the kernel took no read and has none in flight")
            got = context.reap(events, 1)
            finished = events[:got]
            results[finished["data"].astype(np.int64)] = finished["res"]
            done += got
    except BaseException:
        _drop_context(context, submitted - done)  # nothing may still write into the buffers
        raise
    failed = np.flatnonzero(results < 0)
    if len(failed):
        code = int(-results[failed[0]])
        raise OSError(code, os.strerror(code))
    return results
