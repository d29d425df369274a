"""ConvNeXt (and V2): stages of their own widths and depths, sized with ``--set`` list fields.

The tiny models (tests/tiny_models.py) have widths [8, 16, 24, 32] and depths [2, 1, 3, 1] on
32×32 images. Every parameter is perturbed, layer scales, norms and biases included, so an
identity transfer that drops or misplaces one differs.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny_models import build_tiny, model_output
from torch.testing import assert_close

from app.cli import main
from core.architectures import FAMILIES
from core.errors import PlanError
from core.pipeline import export_recipe, plan_recipe, validate_recipe_steps
from core.recipe import Recipe
from core.training import ValidationConfig
from core.transfer import build_state_dict

GROWTH = {"default": {"method": "growth", "params": {}}}
SMALL = {"hidden_sizes": [4, 8, 16, 16], "depths": [1, 1, 2, 1]}
KINDS = ("convnext", "convnextv2")


def load(folder):
    model, info = transformers.AutoModelForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.mark.parametrize("family", KINDS)
def test_identity_transfer_reproduces_the_source_exactly(family, tmp_path):
    model, _ = build_tiny(family, tmp_path / "src")
    out = export_recipe(Recipe(source=str(tmp_path / "src")), tmp_path / "out")
    assert_close(model_output(load(out), family), model_output(model, family), rtol=0, atol=0)


@pytest.mark.parametrize("family", KINDS)
def test_a_shrink_of_widths_and_depths_through_the_cli_loads_and_runs(family, tmp_path, capsys):
    build_tiny(family, tmp_path / "src")
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["transfer", str(tmp_path / "src"), *sets, "--out", str(tmp_path / "out")]) == 0
    model = load(tmp_path / "out")
    assert model.config.hidden_sizes == SMALL["hidden_sizes"] and model.config.depths == SMALL["depths"]
    assert model.base_model.encoder.stages[2].layers[1].pwconv1.weight.shape == (64, 16)
    assert torch.isfinite(model_output(model, family)).all()


def test_select_keeps_each_stages_channels_and_blocks(tmp_path):
    """uniform per stage: stage 2 keeps blocks 0 and 2 of 3; every tensor is the source's kept entries."""
    build_tiny("convnext", tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), config=SMALL, index={"method": "random"}, layers="uniform", seed=3)
    plan, source = plan_recipe(recipe)
    sd = build_state_dict(plan, source)
    assert [(link.target, link.source) for link in plan.layer_map] == [(0, 0), (1, 2), (2, 3), (3, 5), (4, 6)]
    h1, h2 = plan.dims["hidden.1"].index, plan.dims["hidden.2"].index
    assert h2 != list(range(16)) and len(set(h2)) == 16  # a real choice, without repeats
    ffn = plan.dims["ffn.2@3"].index
    # Target stage 2 block 1 is source stage 2 block 2 (flat block 5).
    src, tgt = "convnext.encoder.stages.2.layers.2", "convnext.encoder.stages.2.layers.1"
    assert_close(sd[f"{tgt}.dwconv.weight"], source.read(f"{src}.dwconv.weight")[h2], rtol=0, atol=0)
    assert_close(sd[f"{tgt}.layer_scale_parameter"], source.read(f"{src}.layer_scale_parameter")[h2], rtol=0, atol=0)
    assert_close(sd[f"{tgt}.pwconv1.weight"], source.read(f"{src}.pwconv1.weight")[ffn][:, h2], rtol=0, atol=0)
    assert_close(sd[f"{tgt}.pwconv2.weight"], source.read(f"{src}.pwconv2.weight")[h2][:, ffn], rtol=0, atol=0)
    down = "convnext.encoder.stages.2.downsampling_layer"
    assert_close(sd[f"{down}.0.weight"], source.read(f"{down}.0.weight")[h1], rtol=0, atol=0)  # reads stage 1's
    assert_close(sd[f"{down}.1.weight"], source.read(f"{down}.1.weight")[h2][:, h1], rtol=0, atol=0)
    h3 = plan.dims["hidden.3"].index
    assert_close(sd["classifier.weight"], source.read("classifier.weight")[:, h3], rtol=0, atol=0)
    assert_close(sd["convnext.layernorm.bias"], source.read("convnext.layernorm.bias")[h3], rtol=0, atol=0)
    h0 = plan.dims["hidden.0"].index
    stem = "convnext.embeddings.patch_embeddings.weight"
    assert_close(sd[stem], source.read(stem)[h0], rtol=0, atol=0)


@pytest.mark.parametrize("family", KINDS)
def test_growth_in_depth_and_k_fold_width_keeps_the_function(family, tmp_path):
    """Blocks inserted within stages (zero pwconv2) and every width doubled (cyclic clones) are exact."""
    assert FAMILIES.get(family).norm_placement == "pre"  # blocks are x + f(LN(dwconv(x)))
    model, _ = build_tiny(family, tmp_path / "src")
    config = {"hidden_sizes": [16, 32, 48, 64], "depths": [3, 2, 4, 2]}
    recipe = Recipe(source=str(tmp_path / "src"), config=config, values=GROWTH)
    plan, _ = plan_recipe(recipe)
    assert sum(link.new for link in plan.layer_map) == 4 and not plan.warnings
    grown = load(export_recipe(recipe, tmp_path / "out"))
    assert_close(model_output(grown, family), model_output(model, family), rtol=0, atol=1e-5)


