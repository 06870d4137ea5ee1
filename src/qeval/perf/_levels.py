"""What a load level measured, as reported: pure arithmetic over the generator's samples.

Definitions (docs/metrics.md has the long form):

* **TTFT**: send -> first token (an endpoint: first content chunk). It includes any time the
  request waited in the *server's* queue; time it waited on the *client's* cap is apart
  (``cap_wait``), as in vLLM's ``bench serve --max-concurrency``.
* **TPOT**: (e2e − TTFT) / (output tokens − 1), output tokens as the target counted them (an
  endpoint's usage), for requests with at least 2; **ITL**: every gap between consecutive
  chunks, pooled; **e2e**: send -> last token. Failed requests are counted, not timed.
* **Achieved rate**: completed requests (output tokens) / wall time, per round; the interval is
  Student-t over rounds (the independent units). **Offered rate**: the schedule's own.
* **Goodput** (DistServe, Zhong et al. 2024): completed requests per second whose own TTFT,
  TPOT and e2e meet every latency ``--slo`` (``p95_ttft_ms <= 300`` asks each request for
  TTFT <= 300 ms); ITL, ratio and throughput SLOs are not per-request and do not enter it.
* **Saturation point**: the highest level (in the order given) at which every SLO passes on
  its interval.
* **Client health**: the generator's loop lag p99, dispatch lateness p99 and per-request read
  overhead p50 must each stay under :data:`CLIENT_SHARE_LIMIT` of the level's median TTFT; a
  level where one does not is flagged: its latencies may carry the client's own delay.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from qeval import stats
from qeval.gates import SLO, decide
from qeval.load._driver import LevelRun
from qeval.load._types import LoadLevel, RequestSample
from qeval.perf._goodput import LATENCY_SLO
from qeval.perf._schema import ClientHealth, Distribution, LevelPoint, Ratio, ServerGaugesSummary
from qeval.perf._stats import distribution, percentile_ratio, rate_interval, rate_ratio

CLIENT_SHARE_LIMIT = 0.05
"""The generator is trusted at a level while its own delays stay under 5% of the median TTFT."""
LEVEL_RATIO_METRICS = ("p50_ttft", "p95_ttft", "p50_tpot", "p95_tpot", "p95_e2e", "tokens_per_s", "requests_per_s")
_PER_REQUEST = ("ttft", "tpot", "e2e")


def request_figures(sample: RequestSample) -> dict[str, float]:
    """A successful request's own TTFT, TPOT and e2e (ms); TPOT only with 2+ output tokens."""
    out: dict[str, float] = {}
    if not sample.ok or not sample.token_times_ms:
        return out
    ttft = sample.token_times_ms[0]
    e2e = max(sample.e2e_ms, sample.token_times_ms[-1])
    out["ttft"], out["e2e"] = ttft, e2e
    tokens = sample.output_tokens if sample.output_tokens is not None else len(sample.token_times_ms)
    if tokens >= 2:
        out["tpot"] = (e2e - ttft) / (tokens - 1)
    return out


def latencies(samples: Sequence[RequestSample]) -> dict[str, list[float]]:
    """TTFT, TPOT, ITL and e2e samples (ms) of successful requests."""
    out: dict[str, list[float]] = {"ttft": [], "tpot": [], "itl": [], "e2e": []}
    for s in samples:
        figures = request_figures(s)
        for kind, value in figures.items():
            out[kind].append(value)
        if figures:
            times = s.token_times_ms
            out["itl"].extend(b - a for a, b in zip(times, times[1:]))
    return out


def is_good(sample: RequestSample, slos: Sequence[SLO]) -> bool:
    """Whether ``sample`` completed within every per-request latency SLO."""
    figures = request_figures(sample)
    if not figures:
        return False
    for slo in per_request_slos(slos):
        match = LATENCY_SLO.match(slo.metric)
        assert match is not None
        value = figures.get(match[2])
        if value is not None and not slo.holds(value):
            return False
    return True


