"""The calibration pass of :mod:`core.calibration`: hooks on the source model, and the scores they give.

Every linear module whose weight is a source tensor with a fan-in axis gets a forward pre-hook
on its input x (tokens × channels); every layer block gets hooks on its input and output. From
the sums this pass collects:

* **magnitude** (Minitron): per channel mean |x| over tokens; on a composite axis (heads ×
  head_dim) an index's score is the mean over tokens of the L2 norm of its block.
* **reconstruction** (single-atom axes only — hidden, ffn, the MLP's widths): ThiNet-style
  greedy selection (Luo et al., ICCV 2017) on second moments. Neuron j of a reader with weight W
  contributes c_j = x_j · W[:, j] to the reader's output, so the Gram matrix of the contributions
  over tokens is G = (XᵀX) ∘ (WᵀW), N × N. Neurons are ordered greedily by the cosine between the
  full output Σ_j c_j and the kept part Σ_{j∈S} c_j — scale-free, because rescaling the kept part
  is the value strategy's business (mean_field's N/Ñ). The order is nested (the first Ñ picked
  are the greedy choice for any Ñ), so one pass serves every target size; score = (N − rank)/N.
  On the digits MLP (``benchmarks/bench_by_activation_mlp.py``) this keeps about 4× the zero-shot
  accuracy of the magnitude rule at width 32 of 512.
* **Block Influence** BI_l = 1 − mean over tokens of cos(x_in, x_out).
* **Expert usage** (mixture-of-experts layers, the ``experts`` dimension): a hook on each router's
  input recomputes the routing — softmax of the router logits, top-k, renormalised where the
  model renormalises — and an expert scores the mean over tokens of the routing weight it gets (0
  on a token not routed to it): its share of the layer's output. Not the fraction of tokens
  routed to it, which counts a token that gives it 5% like one that gives it 95%; not the softmax
  before top-k, which credits an expert that is always runner-up and never runs.

Readers that receive the very same input tensor (q, k, v of one layer) form a group; a global
dimension's score is :func:`combine_readers` over groups (each group's vector normalised to mean
1, then averaged), and for reconstruction the Gram matrices are combined the same way (each
normalised to mean diagonal 1).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from core.architectures.spec import is_concat
from core.errors import PlanError

log = logging.getLogger(__name__)

RULES = ("magnitude", "reconstruction")


def combine_readers(vectors: list):
    """Average of the vectors after normalising each to mean 1 (an all-zero vector stays zero).

    Args:
        vectors: score vectors (N,) of one dimension, one per distinct input that carries it.

    Returns:
        (N,) float64: every distinct input has the same weight, whatever its scale.
    """
    import torch

    total = torch.zeros(vectors[0].shape, dtype=torch.float64)
    for v in vectors:
        v = v.to(torch.float64)
        mean = float(v.mean())
        total += v / mean if mean > 0 else v
    return total / len(vectors)


def greedy_order(gram) -> list[int]:
    """Neurons in the order greedy selection keeps them, for contributions with Gram matrix ``gram``.

    Step t adds the neuron that maximises cos(Σ_all c, Σ_kept c) — (Σ_S g_j)² / 1ᵀG_SS1 with
    g = G1 — ties to the lower index. Neurons that contribute nothing (G_jj = 0) come last.

    Args:
        gram: (N, N) symmetric positive semi-definite.

    Returns:
        A permutation of range(N).
    """
    import torch

    g = gram.to(torch.float64)
    n = g.shape[0]
    diag, total = g.diagonal().clone(), g.sum(1)
    alive = diag > 0
    order: list[int] = []
    across = torch.zeros(n, dtype=torch.float64)  # Σ_{l∈S} G_jl
    num = den = 0.0
    for _ in range(int(alive.sum())):
        num_j = num + total
        den_j = (den + 2 * across + diag).clamp_min(1e-300)
        score = torch.where(alive, num_j * num_j.abs() / den_j, torch.full_like(num_j, -math.inf))
        j = int(score.argmax())
        order.append(j)
        alive[j] = False
        num, den = float(num_j[j]), float(den_j[j])
        across += g[:, j]
    kept = set(order)
    return order + [j for j in range(n) if j not in kept]


@dataclass
class Reader:
    """Running sums for the input of one linear module (a source tensor with a fan-in axis)."""

    name: str
    layer: int | None
    atoms: tuple[str, ...]
    shape: tuple[int, ...]
    module: object = None
    group: int = -1  # readers that receive the same input tensor share a group
    sums: list = field(default_factory=list)
    tokens: int = 0

    def add(self, x) -> None:
        import torch

        x = x.reshape(-1, *self.shape).float()
        self.tokens += x.shape[0]
        for k in range(len(self.atoms)):
            if len(self.atoms) == 1:
                block = x.abs()
            else:
                others = [d + 1 for d in range(len(self.atoms)) if d != k]
                block = x.pow(2).sum(dim=others).sqrt()
            total = block.sum(0, dtype=torch.float64)
            if len(self.sums) <= k:
                self.sums.append(total)
            else:
                self.sums[k] += total

    def magnitudes(self) -> list:
        return [s / max(self.tokens, 1) for s in self.sums]

    def weight_gram(self):
        """WᵀW over the fan-in axis (N, N): Linear stores (out, in), GPT-2's Conv1D (in, out)."""
        import torch

        w = self.module.weight.detach().to(torch.float64)
        return w.T @ w if isinstance(self.module, torch.nn.Linear) else w @ w.T


