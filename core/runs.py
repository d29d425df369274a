"""Reading the history as runs of one source: which recipe each run used, what it found, and how
two runs differ.

:mod:`core.history` keeps the files; this module reads their payloads, whatever their kind:

- ``leaderboard``: ``Leaderboard.to_dict()`` (its recipe is ``base_recipe``);
- ``validation``: ``{"recipe", "report"}`` (``ValidationReport.to_dict()``);
- ``materialised``: :func:`materialised_payload` — the recipe, the parameter count and one row of
  numbers per target tensor (what the model overview shows), never the tensors.

The GUI's Runs tab and ``graft history`` both draw from here, so they list and compare the same
way. Plain JSON in, plain Python out: no torch, no Qt.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath

from core.history import History

#: recipe fields that do not decide a run (left out of a recipe diff).
NOT_COMPARED = ("graft_recipe", "graft_version", "provenance")
#: the per-tensor numbers a materialised run keeps (``core.stats.TensorSummary``'s fields).
TENSOR_FIELDS = ("name", "role", "layer", "std", "source_std", "mean", "excess_kurtosis")
#: the columns of :func:`layer_metrics`, as the model overview names them.
LAYER_METRICS = ("std ratio", "std", "mean", "excess kurtosis")


def materialised_payload(recipe: dict, summaries, num_parameters: int, device: str) -> dict:
    """The history payload of a materialised target.

    Args:
        recipe: the recipe it was built from (``Recipe.to_dict()``).
        summaries: ``core.stats.TensorSummary`` (or objects with its fields), one per target tensor.
        num_parameters: the target's parameter count.
        device: where it was built.
    """
    tensors = [{f: _plain(getattr(s, f)) for f in TENSOR_FIELDS} for s in summaries]
    return {"recipe": dict(recipe), "num_parameters": int(num_parameters), "device": device, "tensors": tensors}


def _plain(value):
    return float(value) if isinstance(value, float) else value  # numpy floats become JSON floats


def entry_recipe(entry: dict) -> dict | None:
    """The recipe a history entry ran (a leaderboard's base recipe), or None."""
    payload = entry.get("payload") or {}
    recipe = payload.get("base_recipe") if entry.get("kind") == "leaderboard" else payload.get("recipe")
    return recipe if isinstance(recipe, dict) else None


def runs_of_source(source: str, history: History | None = None) -> list[dict]:
    """Every history entry (all recipe keys, all kinds) whose recipe reads ``source``, newest first.

    Args:
        source: a recipe's ``source`` (``"demo"``, a path, a hub repo id), as the app opened it.
        history: default the user's :class:`~core.history.History`.
    """
    history = history or History()
    return [e for e in history.entries() if (entry_recipe(e) or {}).get("source") == source]


def recipe_summary(recipe: dict | None) -> str:
    """``demo → layers 1, hidden 96 · select · seed 0`` (the words of the app's result stamps)."""
    if not recipe:
        return "no recipe"
    source = PurePath(str(recipe.get("source", "?"))).name or str(recipe.get("source"))
    target = recipe.get("target") or {}
    sizes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in target.items()) or "same sizes"
    values = recipe.get("values") or {}
    overrides = len(values) - 1
    strategy = (values.get("default") or {}).get("method", "?")
    strategy += f" + {overrides} override{'s' if overrides != 1 else ''}" if overrides > 0 else ""
    return f"{source} → {sizes} · {strategy} · seed {recipe.get('seed', 0)}"


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def recipe_diff(a: dict | None, b: dict | None) -> list[tuple[str, object, object]]:
    """The recipe fields that differ, ``(dotted.field, value in A, value in B)``, sorted by field.

    Nested objects are compared leaf by leaf (``values.default.method``); a field one side lacks is
    None there. The Graft version and provenance are left out (they say where bytes came from).
    """
    flat_a = _flatten({k: v for k, v in (a or {}).items() if k not in NOT_COMPARED})
    flat_b = _flatten({k: v for k, v in (b or {}).items() if k not in NOT_COMPARED})
    return [
        (k, flat_a.get(k), flat_b.get(k)) for k in sorted(set(flat_a) | set(flat_b)) if flat_a.get(k) != flat_b.get(k)
    ]


def run_options(entry: dict) -> dict:
    """How a run ran, beside its recipe: a validation's or leaderboard's training options (steps, …),
    a leaderboard's quick step, a materialised target's device."""
    payload = entry.get("payload") or {}
    kind = entry.get("kind")
    if kind == "validation":
        report = payload.get("report") or {}
        return {**(report.get("config") or {}), "teacher": (report.get("teacher") or {}).get("kind")}
    if kind == "leaderboard":
        return {**(payload.get("config") or {}), "quick_steps": payload.get("quick_steps")}
    if kind == "materialised":
        return {"device": payload.get("device")}
    return {}


