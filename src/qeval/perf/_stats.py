"""Pure statistics of a load profile: percentiles with intervals, throughput, ratios. No I/O.

Percentile intervals are distribution-free order-statistic intervals
(:func:`qeval.stats.quantile_ci`, the same ones the SLO gates use), not a
bootstrap: a bootstrap never reaches past the sample maximum and would let a
``p95 <= T`` gate pass on a handful of lucky samples. A bound the samples cannot
support is infinite; latency lower bounds are clipped at 0 (a latency is never negative).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as _st

from qeval import stats
from qeval.models import TimedGeneration
from qeval.perf._schema import Distribution, LoadPoint, Quantile, Ratio

LATENCY_KINDS = ("ttft", "tpot", "itl", "e2e")
RATIO_METRICS = ("p50_ttft", "p95_ttft", "p50_tpot", "p95_tpot", "p50_e2e", "p95_e2e", "tokens_per_s")
"""What :func:`ratios` compares against the reference at each batch size."""


def quantile(samples_ms: Sequence[float], pct: int, confidence: float = 0.95) -> Quantile:
    """The ``pct``-th percentile (linear interpolation) with its order-statistic interval."""
    n = len(samples_ms)
    if n == 0:
        return Quantile(value=None, ci=None, n=0)
    value = float(np.percentile(np.asarray(samples_ms, dtype=float), pct))
    ci = stats.quantile_ci(samples_ms, pct / 100, confidence)
    return Quantile(value=value, ci=(max(ci[0], 0.0), ci[1]) if ci else None, n=n)


def distribution(samples_ms: Sequence[float]) -> Distribution:
    """p50/p95/p99 of one latency kind, each with its 95% interval, and the raw samples."""
    samples = tuple(float(s) for s in samples_ms)
    return Distribution(
        p50=quantile(samples, 50), p95=quantile(samples, 95), p99=quantile(samples, 99), n=len(samples),
        samples_ms=samples,
    )


def request_latencies(requests: Sequence[TimedGeneration]) -> dict[str, list[float]]:
    """TTFT, TPOT, ITL and e2e samples (ms) of timed requests (docs/metrics.md definitions).

    TTFT = first token time; e2e = last token time (both from the request start);
    TPOT = (e2e - TTFT) / (tokens - 1) for requests with at least 2 tokens; ITL =
    every gap between consecutive tokens, pooled. Requests without tokens add nothing.
    """
    out: dict[str, list[float]] = {k: [] for k in LATENCY_KINDS}
    for r in requests:
        times = r.token_times_ms
        if not times:
            continue
        out["ttft"].append(times[0])
        out["e2e"].append(times[-1])
        out["itl"].extend(b - a for a, b in itertools.pairwise(times))
        if len(times) >= 2:
            out["tpot"].append((times[-1] - times[0]) / (len(times) - 1))
    return out


def rate_interval(rates: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of per-round rates (``None`` with fewer than 2 rounds).

    Rounds, not requests, are the independent units of throughput: requests in one
    batch share their steps. Clipped at 0.
    """
    x = np.asarray(rates, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x)):
        return None
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0:
        return (mean, mean)
    half = float(_st.t.ppf(1 - (1 - confidence) / 2, x.size - 1)) * sem
    return (max(mean - half, 0.0), mean + half)


def percentile_ratio(
    reference: Mapping[str, Distribution], current: Mapping[str, Distribution], metric: str
) -> tuple[float | None, tuple[float, float] | None]:
    """``current / reference`` of one latency percentile (``metric`` like ``"p95_ttft"``) with its
    interval: each side's order-statistic interval at 97.5% (``joint_confidence``), combined."""
    pct, kind = int(metric.split("_")[0][1:]), metric.split("_")[1]
    ref, cur = reference.get(kind), current.get(kind)
    if ref is None or cur is None or not ref.samples_ms or not cur.samples_ms:
        return None, None
    vb = getattr(ref, f"p{pct}").value
    va = getattr(cur, f"p{pct}").value
    value = va / vb if va is not None and vb else None
    conf = stats.joint_confidence()  # both intervals hold together at 95%
    ca = quantile(cur.samples_ms, pct, conf).ci
    cb = quantile(ref.samples_ms, pct, conf).ci
    return value, (stats.ratio_from_intervals(ca, cb) if ca and cb and value is not None else None)


def rate_ratio(
    reference: float | None, reference_rounds: Sequence[float], current: float | None, current_rounds: Sequence[float]
) -> tuple[float | None, tuple[float, float] | None]:
    """``current / reference`` of a rate (tokens/s, requests/s) with an interval from per-round rates."""
    value = current / reference if current and reference else None
    conf = stats.joint_confidence()
    ca = rate_interval(current_rounds, conf)
    cb = rate_interval(reference_rounds, conf)
    return value, (stats.ratio_from_intervals(ca, cb) if ca and cb and value is not None else None)


def ratios(reference: LoadPoint, current: LoadPoint) -> tuple[Ratio, ...]:
    """``current / reference`` of each of :data:`RATIO_METRICS` at one batch size.

    Like ``qeval.measure.ratio``: each side's interval at 97.5% (``joint_confidence``)
    so both hold together at 95%, combined with ``ratio_from_intervals``.
    """
    b = current.batch_size
    if reference.status != "ok" or current.status != "ok":
        return tuple(Ratio(m, b, None, None) for m in RATIO_METRICS)
    out = []
    for m in RATIO_METRICS:
        if m == "tokens_per_s":
            value, ci = rate_ratio(reference.output_tokens_per_s, reference.round_tokens_per_s,
                                   current.output_tokens_per_s, current.round_tokens_per_s)
        else:
            value, ci = percentile_ratio(reference.latency, current.latency, m)
        out.append(Ratio(m, b, value, ci))
    return tuple(out)
