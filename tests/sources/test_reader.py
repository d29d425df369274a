"""The exact-bytes reader: gathers equal plain indexing bit for bit, and read no more than asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.sources import open_source
from core.sources.reader import gather_2d


@pytest.fixture
def stored(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a": torch.randn(300, 257, generator=g).to(torch.bfloat16),
        "b": torch.randn(64, 8, 33, generator=g),
        "c": torch.randn(1000, generator=g).to(torch.float16),
    }
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    return open_source(tmp_path / "model.safetensors"), tensors


def _case(rng, n, kind):
    if kind == "all":
        return None
    if kind == "first":
        return np.arange(n // 2)
    if kind == "spread":
        return np.sort(rng.choice(n, size=n // 3, replace=False))
    if kind == "perm":
        return rng.permutation(n)[: n // 2]
    return rng.integers(0, n, size=n + 5)  # repeats, any order (growth)


KINDS = ["all", "first", "spread", "perm", "repeat"]


@pytest.mark.parametrize("rows_kind", KINDS)
@pytest.mark.parametrize("cols_kind", KINDS)
@pytest.mark.parametrize("gap", [0, 64, 1 << 20, "direct", "direct-threads"])
def test_gather_equals_indexing(stored, rows_kind, cols_kind, gap, monkeypatch):
    source, tensors = stored
    if gap == "direct-threads":  # O_DIRECT reads from threads, as where the kernel has no AIO
        monkeypatch.setenv("GRAFT_AIO", "0")
        gap = "direct"
    rng = np.random.default_rng(1)
    info = source.tensors["a"]
    full = tensors["a"]
    rows, cols = _case(rng, 300, rows_kind), _case(rng, 257, cols_kind)
    # a small cap forces several row blocks and row groups
    if gap == "direct":  # O_DIRECT: sector-aligned spans, each run's bytes copied into place
        got, _ = gather_2d(info.file, info.offsets[0], (300, 257), torch.bfloat16, rows, cols, cap=4096, direct=True)
    else:
        got, _ = gather_2d(info.file, info.offsets[0], (300, 257), torch.bfloat16, rows, cols, gap=gap, cap=4096)
    want = full if rows is None else full[torch.from_numpy(rows)]
    want = want if cols is None else want[:, torch.from_numpy(cols)]
    assert got.dtype == want.dtype and torch.equal(got.view(torch.int16), want.contiguous().view(torch.int16))


def test_trailing_axes_are_flattened_columns_and_1d_tensors_work(stored):
    source, tensors = stored
    rows = np.array([5, 1, 63])
    cols = np.arange(8 * 33).reshape(8, 33)[[0, 3]][:, :10].reshape(-1)
    got = source.read_gather("b", rows, cols)
    assert torch.equal(got, tensors["b"][torch.from_numpy(rows)].reshape(3, -1)[:, torch.from_numpy(cols)])
    assert torch.equal(source.read_gather("b", rows, None), tensors["b"][torch.from_numpy(rows)])
    assert torch.equal(source.read("c"), tensors["c"])
    assert torch.equal(source.read_slice("c", (slice(10, 20),)), tensors["c"][10:20])
    assert torch.equal(source.read_slice("b", (slice(3, 7),)), tensors["b"][3:7])


def test_without_merging_only_the_kept_bytes_are_read_and_gaps_are_merged_when_small(stored):
    source, _ = stored
    info = source.tensors["a"]
    rows, cols = np.arange(0, 300, 2), np.arange(100)
    _, exact = gather_2d(info.file, info.offsets[0], (300, 257), torch.bfloat16, rows, cols, gap=0)
    assert exact == len(rows) * len(cols) * 2
    # a gap (the 157 dropped columns, then a dropped row) under the threshold is read through
    _, merged = gather_2d(info.file, info.offsets[0], (300, 257), torch.bfloat16, rows, cols, gap=1 << 20)
    assert merged == ((rows[-1] - rows[0]) * 257 + 100) * 2


def test_a_truncated_file_is_one_sentence(tmp_path):
    from core.errors import SourceError

    save_file({"w": torch.ones(100, 100)}, tmp_path / "m.safetensors", metadata={"format": "pt"})
    source = open_source(tmp_path / "m.safetensors")
    with open(tmp_path / "m.safetensors", "r+b") as fh:
        fh.truncate(source.tensors["w"].offsets[0] + 100)
    with pytest.raises(SourceError, match="truncated"):
        source.read_gather("w", np.arange(50, 60), None)


def test_direct_reads_reach_the_files_last_byte_and_say_when_it_is_truncated(tmp_path):
    from core.errors import SourceError

    w = torch.arange(333 * 7, dtype=torch.float32).reshape(333, 7)  # the file ends inside a sector
    save_file({"w": w}, tmp_path / "m.safetensors", metadata={"format": "pt"})
    info = open_source(tmp_path / "m.safetensors").tensors["w"]
    rows = np.array([0, 331, 332])
    got, n = gather_2d(info.file, info.offsets[0], (333, 7), torch.float32, rows, np.array([1, 6]), direct=True)
    assert torch.equal(got, w[torch.from_numpy(rows)][:, [1, 6]]) and n <= 3 * 7 * 4  # runs a sector apart merge
    with open(tmp_path / "m.safetensors", "r+b") as fh:
        fh.truncate(info.offsets[0] + 330 * 7 * 4)
    with pytest.raises(SourceError, match="truncated"):
        gather_2d(info.file, info.offsets[0], (333, 7), torch.float32, rows, None, direct=True)


def _resident_fraction(path) -> float:
    """The share of ``path``'s pages in the page cache, by ``mincore`` (the kernel's own answer,
    not the reader's probe); mapping the file faults nothing in."""
    import ctypes
    import mmap
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        pages = -(-size // mmap.PAGESIZE)
        vec = ctypes.create_string_buffer(pages)
        try:
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec.raw) / pages


