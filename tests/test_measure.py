"""Measurements behind SLO verdicts: values, intervals, pairing, flips."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval import measure, stats
from qeval.gates import decide, parse_slo
from qeval.results import CaseResult, CellResult, LatencyStats, MemoryStats, MetricValue, Percentiles


def _case(i: int, passed: bool, **details) -> CaseResult:
    return CaseResult(f"c{i}", "p", "yes" if passed else "no", i, float(passed), passed,
                      None if passed else "wrong", 2, details=details)


def _latency(ttft: list[float], tokens: int = 4) -> LatencyStats:
    e2e = [t + 10.0 * (tokens - 1) for t in ttft]
    pct = stats.percentiles
    return LatencyStats(
        ttft_ms=pct(ttft), tpot_ms=pct([10.0] * len(ttft)), itl_ms=pct([10.0]), e2e_ms=pct(e2e),
        tokenize_ms=pct([1.0] * len(ttft)), output_tokens_per_s=tokens * len(ttft) / (sum(e2e) / 1000),
        requests=len(ttft), warmup_requests=0, output_tokens=tokens * len(ttft),
        samples_ms={"ttft": tuple(ttft), "e2e": tuple(e2e), "tokenize": (1.0,) * len(ttft), "tpot": (10.0,) * len(ttft)},
        request_tokens=(tokens,) * len(ttft),
    )


def cell(passed: list[bool], precision: str = "int8", ttft: list[float] | None = None, details=None) -> CellResult:
    cases = tuple(_case(i, p, **(details[i] if details else {})) for i, p in enumerate(passed))
    acc = stats.rate(passed)
    return CellResult(
        precision=precision, suite="s", status="ok", reason=None, n=acc.n, accuracy=acc.value, accuracy_ci=acc.ci,
        metrics={"f1": MetricValue(0.5, (0.4, 0.6), len(passed))},
        latency=_latency(ttft or [100.0] * 8), memory=MemoryStats(200_000_000, 900_000_000, "cpu_rss"), cases=cases,
    )


def test_absolute_accuracy_is_the_cells_wilson_interval():
    c = cell([True] * 9 + [False])
    m = measure.absolute(c, "accuracy")
    assert (m.value, m.ci, m.n) == (0.9, c.accuracy_ci, 10)


def test_p95_from_8_samples_has_no_upper_bound_and_asks_for_72():
    m = measure.absolute(cell([True], ttft=[100.0 + i for i in range(8)]), "p95_ttft_ms")
    assert m.ci[1] == math.inf and m.min_n == 72
    v = decide(parse_slo("p95_ttft_ms <= 300"), m.value, m.ci, m.n, m.min_n)
    assert v.outcome == "inconclusive" and v.needed_n == 72


def test_p95_with_enough_samples_decides_both_ways():
    ttft = [100.0 + i % 50 for i in range(200)]
    m = measure.absolute(cell([True], ttft=ttft), "p95_ttft_ms")
    assert decide(parse_slo("p95_ttft_ms <= 300"), m.value, m.ci, m.n).outcome == "pass"
    assert decide(parse_slo("p95_ttft_ms <= 120"), m.value, m.ci, m.n).outcome == "fail"


def test_quantile_interval_covers_the_true_p95_at_least_95_percent():
    rng = np.random.default_rng(1)
    true_p95 = -math.log(0.05)  # exponential(1)
    hits = sum(
        lo <= true_p95 <= hi
        for lo, hi in (stats.quantile_ci(rng.exponential(size=150), 0.95) for _ in range(400))
    )
    assert hits / 400 >= 0.93  # nominal 0.95, exact intervals are conservative; 400 runs of slack


def test_memory_metrics_are_exact_in_mb():
    m = measure.absolute(cell([True]), "weights_mb")
    assert m.value == 200.0 and m.ci == (200.0, 200.0)
    r = measure.ratio(cell([True]), replace(cell([True]), memory=MemoryStats(50_000_000, 1, "cpu_rss")), "weights")
    assert r.value == 0.25


def test_throughput_interval_contains_the_reported_value():
    m = measure.absolute(cell([True], ttft=[100.0 + 7 * i for i in range(10)]), "tokens_per_s")
    assert m.ci[0] <= m.value <= m.ci[1]


def test_unknown_metric_lists_what_the_cell_has():
    with pytest.raises(measure.MeasureError, match="has no metric 'bleu'; it has: accuracy, f1"):
        measure.absolute(cell([True]), "bleu")


def test_drop_names_the_flipped_cases_both_ways():
    ref = cell([True, True, False, True], precision="bf16")
    cur = cell([True, False, True, False])
    m = measure.drop(ref, cur, "accuracy")
    assert [f.case_id for f in m.lost] == ["c1", "c3"]
    assert [f.case_id for f in m.gained] == ["c2"]
    assert m.value == pytest.approx(0.25)
    assert m.lost[0].reference_completion == "yes" and m.lost[0].completion == "no"


def test_drop_pairs_on_shared_ids_and_says_so():
    ref = cell([True] * 6, precision="bf16")
    cur = replace(cell([True] * 4), cases=cell([True] * 4).cases[:3])
    m = measure.drop(ref, cur, "accuracy")
    assert m.n == 3 and "3 cases both runs share" in m.notes[0]


def test_drop_without_cases_is_a_clear_error():
    ref = replace(cell([True] * 3, precision="bf16"), cases=())
    with pytest.raises(measure.MeasureError, match="no per-case results"):
        measure.drop(ref, cell([True] * 3), "accuracy")


def test_f1_drop_is_paired_and_zero_for_identical_runs():
    details = [{"tp": 1, "fp": i % 2, "fn": (i + 1) % 3} for i in range(12)]
    a = cell([True] * 12, precision="bf16", details=details)
    m = measure.drop(a, cell([True] * 12, details=details), "f1")
    assert m.value == 0 and m.ci == (0.0, 0.0)
    worse = [{"tp": 0, "fp": 1, "fn": 1} if i < 6 else d for i, d in enumerate(details)]
    m = measure.drop(a, cell([True] * 12, details=worse), "f1")
    assert m.value > 0 and m.ci[0] > 0


def test_drop_refuses_metrics_without_a_paired_test():
    with pytest.raises(measure.MeasureError, match="unparseable_rate"):
        measure.drop(cell([True]), cell([True]), "unparseable_rate")


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_accuracy_drop_equals_the_difference_of_rates(pairs):
    ref = cell([a for a, _ in pairs], precision="bf16")
    cur = cell([b for _, b in pairs])
    m = measure.drop(ref, cur, "accuracy")
    assert m.value == pytest.approx(ref.accuracy - cur.accuracy)
    assert m.ci[0] - 1e-12 <= m.value <= m.ci[1] + 1e-12
    assert len(m.lost) - len(m.gained) == round(m.value * len(pairs))


def test_latency_ratio_is_bounded_once_both_sides_have_enough_samples():
    fast = cell([True], ttft=[50.0 + i % 10 for i in range(100)])
    slow = cell([True], precision="bf16", ttft=[100.0 + i % 10 for i in range(100)])
    m = measure.ratio(slow, fast, "p50_ttft")
    assert m.ci[1] < 0.8
    assert decide(parse_slo("p50_ttft_ratio_vs(bf16) <= 0.8"), m.value, m.ci, m.n).outcome == "pass"
