"""Data-aware selection: activation scores (core.calibration), by_activation and the by_influence layer map."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from core.calibration import activation_profile, activation_score_fn, lazy_profile
from core.calibration_pass import Reader, combine_readers, greedy_order, run_pass
from core.errors import Cancelled, PlanError, RecipeError, StrategyError
from core.plan import LAYER_MAPS, TargetSizes, make_plan
from core.progress import CancelToken, no_progress
from core.recipe import Recipe
from core.sources import demo_model_path, open_source
from core.strategies import get, make_params

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
VOCAB = 30522  # the demo tokenizer's: the language-model calibration data is tokenised with it
DEAD, HUGE = 3, 5  # the ffn / h0 neurons made dead and very active
FAST = {"samples": 8, "seq_len": 32}


def _save_hf(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(demo_model_path() / name, folder / name)
    return folder


def _llama(folder, *, final_norm: float = 1.0):
    """3-layer GQA llama (4 heads, 2 kv groups): a dead and a huge ffn neuron and a loud kv group 1 in
    layer 0, and layer 1 an identity (zero output projections: x_out = x_in)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=64,
        vocab_size=VOCAB,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        first, second = model.model.layers[0], model.model.layers[1]
        first.mlp.up_proj.weight[DEAD] = 0
        first.mlp.up_proj.weight[HUGE] *= 100
        first.self_attn.v_proj.weight[8:16] *= 10  # kv group 1 = query heads 2 and 3
        second.self_attn.o_proj.weight.zero_()
        second.mlp.down_proj.weight.zero_()
        model.model.norm.weight.mul_(final_norm)
    return _save_hf(model, folder)


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory):
    return _llama(tmp_path_factory.mktemp("llama-gqa"))


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=VOCAB,
            max_position_embeddings=64,
        )
    )
    with torch.no_grad():
        dense = model.bert.encoder.layer[0].intermediate.dense
        dense.weight[DEAD], dense.bias[DEAD] = 0, 0  # GELU(0) = 0
        dense.weight[HUGE] *= 100
    return _save_hf(model, tmp_path_factory.mktemp("bert"))


def _mlp_file(folder, width: int = 16):
    """A digits MLP 64→width→width→10 with h0 neuron DEAD silent and HUGE very active."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    )
    with torch.no_grad():
        model[0].weight.abs_()  # every other h0 neuron fires on the (non-negative) digits
        model[0].weight[DEAD], model[0].bias[DEAD] = 0, -1.0
        model[0].weight[HUGE] = model[0].weight[HUGE].abs() * 50
    path = folder / "mlp.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"format": "pt", "graft.mlp.activation": "relu"},
    )
    return path


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory):
    return _mlp_file(tmp_path_factory.mktemp("mlp"))


def _plan(source, sizes, params=None, layers="first_n", **kw):
    profile = lazy_profile(source, **{**FAST, **(params or {})})
    return make_plan(
        source,
        sizes,
        index={"method": "by_activation", "params": dict(params or {})},
        layers=layers,
        score_fn=activation_score_fn(profile),
        layer_scores=lambda: profile().block_influence,
        **kw,
    )


class _Forwards:
    """Counts module forward calls in the whole process (torch's global hook)."""

    def __enter__(self):
        self.count = 0
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def _hook(self, module, args, output):
        self.count += 1

    def __exit__(self, *exc):
        self._handle.remove()


# -- the strategy ------------------------------------------------------------------------------
def test_top_scores_in_source_order_ties_to_lower_index():
    strategy, params = get("by_activation"), make_params("by_activation")
    assert strategy.draw(params, 6, 3, gen=None, scores=torch.tensor([0.1, 5.0, 0.2, 3.0, 0.2, 4.0])) == [1, 3, 5]
    assert strategy.draw(params, 5, 2, gen=None, scores=torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0])) == [1, 2]
    assert strategy.draw(params, 4, 2, gen=None, scores=torch.tensor([float("nan"), 1.0, 0.0, 1.0])) == [1, 3]
    with pytest.raises(StrategyError, match="activation scores"):
        strategy.draw(params, 4, 2, gen=None, scores=None)
    assert not strategy.can_grow and strategy.needs_scores
    with pytest.raises(StrategyError, match="samples"):
        make_params("by_activation", {"samples": 0})


def test_combine_readers_gives_every_input_the_same_weight():
    small, loud = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([300.0, 200.0, 100.0])
    torch.testing.assert_close(combine_readers([small, loud]), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(combine_readers([small]), torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64))