def _evict(path) -> None:
    """Drop ``path`` from the page cache (skips the test where the file system keeps it: tmpfs)."""
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _resident_fraction(path) > 0.1:
        pytest.skip("this file system keeps the file in memory after POSIX_FADV_DONTNEED (tmpfs?)")


def _half_rows_off_the_grid(tmp_path):
    """The first half of each 8 KB row of a bf16 matrix stored 100 bytes off the page grid."""
    from core.sources import reader

    path = tmp_path / "m.bin"
    rows, n_cols = 512, 4096  # bf16: 8 KB rows, 4 MB in all
    path.write_bytes(bytes(100) + bytes(rows * n_cols * 2))
    urows, ucols = np.arange(rows), np.arange(n_cols // 2)
    buffered = (reader._windows(ucols, 2, reader.GAP_BYTES), reader.GAP_BYTES)
    return path, (100, urows, n_cols, 2, buffered, reader._windows(ucols, 2, reader.SECTOR))


def test_direct_reads_save_bytes_for_half_rows_off_the_page_grid_but_not_for_whole_rows(tmp_path):
    """Through the page cache each 4 KB run of a half row costs two pages (the plan merges the
    rows: every page); direct, nine sectors. Whole rows on the grid cost the same both ways: buffered."""
    from core.sources import reader

    _, args = _half_rows_off_the_grid(tmp_path)
    base, urows, n_cols, item, buffered, exact = args
    assert exact == [(0, 2048)]
    lows, pads, spans = reader._direct_spans(base, urows, n_cols, item, 0, 2048, reader.SECTOR)
    assert (pads == 100).all() and (spans == 4608).all() and (lows == base - 100 + urows * 8192).all()
    # merged: every page up to the last run's end (the last row's second half is not read)
    assert reader._buffered_pages(base, urows, n_cols, item, *buffered) == 1024 * 4096
    assert reader._buffered_pages(base, urows, n_cols, item, exact, 0) == 512 * 2 * 4096  # unmerged: 2 pages each
    assert (reader._direct_saves(*args) == lows).all()
    whole = np.arange(n_cols)
    plans = [reader._windows(whole, 2, gap) for gap in (reader.GAP_BYTES, reader.SECTOR)]
    assert len(reader._direct_saves(4096, urows, n_cols, item, (plans[0], reader.GAP_BYTES), plans[1])) == 0


def test_direct_reads_are_chosen_only_while_the_bytes_are_not_cached(tmp_path):
    """The reader's cache probe (``RWF_NOWAIT``) agrees with ``mincore``: evicted, direct reads
    pay; once read, a copy from memory beats any disk read. (A missed probe starts a few pages of
    readahead, so the file is evicted again before each look.)"""
    import errno
    import os

    from core.sources import reader

    path, args = _half_rows_off_the_grid(tmp_path)

    fd = os.open(path, os.O_RDONLY)
    try:  # just written, so cached: a file system without RWF_NOWAIT reads refuses the flag itself
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            pytest.skip(f"this file system has no RWF_NOWAIT reads ({exc.strerror}): the probe cannot tell")
    finally:
        os.close(fd)
    probes = [100 + i * 8192 for i in range(0, 512, 32)]
    _evict(path)
    assert not reader._is_cached(path, probes)
    _evict(path)
    assert reader._direct_pays(path, *args)
    path.read_bytes()
    assert _resident_fraction(path) == 1.0
    assert reader._is_cached(path, probes)
    assert not reader._direct_pays(path, *args)


@pytest.mark.parametrize("pad", [0, 8, 100, 4094])
@pytest.mark.parametrize("aio", ["1", "0"])
def test_whole_tensor_direct_reads_equal_the_stored_bytes(tmp_path, monkeypatch, pad, aio):
    """A tensor of several read pieces (9 MB), stored ``pad`` bytes off the sector grid, read with
    ``O_DIRECT`` (through AIO, and from threads): the same values as read through the page cache,
    and the file's last bytes reached when it ends inside a sector."""
    from core.sources import reader

    monkeypatch.setenv("GRAFT_AIO", aio)
    values = torch.arange(9 * (1 << 20) // 2 + 3, dtype=torch.int16).view(torch.bfloat16)  # ends off the grid
    path = tmp_path / "m.bin"
    path.write_bytes(bytes(pad) + values.view(torch.uint8).numpy().tobytes())
    direct = reader._read_range_direct(path, pad, values.numel(), torch.bfloat16, probe=False)
    if direct is None:
        pytest.skip("this file system has no O_DIRECT: whole tensors are read through the page cache")
    buffered = reader.read_range(path, pad, values.numel(), torch.bfloat16)  # cached now: the probe says so
    assert torch.equal(direct.view(torch.int16), values.view(torch.int16))
    assert torch.equal(buffered.view(torch.int16), values.view(torch.int16))


def test_whole_tensor_direct_reads_say_when_the_file_is_cut_short(tmp_path):
    from core.errors import SourceError
    from core.sources import reader

    path = tmp_path / "m.bin"
    path.write_bytes(bytes(2 << 20))
    if reader._read_range_direct(path, 0, 1 << 20, torch.float16, probe=False) is None:
        pytest.skip("this file system has no O_DIRECT")
    with pytest.raises(SourceError, match="truncated"):
        reader._read_range_direct(path, 4096, 1 << 20, torch.float16, probe=False)  # 4 KB short
    assert reader._read_range_direct(path, 1, 1000, torch.float16, probe=False) is None  # not element-aligned


def test_a_stats_table_of_a_source_read_direct_equals_one_read_through_the_cache(tmp_path, monkeypatch):
    """Whole tensors over 1 MB are read with O_DIRECT where they are not cached: the table's
    numbers are the same as with every read through the page cache."""
    from core.sources import reader
    from core.stats.table import model_table

    g = torch.Generator().manual_seed(1)
    tensors = {f"layers.{i}.w": torch.randn(600, 1000, generator=g).to(torch.bfloat16) for i in range(2)}
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    tables = {}
    for mode in ("always", "never"):
        monkeypatch.setattr(reader, "DIRECT", mode)
        table = model_table(open_source(tmp_path / "model.safetensors"), cache=False)
        tables[mode] = list(table.cells())
    assert len(tables["always"]) == 2 and tables["always"] == tables["never"]


def test_the_stats_tables_pass_reads_around_the_page_cache_and_a_plain_read_through_it(tmp_path, monkeypatch):
    """Inside ``one_pass`` (the statistics table's read thread) an uncached tensor is read with
    O_DIRECT, leaving the page cache as it was; a plain ``Source.read`` (a preview, read again
    soon) goes through it. ``mincore`` is the judge."""

    from core.sources import reader

    monkeypatch.setattr(reader, "DIRECT", "auto")
    w = torch.randn(1024, 1024)  # 4 MB
    save_file({"w": w}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    path = tmp_path / "model.safetensors"
    source = open_source(path)

    _evict(path)
    if reader._read_range_direct(path, source.tensors["w"].offsets[0], w.numel(), torch.float32, probe=False) is None:
        pytest.skip("this file system has no O_DIRECT")
    _evict(path)
    with reader.one_pass():
        assert torch.equal(source.read("w"), w)
    assert _resident_fraction(path) < 0.5
    assert torch.equal(source.read("w"), w)
    assert _resident_fraction(path) > 0.9
