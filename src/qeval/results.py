"""Frozen result records. Built once, never filled in later.

Field names carry their units (``ttft_ms``, ``weights_bytes``, ``load_s``).
``to_dict`` gives the JSON shape written to ``results.json`` (schema below).

Schema 2 (this one) records the environment and the settings as typed records
(:class:`Environment`, :class:`RunSettings`); schema 1 wrote them as free-form dicts,
which :func:`qeval.report.read_record` converts on reading.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from dataclasses import dataclass, field
from typing import Any, Literal

from qeval._environment_record import CpuInfo, CudaInfo, Environment, TorchInfo
from qeval._metric_record import MetricSpec, SuiteScoring
from qeval._settings_record import CachedCell, CalibrationRecord, CalibrationVariant, Resumed, RunSettings
from qeval.applied import AppliedPrecision, EndpointIdentity
from qeval.background import BackgroundLoad

__all__ = [
    "SCHEMA_VERSION",
    "CachedCell",
    "CalibrationRecord",
    "CalibrationVariant",
    "CaseResult",
    "CellResult",
    "CellStatus",
    "CpuInfo",
    "CudaInfo",
    "Environment",
    "LatencyStats",
    "MemoryStats",
    "MetricSpec",
    "MetricValue",
    "ModelCard",
    "Percentiles",
    "Resumed",
    "RunRecord",
    "RunSettings",
    "Score",
    "SuiteScoring",
    "TargetRecord",
    "TorchInfo",
    "to_dict",
]

SCHEMA_VERSION = 2
"""2: ``environment`` and ``settings`` are typed records. 1 (still read): free-form dicts."""

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
    error: str | None = None
    """The request failed for good (``timeout``, ``connection``, ``http_503``, ``truncated`` ...):
    an ``error`` outcome, left out of accuracy and every quality metric, counted in ``error_rate``."""
    attempts: int = 1
    """Requests sent for this case (retries included)."""


@dataclass(frozen=True)
class Percentiles:
    """Linear-interpolated percentiles (numpy default) of ``n`` samples, in ms."""

    p50: float | None
    p95: float | None
    p99: float | None
    n: int


@dataclass(frozen=True)
class PairedSamples:
    """One latency measure of a paired pass: the target's and the reference's value of each pair."""

    target: tuple[float, ...]
    reference: tuple[float, ...]


@dataclass(frozen=True)
class PairedLatency:
    """The timed pass ran against the reference target request by request (ABBA: R T T R R T ...),
    on the same cases in the same minutes, so whatever else the machine did slowed both alike."""

    reference: str
    """The reference target's name."""
    pairs: int
    """Pairs in which both requests were answered."""
    samples_ms: Mapping[str, PairedSamples] = field(default_factory=dict)
    """``ttft``, ``tpot``, ``e2e``: aligned pairs (a pair without a TPOT on either side is left out
    of ``tpot``)."""
    order: str = "ABBA"


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
    samples_ms: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """The raw values behind the percentiles (``ttft``, ``tpot``, ``itl``, ``e2e``,
    ``tokenize``), kept so gates and comparisons can bootstrap their intervals."""
    request_tokens: tuple[int, ...] = ()
    """Output tokens of each timed request, in order (pairs with ``samples_ms["e2e"]``
    only where every request produced a token)."""
    errors: int = 0
    """Timed requests that failed for good (not in any number above); see ``error_kinds``."""
    error_kinds: Mapping[str, int] = field(default_factory=dict)
    token_source: str = "ids"
    """Where output token counts came from: ``ids``, ``usage``, ``tokenizer`` or ``chunks`` (approximate);
    several sources in one pass are joined with ``+``."""
    client_overhead_ms: Percentiles | None = None
    """Per timed request, the time qeval's own client spent between bytes arriving and reading on
    (endpoints only): what the client adds to every figure above."""
    background: BackgroundLoad | None = None
    """How busy the machine was with other work during the pass (``None`` where it cannot be read).
    When ``busy``, the figures above are not evidence: gates and comparisons say so."""
    paired: PairedLatency | None = None
    """Set when the pass alternated with the reference target's requests: ratios against that
    reference come from these pairs, not from percentiles measured at different times."""


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
    precision_config: AppliedPrecision = field(default_factory=AppliedPrecision)
    """Exactly what was applied (library, scheme, group size, compute dtype, calibration; or the
    endpoint reached): see :class:`qeval.applied.AppliedPrecision`."""
    accuracy_pass_s: float | None = None
    """Wall time of the batched accuracy pass."""
    accuracy_pass_output_tokens: int | None = None
    """Output tokens generated by the accuracy pass (counted from ids, EOS included)."""
    timed_case_ids: tuple[str, ...] = ()
    """Cases used by the timed pass, in request order (warm-up excluded; repeats when
    more requests were asked for than the suite has cases)."""
    cases: tuple[CaseResult, ...] = ()
    scoring: SuiteScoring | None = None
    """The suite's primary metric, what each metric means and the suite's own SLOs (``None`` in
    records written before it was stored: readers fall back, see :func:`qeval.metric_specs.scoring_of`)."""
    node: Environment | None = None
    """The fingerprint of the machine that ran this cell when a run spreads over several (a Ray
    worker node, ``--executor ray``); ``None``: the run's own ``environment``."""


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
class TargetRecord:
    """One target of a run: what was evaluated under the name its cells carry."""

    name: str
    kind: str
    """``model`` (loaded in-process by qeval) or ``openai`` (an endpoint)."""
    spec: str
    """``MODEL@PRECISION`` or ``openai:URL#MODEL``: never a secret."""
    card: ModelCard
    remote: bool = False
    """Served by someone else: weights and peak memory are unknown (never the client's memory)."""
    revision: str | None = None
    """What the user said the endpoint serves (``--target-revision``)."""
    identity: EndpointIdentity | None = None
    """What the endpoint said it is when the run started (served model, ``server`` header,
    vLLM ``/version``, llama.cpp ``/props``); empty for in-process targets."""
    client_host: str | None = None
    """The machine the requests were sent from: endpoint latency is only comparable across runs
    from the same client host to the same endpoint identity."""


@dataclass(frozen=True)
class RunRecord:
    """Everything one sweep produced."""

    run_id: str
    created_at: str
    model: ModelCard
    """The first target's model (older records: the one model of the run)."""
    environment: Environment
    """The machine and libraries the run used."""
    settings: RunSettings
    """What the run was asked to do, as run."""
    cells: tuple[CellResult, ...]
    schema_version: int = SCHEMA_VERSION
    targets: tuple[TargetRecord, ...] = ()
    """Every target, in run order (empty in records written before targets existed: there, each
    cell's ``precision`` names a precision of ``model``)."""


def to_dict(record: Any) -> Any:
    """JSON-ready form of any record above (tuples become lists)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, Mapping):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    return record


def jsonable(value: Any) -> Any:
    """A strict-JSON-ready copy of ``value``.

    Non-finite floats become ``None``; tuples and sets become lists; numpy
    scalars and arrays become Python numbers and lists; paths and enums become
    strings; dataclass records go through :func:`to_dict`; any
    other object becomes its ``str`` (a report must not die on a stray object
    in a record after an hour of evaluation).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(to_dict(value))
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    # numpy scalars/arrays without importing numpy here
    if hasattr(value, "tolist") and callable(value.tolist):
        try:
            return jsonable(value.tolist())
        except Exception:  # noqa: BLE001 - fall through to str()
            pass
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)
