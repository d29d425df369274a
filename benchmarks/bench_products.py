"""The two kernels behind the covariance draw and the statistics table's spectrum estimate, each
against its float32 / single-stream baseline in the same process, on CPU and (where there is one) CUDA.

* Matrix products of the shapes they run (the Llama-2-7B shape shrunk to 2048/5504 with 1024
  covariance samples; the 96-column Krylov estimate of 4096 × 4096 and 4096 × 11008 matrices):
  float32 against bfloat16 (:func:`core.devices.bf16_products_fast` decides which one ``auto``
  picks). On CPU also the whole Krylov estimate (:func:`core.stats.spectrum.top_eigenvalues`) on
  one torch thread, as the table's workers run it.
* The normal fill of a 16 MB block: torch's generator in one call against
  :func:`core.strategies._common.fill_normal` (four parts on two threads).

Measured on this machine (2-core Xeon with AMX, torch 2.13 CPU; ``python benchmarks/bench_products.py``):

    cpu: bf16 products fast here: True
      covariance draw 2048×2049 @ 2049×2048            f32    57.3 ms  bf16    15.5 ms  3.7×
      covariance draw 5504×2049 @ 2049×2048            f32   158.2 ms  bf16    31.0 ms  5.1×
      Krylov          4096×4096 @ 4096×48              f32     8.2 ms  bf16     1.4 ms  5.9×
      Krylov          11008×4096 @ 4096×48             f32    25.0 ms  bf16     4.0 ms  6.2×
      Krylov estimate 4096×4096 bf16 matrix            f32   114.8 ms  bf16    30.4 ms  3.8×
      Krylov estimate 11008×4096 bf16 matrix           f32   309.6 ms  bf16    94.2 ms  3.3×
    normal fill of 4M values: one call 17.8 ms, four parts on two threads 7.9 ms: 2.3×

On a 2-core Zen 5 EPYC (AVX-512 BF16, no AMX; ``--repeat 3``): the draw products 4.6× and 4.8×,
the Krylov products 3.0× and 3.5×, the whole estimates 3.4× and 3.8×, the normal fill 1.0× (one
call already fills 4M values in 10.8 ms there).

Float32 through torch's BLAS (MKL) against oneDNN (:func:`core.devices.onednn_products`, which
``auto`` picks on an AMD CPU), on the same Zen 5 (``--repeat 3``, two runs):

    cpu: float32 products through oneDNN here (auto): True
      covariance draw 2048×2049 @ 2049×2048            BLAS    79.4 ms  oneDNN    41.1 ms  1.9×
      covariance draw 5504×2049 @ 2049×2048            BLAS   214.6 ms  oneDNN   119.7 ms  1.8×
      float32 draw    2048×2048, 1024 samples          BLAS   143.3 ms  oneDNN    80.0 ms  1.8×
      float32 draw    5504×2048, 1024 samples          BLAS   334.0 ms  oneDNN   199.0 ms  1.7×
      Krylov estimate 4096×4096 bf16 matrix            BLAS   125.5 ms  oneDNN    78.1 ms  1.6×
      Krylov estimate 11008×4096 bf16 matrix           BLAS   338.6 ms  oneDNN   207.8 ms  1.6×

(the other run: products 2.1× and 2.1×, draws 1.7× and 1.8×). With oneDNN held to AVX2, as on a
CPU without AVX-512 (``ONEDNN_MAX_CPU_ISA=AVX2 … --float32-only``; MKL runs AVX2 kernels on AMD
anyway), the draw's products and the draws ran 0.96–1.2× MKL's, the Krylov estimates 1.1×: ``auto``
keeps MKL on such a CPU.

Best of ``--repeat`` runs each. Other runs the same day: the draw products 3.7–6.4× and 4.1–5.8×,
the Krylov products 4.8–5.9× and 4.6–6.2×, the normal fill 2.0–2.5×.

Usage: python benchmarks/bench_products.py [--repeat 5] [--float32-only]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_gpu  # noqa: E402
import torch  # noqa: E402

from core.devices import bf16_products_fast  # noqa: E402
from core.strategies._common import fill_normal  # noqa: E402

SHAPES = (
    ("covariance draw", (2048, 2049), (2049, 2048)),
    ("covariance draw", (5504, 2049), (2049, 2048)),
    ("Krylov", (4096, 4096), (4096, 48)),
    ("Krylov", (11008, 4096), (4096, 48)),
)


def timed(fn, repeat: int, device: str) -> float:
    """The best of ``repeat`` wall times of ``fn()`` after one warm-up (``bench_gpu.timed``)."""
    return bench_gpu.timed(lambda _device: fn(), device, warmup=1, repeats=repeat)


def products(device: str, repeat: int) -> None:
    print(f"{device}: bf16 products fast here: {bf16_products_fast(device)}")
    if not bf16_products_fast(device):
        slow_bf16(device)
        return
    gen = torch.Generator(device=device).manual_seed(0)
    for label, (m, k), (_, n) in SHAPES:
        a = torch.randn(m, k, generator=gen, device=device)
        b = torch.randn(k, n, generator=gen, device=device)
        a16, b16 = a.bfloat16(), b.bfloat16()
        high = timed(lambda: a @ b, repeat, device)  # noqa: B023
        low = timed(lambda: a16 @ b16, repeat, device)  # noqa: B023
        shape = f"{m}×{k} @ {k}×{n}"
        print(f"  {label:<16}{shape:<32} f32 {high * 1e3:7.1f} ms  bf16 {low * 1e3:7.1f} ms  {high / low:.1f}×")


def slow_bf16(device: str) -> None:
    """Where bf16 products are emulated (an AVX2 CPU: one 2048² product took 60 s against 0.17 s
    in float32), time one small product each way instead of the shapes above."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(256, 256, generator=gen, device=device)
    high = timed(lambda: a @ a, 3, device)
    low = timed(lambda: a.bfloat16() @ a.bfloat16(), 1, device)
    print(
        f"  256×256 @ 256×256 only: f32 {high * 1e3:.2f} ms  bf16 {low * 1e3:.1f} ms  ({low / high:.0f}× slower in bf16)"
    )


