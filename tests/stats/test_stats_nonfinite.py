"""A source whose weights hold NaN/±Inf: every statistic still answers, and says how many there were.

Value statistics (moments, fits, histograms, distances) describe the finite entries; matrix
statistics (spectrum, α, stable rank, correlation energy, norm share) of a matrix with a
non-finite entry are not computable and come out as NaN (``null`` in JSON).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from app.cli import main
from core.stats import compare_tensors, correlation_map, head_maps, moments, spectrum, tensor_stats
from core.stats.meanfield import mean_field_stats

BAD = "model.layers.0.self_attn.q_proj.weight"


def _strict(text: str):
    """JSON as the standard has it: NaN/Infinity literals are an error."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A tiny llama with 2 NaN, one +Inf and one −Inf written into one layer-0 weight's file."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tiny_models import build_tiny

    folder = tmp_path_factory.mktemp("nonfinite") / "llama"
    build_tiny("llama", folder)
    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    w = tensors[BAD].clone()
    w[0, 0] = w[3, 5] = float("nan")
    w[1, 2], w[7, 7] = float("inf"), float("-inf")
    tensors[BAD] = w
    save_file(tensors, str(path), metadata=metadata)
    return folder


def test_stats_table_reports_the_count_and_keeps_the_finite_numbers(broken, capsys):
    assert main(["stats", str(broken), "--json"]) == 0
    out = _strict(capsys.readouterr().out)
    assert out["nonfinite"] == {BAD: 4}
    i, j = out["layers"].index(0), out["columns"].index("attn.q")
    assert out["names"][i][j] == BAD
    assert out["values"]["alpha"][i][j] is None and out["values"]["stable_rank"][i][j] is None
    assert out["values"]["std"][i][j] > 0 and out["values"]["kurtosis"][i][j] is not None
    assert all(s["tensor"] != BAD for s in out["suggestions"])  # no advice from a broken matrix
    assert main(["stats", str(broken)]) == 0
    assert f"4 NaN/Inf in 1 tensor, first: {BAD}" in capsys.readouterr().out


def test_stats_of_the_broken_tensor(broken, capsys):
    assert main(["stats", str(broken), "--tensor", BAD, "--json"]) == 0
    out = _strict(capsys.readouterr().out)
    assert out["nonfinite"] == 4
    assert out["moments"]["n"] == 32 * 32 - 4 and out["moments"]["std"] > 0
    assert out["spectrum"]["alpha"] is None and out["spectrum"]["nonfinite"] == 4
    assert math.isfinite(out["fits"]["student-t"]["nu"])
    assert main(["stats", str(broken), "--tensor", BAD]) == 0
    text = capsys.readouterr().out
    assert f"4 NaN/Inf in 1 tensor, first: {BAD}" in text and "excess kurtosis" in text


def test_report_of_a_broken_source(broken, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(broken), "--out", str(out)]) == 0
    report = _strict((out / "report.json").read_text())
    assert report["tables"]["source"]["nonfinite"] == {BAD: 4}
    assert report["tensors"][BAD]["stats"]["nonfinite"] == 4
    for fig in report["figures"]:
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"4 NaN/Inf in 1 tensor, first: {BAD}" in capsys.readouterr().out


def test_every_statistic_of_a_matrix_with_nan_and_inf():
    rng = np.random.default_rng(0)
    clean = rng.standard_t(5, (64, 96)).astype(np.float32)
    dirty = clean.copy()
    dirty[0, 0], dirty[5, 9], dirty[9, 1] = np.nan, np.inf, -np.inf
    finite = dirty[np.isfinite(dirty)].astype(np.float64)

    m = moments(dirty, max_elements=None)
    assert m.nonfinite == 3 and m.n == finite.size
    assert m.std == pytest.approx(finite.std(), rel=1e-12) and m.max == pytest.approx(finite.max())

    s = spectrum(dirty)
    assert s.nonfinite == 3 and s.fit is None and s.singular_values.size == 0 and math.isnan(s.stable_rank)
    assert not s.exact

    stats = tensor_stats(torch.from_numpy(dirty), "w")
    assert stats.nonfinite == 3 and stats.moments.n == finite.size
    assert all(math.isfinite(v) for v in stats.fit_loglik.values())
    mf = mean_field_stats(dirty)
    assert math.isnan(mf.as_metrics()["row_corr_excess"]) and math.isnan(mf.as_metrics()["top1_norm_ratio"])

    comparison = compare_tensors(dirty, clean)
    assert comparison.source.nonfinite == 3 and comparison.histogram.n_source == finite.size
    assert np.isfinite(comparison.histogram.edges).all() and comparison.distances.ks < 0.05

    for order in (None, "cluster", "spectral"):
        cmap = correlation_map(dirty, "rows", order=order)
        assert cmap.matrix.shape == (64, 64) and math.isnan(cmap.offdiag_energy)

    q = torch.from_numpy(dirty[:, :32].T.copy())  # (32, 64): 4 heads of 8 on a hidden size of 64
    k = v = torch.randn(32, 64)
    o = torch.randn(64, 32)
    maps = head_maps(q, k, v, o, num_heads=4)
    assert maps.qk.shape == (4, 64, 64) and set(np.unique(maps.qk_trace_sign)) <= {-1, 0, 1}


def test_an_all_nan_tensor_is_reported_not_computable():
    x = torch.full((8, 8), float("nan"))
    m = moments(x)
    assert m.n == 0 and m.nonfinite == 64 and math.isnan(m.std)
    stats = tensor_stats(x, "nan")
    assert stats.nonfinite == 64 and stats.fits == {} and stats.spectrum.fit is None
    _strict(json.dumps(stats.to_dict()))
