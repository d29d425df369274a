"""Read exactly the bytes a transfer needs from a safetensors file: ``pread`` of coalesced ranges.

A shrink keeps some rows and, within each row, some columns of a source matrix. Reading through a
memory map pulls in whole pages plus the kernel's read-ahead (a 16.8 MB row slice read 67 MB), and
reading whole rows reads the dropped columns too. Here the kept columns of each row are turned into
byte ranges, and ranges closer than :data:`GAP_BYTES` are merged into one read: on the disks
measured (see ``benchmarks/bench_7b.py``) a request costs about as much as reading 20–40 KB more,
so skipping a 4 KB gap costs more time than it saves. Reads are ``pread``\\ s into the final
tensor's memory with ``POSIX_FADV_RANDOM`` (no read-ahead beyond what is asked), many small ones
in parallel (the disk's queue, not one request at a time), in file order.

The page cache still reads whole 4 KB pages, and a tensor's data rarely starts on a page: a shrink
that keeps the first half of each 8 KB row then reads two pages per 4 KB run, 2× the bytes it needs
(1.89× on the Llama-2-7B shape, the merged ranges 2.0×). So where the buffered plan would read over
:data:`DIRECT_RATIO` × the 512-byte sectors of the runs, and they are not in the page cache, the
runs are read unmerged with ``O_DIRECT`` instead (:func:`_gather_direct`): 1.12× the needed bytes
on that shape. That is one request per run (404,001 there), too many for Python threads to issue
quickly on two cores, so they go through the kernel's AIO interface, many in flight from one
thread (:mod:`core.sources.aio`; threads where it is missing). On this project's 2-core machine
the 7B shrink then reads 2.1–2.2 GB instead of 3.8 (1.14× the needed bytes) and takes 0.37–0.39×
the one-``pread``-per-run floor (``benchmarks/bench_7b.py``); written to /dev/shm in the same
minutes it took 12.1–12.7 s direct against 15.8–15.9 s buffered. ``GRAFT_READ_DIRECT=never`` reads everything through the page cache
(for storage where a request costs far more than its bytes: a network disk with an IOPS quota);
``always`` forces ``O_DIRECT``; a file system without it reads buffered.

Whole tensors (:func:`read_range`) go through the page cache, except in a pass that reads every
tensor of a model once (the statistics table, :func:`one_pass`): there a tensor not in the page
cache is read with ``O_DIRECT`` in 8 MB requests in flight together, straight into the tensor's
memory. On a 2-core Zen 5 VM a cold pass over the 13.5 GB Llama-2-7B shape a tensor at a time took
9–11 s with 9.6–13.2 s of system time through the page cache (its copies and pages), 4.1–4.5 s with
0.8–1.0 s direct, and the table's workers got those cores back. Large read buffers come from
numpy (:func:`empty_buffer`), which asks for transparent huge pages: 80 k page faults instead of
3.3 M for the same pass.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.errors import SourceError

#: ranges closer than this many bytes are read as one (a request costs about this much transfer).
GAP_BYTES = int(os.environ.get("GRAFT_READ_GAP", 32 << 10))
#: a merged read is split into pieces of at most this size (bounded buffers, parallel requests).
PIECE_BYTES = 8 << 20
#: requests in flight at once (the disk's queue; threads release the GIL in ``pread``).
QUEUE_DEPTH = 8
#: ``auto`` (default): with ``O_DIRECT`` where the page cache would read over :data:`DIRECT_RATIO`
#: × the sectors asked for and they are not cached; ``never``: through the page cache; ``always``.
#: Fewer bytes, many more requests: see the module docstring for when that pays.
DIRECT = os.environ.get("GRAFT_READ_DIRECT", "auto")
#: the buffered plan's pages over the direct plan's sectors above which a read goes direct.
DIRECT_RATIO = 1.2
#: reads smaller than this in all stay buffered (a few requests: nothing to save).
DIRECT_MIN_BYTES = 1 << 20
#: an ``O_DIRECT`` read is aligned to this many bytes (512-byte sectors; 4096 where the device
#: refuses 512: retried once per file).
SECTOR = 512


def _open(path: Path, sequential: bool) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}; check that the file exists") from exc
    if hasattr(os, "posix_fadvise"):
        advice = os.POSIX_FADV_SEQUENTIAL if sequential else os.POSIX_FADV_RANDOM
        try:
            os.posix_fadvise(fd, 0, 0, advice)
        except OSError:
            pass
    return fd


def _pread_into(fd: int, view: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise SourceError(f"{path.name} ended before byte {offset + done:,}; the file is truncated: re-download it")
        done += n


def read_ranges(path: Path, ranges: list[tuple[int, memoryview]], *, sequential: bool = False) -> None:
    """Fill each ``(file offset, buffer)`` of ``ranges`` from ``path`` (several requests in flight).

    Raises:
        SourceError: the file cannot be opened or ends early.
    """
    if not ranges:
        return
    fd = _open(Path(path), sequential)
    try:
        pieces = []
        for offset, view in ranges:
            for start in range(0, len(view), PIECE_BYTES):
                pieces.append((offset + start, view[start : start + PIECE_BYTES]))
        if len(pieces) == 1:
            _pread_into(fd, pieces[0][1], pieces[0][0], Path(path))
            return
        with ThreadPoolExecutor(min(QUEUE_DEPTH, len(pieces))) as pool:
            for future in [pool.submit(_pread_into, fd, view, offset, Path(path)) for offset, view in pieces]:
                future.result()
    finally:
        os.close(fd)


def _is_cached(path: Path, offsets: list[int]) -> bool:
    """Whether most of the bytes at ``offsets`` are in the page cache already (``RWF_NOWAIT`` reads
    of one byte each: they fail rather than wait for the disk). Unknown (no ``RWF_NOWAIT``): False.

    A missed probe still starts the kernel's readahead from its offset onwards (a few pages here;
    more elsewhere), so the probes go from the last offset back to the first: none can be primed
    by an earlier one."""
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None or not offsets:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    hits, probe = 0, bytearray(1)
    try:
        for offset in sorted(offsets, reverse=True):
            try:
                hits += os.preadv(fd, [probe], offset, nowait) == 1
            except OSError:  # EAGAIN: on disk only
                pass
    finally:
        os.close(fd)
    return hits * 2 > len(offsets)


def _runs(sorted_unique: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` runs of consecutive values."""
    if len(sorted_unique) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_unique) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(sorted_unique)]))
    return [(int(sorted_unique[s]), int(sorted_unique[e - 1]) + 1) for s, e in zip(starts, ends)]


