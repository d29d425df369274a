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
        out["cuda"] = (
            "this torch build has no CUDA support (a CPU-only wheel); install a CUDA build of torch to use a GPU"
        )
    else:
        out["cuda"] = "torch finds no CUDA GPU on this machine (check the driver and CUDA_VISIBLE_DEVICES)"
    mps = getattr(torch.backends, "mps", None)
    out["mps"] = (
        None if mps is not None and mps.is_available() else "Apple's Metal (mps) is not available on this machine"
    )
    return out


def check_device_name(name: object) -> str:
    """``name`` if it spells a device Graft can use (``cpu``, ``cuda``, ``cuda:N``, ``mps``), without importing torch.

    Raises:
        RecipeError: any other spelling.
    """
    from core.errors import RecipeError

    text = name if isinstance(name, str) else ""
    kind, sep, index = text.partition(":")
    if kind not in DEVICES or (sep and (kind == "cpu" or not index.isdigit())):
        raise RecipeError(f"device {name!r} is unknown; use cpu, cuda, cuda:N (a GPU number) or mps")
    return text


def check_device_available(name: str) -> None:
    """Refuse a device this machine lacks, with the reason, before any work is done on it.

    Raises:
        RecipeError: unknown spelling, no such device here, or a GPU number past the last GPU.
    """
    from core.errors import RecipeError

    kind, _, index = check_device_name(name).partition(":")
    why = device_availability().get(kind)
    if why is not None:
        raise RecipeError(f"device {name!r} cannot be used here: {why} — or choose --device cpu")
    if kind == "cuda" and index:
        import torch

        if int(index) >= torch.cuda.device_count():
            raise RecipeError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                "numbered from 0"
            )