def test_growth_to_a_width_that_is_no_multiple_warns(tmp_path):
    build_tiny("convnext", tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), config={"hidden_sizes": [12, 16, 24, 32]}, values=GROWTH)
    plan, _ = plan_recipe(recipe)
    assert any("hidden.0 8→12 is not a multiple of 8" in w for w in plan.warnings)


def test_covariance_draws_depthwise_filters_with_the_sources_tap_covariance(tmp_path):
    """Wide source (512 filters of 7×7 taps) → 2048 target filters: their 49×49 tap covariance is the source's.

    The tolerance (0.15 of the covariance's norm) is far below what a draw that ignores the
    covariance gives (the diagonal alone is off by the taps' correlations, checked below).
    """
    config = transformers.ConvNextConfig(hidden_sizes=[512, 16, 8, 8], depths=[1, 1, 1, 1], image_size=32)
    torch.manual_seed(0)
    model = transformers.ConvNextModel(config)
    # Correlated taps: a smooth random field per filter (a blurred noise image), so Σ is far from diagonal.
    noise = torch.randn(512, 1, 13, 13)
    smooth = torch.nn.functional.avg_pool2d(noise, 7, stride=1)  # (512, 1, 7, 7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        model.encoder.stages[0].layers[0].dwconv.weight.copy_(smooth + 0.1)
    model.save_pretrained(tmp_path / "src")
    recipe = Recipe(
        source=str(tmp_path / "src"),
        config={"hidden_sizes": [2048, 16, 8, 8]},
        values={"default": {"method": "covariance", "params": {"shrinkage": 0.0}}},
    )
    plan, source = plan_recipe(recipe)
    name = "encoder.stages.0.layers.0.dwconv.weight"
    out = build_state_dict(plan, source)[name]
    src = source.read(name)
    assert out.shape == (2048, 1, 7, 7)

    def cov(w):
        taps = w.reshape(len(w), 49).double()
        return torch.cov(taps.T), taps.mean(0)

    (c_src, m_src), (c_out, m_out) = cov(src), cov(out)
    scale = c_src.norm()
    assert (c_out - c_src).norm() / scale < 0.15
    assert (m_out - m_src).norm() / m_src.norm() < 0.1
    assert (torch.diag(torch.diagonal(c_src)) - c_src).norm() / scale > 0.5  # a diagonal draw would fail
    assert not any(torch.equal(out[i], src[j]) for i in range(8) for j in range(512))  # drawn, not copied


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hidden_sizes": [8, 16, 24]}, "hidden_sizes must be a list of 4 positive whole numbers"),
        ({"depths": [1, 1.5, 2, 1]}, "depths must be a list of 4 positive whole numbers"),
        ({"depths": [1, 0, 2, 1]}, "depths must be a list of 4 positive whole numbers"),
        ({"num_stages": 3}, "num_stages stays the source's 4"),
    ],
)
def test_wrong_stage_lists_are_refused_with_one_sentence(config, message, tmp_path):
    build_tiny("convnext", tmp_path / "src")
    with pytest.raises(PlanError, match=message):
        plan_recipe(Recipe(source=str(tmp_path / "src"), config=config))


def test_the_cli_refuses_a_size_flag_and_a_bad_list_with_exit_2(tmp_path, capsys):
    build_tiny("convnext", tmp_path / "src")
    assert main(["transfer", str(tmp_path / "src"), "--hidden", "8", "--dry-run"]) == 2
    assert "--set hidden_sizes=[…]" in capsys.readouterr().err
    assert main(["transfer", str(tmp_path / "src"), "--set", "hidden_sizes=[4,8]", "--dry-run"]) == 2
    assert "one per stage" in capsys.readouterr().err
    assert main(["transfer", str(tmp_path / "src"), "--set", "depths=[1,1,2,1]", "--dry-run"]) == 0
    assert "depth.2 3→2" in capsys.readouterr().out


def test_a_validation_run_trains_a_tiny_convnext(tmp_path):
    """The image task builds ConvNextForImageClassification through the spec; both arms' eval loss falls."""
    build_tiny("convnext", tmp_path / "src")
    recipe = Recipe(source=str(tmp_path / "src"), config={"depths": [1, 1, 1, 1]})
    options = ValidationConfig(
        steps=20, batch_size=16, lr=3e-3, warmup=0, schedule="constant", eval_every=10, eval_batches=2, device="cpu"
    )
    evals: dict[str, list[float]] = {}
    for m in validate_recipe_steps(recipe, config=options):
        if m.eval_loss is not None:
            evals.setdefault(m.arm, []).append(m.eval_loss)
    assert len(evals) == 2 and all(len(v) == 3 for v in evals.values()), evals
    assert all(v[-1] < v[0] for v in evals.values()), evals
