"""The preview's fitted density is the one the tensor is drawn from: a Laplace draw is shown with a Laplace fit."""

from __future__ import annotations

import pytest

from core.plan import TargetSizes, make_plan
from core.preview import PREVIEW_FIT, compute_preview, preview_fit
from core.sources import open_source

WEIGHT = "model.layers.0.mlp.up_proj.weight"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"default": {"method": "distribution", "params": {"family": "laplace"}}}, "laplace"),
        ({"default": {"method": "distribution", "params": {"family": "gaussian"}}}, "gaussian"),
        ({"default": {"method": "distribution", "params": {"family": "quantile"}}}, None),
        ({"default": {"method": "select"}}, PREVIEW_FIT),
    ],
)
def test_the_drawn_fit_follows_the_distribution_strategys_family(tiny_model, values, expected):
    folder, _, _ = tiny_model("llama")
    source = open_source(str(folder))
    plan = make_plan(source, TargetSizes(ffn=16), values=values)
    tensor = plan.tensor(WEIGHT)
    assert preview_fit(tensor) == expected
    fits = compute_preview(plan, source, WEIGHT).histogram.fits
    if expected is None:  # quantile draws follow the source's histogram: no parametric curve claims otherwise
        assert fits == {}
    else:
        assert set(fits) == {f"source {expected}", f"target {expected}"}
