"""What serving costs: pure arithmetic on a measured throughput and prices.

``usd_per_1m_output_tokens = gpu_hour_usd / (tokens_per_s * 3600) * 1e6``;
``capacity_tokens_per_hour = tokens_per_s * 3600``;
``break_even_tokens_per_hour = gpu_hour_usd / (api_usd_per_1m / 1e6)``: the hourly volume
at which renting the GPU costs what the API would. Self-hosting is cheaper only
between the break-even volume and the capacity (when break-even < capacity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qeval.errors import UsageError
from qeval.perf._schema import Cost, Goodput, LoadPoint

SECONDS_PER_HOUR = 3600.0
PER_MILLION = 1_000_000.0


def _check_price(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a positive number of USD (got {value!r}).")


def capacity_tokens_per_hour(tokens_per_s: float | None) -> float | None:
    """Output tokens one GPU serves in an hour at this throughput."""
    if tokens_per_s is None or not tokens_per_s > 0:
        return None
    return tokens_per_s * SECONDS_PER_HOUR


def usd_per_1m_output_tokens(gpu_hour_usd: float, tokens_per_s: float | None) -> float | None:
    """USD per million output tokens when the GPU runs flat out at ``tokens_per_s``."""
    _check_price("--gpu-hour-usd", gpu_hour_usd)
    capacity = capacity_tokens_per_hour(tokens_per_s)
    return None if capacity is None else gpu_hour_usd / capacity * PER_MILLION


def break_even_tokens_per_hour(gpu_hour_usd: float, api_usd_per_1m: float) -> float:
    """Tokens per hour at which one GPU-hour costs what the API charges for them."""
    _check_price("--gpu-hour-usd", gpu_hour_usd)
    _check_price("--api-usd-per-1m", api_usd_per_1m)
    return gpu_hour_usd / (api_usd_per_1m / PER_MILLION)


def cost_at(gpu_hour_usd: float, tokens_per_s: float | None, api_usd_per_1m: float | None = None) -> Cost:
    """The :class:`Cost` of serving at ``tokens_per_s`` (``None``: no load qualifies)."""
    return Cost(
        gpu_hour_usd=gpu_hour_usd,
        usd_per_1m_output_tokens=usd_per_1m_output_tokens(gpu_hour_usd, tokens_per_s),
        api_usd_per_1m_tokens=api_usd_per_1m,
        break_even_tokens_per_hour=None if api_usd_per_1m is None else break_even_tokens_per_hour(gpu_hour_usd, api_usd_per_1m),
        capacity_tokens_per_hour=capacity_tokens_per_hour(tokens_per_s),
    )


def costed_load(points: Sequence[LoadPoint], goodput: Goodput | None) -> LoadPoint | None:
    """The load the cost is priced at: the goodput batch size when SLOs were given,
    else the ok point with the highest throughput."""
    ok = [p for p in points if p.status == "ok" and p.output_tokens_per_s]
    if goodput is not None:
        return next((p for p in ok if p.batch_size == goodput.batch_size), None)
    return max(ok, key=lambda p: p.output_tokens_per_s or 0.0, default=None)
