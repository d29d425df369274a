"""Job functions for ``core.process`` tests: importable by name, so a child process can run them."""

from __future__ import annotations

import os
import time

import torch

from core.errors import PlanError


def count(n: int, *, progress, cancel, scale: float = 1.0):
    """Yields ``n`` tensors, reports progress, returns a summary."""
    for i in range(n):
        cancel.check()
        progress((i + 1) / n, f"item {i}")
        yield torch.full((3,), i * scale)
    return {"pid": os.getpid(), "n": n}


def fail(*, progress, cancel):
    raise PlanError("the target has 7 heads but hidden 96 does not divide by 7; pick a divisor")


def forever(*, progress, cancel):
    while True:
        cancel.check()
        time.sleep(0.01)
        yield 1


def crash(*, progress, cancel):
    progress(0.5, "about to die")
    os._exit(3)


def ignore_cancel(*, progress, cancel):
    progress(0.0, "started")
    while True:  # never checks the token
        time.sleep(0.05)
