"""The tensor dtypes Graft knows: one table, and every view of it the code base needs.

Each row gives a dtype's safetensors code (``"BF16"``, the spelling of safetensors headers and of
``TensorPlan.dtype``), its torch attribute name (``"bfloat16"``, the spelling of recipes, the CLI's
``--dtype`` and the GUI), its bytes per element, whether a source may hold it, and whether it is
offered as an export dtype (float32, bfloat16, float16: the float widths a checkpoint is loaded in).
torch is imported only by :func:`torch_dtype`, so reading headers (``graft inspect``) stays torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """One dtype in its two spellings."""

    code: str  # safetensors header spelling
    torch_name: str  # attribute of the torch module
    bytes: int  # per element
    readable: bool = True  # a source may hold it (False: only ``graft convert`` writes it)
    export: bool = False  # offered as the export dtype of a recipe


TABLE: tuple[DType, ...] = (
    DType("F64", "float64", 8),
    DType("F32", "float32", 4, export=True),
    DType("BF16", "bfloat16", 2, export=True),
    DType("F16", "float16", 2, export=True),
    DType("I64", "int64", 8),
    DType("I32", "int32", 4),
    DType("I16", "int16", 2),
    DType("I8", "int8", 1),
    DType("U8", "uint8", 1),
    DType("BOOL", "bool", 1),
    DType("F8_E4M3", "float8_e4m3fn", 1),
    DType("F8_E5M2", "float8_e5m2", 1),
    DType("U16", "uint16", 2),
    DType("U32", "uint32", 4),
    DType("U64", "uint64", 8),
    DType("C64", "complex64", 8, readable=False),
)

#: safetensors code → bytes per element, for every dtype a source may hold.
SOURCE_BYTES: dict[str, int] = {d.code: d.bytes for d in TABLE if d.readable}
#: the export dtypes a recipe accepts (torch spelling), float32 first.
EXPORT_DTYPES: tuple[str, ...] = tuple(d.torch_name for d in TABLE if d.export)

_BY_NAME = {**{d.torch_name: d for d in TABLE}, **{d.code: d for d in TABLE}}


def itemsize(name: str, default: int | None = None) -> int | None:
    """Bytes per element of a dtype in either spelling (``"BF16"`` or ``"bfloat16"``), else ``default``."""
    found = _BY_NAME.get(name)
    return found.bytes if found is not None else default


def torch_dtype(name: str):
    """The ``torch.dtype`` of a dtype in either spelling (``"BF16"`` or ``"bfloat16"`` → ``torch.bfloat16``)."""
    import torch

    found = _BY_NAME.get(name)
    return getattr(torch, found.torch_name if found is not None else name)