@dataclass
class Router:
    """Routing weights summed over tokens for one MoE layer's router (a module whose ``weight`` is (experts, hidden))."""

    name: str
    layer: int
    top_k: int
    renormalised: bool
    module: object = None
    total: object = None
    tokens: int = 0

    def add(self, x) -> None:
        import torch

        weight = self.module.weight.detach().float()
        probs = torch.softmax(torch.nn.functional.linear(x.reshape(-1, weight.shape[1]).float(), weight), dim=-1)
        top, chosen = probs.topk(min(self.top_k, weight.shape[0]), dim=-1)
        if self.renormalised:
            top = top / top.sum(-1, keepdim=True)
        if self.total is None:
            self.total = torch.zeros(weight.shape[0], dtype=torch.float64)
        self.total.index_add_(0, chosen.reshape(-1), top.reshape(-1).to(torch.float64))
        self.tokens += probs.shape[0]

    def usage(self):
        """(experts,) float64: the mean routing weight each expert got per token."""
        return self.total / max(self.tokens, 1)


def find_routers(described, model, names: dict[str, str], top_k: int, renormalised: bool) -> list[Router]:
    """A :class:`Router` for every source router tensor (role ``moe.router``) the model runs."""
    out = []
    for t in described:
        if t.role != "moe.router" or t.layer is None or t.name not in names:
            continue
        try:
            module = model.get_submodule(names[t.name].rsplit(".", 1)[0])
        except AttributeError:
            continue
        weight = getattr(module, "weight", None)
        if weight is not None and tuple(weight.shape) == tuple(t.shape):
            out.append(Router(t.name, t.layer, top_k, renormalised, module))
    return out


def _linear_types():
    from torch import nn

    kinds: tuple = (nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D

        kinds += (Conv1D,)
    except ImportError:  # transformers without Conv1D: no GPT-2 either
        pass
    return kinds


def find_readers(described, sizes: dict[str, int], model, names: dict[str, str]) -> list[Reader]:
    """A :class:`Reader` for every linear source weight with a fan-in axis that the model runs.

    Args:
        described: :func:`core.architectures.describe` of the source.
        names: source tensor name → the model's state-dict key.
    """
    out = []
    kinds = _linear_types()
    for t in described:
        if t.kind != "param" or t.fan_in is None or len(t.shape) != 2 or t.name not in names:
            continue
        if is_concat(t.axes[t.fan_in]):
            continue  # a concatenated fan-in (no family reads one yet) has no single grid of atoms to score
        atoms = tuple(t.axes[t.fan_in])
        if any(a not in sizes for a in atoms):
            continue
        try:
            module = model.get_submodule(names[t.name].rsplit(".", 1)[0])
        except AttributeError:
            continue
        shape = tuple(sizes[a] for a in atoms)
        if not isinstance(module, kinds) or math.prod(shape) != t.shape[t.fan_in]:
            continue  # not a linear module, or an axis whose size does not follow the config
        out.append(Reader(t.name, t.layer, atoms, shape, module))
    return out


def _blocks(runner, n_layers: int):
    """The model's list of layer blocks: the largest ModuleList with one entry per layer."""
    from torch import nn

    lists = [m for m in runner.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()), default=None)


