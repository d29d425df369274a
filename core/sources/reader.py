"""Read exactly the bytes a transfer needs from a safetensors file: ``pread`` of coalesced ranges.

A shrink keeps some rows and, within each row, some columns of a source matrix. Reading through a
memory map pulls in whole pages plus the kernel's read-ahead (a 16.8 MB row slice read 67 MB), and
reading whole rows reads the dropped columns too. Here the kept columns of each row are turned into
byte ranges, and ranges closer than :data:`GAP_BYTES` are merged into one read: on the disks
measured (see ``benchmarks/bench_7b.py``) a request costs about as much as reading 20–40 KB more,
so skipping a 4 KB gap costs more time than it saves. Reads are ``pread``\\ s into the final
tensor's memory with ``POSIX_FADV_RANDOM`` (no read-ahead beyond what is asked), many small ones
in parallel (the disk's queue, not one request at a time), in file order.

:func:`gather_2d` is the whole job for one tensor seen as ``rows × columns`` (the columns are the
flattened trailing axes): which rows, which columns, in which order — the result equals
``tensor[rows][:, cols]`` bit for bit.
"""

from __future__ import annotations

import os
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
):
    """``tensor[rows][:, cols]`` of the ``rows × cols`` matrix stored at byte ``base`` of ``path``.

    Args:
        shape: the stored matrix (rows, columns); a higher-rank tensor is seen with its trailing
            axes flattened.
        dtype: its torch dtype.
        rows, cols: source positions in target order (repeats allowed), or None for all.
        gap: merge ranges closer than this (default :data:`GAP_BYTES`).
        cap: the largest single read.

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
    blocks, bytes_read, lo = [], 0, 0
    while lo < len(urows):  # blocks of rows spanning at most ``cap`` bytes: memory stays bounded
        hi = lo + 1
        while hi < len(urows) and (urows[hi] - urows[lo] + 1) * row_bytes <= cap:
            hi += 1
        block, n = _gather_block(path, base, n_cols, dtype, urows[lo:hi], ucols, windows, gap, cap)
        blocks.append(block)
        bytes_read += n
        lo = hi
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, 0)
    # Back to the target order (repeats, permutations), when it is not the sorted unique one.
    if len(rows_t) != len(urows) or not np.array_equal(rows_t, urows):
        out = out.index_select(0, torch.from_numpy(np.searchsorted(urows, rows_t)))
    if len(cols_t) != len(ucols) or not np.array_equal(cols_t, ucols):
        out = out.index_select(1, torch.from_numpy(np.searchsorted(ucols, cols_t)))
    return out.contiguous(), bytes_read


def _gather_block(path, base, n_cols, dtype, urows, ucols, windows, gap, cap):
    """The kept columns of the sorted unique rows ``urows``: ``(tensor, bytes read)``."""
    import torch

    item = dtype.itemsize
    # Every (window, row group) is one read into its own buffer; reads go out in file order.
    plans = []  # (window index, first row, last row, buffer)
    for w, (a, b) in enumerate(windows):
        for first, last in _row_groups(urows, n_cols, b - a, item, gap, cap):
            count = (last - first) * n_cols + (b - a)  # elements from (first, a) to (last, b)
            plans.append((w, first, last, torch.empty(count, dtype=dtype)))
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


def read_range(path: Path, offset: int, count: int, dtype):
    """``count`` elements of ``dtype`` at byte ``offset`` of ``path``, read in one sequential pass."""
    import torch

    out = torch.empty(count, dtype=dtype)
    if count:
        read_ranges(Path(path), [(offset, memoryview(out.view(torch.uint8).numpy()).cast("B"))], sequential=True)
    return out
