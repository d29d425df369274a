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
