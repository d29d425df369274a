"""The leaderboard's table: rows from eval curves, the ranking rules, agreement of two rankings.

Ranking rules (one place, used by ``graft compare``, the app and the benchmark):

- **full** run: ``steps_to_baseline`` ascending — the first eval step at which the candidate's
  eval loss is at or below the baseline's eval loss at the baseline's last eval step (see
  :mod:`core.training.verdict`); a start that is already there at step 0 (``reached_at_start``,
  step 0) ranks first, a candidate that never gets there ranks after every one that does. Ties
  (same eval step: with ``eval_every`` 25 many are) are broken by the final eval loss, lower first,
  then by name.
- **quick** run (the first ``quick_steps`` steps of the full run's schedule): by the eval loss at
  ``quick_steps``, lower first — after a few steps few candidates reach the baseline's *final*
  loss, so steps-to-baseline would mostly tie; ties and missing values fall back to the full rule.
- Refused candidates (``error`` set) have no rank and come last, in the order given.

:func:`agreement` compares a quick ranking with the full one (same winner, Spearman's ρ over the
candidates both ranked, overlap of the top three): the benchmark uses it to say whether a quick
look predicts the full answer.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

from core.outdir import Kind
from core.training.verdict import compute_verdicts

LEADERBOARD_FORMAT = 1
JSON_NAME = "leaderboard.json"
CSV_NAME = "leaderboard.csv"
PNG_NAME = "leaderboard.png"

#: how well the quick proxy agreed with the full run where it was measured (shown with every quick look).
QUICK_AGREEMENT = (
    "measured on the demo → 4/256/8/1024 masked LM (19 starts, 300 steps, "
    "benchmarks/bench_strategies.py): the eval loss after 60 steps ordered the starts with Spearman "
    "ρ 0.96 against the full ranking, 2 of its top 3 in common; its winner had the best final loss, "
    "the full run's (by steps to the baseline) came second"
)
#: the folder ``graft compare --out`` writes (``--force`` replaces only one of these).
LEADERBOARD_DIR = Kind("leaderboard", JSON_NAME, "graft_leaderboard", lambda n: n in (JSON_NAME, CSV_NAME, PNG_NAME))


@dataclass
class Row:
    """One candidate (or the baseline) in a leaderboard. Losses are eval losses; times in seconds."""

    name: str
    recipe: dict | None = None
    rank: int | None = None
    steps_to_baseline: int | None = None
    speedup: float | None = None
    reached_at_start: bool = False
    final_eval_loss: float | None = None
    zero_step_eval_loss: float | None = None
    quick_eval_loss: float | None = None
    wall_s: float | None = None  # training time of this arm (optimizer steps, not evaluation)
    materialise_s: float | None = None  # planning + building its float32 state dict
    error: str | None = None
    distill: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Row:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _loss_at(points: Sequence[tuple], step: int) -> float | None:
    return next((p[1] for p in points if p[0] == step), None)


def rank_curves(
    curves: Mapping[str, Sequence[tuple]], baseline: str = "baseline", *, quick_steps: int | None = None
) -> tuple[list[Row], Row]:
    """Ranked candidate rows and the baseline's row from eval curves.

    Args:
        curves: ``{arm: [(step, eval_loss[, metric]), ...]}`` (a report's ``evals()`` or
            ``eval_curves()``; only the steps every arm reached should be in it).
        baseline: the baseline arm's name.
        quick_steps: rank by the eval loss at this step (quick mode); None: the full rule.

    Returns:
        ``(rows ranked 1…n, baseline row)``; rows carry only the numbers the curves give.
    """
    evals = {a: sorted((p[0], p[1], p[2] if len(p) > 2 else None) for p in pts) for a, pts in curves.items()}
    verdicts = compute_verdicts(evals, baseline) if baseline in evals else {}
    rows = []
    for arm, points in evals.items():
        row = Row(
            arm,
            zero_step_eval_loss=_loss_at(points, 0),
            final_eval_loss=points[-1][1] if points else None,
            quick_eval_loss=_loss_at(points, quick_steps) if quick_steps is not None else None,
        )
        v = verdicts.get(arm)
        if v is not None:
            row.steps_to_baseline, row.speedup, row.reached_at_start = (
                v.steps_to_baseline,
                v.speedup,
                v.reached_at_start,
            )
            row.final_eval_loss = v.final_eval_loss
        rows.append(row)
    base_row = next((r for r in rows if r.name == baseline), Row(baseline))
    ranked = rank_rows([r for r in rows if r.name != baseline], quick=quick_steps is not None)
    return ranked, base_row


def rank_rows(rows: Sequence[Row], *, quick: bool = False) -> list[Row]:
    """Sort by the rules of the module docstring and number the ranks (errors last, unranked)."""
    inf = math.inf

    def full_key(r: Row):
        return (
            r.steps_to_baseline is None,
            r.steps_to_baseline or 0,
            inf if r.final_eval_loss is None else r.final_eval_loss,
            r.name,
        )

    def quick_key(r: Row):
        return (r.quick_eval_loss is None, inf if r.quick_eval_loss is None else r.quick_eval_loss, *full_key(r))

    good = sorted((r for r in rows if r.error is None), key=quick_key if quick else full_key)
    for i, r in enumerate(good, start=1):
        r.rank = i
    bad = [r for r in rows if r.error is not None]
    for r in bad:
        r.rank = None
    return good + bad


@dataclass
class Leaderboard:
    """A ranked comparison of starts against one baseline (``rows`` ranked, errors last).

    ``config``: the validation options used; ``quick_steps``: set for a quick run; ``report``:
    the whole :class:`~core.training.ValidationReport` as a dict (curves of every arm);
    ``key``: :func:`core.history.recipe_key` of the base recipe and options; ``notes``: what was
    adjusted or skipped, in words.
    """

    rows: list[Row]
    baseline: Row
    config: dict
    quick_steps: int | None
    base_recipe: dict
    created: str
    report: dict
    key: str
    notes: list[str] = field(default_factory=list)
    version: int = LEADERBOARD_FORMAT

    @property
    def status(self) -> str:
        return str(self.report.get("status", "running"))

    @property
    def winner(self) -> Row | None:
        return next((r for r in self.rows if r.rank == 1), None)

    def ranked(self) -> list[Row]:
        return [r for r in self.rows if r.rank is not None]

    def eval_curves(self) -> dict[str, list[tuple[int, float]]]:
        """``{arm: [(step, eval_loss), ...]}`` of every arm that trained, the baseline last."""
        return {a: [(int(p[0]), float(p[1])) for p in pts] for a, pts in self.report.get("eval", {}).items()}

    def to_dict(self) -> dict:
        return {
            "graft_leaderboard": self.version,
            "key": self.key,
            "created": self.created,
            "status": self.status,
            "quick_steps": self.quick_steps,
            "config": self.config,
            "base_recipe": self.base_recipe,
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
            "baseline": self.baseline.to_dict(),
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Leaderboard:
        return cls(
            rows=[Row.from_dict(r) for r in data["rows"]],
            baseline=Row.from_dict(data["baseline"]),
            config=data["config"],
            quick_steps=data.get("quick_steps"),
            base_recipe=data["base_recipe"],
            created=data["created"],
            report=data["report"],
            key=data["key"],
            notes=list(data.get("notes", [])),
            version=data.get("graft_leaderboard", LEADERBOARD_FORMAT),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_csv(self) -> str:
        """One line per candidate (ranked, then refused), the baseline last."""
        names = [f.name for f in fields(Row) if f.name != "recipe"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in [*self.rows, self.baseline]:
            writer.writerow([_cell(getattr(row, n)) for n in names])
        return buffer.getvalue()

    def table(self) -> str:
        """The ranked table as aligned text (what ``graft compare`` prints)."""
        headers = ["rank", "candidate", "reaches baseline", "speedup", "final eval", "step-0 eval"]
        if self.quick_steps is not None:
            headers.append(f"eval @{self.quick_steps}")
        headers += ["train s", "build s"]
        lines = []
        for r in [*self.rows, self.baseline]:
            is_base = r is self.baseline
            if r.error is not None:
                lines.append([_dash(None), r.name, f"refused: {r.error}"])
                continue
            if is_base:
                reach, speed = "(reference)", ""
            elif r.reached_at_start:
                reach, speed = "at step 0", "start"
            elif r.steps_to_baseline is None:
                reach, speed = "not reached", ""
            else:
                reach, speed = f"step {r.steps_to_baseline}", f"{r.speedup:.1f}x"
            cells = [
                "" if is_base else _dash(r.rank),
                r.name,
                reach,
                speed,
                _num(r.final_eval_loss),
                _num(r.zero_step_eval_loss),
            ]
            if self.quick_steps is not None:
                cells.append(_num(r.quick_eval_loss))
            cells += [_num(r.wall_s, 1), _num(r.materialise_s, 1)]
            lines.append(cells)
        return _align(headers, lines)


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _dash(rank: int | None) -> str:
    return "–" if rank is None else str(rank)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: the CSV must reproduce the ranking's ties
    return str(value)


def _align(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; a shorter row (a refusal) runs its last cell on."""
    widths = [len(h) for h in headers]
    for row in rows:
        cells = row if len(row) == len(headers) else row[:-1]
        widths = [max(w, len(c)) for w, c in zip(widths, cells)] + widths[len(cells) :]

    def line(cells: list[str]) -> str:
        return "  ".join([*(c.ljust(w) for c, w in zip(cells[:-1], widths)), cells[-1]]).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _order(board: Leaderboard | Mapping[str, Sequence[tuple]]) -> list[str]:
    """Candidate names best first: a leaderboard's ranks, or curves ranked by the last common eval."""
    if isinstance(board, Leaderboard):
        return [r.name for r in board.ranked()]
    curves = {a: pts for a, pts in board.items() if pts}
    baseline = "baseline" if "baseline" in curves else None
    candidates = {a: pts for a, pts in curves.items() if a != baseline}
    if not candidates:
        return []
    common = set.intersection(*({p[0] for p in pts} for pts in candidates.values()))
    step = max(common) if common else None
    rows = rank_curves(curves, baseline or "", quick_steps=step)[0]
    return [r.name for r in rows]


