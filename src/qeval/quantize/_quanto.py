"""optimum-quanto: int4 weight-only round-to-nearest with one group size per model.

quanto picks a group size per layer on its own (128, else 96, 64, 32, else
per-channel). We choose one size that divides every quantized layer's
in_features instead, set it on each QModule between ``quantize`` and ``freeze``
and record it, so the report states exactly one scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from qeval.quantize._base import (
    GROUP_SIZE_CANDIDATES,
    Backend,
    Precision,
    choose_group_size,
    in_features_of,
    select_linears,
)

QUANTO = Backend(dist="optimum-quanto", module="optimum.quanto", pin="0.2.7", extra="quanto")


@dataclass(frozen=True)
class QuantoConfig:
    """Weight-only quanto quantization (no activation quantization, no calibration)."""

    weights: str = "qint4"
    bits: int = 4
    group_size_candidates: tuple[int, ...] = GROUP_SIZE_CANDIDATES
    """The largest of these dividing every quantized layer's in_features is used."""
    symmetric: bool = False
    """quanto's qint4 is asymmetric: a scale and a shift per group."""
    compute_dtype: str = "bfloat16"


class QuantoPrecision(Precision[QuantoConfig]):
    backend = QUANTO

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        quanto = self.backend.load("optimum.quanto")
        model = model.to(device)
        names, kept = select_linears(model)
        group = choose_group_size(
            in_features_of(model, names), self.name, self.config.group_size_candidates
        )
        # include= takes fnmatch patterns; HF module names (dots, digits) match themselves.
        quanto.quantize(model, weights=getattr(quanto, self.config.weights), include=names)
        quantized = [n for n in names if isinstance(model.get_submodule(n), quanto.QModuleMixin)]
        for n in quantized:
            # torch types Module.__setattr__ values as Tensor | Module; quanto's QModule takes an int here
            model.get_submodule(n).weight_group_size = group  # type: ignore[assignment]
        quanto.freeze(model)
        return model, {
            "group_size": group,
            "layers_quantized": len(quantized),
            "layers_skipped": kept,
        }


INT4 = QuantoPrecision(
    "int4",
    "int4 weight-only RTN, group 128/64/32 by model widths (optimum-quanto), bf16 compute",
    QuantoConfig(),
)