def test_readers_of_one_input_form_one_group():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (torch.nn.Linear(4, 4) for _ in range(4))

        def forward(self, x):
            return self.o(self.q(x) + self.k(x) + self.v(x))

    block = Block()
    readers = [Reader(n, 0, ("hidden",), (4,), getattr(block, n)) for n in "qkvo"]
    run_pass(
        block, [{"inputs": torch.randn(3, 4)}] * 2, readers, 0, grams=False, progress=no_progress, cancel=CancelToken()
    )
    assert [r.group for r in readers] == [0, 0, 0, 1]
    assert readers[0].tokens == 6


def test_greedy_order_prefers_what_reconstructs_the_output_and_puts_silent_neurons_last():
    # contributions c_j (tokens × out): 0 and 1 cancel each other, 2 is the output's own direction, 3 is silent
    c = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]], [[0.0, 2.0]], [[0.0, 0.0]]]).reshape(4, -1)
    order = greedy_order(c @ c.T)
    assert order[0] == 2 and order[-1] == 3 and sorted(order) == [0, 1, 2, 3]


# -- scores on tiny models ---------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["magnitude", "reconstruction"])
def test_mlp_dead_neuron_never_kept_huge_always_kept(mlp_path, rule):
    source = open_source(mlp_path)
    for width in (2, 8, 15):
        kept = _plan(source, TargetSizes(hidden=width), {"rule": rule}).dims["h0"].index
        assert HUGE in kept and DEAD not in kept, (width, kept)
        assert kept == sorted(kept)


@pytest.mark.parametrize("rule", ["magnitude", "reconstruction"])
def test_transformer_dead_ffn_neuron_never_kept_huge_always_kept(llama_path, bert_path, rule):
    for path in (llama_path, bert_path):
        plan = _plan(open_source(path), TargetSizes(ffn=8), {"rule": rule})
        kept = plan.dims["ffn@0"].index
        assert HUGE in kept and DEAD not in kept, (path.name, kept)


def test_gqa_keeps_groups_whole_and_picks_the_loud_group(llama_path):
    source = open_source(llama_path)
    profile = activation_profile(source, **FAST)
    heads = profile.scores("heads", 0)
    torch.testing.assert_close(profile.scores("kv_heads", 0), heads.reshape(2, 2).sum(1))
    assert heads[2:].min() > heads[:2].max()  # kv group 1's values were scaled up
    plan = _plan(source, TargetSizes(heads=2, kv_heads=1))
    assert plan.dims["kv_heads@0"].index == [1]
    assert plan.dims["heads@0"].index == [2, 3]


def test_head_and_rotary_pair_draws_use_their_scores(llama_path):
    """Inside a kv group the best query head is kept; a rotary pair (i, i + d/2) scores s[i] + s[i + d/2]."""
    sizes = {"hidden": 32, "ffn": 64, "heads": 4, "kv_heads": 2, "head_dim": 8}
    given = {
        "heads": torch.tensor([0.1, 0.9, 0.8, 0.2]),
        "kv_heads": torch.tensor([1.0, 1.0]),
        "head_dim": torch.tensor([5.0, 0, 0, 0, 0, 0, 0, 5.0]),
    }

    def scores(dim, layer):
        return given.get(dim, torch.ones(sizes[dim]))

    plan = make_plan(
        open_source(llama_path), TargetSizes(heads=2, head_dim=4), index={"method": "by_activation"}, score_fn=scores
    )
    assert plan.dims["kv_heads@0"].index == [0, 1]
    assert plan.dims["heads@0"].index == [1, 2]
    assert plan.dims["head_dim"].index == [0, 3, 4, 7]


def test_hidden_scores_do_not_depend_on_one_readers_scale(tmp_path, llama_path):
    """The final norm (the head's input) scaled 1000×: with each input normalised, hidden's scores stay."""
    loud = _llama(tmp_path / "loud", final_norm=1000.0)
    quiet = activation_profile(open_source(llama_path), **FAST).scores("hidden")
    torch.testing.assert_close(
        activation_profile(open_source(loud), **FAST).scores("hidden"), quiet, rtol=1e-3, atol=1e-4
    )


