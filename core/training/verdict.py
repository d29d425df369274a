"""The verdict of a validation run: does a transferred start reach the baseline's loss sooner?

For each arm other than the baseline, against the baseline's eval loss at its last eval step:

- **steps_to_baseline**: the first eval step at which the arm's eval loss is ≤ that loss
  (``None`` if it never gets there within the run);
- **speedup**: the baseline's last eval step ÷ ``steps_to_baseline`` (``None`` when not reached;
  reached at step 0 means the arm starts where the baseline ends: ``speedup`` is ``None`` and
  ``reached_at_start`` is True, as the ratio is unbounded);
- **final_eval_loss_diff**: the arm's final eval loss minus the baseline's (negative = better),
  and the same for the metric (perplexity or accuracy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Verdict:
    arm: str
    baseline: str
    baseline_final_step: int
    baseline_final_eval_loss: float
    final_eval_loss: float
    final_eval_loss_diff: float
    final_metric_diff: float | None
    steps_to_baseline: int | None
    speedup: float | None
    reached_at_start: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        """One line for people: what the arm achieved against the baseline."""
        if self.reached_at_start:
            head = f"{self.arm} starts at or below the baseline's final eval loss"
        elif self.steps_to_baseline is None:
            head = f"{self.arm} does not reach the baseline's final eval loss ({self.baseline_final_eval_loss:.3f}) within {self.baseline_final_step} steps"
        else:
            head = (
                f"{self.arm} reaches the baseline's step-{self.baseline_final_step} eval loss "
                f"({self.baseline_final_eval_loss:.3f}) at step {self.steps_to_baseline}: {self.speedup:.1f}x faster"
            )
        diff = self.final_eval_loss_diff
        if diff != diff:  # NaN: an arm diverged
            tail = "its final eval loss is not comparable with the baseline's"
        elif abs(diff) < 5e-4:
            tail = "final eval loss equal to the baseline's"
        else:
            tail = f"final eval loss {abs(diff):.3f} {'lower' if diff < 0 else 'higher'} than the baseline's"
        return f"{head}; {tail}"


def compute_verdicts(evals: dict[str, list[tuple[int, float, float | None]]], baseline: str) -> dict[str, Verdict]:
    """Verdicts for every arm but ``baseline`` from ``{arm: [(step, eval_loss, metric), ...]}``.

    Only steps that the baseline was also evaluated at count, so a partial (cancelled) run
    compares like with like. Returns ``{}`` when the baseline has no evaluation past step 0.
    """
    base = sorted(evals.get(baseline, []))
    if not base or base[-1][0] == 0:
        return {}
    final_step, final_loss, final_metric = base[-1]
    out: dict[str, Verdict] = {}
    for arm, points in evals.items():
        if arm == baseline:
            continue
        points = sorted(p for p in points if p[0] <= final_step)
        if not points:
            continue
        reached = next((s for s, loss, _ in points if loss <= final_loss), None)
        _, last_loss, last_metric = points[-1]
        metric_diff = None if last_metric is None or final_metric is None else last_metric - final_metric
        out[arm] = Verdict(
            arm=arm,
            baseline=baseline,
            baseline_final_step=final_step,
            baseline_final_eval_loss=final_loss,
            final_eval_loss=last_loss,
            final_eval_loss_diff=last_loss - final_loss,
            final_metric_diff=metric_diff,
            steps_to_baseline=reached,
            speedup=(final_step / reached) if reached else None,
            reached_at_start=reached == 0,
        )
    return out
