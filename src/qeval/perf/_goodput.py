"""SLOs on a load profile and the goodput they allow. Pure.

Only cost SLOs make sense here (latency percentiles, ``tokens_per_s``,
``peak_mb``/``weights_mb`` and their ratios against the reference precision);
every SLO is decided on the point's 95% interval with :func:`qeval.gates.decide`.
The goodput is the highest batch size whose SLOs all pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from qeval import stats
from qeval.gates import SLO, SloError, decide, is_cost_metric, parse_slo
from qeval.perf._schema import Goodput, LoadPoint, Ratio
from qeval.perf._stats import RATIO_METRICS

BYTES_PER_MB = 1_000_000
LATENCY_SLO = re.compile(r"^p(50|95|99)_(ttft|tpot|itl|e2e)_ms$")
"""A latency percentile SLO's metric: ``p95_ttft_ms`` -> ("95", "ttft")."""


def parse_perf_slos(texts: Sequence[str], reference: str | None = None) -> tuple[SLO, ...]:
    """Parse ``--slo`` values for ``qeval perf``; a quality SLO is a usage error.

    ``reference``: the run's reference precision; a ratio must be taken against it.
    """
    slos = []
    for text in texts:
        slo = parse_slo(text)
        if not is_cost_metric(slo.metric) or slo.relation == "drop":
            raise SloError(
                f"SLO {text!r} is about quality ({slo.metric}); `qeval perf` measures only latency, throughput "
                "and memory. Gate quality with `qeval sweep` and `qeval recommend RUN_DIR` (or the pytest "
                "plugin), e.g. `qeval perf --into RUN_DIR` to put both in one run folder."
            )
        if "tokenize" in slo.metric:
            raise SloError(f"SLO {text!r}: `qeval perf` does not sample tokenization time; use ttft, tpot, itl or e2e.")
        if slo.relation == "ratio":
            if slo.metric not in RATIO_METRICS:
                raise SloError(
                    f"SLO {text!r}: `qeval perf` measures ratios of {', '.join(RATIO_METRICS)} only."
                )
            if reference is not None and slo.reference != reference:
                raise SloError(
                    f"SLO {text!r}: ratios are taken against the reference precision {reference!r} (the first "
                    f"of --precisions); write {slo.metric}_ratio_vs({reference})."
                )
        slos.append(slo)
    return tuple(slos)


def measure_point(
    slo: SLO, point: LoadPoint, weights_bytes: int | None, ratios: Sequence[Ratio] = ()
) -> tuple[float | None, tuple[float, float] | None, int, int | None]:
    """``(value, 95% interval, n, min_n)`` that ``slo`` is decided on at ``point``.

    ``ratios``: this precision's ratios against the reference (empty for the reference
    itself, whose ratio is exactly 1).
    """
    if slo.relation == "ratio":
        if not ratios:
            return 1.0, (1.0, 1.0), point.requests, None
        for r in ratios:
            if r.metric == slo.metric and r.batch_size == point.batch_size:
                return r.value, r.ci, point.requests, None
        return None, None, 0, None
    lat = LATENCY_SLO.match(slo.metric)
    if lat:
        pct, kind = int(lat[1]), lat[2]
        dist = point.latency.get(kind)
        if dist is None:
            return None, None, 0, None
        q = getattr(dist, f"p{pct}")
        return q.value, q.ci, q.n, stats.min_samples_for_quantile(pct / 100)
    if slo.metric == "tokens_per_s":
        rounds = len(point.round_tokens_per_s)
        return point.output_tokens_per_s, point.output_tokens_per_s_ci, rounds, None
    if slo.metric in ("peak_mb", "peak"):
        mb = None if point.peak_bytes is None else point.peak_bytes / BYTES_PER_MB
        return mb, None if mb is None else (mb, mb), 1, None
    if slo.metric in ("weights_mb", "weights"):
        mb = None if weights_bytes is None else weights_bytes / BYTES_PER_MB
        return mb, None if mb is None else (mb, mb), 1, None
    return None, None, 0, None


def point_verdicts(
    slos: Sequence[SLO], point: LoadPoint, weights_bytes: int | None, ratios: Sequence[Ratio] = ()
) -> dict[str, str]:
    """SLO text -> "pass" | "fail" | "inconclusive" at one load point (not ok: all fail)."""
    if point.status != "ok":
        return {str(s): "fail" for s in slos}
    out: dict[str, str] = {}
    for slo in slos:
        value, ci, n, min_n = measure_point(slo, point, weights_bytes, ratios)
        out[str(slo)] = decide(slo, value, ci, n, min_n).outcome
    return out


def pick_goodput(verdicts: Mapping[int, Mapping[str, str]]) -> int | None:
    """The highest batch size whose every verdict is "pass" (``None`` when there is none)."""
    passing = [b for b, v in verdicts.items() if all(o == "pass" for o in v.values())]
    return max(passing) if passing else None


def goodput(
    slos: Sequence[SLO], points: Sequence[LoadPoint], weights_bytes: int | None, ratios: Sequence[Ratio] = ()
) -> Goodput:
    """Decide every SLO at every batch size and pick the goodput load."""
    verdicts = {p.batch_size: point_verdicts(slos, p, weights_bytes, ratios) for p in points}
    best = pick_goodput(verdicts)
    point = next((p for p in points if p.batch_size == best), None)
    return Goodput(
        batch_size=best,
        output_tokens_per_s=point.output_tokens_per_s if point else None,
        requests_per_s=point.requests_per_s if point else None,
        verdicts=verdicts,
    )

