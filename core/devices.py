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
    found = _cpu_flags()
    return bool(found.get("amx_bf16") or found.get("avx512_bf16"))


def _cpu_flags() -> dict:
    """torch's report of this CPU (flags, name); empty where it cannot be read (an older torch, or
    a platform it cannot query), which keeps every choice made from it at its default."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    try:
        return capabilities() if capabilities else {}
    except Exception:
        return {}


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


#: Which library runs the big float32 products on a CPU: ``"auto"`` (:func:`onednn_products`),
#: ``"blas"`` (torch's BLAS: MKL on x86) or ``"onednn"``; set by ``GRAFT_FLOAT32_GEMM`` to compare.
FLOAT32_GEMMS = ("auto", "blas", "onednn")


def onednn_products(device) -> bool:
    """Whether the big float32 products of a draw on ``device`` go through oneDNN instead of torch's BLAS.

    True on an AMD (or Hygon) x86 CPU with AVX-512 (Zen 4 and later) when this torch has oneDNN,
    the case ``GRAFT_FLOAT32_GEMM`` (``auto``, ``blas``, ``onednn``) does not override. torch's BLAS
    on x86 is MKL, which picks its kernels by the CPU's vendor: on an AMD CPU it runs its AVX2
    kernels, whatever the CPU has, while oneDNN picks them by the instruction sets it finds. On a
    2-core Zen 5 EPYC ``benchmarks/bench_products.py`` measured the covariance draw's products
    1.8–2.1× faster through oneDNN (about 300–400 GFLOP/s against MKL's 140–210), the whole float32
    draw 1.7–1.8×, the statistics table's float32 Krylov estimate 1.6×. With oneDNN held to AVX2
    there (``ONEDNN_MAX_CPU_ISA=AVX2``, as on a Zen 2 or 3) oneDNN's products and draws ran 0.96–1.2× MKL's,
    so an AMD CPU without AVX-512 keeps MKL, as an Intel CPU does. Told apart by the
    SSE4a flag (AMD's alone) or the CPU's name, and the AVX-512F flag, not by timing: a choice that
    gives the same bytes on every run of one machine (the two libraries sum in other orders, so
    the values differ between them in the last bits).
    """
    import os

    import torch

    choice = os.environ.get("GRAFT_FLOAT32_GEMM", "auto")
    if choice not in FLOAT32_GEMMS:
        from core.errors import RecipeError

        raise RecipeError(f"GRAFT_FLOAT32_GEMM={choice!r} is unknown; set it to {', '.join(FLOAT32_GEMMS)} or unset it")
    if torch.device(device).type != "cpu" or choice == "blas":
        return False
    if not torch.backends.mkldnn.is_available() or _onednn_linear() is None:
        return False
    if choice == "onednn":
        return True
    found = _cpu_flags()
    amd = bool(found.get("sse4a")) or str(found.get("cpu_name", "")).startswith(("AMD", "Hygon"))
    return amd and bool(found.get("avx512_f"))


def _onednn_linear():
    """torch's oneDNN linear layer on plain (strided) tensors, or None where this torch lacks it.

    ``torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")`` is ``x @ wᵀ``, the op
    torch's compiler emits for a linear layer on a CPU; it reads ``w`` through its strides, so a
    transposed view needs no copy.
    """
    import torch

    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def onednn_matmul(a, b):
    """``a @ b`` of float32 CPU matrices through oneDNN's linear layer (``x @ wᵀ``), each operand read
    through its strides: ``a`` row-major is the layer's input and ``bᵀ`` its weight; ``a`` a
    transposed view (``xᵀ``, as the spectrum estimate's ``Wᵀ Q``) is the weight of ``(bᵀ a)ᵀ``
    instead, only the thin ``bᵀ`` copied (reading a transposed input was 2–3× slower there).
    Needs :func:`onednn_products`; the result may be a transposed view."""
    linear = _onednn_linear()
    if not a.is_contiguous() and a.T.is_contiguous():
        return linear(b.T.contiguous(), a, None, "none", [], "").T
    return linear(a.contiguous(), b.T, None, "none", [], "")


class RightProduct:
    """``out += left @ right`` for many row blocks ``left`` against one float32 ``right`` (k × n).

    Through oneDNN where :func:`onednn_products` says so (:func:`onednn_matmul`: ``right`` read in
    place, as the transposed weight of a linear layer), else torch's BLAS, accumulating straight
    into ``out``.
    """

    def __init__(self, right, device) -> None:
        self._right = right
        self._onednn = bool(right.shape[0]) and onednn_products(device)

    def add_to(self, out, left) -> None:
        """``out += left @ right`` (float32; ``out`` is rows × n)."""
        if self._onednn:
            out.add_(onednn_matmul(left, self._right))
        else:
            out.addmm_(left, self._right)
