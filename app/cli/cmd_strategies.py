"""``graft strategies [NAME]``: every index and value strategy, or one strategy's parameters.

    graft strategies                      # name, kind, parameters and summary of each
    graft strategies --kind index         # the index strategies only
    graft strategies mean_field           # what it can do and one row per parameter
    graft strategies mean_field --json    # the same as JSON

The parameter rows (type, range or choices, default, help) come from ``core.params.describe``
of the strategy's ``Params`` — the declaration the recipe checks, the app's forms and the
``graft validate`` flags also read. Listing loads neither torch nor Qt.
"""

from __future__ import annotations

import json
import shutil
import textwrap

from app.cli import command
from app.cli.term import format_table
from core.errors import StrategyError

KINDS = ("index", "value")
#: What ``fallback = None`` means (``core.plan.tensors.apply_fallbacks``).
PLAN_FALLBACK = "select when the plan only shrinks, mean_field when it grows"


@command("strategies", help="list the index and value strategies, or show one strategy's parameters")
def arguments(p) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="a strategy to describe (default: list them all)")
    p.add_argument("--kind", choices=KINDS, help="list only index or only value strategies")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def strategy_info(name: str) -> dict:
    """What ``graft strategies`` shows of strategy ``name``, JSON-ready.

    Raises:
        StrategyError: unknown name (the message lists the known ones).
    """
    from core.params import describe
    from core.strategies import get

    s = get(name)
    info = {"name": s.name, "kind": s.kind, "summary": s.summary, "can_grow": s.can_grow}
    if s.kind == "index":
        info["needs_scores"] = s.needs_scores
    else:
        info.update(
            roles=list(s.roles) if s.roles is not None else None, default_index=s.default_index, fallback=s.fallback
        )
    info["parameters"] = [p.to_dict() for p in describe(s.Params)]
    return info


def run(args) -> int:
    from core.strategies import names

    if args.name is not None:
        info = strategy_info(args.name)
        if args.kind is not None and info["kind"] != args.kind:
            raise StrategyError(
                f"{args.name} is an {info['kind']} strategy, not a {args.kind} one; leave out --kind {args.kind}"
            )
        print(json.dumps(info, indent=1, ensure_ascii=False) if args.json else format_strategy(info))
        return 0
    infos = [strategy_info(n) for kind in KINDS if args.kind in (None, kind) for n in names(kind)]
    if args.json:
        print(json.dumps(infos, indent=1, ensure_ascii=False))
        return 0
    rows = [(i["name"], i["kind"], ", ".join(p["name"] for p in i["parameters"]) or "-", i["summary"]) for i in infos]
    print(format_table(("name", "kind", "parameters", "summary"), rows))
    print("\n'graft strategies NAME' shows one strategy's parameters")
    return 0


def format_strategy(info: dict) -> str:
    """One strategy as text: its summary, what it can do, and a table of its parameters."""
    lines = [f"{info['name']} ({info['kind']} strategy): {info['summary']}", ""]
    lines.append(f"can grow: {_yes(info['can_grow'])}")
    if info["kind"] == "index":
        lines.append(f"needs scores: {_yes(info['needs_scores'])}")
    else:
        lines.append(f"fills roles: {', '.join(info['roles']) if info['roles'] else 'any'}")
        lines.append(f"default index: {info['default_index']}")
        lines.append(f"fallback (a tensor it cannot fill): {info['fallback'] or PLAN_FALLBACK}")
    lines.append("")
    params = info["parameters"]
    if not params:
        lines.append("parameters: none")
        return "\n".join(lines)
    rows = [
        (p["name"], p["type"] + (" | None" if p["optional"] else ""), _range(p), _shown(p.get("default")))
        for p in params
    ]
    table = format_table(("parameter", "type", "range", "default"), rows).splitlines()
    indent = max(len(line) for line in table) + 2
    width = max(40, shutil.get_terminal_size((120, 24)).columns - indent)
    helps = [["help"], ["-" * 4]] + [textwrap.wrap(p["help"], width) or [""] for p in params]
    for line, help_lines in zip(table, helps, strict=True):
        lines.append(f"{line.ljust(indent)}{help_lines[0]}".rstrip())
        lines.extend(" " * indent + more for more in help_lines[1:])
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _range(p: dict) -> str:
    if p["choices"]:
        return " | ".join(map(str, p["choices"]))
    lo, hi = p["min"], p["max"]
    if lo is not None and hi is not None:
        return f"{lo} … {hi}"
    if lo is not None:
        return f"≥ {lo}"
    if hi is not None:
        return f"≤ {hi}"
    return "-"


def _shown(value) -> str:
    return '""' if value == "" else str(value)
