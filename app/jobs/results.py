"""What the app's jobs hand back to the GUI thread: plain data, or core objects the GUI only reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OpenedSource:
    """A source once opened and described (what the Sources and Model panels show)."""

    location: str
    source: Any  # core.sources.Source
    family: str
    sizes: dict[str, int]  # the source's named dimension sizes
    roles: list[Any]  # core.architectures.TensorRole, in file order
    architecture_error: str | None = None
    editable: frozenset = frozenset()  # target sizes this family lets the user change


@dataclass
class PlanResult:
    recipe: Any  # core.recipe.Recipe
    plan: Any  # core.plan.Plan
    cache: dict = field(default_factory=dict)  # shared by previews and materialise of this plan


@dataclass
class Materialised:
    """A target built in full on its device (in a child process): what the overview shows."""

    plan: Any
    summaries: list  # core.stats.TensorSummary, one per target tensor
    num_parameters: int
    device: str = "cpu"
    recipe: Any = None  # core.recipe.Recipe of the plan it was built from (set by the workspace)


@dataclass
class Compared:
    """A finished comparison: the leaderboard as JSON data and the history file that keeps it."""

    board: dict  # core.leaderboard.Leaderboard.to_dict()
    history_path: str | None = None


@dataclass
class Diffed:
    """Two checkpoints compared (what the Compare tab shows); the opened sources serve its detail jobs."""

    a: Any  # core.sources.Source
    b: Any  # core.sources.Source
    diff: Any  # core.stats.diff.CheckpointDiff
    table: Any  # core.stats.ModelTable of the diff's metrics, layer × role
    metrics: dict[str, str]  # metric → label (core.stats.diff.DIFF_METRICS)
