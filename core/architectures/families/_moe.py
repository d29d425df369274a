"""What the mixture-of-experts families share: the expert count's config keys, top-k, and upcycling.

An MoE layer has ``experts`` feed-forward networks, each with its own ``ffn`` neurons, and a router
whose row e scores expert e. In the spec, a rule with ``{E}`` in its name is one tensor per expert;
the ``experts`` dimension (per layer, ``experts@j``) maps target expert e ← source expert, and
carries the router's row axis, so an expert and its router row are kept, dropped or copied
together. Each expert's ffn is its own random variable (``ffn@j/e``): expert 0's neuron i has
nothing to do with expert 1's neuron i, so a score-based index keeps each expert's own neurons.

Upcycling (Komatsuzaki et al. 2023, "Sparse Upcycling"): a dense source of a type in
:attr:`MoESpec.upcycles` is read as a one-expert model of the MoE family
(:mod:`core.architectures.upcycle`), whose experts the plan then copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.architectures.spec import ArchitectureSpec


@dataclass(frozen=True)
class MoESpec(ArchitectureSpec):
    """An :class:`ArchitectureSpec` whose layers route each token to ``top_k`` of ``experts`` MLPs."""

    #: config keys that may hold the number of experts, the spec's own (``config_fields["experts"]``) first.
    experts_keys: tuple[str, ...] = ("num_local_experts",)
    top_k_field: str = "num_experts_per_tok"
    #: dense model type → this family's model type it upcycles to.
    upcycles: dict = field(default_factory=dict)
    #: dense rule pattern → the patterns of this spec it feeds in an upcycle (``{E}`` ones as expert 0).
    dense_names: dict = field(default_factory=dict)
    #: (pattern, axes) of the tensors an upcycled source lacks: zero (a router scoring every expert
    #: alike, a shared expert's gate), and the patterns among ``dense_names``' that start at zero.
    upcycle_zeros: tuple = ()
    #: config fields an upcycle sets (besides the model type and the expert count), e.g. qwen's
    #: ``norm_topk_prob``: the renormalised top-k weights sum to one over identical experts.
    upcycle_config: dict = field(default_factory=dict)
    #: upcycled model types that have a shared expert (the ``.shared_expert`` patterns above are skipped for others).
    shared_expert_types: tuple[str, ...] = ()
    #: the config flag that turns on renormalising the top-k routing weights (None: always renormalised, mixtral).
    norm_topk_field: str | None = None

    def _experts_key(self, config: dict) -> str:
        return next((k for k in self.experts_keys if k in config), self.experts_keys[0])

    def routing(self, config: dict) -> tuple[int, bool]:
        """``(top_k, renormalised)``: how many experts a token goes to, and whether their weights sum to one."""
        from core.architectures.spec import _class_default

        top_k = int(config.get(self.top_k_field) or _class_default(config.get("model_type"), self.top_k_field, 2))
        if self.norm_topk_field is None:
            return top_k, True
        flag = config.get(self.norm_topk_field)
        if flag is None:
            flag = _class_default(config.get("model_type"), self.norm_topk_field, False)
        return top_k, bool(flag)

    def fused_expert_state(self, source, own: dict) -> dict:
        """The checkpoint's per-expert tensors stacked into transformers' fused expert parameters.

        transformers 5 holds a layer's experts as ``…experts.gate_up_proj`` (experts, 2·ffn, hidden:
        each expert's [gate; up]) and ``…experts.down_proj`` (experts, hidden, ffn), and converts the
        per-expert checkpoint names only inside ``from_pretrained``; a model built from the config
        and loaded by name (the calibration pass) needs them stacked here.

        Args:
            source: an opened source of this family.
            own: the model's state dict.

        Returns:
            State-dict key → tensor, for every fused parameter whose experts the source holds (empty
            for a transformers that keeps one module per expert: names load those).
        """
        matched = self.ensure_matches(list(source.tensors))
        return self._stack_experts(matched, source.read, own)[0]

    def model_state(self, config: dict, tensors: dict, own: dict) -> tuple[dict, set[str]]:
        """The per-expert checkpoint tensors stacked into the model's fused expert parameters
        (:meth:`fused_expert_state` on a dict of tensors; names the spec does not describe are left to load by name)."""
        matched = {name: m for name in tensors if (m := self.match(name)) is not None}
        return self._stack_experts(matched, tensors.__getitem__, own)

    def _stack_experts(self, matched: dict, read, own: dict) -> tuple[dict, set[str]]:
        """``(fused state-dict key → stacked tensor, the checkpoint names used)`` from ``matched``
        (checkpoint name → :class:`MatchedTensor`), whose tensors ``read(name)`` gives."""
        import re

        import torch

        per: dict = {}  # (layer, role) → {expert: source name}
        for name, m in matched.items():
            if m.expert is not None:
                per.setdefault((m.layer, m.rule.role), {})[m.expert] = name
        out, used = {}, set()
        for key, value in own.items():
            hit = re.search(r"layers\.(\d+)\..*experts\.(gate_up_proj|down_proj)$", key)
            if hit is None:
                continue
            roles = ("mlp.gate", "mlp.up") if hit.group(2) == "gate_up_proj" else ("mlp.down",)
            groups = [per.get((int(hit.group(1)), role), {}) for role in roles]
            if any(sorted(g) != list(range(value.shape[0])) for g in groups):
                continue
            stacked = [torch.cat([read(g[e]) for g in groups], 0) for e in range(value.shape[0])]
            if tuple(stacked[0].shape) == tuple(value.shape[1:]):
                out[key] = torch.stack(stacked)
                used.update(name for g in groups for name in g.values())
        return out, used

    def sizes(self, config: dict) -> dict[str, int]:
        key = self._experts_key(config)
        own = self.config_fields["experts"]
        if key != own:
            config = {**config, own: config[key]}
        out = super().sizes(config)
        out.setdefault("experts", 1)
        return out

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        """The MoE config with the new sizes; the expert count under the key the source used, top-k ≤ experts."""
        key, own = self._experts_key(source_config), self.config_fields["experts"]
        out = super().target_config(source_config, sizes)
        if key != own:
            out[key] = out.pop(own)
        if "experts" in sizes and self.top_k_field in out:
            out[self.top_k_field] = min(out[self.top_k_field], sizes["experts"])
        return out

    def plan_warnings(self, plan) -> list[str]:
        """Where copied experts change the routing (source experts > 1; an upcycle's one expert is exact).

        Copies of an expert share its router row, so top-k picks them together and leaves other
        experts out. Every expert copied c times, with top-k × c, is exact: each copy gets p/c, and
        the c·k chosen copies renormalise (mixtral; qwen with or without ``norm_topk_prob``) to the
        source's weights.
        """
        src, tgt = plan.source_sizes.get("experts", 1), plan.target_sizes.get("experts", 1)
        if src == 1 or tgt <= src:
            return []
        k = plan.target_config.get(self.top_k_field)
        counts = {tuple(m.counts()) for key, m in plan.dims.items() if key.startswith("experts@")}
        even = len(counts) == 1 and len(set(next(iter(counts)))) == 1 and 0 not in next(iter(counts))
        exact = f"num_experts_per_tok={k * tgt // src} (--set) keeps the source's function" if even and k else ""
        return [
            f"experts grow {src}→{tgt} by copies that share their router row, so top-{k} routing picks copies "
            "together and the outputs differ from the source's"
            + (f"; {exact}, with every expert copied {tgt // src} times" if exact else "")
        ]
