"""The Lanczos ‖W‖_2 (no ARPACK) against numpy's exact norm, and the table cache's hits and misses."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.sources import open_source
from core.stats.spectrum import SPECTRAL_NORM_RTOL, spectral_norm, spectrum
from core.stats.table import model_table, stream_model_table


@pytest.mark.parametrize("shape", [(300, 1500), (1500, 300), (700, 700), (65, 4000)])
def test_spectral_norm_matches_numpy_on_random_matrices(shape):
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    exact = np.linalg.norm(w.astype(np.float64), 2)
    assert spectral_norm(torch.from_numpy(w)) == pytest.approx(exact, rel=SPECTRAL_NORM_RTOL)


@pytest.mark.parametrize("rank", [1, 3, 20])
def test_spectral_norm_matches_numpy_on_low_rank_matrices(rank):
    rng = np.random.default_rng(rank)
    w = (rng.standard_normal((900, rank)) @ rng.standard_normal((rank, 400))).astype(np.float32)
    w += 1e-3 * rng.standard_normal(w.shape).astype(np.float32)
    exact = np.linalg.norm(w.astype(np.float64), 2)
    assert spectral_norm(torch.from_numpy(w)) == pytest.approx(exact, rel=SPECTRAL_NORM_RTOL)


def test_capped_spectrum_takes_the_whole_matrix_norm_from_lanczos():
    w = np.random.default_rng(2).standard_normal((600, 500))
    s = spectrum(w, max_side=100)
    exact = np.linalg.norm(w, 2)
    assert not s.exact
    assert s.stable_rank == pytest.approx((w**2).sum() / exact**2, rel=2 * SPECTRAL_NORM_RTOL)


def test_spectral_norm_of_a_matrix_with_nan_is_nan():
    w = torch.ones(100, 100)
    w[3, 4] = float("nan")
    assert np.isnan(spectral_norm(w))


def _write(folder, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    save_file(
        {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(48, 32, generator=g) for i in range(2)},
        str(folder / "model.safetensors"),
    )


def test_second_table_comes_from_the_cache_and_a_changed_file_misses(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    _write(folder, 0)
    metrics = ("std", "alpha", "stable_rank")
    first = model_table(open_source(str(folder)), metrics)
    assert list((tmp_path / "cache" / "stats").glob("*.json"))

    # a hit reads no tensor at all, and still streams every row
    source = open_source(str(folder))
    monkeypatch.setattr(type(source), "read", lambda self, name: pytest.fail("read on a cache hit"))
    stream = stream_model_table(source, metrics)
    rows = []
    while True:
        try:
            rows.append(next(stream))
        except StopIteration as end:
            second = end.value
            break
    assert len(rows) == 2
    for m in metrics:
        np.testing.assert_array_equal(first.values[m], second.values[m])
    monkeypatch.undo()
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))

    # other metrics or parameters: a different entry
    other = model_table(open_source(str(folder)), ("std",))
    assert other.metrics == ("std",)
    assert len(list((tmp_path / "cache" / "stats").glob("*.json"))) == 2

    # the same file names with other bytes: recomputed
    _write(folder, 1)
    changed = model_table(open_source(str(folder)), metrics)
    assert not np.allclose(changed.values["std"], first.values["std"])
    fresh = model_table(open_source(str(folder)), metrics, cache=False)
    np.testing.assert_array_equal(changed.values["std"], fresh.values["std"])


def test_a_table_of_a_never_scanned_file_reads_it_once_and_still_caches(tmp_path, monkeypatch):
    """No hashing pass after the rows (one more read of every byte): the file's identity keys it."""
    from core.sources.scan import cached_scan

    monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    _write(folder, 0)
    first = model_table(open_source(str(folder)), ("std",))
    assert cached_scan(folder / "model.safetensors") is None  # the file was not hashed
    source = open_source(str(folder))
    monkeypatch.setattr(type(source), "read", lambda self, name: pytest.fail("read on a cache hit"))
    np.testing.assert_array_equal(model_table(source, ("std",)).values["std"], first.values["std"])
