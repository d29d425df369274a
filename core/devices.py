"""Which compute devices this machine offers torch, and why the others are missing."""

from __future__ import annotations

import functools
import logging

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


#: How matrix products may run: ``"auto"`` (bfloat16 where :func:`bf16_products_fast` says so,
#: else float32), or one of them always.
PRODUCT_PRECISIONS = ("auto", "float32", "bfloat16")


def bf16_products_fast(device) -> bool:
    """Whether bfloat16 matrix products beat float32 ones by several times on ``device``.

    True on a CPU with AMX tiles for bf16 (Sapphire Rapids and later Xeons) or with AVX-512 BF16
    dot products (Zen 4 and 5, Cooper Lake), and on a CUDA GPU with bf16 tensor cores (compute
    capability 8 and up). Measured with ``benchmarks/bench_products.py`` on 2-core machines, a
    5504×2049 by 2049×2048 product runs 4.1–5.8× faster in bf16 with AMX (a Xeon) and 4.8× with
    AVX-512 BF16 (a Zen 5 EPYC), a 4096×4096 by 4096×48 one 4.8–5.9× and 3.0×. Elsewhere a bf16
    product is emulated (on a 2-core AVX2 EPYC the 2048² product took 60 s against 0.17 s in
    float32), so float32 is kept. Decided by the CPU's flags, not by timing, so that ``auto``
    gives the same bytes on every run of one machine.
    """
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(torch.device(device))[0] >= 8
    if kind != "cpu":
        return False
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    try:
        found = capabilities() if capabilities else {}
    except Exception:  # an older torch, or a platform it cannot query: keep float32
        return False
    return bool(found.get("amx_bf16") or found.get("avx512_bf16"))


def product_dtype(precision: str, device):
    """The dtype the big matrix products of a sampling or statistics step run in, for a
    :data:`PRODUCT_PRECISIONS` choice on ``device``."""
    import torch

    if precision == "bfloat16" and torch.device(device).type == "cpu" and not bf16_products_fast(device):
        _warn_slow_bf16()
    if precision == "bfloat16" or (precision == "auto" and bf16_products_fast(device)):
        return torch.bfloat16
    return torch.float32


@functools.cache
def _warn_slow_bf16() -> None:
    # measured on a 2-core AVX2 EPYC: a 2048×2049 by 2049×2048 product took 60 s in bf16, 0.17 s in float32
    logging.getLogger(__name__).warning(
        "this CPU has no fast bfloat16 matrix products (neither AMX nor AVX-512 BF16): products=bfloat16 can take hundreds of "
        "times longer than float32 here; use products=auto or float32"
    )
