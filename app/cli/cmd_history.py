"""``graft history``: the runs kept across launches (the app's Runs tab), and two of them compared."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import command
from app.cli.term import format_table


@command(
    "history",
    help="list the runs kept in the history (validations, leaderboards, materialised targets); compare two",
    description="Every run the app or the CLI kept in the history ($GRAFT_HISTORY_DIR, else "
    "~/.local/share/graft/history), newest first and numbered (1 = newest). --compare A B prints "
    "what differs between two runs' recipes (A → B) and what each found; A and B are numbers from "
    "the list or history file names.",
)
def arguments(p) -> None:
    p.add_argument("--source", metavar="S", help="only the runs whose recipe reads S ('demo', a path, a repo id)")
    p.add_argument("--kind", choices=("leaderboard", "validation", "materialised"), help="only runs of this kind")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="compare two runs: numbers from the list or file names"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _entries(args) -> list[dict]:
    from core.history import History
    from core.runs import runs_of_source

    history = History()
    entries = runs_of_source(args.source, history) if args.source else history.entries()
    return [e for e in entries if args.kind is None or e.get("kind") == args.kind]


def run(args) -> int:
    entries = _entries(args)
    if args.compare:
        return _compare(entries, *args.compare, as_json=args.json)
    if args.json:
        print(json.dumps([_brief(i, e) for i, e in enumerate(entries, 1)], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        from core.history import history_root

        print(f"no runs in the history ({history_root()})" + (f" for source {args.source}" if args.source else ""))
        return 0
    from core.runs import entry_recipe, recipe_summary, verdict_lines

    rows = [
        (
            i,
            e.get("created", "?")[:19].replace("T", " "),
            e.get("kind"),
            recipe_summary(entry_recipe(e)),
            (verdict_lines(e) or [""])[0],
        )
        for i, e in enumerate(entries, 1)
    ]
    print(format_table(("#", "created (UTC)", "kind", "recipe", "found"), rows))
    return 0


def _brief(number: int, entry: dict) -> dict:
    from core.runs import entry_recipe, verdict_lines

    return {
        "number": number,
        "kind": entry.get("kind"),
        "key": entry.get("key"),
        "created": entry.get("created"),
        "path": entry.get("path"),
        "recipe": entry_recipe(entry),
        "found": verdict_lines(entry),
    }


def _compare(entries: list[dict], ref_a: str, ref_b: str, *, as_json: bool) -> int:
    from core.runs import entry_diff, entry_recipe, find_entry, recipe_summary, value_text, verdict_lines

    a, b = find_entry(entries, ref_a), find_entry(entries, ref_b)
    diff = entry_diff(a, b)
    if as_json:
        numbers = {id(e): i for i, e in enumerate(entries, 1)}
        out = {
            "a": _brief(numbers[id(a)], a),
            "b": _brief(numbers[id(b)], b),
            "diff": [{"field": f, "a": va, "b": vb} for f, va, vb in diff],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for side, e in (("A", a), ("B", b)):
        print(f"{side}: {e.get('kind')} of {e.get('created', '?')[:19].replace('T', ' ')} UTC ({Path(e['path']).name})")
        print(f"   {recipe_summary(entry_recipe(e))}")
    print()
    if diff:
        print(format_table(("field", "A", "B"), [(f, value_text(va), value_text(vb)) for f, va, vb in diff]))
    else:
        print("the same recipe and options: the runs differ only in when they ran")
    for side, e in (("A", a), ("B", b)):
        print(f"\n{side} found:")
        for line in verdict_lines(e):
            print(f"  {line}")
    return 0
