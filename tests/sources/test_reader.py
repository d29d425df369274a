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
@pytest.mark.parametrize("gap", [0, 64, 1 << 20, "direct"])
def test_gather_equals_indexing(stored, rows_kind, cols_kind, gap):
    source, tensors = stored
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


def test_direct_reads_are_chosen_for_half_rows_off_the_page_grid_that_are_not_cached(tmp_path):
    """The first half of each 8 KB row, 100 bytes off the page grid: through the page cache each
    4 KB run costs two pages; direct, nine sectors. A cached file stays buffered."""
    import os

    from core.sources import reader

    path = tmp_path / "m.bin"
    rows, n_cols = 512, 4096  # bf16: 8 KB rows, 4 MB in all
    path.write_bytes(bytes(100) + bytes(rows * n_cols * 2))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    urows, ucols = np.arange(rows), np.arange(n_cols // 2)
    windows = reader._windows(ucols, 2, reader.GAP_BYTES)
    sectors = reader._windows(ucols, 2, reader.SECTOR)
    exact = reader._read_list(100, urows, n_cols, sectors, 2, reader.SECTOR, 64 << 20)
    assert len(exact) == rows and reader._span_bytes(exact, 512) == rows * 4608
    plans = (windows, reader.GAP_BYTES), (sectors, reader.SECTOR)  # buffered, direct
    assert reader._span_bytes(reader._read_list(100, urows, n_cols, windows, 2, reader.GAP_BYTES, 64 << 20), 4096) > (
        1.2 * rows * 4608
    )
    assert reader._direct_pays(path, 100, urows, n_cols, 2, 64 << 20, plans[0], plans[1])
    path.read_bytes()  # now cached: a copy from memory beats any disk read
    assert not reader._direct_pays(path, 100, urows, n_cols, 2, 64 << 20, plans[0], plans[1])
