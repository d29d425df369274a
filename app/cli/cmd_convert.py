"""``graft convert``: the explicit, opt-in conversion of a pickle checkpoint to safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import command
from app.cli.term import TerminalProgress


@command(
    "convert",
    help="convert a pickle checkpoint (.bin/.pt/.pth) to .safetensors",
    description=(
        "Convert a pickle checkpoint to .safetensors with torch.load(weights_only=True), which "
        "refuses arbitrary objects. Graft never unpickles files otherwise; only convert "
        "checkpoints you have reason to trust."
    ),
)
def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the .bin, .pt or .pth file")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .safetensors (default: next to FILE; pytorch_model.bin → model.safetensors)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite --out if it is a .safetensors file Graft wrote (never FILE itself)",
    )
    parser.add_argument(
        "--replace-any", action="store_true", help="with --force: overwrite --out even if Graft did not write it"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import ExportError
    from core.sources.convert import convert_pickle

    if args.replace_any and not args.force:
        raise ExportError("--replace-any only works together with --force; pass both to replace that file")
    out = convert_pickle(
        args.file, args.out, force=args.force, replace_any=args.replace_any, progress=TerminalProgress("convert")
    )
    print(f"wrote {out}")
    print(f"open it with: graft inspect {out}")
    return 0
