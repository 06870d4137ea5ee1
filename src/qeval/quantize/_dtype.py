"""Plain dtypes: fp32, bf16, fp16. Nothing is quantized; the dtype is the scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from qeval.quantize._base import Precision


@dataclass(frozen=True)
class DtypeConfig:
    """Weights and compute in one floating dtype."""

    compute_dtype: str
    """torch dtype name: "float32", "bfloat16" or "float16"."""
    bits: int


class DtypePrecision(Precision[DtypeConfig]):
    """Load in a dtype and run; ``apply`` only moves the model and records.

    Nothing is quantized, so nothing is "skipped": ``layers_skipped`` stays empty.
    """

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        return model.to(device), {}


FP32 = DtypePrecision("fp32", "fp32 weights and compute (the reference)", DtypeConfig("float32", 32))
BF16 = DtypePrecision("bf16", "bf16 weights and compute", DtypeConfig("bfloat16", 16))
FP16 = DtypePrecision("fp16", "fp16 weights and compute (about 3x slower than fp32 on CPU)", DtypeConfig("float16", 16))
