"""Which compute devices this machine offers torch, and why the others are missing."""

from __future__ import annotations

#: The devices a recipe may name, in the order the app offers them.
DEVICES = ("cpu", "cuda", "mps")


def device_availability() -> dict[str, str | None]:
    """``device → None`` where torch can use it here, else one sentence saying why not.

    Asking CUDA whether it is there does not create a context, so this is safe in a process that
    later forks job children.
    """
    import torch

    out: dict[str, str | None] = {"cpu": None}
    if torch.cuda.is_available():
        out["cuda"] = None
    elif torch.version.cuda is None:
        out["cuda"] = "this torch build has no CUDA support (a CPU-only wheel); install a CUDA build of torch to use a GPU"
    else:
        out["cuda"] = "torch finds no CUDA GPU on this machine (check the driver and CUDA_VISIBLE_DEVICES)"
    mps = getattr(torch.backends, "mps", None)
    out["mps"] = None if mps is not None and mps.is_available() else "Apple's Metal (mps) is not available on this machine"
    return out