def agreement(quick: Leaderboard | Mapping[str, Sequence[tuple]], full: Leaderboard) -> dict:
    """How well a quick ranking predicts the full one.

    Args:
        quick: a quick leaderboard, or eval curves ``{arm: [(step, loss), ...]}`` (ranked by the
            loss at the last step every candidate reached).
        full: the full leaderboard.

    Returns:
        ``{"quick_winner", "full_winner", "same_winner", "spearman", "top3_overlap",
        "top3_common", "n"}``: Spearman's ρ = 1 − 6Σd²/(n(n²−1)) over the ``n`` candidates ranked
        in both (None when n < 2); ``top3_overlap`` = |top-3 ∩ top-3| / min(3, n).
    """
    q, f = _order(quick), _order(full)
    common = [n for n in f if n in set(q)]
    q_pos = {n: i for i, n in enumerate(x for x in q if x in set(common))}
    f_pos = {n: i for i, n in enumerate(common)}
    n = len(common)
    rho = None
    if n >= 2:
        d2 = sum((q_pos[x] - f_pos[x]) ** 2 for x in common)
        rho = 1.0 - 6.0 * d2 / (n * (n * n - 1))
    q_top = [x for x in q if x in f_pos][:3]
    f_top = common[:3]
    overlap = sorted(set(q_top) & set(f_top), key=f_pos.get)
    return {
        "quick_winner": q[0] if q else None,
        "full_winner": f[0] if f else None,
        "same_winner": bool(q and f and q[0] == f[0]),
        "spearman": rho,
        "top3_overlap": (len(overlap) / min(3, n)) if n else None,
        "top3_common": overlap,
        "n": n,
    }
