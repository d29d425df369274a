"""Checkpoint compare (core.stats.diff, ``graft diff``): every number against numpy on real checkpoints."""

from __future__ import annotations

import json
import shutil
import weakref

import numpy as np
import pytest
import torch
from cli_expect import fails
from safetensors.torch import load_file, save_file
from tiny_models import build_tiny

from app.cli import main
from core.errors import Cancelled, StatsError
from core.progress import CancelToken
from core.sources import open_source
from core.stats.diff import SHAPE_DIFFERS, diff_checkpoints, pair_detail

QUERY = "bert.encoder.layer.0.attention.self.query.weight"
WORD = "bert.embeddings.word_embeddings.weight"


# -- numpy references --------------------------------------------------------------------------
def np_ks_w1(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.sort(a.ravel().astype(np.float64)), np.sort(b.ravel().astype(np.float64))
    grid = np.concatenate([a, b])
    grid.sort()
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb))), float(np.sum(np.abs(fa - fb)[:-1] * np.diff(grid)))


def np_row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def np_rel_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm((a - b).ravel()) / np.linalg.norm(a.ravel()))


# -- checkpoints -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny BERT (A), a fine-tuned copy (B: some tensors moved, one layer rescaled), a Graft
    export of A at half width, and A saved as a bare BertModel (other names, same family)."""
    from transformers import AutoModel, AutoModelForMaskedLM

    root = tmp_path_factory.mktemp("diff")
    a = root / "a"
    build_tiny("bert", a, seed=0)
    model = AutoModelForMaskedLM.from_pretrained(a)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".layer.1." in name:
                p.mul_(1.5)
            elif name == QUERY or name.endswith("intermediate.dense.weight"):
                p.add_(torch.randn(p.shape, generator=g) * 0.01)
    b = root / "b"
    model.save_pretrained(b, safe_serialization=True)
    bare = root / "bare"
    AutoModel.from_pretrained(a).save_pretrained(bare, safe_serialization=True)
    small = root / "small"
    argv = ["transfer", str(a), "--hidden", "16", "--heads", "2", "--ffn", "32", "--out", str(small)]
    assert main(argv) == 0
    return {"a": a, "b": b, "bare": bare, "small": small}


def tensors(folder) -> dict[str, np.ndarray]:
    return {k: v.float().numpy() for k, v in load_file(folder / "model.safetensors").items() if v.is_floating_point()}


# -- core --------------------------------------------------------------------------------------
def test_every_metric_matches_numpy(checkpoints):
    result = diff_checkpoints(open_source(checkpoints["a"]), open_source(checkpoints["b"]))
    ta, tb = tensors(checkpoints["a"]), tensors(checkpoints["b"])
    assert {p.name for p in result.pairs} == set(ta) & set(tb)
    changed = 0
    for p in result.pairs:
        a, b = ta[p.name], tb[p.name]
        assert p.distances_exact and p.n_a == a.size and p.n_b == b.size  # tiny tensors: KS/W1 exact
        ks, w1 = np_ks_w1(a, b)
        assert p.ks == pytest.approx(ks, abs=1e-12), p.name
        assert p.w1 == pytest.approx(w1, rel=1e-9, abs=1e-15), p.name
        d = (a.astype(np.float64) - b.astype(np.float64)).ravel()
        assert p.frobenius == pytest.approx(np.linalg.norm(d), rel=1e-12, abs=1e-15)
        assert p.max_abs_diff == pytest.approx(np.abs(d).max(), rel=1e-12, abs=1e-15)
        if np.linalg.norm(a) > 0:
            assert p.rel_frobenius == pytest.approx(np_rel_frobenius(a, b), rel=1e-12, abs=1e-15)
        assert p.moments_a.std == pytest.approx(np.std(a.astype(np.float64)), rel=1e-10)
        assert p.std_ratio == pytest.approx(np.std(b.astype(np.float64)) / np.std(a.astype(np.float64)), rel=1e-10)
        if a.ndim >= 2:
            cos = np_row_cosines(a, b)
            assert p.cos_mean == pytest.approx(cos.mean(), rel=1e-12)
            assert p.cos_min == pytest.approx(cos.min(), rel=1e-12)
        else:
            assert np.isnan(p.cos_mean) and np.isnan(p.cos_min)
        changed += p.frobenius > 0
    layer1 = result.pair("bert.encoder.layer.1.attention.self.key.weight")
    assert layer1.std_ratio == pytest.approx(1.5) and layer1.cos_min == pytest.approx(1.0)
    assert layer1.rel_frobenius == pytest.approx(0.5, rel=1e-6) and layer1.ks > 0.05
    assert 0 < result.pair(QUERY).rel_frobenius < 0.5 and result.pair(QUERY).cos_min < 1
    assert changed >= 16 + 2 and result.summary()["identical"] == len(result.pairs) - changed


def test_identical_checkpoints_give_zero_distances_and_cosine_one(checkpoints):
    a = open_source(checkpoints["a"])
    result = diff_checkpoints(a, open_source(checkpoints["a"]))
    assert result.pairs and not result.pairing.only_a and not result.pairing.only_b
    for p in result.pairs:
        assert (p.ks, p.w1, p.frobenius, p.rel_frobenius, p.max_abs_diff) == (0, 0, 0, 0, 0)
        if len(p.pair.shape_a) >= 2:
            assert p.cos_mean == pytest.approx(1.0, abs=1e-12) and p.cos_min == pytest.approx(1.0, abs=1e-12)
    assert result.summary()["identical"] == len(result.pairs)
    table = result.table()
    assert np.nanmax(table.values["rel_frobenius"]) == 0 and np.nanmin(table.values["cos_min"]) > 1 - 1e-12


def test_names_only_in_one_side_and_integer_tensors_are_listed(checkpoints, tmp_path):
    state = load_file(checkpoints["a"] / "model.safetensors")
    state["bert.embeddings.position_ids"] = torch.arange(64).reshape(1, 64)  # an integer buffer, in both
    dropped = "bert.encoder.layer.1.output.dense.bias"
    folders = {}
    for side, extra in (("a", {}), ("b", {"extra.adapter.weight": torch.ones(4, 4)})):
        folders[side] = tmp_path / side
        folders[side].mkdir()
        tensors_ = {k: v for k, v in state.items() if not (side == "b" and k == dropped)} | extra
        save_file(tensors_, folders[side] / "model.safetensors", metadata={"format": "pt"})
        shutil.copy(checkpoints["a"] / "config.json", folders[side] / "config.json")
    result = diff_checkpoints(open_source(folders["a"]), open_source(folders["b"]))
    assert result.pairing.only_a == (dropped,)
    assert result.pairing.only_b == ("extra.adapter.weight",)
    assert set(result.pairing.not_compared) == {"bert.embeddings.position_ids"}
    assert "not floating point" in result.pairing.not_compared["bert.embeddings.position_ids"]
    assert len(result.pairs) == len(state) - 2 and all(p.frobenius == 0 for p in result.pairs)


def test_other_names_of_one_family_pair_by_layer_and_role(checkpoints):
    result = diff_checkpoints(open_source(checkpoints["a"]), open_source(checkpoints["bare"]))
    by_role = [p for p in result.pairs if p.pair.matched_by == "role+layer"]
    assert result.pairing.family_a == result.pairing.family_b == "bert"
    pair = result.pair(QUERY).pair
    assert pair.name_b == "encoder.layer.0.attention.self.query.weight" and pair.matched_by == "role+layer"
    assert len(by_role) >= 30 and all(p.frobenius == 0 for p in by_role)
    # the MLM head exists only in A; nothing of A is paired twice
    assert any(n.startswith("cls.") for n in result.pairing.only_a)
    assert len({p.pair.name_b for p in result.pairs}) == len(result.pairs)


def test_shrunk_export_compares_distributions_only(checkpoints):
    a, small = open_source(checkpoints["a"]), open_source(checkpoints["small"])
    result = diff_checkpoints(a, small)
    ta, ts = tensors(checkpoints["a"]), tensors(checkpoints["small"])
    query = result.pair(QUERY)
    assert query.note == SHAPE_DIFFERS and query.pair.shape_a == (32, 32) and query.pair.shape_b == (16, 16)
    assert np.isnan(query.rel_frobenius) and np.isnan(query.cos_mean)
    ks, w1 = np_ks_w1(ta[QUERY], ts[QUERY])
    assert query.ks == pytest.approx(ks, abs=1e-12) and query.w1 == pytest.approx(w1, rel=1e-9)
    assert result.summary()["shape_differs"] >= 20
    assert json.loads(json.dumps(result.to_dict()))["pairs"][0]["rel_frobenius"] is None


def test_subsampled_distances_say_so_and_cap_none_is_exact(checkpoints):
    a, b = open_source(checkpoints["a"]), open_source(checkpoints["b"])
    sampled = diff_checkpoints(a, b, names=[WORD], max_distance_elements=500).pairs[0]
    exact = diff_checkpoints(a, b, names=[WORD], max_distance_elements=None).pairs[0]
    assert not sampled.distances_exact and sampled.n_a == 500 and exact.distances_exact
    ks, w1 = np_ks_w1(tensors(checkpoints["a"])[WORD], tensors(checkpoints["b"])[WORD])
    assert exact.ks == pytest.approx(ks, abs=1e-12) and exact.w1 == pytest.approx(w1, rel=1e-9)
    assert sampled.frobenius == exact.frobenius  # elementwise metrics never sample


def test_one_pair_in_memory_at_a_time_and_cancel(checkpoints):
    a, b = open_source(checkpoints["a"]), open_source(checkpoints["b"])
    alive: list[weakref.ref] = []
    peak = 0

    def tracking(source):
        read = source.read

        def wrapped(name):
            nonlocal peak
            t = read(name)
            alive.append(weakref.ref(t))
            peak = max(peak, sum(r() is not None for r in alive))
            return t

        source.read = wrapped

    tracking(a)
    tracking(b)
    fractions = []
    diff_checkpoints(a, b, progress=lambda f, m: fractions.append(f))
    assert peak == 2 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        diff_checkpoints(a, b, cancel=token)


def test_pair_detail_has_both_histograms_and_spectra(checkpoints):
    detail = pair_detail(open_source(checkpoints["a"]), open_source(checkpoints["small"]), QUERY)
    assert detail.histogram.n_source == 32 * 32 and detail.histogram.n_target == 16 * 16
    sv = np.linalg.svd(tensors(checkpoints["a"])[QUERY].astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(detail.spectrum_a, sv, rtol=1e-6, atol=1e-9)
    assert detail.spectrum_b.size == 16
    with pytest.raises(StatsError, match="only in A"):
        pair_detail(open_source(checkpoints["a"]), open_source(checkpoints["bare"]), "cls.predictions.bias")


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_json_matches_core(checkpoints, capsys):
    capsys.readouterr()
    assert main(["diff", str(checkpoints["a"]), str(checkpoints["b"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    core = diff_checkpoints(open_source(checkpoints["a"]), open_source(checkpoints["b"]))
    assert [p["name"] for p in out["pairs"]] == [p.name for p in core.pairs]
    for got, want in zip(out["pairs"], core.pairs):
        for metric in ("ks", "w1", "rel_frobenius", "cos_mean", "cos_min", "frobenius"):
            expected = want.value(metric)
            assert (got[metric] is None) if np.isnan(expected) else got[metric] == pytest.approx(expected, rel=1e-12)
    assert out["summary"]["compared"] == len(core.pairs) and out["summary"]["identical"] == core.summary()["identical"]


def test_cli_text_table_and_one_tensor(checkpoints, capsys):
    capsys.readouterr()
    assert main(["diff", str(checkpoints["a"]), str(checkpoints["small"])]) == 0
    text = capsys.readouterr().out
    assert "32×32 → 16×16" in text and SHAPE_DIFFERS in text and "of another shape" in text
    assert main(["diff", str(checkpoints["a"]), str(checkpoints["b"]), "--tensor", QUERY]) == 0
    text = capsys.readouterr().out
    assert "cos rows min" in text and "paired by name" in text and "excess kurtosis" in text


def test_cli_bad_input_is_one_line_and_exit_2(checkpoints, capsys, tmp_path):
    fails(capsys, ["diff", str(checkpoints["a"]), str(tmp_path / "missing")], None, "does not exist")
    fails(capsys, ["diff", str(checkpoints["a"]), str(checkpoints["b"]), "--tensor", "nope"], None, "nope")
    fails(
        capsys,
        ["diff", str(checkpoints["a"]), str(checkpoints["bare"]), "--tensor", "cls.predictions.bias"],
        None,
        "only in A",
    )
