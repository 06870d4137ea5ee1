"""Frozen result records. Built once, never filled in later.

Field names carry their units (``ttft_ms``, ``weights_bytes``, ``load_s``).
``to_dict`` gives the JSON shape written to ``results.json`` (schema below).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

CellStatus = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class Score:
    """What a scorer says about one completion."""

    value: float
    """Case score in [0, 1] (1 = fully right; F1 for extraction-like scorers)."""
    passed: bool
    """Whether the case counts as correct for ``accuracy``."""
    reason: str | None = None
    """Why the case failed (``None`` when it passed)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Scorer-specific, JSON-serialisable: parsed answer, tp/fp/fn counts, ..."""


@dataclass(frozen=True)
class MetricValue:
    """A suite-level number with its uncertainty."""

    value: float | None
    ci: tuple[float, float] | None
    """95% interval, or ``None`` when it cannot be computed (n too small)."""
    n: int


@dataclass(frozen=True)
class CaseResult:
    """One case of the accuracy pass."""

    case_id: str
    prompt: str
    completion: str
    expected: Any
    score: float
    passed: bool
    reason: str | None
    output_tokens: int
    tags: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Percentiles:
    """Linear-interpolated percentiles (numpy default) of ``n`` samples, in ms."""

    p50: float | None
    p95: float | None
    p99: float | None
    n: int


@dataclass(frozen=True)
class LatencyStats:
    """The timed pass: batch 1, warm, separate from the accuracy pass."""

    ttft_ms: Percentiles
    tpot_ms: Percentiles
    itl_ms: Percentiles
    e2e_ms: Percentiles
    tokenize_ms: Percentiles
    output_tokens_per_s: float | None
    """Output tokens of the timed requests / wall time of the timed pass."""
    requests: int
    """Timed requests (warm-up excluded)."""
    warmup_requests: int
    """Requests run first and excluded from every number above."""
    output_tokens: int


@dataclass(frozen=True)
class MemoryStats:
    """Memory of one precision's model."""

    weights_bytes: int | None
    """Sum of the real storage of every tensor the model holds (packed where packed)."""
    peak_bytes: int | None
    """CPU: peak RSS of the process while the cell ran. CUDA: peak allocated."""
    peak_kind: str
    """``"cpu_rss"`` or ``"cuda_allocated"``."""
    cuda_reserved_bytes: int | None = None


@dataclass(frozen=True)
class CellResult:
    """The result of one (precision, suite) cell."""

    precision: str
    suite: str
    status: CellStatus
    reason: str | None
    n: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    """Suite-specific extra metrics (``f1``, ``unparseable_rate``, ...)."""
    latency: LatencyStats | None = None
    memory: MemoryStats | None = None
    load_s: float | None = None
    quantize_s: float | None = None
    precision_config: Mapping[str, Any] = field(default_factory=dict)
    """Exactly what was applied (library, scheme, group size, compute dtype, ...)."""
    cases: tuple[CaseResult, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """What was evaluated."""

    spec: str
    name: str
    source_precision: str
    """Precision of the weights as shipped (e.g. ``"Q4_1 (GGUF, 4-bit, group 32)"``)."""
    parameters: int | None
    architecture: str | None
    path: str | None
    notes: str = ""


@dataclass(frozen=True)
class RunRecord:
    """Everything one sweep produced."""

    run_id: str
    created_at: str
    model: ModelCard
    environment: Mapping[str, Any]
    settings: Mapping[str, Any]
    cells: tuple[CellResult, ...]
    schema_version: int = SCHEMA_VERSION


def to_dict(record: Any) -> Any:
    """JSON-ready form of any record above (tuples become lists)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, Mapping):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    return record
