"""Shorthands that keep the family tables readable."""

from __future__ import annotations

from core.architectures.spec import TensorRule

H = ("hidden",)
F = ("ffn",)
Q = ("heads", "head_dim")
KV = ("kv_heads", "head_dim")


def linear(
    prefix: str,
    role: str,
    out_axis,
    in_axis,
    *,
    bias: bool | None = True,
    residual: bool = False,
    transposed: bool = False,
    optional: bool = False,
) -> list[TensorRule]:
    """A linear layer's weight (and bias): ``bias=None`` means the bias is optional.

    ``transposed`` is GPT-2's Conv1D layout, (in, out) instead of PyTorch's (out, in).
    """
    axes, fan_in = ((in_axis, out_axis), 0) if transposed else ((out_axis, in_axis), 1)
    rules = [TensorRule(f"{prefix}.weight", role, axes, fan_in=fan_in, writes_residual=residual, optional=optional)]
    if bias is not False:
        rules.append(
            TensorRule(f"{prefix}.bias", role, (out_axis,), optional=optional or bias is None, writes_residual=residual)
        )
    return rules


def norm(prefix: str, *, bias: bool = True, axis=H, optional: bool = False) -> list[TensorRule]:
    rules = [TensorRule(f"{prefix}.weight", "norm", (axis,), optional=optional)]
    if bias:
        rules.append(TensorRule(f"{prefix}.bias", "norm", (axis,), optional=optional))
    return rules
