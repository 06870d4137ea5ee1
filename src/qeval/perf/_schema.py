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

from qeval.load._types import LoadLevel
from qeval.results import Environment, MetricValue

PERF_SCHEMA_VERSION = 2
"""2: load levels (``PrecisionPerf.levels``, ``PerfRecord.load``). Version-1 files read as
profiles without levels."""

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
    """0 at a load level (see ``level``)."""
    value: float | None
    ci: tuple[float, float] | None
    level: str | None = None
    """The load level's label (``c=8``, ``rate=2/s poisson``) for a load-level ratio."""


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
class ClientHealth:
    """Whether the load generator itself kept up at one level (see :mod:`qeval.load._summary`)."""

    loop_lag_p99_ms: float | None
    """How late the generator's event loop woke a 5 ms sleep, 99th percentile over the level."""
    loop_lag_max_ms: float | None
    dispatch_late_p99_ms: float | None
    """Open loop: how late requests left against their schedule (cap waits excluded)."""
    overhead_p50_ms: float | None
    """Client time spent reading each response (parsing between socket reads), per request."""
    overhead_p99_ms: float | None
    ttft_p50_ms: float | None
    share_limit: float
    """The stated bound: lag p99, dispatch lateness p99 and overhead p50 must each stay under
    this share of the level's median TTFT."""
    flagged: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class ServerGaugesSummary:
    """The server's own view during a level, from its Prometheus /metrics (absent: None)."""

    engine: str | None = None
    samples: int = 0
    running_mean: float | None = None
    running_max: float | None = None
    waiting_mean: float | None = None
    waiting_max: float | None = None
    kv_cache_usage_mean: float | None = None
    """A fraction of the KV cache, 0..1."""
    kv_cache_usage_max: float | None = None
    preemptions: float | None = None
    """Preemptions during the level (the counter's increase)."""
    unavailable: str | None = None
    """Why nothing was sampled (no /metrics endpoint, ...): not an error."""


@dataclass(frozen=True)
class LevelPoint:
    """One target at one load level: every measured request of every round pooled."""

    level: LoadLevel
    label: str
    status: LoadStatus
    reason: str | None = None
    requests: int = 0
    """Measured requests sent (failed ones included)."""
    ok_requests: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    """error kind -> count."""
    error_rate: float | None = None
    error_rate_ci: tuple[float, float] | None = None
    wall_s: float = 0.0
    """Summed over rounds: first measured request sent -> last one ended."""
    offered_requests_per_s: float | None = None
    """Open loop: the schedule's rate over the measured requests (``inf``: all at once)."""
    requests_per_s: float | None = None
    """Achieved: completed requests / wall time."""
    requests_per_s_ci: tuple[float, float] | None = None
    output_tokens: int = 0
    output_tokens_per_s: float | None = None
    output_tokens_per_s_ci: tuple[float, float] | None = None
    latency: Mapping[str, Distribution] = field(default_factory=dict)
    """"ttft" (time queued in the server included), "tpot", "itl", "e2e"; successful requests."""
    cap_wait: Distribution | None = None
    """Time requests waited on the client's own concurrency cap, apart from their latency."""
    good_requests: int | None = None
    """Requests that completed within every per-request SLO (None without such SLOs)."""
    goodput_requests_per_s: float | None = None
    goodput_requests_per_s_ci: tuple[float, float] | None = None
    verdicts: Mapping[str, str] = field(default_factory=dict)
    """SLO text -> "pass" | "fail" | "inconclusive" at this level."""
    server: ServerGaugesSummary | None = None
    client: ClientHealth | None = None
    round_requests_per_s: tuple[float, ...] = ()
    round_tokens_per_s: tuple[float, ...] = ()
    round_goodput_per_s: tuple[float, ...] = ()
    warmup_requests: int = 0
    token_source: str = ""
    """How output tokens were counted: "ids" (in-process), "usage", "tokenizer", "chunks"."""


@dataclass(frozen=True)
class LoadSettings:
    """How the load levels of a run were generated."""

    workload: str
    """"suite PATH", "trace FILE (N requests)" or "synthetic prompt LEN / output LEN"."""
    levels: tuple[LoadLevel, ...]
    requests_per_level: int | None
    """Measured requests per target and level over all rounds (or None: ``duration_s``)."""
    duration_s: float | None
    """Seconds per target and level over all rounds (split evenly between rounds)."""
    warmup_requests: int
    unique_prompts: bool
    distinct_prompts: int
    """Distinct prompts the workload holds."""
    prompts_repeated: bool
    """Whether a prompt was sent more than once in a run (so a server's prefix cache could serve it)."""
    seed: int = 0


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
    levels: tuple[LevelPoint, ...] = ()
    """Load levels (``--concurrency``/``--rate``/a trace), in the order given."""
    level_ratios: tuple[Ratio, ...] = ()
    saturation: str | None = None
    """The highest load level at which every SLO passes on its interval (its label)."""


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
    load: LoadSettings | None = None
    """Set when the run measured load levels instead of (or besides) batch sizes."""
    incomplete: str | None = None
    """Why the profile stopped early (Ctrl-C): the blocks that finished are all here, the rest not."""
