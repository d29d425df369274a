"""What the leaderboard tab draws, from plain dicts: a ranked table, eval curves, history labels.

Everything here reads the JSON form of a leaderboard (``core.leaderboard.Leaderboard.to_dict()``)
or of a validation report (``ValidationReport.to_dict()``), because that is what the history keeps
across launches: a run just finished and a run of last week are drawn by the same code. No torch.

A leaderboard dict holds ``rows`` (ranked, each ``name, recipe, rank, steps_to_baseline, speedup,
reached_at_start, final_eval_loss, zero_step_eval_loss, quick_eval_loss, wall_s, error``),
``baseline`` (a row), ``config`` (the validation options), ``quick_steps``, ``created`` and
``report`` (the validation report's dict, whose ``eval`` holds ``arm → [[step, loss, metric]]``).
"""

from __future__ import annotations

import math
from datetime import datetime

from app.qt import QtCore, QtGui, QtWidgets

#: (header, row key, tooltip) of the table's columns, in order.
COLUMNS = (
    ("#", "rank", "rank: fewest steps to the baseline's final eval loss, ties by final eval loss"),
    ("Start", "name", "the candidate starting point (value strategy + index + layer map)"),
    (
        "To baseline",
        "steps_to_baseline",
        "steps to the baseline: the first eval step at which its eval loss ≤ the baseline's final one",
    ),
    ("Speedup", "speedup", "the baseline's steps ÷ this start's steps to reach the same eval loss"),
    ("Final eval loss", "final_eval_loss", "eval loss at the last step (lower is better)"),
    ("Step-0 loss", "zero_step_eval_loss", "eval loss before any training step (the zero-step loss)"),
    ("Quick eval loss", "quick_eval_loss", "eval loss at the quick step (what a quick run ranks by)"),
    ("Wall time", "wall_s", "seconds of training (its optimizer steps); the cell's tooltip adds materialising"),
)
ERROR_COLOUR = "#d0453a"
BASELINE_COLOUR = "#7f7f7f"


# -- dicts ---------------------------------------------------------------------------------------
def eval_curves(report: dict | None) -> dict[str, list[tuple[float, float]]]:
    """``arm → [(step, eval loss), ...]`` from a validation report's dict."""
    if not report:
        return {}
    if "eval" in report:
        return {
            arm: [(float(p[0]), float(p[1])) for p in points if p[1] is not None]
            for arm, points in report["eval"].items()
        }
    return {
        arm: [(float(m["step"]), float(m["eval_loss"])) for m in records if m.get("eval_loss") is not None]
        for arm, records in report.get("records", {}).items()
    }


def board_from_validation(payload: dict) -> dict:
    """A validation run (``{"recipe", "report"}``) in the shape of a leaderboard: one row per arm
    (``arm`` names its curve; ``name`` adds the strategy)."""
    report = payload.get("report") or {}
    recipe = payload.get("recipe")
    curves = eval_curves(report)
    baseline = report.get("baseline")
    verdicts = report.get("verdicts") or {}
    rows = []
    for arm, points in curves.items():
        if arm == baseline:
            continue
        verdict = verdicts.get(arm) or {}
        rows.append(
            {
                "name": arm if recipe is None else f"{arm} ({_strategy(recipe)})",
                "arm": arm,
                "recipe": recipe,
                "rank": len(rows) + 1,
                "steps_to_baseline": verdict.get("steps_to_baseline"),
                "speedup": verdict.get("speedup"),
                "reached_at_start": verdict.get("reached_at_start", False),
                "final_eval_loss": points[-1][1] if points else None,
                "zero_step_eval_loss": points[0][1] if points and points[0][0] == 0 else None,
                "quick_eval_loss": None,
                "wall_s": None,
                "error": None,
            }
        )
    base_points = curves.get(baseline, [])
    base_row = (
        {
            "name": baseline,
            "recipe": None,
            "rank": None,
            "final_eval_loss": base_points[-1][1] if base_points else None,
            "zero_step_eval_loss": base_points[0][1] if base_points else None,
        }
        if baseline
        else None
    )
    return {
        "rows": rows,
        "baseline": base_row,
        "config": report.get("config") or {},
        "quick_steps": None,
        "report": report,
        "status": report.get("status"),
    }


def _strategy(recipe: dict) -> str:
    values = recipe.get("values") or {}
    name = (values.get("default") or {}).get("method", "?")
    index = (recipe.get("index") or {}).get("method")
    layers = recipe.get("layers")
    parts = [name] + ([index] if index else []) + ([layers] if isinstance(layers, str) and layers != "first_n" else [])
    return "+".join(parts)


