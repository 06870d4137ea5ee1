"""optimum-quanto: int8 weights + int8 activations with *static* (calibrated) input ranges.

Each decoder ``nn.Linear`` becomes a quanto ``QLinear`` with int8 weights (symmetric,
one scale per output row) and an int8 input quantized with **one fixed scale per
layer**, ``scale = range / 127`` (quanto's ``absmax_scale`` convention: values are
``clamp(round(x / scale), -128, 127)``). The range is measured ahead of time on
calibration text, by one of two methods:

- ``minmax``: the largest ``|x|`` seen over every calibration token; nothing is clipped
  on the calibration set, but one outlier stretches the grid for every other value.
- ``percentile``: the ``p``-th percentile of ``|x|`` (99.9 by default); the top
  ``100 - p`` percent of values are clipped to the range, the rest get a finer grid.

Why not ``with quanto.Calibration(): model(batch)``: in 0.2.7 it keeps a
*momentum-averaged* absmax per input (the first batch sets the scale, each later one
moves it 10% of the way: ``0.9 * old + 0.1 * new``), and that 0.9 is hard-coded for
inputs (``Calibration(momentum=...)`` only reaches output scales), so no setting makes
it a true maximum; the result depends on batch order and it also measures padding
positions. It would also calibrate *output* scales we do not want (below). qeval
therefore observes the bf16 model itself with forward pre-hooks, over non-padding
tokens only, and writes the ranges into quanto's ``input_scale`` buffers before
``freeze``. Both statistics are order-independent and exact (see
:class:`PercentileObserver`).

Outputs stay in bf16: quanto would also quantize each layer's *output* with an
``output_scale`` (left at 1.0, i.e. rounding to integers, unless calibrated); every
decoder Linear's output feeds RoPE, SiLU or a residual add, which dequantize it anyway,
so that only adds error. ``disable_output_quantization()`` is called on every layer.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

from qeval.errors import BackendUnavailable, UsageError
from qeval.quantize._base import Precision, QuantizeContext, get_linear, select_linears
from qeval.quantize._quanto import QUANTO

ACTIVATION_RANGES = ("minmax", "percentile")
INT8_MAX = 127
"""quanto's qint8 scale convention: ``scale = range / dtype_info(int8).max``."""


@dataclass(frozen=True)
class StaticActivationConfig:
    """int8 weights + int8 activations with per-layer input ranges fixed by calibration."""

    activation_range: str = "minmax"
    """How each layer's input range is chosen: "minmax" (max |x|) or "percentile"."""
    percentile: float | None = None
    """The percentile of |x| used as the range when ``activation_range`` is "percentile"
    (99.9 for ``w8a8-static-p999``); None for "minmax"."""
    weights: str = "qint8"
    """quanto weight type: symmetric int8, one scale per output row."""
    activations: str = "qint8"
    """quanto activation type for each layer's input: int8, one static scale per tensor."""
    max_length: int = 512
    """Calibration texts are cut to this many tokens."""
    calibration_batch_size: int = 4
    """Texts per calibration forward pass (right-padded; padding is not measured)."""
    compute_dtype: str = "bfloat16"

    def __post_init__(self) -> None:
        if self.activation_range not in ACTIVATION_RANGES:
            raise ValueError(f"activation_range={self.activation_range!r}: use one of {', '.join(ACTIVATION_RANGES)}")
        if self.activation_range == "percentile":
            if self.percentile is None or not 50.0 <= self.percentile < 100.0:
                raise ValueError(
                    f"percentile={self.percentile!r}: a percentile range needs 50 <= percentile < 100 "
                    "(99.9 clips the top 0.1%; use activation_range='minmax' for no clipping)"
                )
        elif self.percentile is not None:
            raise ValueError("percentile is only used with activation_range='percentile'; leave it None for minmax")
        if self.max_length < 1 or self.calibration_batch_size < 1:
            raise ValueError("max_length and calibration_batch_size must be >= 1")


# --- observers: running statistics of |x| over one layer's calibration inputs -----------------


class AbsMaxObserver:
    """The largest |x| seen: the min-max range of a symmetric quantizer."""

    def __init__(self) -> None:
        self.values_seen = 0
        self._absmax: torch.Tensor | None = None

    def update(self, values: torch.Tensor) -> None:
        import torch

        if values.numel() == 0:
            return
        batch_max = values.detach().abs().amax().float()
        self._absmax = batch_max if self._absmax is None else torch.maximum(self._absmax, batch_max)
        self.values_seen += values.numel()

    @property
    def absmax(self) -> float:
        return float(self._absmax) if self._absmax is not None else 0.0

    def range(self) -> float:
        return self.absmax


