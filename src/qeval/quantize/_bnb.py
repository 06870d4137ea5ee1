"""bitsandbytes: 4-bit NF4 on an already-loaded model.

Each selected nn.Linear becomes a ``bnb.nn.Linear4bit`` whose weight is a
``Params4bit`` holding the original weight; bitsandbytes quantizes it when it is
moved to the device (it has a CPU backend since 0.44). Blocks of 64 weights
over the flattened matrix share one absmax, so no layer width is constrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from qeval.quantize._base import Backend, Precision, get_linear, select_linears, torch_dtype

BNB = Backend(dist="bitsandbytes", module="bitsandbytes", pin="0.50.2", extra="bnb")


@dataclass(frozen=True)
class BnbConfig:
    """bitsandbytes 4-bit, as transformers' ``BitsAndBytesConfig(load_in_4bit=True)``."""

    quant_type: str = "nf4"
    bits: int = 4
    blocksize: int = 64
    """Weights per absmax scale (over the flattened weight)."""
    double_quant: bool = False
    """Quantize the absmax scales too (transformers' default is off)."""
    compute_dtype: str = "bfloat16"


class BnbPrecision(Precision[BnbConfig]):
    backend = BNB

    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        from torch import nn

        bnb = self.backend.load("bitsandbytes")
        compute_dtype = torch_dtype(self.config.compute_dtype)
        names, kept = select_linears(model)
        for name in names:
            old = get_linear(model, name)
            new = bnb.nn.Linear4bit(
                old.in_features,
                old.out_features,
                bias=old.bias is not None,
                compute_dtype=compute_dtype,
                quant_type=self.config.quant_type,
                device="meta",
            )
            new.weight = bnb.nn.Params4bit(
                old.weight.data,
                requires_grad=False,
                quant_type=self.config.quant_type,
                blocksize=self.config.blocksize,
                compress_statistics=self.config.double_quant,
                module=new,
            )
            if old.bias is not None:
                new.bias = nn.Parameter(old.bias.data, requires_grad=False)
            new.to(device)  # Params4bit quantizes on its first move to a real device
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, new)
        model = model.to(device)
        done = [n for n in names if isinstance(model.get_submodule(n), bnb.nn.Linear4bit)]
        return model, {
            "group_size": self.config.blocksize,
            "layers_quantized": len(done),
            "layers_skipped": kept,
        }


NF4 = BnbPrecision(
    "nf4",
    "4-bit NF4, blocks of 64 (bitsandbytes), bf16 compute",
    BnbConfig(),
)