def winner(board: dict) -> str | None:
    """The first ranked row without an error (None when no start ran)."""
    return next((r["name"] for r in board.get("rows", []) if not r.get("error")), None)


def steps_text(board: dict) -> str:
    steps = (board.get("config") or {}).get("steps")
    quick = board.get("quick_steps")
    if quick:
        return f"quick: {quick} of {steps} steps"
    return f"{steps} steps" if steps is not None else "? steps"


def format_created(created: str | None) -> str:
    """ISO time → ``2025-12-02 15:04`` in local time (the text as given if it does not parse)."""
    if not created:
        return "?"
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created)
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


# -- widgets -------------------------------------------------------------------------------------
def _number(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)


def cell_text(row: dict, key: str) -> str:
    value = row.get(key)
    if key == "steps_to_baseline":
        if row.get("reached_at_start"):
            return "0 (start)"
        return "not reached" if value is None and row.get("rank") is not None else _number(value, "d")
    if key == "speedup":
        return "∞" if row.get("reached_at_start") else ("–" if value is None else f"{value:.2f}×")
    if key in ("final_eval_loss", "zero_step_eval_loss", "quick_eval_loss"):
        return _number(value, ".4f")
    if key == "wall_s":
        return "–" if value is None else f"{value:.1f} s"
    if key == "rank":
        return "–" if value is None else str(value)
    return "" if value is None else str(value)


def fill_table(table: QtWidgets.QTableWidget, board: dict | None) -> None:
    """Ranked rows, then the baseline (grey); a failed start spans its columns with the error."""
    table.clearSpans()
    table.setRowCount(0)
    if board is None:
        return
    rows = list(board.get("rows", []))
    baseline = board.get("baseline")
    all_rows = rows + ([dict(baseline, rank=None)] if baseline else [])
    table.setRowCount(len(all_rows))
    quick = bool(board.get("quick_steps"))
    failed: list[tuple[int, str]] = []
    for i, row in enumerate(all_rows):
        is_baseline = baseline is not None and i == len(all_rows) - 1
        for j, (_, key, _) in enumerate(COLUMNS):
            item = QtWidgets.QTableWidgetItem(cell_text(row, key))
            item.setFlags(QtCore.Qt.ItemIsSelectable | QtCore.Qt.ItemIsEnabled)
            if key not in ("name",):
                item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
            if is_baseline:
                item.setForeground(QtGui.QColor(BASELINE_COLOUR))
            item.setData(QtCore.Qt.UserRole, i)
            table.setItem(i, j, item)
        table.item(i, 1).setToolTip(_recipe_tip(row.get("recipe")))
        if row.get("materialise_s") is not None:
            table.item(i, len(COLUMNS) - 1).setToolTip(f"materialising took {row['materialise_s']:.1f} s more")
        if row.get("error"):
            failed.append((i, str(row["error"])))
    table.setColumnHidden(6, not quick)
    table.resizeColumnsToContents()  # before the errors: a long one would widen its first column
    for i, text in failed:
        error = QtWidgets.QTableWidgetItem(f"refused: {text}")
        error.setForeground(QtGui.QColor(ERROR_COLOUR))
        error.setToolTip(text)
        error.setFlags(QtCore.Qt.ItemIsSelectable | QtCore.Qt.ItemIsEnabled)
        table.setItem(i, 2, error)
        table.setSpan(i, 2, 1, len(COLUMNS) - 2)
    table.resizeRowsToContents()


def _recipe_tip(recipe: dict | None) -> str:
    if not recipe:
        return "the baseline: the architecture's own random init"
    values = recipe.get("values") or {}
    lines = [f"values: {values.get('default', {}).get('method')}"]
    lines += [f"  {role}: {choice.get('method')}" for role, choice in values.items() if role != "default"]
    lines.append(f"index: {(recipe.get('index') or {}).get('method') or 'the strategy default'}")
    lines.append(f"layers: {recipe.get('layers', 'first_n')}")
    return "\n".join(lines)


def make_table() -> QtWidgets.QTableWidget:
    table = QtWidgets.QTableWidget(0, len(COLUMNS))
    table.setObjectName("leaderboard-table")
    for j, (header, _, tip) in enumerate(COLUMNS):
        item = QtWidgets.QTableWidgetItem(header)
        item.setToolTip(tip)
        table.setHorizontalHeaderItem(j, item)
    table.verticalHeader().hide()
    table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
    table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
    table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    table.setAlternatingRowColors(True)
    return table
