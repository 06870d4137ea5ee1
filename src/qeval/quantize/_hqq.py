"""hqq: half-quadratic 4-bit quantization (no calibration data), one group size per model.

``AutoHQQHFModel.quantize_model`` replaces the decoder's nn.Linear layers with
``HQQLinear`` and casts every other module (embeddings, norms, lm_head) to the
compute dtype. It never quantizes ``lm_head`` (its ``_IGNORE_LINEAR``); we check
that afterwards rather than trust it. transformers' ``HqqConfig`` path raises
NotImplementedError in 5.23, hence the direct call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from qeval.errors import BackendUnavailable
from qeval.quantize._base import (
    GROUP_SIZE_CANDIDATES,
    Backend,
    Precision,
    choose_group_size,
    in_features_of,
    select_linears,
    torch_dtype,
)

HQQ = Backend(dist="hqq", module="hqq", pin="0.2.8.post1", extra="hqq")


@dataclass(frozen=True)
class HqqConfig:
    """hqq ``BaseQuantizeConfig`` fields we set; the rest are hqq's defaults."""

    nbits: int = 4
    group_size_candidates: tuple[int, ...] = GROUP_SIZE_CANDIDATES
    """The largest of these dividing every quantized layer's in_features is used."""
    axis: int = 1
    compute_dtype: str = "bfloat16"


class HqqPrecision(Precision[HqqConfig]):
    backend = HQQ

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        from torch import nn

        if getattr(model, "hqq_quantized", False):
            raise BackendUnavailable(f"{self.name}: this model was already quantized by hqq")
        hqq_base = self.backend.load("hqq.models.base")
        hf_base = self.backend.load("hqq.models.hf.base")
        quantize = self.backend.load("hqq.core.quantize")
        names, kept = select_linears(model)
        group = choose_group_size(
            in_features_of(model, names), self.name, self.config.group_size_candidates
        )
        quant_config = quantize.BaseQuantizeConfig(
            nbits=self.config.nbits, group_size=group, axis=self.config.axis
        )
        # hqq shows two tqdm bars and has no switch for them in quantize_model.
        saved_tqdm = hqq_base.tqdm
        hqq_base.tqdm = lambda iterable, *args, **kwargs: iterable
        try:
            hf_base.AutoHQQHFModel.quantize_model(
                model,
                quant_config=quant_config,
                compute_dtype=torch_dtype(self.config.compute_dtype),
                device=device,
            )
        finally:
            hqq_base.tqdm = saved_tqdm
        done = [n for n in names if isinstance(model.get_submodule(n), quantize.HQQLinear)]
        wrongly = [n for n in kept if not isinstance(model.get_submodule(n), nn.Linear)]
        if wrongly:  # never expected: hqq ignores lm_head by name
            raise BackendUnavailable(
                f"{self.name}: hqq quantized layers qeval keeps in full precision: {', '.join(wrongly)}"
            )
        return model, {
            "group_size": group,
            "layers_quantized": len(done),
            "layers_skipped": kept,
        }


HQQ4 = HqqPrecision(
    "hqq4",
    "4-bit HQQ, group 128/64/32 by model widths (hqq), bf16 compute",
    HqqConfig(),
)
