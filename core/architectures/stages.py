"""Staged families: several stacks of blocks, each with its own depth and its own width (ConvNeXt).

A staged spec's template rules use ``{S}`` for the stage and ``{L}`` for the block *within* its
stage (``encoder.stages.{S}.layers.{L}.dwconv.weight``), and name a stage's dimensions with
placeholders: ``hidden.{S}`` (this stage's width), ``hidden.{S-1}`` (the previous stage's: a rule
that reads it exists from stage 1 on, like ConvNeXt's downsampling layers), ``hidden.{last}`` (the
last stage's: the final norm and the classifier) and ``ffn.{S}`` (a block's inner width, a fixed
multiple of the stage's width). :meth:`StagedSpec.bind` writes the rules out for one config's
stages, so every other part of Graft sees ordinary rules with concrete dimensions:

* each stage's width ``hidden.s`` is a global named dimension, drawn once and shared by every
  tensor that carries it (the stem carries ``hidden.0``, stage s+1's downsampling conv reads
  ``hidden.s``);
* ``ffn.s`` is drawn per block like a transformer's ffn (``ffn.2@5``);
* blocks are numbered flat across stages in the plan (target layer j, ``layer`` of a matched
  tensor), and named by (stage, index within the stage) of the *target* depths
  (:meth:`StagedSpec.block_index`); the layer map is made per stage (``core.plan.maps``).

The sizes of a staged config are ``stages`` (their number, fixed), ``depth.s``, ``hidden.s``,
``ffn.s`` and ``layers`` (the total depth). A target sets them with its config's list fields
(``--set hidden_sizes=[48,96,192,384] --set depths=[2,2,6,2]``), read by :meth:`StagedSpec.resolve_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.architectures.spec import ArchitectureSpec, MatchedTensor, TensorRule
from core.errors import ArchitectureError, PlanError


def stage_depths(sizes: dict[str, int]) -> list[int]:
    """The depth of every stage of a staged family's sizes."""
    return [sizes[f"depth.{s}"] for s in range(sizes["stages"])]


def stage_of(sizes: dict[str, int], layer: int) -> tuple[int, int]:
    """``(stage, index within the stage)`` of flat block ``layer`` under ``sizes``."""
    start = 0
    for s, depth in enumerate(stage_depths(sizes)):
        if layer < start + depth:
            return s, layer - start
        start += depth
    raise PlanError(f"block {layer} is beyond the {start} blocks of the stages")


def _int_list(value, key: str, n: int, error) -> list[int]:
    """``value`` as a list of ``n`` positive integers, else ``error`` with one sentence."""
    if (
        not isinstance(value, list)
        or len(value) != n
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value)
    ):
        raise error(f"{key} must be a list of {n} positive whole numbers, one per stage, not {str(value)[:60]}")
    return list(value)