def test_deterministic_and_cached_second_time(tmp_path):
    source = open_source(_mlp_file(tmp_path))
    with _Forwards() as first:
        a = activation_profile(source, samples=32)
    assert first.count > 0 and not a.cached
    with _Forwards() as second:
        b = activation_profile(open_source(source.files[0]), samples=32)
    assert second.count == 0 and b.cached
    for key in a.dims:
        torch.testing.assert_close(a.dims[key], b.dims[key])
    plans = [_plan(source, TargetSizes(hidden=4), {"samples": 32}) for _ in range(2)]
    assert [m.index for m in plans[0].dims.values()] == [m.index for m in plans[1].dims.values()]


def test_cancel_stops_the_pass_and_caches_nothing(tmp_path):
    source = open_source(_mlp_file(tmp_path))
    token, seen = CancelToken(), []

    def progress(fraction, message):
        seen.append(message)
        if fraction > 0:
            token.cancel()

    with pytest.raises(Cancelled):
        activation_profile(source, samples=64, batch_size=16, progress=progress, cancel=token)
    assert sum("batch" in m for m in seen) == 1
    assert not activation_profile(source, samples=64, batch_size=16).cached


def test_too_large_a_source_is_refused(monkeypatch, mlp_path):
    monkeypatch.setenv("GRAFT_SCORE_MAX_BYTES", "1000")
    with pytest.raises(PlanError, match="layer by layer"):
        activation_profile(open_source(mlp_path))


def test_growing_is_refused(mlp_path):
    with pytest.raises(PlanError, match="iid or cyclic"):
        _plan(open_source(mlp_path), TargetSizes(hidden=32), values={"default": {"method": "mean_field"}})


# -- layers ------------------------------------------------------------------------------------
def test_by_influence_drops_the_identity_layer(llama_path):
    from transformers import AutoModelForCausalLM

    source = open_source(llama_path)
    bi = activation_profile(source, **FAST).block_influence
    assert len(bi) == 3 and bi[1] < 1e-5 < min(bi[0], bi[2])
    plan = _plan(source, TargetSizes(layers=2), layers="by_influence")
    assert [link.source for link in plan.layer_map] == [0, 2]
    # the block hooks give ShortGPT's formula on hidden_states[l], hidden_states[l + 1] below the last layer
    model = AutoModelForCausalLM.from_pretrained(llama_path).eval()
    ids = torch.arange(1000, 1064).reshape(2, 32)
    hooked, _ = run_pass(model, [{"input_ids": ids}], [], 3, grams=False, progress=no_progress, cancel=CancelToken())
    with torch.no_grad():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
    for layer in (0, 1):
        cos = torch.nn.functional.cosine_similarity(states[layer], states[layer + 1], dim=-1)
        assert hooked[layer] == pytest.approx(1 - float(cos.mean()), abs=1e-5)


def test_layer_maps_in_recipes():
    assert "by_influence" in LAYER_MAPS
    assert Recipe.from_dict({"layers": "by_influence"}).layers == "by_influence"
    with pytest.raises(RecipeError, match="by_influence"):
        Recipe.from_dict({"layers": "best"})


def test_cli_transfer_demo_loads_with_transformers(tmp_path, capsys):
    from transformers import AutoModel

    from app.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "transfer",
            "demo",
            "--layers",
            "2",
            "--hidden",
            "256",
            "--heads",
            "8",
            "--ffn",
            "512",
            "--index",
            "by_activation",
            "--layer-map",
            "by_influence",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = AutoModel.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 256
    recipe = json.loads((out / "graft_recipe.json").read_text())
    assert recipe["layers"] == "by_influence" and recipe["index"]["method"] == "by_activation"
    from core.pipeline import plan_recipe

    bi = activation_profile(open_source("demo")).block_influence  # the cached profile the transfer used
    plan, _ = plan_recipe(Recipe.from_dict(recipe))
    assert [link.source for link in plan.layer_map] == sorted(sorted(range(6), key=lambda i: -bi[i])[:2])


@pytest.mark.parametrize("family, rule", [("mlp", "reconstruction"), ("llama", "magnitude")])
def test_the_auto_rule_is_each_benchmarks_winner(mlp_path, llama_path, family, rule):
    from core.pipeline import plan_recipe
    from core.strategies.index import activation_rule

    path = mlp_path if family == "mlp" else llama_path
    assert make_params("by_activation", {}).rule == "auto" and activation_rule("auto", family) == rule
    sizes = {"hidden": 8} if family == "mlp" else {"ffn": 8, "hidden": 16}

    def maps(params):
        recipe = Recipe(source=str(path), target=sizes, index={"method": "by_activation", "params": {**FAST, **params}})
        return {k: m.index for k, m in plan_recipe(recipe)[0].dims.items()}

    assert maps({}) == maps({"rule": rule})
