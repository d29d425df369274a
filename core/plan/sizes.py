"""Target sizes: the user's request completed (derived kv heads and head_dim) and validated.

Every violation is one sentence that says what to choose instead (heads that divide hidden, kv
groups that divide the heads, an even rotary head_dim).
"""

from __future__ import annotations

import math

from core.errors import PlanError
from core.plan.model import TargetSizes


def resolve_sizes(spec, src: dict[str, int], want: TargetSizes, fields: dict | None = None) -> dict[str, int]:
    """Fill in derived sizes and validate; every violation is one clear sentence.

    ``fields``: the target config fields besides the sizes (``--set``), which a family with list
    sizes (a staged family's ``depths``, ``hidden_sizes``) reads its sizes from."""
    asked = want.to_dict()
    own = spec.resolve_sizes(src, asked, fields or {})  # a family with its own rule (the generic MLP's)
    if own is not None:
        _check_positive(own)
        return own
    tgt = dict(src)
    tgt.update({k: v for k, v in asked.items()})
    _check_positive(tgt)
    if "heads" in asked and "kv_heads" not in asked:
        group = src["heads"] // src["kv_heads"]
        tgt["kv_heads"] = (
            tgt["heads"]
            if group == 1
            else (src["kv_heads"] if tgt["heads"] % src["kv_heads"] == 0 else max(tgt["heads"] // group, 1))
        )
    if not spec.explicit_head_dim:  # llama-style configs keep head_dim; hidden need not be heads × head_dim
        if "head_dim" in asked:
            raise PlanError(
                f"{spec.family} derives head_dim from hidden/heads; set --hidden and --heads instead of --head-dim"
            )
        if tgt["hidden"] % tgt["heads"]:
            hint = ", ".join(map(str, _divisors_near(tgt["hidden"], tgt["heads"])))
            raise PlanError(
                f"hidden size {tgt['hidden']} is not divisible by {tgt['heads']} heads; choose heads that divide it (e.g. {hint})"
            )
        tgt["head_dim"] = tgt["hidden"] // tgt["heads"]
    if tgt["heads"] % tgt["kv_heads"]:
        raise PlanError(
            f"{tgt['heads']} query heads cannot be split into {tgt['kv_heads']} kv groups; choose kv heads that divide the heads"
        )
    if "rotary_dims" in src:  # partial rotary (gpt_neox): the rotary share of head_dim stays the source's
        tgt["rotary_dims"] = _rotary_dims(src, tgt["head_dim"])
    elif spec.rotary and tgt["head_dim"] % 2:
        raise PlanError(f"head_dim {tgt['head_dim']} is odd; rotary embeddings need an even head_dim")
    return tgt


def _rotary_dims(src: dict[str, int], head_dim: int) -> int:
    """The target's rotary channels: head_dim × the source's share (rotary_dims / head_dim), an even integer."""
    d, r = src["head_dim"], src["rotary_dims"]
    if (head_dim * r) % d == 0 and (head_dim * r // d) % 2 == 0:
        return head_dim * r // d
    g = math.gcd(d, r)
    step = d // g * (1 if (r // g) % 2 == 0 else 2)
    raise PlanError(
        f"head_dim {head_dim} has no even rotary part at the source's share {r}/{d} (rotary_pct); "
        f"choose hidden and heads that give a head_dim that is a multiple of {step}"
    )


def _divisors_near(n: int, near: int, count: int = 4, max_steps: int = 100_000) -> list[int]:
    """Up to ``count`` divisors of ``n`` closest to ``near`` (a bounded search: sizes may be absurd)."""
    found: set[int] = set()
    for step in range(min(max_steps, max(near, n))):
        for h in (near - step, near + step):
            if 1 <= h <= n and n % h == 0:
                found.add(h)
        if len(found) >= count:
            break
    return sorted(found)[:count] or [1]


def _check_positive(sizes: dict[str, int]) -> None:
    for k, v in sizes.items():
        if v <= 0:
            raise PlanError(f"target {k} must be a positive number, not {v}")


def growing_dims(src: dict[str, int], tgt: dict[str, int], names) -> list[str]:
    return [d for d in sorted(names) if d in src and tgt.get(d, src[d]) > src[d]]
