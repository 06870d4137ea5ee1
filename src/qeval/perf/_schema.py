"""What ``qeval perf`` measures and writes (``RUN_DIR/perf.json``): the contract between
the load-profile runner, the goodput/cost arithmetic, ``qeval recommend`` and the HTML report.

All times in ms, memory in bytes, money in USD. Every percentile carries its
distribution-free 95% interval (``qeval.stats.quantile_ci``) and its sample count;
an interval bound that the samples cannot support is ``inf`` (JSON: null).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from qeval.results import Environment, MetricValue

PERF_SCHEMA_VERSION = 1

LoadStatus = Literal["ok", "oom", "error", "skipped"]


Quantile = MetricValue
"""One percentile of a latency distribution with its 95% interval and sample count:
the same record as a suite metric (value, ci, n)."""


@dataclass(frozen=True)
class Distribution:
    """p50/p95/p99 of one latency kind (ttft, tpot, itl, e2e) at one load point."""

    p50: Quantile
    p95: Quantile
    p99: Quantile
    n: int
    samples_ms: tuple[float, ...] = ()
    """The raw samples (for plots and re-analysis)."""


@dataclass(frozen=True)
class LoadPoint:
    """One precision at one batch size: every request of every round pooled."""

    batch_size: int
    status: LoadStatus
    reason: str | None = None
    """Why not ok: e.g. "CUDA out of memory at batch 32 (tried to allocate 2.1 GiB)"."""
    requests: int = 0
    output_tokens: int = 0
    wall_s: float = 0.0
    """Time spent generating at this batch size, summed over rounds."""
    output_tokens_per_s: float | None = None
    output_tokens_per_s_ci: tuple[float, float] | None = None
    """Across rounds (each round's tokens / its wall time)."""
    requests_per_s: float | None = None
    latency: Mapping[str, Distribution] = field(default_factory=dict)
    """Keys: "ttft", "tpot", "itl", "e2e"."""
    peak_bytes: int | None = None
    """Peak memory while serving this batch: this precision's weights plus the block's
    activation/KV growth (CUDA: torch allocator; CPU: RSS high-water mark)."""
    peak_kind: str = ""
    round_tokens_per_s: tuple[float, ...] = ()
    """Each round's output tokens / its wall time (what the throughput interval is made from)."""
    warmup_requests: int = 0
    """Untimed batch-1 requests this precision served before the rounds (the one untimed
    batch at each larger batch size is not counted here)."""


@dataclass(frozen=True)
class Ratio:
    """``this / reference`` of one latency percentile or throughput at one batch size."""

    metric: str
    """e.g. "p95_ttft", "p50_tpot", "tokens_per_s"."""
    batch_size: int
    value: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class ColdStart:
    """Load + quantize + first request, measured once on a fresh load."""

    load_s: float | None
    quantize_s: float | None
    first_request_ms: float | None
    total_s: float | None


@dataclass(frozen=True)
class Goodput:
    """The highest batch size at which every SLO still holds (decided on intervals)."""

    batch_size: int | None
    """None: no measured batch size meets every SLO."""
    output_tokens_per_s: float | None
    requests_per_s: float | None
    verdicts: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    """batch size -> SLO text -> "pass" | "fail" | "inconclusive"."""


@dataclass(frozen=True)
class Cost:
    """Money per precision at its goodput load (None when no load meets the SLOs)."""

    gpu_hour_usd: float
    usd_per_1m_output_tokens: float | None
    api_usd_per_1m_tokens: float | None = None
    break_even_tokens_per_hour: float | None = None
    """Volume at which paying for the GPU equals paying the API; None without an API price."""
    capacity_tokens_per_hour: float | None = None
    """What one GPU serves at the goodput load; self-hosting breaks even only below it."""


@dataclass(frozen=True)
class PrecisionPerf:
    precision: str
    status: Literal["ok", "skipped", "error"]
    reason: str | None = None
    weights_bytes: int | None = None
    cold_start: ColdStart | None = None
    points: tuple[LoadPoint, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    """Against the reference precision (empty for the reference itself)."""
    goodput: Goodput | None = None
    cost: Cost | None = None


@dataclass(frozen=True)
class PerfRecord:
    run_id: str
    created_at: str
    model: str
    device: str
    reference: str
    """The precision ratios are taken against (the first one given)."""
    batch_sizes: tuple[int, ...]
    rounds: int
    order: tuple[str, ...]
    """The interleaved (ABBA) order blocks ran in: "round/precision/batch" labels."""
    prompt_tokens: tuple[int, ...]
    max_new_tokens: int
    slos: tuple[str, ...]
    precisions: tuple[PrecisionPerf, ...]
    environment: Environment = field(default_factory=Environment)
    schema_version: int = PERF_SCHEMA_VERSION