class PercentileObserver:
    """The exact ``percentile`` of |x| over every value seen, in bounded memory.

    The percentile (with ``torch.quantile``'s linear interpolation) only depends on
    the ``k = N - floor(p/100 * (N - 1))`` largest values, where ``N`` is the number
    of values; ``N`` is bounded before the first forward pass (``max_values``: the
    calibration tokens times ``in_features``), so the observer keeps a running top-k:
    about ``(1 - p/100) * N`` floats per layer (0.1% of the activations at 99.9),
    instead of every activation. Values that cannot enter the top-k (below the
    current k-th largest) are dropped before ``torch.topk``.
    """

    def __init__(self, percentile: float, max_values: int) -> None:
        import torch

        self.values_seen = 0
        self.percentile = percentile
        self.max_values = max_values
        # _values_needed grows with n, so a top-k sized for max_values serves any n <= max_values
        self.capacity = _values_needed(percentile, max_values)
        self._top = torch.empty(0)

    def update(self, values: torch.Tensor) -> None:
        import torch

        if values.numel() == 0:
            return
        self.values_seen += values.numel()
        if self.values_seen > self.max_values:  # the kept top-k would no longer hold the percentile
            raise RuntimeError(f"PercentileObserver sized for {self.max_values} values saw {self.values_seen}")
        flat = values.detach().abs().flatten().float()
        if self._top.numel() >= self.capacity:
            flat = flat[flat > self._top.min()]
        if self._top.device != flat.device:
            self._top = self._top.to(flat.device)
        pool = torch.cat([self._top, flat])
        self._top = torch.topk(pool, self.capacity, sorted=False).values if pool.numel() > self.capacity else pool

    @property
    def absmax(self) -> float:
        return float(self._top.max()) if self._top.numel() else 0.0  # the top-k always holds the max

    def range(self) -> float:
        import torch

        n = self.values_seen
        if n == 0:
            return 0.0
        descending = torch.sort(self._top, descending=True).values
        position = self.percentile / 100.0 * (n - 1)  # index into the ascending order
        low = math.floor(position)
        frac = position - low
        below = descending[n - 1 - low]
        above = descending[n - 2 - low] if frac > 0 else below
        return float(below + frac * (above - below))


def _values_needed(percentile: float, n: int) -> int:
    """How many of the largest of ``n`` values determine the ``percentile`` (>= 1)."""
    return max(1, n - math.floor(percentile / 100.0 * (n - 1)))


@dataclass(frozen=True)
class LayerRange:
    """What calibration measured at one layer's input."""

    absmax: float
    """max |x| over the calibration tokens."""
    range: float
    """The range the scale is set from: ``absmax`` (minmax) or the percentile of |x|."""
    values: int
    """How many activation values were observed."""


