"""Which dtype the big matrix products run in: decided by the CPU's flags, the same on every run."""

from __future__ import annotations

import logging

import pytest
import torch

from core import devices
from core.devices import bf16_products_fast, product_dtype

AVX2_EPYC = {"avx2": True, "fma3": True, "avx512_bf16": False, "amx_bf16": False}
ZEN5_EPYC = {"avx2": True, "avx512_f": True, "avx512_bf16": True}
SAPPHIRE_RAPIDS = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": True}


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set the flags torch reports for this CPU (the query is torch's, not ours)."""

    def set_flags(flags):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(flags))

    return set_flags


@pytest.mark.parametrize(
    ("flags", "fast"), [(AVX2_EPYC, False), (ZEN5_EPYC, True), (SAPPHIRE_RAPIDS, True), ({}, False)]
)
def test_auto_picks_bf16_only_where_the_cpu_multiplies_it_natively(cpu_flags, flags, fast):
    cpu_flags(flags)
    assert bf16_products_fast("cpu") is fast
    assert product_dtype("auto", "cpu") == (torch.bfloat16 if fast else torch.float32)
    assert product_dtype("float32", "cpu") == torch.float32


def test_a_cpu_whose_flags_cannot_be_read_keeps_float32(monkeypatch):
    def broken():
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "get_capabilities", broken)
    assert not bf16_products_fast("cpu")
    assert product_dtype("auto", "cpu") == torch.float32


def test_asking_for_bf16_where_it_is_emulated_warns_once(cpu_flags, caplog):
    cpu_flags(AVX2_EPYC)
    devices._warn_slow_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="core.devices"):
        assert product_dtype("bfloat16", "cpu") == torch.bfloat16
        assert product_dtype("bfloat16", "cpu") == torch.bfloat16
    warnings = [r.getMessage() for r in caplog.records if r.name == "core.devices"]
    assert len(warnings) == 1 and "no fast bfloat16" in warnings[0]
    devices._warn_slow_bf16.cache_clear()
    cpu_flags(ZEN5_EPYC)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.devices"):
        product_dtype("bfloat16", "cpu")
    assert not [r for r in caplog.records if r.name == "core.devices"]


def test_a_device_that_is_neither_cpu_nor_cuda_keeps_float32():
    assert not bf16_products_fast("meta")


# -- which library runs the big float32 products -----------------------------------------------

needs_onednn = pytest.mark.skipif(
    devices._onednn_linear() is None or not torch.backends.mkldnn.is_available(),
    reason="this torch build has no oneDNN linear layer (torch.ops.mkldnn._linear_pointwise)",
)
ZEN3_EPYC = {"avx2": True, "fma3": True, "sse4a": True, "cpu_name": "AMD EPYC 7B13"}
ICE_LAKE = {"avx2": True, "avx512_f": True, "cpu_name": "Intel(R) Xeon(R) Platinum 8375C CPU"}


@needs_onednn
@pytest.mark.parametrize(
    ("flags", "onednn"),
    [
        (ZEN3_EPYC, False),  # AVX2 only: oneDNN and MKL run alike there
        ({**ZEN5_EPYC, "sse4a": True}, True),
        ({"avx2": True, "avx512_f": True, "cpu_name": "AMD EPYC 9B45"}, True),
        ({"avx2": True, "avx512_f": True, "cpu_name": "Hygon C86 7490"}, True),
        (ICE_LAKE, False),
        (SAPPHIRE_RAPIDS, False),
        ({}, False),
    ],
)
def test_float32_products_go_through_onednn_on_amd_cpus_with_avx512_only(cpu_flags, monkeypatch, flags, onednn):
    monkeypatch.delenv("GRAFT_FLOAT32_GEMM", raising=False)
    cpu_flags(flags)
    assert devices.onednn_products("cpu") is onednn
    assert not devices.onednn_products("meta")


@needs_onednn
def test_the_environment_picks_the_float32_library_and_a_typo_is_one_sentence(cpu_flags, monkeypatch):
    from core.errors import RecipeError

    cpu_flags(ICE_LAKE)
    monkeypatch.setenv("GRAFT_FLOAT32_GEMM", "onednn")
    assert devices.onednn_products("cpu")
    cpu_flags({**ZEN5_EPYC, "sse4a": True})
    monkeypatch.setenv("GRAFT_FLOAT32_GEMM", "blas")
    assert not devices.onednn_products("cpu")
    monkeypatch.setenv("GRAFT_FLOAT32_GEMM", "mkl")
    with pytest.raises(RecipeError, match="GRAFT_FLOAT32_GEMM='mkl' is unknown; set it to auto, blas, onednn"):
        devices.onednn_products("cpu")


@needs_onednn
def test_onednn_products_equal_the_blas_ones_for_every_operand_layout():
    g = torch.Generator().manual_seed(0)
    x, b = torch.randn(300, 200, generator=g), torch.randn(200, 48, generator=g)
    q = torch.randn(300, 48, generator=g)
    cases = [
        (x, b),  # row-major times row-major
        (x.T, q),  # a transposed view: Wᵀ Q, as the spectrum estimate asks
        (x[:, :150], b[:150]),  # column slices (strided rows)
        (x, torch.randn(48, 200, generator=g).T),  # a transposed right operand
    ]
    for a, right in cases:
        out = devices.onednn_matmul(a, right)
        assert out.shape == (a.shape[0], right.shape[1])
        torch.testing.assert_close(out, a @ right, rtol=1e-5, atol=1e-4)
    # a right factor used for many row blocks: accumulated into the output, as the BLAS's addmm
    right = torch.randn(200, 96, generator=g)
    for onednn in (True, False):
        product = devices.RightProduct(right, "cpu")
        product._onednn = onednn
        out = torch.ones(300, 96)
        for lo in range(0, 300, 128):
            product.add_to(out[lo : lo + 128], x[lo : lo + 128])
        torch.testing.assert_close(out, 1 + x @ right, rtol=1e-5, atol=1e-4)
