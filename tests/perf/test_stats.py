"""Pure load-profile statistics."""

import math

import pytest

from qeval.models import TimedGeneration
from qeval.perf import LoadPoint
from qeval.perf._stats import (
    RATIO_METRICS,
    distribution,
    quantile,
    rate_interval,
    ratios,
    request_latencies,
)
from qeval.stats import quantile_ci


def _req(*times):
    return TimedGeneration(text="", output_tokens=len(times), tokenize_ms=0.1, token_times_ms=tuple(times))


def test_request_latencies_follow_the_definitions():
    out = request_latencies([_req(10.0, 12.0, 16.0), _req(10.0), _req()])
    assert out["ttft"] == [10.0, 10.0]
    assert out["e2e"] == [16.0, 10.0]
    assert out["tpot"] == [3.0]  # (16 - 10) / 2; a 1-token request has none
    assert out["itl"] == [2.0, 4.0]


def test_quantile_uses_order_statistic_intervals_with_n():
    samples = [float(i) for i in range(100)]
    q = quantile(samples, 95)
    assert q.n == 100 and q.value == pytest.approx(94.05)
    assert q.ci == quantile_ci(samples, 0.95)
    assert quantile([], 50).value is None and quantile([], 50).n == 0
    d = distribution([5.0] * 8)
    assert d.n == 8 and d.p95.ci[1] == math.inf and d.p50.ci[0] >= 0.0


def test_rate_interval():
    assert rate_interval([10.0]) is None
    assert rate_interval([10.0, 10.0]) == (10.0, 10.0)
    lo, hi = rate_interval([9.0, 10.0, 11.0])
    assert lo < 10.0 < hi and lo >= 0


def _point(batch, ttft, tps_rounds):
    tps = sum(tps_rounds) / len(tps_rounds)
    return LoadPoint(batch_size=batch, status="ok", requests=len(ttft), latency={"ttft": distribution(ttft),
                     "tpot": distribution(ttft), "e2e": distribution(ttft)},
                     output_tokens_per_s=tps, round_tokens_per_s=tuple(tps_rounds))


def test_ratios_against_the_reference():
    ref = _point(1, [10.0 + i % 7 for i in range(200)], [100.0, 101.0, 99.0])
    cur = _point(1, [20.0 + 2 * (i % 7) for i in range(200)], [50.0, 51.0, 49.0])
    by = {r.metric: r for r in ratios(ref, cur)}
    assert set(by) == set(RATIO_METRICS)
    assert by["p50_ttft"].value == pytest.approx(2.0)
    lo, hi = by["p50_ttft"].ci
    assert lo <= 2.0 <= hi
    assert by["tokens_per_s"].value == pytest.approx(0.5)
    lo, hi = by["tokens_per_s"].ci
    assert lo <= 0.5 <= hi
    oom = LoadPoint(batch_size=1, status="oom")
    assert all(r.value is None for r in ratios(ref, oom))