def entry_diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """:func:`recipe_diff` of two history entries' recipes, then (two runs of one kind) their
    :func:`run_options` that differ, as ``options.<name>``."""
    diff = recipe_diff(entry_recipe(a), entry_recipe(b))
    if a.get("kind") == b.get("kind"):
        diff += recipe_diff({"options": run_options(a)}, {"options": run_options(b)})
    return diff


def value_text(value) -> str:
    """A recipe value as a person reads it (JSON, "—" for absent)."""
    return "—" if value is None else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def verdict_lines(entry: dict) -> list[str]:
    """What a run found, in sentences: a validation's verdicts, a leaderboard's ranking, a
    materialised target's size and spread."""
    payload = entry.get("payload") or {}
    kind = entry.get("kind")
    if kind == "validation":
        from core.training.verdict import Verdict

        report = payload.get("report") or {}
        lines = []
        for data in (report.get("verdicts") or {}).values():
            try:
                lines.append(Verdict(**data).sentence())
            except (TypeError, ValueError):
                lines.append(f"{data.get('arm', '?')}: an unreadable verdict")
        if report.get("status") not in (None, "complete"):
            lines.append(f"the run is {report.get('status')} after {report.get('steps_completed', '?')} steps")
        return lines or ["no verdict: the baseline was not evaluated past step 0"]
    if kind == "leaderboard":
        rows = [r for r in payload.get("rows") or [] if not r.get("error")]
        if not rows:
            return ["no start could be trained"]
        steps = (payload.get("config") or {}).get("steps", "?")
        return [f"{r.get('rank', '?')}. {r.get('name')}: {_speed(r)}" for r in rows] + [f"({steps} steps)"]
    if kind == "materialised":
        tensors = payload.get("tensors") or []
        ratios = [_ratio(t) for t in tensors]
        ratios = [r for r in ratios if math.isfinite(r)]
        spread = f"; std ÷ source std {min(ratios):.3g} … {max(ratios):.3g}" if ratios else ""
        params = payload.get("num_parameters") or 0
        return [f"{params / 1e6:,.2f} M parameters in {len(tensors)} tensors on {payload.get('device', '?')}{spread}"]
    return []


def _speed(row: dict) -> str:
    if row.get("reached_at_start"):
        return "at the baseline from step 0"
    if row.get("speedup"):
        return f"{row['speedup']:.2f}× faster (baseline reached at step {row.get('steps_to_baseline')})"
    return "does not reach the baseline"


def _ratio(tensor: dict) -> float:
    std, source = tensor.get("std"), tensor.get("source_std")
    if not isinstance(std, (int, float)) or not isinstance(source, (int, float)) or not source > 0:
        return math.nan
    return std / source


def layer_metrics(payload: dict) -> tuple[list[str], list[list[float]]]:
    """A materialised payload as the overview's table: rows ``global``, ``layer 0``…, columns
    :data:`LAYER_METRICS` averaged over each layer's tensors (NaN where none has a value).

    Returns:
        ``(row labels, values)``, values ``len(rows) × len(LAYER_METRICS)``.
    """
    rows: dict[str, list[list[float]]] = {}
    for t in payload.get("tensors") or []:
        label = "global" if t.get("layer") is None else f"layer {t['layer']}"
        values = [_ratio(t), *(_number(t.get(k)) for k in ("std", "mean", "excess_kurtosis"))]
        rows.setdefault(label, []).append(values)
    labels = sorted(rows, key=lambda k: -1 if k == "global" else int(k.split()[1]))
    table = []
    for label in labels:
        columns = zip(*rows[label])
        table.append([_mean([v for v in col if math.isfinite(v)]) for col in columns])
    return labels, table


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def find_entry(entries: list[dict], ref: str) -> dict:
    """The entry ``ref`` names: its number in ``entries`` (1 = newest), its file's path or name,
    or a unique start of its file name.

    Raises:
        GraftError: no entry, or several, match.
    """
    from core.errors import GraftError

    if ref.isdigit() and 1 <= int(ref) <= len(entries):
        return entries[int(ref) - 1]
    matches = [e for e in entries if e.get("path") == ref or PurePath(str(e.get("path"))).name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    what = "no run" if not matches else f"{len(matches)} runs"
    raise GraftError(
        f"{what} of the history match {ref!r}; give a number from 'graft history' (1 = newest) or a file name"
    )
