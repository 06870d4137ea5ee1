"""The accuracy pass's float32 linear layers on CPU, computed as ``(W @ xᵀ)ᵀ`` instead of ``x @ Wᵀ``.

Why. On CPU a decode step of a few rows is a skinny matrix product per linear layer. ``nn.Linear``
asks MKL's sgemm for ``x @ Wᵀ``, with the weight as the second operand; asked for the same product
as ``W @ xᵀ``, with the weight first, sgemm runs it much faster when there are few rows. (Our reading,
not a documented fact: sgemm copies its second operand into packed panels on every call, which is
the whole weight one way and the few rows the other.) On the 2-core CPU of docs/metrics.md,
SmolLM2-135M's output head (49152 x 576) over 8 rows took 48 ms one way and 13 ms the other, an
MLP projection 0.55 and 0.36 ms, and 1 row or a long prefill costs the same either way
(``benchmarks/engine_ab.py --curve`` prints the step; ``benchmarks/engine_ab.py short
spec4,spec4+weightfirst`` the pass).

What. :func:`weight_first_linears` gives every eligible ``nn.Linear`` of a model that forward as an
instance attribute; :meth:`WeightFirstLinears.restore` removes it. Weights are not copied or moved,
so memory is as it was. Still float32 with float32 sums: only their order differs from the
other call's, by ~1e-6 relative, as it already does between batch sizes.

Eligible: exactly ``nn.Linear`` (no subclass), with a plain (not subclassed) float32 weight on the
CPU, and no forward of its own already patched in. Quantized layers, other dtypes and devices are
left alone.
"""

from __future__ import annotations

from typing import Any


class WeightFirstLinears:
    """The layers :func:`weight_first_linears` changed; :meth:`restore` undoes it (idempotent)."""

    def __init__(self, modules: list[Any]) -> None:
        self._modules = modules

    def __len__(self) -> int:
        return len(self._modules)

    def restore(self) -> None:
        """Every changed layer's own forward back."""
        while self._modules:
            del self._modules.pop().forward  # the instance attribute: the class's forward shows again


def _eligible(module: Any) -> bool:
    import torch
    from torch import nn

    weight = getattr(module, "weight", None)
    return (
        type(module) is nn.Linear
        and isinstance(weight, nn.Parameter)
        and type(weight.data) is torch.Tensor
        and weight.dtype == torch.float32
        and weight.device.type == "cpu"
        and weight.dim() == 2
        and "forward" not in vars(module)
    )


def weight_first_linears(model: Any) -> WeightFirstLinears:
    """Give ``model``'s eligible linear layers the weight-first product (see the module)."""
    changed = [m for m in model.modules() if _eligible(m)]
    for module in changed:
        module.forward = _forward(module)
    return WeightFirstLinears(changed)


def _forward(module: Any) -> Any:
    import torch

    def forward(x: Any) -> Any:
        weight, bias = module.weight, module.bias
        rows = x.reshape(-1, x.shape[-1])
        out = torch.mm(weight, rows.t()).t()
        if bias is not None:
            out = out + bias
        return out.contiguous().view(*x.shape[:-1], weight.shape[0])

    return forward
