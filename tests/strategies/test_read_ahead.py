"""Reading the next tensor while the current one is computed: the same reads, the same bytes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import SourceError
from core.pipeline import export_recipe
from core.plan import TargetSizes, make_plan
from core.recipe import Recipe
from core.sources import open_source
from core.sources.prefetch import Prefetcher
from core.transfer import ReadAhead, fill_tensor, planned_reads

SHRINK = TargetSizes(layers=1, hidden=16, ffn=40, heads=2)
GROW = TargetSizes(layers=3, hidden=48, ffn=96, heads=6)
CASES = {
    "select": (SHRINK, {"default": {"method": "select"}}),
    "mean_field": (GROW, {"default": {"method": "mean_field", "params": {"noise": 0.01}}}),
    "growth": (GROW, {"default": {"method": "growth"}}),
    "covariance-shrink": (SHRINK, {"default": {"method": "covariance"}}),
    "covariance-grow": (GROW, {"default": {"method": "covariance", "params": {"samples": 16}}}),
}


class Recording:
    """A source that notes every ``read_gather`` request, from whichever thread makes it."""

    def __init__(self, source) -> None:
        self._source = source
        self.requests: list[tuple] = []
        self.threads: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def read_gather(self, name, rows, cols):
        self.requests.append(_key(name, rows, cols))
        self.threads.append(threading.current_thread().name)
        return self._source.read_gather(name, rows, cols)


def _key(name, rows, cols):
    return (name, None if rows is None else rows.tobytes(), None if cols is None else cols.tobytes())


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_declared_read_is_a_read_the_fill_makes(llama_path, case):
    sizes, values = CASES[case]
    source = open_source(llama_path)
    plan = make_plan(source, sizes, values=values, index={"method": "iid"}, seed=3)
    declared_tensors = 0
    for tensor in plan.tensors:
        recording = Recording(source)
        declared = [_key(*r) for r in planned_reads(plan, tensor, source)]
        fill_tensor(plan, tensor, recording)
        assert declared == recording.requests[: len(declared)], tensor.name
        declared_tensors += bool(declared)
    # the matrices are read through read_gather and say so beforehand (growth's new residual writers read nothing)
    matrices = sum(len(t.shape) == 2 for t in plan.tensors)
    assert declared_tensors >= matrices - (8 if case == "growth" else 0) > 0


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("method", ["covariance", "select"])
def test_an_export_read_ahead_is_byte_identical_to_one_read_in_turn(llama_path, tmp_path, monkeypatch, method):
    recipe = Recipe(
        source=str(llama_path), target={"hidden": 16, "ffn": 40, "heads": 2}, values={"default": {"method": method}}
    )
    monkeypatch.setenv("GRAFT_PREFETCH", "0")
    in_turn = _files(export_recipe(recipe, tmp_path / "in-turn"))
    monkeypatch.setenv("GRAFT_PREFETCH", "1")
    ahead = _files(export_recipe(recipe, tmp_path / "ahead"))
    assert in_turn.keys() == ahead.keys() and "graft_recipe.json" in ahead
    assert in_turn == ahead  # weights and the recipe's digest of the bytes read


def test_the_next_tensors_reads_happen_in_the_background(llama_path):
    source = Recording(open_source(llama_path))
    plan = make_plan(source, SHRINK, values={"default": {"method": "covariance"}}, seed=1)
    reader = ReadAhead(plan, source)
    try:
        for tensor in plan.tensors:
            reader.fill(tensor)
    finally:
        reader.close()
    background = sum(name.startswith("graft-prefetch") for name in source.threads)
    # every tensor but the first is read ahead; nothing is read twice
    assert background == len(source.requests) - 1 > 0
    assert len(set(source.requests)) == len(source.requests)


def test_a_read_ahead_is_handed_over_once_and_an_unasked_one_is_dropped(llama_path):
    recording = Recording(open_source(llama_path))
    name = "model.layers.0.mlp.up_proj.weight"
    rows, cols = np.array([5, 1, 7]), np.array([0, 3])
    ahead = Prefetcher(recording)
    try:
        ahead.schedule("t1", [(name, rows, cols), (name, rows[:1], None)])
        got = ahead.read_gather(name, rows, cols)
        assert torch.equal(got, open_source(llama_path).read_gather(name, rows, cols))
        ahead.retire("t1")  # the second was never asked for
        assert ahead.pending == 0
        ahead.read_gather(name, rows, cols)  # asked again: read again, in this thread
        assert recording.threads[-1] == threading.current_thread().name
        assert recording.requests.count(_key(name, rows, cols)) == 2
    finally:
        ahead.close()
    ahead.schedule("t2", [(name, rows, cols)])  # after close: nothing starts
    assert ahead.pending == 0


def test_a_failed_read_ahead_raises_where_the_strategy_asks(llama_path, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(llama_path, broken)
    source = open_source(broken)
    last = max(source.tensors, key=lambda name: source.tensors[name].offsets[0])
    weights = broken / "model.safetensors"
    with open(weights, "r+b") as fh:  # cut short after it was opened (a file being replaced, say)
        fh.truncate(source.tensors[last].offsets[0] + 8)
    with pytest.raises(SourceError) as direct:
        source.read_gather(last, None, None)
    ahead = Prefetcher(source)
    try:
        ahead.schedule("t", [(last, None, None)])
        with pytest.raises(SourceError) as later:
            ahead.read_gather(last, None, None)
    finally:
        ahead.close()
    assert str(later.value) == str(direct.value)
