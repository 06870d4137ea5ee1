"""torchao: int8 weight-only, int8 weights + dynamic int8 activations, fp8 weight-only.

All three quantize each selected nn.Linear's weight per output row (one scale
per row, no groups), so no group size constrains the model's widths. The weight
becomes a torchao tensor subclass (Int8Tensor / Float8Tensor) inside the same
nn.Linear module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from qeval.quantize._base import Backend, Precision, select_linears

TORCHAO = Backend(dist="torchao", module="torchao", pin="0.18.0", extra="torchao")


@dataclass(frozen=True)
class TorchaoConfig:
    """One torchao ``quantize_`` config, named by its class."""

    torchao_config: str
    """Class name in ``torchao.quantization`` (built with its defaults)."""
    weight_dtype: str
    activation_dtype: str | None
    """None: activations stay in ``compute_dtype``; "int8": quantized per token at run time."""
    granularity: str
    compute_dtype: str = "bfloat16"


class TorchaoPrecision(Precision[TorchaoConfig]):
    backend = TORCHAO

    def _device_reason(self, device: str) -> str | None:
        import torch

        reason = super()._device_reason(device)
        if reason is None and device == "cuda" and self.config.weight_dtype.startswith("float8"):
            major, minor = torch.cuda.get_device_capability()
            if (major, minor) < (8, 9):
                return f"{self.name} needs a GPU with compute capability >= 8.9 (this one has {major}.{minor})"
        return reason

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        import torch
        from torch import nn

        quantization = self.backend.load("torchao.quantization")
        config = getattr(quantization, self.config.torchao_config)()
        model = model.to(device)
        names, kept = select_linears(model)
        wanted = set(names)
        quantization.quantize_(model, config, filter_fn=lambda _module, fqn: fqn in wanted)
        done = [
            n for n in names
            if type(model.get_submodule(n).weight) not in (torch.Tensor, nn.Parameter)
        ]
        return model, {
            "layers_quantized": len(done),
            "layers_skipped": kept,
            "torchao_config": repr(config),
        }


INT8 = TorchaoPrecision(
    "int8",
    "int8 weight-only, per-row (torchao), bf16 compute",
    TorchaoConfig("Int8WeightOnlyConfig", "int8", None, "per-row"),
)
W8A8 = TorchaoPrecision(
    "w8a8",
    "int8 weights + dynamic per-token int8 activations (torchao), bf16 compute",
    TorchaoConfig("Int8DynamicActivationInt8WeightConfig", "int8", "int8", "per-row"),
)
FP8 = TorchaoPrecision(
    "fp8",
    "fp8 e4m3 weight-only, per-row (torchao), bf16 compute",
    TorchaoConfig("Float8WeightOnlyConfig", "float8_e4m3fn", None, "per-row"),
)
