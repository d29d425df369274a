"""Issue 12 check: Graft's ``growth`` is function-preserving, and matches apple/ml-hypercloning bit for bit.

Part 1 measures max |source − grown| of the outputs (logits, or the last hidden state through the
hidden map) for the cases of the issue, each export loaded back with transformers: the bundled
all-MiniLM-L6-v2 widened 384→768 with its 12 heads kept (head_dim 32→64), pico GPT-2 at
``--hidden 128`` (head_dim 8→32 through the fused ``c_attn``), and the families' width and depth
growth; post-LN depth growth (BERT 6→8) is refused, and measured with ``allow_inexact``.

Part 2 runs HyperCloning's own code (a copy fetched into /work/.mirror by the ``fetch`` tool; the
part is skipped when it is absent) on the same pico Llama and Gemma sources as Graft, a 2-fold
clone of hidden, ffn, heads and kv heads, and compares every tensor: Llama must be bit-identical;
Gemma's embedding too (both divide by √2), its head differs only in form (HyperCloning keeps it tied
and scales the product at run time; Graft unties it), so the logits are compared. With noise, both
add ±ε pairs on the copies of a duplicated input (HyperCloning draws ε by SNR, Graft by relative
std), and the check shows both keep the function and have the same pair structure.

Usage: python benchmarks/check_growth_hypercloning.py [--skip-demo]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from core.errors import PlanError  # noqa: E402
from core.pipeline import export_recipe, plan_recipe  # noqa: E402
from core.recipe import Recipe  # noqa: E402
from core.transfer import build_state_dict  # noqa: E402

MIRROR = Path("/work/.mirror/apple+ml-hypercloning/repo")


def _inputs(vision: bool) -> dict:
    g = torch.Generator().manual_seed(1)
    if vision:
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}
    return {"input_ids": torch.randint(0, 100, (2, 12), generator=g)}


def _out(model, vision: bool = False):
    with torch.no_grad():
        o = model(**_inputs(vision))
    return o.logits if getattr(o, "logits", None) is not None else o.last_hidden_state


def grown_difference(
    source: str, model, auto: str, target: dict, work: Path, params: dict | None = None, vision: bool = False
) -> float:
    import transformers

    recipe = Recipe(source=source, target=target, values={"default": {"method": "growth", "params": params or {}}})
    plan, src = plan_recipe(recipe)
    out = export_recipe(recipe, work, source=src, plan=plan)
    grown = getattr(transformers, auto).from_pretrained(out).eval()
    a, b = _out(grown, vision), _out(model, vision)
    if a.shape != b.shape:
        b = b[..., plan.dims["hidden"].index]
    return (a - b).abs().max().item()


def part_one(work: Path, skip_demo: bool) -> None:
    import transformers
    from tiny_models import build_tiny

    from core.sources import demo_model_path

    print("part 1: max |source − grown| of the outputs (float32)")
    rows = []
    if not skip_demo:
        demo = str(demo_model_path())
        model = transformers.AutoModel.from_pretrained(demo).eval()
        rows.append(
            (
                "MiniLM --hidden 768 --ffn 3072 (head_dim 32→64)",
                grown_difference("demo", model, "AutoModel", {"hidden": 768, "ffn": 3072}, work / "d1"),
            )
        )
        rows.append(
            (
                "MiniLM --hidden 768 --heads 24 --ffn 3072",
                grown_difference("demo", model, "AutoModel", {"hidden": 768, "heads": 24, "ffn": 3072}, work / "d2"),
            )
        )
        try:
            plan_recipe(Recipe(source="demo", target={"layers": 8}, values={"default": {"method": "growth"}}))
            rows.append(("MiniLM --layers 8: NOT refused", float("nan")))
        except PlanError as exc:
            print(f"  MiniLM --layers 8 refused: {exc}")
        rows.append(
            (
                "MiniLM --layers 8 with allow_inexact (post-LN)",
                grown_difference("demo", model, "AutoModel", {"layers": 8}, work / "d3", {"allow_inexact": True}),
            )
        )
    for family, target in [
        ("gpt2", {"hidden": 128}),
        ("gpt2", {"hidden": 64, "heads": 8, "layers": 4}),
        ("bert", {"hidden": 64}),
        ("bert", {"hidden": 64, "heads": 8}),
        ("llama", {"hidden": 64, "heads": 8, "layers": 4}),
        ("vit", {"hidden": 64, "layers": 4}),
        ("qwen2", {"hidden": 64, "heads": 8}),
    ]:
        folder = work / f"src-{family}"
        model, auto = build_tiny(family, folder)
        rows.append(
            (
                f"pico {family} {target}",
                grown_difference(
                    str(folder), model, auto, target, work / f"o-{family}-{len(rows)}", vision=family == "vit"
                ),
            )
        )
    for name, diff in rows:
        print(f"  {name:<58} {diff:.3g}")


# --------------------------------------------------------------------------------------------
# part 2: HyperCloning's code on the same sources
# --------------------------------------------------------------------------------------------
def load_hypercloning(into: Path):
    """Import HyperCloning's llama/gemma modules from the fetched mirror (its __init__ needs OLMo: skipped)."""
    archive = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "archive", "HEAD", "hypercloning"], check=True, capture_output=True
    ).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(into, filter="data")
    package = types.ModuleType("hypercloning")
    package.__path__ = [str(into / "hypercloning")]
    sys.modules["hypercloning"] = package
    for name in ("common", "gemma_cloning", "llama_cloning"):
        spec = importlib.util.spec_from_file_location(f"hypercloning.{name}", into / "hypercloning" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    # HyperCloning reads attn.num_heads / num_key_value_heads, which transformers 5 keeps in the config only.
    from transformers.models.gemma.modeling_gemma import GemmaAttention
    from transformers.models.llama.modeling_llama import LlamaAttention

    for cls in (LlamaAttention, GemmaAttention):
        if not hasattr(cls, "num_heads"):
            cls.num_heads = property(lambda self: self.config.num_attention_heads)
            cls.num_key_value_heads = property(lambda self: self.config.num_key_value_heads)
    return sys.modules["hypercloning.llama_cloning"].clone_llama, sys.modules["hypercloning.gemma_cloning"].clone_gemma


def pico(kind: str, folder: Path):
    from transformers import GemmaConfig, GemmaForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=64,
        vocab_size=100,
    )
    model = (
        LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
        if kind == "llama"
        else GemmaForCausalLM(GemmaConfig(**common))
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return model


def part_two(work: Path) -> None:
    import transformers

    if not MIRROR.exists():
        print(f"part 2 skipped: no HyperCloning copy at {MIRROR} (fetch github:apple/ml-hypercloning)")
        return
    clone_llama, clone_gemma = load_hypercloning(work / "hc")
    target = {"hidden": 64, "ffn": 128, "heads": 8, "kv_heads": 4}
    print("part 2: Graft growth vs HyperCloning, 2-fold hidden / ffn / heads / kv heads")
    for kind, clone in (("llama", clone_llama), ("gemma", clone_gemma)):
        source = pico(kind, work / f"hc-{kind}")
        theirs = clone(source, embedding_dim_multiplier=2, up_project_multiplier=2).eval()
        plan, src = plan_recipe(
            Recipe(source=str(work / f"hc-{kind}"), target=target, values={"default": {"method": "growth"}})
        )
        ours = build_state_dict(plan, src)
        reference = theirs.state_dict()
        same = [n for n in ours if n in reference and torch.equal(ours[n], reference[n].to(ours[n].dtype))]
        differ = [n for n in ours if n in reference and n not in same]
        print(f"  {kind}: {len(same)} of {len(ours)} tensors bit-identical; differ: {differ or 'none'}")
        for n in differ:
            why = (
                (
                    " (HyperCloning keeps it tied to the √2-divided embedding and scales by 1/√2 at run time; Graft "
                    "unties it as the embedding / 2: the same product)"
                )
                if (kind, n) == ("gemma", "lm_head.weight")
                else ""
            )
            print(f"    {n}: max |Δ| {(ours[n] - reference[n]).abs().max().item():.3g}{why}")
        export = export_recipe(
            Recipe(source=str(work / f"hc-{kind}"), target=target, values={"default": {"method": "growth"}}),
            work / f"hc-out-{kind}",
        )
        grown = transformers.AutoModelForCausalLM.from_pretrained(export).eval()
        print(
            f"    max |logits − source|: Graft {(_out(grown) - _out(source)).abs().max().item():.3g}, "
            f"HyperCloning {(_out(theirs) - _out(source)).abs().max().item():.3g}"
        )
    # noise: both add ±ε on the two copies of each input neuron, keep the function
    source = pico("llama", work / "hc-llama")
    torch.manual_seed(0)
    theirs = clone_llama(source, embedding_dim_multiplier=2, up_project_multiplier=2, snr_db=20).eval()
    clean = clone_llama(source, embedding_dim_multiplier=2, up_project_multiplier=2).state_dict()
    recipe = Recipe(
        source=str(work / "hc-llama"), target=target, values={"default": {"method": "growth", "params": {"noise": 0.1}}}
    )
    noisy = transformers.AutoModelForCausalLM.from_pretrained(export_recipe(recipe, work / "hc-noise")).eval()
    name = "model.layers.0.mlp.up_proj.weight"
    for who, weights in (("HyperCloning", theirs.state_dict()), ("Graft", noisy.state_dict())):
        delta = weights[name] - clean[name]
        paired = torch.allclose(delta[:, :32], -delta[:, 32:], atol=1e-6)
        model = theirs if who == "HyperCloning" else noisy
        print(
            f"  noise, {who}: {name} Δ pairs cancel: {paired}; copied rows differ: "
            f"{not torch.equal(weights[name][:64], weights[name][64:])}; "
            f"max |logits − source| {(_out(model) - _out(source)).abs().max().item():.3g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true", help="skip the MiniLM cases (a 90M-parameter export)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        part_one(Path(tmp), args.skip_demo)
        part_two(Path(tmp))


if __name__ == "__main__":
    main()
