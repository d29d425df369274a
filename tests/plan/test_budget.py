"""Absurd target sizes are refused from the sizes alone, naming the numbers, before any work.

``--hidden 999999999999`` used to spin in the divisor hint (a loop up to hidden), and
``--ffn 1000000000 --strategy growth`` / ``--layers 1000000`` ate gigabytes building dimension
maps and tensor tables before failing. Each runs here as a real ``graft`` process whose peak
memory is measured.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.budget import Estimate, check_disk, check_memory, estimate
from core.errors import ExportError, PlanError

#: runs the CLI and reports its own peak RSS last on stderr: VmHWM, this process image's high-water mark.
#: (RUSAGE_CHILDREN is the largest child this test process ever had, and even RUSAGE_SELF keeps the
#: parent's peak across fork + exec, so both grow with the test suite.)
_MEASURED = (
    "import re, sys\n"
    "from app.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    hwm = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "    print('peak-kb', hwm, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_graft(*args: str, timeout: float = 120) -> tuple[int, str, int]:
    """(exit code, stderr, peak memory of the child in MB)."""
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, timeout=timeout)
    err, _, peak = done.stderr.rstrip().rpartition("peak-kb ")
    return done.returncode, err, int(peak) // 1024


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--hidden", "999999999999"], ["not divisible by 12 heads", "e.g. 7, 9, 11, 13"]),
        (["--hidden", "10000000", "--heads", "10"], ["largest tensor", "of memory to build", "available"]),
        (["--ffn", "1000000000", "--strategy", "growth"], ["intermediate.dense.weight (1000000000 × 384)", "TB"]),
        (["--layers", "1000000", "--strategy", "growth"], ["16,000,008 tensors", "just to plan"]),
    ],
)
def test_absurd_sizes_are_refused_quickly_and_in_little_memory(tmp_path, flags, needles):
    code, err, peak_mb = run_graft("transfer", "demo", *flags, "--out", str(tmp_path / "o"))
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("graft: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in line, line
    assert peak_mb < 1500, f"{peak_mb} MB"  # the process itself (torch + transformers) is ~300 MB
    assert not (tmp_path / "o").exists()


def test_the_estimate_matches_the_plan(tmp_path):
    from core.architectures import detect
    from core.plan import TargetSizes, make_plan, resolve_sizes
    from core.sources import open_source

    source = open_source("demo")
    spec, config = detect(source)
    sizes = TargetSizes(layers=8, hidden=512, ffn=1024, heads=8)
    plan = make_plan(source, sizes, values={"default": {"method": "growth", "params": {"allow_inexact": True}}})
    est = estimate(spec, source, resolve_sizes(spec, spec.sizes(config), sizes))
    assert est.n_tensors == len(plan.tensors)
    assert est.total_bytes == sum(t.numel * 4 for t in plan.tensors if t.dtype == "F32") + sum(
        t.numel * 8 for t in plan.tensors if t.dtype == "I64"
    )
    largest = max(plan.tensors, key=lambda t: t.numel)
    assert est.largest_name == largest.name and list(est.largest_shape) == largest.shape


def test_memory_and_disk_refusals_name_both_numbers(tmp_path):
    est = Estimate(
        total_bytes=10**12,
        largest_name="w",
        largest_shape=(10**5, 10**5),
        largest_bytes=4 * 10**10,
        build_bytes=8 * 10**10,
        plan_bytes=10**6,
        n_tensors=10,
    )
    with pytest.raises(PlanError, match=r"w \(100000 × 100000\), needs about 80\.0 GB .* 1\.0 GB are available"):
        check_memory(est, memory=10**9)
    check_memory(est, memory=10**11)  # fits
    with pytest.raises(ExportError, match=r"needs 1000\.0 PB but only .* free"):
        check_disk(10**18, tmp_path / "not" / "yet" / "there")
    check_disk(1000, tmp_path / "out")
