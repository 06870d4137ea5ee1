"""The arithmetic of a load level (qeval.perf._levels): per-request figures, goodput, verdicts,
saturation and client health, on hand-made samples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.gates import parse_slo
from qeval.load._driver import LevelRun
from qeval.load._types import LoadLevel, RequestSample
from qeval.perf._levels import (
    CLIENT_SHARE_LIMIT,
    is_good,
    level_point,
    request_figures,
    saturation,
    with_verdicts,
)
from qeval.perf._schema import LevelPoint

C4 = LoadLevel("concurrency", 4)


def sample(k: int, ttft: float, gap: float, tokens: int, *, error: str | None = None, sent: float = 0.0,
           due: float | None = None, cap_wait: float = 0.0, overhead: float = 0.0) -> RequestSample:
    times = tuple(ttft + i * gap for i in range(tokens)) if error is None else ()
    return RequestSample(index=k, due_s=sent if due is None else due, sent_s=sent, cap_wait_ms=cap_wait,
                         token_times_ms=times, e2e_ms=times[-1] if times else 5.0,
                         output_tokens=tokens if error is None else None, error_kind=error,
                         client_overhead_ms=overhead)


def run(samples, wall_s: float = 1.0, lag=(0.1,), level=C4) -> LevelRun:
    return LevelRun(level=level, samples=tuple(samples), wall_s=wall_s, scheduled_span_s=None, loop_lag_ms=tuple(lag))


def test_request_figures_follow_the_definitions():
    s = sample(0, ttft=100.0, gap=10.0, tokens=5)  # tokens at 100, 110, ..., 140
    assert request_figures(s) == {"ttft": 100.0, "e2e": 140.0, "tpot": 10.0}
    assert "tpot" not in request_figures(sample(0, 50.0, 0.0, 1))  # one token: no TPOT
    assert request_figures(sample(0, 1, 1, 1, error="timeout")) == {}
    # usage counts more tokens than chunks arrived (several per chunk): TPOT uses the count
    chunky = RequestSample(0, 0, 0, 0, token_times_ms=(100.0, 200.0), e2e_ms=200.0, output_tokens=11)
    assert request_figures(chunky)["tpot"] == pytest.approx(10.0)


@given(ttft=st.floats(1, 1000), gap=st.floats(0, 100), tokens=st.integers(1, 50),
       ttft_max=st.floats(1, 1000), tpot_max=st.floats(0.5, 100))
def test_a_request_is_good_exactly_when_its_own_figures_meet_every_slo(ttft, gap, tokens, ttft_max, tpot_max):
    slos = (parse_slo(f"p95_ttft_ms <= {ttft_max}"), parse_slo(f"p50_tpot_ms <= {tpot_max}"),
            parse_slo("tokens_per_s >= 1"))  # not per request: ignored by goodput
    s = sample(0, ttft, gap, tokens)
    f = request_figures(s)
    expected = f["ttft"] <= ttft_max and (tokens < 2 or f["tpot"] <= tpot_max)
    assert is_good(s, slos) == expected
    assert not is_good(sample(0, ttft, gap, tokens, error="http_503"), slos)


def test_a_level_counts_errors_by_kind_and_goodput_over_its_wall_time():
    good = [sample(k, 100.0, 10.0, 4, sent=k * 0.01) for k in range(6)]
    slow = [sample(6 + k, 900.0, 10.0, 4, sent=0.1) for k in range(2)]
    bad = [sample(8, 0, 0, 0, error="http_503"), sample(9, 0, 0, 0, error="timeout"),
           sample(10, 0, 0, 0, error="http_503")]
    slos = (parse_slo("p95_ttft_ms <= 300"),)
    point = level_point(C4, [run(good + slow + bad, wall_s=2.0)], slos)
    assert point.requests == 11 and point.ok_requests == 8
    assert point.errors == {"http_503": 2, "timeout": 1}
    assert point.error_rate == pytest.approx(3 / 11)
    lo, hi = point.error_rate_ci
    assert lo < 3 / 11 < hi
    assert point.good_requests == 6
    assert point.goodput_requests_per_s == pytest.approx(6 / 2.0)
    assert point.requests_per_s == pytest.approx(8 / 2.0)
    assert point.latency["ttft"].n == 8


def test_rates_get_an_interval_from_rounds():
    rounds = [run([sample(k, 10.0, 1.0, 3) for k in range(10)], wall_s=w) for w in (1.0, 1.1, 0.9)]
    point = level_point(C4, rounds, ())
    assert point.round_requests_per_s == pytest.approx((10.0, 10 / 1.1, 10 / 0.9))
    lo, hi = point.requests_per_s_ci
    assert lo < 10.0 < hi
    assert point.good_requests is None  # no per-request SLO: no goodput


def test_a_client_that_fell_behind_is_flagged_against_the_median_ttft():
    samples = [sample(k, 100.0, 5.0, 3) for k in range(20)]
    calm = level_point(C4, [run(samples, lag=[0.5] * 50)], ())
    assert calm.client is not None and not calm.client.flagged
    busy = level_point(C4, [run(samples, lag=[20.0] * 50)], ())
    assert busy.client is not None and busy.client.flagged
    assert "event-loop lag p99 20.00 ms" in busy.client.reason
    assert f"{CLIENT_SHARE_LIMIT:.0%}" in busy.client.reason
    slow_reader = level_point(C4, [run([sample(k, 100.0, 5.0, 3, overhead=9.0) for k in range(20)])], ())
    assert slow_reader.client.flagged and "read overhead p50 9.00 ms" in slow_reader.client.reason


def test_open_loop_dispatch_lateness_excludes_the_cap_wait():
    rate = LoadLevel("rate", 10.0)
    held = [sample(k, 100.0, 5.0, 3, sent=1.0, due=0.5, cap_wait=500.0) for k in range(20)]
    point = level_point(rate, [run(held, level=rate)], ())
    assert point.client.dispatch_late_p99_ms == pytest.approx(0.0, abs=1e-6)
    late = [sample(k, 100.0, 5.0, 3, sent=0.51, due=0.5) for k in range(20)]
    point = level_point(rate, [run(late, level=rate)], ())
    assert point.client.dispatch_late_p99_ms == pytest.approx(10.0)
    assert point.client.flagged  # 10 ms late > 5% of a 100 ms TTFT


def _with_lag(lag_ms: float, ttft: float) -> LevelPoint:
    return level_point(C4, [run([sample(k, ttft, 1.0, 2) for k in range(100)], lag=[lag_ms] * 100)], ())


def test_a_lagging_client_cannot_fail_a_target_but_cannot_stop_a_pass():
    slo = parse_slo("p95_ttft_ms <= 110")
    # measured 100 ms with a 20 ms lag: a pass stands (the client only inflates latencies)
    passed = _with_lag(20.0, 100.0)
    assert passed.client.flagged
    assert with_verdicts(passed, (slo,), (), True) == {str(slo): "pass"}
    # measured 120 ms, but up to 20 ms of that may be the client's: not evidence of a fail
    doubtful = _with_lag(20.0, 120.0)
    assert with_verdicts(doubtful, (slo,), (), True) == {str(slo): "inconclusive"}
    # measured 200 ms: even 20 ms less fails
    assert with_verdicts(_with_lag(20.0, 200.0), (slo,), (), True) == {str(slo): "fail"}
    # the same 120 ms from a calm client fails
    assert with_verdicts(_with_lag(0.1, 120.0), (slo,), (), True) == {str(slo): "fail"}


def test_failed_requests_keep_a_latency_pass_inconclusive():
    slo = parse_slo("p95_ttft_ms <= 500")
    samples = [sample(k, 100.0, 1.0, 2) for k in range(100)] + [sample(100, 0, 0, 0, error="timeout")]
    point = level_point(C4, [run(samples)], ())
    assert with_verdicts(point, (slo,), (), True) == {str(slo): "inconclusive"}


def _verdicts(outcomes: list[str]) -> list[LevelPoint]:
    return [LevelPoint(level=LoadLevel("concurrency", 2 ** i), label=f"c={2 ** i}", status="ok",
                       verdicts={"slo": o}) for i, o in enumerate(outcomes)]


@given(st.lists(st.sampled_from(["pass", "fail", "inconclusive"]), min_size=1, max_size=8))
@settings(max_examples=200)
def test_saturation_is_the_last_level_of_the_passing_run_from_the_start(outcomes):
    points = _verdicts(outcomes)
    got = saturation(points)
    prefix = 0
    while prefix < len(outcomes) and outcomes[prefix] == "pass":
        prefix += 1
    assert got == (points[prefix - 1].label if prefix else None)


def test_no_slos_no_saturation_point():
    assert saturation([LevelPoint(level=C4, label="c=4", status="ok")]) is None