@dataclass(frozen=True)
class StagedSpec(ArchitectureSpec):
    """A family of stages (module docstring); ``stage_fields`` = (depths field, widths field)."""

    stage_fields: tuple[str, str] = ("depths", "hidden_sizes")
    #: a block's inner width over its stage's width (transformers' ConvNeXt hard-codes 4).
    ffn_ratio: int = 4
    #: modules of a stage's template that exist from stage 1 on (ConvNeXt's ``downsampling_layer``);
    #: a rule that reads ``hidden.{S-1}`` does too.
    later_stage_modules: tuple[str, ...] = ()
    #: the depths of the config the rules were written out for (:meth:`bind`); empty in the template.
    bound_depths: tuple[int, ...] = ()
    _rule_stage: dict = field(default_factory=dict, compare=False, repr=False)

    # -- sizes -----------------------------------------------------------------------------
    def sizes(self, config: dict) -> dict[str, int]:
        depths_key, widths_key = self.stage_fields
        for key in (depths_key, widths_key):
            if not isinstance(config.get(key), list) or not config[key]:
                raise ArchitectureError(f"config.json has no {key!r} list (one entry per stage); fix config.json")
        n = len(config[depths_key])
        depths = _int_list(config[depths_key], f"config.json's {depths_key}", n, ArchitectureError)
        widths = _int_list(config[widths_key], f"config.json's {widths_key}", n, ArchitectureError)
        out = {"stages": n, "layers": sum(depths), "one": 1}
        for s, (d, w) in enumerate(zip(depths, widths)):
            out[f"depth.{s}"], out[f"hidden.{s}"], out[f"ffn.{s}"] = d, w, self.ffn_ratio * w
        return out

    def target_size_names(self) -> frozenset[str]:
        return frozenset()  # every size is a list entry: --set depths=[…] hidden_sizes=[…]

    def resolve_sizes(self, src: dict[str, int], asked: dict[str, int], fields: dict | None = None) -> dict[str, int]:
        """The stages' depths and widths from the target config's list fields; the size flags are refused."""
        depths_key, widths_key = self.stage_fields
        if asked:
            raise PlanError(
                f"{self.family} sizes each stage: set --set {widths_key}=[…] and --set {depths_key}=[…] "
                f"(one entry per stage) instead of {', '.join('--' + k.replace('_', '-') for k in sorted(asked))}"
            )
        fields = fields or {}
        n = src["stages"]
        if "num_stages" in fields and fields["num_stages"] != n:
            raise PlanError(f"num_stages stays the source's {n}: a transfer maps stage s to stage s; leave it out")
        tgt = dict(src)
        for key, prefix in ((depths_key, "depth"), (widths_key, "hidden")):
            if key in fields:
                for s, v in enumerate(_int_list(fields[key], f"config field {key}", n, PlanError)):
                    tgt[f"{prefix}.{s}"] = v
        for s in range(n):
            tgt[f"ffn.{s}"] = self.ffn_ratio * tgt[f"hidden.{s}"]
        tgt["layers"] = sum(stage_depths(tgt))
        return tgt

    def target_config(self, source_config: dict, sizes: dict[str, int]) -> dict:
        depths_key, widths_key = self.stage_fields
        n = sizes["stages"]
        return {
            **source_config,
            depths_key: [sizes[f"depth.{s}"] for s in range(n)],
            widths_key: [sizes[f"hidden.{s}"] for s in range(n)],
        }

    # -- the rules for one config's stages ----------------------------------------------------
    def bind(self, config: dict) -> StagedSpec:
        """The rules written out for ``config``'s stages: ``{S}`` and the stage placeholders replaced."""
        sizes = self.sizes(config)
        n = sizes["stages"]
        rules, rule_stage = [], {}
        staged = [i for i, rule in enumerate(self.rules) if "{S}" in rule.pattern]
        first, last = (staged[0], staged[-1] + 1) if staged else (0, 0)
        # In file order: the globals before the stages, each stage's rules (stage by stage), the globals after.
        order = [(r, None) for r in self.rules[:first]]
        order += [(r, s) for s in range(n) for r in self.rules[first:last] if "{S}" in r.pattern]
        order += [(r, None) for r in self.rules[first:last] if "{S}" not in r.pattern]
        order += [(r, None) for r in self.rules[last:]]
        for rule, s in order:
            if s == 0 and (
                any(f".{module}." in rule.pattern for module in self.later_stage_modules)
                or any("{S-1}" in d for axis in rule.axes for d in axis)
            ):
                continue  # reads the previous stage: from stage 1 on
            concrete = replace(
                rule,
                pattern=rule.pattern if s is None else rule.pattern.replace("{S}", str(s)),
                axes=tuple(tuple(_stage_dim(d, s, n) for d in axis) for axis in rule.axes),
            )
            rules.append(concrete)
            if s is not None:
                rule_stage[concrete] = s
        return replace(
            self,
            rules=tuple(rules),
            resizable=frozenset(f"hidden.{s}" for s in range(n)),
            bound_depths=tuple(stage_depths(sizes)),
            _rule_stage=rule_stage,
        )

    def match(self, name: str) -> MatchedTensor | None:
        """A block's ``layer`` is its flat index (a block beyond its stage's depth: past the last block)."""
        m = super().match(name)
        if m is None or m.layer is None or m.rule not in self._rule_stage:
            return m
        s, depths = self._rule_stage[m.rule], self.bound_depths
        flat = sum(depths[:s]) + m.layer if m.layer < depths[s] else sum(depths) + m.layer
        return replace(m, layer=flat)

    def block_index(self, layer: int | None, sizes: dict[str, int]) -> int | None:
        return layer if layer is None or "stages" not in sizes else stage_of(sizes, layer)[1]

    def rule_layers(self, rule: TensorRule, sizes: dict[str, int]) -> range:
        s = self._rule_stage.get(rule)
        if s is None or "stages" not in sizes:
            return super().rule_layers(rule, sizes)
        start = sum(stage_depths(sizes)[:s])
        return range(start, start + sizes[f"depth.{s}"])


def _stage_dim(dim: str, stage: int | None, n: int) -> str:
    """A rule's dimension for ``stage``: ``hidden.{S}`` → ``hidden.2``, ``hidden.{last}`` → ``hidden.3`` …"""
    if "{" not in dim:
        return dim
    if stage is None and ("{S}" in dim or "{S-1}" in dim):
        raise ArchitectureError(f"dimension {dim} needs a {{S}} in its rule's pattern")
    return dim.replace("{S}", str(stage)).replace("{S-1}", str((stage or 0) - 1)).replace("{last}", str(n - 1))