def _windows(cols: np.ndarray, itemsize: int, gap: int) -> list[tuple[int, int]]:
    """Column windows ``[a, b)``: runs of kept columns merged across gaps under ``gap`` bytes."""
    out: list[list[int]] = []
    for a, b in _runs(cols):
        if out and (a - out[-1][1]) * itemsize < gap:
            out[-1][1] = b
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _row_groups(rows: np.ndarray, n_cols: int, width: int, itemsize: int, gap: int, cap: int) -> list[tuple[int, int]]:
    """Row groups ``[first, last]`` (inclusive source rows) read as one range each.

    Consecutive kept rows join a group when the bytes between their windows (the rest of the row,
    plus any dropped rows) are under ``gap``, and while the group stays under ``cap`` bytes.
    """
    groups: list[list[int]] = []
    row_bytes = n_cols * itemsize
    for r in rows.tolist():
        if groups:
            first, last = groups[-1]
            between = (r - last) * row_bytes - width * itemsize
            if between < gap and (r - first) * row_bytes + width * itemsize <= cap:
                groups[-1][1] = r
                continue
        groups.append([r, r])
    return [(a, b) for a, b in groups]


def gather_2d(
    path: Path,
    base: int,
    shape: tuple[int, int],
    dtype,
    rows: np.ndarray | None,
    cols: np.ndarray | None,
    *,
    gap: int | None = None,
    cap: int = 64 << 20,
    direct: bool | None = None,
):
    """``tensor[rows][:, cols]`` of the ``rows × cols`` matrix stored at byte ``base`` of ``path``.

    Args:
        shape: the stored matrix (rows, columns); a higher-rank tensor is seen with its trailing
            axes flattened.
        dtype: its torch dtype.
        rows, cols: source positions in target order (repeats allowed), or None for all.
        gap: merge ranges closer than this (default :data:`GAP_BYTES`).
        cap: the largest single read.
        direct: True reads the exact runs with ``O_DIRECT`` (:func:`_gather_direct`); None decides
            (:data:`DIRECT`, :func:`_direct_pays`); False never.

    Returns:
        ``(tensor, bytes read)``: a CPU tensor of shape ``(len(rows), len(cols))`` in ``dtype``,
        and how many bytes the reads covered (for the benchmark's accounting).
    """
    import torch

    gap = GAP_BYTES if gap is None else gap
    n_rows, n_cols = shape
    item = dtype.itemsize
    rows_t = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    cols_t = np.arange(n_cols) if cols is None else np.asarray(cols, dtype=np.int64)
    urows = np.unique(rows_t)
    ucols = np.unique(cols_t)
    if len(urows) == 0 or len(ucols) == 0:
        return torch.empty((len(rows_t), len(cols_t)), dtype=dtype), 0
    windows = _windows(ucols, item, gap)
    row_bytes = n_cols * item
    if direct is None:
        direct = {"always": True, "never": False}.get(DIRECT)  # None: decide (``auto``)
    if direct is not False:
        exact = _windows(ucols, item, SECTOR)  # merged only within a sector
        direct = direct or _direct_pays(path, base, urows, n_cols, item, (windows, gap), exact)
        if direct:
            windows, gap = exact, SECTOR
    blocks, bytes_read = [], 0
    for lo, hi in _row_blocks(urows, row_bytes, cap):  # memory stays bounded
        got = _gather_direct(Path(path), base, n_cols, dtype, urows[lo:hi], ucols, windows) if direct else None
        if got is None:  # buffered (or O_DIRECT refused: the same exact runs through the page cache)
            got = _gather_block(path, base, n_cols, dtype, urows[lo:hi], ucols, windows, gap, cap)
        block, n = got
        blocks.append(block)
        bytes_read += n
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, 0)
    # Back to the target order (repeats, permutations), when it is not the sorted unique one.
    if len(rows_t) != len(urows) or not np.array_equal(rows_t, urows):
        out = out.index_select(0, torch.from_numpy(np.searchsorted(urows, rows_t)))
    if len(cols_t) != len(ucols) or not np.array_equal(cols_t, ucols):
        out = out.index_select(1, torch.from_numpy(np.searchsorted(ucols, cols_t)))
    return out.contiguous(), bytes_read


