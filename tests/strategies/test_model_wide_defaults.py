"""Every value strategy can be the model-wide choice; mean_field shrinks without losing neurons;
sampling strategies keep the token tables."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_tiny

from app.cli import main
from app.cli.plan_text import format_plan
from core.errors import PlanError
from core.pipeline import plan_recipe
from core.recipe import Recipe
from core.sources import open_source
from core.strategies import base as strategies
from core.transfer import build_state_dict

SHRINK = {"hidden": 16, "heads": 2, "ffn": 48}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    build_tiny("bert", folder)  # vocab 100: 8×8 templates do not tile its 100×32 embedding
    return folder


def _t(plan, suffix):
    return next(t for t in plan.tensors if t.name.endswith(suffix))


def _plan(folder, method, target=SHRINK, values=None, **params):
    values = values or {"default": {"method": method, "params": params}}
    return plan_recipe(Recipe(source=str(folder), target=target, values=values))[0]


@pytest.mark.parametrize("method", [n for n in strategies.names("value") if n not in ("growth",)])
def test_every_value_strategy_fills_a_whole_shrunk_model(bert, method):
    plan = _plan(bert, method)
    state = build_state_dict(plan, open_source(str(bert)))
    assert set(state) == {t.name for t in plan.tensors}


def test_templates_fall_back_on_a_table_they_cannot_tile_and_say_so(bert):
    plan = _plan(bert, "templates")
    embed = _t(plan, "embeddings.word_embeddings.weight")
    assert (embed.strategy, embed.fallback_from) == ("select", "templates")
    assert "8×8 do not tile the target's 100×16" in embed.fallback_reason
    assert _t(plan, "encoder.layer.0.attention.self.query.weight").strategy == "templates"
    assert any(w.startswith("templates cannot fill") and "they use select instead" in w for w in plan.warnings)
    assert "← templates cannot: templates of 8×8 do not tile" in format_plan(plan)


def test_a_strategy_set_for_a_role_explicitly_is_refused_not_replaced(bert):
    values = {"default": {"method": "select"}, "embed": {"method": "mimetic"}}
    with pytest.raises(PlanError, match="mimetic only fills roles attn.q"):
        _plan(bert, None, values=values)


def test_a_growing_plan_falls_back_to_a_strategy_that_grows(bert):
    plan = _plan(bert, "mimetic", target={"hidden": 64, "heads": 8})
    assert _t(plan, "embeddings.word_embeddings.weight").strategy == "mean_field"
    assert _t(plan, "encoder.layer.0.attention.self.query.weight").strategy == "mimetic"


def test_the_cli_prints_the_fallback_as_a_warning(bert, capsys):
    assert main(["plan", str(bert), "--hidden", "16", "--heads", "2", "--strategy", "templates"]) == 0
    err = capsys.readouterr().err
    assert "graft: warning: templates cannot fill" in err


def test_mean_field_shrinks_without_replacement_by_default(bert):
    plan = _plan(bert, "mean_field", target={"hidden": 24, "ffn": 60})
    assert plan.index["method"] == "iid"
    for key, m in plan.dims.items():
        assert len(set(m.index)) == len(m.index), key  # no neuron drawn twice, none lost twice over
    iid = plan_recipe(
        Recipe(
            source=str(bert),
            target={"hidden": 24, "ffn": 60},
            values={"default": {"method": "mean_field"}},
            index={"method": "iid", "params": {"replacement": "always"}},
        )
    )[0]
    assert any(len(set(m.index)) < len(m.index) for m in iid.dims.values())


def test_a_shrunk_mean_field_matrix_keeps_its_rank(bert):
    source = open_source(str(bert))
    name = "bert.encoder.layer.0.intermediate.dense.weight"  # 64 × 32 → 60 × 24
    ranks = {}
    for replacement in ("auto", "always"):
        plan = plan_recipe(
            Recipe(
                source=str(bert),
                target={"hidden": 24, "ffn": 60},
                values={"default": {"method": "mean_field"}},
                index={"method": "iid", "params": {"replacement": replacement}},
            ),
            source,
        )[0]
        ranks[replacement] = int(torch.linalg.matrix_rank(build_state_dict(plan, source)[name].double()))
    assert ranks["auto"] == 24 and ranks["always"] < 24, ranks


def test_mean_field_still_grows_iid(bert):
    plan = _plan(bert, "mean_field", target={"hidden": 48})
    assert len(set(plan.dims["hidden"].index)) < 48


@pytest.mark.parametrize("method", ["distribution", "covariance"])
def test_sampling_strategies_select_the_token_tables_unless_asked(bert, method):
    source = open_source(str(bert))
    sampled = build_state_dict(_plan(bert, method), source)
    selected = build_state_dict(_plan(bert, "select"), source)
    for name in ("bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight"):
        assert torch.equal(sampled[name], selected[name]), name
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(sampled[query], selected[query])
    drawn = build_state_dict(_plan(bert, method, lookups="sample"), source)
    table = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(drawn[table], selected[table])


def test_templates_default_k_uses_every_template_of_smaller_tiles(bert):
    source = open_source(str(bert))
    small = {"t1": 4, "t2": 4}  # 16 templates exist: the default k=32 means all of them, not an error
    default = build_state_dict(_plan(bert, "templates", **small), source)
    every = build_state_dict(_plan(bert, "templates", k=16, **small), source)
    assert all(torch.equal(default[n], every[n]) for n in default)
    fewer = build_state_dict(_plan(bert, "templates", k=4, **small), source)
    assert not all(torch.equal(default[n], fewer[n]) for n in default)


def test_mean_field_auto_rescale_is_none_for_a_shrinking_transformer_only(bert):
    from core.strategies.mean_field import resolve_rescale

    source = open_source(str(bert))

    def state(target, rescale=None):
        params = {} if rescale is None else {"rescale": rescale}
        return build_state_dict(_plan(bert, "mean_field", target=target, **params), source)

    def same(a, b):
        return all(torch.equal(a[n], b[n]) for n in a)

    assert same(state(SHRINK), state(SHRINK, "none")) and not same(state(SHRINK), state(SHRINK, "mean_field"))
    grow = {"hidden": 48}
    assert same(state(grow), state(grow, "mean_field")) and not same(state(grow), state(grow, "none"))
    assert (
        resolve_rescale("auto", "mlp", 4.0) == "mean_field" and resolve_rescale("variance", "bert", 2.0) == "variance"
    )