def per_request_slos(slos: Sequence[SLO]) -> tuple[SLO, ...]:
    """The SLOs goodput asks of each request: absolute TTFT/TPOT/e2e percentiles."""
    out = []
    for slo in slos:
        match = LATENCY_SLO.match(slo.metric)
        if slo.relation == "absolute" and match and match[2] in _PER_REQUEST:
            out.append(slo)
    return tuple(out)


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def client_health(runs: Sequence[LevelRun], ttft_p50_ms: float | None) -> ClientHealth:
    """The generator's own delays at one level, and whether they are small beside the TTFT."""
    lag = [x for r in runs for x in r.loop_lag_ms]
    measured = [s for r in runs for s in r.measured]
    open_loop = bool(runs) and runs[0].level.kind != "concurrency"
    late = [max((s.sent_s - s.due_s) * 1000.0 - s.cap_wait_ms, 0.0) for s in measured] if open_loop else []
    overhead = [s.client_overhead_ms for s in measured if s.ok]
    health = ClientHealth(
        loop_lag_p99_ms=_pct(lag, 99), loop_lag_max_ms=max(lag) if lag else None,
        dispatch_late_p99_ms=_pct(late, 99), overhead_p50_ms=_pct(overhead, 50), overhead_p99_ms=_pct(overhead, 99),
        ttft_p50_ms=ttft_p50_ms, share_limit=CLIENT_SHARE_LIMIT,
    )
    if ttft_p50_ms is None or ttft_p50_ms <= 0:
        return health
    bound = CLIENT_SHARE_LIMIT * ttft_p50_ms
    over = [f"{name} {value:.2f} ms" for name, value in (
        ("event-loop lag p99", health.loop_lag_p99_ms), ("dispatch lateness p99", health.dispatch_late_p99_ms),
        ("read overhead p50", health.overhead_p50_ms)) if value is not None and value > bound]
    if not over:
        return health
    reason = (f"the load generator may be the bottleneck: {', '.join(over)} > {CLIENT_SHARE_LIMIT:.0%} of "
              f"the median TTFT ({ttft_p50_ms:.1f} ms)")
    return replace(health, flagged=True, reason=reason)


def merge_server(parts: Sequence[ServerGaugesSummary | None]) -> ServerGaugesSummary | None:
    """One level's server view over its rounds: sample-weighted means, maxima, summed preemptions."""
    seen = [p for p in parts if p is not None]
    if not seen:
        return None
    sampled = [p for p in seen if p.samples > 0]
    if not sampled:
        return seen[0]

    def mean(attr: str) -> float | None:
        pairs = [(getattr(p, attr), p.samples) for p in sampled if getattr(p, attr) is not None]
        total = sum(n for _, n in pairs)
        return sum(v * n for v, n in pairs) / total if total else None

    def top(attr: str) -> float | None:
        values = [getattr(p, attr) for p in sampled if getattr(p, attr) is not None]
        return max(values) if values else None

    preempted = [p.preemptions for p in sampled if p.preemptions is not None]
    return ServerGaugesSummary(
        engine=sampled[0].engine, samples=sum(p.samples for p in sampled),
        running_mean=mean("running_mean"), running_max=top("running_max"),
        waiting_mean=mean("waiting_mean"), waiting_max=top("waiting_max"),
        kv_cache_usage_mean=mean("kv_cache_usage_mean"), kv_cache_usage_max=top("kv_cache_usage_max"),
        preemptions=sum(preempted) if preempted else None,
    )


def _offered(runs: Sequence[LevelRun], level: LoadLevel) -> float | None:
    if level.kind == "concurrency":
        return None
    if level.kind == "rate" and math.isinf(level.value):
        return math.inf
    gaps = sum(max(len(r.measured) - 1, 0) for r in runs if r.scheduled_span_s)
    span = sum(r.scheduled_span_s or 0.0 for r in runs)
    return gaps / span if span > 0 else None


def level_point(
    level: LoadLevel, runs: Sequence[LevelRun], slos: Sequence[SLO],
    server: Sequence[ServerGaugesSummary | None] = (), warmup_requests: int = 0, token_source: str = "",
) -> LevelPoint:
    """Pool one target's rounds at ``level`` into its reported point (verdicts decided later,
    by :func:`with_verdicts`, once the ratios against the reference are known)."""
    measured = [s for r in runs for s in r.measured]
    ok = [s for s in measured if s.ok]
    if not measured:
        return LevelPoint(level=level, label=level.label, status="error", reason="no request was measured",
                          warmup_requests=warmup_requests)
    errors = Counter(str(s.error_kind) for s in measured if not s.ok)
    wall = sum(r.wall_s for r in runs)
    tokens = sum(s.output_tokens or 0 for s in ok)
    round_rps = tuple(sum(1 for s in r.measured if s.ok) / r.wall_s for r in runs if r.wall_s > 0)
    round_tps = tuple(sum(s.output_tokens or 0 for s in r.measured if s.ok) / r.wall_s for r in runs if r.wall_s > 0)
    lat = {kind: distribution(values) for kind, values in latencies(ok).items()}
    good: int | None = None
    round_good: tuple[float, ...] = ()
    goodput = goodput_ci = None
    if per_request_slos(slos):
        good = sum(1 for s in ok if is_good(s, slos))
        round_good = tuple(sum(1 for s in r.measured if is_good(s, slos)) / r.wall_s for r in runs if r.wall_s > 0)
        goodput = good / wall if wall > 0 else None
        goodput_ci = rate_interval(round_good)
    ttft = lat["ttft"].p50.value if lat["ttft"].n else None
    return LevelPoint(
        level=level, label=level.label, status="ok" if ok else "error",
        reason=None if ok else f"every measured request failed ({', '.join(f'{k}: {n}' for k, n in errors.items())})",
        requests=len(measured), ok_requests=len(ok), errors=dict(errors),
        error_rate=(len(measured) - len(ok)) / len(measured),
        error_rate_ci=stats.proportion_ci(len(measured) - len(ok), len(measured)),
        wall_s=wall, offered_requests_per_s=_offered(runs, level),
        requests_per_s=len(ok) / wall if wall > 0 else None, requests_per_s_ci=rate_interval(round_rps),
        output_tokens=tokens, output_tokens_per_s=tokens / wall if wall > 0 else None,
        output_tokens_per_s_ci=rate_interval(round_tps),
        latency=lat, cap_wait=distribution([s.cap_wait_ms for s in measured]),
        good_requests=good, goodput_requests_per_s=goodput, goodput_requests_per_s_ci=goodput_ci,
        server=merge_server(server), client=client_health(runs, ttft),
        round_requests_per_s=round_rps, round_tokens_per_s=round_tps, round_goodput_per_s=round_good,
        warmup_requests=warmup_requests, token_source=token_source,
    )


