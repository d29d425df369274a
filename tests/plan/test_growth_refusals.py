"""Growth that cannot be exact is refused (one sentence) or listed in ``plan.warnings``, and the CLI shows both."""

from __future__ import annotations

import pytest
from tiny_models import build_tiny

from app.cli import main
from core.architectures import all_families
from core.errors import PlanError
from core.pipeline import plan_recipe
from core.recipe import Recipe


def growth(folder, target: dict, index: dict | None = None, **params):
    return plan_recipe(
        Recipe(
            source=str(folder), target=target, index=index, values={"default": {"method": "growth", "params": params}}
        )
    )[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("growth-sources")
    for family in ("bert", "llama", "gpt2", "vit"):
        build_tiny(family, root / family)
    return root


def test_every_family_says_where_its_blocks_normalise():
    placement = {name: spec.norm_placement for name, spec in all_families().items() if name != "mlp"}
    for moe in ("mixtral", "qwen2_moe"):  # tests/architectures/test_family_moe.py checks theirs
        placement.pop(moe, None)
    for own in ("gpt_neox", "opt", "convnext", "convnextv2"):  # tests/architectures/test_family_*.py check theirs
        placement.pop(own, None)
    assert placement == {"bert": "post", "gpt2": "pre", "llama": "pre", "vit": "pre", "phi3": "pre", "gemma": "pre"}


def test_post_ln_depth_growth_is_refused_unless_allowed(folders):
    with pytest.raises(PlanError, match=r"post-LN.*depth 2→3.*allow_inexact=true") as err:
        growth(folders / "bert", {"layers": 3})
    assert "\n" not in str(err.value) and str(err.value).count(";") == 1
    plan = growth(folders / "bert", {"layers": 3}, allow_inexact=True)
    assert len(plan.warnings) == 1 and "post-LN" in plan.warnings[0] and "allow_inexact" in plan.warnings[0]


@pytest.mark.parametrize("family", ["gpt2", "vit", "llama"])
def test_pre_ln_depth_growth_is_exact_and_silent(folders, family):
    assert growth(folders / family, {"layers": 4}).warnings == []


def test_rotary_head_dim_growth_is_refused_with_the_numbers(folders):
    with pytest.raises(PlanError, match=r"head_dim 8→16 changes the rotary frequency of 7 of the 8 rotary pairs"):
        growth(folders / "llama", {"head_dim": 16})
    assert "rotary" in growth(folders / "llama", {"head_dim": 16}, allow_inexact=True).warnings[0]
    # a head_dim grown without rotary embeddings is exact (the queries and keys are rescaled)
    assert growth(folders / "bert", {"hidden": 64}).warnings == []


def test_a_mixed_recipe_whose_attention_is_not_grown_is_not_refused(folders):
    values = {"default": {"method": "growth"}, "attn": {"method": "mimetic"}}
    plan = plan_recipe(Recipe(source=str(folders / "llama"), target={"head_dim": 16}, values=values))[0]
    assert not any("rotary" in w for w in plan.warnings)


@pytest.mark.parametrize(
    "target, index, needle",
    [
        ({"hidden": 48, "heads": 6}, None, "hidden 32→48 is not a multiple of 32"),
        ({"hidden": 64, "heads": 8}, {"method": "iid", "params": {}}, "iid maps of"),
        ({"hidden": 64, "heads": 8, "layers": 1}, None, "keeps 1 of the source's 2 layers"),
    ],
)
def test_inexact_choices_are_warned(folders, target, index, needle):
    warnings = growth(folders / "gpt2", target, index).warnings
    assert any(needle in w for w in warnings), warnings


def test_a_head_kept_tied_is_a_plan_warning(folders):
    values = {"default": {"method": "growth"}, "head": {"method": "mean_field"}}
    plan = plan_recipe(Recipe(source=str(folders / "gpt2"), target={"hidden": 64, "heads": 8}, values=values))[0]
    assert any("tie_word_embeddings" in w for w in plan.warnings)


@pytest.mark.parametrize(
    "family, target",
    [
        ("llama", {"hidden": 64, "heads": 8, "layers": 4}),
        ("gpt2", {"hidden": 64, "heads": 8}),
        ("bert", {"hidden": 64, "heads": 8}),
        ("vit", {"hidden": 64, "heads": 8, "layers": 4}),
    ],
)
def test_exact_growth_has_no_warnings(folders, family, target):
    assert growth(folders / family, target).warnings == []


def test_selection_plans_have_no_growth_warnings(folders):
    plan = plan_recipe(Recipe(source=str(folders / "bert"), target={"layers": 1, "hidden": 16, "heads": 2}))[0]
    assert plan.warnings == []


def test_the_cli_refuses_in_one_line_and_prints_warnings(folders, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["transfer", str(folders / "bert"), "--layers", "3", "--strategy", "growth", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("graft: error: bert blocks are post-LN") and not out.exists()
    assert (
        main(
            [
                "transfer",
                str(folders / "bert"),
                "--layers",
                "3",
                "--strategy",
                "growth",
                "--param",
                "allow_inexact=true",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "graft: warning: bert blocks are post-LN" in err and (out / "config.json").exists()
    assert main(["plan", str(folders / "gpt2"), "--hidden", "48", "--heads", "6", "--strategy", "growth"]) == 0
    assert "graft: warning: hidden 32→48 is not a multiple of 32" in capsys.readouterr().err


def test_warnings_survive_the_plan_round_trip(folders):
    from core.plan import Plan

    plan = growth(folders / "bert", {"layers": 3}, allow_inexact=True)
    assert Plan.from_dict(plan.to_dict()).warnings == plan.warnings
