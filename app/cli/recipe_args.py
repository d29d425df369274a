"""Command-line flags that build a Recipe — shared by ``plan``, ``transfer`` and ``validate``."""

from __future__ import annotations

import argparse
import json

from core.dtypes import EXPORT_DTYPES
from core.errors import RecipeError
from core.plan import LAYER_MAPS, TargetSizes
from core.provenance import CHANGED_FLAG, NONFINITE_FLAG
from core.recipe import Recipe

#: the target sizes' flags (``--kv-heads`` sets ``args.kv_heads``), one per ``TargetSizes`` field.
SIZE_FLAGS = tuple(name for name, _, _ in TargetSizes.size_fields())


def add_size_args(parser: argparse.ArgumentParser) -> None:
    """One ``--NAME N`` flag per target size, with its help (``TargetSizes.size_fields``)."""
    g = parser.add_argument_group("target sizes (omitted = keep the source's)")
    for name, _, help_text in TargetSizes.size_fields():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, metavar="N", help=help_text)


def add_recipe_args(parser: argparse.ArgumentParser, *, source_required: bool = True) -> None:
    parser.add_argument(
        "source",
        nargs="?" if not source_required else None,
        help="'demo', a .safetensors file, a model folder, or a hub repo id (owner/name[@rev])",
    )
    parser.add_argument("--recipe", help="start from this recipe file; flags override its fields")
    add_size_args(parser)
    parser.add_argument(
        "--target-family",
        dest="target_family",
        metavar="FAMILY",
        help="build a model of another family (e.g. llama from a bert source): roles map by name, sizes not "
        "given follow the source's, the target keeps the source's tokenizer",
    )
    parser.add_argument_group("target config").add_argument(
        "--set",
        dest="set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a field of the target's config.json, its value JSON (repeatable), e.g. --set rope_theta=20000.0 "
        "--set hidden_size=256 (a size's field acts like its flag, here --hidden 256); quote strings: "
        "--set 'hidden_act=\"gelu\"'",
    )
    s = parser.add_argument_group("strategy")
    s.add_argument("--strategy", help="value strategy for every role (e.g. select, mean_field, growth, distribution)")
    s.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter of --strategy (repeatable)"
    )
    s.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE=NAME[:k=v,…]",
        help="a strategy for one role prefix, e.g. attn=mimetic or mlp=distribution:family=student_t",
    )
    s.add_argument(
        "--index",
        help="index strategy for the dimension maps (first_n, uniform, random, iid, cyclic, by_norm, "
        "by_activation: the largest activations on calibration data)",
    )
    s.add_argument("--index-param", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument(
        "--layer-map",
        dest="layer_map",
        metavar="|".join(LAYER_MAPS) + "|0,2,4",
        help="which source layers the target keeps (by_influence: the least redundant on calibration "
        "data, by Block Influence)",
    )
    s.add_argument("--seed", type=int)
    o = parser.add_argument_group("output")
    o.add_argument("--dtype", choices=EXPORT_DTYPES, help="export dtype (default: the source's)")
    o.add_argument("--device", help="cpu, cuda, cuda:1 … (where tensors are computed)")
    o.add_argument("--max-shard-size", help="e.g. 500MB, 5GB (decimal, like the hub)")


def add_trust_args(parser: argparse.ArgumentParser) -> None:
    """The two ways to go on with a source Graft would otherwise refuse (core.provenance)."""
    g = parser.add_argument_group("source checks")
    g.add_argument(
        CHANGED_FLAG,
        dest="allow_changed_source",
        action="store_true",
        help="go on when the source's bytes differ from the SHA-256 hashes the recipe recorded",
    )
    g.add_argument(
        NONFINITE_FLAG,
        dest="allow_nonfinite",
        action="store_true",
        help="transfer a source whose weights hold NaN or Inf values",
    )


def trust_kwargs(args: argparse.Namespace) -> dict:
    return {"allow_changed_source": args.allow_changed_source, "allow_nonfinite": args.allow_nonfinite}


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"{what} {item!r} must look like KEY=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=JSON`` items → ``{key: value}``; a value that is not JSON is refused."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set {item!r} must look like KEY=JSON, e.g. --set rope_theta=20000.0")
        try:
            out[key] = json.loads(text)
        except ValueError:
            raise RecipeError(
                f"--set {key}: {text!r} is not JSON; write numbers, true/false, null, [lists] or quoted "
                f"strings ('{key}=\"{text}\"')"
            ) from None
    return out


def parse_role(item: str) -> tuple[str, dict]:
    role, sep, rest = item.partition("=")
    if not sep or not role or not rest:
        raise RecipeError(f"--role {item!r} must look like ROLE=NAME or ROLE=NAME:key=value,key=value")
    name, _, params = rest.partition(":")
    return role.strip(), {
        "method": name.strip(),
        "params": parse_pairs([p for p in params.split(",") if p], "--role parameter"),
    }


def _layer_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise RecipeError(
            f"--layer-map {text!r} must be {', '.join(LAYER_MAPS)} or source layer numbers "
            "separated by commas, like 0,2,4"
        ) from None


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """A Recipe from ``--recipe`` (if any) with every given flag applied on top."""
    recipe = Recipe.load(args.recipe) if getattr(args, "recipe", None) else Recipe()
    data = recipe.to_dict()
    if getattr(args, "source", None):
        location, _, revision = args.source.partition("@")
        if (location, revision or None) != (data["source"], data["revision"]):
            data["provenance"] = {}  # recorded for another source: nothing to verify this one against
        data["source"], data["revision"] = location, (revision or None)
    elif not getattr(args, "recipe", None):
        raise RecipeError("give a source (e.g. 'demo' or a model folder) or --recipe FILE")
    target = dict(data["target"])
    for name in SIZE_FLAGS:
        if getattr(args, name, None) is not None:
            target[name] = getattr(args, name)
    data["target"] = target
    if getattr(args, "target_family", None) is not None:
        data["target_family"] = args.target_family
    sets = parse_sets(getattr(args, "set", None) or [])
    if sets:
        data["config"] = {**data.get("config", {}), **sets}
    if args.strategy or args.param:
        default = dict(data["values"]["default"])
        if args.strategy and args.strategy != default["method"]:
            default = {"method": args.strategy, "params": {}}
            data["index"] = None
        default["params"] = {**default.get("params", {}), **parse_pairs(args.param, "--param")}
        data["values"] = {**data["values"], "default": default}
    for item in args.role:
        role, choice = parse_role(item)
        data["values"] = {**data["values"], role: choice}
    if args.index:
        data["index"] = {"method": args.index, "params": parse_pairs(args.index_param, "--index-param")}
    elif args.index_param:
        raise RecipeError("--index-param needs --index")
    if args.layer_map:
        lm = args.layer_map
        data["layers"] = _layer_list(lm) if lm[:1].isdigit() else lm
    for key in ("seed", "dtype", "device", "max_shard_size"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    return Recipe.from_dict(data)
