"""The layer × role table: labelling, streaming with progress and cancel, real checkpoints."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy import stats as sstats

from core.errors import Cancelled, StatsError
from core.progress import CancelToken
from core.sources import open_source
from core.stats import MEAN_FIELD_METRICS, model_table, tensor_stats
from core.stats.meanfield import SUGGEST_ROWS


@dataclass(frozen=True)
class Label:
    name: str
    role: str
    layer: int | None
    kind: str = "param"


def hand_model(folder):
    g = torch.Generator().manual_seed(0)
    tensors = {"embed.weight": torch.randn(50, 16, generator=g), "steps": torch.arange(4)}
    for i in range(3):
        tensors[f"blocks.{i}.attn.q.weight"] = torch.randn(16, 16, generator=g) * (i + 1)
        tensors[f"blocks.{i}.mlp.up.weight"] = torch.randn(32, 16, generator=g).to(torch.bfloat16)
        tensors[f"blocks.{i}.norm.weight"] = torch.ones(16)
    shared = torch.randn(1, 16, generator=g)
    tensors["blocks.2.mlp.up.weight"] = (torch.randn(32, 16, generator=g) * 0.3 + shared).to(torch.bfloat16)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return open_source(folder / "model.safetensors")


def hand_describe(source):
    out = []
    for name in source.tensors:
        parts = name.split(".")
        if name == "steps":
            out.append(Label(name, "buffer", None, kind="buffer"))
        elif parts[0] == "blocks":
            out.append(Label(name, ".".join(parts[2:-1]), int(parts[1])))
        else:
            out.append(Label(name, "embed", None))
    return out


def test_table_with_an_injected_describe(tmp_path):
    src = hand_model(tmp_path)
    seen = []
    table = model_table(
        src,
        ("std", "kurtosis", "alpha") + MEAN_FIELD_METRICS,
        describe=hand_describe,
        progress=lambda f, msg: seen.append((f, msg)),
    )
    assert table.layers == (0, 1, 2, None)
    assert table.columns == ("attn.q", "mlp.up", "embed")  # vectors and buffers are left out by default
    std = table.values["std"]
    for i in range(3):
        ref = src.read(f"blocks.{i}.attn.q.weight").double().numpy()
        assert std[i, 0] == pytest.approx(ref.std(), rel=1e-5)
    assert np.isnan(std[3, 0]) and np.isnan(std[0, 2]) and table.names[3, 2] == "embed.weight"
    assert seen[0][0] == 0.0 and seen[-1][0] == pytest.approx(1.0) and len(seen) == 8
    suggestions = {(layer, col): s for layer, col, _, s in table.suggestions()}
    assert SUGGEST_ROWS in suggestions[(2, "mlp.up")]
    assert SUGGEST_ROWS not in suggestions[(0, "mlp.up")]
    d = table.to_dict()
    assert d["values"]["std"][3][0] is None and d["columns"] == ["attn.q", "mlp.up", "embed"]


def test_vectors_roles_filter_and_cancel(tmp_path):
    src = hand_model(tmp_path)
    table = model_table(src, ("mean", "alpha"), roles=("norm",), include_vectors=True, describe=hand_describe)
    assert table.columns == ("norm",) and table.layers == (0, 1, 2)
    assert np.all(table.values["mean"] == 1.0) and np.all(np.isnan(table.values["alpha"]))
    token = CancelToken()

    def cancel_after_first(fraction, message):
        if fraction > 0:
            token.cancel()

    with pytest.raises(Cancelled):
        model_table(src, ("std",), describe=hand_describe, progress=cancel_after_first, cancel=token)
    with pytest.raises(StatsError, match="unknown metric"):
        model_table(src, ("nope",), describe=hand_describe)


def test_generic_labels_when_no_spec_describes_the_checkpoint(tmp_path):
    src = hand_model(tmp_path)
    table = model_table(src, ("std",))
    assert table.layers == (0, 1, 2, None)
    assert table.columns == ("blocks.attn.q.weight", "blocks.mlp.up.weight", "embed.weight")


def test_tiny_llama_uses_the_architecture_spec(tmp_path):
    from tiny_models import build_tiny

    build_tiny("llama", tmp_path / "llama")
    table = model_table(open_source(tmp_path / "llama"), ("std", "stable_rank"))
    assert table.layers == (0, 1, None)
    assert {"attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down", "embed", "head"} <= set(
        table.columns
    )
    assert table.columns[:7] == ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")
    assert np.isfinite(table.values["stable_rank"][:2, :7]).all()


def test_gpt2_conv1d_weights_are_oriented_output_rows_first(tmp_path):
    from tiny_models import build_tiny

    build_tiny("gpt2", tmp_path / "gpt2")
    src = open_source(tmp_path / "gpt2")
    table = model_table(src, ("top1_norm_share",), roles=("mlp.up",))
    name = table.names[0, 0]
    w = src.read(name)  # Conv1D stores (in, out): neurons are columns
    norms = w.double().square().sum(0)
    k = int(np.ceil(0.01 * norms.numel()))
    assert table.values["top1_norm_share"][0, 0] == pytest.approx(float(norms.topk(k).values.sum() / norms.sum()))


def test_demo_model_tensor_and_table():
    src = open_source("demo")
    name = "encoder.layer.0.intermediate.dense.weight"
    stats = tensor_stats(src.read(name), name, max_side=256)
    x = src.read(name).double().numpy().ravel()
    assert stats.shape == (1536, 384) and stats.moments.n == x.size
    assert stats.moments.excess_kurtosis == pytest.approx(sstats.kurtosis(x), rel=1e-4)
    assert stats.fit_loglik["student-t"] >= stats.fit_loglik["gaussian"]
    assert 1.5 < stats.spectrum.alpha < 8 and 1 < stats.spectrum.stable_rank < 384
    assert stats.mean_field is not None and stats.to_dict()["spectrum"]["used_shape"] == [1536, 256]
    assert tensor_stats(src.read(name), name).spectrum.exact  # 384 columns: the whole matrix
    table = model_table(src, ("kurtosis", "alpha"), roles=("attn.q", "mlp.down"))
    assert table.layers == tuple(range(6)) and table.columns == ("attn.q", "mlp.down")
    assert np.isfinite(table.values["alpha"]).all()


def test_tensors_measured_in_parallel_give_the_rows_of_one_at_a_time_in_order(tmp_path):
    from core.stats.table import iter_tensor_metrics, select_tensors

    g = torch.Generator().manual_seed(3)
    tensors = {  # bf16 and float32, tall and wide, one over the Krylov threshold, a NaN in one
        f"model.layers.{i}.mlp.up_proj.weight": (torch.randn(520 + 8 * i, 600, generator=g) * 0.02).to(
            torch.bfloat16 if i % 2 else torch.float32
        )
        for i in range(5)
    }
    tensors["model.layers.2.mlp.up_proj.weight"][3, 4] = float("nan")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    source = open_source(tmp_path / "model.safetensors")
    metrics = ("std", "kurtosis", "alpha", "stable_rank", "sigma_max", "row_corr_excess", "top1_norm_ratio")
    threads = torch.get_num_threads()
    one = list(iter_tensor_metrics(source, metrics, workers=1))
    for workers in (2, 3):
        rows = list(iter_tensor_metrics(source, metrics, workers=workers))
        assert [r.name for r in rows] == [r.name for r in one] == [t.name for t, _ in select_tensors(source)]
        for a, b in zip(rows, one):
            assert a.nonfinite == b.nonfinite and a.estimated == b.estimated
            np.testing.assert_array_equal(np.array(list(a.values.values())), np.array(list(b.values.values())))
    # the workers run torch on one thread each; the process's thread counts come back afterwards
    assert torch.get_num_threads() == threads and _omp_mkl_threads() == threads
    by_name = {r.name: r for r in one}
    bad, bf16 = by_name["model.layers.2.mlp.up_proj.weight"], by_name["model.layers.1.mlp.up_proj.weight"]
    assert bad.nonfinite == 1 and np.isnan(bad.values["alpha"]) and not np.isnan(bf16.values["alpha"])
    assert "alpha" in bf16.estimated  # 528 × 600: over the exact side, a Krylov estimate


def _omp_mkl_threads() -> int:
    """torch's thread count in a thread started now: a worker's torch.set_num_threads(1) leaks into
    OpenMP's process-wide default, which new threads start with (and the caller's ops slow down)."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_table_stopped_early_stops_its_workers(tmp_path):
    from core.stats.table import iter_tensor_metrics

    g = torch.Generator().manual_seed(4)
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(64, 80, generator=g) for i in range(8)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    stream = iter_tensor_metrics(open_source(tmp_path / "model.safetensors"), ("std",), workers=2)
    first = next(stream)
    stream.close()
    assert _omp_mkl_threads() == torch.get_num_threads()
    assert first.name == "model.layers.0.mlp.up_proj.weight"
    assert not [t for t in threading.enumerate() if t.name.startswith(("graft-stats", "graft-stats-read"))]


def test_views_compute_their_cached_values_at_the_same_time():
    """The table's workers each measure their own TensorView: the views' cached values must not share
    a lock (functools.cached_property on Python 3.11 holds one per class, so the workers took turns).
    Two instances wait for each other inside the computation: a shared lock would time the barrier out."""
    from core.stats.metrics import TensorView, cached_property

    assert isinstance(TensorView.__dict__["spectrum"], cached_property)
    barrier = threading.Barrier(2, timeout=10)

    class View:
        calls = 0

        @cached_property
        def value(self):
            View.calls += 1
            barrier.wait()  # both computations inside at once
            return id(self)

    views, errors = [View(), View()], []

    def use(view):
        try:
            assert view.value == id(view) and view.value == id(view)  # the second read is the cached one
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(v,)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and View.calls == 2
