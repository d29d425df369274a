"""ConvNeXt and ConvNeXt V2: four stages of blocks, each stage with its own width and depth.

A stage's width ``hidden.s`` is one named dimension (``core.architectures.stages``): the stem's
patchify conv writes ``hidden.0``; stage s ≥ 1 starts with a LayerNorm over ``hidden.{s-1}`` and a
2×2 stride-2 conv ``hidden.{s-1}`` → ``hidden.s``; the final LayerNorm and the classifier read the
last stage's. A block is x + γ ⊙ pwconv2(GELU(pwconv1(LN(dwconv₇ₓ₇(x))))) over the channels, with
layer scale γ (absent when ``layer_scale_init_value`` ≤ 0); its inner width ``ffn.s`` is 4 × the
stage's width (hard-coded in transformers). V2 replaces layer scale with GRN on the inner width
(``grn.weight``/``grn.bias``, shape (1, 1, 1, ffn)), normalised by its mean over the channels.

Growth: a block inserted within a stage has a zero pwconv2 (weight and bias), so it adds nothing
(exact; layer scale is kept, so pwconv2 still learns). Widths grow by cloning channels; the
LayerNorms over channels (and V2's GRN mean) keep their statistics only for a k-fold clone
(``cyclic`` with a multiple of the source's width), otherwise the plan warns.
"""

from core.architectures.families._blocks import linear, norm
from core.architectures.spec import FAMILIES, TensorRule
from core.architectures.stages import StagedSpec

HS, HP, HL, H0, FS = ("hidden.{S}",), ("hidden.{S-1}",), ("hidden.{last}",), ("hidden.0",), ("ffn.{S}",)
S = "encoder.stages.{S}"
B = f"{S}.layers.{{L}}"
ONE = ("one",)

STEM = (
    TensorRule(
        "embeddings.patch_embeddings.weight", "embed", (H0, ("channels",), ("patch_h",), ("patch_w",)), fan_in=1
    ),
    TensorRule("embeddings.patch_embeddings.bias", "embed", (H0,)),
    *norm("embeddings.layernorm", axis=H0),
    *norm(f"{S}.downsampling_layer.0", axis=HP),
    TensorRule(f"{S}.downsampling_layer.1.weight", "downsample", (HS, HP, ("down_h",), ("down_w",)), fan_in=1),
    TensorRule(f"{S}.downsampling_layer.1.bias", "downsample", (HS,)),
)
BLOCK = (
    TensorRule(f"{B}.dwconv.weight", "conv.dw", (HS, ONE, ("kernel_h",), ("kernel_w",)), fan_in=1),
    TensorRule(f"{B}.dwconv.bias", "conv.dw", (HS,)),
    *norm(f"{B}.layernorm", axis=HS),
    *linear(f"{B}.pwconv1", "mlp.up", FS, HS),
    *linear(f"{B}.pwconv2", "mlp.down", HS, FS, residual=True),
)
HEAD = (
    *norm("layernorm", axis=HL),
    TensorRule("classifier.weight", "head", (("labels",), HL), fan_in=1, optional=True),
    TensorRule("classifier.bias", "head", (("labels",),), optional=True),
)

SPEC = StagedSpec(
    family="convnext",
    task="image_classification",
    model_types=("convnext",),
    rules=(*STEM, *BLOCK, TensorRule(f"{B}.layer_scale_parameter", "layer_scale", (HS,), optional=True), *HEAD),
    config_fields={},
    layers_field="depths",
    later_stage_modules=("downsampling_layer",),  # stage 0's is the identity (the stem downsamples)
    prefixes=("", "convnext."),
    tied_field=None,
    norm_placement="pre",
    notes="stages with their own widths (hidden_sizes) and depths; growth inserts blocks within a stage.",
)
FAMILIES.add(SPEC.family, SPEC)

V2 = StagedSpec(
    family="convnextv2",
    task="image_classification",
    model_types=("convnextv2",),
    rules=(*STEM, *BLOCK, *(TensorRule(f"{B}.grn.{w}", "grn", (ONE, ONE, ONE, FS)) for w in ("weight", "bias")), *HEAD),
    config_fields={},
    layers_field="depths",
    later_stage_modules=("downsampling_layer",),  # stage 0's is the identity (the stem downsamples)
    prefixes=("", "convnextv2."),
    tied_field=None,
    norm_placement="pre",
    notes="ConvNeXt with GRN on the inner width instead of layer scale.",
)
FAMILIES.add(V2.family, V2)
