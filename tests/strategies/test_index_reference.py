"""The ``uniform`` index strategy and the ``uniform`` layer map against weight selection's code.

Xu et al.'s ``uniform_element_selection`` (repo OscarXZQ/weight-selection, weight_selection.py)
picks, per dimension of size N shrunk to Ñ: ``arange(Ñ) * (N // Ñ)`` when Ñ divides N, else
``torch.round(torch.linspace(0, N - 1, Ñ)).long()`` (float32 linspace, round half to even).
Two independent checks: their selection re-typed here and applied to a real tensor, and numpy's
float64 linspace + round, which must agree everywhere except at .5 ties and float32-near ties
(where the float rounding of either linspace decides, and the index may go to either neighbour).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.plan import make_layer_map
from core.strategies import base as strategies

#: (N, Ñ) pairs: all small ones, the shapes of common models, and the issue's 384 → 256.
PAIRS = sorted(
    {(n, m) for n in range(1, 65) for m in range(1, n + 1)}
    | {
        (n, m)
        for n in (96, 384, 768, 1024, 1536, 3072, 4096, 5632, 11008)
        for m in (1, 2, 3, 7, 64, 95, 100, 128, 192, 255, 256, 257, 300, 383, 512, 640, 1000, 2048, 3000)
        if m <= n
    }
)


def _draw(n: int, m: int, **params) -> list[int]:
    strategy = strategies.get("uniform")
    return strategy.draw(strategies.make_params("uniform", params), n, m, gen=strategies.generator(0, "t"))


def _their_selection(wt: torch.Tensor, s_shape: tuple[int, ...]) -> torch.Tensor:
    """Weight selection's per-dimension rule, as in their weight_selection.py."""
    ws = wt.clone()
    for dim in range(wt.dim()):
        if wt.shape[dim] % s_shape[dim] == 0:
            indices = torch.arange(s_shape[dim]) * (wt.shape[dim] // s_shape[dim])
        else:
            indices = torch.round(torch.linspace(0, wt.shape[dim] - 1, s_shape[dim])).long()
        ws = torch.index_select(ws, dim, indices)
    return ws


def test_uniform_selects_what_weight_selection_selects():
    for n, m in PAIRS:
        wt = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
        ours = wt[torch.tensor(_draw(n, m))]
        assert torch.equal(ours, _their_selection(wt, (m, 3))), (n, m)


def test_uniform_matches_numpy_linspace_round_off_ties():
    for n, m in PAIRS:
        ours = np.array(_draw(n, m))
        if n % m == 0:
            assert np.array_equal(ours, np.arange(m) * (n // m)), (n, m)
            continue
        ref = np.round(np.linspace(0, n - 1, m)).astype(np.int64)
        j = np.arange(m, dtype=np.int64)
        num, den = j * (n - 1), max(m - 1, 1)
        # j·(N−1)/(Ñ−1) within float32 resolution of some k + ½ (exact ties included): there the
        # reference's float32 linspace may land on the tie and round half to even, numpy not.
        tie = np.abs(2 * (num % den) - den) / (2 * den) <= n * 2.0**-22
        assert np.array_equal(ours[~tie], ref[~tie]), (n, m)
        assert np.all((ours[tie] == num[tie] // den) | (ours[tie] == num[tie] // den + 1)), (n, m)


def test_the_issue_case_384_to_256_and_the_old_rule_on_request():
    new, old = _draw(384, 256), _draw(384, 256, rule="floor")
    assert new == torch.round(torch.linspace(0, 383, 256)).long().tolist()
    assert old == [i * 384 // 256 for i in range(256)]
    assert sum(a != b for a, b in zip(new, old)) == 128
    assert new[-1] == 383 and old[-1] == 382  # the reference keeps both ends


@pytest.mark.parametrize("rule", ["linspace", "floor"])
def test_uniform_maps_are_valid_and_distinct(rule):
    for n, m in PAIRS:
        idx = _draw(n, m, rule=rule)
        assert len(idx) == m and len(set(idx)) == m and idx == sorted(idx) and 0 <= idx[0] and idx[-1] < n


def test_layer_map_uniform_is_the_same_linspace_rule():
    # The layer map keeps both end layers (no divisible branch), with the same rounding as the index rule.
    for n in range(1, 129):
        for m in range(1, n + 1):
            chosen = [link.source for link in make_layer_map(n, m, "uniform")]
            assert chosen == torch.round(torch.linspace(0, n - 1, m)).long().tolist(), (n, m)
