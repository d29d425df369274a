"""Trusting a source before its weights are transferred: the recipe's hashes, and finite values.

An export's recipe records where its source came from and the SHA-256 of every shard. Replaying
that recipe on a source whose bytes changed would give other bytes with no warning, so
:func:`verify_recorded_hashes` compares them first and stops on a mismatch unless the user says
to go on. :func:`check_finite` stops a transfer of a source holding NaN or Inf weights (which
would export NaNs, or train to NaN) unless the user opts in. Both cost one read of each shard
the first time (one pass gives both answers, see :mod:`core.sources.scan`) and nothing after.
"""

from __future__ import annotations

import logging

from core.errors import RecipeError, SourceError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)

CHANGED_FLAG = "--allow-changed-source"
NONFINITE_FLAG = "--allow-nonfinite"


def record(source) -> dict:
    """Identity of the source: where it came from and a SHA-256 of every shard."""
    return {"identity": dict(source.identity), "shards": source.file_hashes()}


def verify_recorded_hashes(recorded: dict | None, source, *, allow_changed: bool = False) -> list[str]:
    """Compare a recipe's recorded shard hashes with ``source``'s.

    Args:
        recorded: the recipe's ``provenance`` (may be empty: nothing to verify).
        allow_changed: log the differences instead of raising.

    Returns:
        The differences found (empty when the source is the recorded one).

    Raises:
        RecipeError: the source differs and ``allow_changed`` is False.
    """
    shards = (recorded or {}).get("shards")
    if not shards:
        return []
    if not isinstance(shards, dict) or not all(isinstance(v, str) for v in shards.values()):
        raise RecipeError(
            "the recipe's provenance.shards must map file names to SHA-256 strings; "
            "remove the provenance block to replay it without verification"
        )
    current = source.file_hashes()
    problems = []
    for name, digest in shards.items():
        if name not in current:
            problems.append(f"{name} is no longer part of the source")
        elif current[name] != digest:
            problems.append(f"{name} has SHA-256 {current[name][:12]}… but the recipe recorded {digest[:12]}…")
    problems += [f"{name} is new" for name in current if name not in shards]
    if problems and not allow_changed:
        more = f" (and {len(problems) - 1} more difference(s))" if len(problems) > 1 else ""
        raise RecipeError(
            f"the source {source.display_name} changed since this recipe was written: "
            f"{problems[0]}{more}; open the recorded source, or pass {CHANGED_FLAG} to go on"
        )
    for problem in problems:
        log.warning("source changed since the recipe was written: %s", problem)
    return problems


def check_finite(
    source, *, allow_nonfinite: bool = False, progress: ProgressFn = no_progress, cancel: CancelToken = NEVER_CANCELLED
):
    """Scan ``source``'s values (cached after the first time) and refuse NaN/Inf weights.

    Returns:
        The :class:`~core.sources.base.SourceScan`.

    Raises:
        SourceError: non-finite values and ``allow_nonfinite`` is False.
    """
    scan = source.scan(progress=progress, cancel=cancel)
    if scan.nonfinite and not allow_nonfinite:
        raise SourceError(
            f"the source has {scan.summary()}; repair or re-download it, or pass {NONFINITE_FLAG} to transfer it anyway"
        )
    if scan.nonfinite:
        log.warning("transferring a source with %s", scan.summary())
    return scan
