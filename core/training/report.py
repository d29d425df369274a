"""A validation run's results: curves, evaluations, verdicts; saved as JSON and CSV.

Files written by :meth:`ValidationReport.write` into the run folder:

- ``validation.json``: everything (config, arms, every step's metrics, verdicts, status);
- ``validation_curves.csv``: one row per arm and step (``arm, step, train_loss, lr, eval_loss,
  eval_metric, metric_name, batch_hash, distill_loss``), eval columns empty between eval steps
  (``distill_loss`` empty without a teacher);
- ``validation_verdict.csv``: one row per non-baseline arm.

The PNG of the curves is drawn by the app (``app/render.py``), not by core.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.training.loop import StepMetrics
from core.training.verdict import Verdict, compute_verdicts

REPORT_VERSION = 1
JSON_NAME = "validation.json"
CURVES_NAME = "validation_curves.csv"
VERDICT_NAME = "validation_verdict.csv"
CSV_FIELDS = (
    "arm",
    "step",
    "train_loss",
    "lr",
    "eval_loss",
    "eval_metric",
    "metric_name",
    "batch_hash",
    "distill_loss",
)


@dataclass
class ValidationReport:
    """Results of a validation run, complete or partial (``status`` says which).

    ``records`` holds, per arm, one :class:`StepMetrics` per completed step (step 0 first).
    A cancelled run keeps only the steps every arm completed, so all curves have equal length.
    """

    task: str
    metric: str
    config: dict
    arms: dict[str, dict]  # name → {"description", "trainable", "load": LoadReport dict}
    baseline: str | None
    records: dict[str, list[StepMetrics]] = field(default_factory=dict)
    status: str = "running"  # "running", "complete", "cancelled" or "failed: <why>"
    device: str = "cpu"
    world_size: int = 1
    elapsed_s: float = 0.0
    version: int = REPORT_VERSION
    #: with a teacher: ``{"kind", "source", "weight", "temperature", "seconds", "ms_per_step"}``.
    teacher: dict | None = None
    #: trained models written by ``save_trained``: arm → folder.
    saved: dict[str, str] = field(default_factory=dict)

    # -- views ---------------------------------------------------------------------------------
    @property
    def steps_completed(self) -> int:
        return min((r[-1].step for r in self.records.values() if r), default=0)

    def train_curves(self) -> dict[str, list[tuple[int, float]]]:
        """``{arm: [(step, train_loss), ...]}`` (steps ≥ 1)."""
        return {a: [(m.step, m.train_loss) for m in r if m.train_loss is not None] for a, r in self.records.items()}

    def eval_curves(self) -> dict[str, list[tuple[int, float]]]:
        """``{arm: [(step, eval_loss), ...]}`` including step 0."""
        return {a: [(m.step, m.eval_loss) for m in r if m.eval_loss is not None] for a, r in self.records.items()}

    def evals(self) -> dict[str, list[tuple[int, float, float | None]]]:
        return {
            a: [(m.step, m.eval_loss, m.eval_metric) for m in r if m.eval_loss is not None]
            for a, r in self.records.items()
        }

    @property
    def verdicts(self) -> dict[str, Verdict]:
        return compute_verdicts(self.evals(), self.baseline) if self.baseline else {}

    def summary(self) -> str:
        """A few lines for people: status, eval losses by step, the verdicts."""
        lines = [f"{self.task} on {self.device}: {self.status} after {self.steps_completed} steps"]
        for arm, points in self.eval_curves().items():
            lines.append(f"  {arm:>14}: " + "  ".join(f"{s}:{v:.3f}" for s, v in points))
        lines += ["  " + v.sentence() for v in self.verdicts.values()]
        return "\n".join(lines)

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "status": self.status,
            "task": self.task,
            "metric": self.metric,
            "device": self.device,
            "world_size": self.world_size,
            "elapsed_s": self.elapsed_s,
            "steps_completed": self.steps_completed,
            "config": self.config,
            "baseline": self.baseline,
            "arms": self.arms,
            "verdicts": {a: v.to_dict() for a, v in self.verdicts.items()},
            "eval": {a: [list(p) for p in pts] for a, pts in self.evals().items()},
            "records": {a: [m.to_dict() for m in r] for a, r in self.records.items()},
            "teacher": self.teacher,
            "saved": self.saved,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ValidationReport:
        fields_ = StepMetrics.__dataclass_fields__
        records = {
            a: [StepMetrics(**{k: v for k, v in m.items() if k in fields_}) for m in r]
            for a, r in data["records"].items()
        }
        return cls(
            task=data["task"],
            metric=data["metric"],
            config=data["config"],
            arms=data["arms"],
            baseline=data["baseline"],
            records=records,
            status=data["status"],
            device=data.get("device", "cpu"),
            world_size=data.get("world_size", 1),
            elapsed_s=data.get("elapsed_s", 0.0),
            version=data.get("version", 1),
            teacher=data.get("teacher"),
            saved=dict(data.get("saved") or {}),
        )

    @classmethod
    def load(cls, folder: str | Path) -> ValidationReport:
        return cls.from_dict(json.loads((Path(folder) / JSON_NAME).read_text()))

    def write(self, folder: str | Path) -> list[Path]:
        """Write the JSON and CSV files into ``folder`` (each atomically); returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / JSON_NAME, folder / CURVES_NAME, folder / VERDICT_NAME]
        _atomic(paths[0], lambda fh: json.dump(self.to_dict(), fh, indent=1))

        def curves(fh):
            writer = csv.writer(fh)
            writer.writerow(CSV_FIELDS)
            for records in self.records.values():
                for m in records:
                    writer.writerow([_cell(getattr(m, f)) for f in CSV_FIELDS])

        def verdicts(fh):
            writer = csv.writer(fh)
            names = list(Verdict.__dataclass_fields__)
            writer.writerow(names)
            for v in self.verdicts.values():
                writer.writerow([_cell(getattr(v, n)) for n in names])

        _atomic(paths[1], curves)
        _atomic(paths[2], verdicts)
        return paths


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        write(fh)
    os.replace(tmp, path)
