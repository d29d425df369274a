"""``graft plan``, ``graft transfer`` (or ``graft export``) and ``graft demo``: map a source onto a new size and export it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.cli import command
from app.cli.recipe_args import add_recipe_args, add_trust_args, recipe_from_args, trust_kwargs
from app.cli.term import TerminalProgress
from core.errors import ExportError, RecipeError

DEMO_TARGET = {"layers": 4, "hidden": 256, "ffn": 1024, "heads": 8}


@command("plan", help="print the layer map, dimension maps and tensor table of a transfer")
def plan_arguments(p) -> None:
    add_recipe_args(p, source_required=False)
    p.add_argument("--json", action="store_true", help="the plan as JSON")
    p.add_argument("--limit", type=int, default=None, help="show at most this many tensors")
    p.set_defaults(func=run_plan)


@command(
    "transfer",
    aliases=["export"],
    help="build the target's weights from the source and export an HF folder (alias: export)",
)
def transfer_arguments(t) -> None:
    add_recipe_args(t, source_required=False)
    t.add_argument("--out", help="export folder (must not exist or be empty, unless --force)")
    add_replace_args(t)
    t.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    t.add_argument("--save-recipe", metavar="FILE", help="also write the recipe to FILE")
    add_trust_args(t)
    t.add_argument(
        "--verifiable",
        action="store_true",
        help="record every source shard's SHA-256 in the recipe (hashed beside the transfer when not known "
        "already: reads the whole source once); by default a first run records the files' sizes and headers "
        "and a SHA-256 of the bytes it read",
    )
    t.set_defaults(func=run_transfer)


@command("demo", help="shrink the bundled all-MiniLM-L6-v2 to 4 layers × 256 by weight selection")
def demo_arguments(d) -> None:
    d.add_argument("--out", default="out/demo", help="export folder (default: out/demo)")
    add_replace_args(d)
    d.set_defaults(func=run_demo)


def add_replace_args(parser, what: str = "export") -> None:
    """``--force`` and ``--replace-any``, the two steps of replacing an existing --out folder."""
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"replace a non-empty --out folder that is an earlier Graft {what}; never the "
        "source, the home or the working folder",
    )
    parser.add_argument(
        "--replace-any",
        action="store_true",
        help=f"with --force: replace --out even if it is not a Graft {what} (its files are deleted)",
    )


def replace_kwargs(args) -> dict:
    """``force`` / ``replace_any`` from the flags; ``--replace-any`` alone is a mistake, not a no-op."""
    if args.replace_any and not args.force:
        raise ExportError("--replace-any only works together with --force; pass both to replace that folder")
    return {"force": args.force, "replace_any": args.replace_any}


def print_warnings(plan) -> None:
    """What the plan cannot do exactly (e.g. inexact growth), one ``graft: warning:`` line each on stderr."""
    for warning in plan.warnings:
        print(f"graft: warning: {warning}", file=sys.stderr)


def run_plan(args) -> int:
    from app.cli.plan_text import format_plan
    from core.plan.from_recipe import plan_recipe  # not core.pipeline's: that imports torch (issue 17)

    plan, _ = plan_recipe(recipe_from_args(args))
    print_warnings(plan)
    print(json.dumps(plan.to_dict(), indent=1) if args.json else format_plan(plan, args.limit))
    return 0


def run_transfer(args) -> int:
    from app.cli.plan_text import format_plan
    from core.plan.from_recipe import plan_recipe  # torch only once the export needs it (issue 17)

    recipe = recipe_from_args(args)
    replacing = replace_kwargs(args)
    plan, source = plan_recipe(recipe)
    print_warnings(plan)
    if args.save_recipe:
        recipe.save(args.save_recipe)
    if args.dry_run:
        print(format_plan(plan))
        return 0
    if not args.out:
        raise RecipeError("give --out FOLDER for the export (or --dry-run to only print the plan)")
    from core.pipeline import export_recipe

    out = export_recipe(
        recipe,
        Path(args.out),
        source=source,
        plan=plan,
        **replacing,
        progress=TerminalProgress("export"),
        verifiable=args.verifiable,
        **trust_kwargs(args),
    )
    print(f"wrote {out} ({plan.num_parameters:,} parameters, {plan.family})")
    return 0


def run_demo(args) -> int:
    from core.pipeline import export_recipe, plan_recipe
    from core.recipe import Recipe

    recipe = Recipe(source="demo", target=dict(DEMO_TARGET))
    replacing = replace_kwargs(args)
    plan, source = plan_recipe(recipe)
    print(f"demo: {source.display_name} → {plan.family} {DEMO_TARGET} by weight selection", file=sys.stderr)
    out = export_recipe(
        recipe, Path(args.out), source=source, plan=plan, **replacing, progress=TerminalProgress("export")
    )
    print(f"wrote {out} ({plan.num_parameters:,} parameters)")
    print(f"load it with: python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{out}')\"")
    return 0
