"""A cancel token that trips itself once a job reports it is under way (0 < fraction < 1)."""

from __future__ import annotations

from core.progress import CancelToken


class CancelMidway:
    """``progress`` for a job: records every fraction and cancels ``token`` at the first partial one."""

    def __init__(self) -> None:
        self.token = CancelToken()
        self.seen: list[float] = []

    def progress(self, fraction: float, message: str) -> None:
        self.seen.append(fraction)
        if 0 < fraction < 1:
            self.token.cancel()