def level_ratios(reference: LevelPoint, current: LevelPoint) -> tuple[Ratio, ...]:
    """``current / reference`` at the same level, each with its interval."""
    out = []
    for m in LEVEL_RATIO_METRICS:
        if reference.status != "ok" or current.status != "ok":
            value, ci = None, None
        elif m == "tokens_per_s":
            value, ci = rate_ratio(reference.output_tokens_per_s, reference.round_tokens_per_s,
                                   current.output_tokens_per_s, current.round_tokens_per_s)
        elif m == "requests_per_s":
            value, ci = rate_ratio(reference.requests_per_s, reference.round_requests_per_s,
                                   current.requests_per_s, current.round_requests_per_s)
        else:
            value, ci = percentile_ratio(reference.latency, current.latency, m)
        out.append(Ratio(m, 0, value, ci, level=current.label))
    return tuple(out)


def _measure(slo: SLO, point: LevelPoint, ratios: Sequence[Ratio], is_reference: bool):
    """``(value, interval, n, min_n, why not measured)`` that ``slo`` is decided on at ``point``."""
    if slo.relation == "ratio":
        if is_reference:
            return 1.0, (1.0, 1.0), point.requests, None, None
        r = next((r for r in ratios if r.metric == slo.metric and r.level == point.label), None)
        return (r.value, r.ci, point.requests, None, None) if r else (None, None, 0, None, "not measured")
    lat = LATENCY_SLO.match(slo.metric)
    if lat:
        dist: Distribution | None = point.latency.get(lat[2])
        if dist is None:
            return None, None, 0, None, "not measured"
        q = getattr(dist, f"p{lat[1]}")
        return q.value, q.ci, q.n, stats.min_samples_for_quantile(int(lat[1]) / 100), None
    if slo.metric == "tokens_per_s":
        return point.output_tokens_per_s, point.output_tokens_per_s_ci, len(point.round_tokens_per_s), None, None
    return None, None, 0, None, f"{slo.metric} is not measured at load levels"


def with_verdicts(point: LevelPoint, slos: Sequence[SLO], ratios: Sequence[Ratio], is_reference: bool) -> Mapping[str, str]:
    """SLO text -> verdict at one level. A failed level fails every SLO.

    A generator that fell behind (``client.flagged``) only ever makes a target look worse: it
    stamps chunks late (latencies read high) and sends late (throughput reads low). So a pass
    stands; a fail stands only if it survives the client's delay taken off (a latency's lower
    bound lowered by the loop lag p99 and read overhead p99), and is otherwise inconclusive.
    A pass with failed requests is inconclusive: the figure leaves them out.
    """
    if point.status != "ok":
        return {str(s): "fail" for s in slos}
    client = point.client if point.client is not None and point.client.flagged else None
    allowance_ms = 0.0
    if client is not None:
        allowance_ms = max(client.loop_lag_p99_ms or 0.0, client.overhead_p99_ms or 0.0)
    out: dict[str, str] = {}
    for slo in slos:
        value, ci, n, min_n, missing = _measure(slo, point, ratios, is_reference)
        if missing is not None:
            out[str(slo)] = "inconclusive"
            continue
        outcome = decide(slo, value, ci, n, min_n).outcome
        if outcome == "fail" and client is not None:
            lat = LATENCY_SLO.match(slo.metric)
            if lat and slo.relation == "absolute" and ci is not None:
                outcome = decide(slo, value, (max(ci[0] - allowance_ms, 0.0), ci[1]), n, min_n).outcome
                outcome = "inconclusive" if outcome == "pass" else outcome
            else:
                outcome = "inconclusive"
        if outcome == "pass" and point.ok_requests < point.requests:
            outcome = "inconclusive"
        out[str(slo)] = outcome
    return out


def saturation(points: Sequence[LevelPoint]) -> str | None:
    """The label of the highest level (in the order given) whose every verdict passes; levels
    past one that does not are not counted (a pass at a higher level after a failure is noise
    or a different shape, not headroom)."""
    best = None
    for p in points:
        if p.verdicts and all(v == "pass" for v in p.verdicts.values()):
            best = p.label
        elif p.verdicts:
            break
    return best
