"""One error class per kind of failure, each carrying a message a user can act on.

The CLI prints ``str(error)`` and exits non-zero; the GUI shows it in a dialog. Messages are one
sentence that says what is wrong and what to do.
"""

from __future__ import annotations


class GraftError(Exception):
    """Base of every error Graft raises on purpose (as opposed to bugs)."""


class SourceError(GraftError):
    """A source checkpoint cannot be found, read or trusted."""


class ArchitectureError(GraftError):
    """The source's architecture is unknown or its tensors do not match the spec."""


class PlanError(GraftError):
    """The requested target sizes or layer/dimension maps are impossible."""


class StrategyError(GraftError):
    """A strategy name or its parameters are invalid for this plan."""


class ExportError(GraftError):
    """The checkpoint folder cannot be written."""


class RecipeError(GraftError):
    """A recipe file is missing, malformed or from an incompatible version."""


class StatsError(GraftError):
    """A statistic cannot be computed for the given tensor."""


class TrainingError(GraftError):
    """A validation training run cannot start or failed."""


class Cancelled(GraftError):
    """The user cancelled a job; partial results, if any, are consistent."""