def krylov(repeat: int) -> None:
    from core.stats.spectrum import top_eigenvalues

    if not bf16_products_fast("cpu"):
        print("  Krylov estimate: bf16 not timed (no fast bf16 products on this CPU)")
        return

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the table's workers run it
    try:
        for shape in ((4096, 4096), (11008, 4096)):
            w = (torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 0.02).bfloat16()
            high = timed(lambda: top_eigenvalues(w), repeat, "cpu")  # noqa: B023
            low = timed(lambda: top_eigenvalues(w, products=torch.bfloat16), repeat, "cpu")  # noqa: B023
            label = f"{shape[0]}×{shape[1]} bf16 matrix"
            print(
                f"  Krylov estimate {label:<32} f32 {high * 1e3:7.1f} ms  bf16 {low * 1e3:7.1f} ms  {high / low:.1f}×"
            )
    finally:
        torch.set_num_threads(threads)


def float32_gemms(repeat: int) -> None:
    """The draw's float32 products (``out += left @ right``) through torch's BLAS and through oneDNN
    (:class:`core.devices.RightProduct`, ``GRAFT_FLOAT32_GEMM``), and the whole float32 draw of a
    2048 × 2048 and a 5504 × 2048 matrix at 1024 samples (:func:`core.strategies.covariance._draw`)
    each way, and the float32 Krylov estimate on one thread: what a CPU without fast bf16 products runs."""
    from core.devices import RightProduct, onednn_products
    from core.stats.spectrum import top_eigenvalues
    from core.strategies.covariance import _draw

    def both(label: str, run) -> None:
        """Time ``run()`` under each library's ``GRAFT_FLOAT32_GEMM`` (``run`` reads it when called)."""
        took = {}
        for gemm in ("blas", "onednn"):
            os.environ["GRAFT_FLOAT32_GEMM"] = gemm
            took[gemm] = timed(run(), repeat, "cpu")
        print(
            f"  {label:<48} BLAS {took['blas'] * 1e3:7.1f} ms  oneDNN {took['onednn'] * 1e3:7.1f} ms  "
            f"{took['blas'] / took['onednn']:.1f}×"
        )

    print(f"cpu: float32 products through oneDNN here (auto): {onednn_products('cpu')}")
    saved = os.environ.get("GRAFT_FLOAT32_GEMM")
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    try:
        for label, (m, k), (_, n) in SHAPES[:2]:
            left, right, out = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen), torch.zeros(m, n)

            def product(left=left, right=right, out=out):
                made = RightProduct(right, "cpu")
                return lambda: made.add_to(out, left)

            both(f"{label:<16}{m}×{k} @ {k}×{n}", product)
        for m, n in ((2048, 2048), (5504, 2048)):
            p, q = torch.randn(m, 1024, generator=gen), torch.randn(n, 1024, generator=gen)
            dr, dc = torch.rand(m, generator=gen) + 0.1, torch.rand(n, generator=gen) + 0.1

            def draw(p=p, dr=dr, q=q, dc=dc):
                return lambda: _draw(p, dr, q, dc, 0.0, torch.Generator().manual_seed(1), "cpu")

            both(f"float32 draw    {m}×{n}, 1024 samples", draw)
        torch.set_num_threads(1)  # as the table's workers run it
        for shape in ((4096, 4096), (11008, 4096)):
            w = (torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 0.02).bfloat16()
            both(f"Krylov estimate {shape[0]}×{shape[1]} bf16 matrix", lambda w=w: lambda: top_eigenvalues(w))
    finally:
        torch.set_num_threads(threads)
        if saved is None:
            os.environ.pop("GRAFT_FLOAT32_GEMM", None)
        else:
            os.environ["GRAFT_FLOAT32_GEMM"] = saved


def normals(repeat: int) -> None:
    out = torch.empty(4 << 20)
    gen = torch.Generator().manual_seed(0)
    one = timed(lambda: out.normal_(generator=gen), repeat, "cpu")
    parts = timed(lambda: fill_normal(out, gen), repeat, "cpu")
    print(
        f"normal fill of 4M values: one call {one * 1e3:.1f} ms, four parts on two threads {parts * 1e3:.1f} ms: "
        f"{one / parts:.1f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--float32-only",
        action="store_true",
        help="only BLAS against oneDNN in float32 (with ONEDNN_MAX_CPU_ISA=AVX2 bf16 products are emulated: minutes)",
    )
    args = parser.parse_args()
    if args.float32_only:
        float32_gemms(args.repeat)
        return
    products("cpu", args.repeat)
    krylov(args.repeat)
    float32_gemms(args.repeat)
    normals(args.repeat)
    if torch.cuda.is_available():
        products("cuda", args.repeat)
    else:
        print("no CUDA device here: the GPU rows are left out")


if __name__ == "__main__":
    main()
