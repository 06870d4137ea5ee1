"""``as-is``: evaluate a checkpoint as stored, with no further quantization.

For a plain model folder the weights are loaded in the dtype its config.json
names (``dtype`` / ``torch_dtype``, fp32 when absent); for an already quantized
GPTQ checkpoint the model source loads it through gptqmodel (see
:mod:`qeval.checkpoint`) and this precision only records what was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

from qeval.quantize._base import Precision


@dataclass(frozen=True)
class AsIsConfig:
    """Nothing is applied: the checkpoint's own dtype or quantized format is the scheme."""

    compute_dtype: str = "stored"
    """"stored": whatever the checkpoint holds; the record's ``compute_dtype`` names it."""


class AsIsPrecision(Precision[AsIsConfig]):
    """Load the checkpoint as stored; ``apply`` only moves the model and records its dtype."""

    @property
    def load_dtype(self) -> None:
        """None: the model source loads the checkpoint in its stored dtype."""
        return None

    def _device_reason(self, device: str) -> str | None:
        return None

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        return model.to(device), {"compute_dtype": stored_dtype_of(model)}


def stored_dtype_of(model: nn.Module) -> str:
    """The dtype most floating parameters have (what the model computes in)."""
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    if not counts:
        return "float32"
    return str(max(counts, key=counts.__getitem__)).removeprefix("torch.")


AS_IS = AsIsPrecision(
    "as-is", "the checkpoint as stored, no further quantization (its own dtype, or a GPTQ checkpoint's format)",
    AsIsConfig(),
)