def run_pass(model, batches, readers: list[Reader], n_layers: int, *, grams: bool, progress, cancel, routers=()):
    """Forward every batch with the hooks in place.

    Args:
        n_layers: layer blocks to measure Block Influence on (0: none, the MLP).
        grams: also accumulate XᵀX of every single-atom reader group's input (reconstruction).
        routers: MoE routers whose routing weights to sum (:class:`Router`).

    Returns:
        ``(block influence per layer, {group: XᵀX (N, N) float64})``.
    """
    import torch

    base = getattr(model, getattr(model, "base_model_prefix", "") or "", None)
    hooked = {id(r.module) for r in readers}
    inside = {id(m) for m in base.modules()} if isinstance(base, torch.nn.Module) else set()
    runner = base if inside and hooked <= inside else model  # the LM head only when it is scored
    last = {"input": None, "group": -1, "next": 0}
    gram_sums: dict[int, torch.Tensor] = {}
    gram_done: set[int] = set()

    def reader_hook(reader: Reader):
        def hook(module, args):
            x = args[0]  # the very object q, k and v receive: compared by identity below
            if reader.group < 0:
                same = last["input"] is x
                reader.group = last["group"] if same else last["next"]
                last["next"] += 0 if same else 1
            last["input"], last["group"] = x, reader.group
            reader.add(x)
            if grams and len(reader.atoms) == 1 and reader.group not in gram_done:
                flat = x.reshape(-1, reader.shape[0]).float()
                gram = (flat.T @ flat).to(torch.float64)
                gram_sums[reader.group] = gram_sums[reader.group] + gram if reader.group in gram_sums else gram
                gram_done.add(reader.group)

        return hook

    blocks = _blocks(runner, n_layers) if n_layers else None
    count = len(blocks) if blocks is not None else 0
    cos_sum, cos_count = [0.0] * count, [0] * count
    block_in: dict[int, torch.Tensor] = {}

    def block_pre(index):
        def hook(module, args, kwargs):
            block_in[index] = args[0] if args else kwargs["hidden_states"]

        return hook

    def block_post(index):
        def hook(module, args, kwargs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            cos = torch.nn.functional.cosine_similarity(block_in.pop(index).float(), out.float(), dim=-1)
            cos_sum[index] += float(cos.sum(dtype=torch.float64))
            cos_count[index] += cos.numel()

        return hook

    handles = [r.module.register_forward_pre_hook(reader_hook(r)) for r in readers]
    handles += [r.module.register_forward_pre_hook(lambda _, args, r=r: r.add(args[0])) for r in routers]
    for i, block in enumerate(blocks if blocks is not None else []):
        handles.append(block.register_forward_pre_hook(block_pre(i), with_kwargs=True))
        handles.append(block.register_forward_hook(block_post(i), with_kwargs=True))
    try:
        with torch.inference_mode():
            for b, batch in enumerate(batches):
                cancel.check()
                if "inputs" in batch:
                    runner(batch["inputs"])
                else:
                    runner(**batch)
                last["input"] = None
                gram_done.clear()
                progress((b + 1) / len(batches), f"scoring activations: batch {b + 1} of {len(batches)}")
    finally:
        for h in handles:
            h.remove()
    if n_layers and blocks is None:
        log.warning("no list of %d layer blocks found in the model: no Block Influence", n_layers)
    return [1.0 - s / max(c, 1) for s, c in zip(cos_sum, cos_count)], gram_sums


def _key(atom: str, layer: int | None, spec) -> str | None:
    if spec.per_layer(atom):
        return None if layer is None else f"{atom}@{layer}"
    return atom


def aggregate(readers: list[Reader], spec, sizes: dict[str, int], gram_sums: dict | None = None) -> dict:
    """Score vectors by key (``hidden``, ``ffn@3`` …) of ``spec``'s dimensions; with ``gram_sums``,
    reconstruction where it applies."""
    import torch

    groups: dict[str, dict[int, list]] = {}
    for reader in readers:
        for atom, vector in zip(reader.atoms, reader.magnitudes()):
            key = _key(atom, reader.layer, spec)
            if key is not None:
                groups.setdefault(key, {}).setdefault(reader.group, []).append(vector)
    dims = {
        key: combine_readers([torch.stack(vs).mean(0) for vs in by_group.values()]) for key, by_group in groups.items()
    }
    if gram_sums:
        dims.update(_reconstruction(readers, spec, gram_sums))
    heads, kv = sizes.get("heads"), sizes.get("kv_heads")
    if heads and kv and heads % kv == 0:
        for key in [k for k in dims if k.startswith("heads@")]:
            if "kv_" + key not in dims:  # a kv group scores the sum of its query heads
                dims["kv_" + key] = dims[key].reshape(kv, heads // kv).sum(1)
    return dims


def _reconstruction(readers: list[Reader], spec, gram_sums: dict) -> dict:
    import torch

    by_key: dict[str, dict[int, list]] = {}
    for reader in readers:
        key = _key(reader.atoms[0], reader.layer, spec)
        if len(reader.atoms) != 1 or key is None or reader.group not in gram_sums:
            continue
        g = gram_sums[reader.group] * reader.weight_gram()
        scale = float(g.diagonal().mean())
        by_key.setdefault(key, {}).setdefault(reader.group, []).append(g / scale if scale > 0 else g)
    out = {}
    for key, by_group in by_key.items():
        gram = sum(torch.stack(gs).mean(0) for gs in by_group.values()) / len(by_group)
        order = greedy_order(gram)
        n = len(order)
        scores = torch.empty(n, dtype=torch.float64)
        scores[torch.tensor(order)] = (n - torch.arange(n, dtype=torch.float64)) / n
        out[key] = scores
    return out


def check_gram_memory(readers: list[Reader], limit: int) -> None:
    """Refuse the reconstruction rule when its N × N input statistics would not fit in ``limit`` bytes."""
    need = sum(8 * r.shape[0] ** 2 for r in readers if len(r.atoms) == 1)
    if need > limit:
        raise PlanError(
            f"the reconstruction rule keeps {need / 2**30:.1f} GiB of input statistics for this model, "
            f"above the {limit / 2**30:.1f} GiB limit; use by_activation's rule=magnitude"
        )