def _row_blocks(urows: np.ndarray, row_bytes: int, cap: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` slices of the sorted unique rows, each spanning at most ``cap`` bytes of the file."""
    out, lo = [], 0
    while lo < len(urows):
        hi = lo + 1
        while hi < len(urows) and (urows[hi] - urows[lo] + 1) * row_bytes <= cap:
            hi += 1
        out.append((lo, hi))
        lo = hi
    return out


def _block_reads(urows, n_cols: int, windows, item: int, gap: int, cap: int):
    """One row block's reads: ``(window index, first row, last row, elements)`` per (window, row group),
    the elements running from (first, window start) to (last, window end)."""
    for w, (a, b) in enumerate(windows):
        for first, last in _row_groups(urows, n_cols, b - a, item, gap, cap):
            yield w, first, last, (last - first) * n_cols + (b - a)


def _direct_spans(base: int, rows: np.ndarray, n_cols: int, item: int, a: int, b: int, align: int):
    """Each row's direct read of columns ``[a, b)``: ``(file offsets, pads, spans)``, the offsets
    and spans ``align``-aligned and ``pad`` the bytes before the run within its span."""
    starts = base + (rows.astype(np.int64) * n_cols + a) * item
    lows = starts - starts % align
    pads = starts - lows
    return lows, pads, -(-(pads + (b - a) * item) // align) * align


def _buffered_pages(base: int, urows: np.ndarray, n_cols: int, item: int, windows, gap: int) -> int:
    """Bytes of the 4 KB pages the buffered plan's reads touch (each window's rows grouped where
    the bytes between them are under ``gap``, as :func:`_row_groups` does without its size cap)."""
    rows = urows.astype(np.int64)
    total = 0
    for a, b in windows:
        between = np.diff(rows) * n_cols * item - (b - a) * item
        breaks = np.flatnonzero(between >= gap)
        firsts = rows[np.concatenate(([0], breaks + 1))]
        lasts = rows[np.concatenate((breaks, [len(rows) - 1]))]
        starts = base + (firsts * n_cols + a) * item
        ends = base + (lasts * n_cols + b) * item
        total += int((-(-ends // 4096) - starts // 4096).sum()) * 4096
    return total


def _direct_pays(path, base, urows, n_cols, item, buffered, exact) -> bool:
    """Whether to read with ``O_DIRECT``: it saves bytes (:func:`_direct_saves`) and those bytes
    are not cached already (a cached read is a copy from memory; a direct one would go to the
    disk). ``buffered`` is the buffered plan's ``(windows, gap)``, ``exact`` the direct plan's windows."""
    offsets = _direct_saves(base, urows, n_cols, item, buffered, exact)
    if not len(offsets):
        return False
    step = max(1, len(offsets) // 16)
    return not _is_cached(Path(path), offsets[::step].tolist())


def _direct_saves(base, urows, n_cols, item, buffered, exact) -> np.ndarray:
    """The direct reads' file offsets when the page cache would read over :data:`DIRECT_RATIO` ×
    the sectors they span and those are at least :data:`DIRECT_MIN_BYTES`; else none (no
    ``O_DIRECT`` here: none)."""
    none = np.zeros(0, dtype=np.int64)
    if not getattr(os, "O_DIRECT", 0):
        return none
    spans = [_direct_spans(base, urows, n_cols, item, a, b, SECTOR) for a, b in exact]
    sectors = sum(int(s.sum()) for _, _, s in spans)
    if sectors < DIRECT_MIN_BYTES:
        return none
    if _buffered_pages(base, urows, n_cols, item, *buffered) <= DIRECT_RATIO * sectors:
        return none
    return np.sort(np.concatenate([lows for lows, _, _ in spans]))


def _gather_block(path, base, n_cols, dtype, urows, ucols, windows, gap, cap):
    """The kept columns of the sorted unique rows ``urows``: ``(tensor, bytes read)``."""
    import torch

    item = dtype.itemsize
    # Every (window, row group) is one read into its own buffer; reads go out in file order.
    plans = [  # (window index, first row, last row, buffer)
        (w, first, last, empty_buffer(count, dtype))
        for w, first, last, count in _block_reads(urows, n_cols, windows, item, gap, cap)
    ]
    ranges = [
        (base + (first * n_cols + windows[w][0]) * item, memoryview(buf.view(torch.uint8).numpy()).cast("B"))
        for w, first, last, buf in plans
    ]
    read_ranges(Path(path), sorted(ranges, key=lambda r: r[0]))
    parts = []
    for w, (a, b) in enumerate(windows):
        in_window = ucols[(ucols >= a) & (ucols < b)] - a
        pieces = []
        for pw, first, last, buf in plans:
            if pw != w:
                continue
            span = last - first + 1
            view = torch.as_strided(buf, (span, b - a), (n_cols, 1))
            keep = urows[(urows >= first) & (urows <= last)] - first
            if len(keep) != span:
                view = view.index_select(0, torch.from_numpy(keep))
            pieces.append(view)
        piece = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 0)
        if len(in_window) != b - a:
            piece = piece.index_select(1, torch.from_numpy(in_window))
        parts.append(piece)
    out = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return out.contiguous(), sum(len(view) for _, view in ranges)


def _open_direct(path: Path) -> int | None:
    """``path`` opened read-only with ``O_DIRECT``, or None where there is none (tmpfs, some
    network file systems, a platform without the flag)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_RDONLY | flag | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _gather_direct(path: Path, base: int, n_cols: int, dtype, urows: np.ndarray, ucols: np.ndarray, windows):
    """The kept columns of the sorted unique rows ``urows`` read with ``O_DIRECT``, one request per
    row and column window: ``(tensor, bytes read)``, or None where the file system refuses
    ``O_DIRECT`` (nothing read).

    Every row's sector-aligned span lands in its own slot of one aligned buffer (slots as wide as
    the widest span), so the requests need no per-row Python objects, and the kept bytes come out
    of the buffer with one strided copy per distinct offset into a sector (one when the rows are
    whole sectors long, as a bf16 row of 4096 or 11008 values is).
    """
    fd = _open_direct(path)
    if fd is None:
        return None
    try:
        return _at_sector_size(
            path, lambda align: _gather_direct_aligned(fd, path, base, n_cols, dtype, urows, ucols, windows, align)
        )
    finally:
        os.close(fd)


def _at_sector_size(path: Path, attempt):
    """``attempt(align)`` with 512-byte alignment, again with 4096 where the device refuses that
    (``EINVAL``); any other ``OSError`` is the file's, said in one sentence."""
    try:
        try:
            return attempt(SECTOR)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            return attempt(4096)
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}") from exc


def _gather_direct_aligned(fd, path, base, n_cols, dtype, urows, ucols, windows, align: int):
    import torch

    item = dtype.itemsize
    rows = urows.astype(np.int64)
    parts, total = [], 0
    for a, b in windows:
        length = (b - a) * item
        lows, pads, spans = _direct_spans(base, rows, n_cols, item, a, b, align)  # ascending
        slot = int(spans.max())
        buffer = _aligned(len(rows) * slot)
        _direct_reads(fd, path, buffer, lows, spans, pads + length, slot)
        total += len(rows) * length  # the runs asked for (as the buffered plan counts its ranges)
        slots = buffer.reshape(len(rows), slot)
        kept = np.empty((len(rows), length), dtype=np.uint8)
        distinct = np.unique(pads).tolist()
        if len(distinct) == 1:  # rows whole sectors long: one strided copy
            kept[:] = slots[:, distinct[0] : distinct[0] + length]
        else:
            for pad in distinct:
                pick = np.flatnonzero(pads == pad)
                kept[pick] = slots[pick, pad : pad + length]
        piece = torch.from_numpy(kept).view(dtype)
        in_window = ucols[(ucols >= a) & (ucols < b)] - a
        if len(in_window) != b - a:
            piece = piece.index_select(1, torch.from_numpy(in_window))
        parts.append(piece)
    out = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return out.contiguous(), total


def _aligned(nbytes: int) -> np.ndarray:
    """``nbytes`` of uint8 starting on a 4 KB boundary (what ``O_DIRECT`` needs of a buffer)."""
    raw = np.empty(nbytes + 4096, dtype=np.uint8)
    skip = -raw.ctypes.data % 4096
    return raw[skip : skip + nbytes]


def _direct_reads(fd: int, path: Path, buffer: np.ndarray, lows, spans, needed, slot: int) -> None:
    """Read ``spans[i]`` bytes at file offset ``lows[i]`` into ``buffer[i * slot:]`` for every i:
    through Linux AIO where there is a context (:mod:`core.sources.aio`), else (and for any read
    that came back short) :data:`QUEUE_DEPTH` requests in flight from threads (``preadv``
    releases the GIL), each taking every n-th request so they go out in file order. A read that
    ends before ``needed[i]`` bytes (the file's end) is a truncated file."""
    from core.sources import aio

    view = memoryview(buffer)
    count = len(lows)
    got = None
    if aio.available():  # one thread, many requests in flight (see core.sources.aio)
        got = aio.read_many(fd, buffer, np.arange(count, dtype=np.int64) * slot, lows, spans)
    if got is not None:
        short = np.flatnonzero(got < needed)  # the file's end, or a partial read: finished below
        lows, spans, needed = lows[short].tolist(), spans[short].tolist(), needed[short].tolist()
        slots = (short * slot).tolist()
    else:
        lows, spans, needed = lows.tolist(), spans.tolist(), needed.tolist()
        slots = [i * slot for i in range(count)]
    count = len(lows)
    workers = max(1, min(QUEUE_DEPTH, count))

    def part(first: int) -> None:
        for i in range(first, count, workers):
            at, span, got = slots[i], spans[i], 0
            while got < span:
                n = os.preadv(fd, [view[at + got : at + span]], lows[i] + got)
                if n == 0:
                    break  # the file's end, inside the last sector
                got += n
            if got < needed[i]:
                end = lows[i] + needed[i]
                raise SourceError(f"{path.name} ended before byte {end:,}; the file is truncated: re-download it")

    if workers == 1:
        if count:
            part(0)
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(part, w) for w in range(workers)]:
            future.result()


#: buffers from this size up are allocated by numpy (see :func:`empty_buffer`).
LARGE_BUFFER_BYTES = 4 << 20


def empty_buffer(count: int, dtype):
    """An uninitialised 1-D tensor of ``count`` elements to read into.

    From :data:`LARGE_BUFFER_BYTES` up it is numpy's memory (viewed by torch, no copy): numpy asks
    the kernel for transparent huge pages on large arrays (``madvise``), so the first write into it
    faults once per 2 MB instead of once per 4 KB page. Reading a 13.5 GB checkpoint into fresh
    ``torch.empty`` buffers cost 3.3 M page faults and 11.9 s of system time on 2 cores, into numpy
    buffers 80 k and 3.2–4.9 s (a cold ``pread`` of every shard, 90 MB per read).
    """
    import numpy as np
    import torch

    nbytes = count * dtype.itemsize
    if nbytes < LARGE_BUFFER_BYTES:
        return torch.empty(count, dtype=dtype)
    return torch.from_numpy(np.empty(nbytes, dtype=np.uint8)).view(dtype)


_pass = threading.local()


@contextlib.contextmanager
def one_pass():
    """Whole-tensor reads in this thread, until the block ends, are part of one pass over a model
    (the statistics table): each tensor is read once, so where it is not in the page cache it is
    read with ``O_DIRECT`` (:func:`_read_range_direct`). Elsewhere whole tensors go through the
    page cache, where a second read of the same tensor (a preview redrawn) finds them."""
    before = getattr(_pass, "on", False)
    _pass.on = True
    try:
        yield
    finally:
        _pass.on = before


def read_range(path: Path, offset: int, count: int, dtype):
    """``count`` elements of ``dtype`` at byte ``offset`` of ``path``, read in one sequential pass:
    inside :func:`one_pass`, with ``O_DIRECT`` when it is at least :data:`DIRECT_MIN_BYTES` and not
    in the page cache (:func:`_read_range_direct`); else through the page cache."""
    import torch

    direct = DIRECT == "always" or (DIRECT == "auto" and getattr(_pass, "on", False))
    if direct and count * dtype.itemsize >= DIRECT_MIN_BYTES:
        out = _read_range_direct(Path(path), offset, count, dtype, probe=DIRECT == "auto")
        if out is not None:
            return out
    out = empty_buffer(count, dtype)
    if count:
        read_ranges(Path(path), [(offset, memoryview(out.view(torch.uint8).numpy()).cast("B"))], sequential=True)
    return out


def _read_range_direct(path: Path, offset: int, count: int, dtype, *, probe: bool):
    """:func:`read_range` with ``O_DIRECT``: the sector-aligned span around the bytes, in
    :data:`PIECE_BYTES` requests in flight at once (:func:`_direct_reads`: Linux AIO), into one
    aligned buffer the tensor is a view of. None (nothing read) where the bytes are mostly in the
    page cache already (``probe``), the file system has no ``O_DIRECT``, or the tensor's bytes are
    not aligned to its element size in the file.

    A whole-tensor read through the page cache costs the kernel a copy and a page-cache page per
    4 KB: reading a 13.5 GB checkpoint a tensor at a time took 9.6–13.2 s of system time (2 cores,
    Zen 5, cold), 9–11 s in all; with ``O_DIRECT`` 0.8–0.9 s of system time, 4.1 s in all — the
    statistics table reads every byte of a model, and its workers need those cores.
    """
    import torch

    nbytes = count * dtype.itemsize
    if offset % dtype.itemsize:
        return None
    if probe and _is_cached(path, np.linspace(offset, offset + nbytes - 1, 16).astype(np.int64).tolist()):
        return None
    fd = _open_direct(path)
    if fd is None:
        return None

    def attempt(align: int):
        low = offset // align * align
        span = -(-(offset + nbytes) // align) * align - low
        buffer = _aligned(span)
        starts = np.arange(0, span, PIECE_BYTES, dtype=np.int64)
        spans = np.minimum(PIECE_BYTES, span - starts)
        needed = np.minimum(spans, offset + nbytes - low - starts)  # the last sector may pass the file's end
        _direct_reads(fd, path, buffer, low + starts, spans, needed, PIECE_BYTES)
        return torch.from_numpy(buffer[offset - low : offset - low + nbytes]).view(dtype)

    try:
        return _at_sector_size(path, attempt)
    finally:
        os.close(fd)