def calibration_batches(tokenizer: Any, texts: tuple[str, ...] | list[str], max_length: int,
                        batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, attention_mask) batches, right-padded, texts sorted by length.

    Texts are tokenized one by one (no pad token is needed from the tokenizer; the pad
    id is 0 and masked). Sorting by length cuts padding; neither statistic depends on
    order. Empty texts are dropped.
    """
    import torch

    encoded = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts]
    encoded = sorted((ids for ids in encoded if len(ids) > 0), key=len)
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        batches.append((input_ids, mask))
    return batches


def observe_input_ranges(
    model: nn.Module,
    names: list[str],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    percentile: float | None = None,
) -> dict[str, LayerRange]:
    """Run ``batches`` through ``model`` and measure the inputs of the Linear layers ``names``.

    Only non-padding tokens are observed (the attention mask selects them). With
    ``percentile`` None the range is max |x|; otherwise the exact percentile of |x|.
    The model is not modified; hooks are removed afterwards.
    """
    import torch

    device = next(model.parameters()).device
    max_tokens = sum(int(mask.numel()) for _, mask in batches)
    observers: dict[str, AbsMaxObserver | PercentileObserver] = {}
    for name in names:
        width = get_linear(model, name).in_features
        observers[name] = AbsMaxObserver() if percentile is None else PercentileObserver(percentile, max_tokens * width)
    current_mask: list[torch.Tensor] = []

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            rows = x.reshape(-1, x.shape[-1])
            keep = current_mask[0]
            # A layer that sees every position (dense decoders) is measured on real tokens
            # only; one that sees some other set of rows (e.g. routed experts) on all of them.
            if rows.shape[0] == keep.numel():
                rows = rows[keep]
            observers[name].update(rows)

        return hook

    handles = [model.get_submodule(n).register_forward_pre_hook(hook_for(n)) for n in names]
    try:
        with torch.no_grad():
            for input_ids, mask in batches:
                current_mask[:] = [mask.to(device).reshape(-1).bool()]
                model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return {
        name: LayerRange(absmax=obs.absmax, range=obs.range(), values=obs.values_seen)
        for name, obs in observers.items()
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "min": float(f"{min(values):.6g}"),
        "median": float(f"{statistics.median(values):.6g}"),
        "max": float(f"{max(values):.6g}"),
    }


class StaticActivationPrecision(Precision[StaticActivationConfig]):
    backend = QUANTO
    needs_calibration = True
    calibration_purpose = " to fix its activation ranges"

    def _apply(self, model: nn.Module, device: str, context: QuantizeContext | None = None) -> tuple[nn.Module, dict[str, Any]]:
        assert context is not None, "Precision.apply passes a context with calibration to a calibrated precision"
        import torch

        quanto = self.backend.load("optimum.quanto")
        config = self.config
        model = model.to(device)
        names, kept = select_linears(model)
        if not names:
            raise BackendUnavailable(f"{self.name}: the model has no Linear layer to quantize")
        batches = calibration_batches(context.tokenizer, context.calibration.texts, config.max_length,
                                      config.calibration_batch_size)
        if not batches:
            raise UsageError(f"{self.name}: every calibration text tokenized to nothing; use a set with real text.")
        start = time.perf_counter()
        ranges = observe_input_ranges(model, names, batches, config.percentile)
        calibrate_s = time.perf_counter() - start
        unseen = [n for n, r in ranges.items() if r.values == 0]
        if unseen:
            raise BackendUnavailable(
                f"{self.name}: calibration never reached {', '.join(unseen[:5])}"
                f"{' ...' if len(unseen) > 5 else ''}, so no static input range can be set for them"
            )

        quanto.quantize(model, weights=getattr(quanto, config.weights),
                        activations=getattr(quanto, config.activations), include=names)
        with torch.no_grad():
            for name in names:
                module = model.get_submodule(name)
                if isinstance(module, quanto.QModuleMixin):
                    module.disable_output_quantization()
                    # A layer whose inputs were all zero gets a tiny positive scale, not 0 (x / 0).
                    module.input_scale.fill_(max(ranges[name].range, 1e-8) / INT8_MAX)
        quanto.freeze(model)

        scales = {}
        for name in names:
            module = model.get_submodule(name)
            if (isinstance(module, quanto.QModuleMixin) and module.frozen
                    and module.activation_qtype is not None and module.activation_qtype.name == config.activations
                    and bool(torch.isfinite(module.input_scale)) and float(module.input_scale) > 0):
                scales[name] = float(module.input_scale)
        details: dict[str, Any] = {
            "layers_quantized": len(scales),
            "layers_skipped": kept,
            "activation_range": config.activation_range,
            "calibration": context.calibration.record(),
            "calibration_batches": len(batches),
            "calibration_tokens": int(sum(int(mask.sum()) for _, mask in batches)),
            "calibration_seconds": round(calibrate_s, 3),
            "input_scale": _summary(list(scales.values())) if scales else None,
        }
        if config.activation_range == "percentile":
            details["percentile"] = config.percentile
            # range / absmax per layer: how far the percentile pulls the range in (1.0 = no clipping)
            details["range_over_absmax"] = _summary(
                [r.range / r.absmax if r.absmax > 0 else 1.0 for r in ranges.values()]
            )
        return model, details


W8A8_STATIC = StaticActivationPrecision(
    "w8a8-static",
    "int8 weights + int8 activations, static per-layer input ranges = calibration max |x| (optimum-quanto)",
    StaticActivationConfig(activation_range="minmax"),
)
W8A8_STATIC_P999 = StaticActivationPrecision(
    "w8a8-static-p999",
    "int8 weights + int8 activations, static per-layer input ranges = calibration 99.9th pct of |x| (optimum-quanto)",
    StaticActivationConfig(activation_range="percentile", percentile=99.9),
)
