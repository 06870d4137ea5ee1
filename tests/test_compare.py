"""compare_runs: paired quality verdicts, latency across (mis)matched environments, lost cells.

The builders at the top are shared with tests/report/test_comparison.py and tests/test_cli_compare.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval import measure, stats
from qeval.compare import compare_runs, fmt_ci, fmt_value
from qeval.errors import UsageError
from qeval.results import (
    CaseResult,
    CellResult,
    CpuInfo,
    Environment,
    LatencyStats,
    MemoryStats,
    MetricSpec,
    MetricValue,
    RunRecord,
    RunSettings,
    SuiteScoring,
    TorchInfo,
)
from tests.report.conftest import make_record, not_run_cell

ENV = Environment(device="cpu", packages={"torch": "2.13.0"}, cpu=CpuInfo(model="Xeon", usable_cores=2),
                  torch=TorchInfo(available=True, threads=2), host_id="abc123abc123")


def case(i: int, passed: bool, *, counts: tuple[int, int, int] | None = None, completion: str | None = None) -> CaseResult:
    """Case ``c{i}``; ``counts`` = (tp, fp, fn) for F1-style scorers."""
    details: dict[str, Any] = {"parsed": i}
    if counts is not None:
        details.update(tp=counts[0], fp=counts[1], fn=counts[2])
    return CaseResult(
        case_id=f"c{i}", prompt=f"q{i}", completion=completion if completion is not None else (f"right {i}" if passed else f"wrong {i}"),
        expected=i, score=float(passed), passed=passed, reason=None if passed else "wrong number", output_tokens=3,
        details=details,
    )


def timed(ttft_ms: Sequence[float], tokens_per_s: float | None = 40.0, tokens: int = 8) -> LatencyStats:
    """A timed pass whose TTFT samples are ``ttft_ms``; TPOT = TTFT / 10, e2e = TTFT + 7 TPOT."""
    ttft = tuple(float(x) for x in ttft_ms)
    tpot = tuple(x / 10 for x in ttft)
    e2e = tuple(a + (tokens - 1) * b for a, b in zip(ttft, tpot))
    return LatencyStats(
        ttft_ms=stats.percentiles(ttft), tpot_ms=stats.percentiles(tpot), itl_ms=stats.percentiles(tpot),
        e2e_ms=stats.percentiles(e2e), tokenize_ms=stats.percentiles([0.5] * len(ttft)),
        output_tokens_per_s=tokens_per_s, requests=len(ttft), warmup_requests=2, output_tokens=tokens * len(ttft),
        samples_ms={"ttft": ttft, "tpot": tpot, "itl": tpot, "e2e": e2e, "tokenize": (0.5,) * len(ttft)},
        request_tokens=(tokens,) * len(ttft),
    )


def spread(center: float, n: int = 100, width: float = 0.1) -> list[float]:
    """``n`` deterministic latencies evenly spread over ``center ± width·center``."""
    return [center * (1 - width + 2 * width * i / (n - 1)) for i in range(n)]


def cell(
    passed: Sequence[bool], precision: str = "int8", suite: str = "arith", *,
    counts: Sequence[tuple[int, int, int]] | None = None, latency: LatencyStats | None = None,
    metrics: dict[str, MetricValue] | None = None, with_cases: bool = True, **kw: Any,
) -> CellResult:
    """An ok cell whose accuracy and cases agree with ``passed`` (and F1 with ``counts``)."""
    cases = tuple(case(i, p, counts=counts[i] if counts else None) for i, p in enumerate(passed))
    mv = stats.rate(passed)
    extra = dict(metrics or {})
    if counts:
        tp, fp, fn = (sum(c[k] for c in counts) for k in range(3))
        extra["f1"] = MetricValue(stats.micro_f1([tp], [fp], [fn]), None, len(passed))
    fields: dict[str, Any] = {
        "precision": precision, "suite": suite, "status": "ok", "reason": None, "n": len(passed), "accuracy": mv.value,
        "accuracy_ci": mv.ci, "metrics": extra, "latency": latency,
        "memory": MemoryStats(weights_bytes=135_000_000, peak_bytes=700_000_000, peak_kind="cpu_rss"),
        "cases": cases if with_cases else (),
    }
    fields.update(kw)
    return CellResult(**fields)


def run(*cells: CellResult, run_id: str = "base", environment: Environment | None = None, **kw: Any) -> RunRecord:
    return make_record(cells=tuple(cells), run_id=run_id, environment=environment or ENV, **kw)


def planted(n: int, lost: Sequence[int] = (), gained: Sequence[int] = (), every: int = 2) -> tuple[list[bool], list[bool]]:
    """(baseline, current) pass vectors: case i passes when i % every == 0, then flips planted."""
    base = [i % every == 0 for i in range(n)]
    cur = list(base)
    for i in lost:
        assert base[i], f"case {i} must pass in the baseline to be lost"
        cur[i] = False
    for i in gained:
        assert not base[i], f"case {i} must fail in the baseline to be gained"
        cur[i] = True
    return base, cur


def row(cmp, metric: str, cell_index: int = 0):
    return next(m for m in cmp.cells[cell_index].metrics if m.metric == metric)


# --- quality ---------------------------------------------------------------------------------


def test_planted_flips_are_found_both_ways_with_their_ids():
    base, cur = planted(10, lost=[2, 6], gained=[5])
    cmp = compare_runs(run(cell(base)), run(cell(cur), run_id="cur"))
    c = cmp.cells[0]
    assert [f.case_id for f in c.lost] == ["c2", "c6"]
    assert [f.case_id for f in c.gained] == ["c5"]
    lost = c.lost[0]
    assert (lost.expected, lost.reference_completion, lost.completion) == (2, "right 2", "wrong 2")
    assert c.gained[0].reference_completion == "wrong 5" and c.gained[0].completion == "right 5"
    acc = row(cmp, "accuracy")
    assert acc.delta == pytest.approx(-0.1) and acc.n == 10
    assert "Tango" in acc.method and "3 of them flipped" in acc.method


def test_identical_runs_have_no_regression():
    base = [i % 3 != 0 for i in range(30)]
    lat = timed(spread(100.0))
    record = run(cell(base, latency=lat))
    cmp = compare_runs(record, replace(record, run_id="again"))
    assert not cmp.regressed and cmp.regressions == ()
    assert cmp.latency_compared and cmp.env_differences == ()
    for m in cmp.cells[0].metrics:
        assert m.delta == 0 and not m.regression
        assert m.significant in (False, None)
    acc = row(cmp, "accuracy")
    assert acc.ci[0] < 0 < acc.ci[1] and acc.p_value == 1.0  # identical runs still leave uncertainty
    assert cmp.cells[0].lost == () and cmp.cells[0].gained == ()


def test_large_accuracy_drop_on_200_cases_is_a_regression():
    base, cur = planted(200, lost=range(0, 80, 2))  # 100/200 -> 60/200, 40 lost, none gained
    cmp = compare_runs(run(cell(base)), run(cell(cur), run_id="cur"))
    acc = row(cmp, "accuracy")
    assert acc.delta == pytest.approx(-0.2)
    assert acc.ci[1] < 0 and acc.significant and acc.worse and acc.regression
    assert acc.p_value < 1e-6
    assert cmp.regressed
    (line,) = cmp.regressions
    assert line.startswith("arith / int8: accuracy 0.500 -> 0.300")
    assert "95% CI [" in line and "n=200" in line and "p=<0.001" in line


def test_one_case_difference_on_20_cases_is_not_significant():
    base, cur = planted(20, lost=[4])
    cmp = compare_runs(run(cell(base)), run(cell(cur), run_id="cur"))
    acc = row(cmp, "accuracy")
    assert acc.delta == pytest.approx(-0.05)
    assert acc.ci[0] < 0 < acc.ci[1]
    assert acc.significant is False and acc.worse is True and not acc.regression
    assert not cmp.regressed
    assert [f.case_id for f in cmp.cells[0].lost] == ["c4"]


def test_f1_drop_is_paired_over_cases():
    n = 60
    base_counts = [(2, 0, 0)] * n
    cur_counts = [(0, 1, 2) if i < 30 else (2, 0, 0) for i in range(n)]  # half the cases lose both entities
    base = cell([True] * n, counts=base_counts)
    cur = cell([i >= 30 for i in range(n)], counts=cur_counts)
    cmp = compare_runs(run(base), run(cur, run_id="cur"))
    f1 = row(cmp, "f1")
    expected = stats.micro_f1([60], [30], [60]) - 1.0
    assert f1.delta == pytest.approx(expected)
    assert f1.ci[1] < 0 and f1.regression and "paired bootstrap" in f1.method
    assert f1.p_value is None and f1.n == n
    assert any(r.startswith("arith / int8: f1 1.000 -> ") for r in cmp.regressions)


def test_f1_without_counts_is_a_point_comparison_with_a_note():
    mv = {"f1": MetricValue(0.8, (0.7, 0.9), 10)}
    base, cur = cell([True] * 10, metrics=mv), cell([True] * 10, metrics={"f1": MetricValue(0.5, (0.4, 0.6), 10)})
    cmp = compare_runs(run(base), run(cur, run_id="cur"))
    f1 = row(cmp, "f1")
    assert f1.delta == pytest.approx(-0.3) and f1.ci is None and f1.significant is None and not f1.regression
    assert any("no 'tp' count" in n for n in cmp.cells[0].notes)


def test_cells_without_cases_compare_point_values_only():
    base, cur = planted(200, lost=range(0, 80, 2))
    cmp = compare_runs(run(cell(base, with_cases=False)), run(cell(cur), run_id="cur"))
    acc = row(cmp, "accuracy")
    assert acc.delta == pytest.approx(-0.2)
    assert acc.ci is None and acc.significant is None and acc.p_value is None and not acc.regression
    assert "point values only" in acc.method
    assert any("no per-case results" in n for n in cmp.cells[0].notes)
    assert cmp.cells[0].lost == () and not cmp.regressed


def test_unshared_cases_are_noted_and_pairing_uses_shared_ids():
    base = cell([True] * 10)
    cur = cell([True] * 8)  # c8, c9 gone
    cmp = compare_runs(run(base), run(cur, run_id="cur"))
    assert any("paired on the 8 cases both runs share" in n for n in cmp.cells[0].notes)
    assert row(cmp, "accuracy").n == 8


def test_other_scorer_metrics_get_a_point_delta_and_no_verdict():
    m = lambda v: {"unparseable_rate": MetricValue(v, (0.0, 0.5), 20), "mean_score": MetricValue(v, None, 20)}
    cmp = compare_runs(run(cell([True] * 20, metrics=m(0.0))), run(cell([True] * 20, metrics=m(0.4)), run_id="cur"))
    unparseable, mean_score = row(cmp, "unparseable_rate"), row(cmp, "mean_score")
    assert unparseable.delta == pytest.approx(0.4) and unparseable.worse is True and not unparseable.regression
    assert mean_score.worse is None and mean_score.ci is None
    assert not cmp.regressed


def test_changed_suite_content_is_noted():
    base, cur = cell([True] * 4), cell([True] * 4)
    a = run(base, settings=RunSettings(suite_hashes={"arith": "aaaa"}))
    b = run(cur, run_id="cur", settings=RunSettings(suite_hashes={"arith": "bbbb"}))
    note = " ".join(compare_runs(a, b).cells[0].notes)
    assert "content changed" in note and "aaaa -> bbbb" in note


def test_a_different_model_is_noted():
    a = run(cell([True] * 4))
    b = replace(run(cell([True] * 4), run_id="cur"), model=replace(a.model, spec="/models/other"))
    cmp = compare_runs(a, b)
    assert not cmp.same_model
    assert any("model differs" in n and "/models/other" in n for n in cmp.notes)


# --- cells present in one run only ------------------------------------------------------------


def test_a_cell_lost_since_the_baseline_is_a_regression():
    a = run(cell([True] * 4), cell([True] * 4, precision="int4"))
    b = run(cell([True] * 4), run_id="cur")
    cmp = compare_runs(a, b)
    assert cmp.regressed
    assert cmp.regressions == ("arith / int4: ok in the baseline, missing from the current run",)
    assert cmp.cells[1].current_status == "missing"


@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_a_cell_ok_before_and_not_ok_now_is_a_regression(status):
    a = run(cell([True] * 4))
    b = run(not_run_cell("int8", "arith", status, "CUDA out of memory"), run_id="cur")
    cmp = compare_runs(a, b)
    assert cmp.regressions == (f"arith / int8: ok in the baseline, {status} now (CUDA out of memory)",)


def test_new_cells_and_cells_that_never_ran_are_noted_not_regressions():
    a = run(cell([True] * 4), not_run_cell("nf4", "arith", "skipped", "no bitsandbytes"))
    b = run(cell([True] * 4), not_run_cell("nf4", "arith", "skipped", "no bitsandbytes"),
            cell([True] * 4, precision="int4"), run_id="cur")
    cmp = compare_runs(a, b)
    assert not cmp.regressed
    assert [(c.precision, c.baseline_status, c.current_status) for c in cmp.cells] == [
        ("int8", "ok", "ok"), ("nf4", "skipped", "skipped"), ("int4", "missing", "ok")]
    assert any("only in the current run" in n and "arith / int4" in n for n in cmp.notes)
    assert "nothing to compare against" in cmp.cells[1].notes[0]


# --- latency, throughput, memory --------------------------------------------------------------


def _slow_pair(factor: float, env_b: Environment | None = None):
    passed = [True] * 10
    a = run(cell(passed, latency=timed(spread(100.0))))
    b = run(cell(passed, latency=timed(spread(100.0 * factor))), run_id="cur", environment=env_b)
    return a, b


def test_a_significant_slow_down_beyond_tolerance_is_a_regression():
    cmp = compare_runs(*_slow_pair(1.5))
    p95 = row(cmp, "p95_ttft_ms")
    assert p95.delta == pytest.approx(p95.current - p95.baseline)
    assert p95.ci[0] > 0 and p95.significant and p95.worse and p95.regression
    assert "97.5% each; 100 and 100 samples" in p95.method
    assert row(cmp, "p50_e2e_ms").regression
    assert any(r.startswith("arith / int8: p95_ttft_ms ") and "+50%, tolerance 10%" in r for r in cmp.regressions)


def test_a_significant_slow_down_within_tolerance_is_not_a_regression():
    passed = [True] * 10
    a = run(cell(passed, latency=timed([100.0] * 100)))
    b = run(cell(passed, latency=timed([105.0] * 100)), run_id="cur")
    cmp = compare_runs(a, b)
    p50 = row(cmp, "p50_ttft_ms")
    assert p50.significant and p50.worse and not p50.regression
    assert not cmp.regressed
    assert compare_runs(a, b, latency_tolerance=0.01).regressed


def test_latency_is_refused_across_environments_and_the_note_names_the_keys():
    env_b = replace(ENV, packages={"torch": "2.12.1"}, cpu=CpuInfo(model="Xeon", usable_cores=4))
    base, cur = planted(200, lost=range(0, 80, 2))
    a = run(cell(base, latency=timed(spread(100.0))))
    b = run(cell(cur, latency=timed(spread(150.0))), run_id="cur", environment=env_b)
    cmp = compare_runs(a, b)
    assert not cmp.latency_compared
    assert cmp.env_differences == ("packages.torch: 2.13.0 != 2.12.1", "cpu.usable_cores: 2 != 4")
    metrics = [m.metric for m in cmp.cells[0].metrics]
    assert not any(m.endswith("_ms") or m == "tokens_per_s" for m in metrics)
    assert "accuracy" in metrics and "weights_mb" in metrics
    (note,) = cmp.notes
    assert "packages.torch: 2.13.0 != 2.12.1" in note and "cpu.usable_cores: 2 != 4" in note
    assert "latency not compared across different environments; pass --allow-env-mismatch to compare anyway" in note
    assert [r.split(":")[1].split()[0] for r in cmp.regressions] == ["accuracy"]  # quality is still compared


def test_latency_across_environments_when_allowed():
    env_b = replace(ENV, packages={"torch": "2.12.1"})
    cmp = compare_runs(*_slow_pair(1.5, env_b), allow_env_mismatch=True)
    assert cmp.latency_compared and cmp.env_differences
    assert row(cmp, "p95_ttft_ms").regression
    assert any("compared anyway" in n for n in cmp.notes)


def test_few_latency_samples_give_unbounded_intervals_and_no_verdict():
    passed = [True] * 4
    a = run(cell(passed, latency=timed([100.0, 101, 102, 103, 104, 105, 106, 107])))
    b = run(cell(passed, latency=timed([300.0, 301, 302, 303, 304, 305, 306, 307])), run_id="cur")
    p95 = row(compare_runs(a, b), "p95_ttft_ms")
    assert p95.ci[1] == math.inf and not p95.regression and p95.significant is False
    assert "needs >= " in p95.method
    assert fmt_ci(p95.metric, p95.ci).endswith("unbounded]")


def test_throughput_regression_needs_significance_and_the_tolerance():
    passed = [True] * 4
    a = run(cell(passed, latency=timed(spread(100.0), tokens_per_s=40.0)))
    b = run(cell(passed, latency=timed(spread(100.0, width=0.3), tokens_per_s=30.0)), run_id="cur")
    tps = row(compare_runs(a, b), "tokens_per_s")
    assert tps.delta == pytest.approx(-10.0) and tps.worse
    assert tps.ci[1] < 0 and tps.significant and tps.regression
    assert "request-bootstrap" in tps.method and "97.5%" in tps.method
    c = run(cell(passed, latency=timed(spread(100.0, width=0.3), tokens_per_s=38.0)), run_id="cur")
    within = row(compare_runs(a, c), "tokens_per_s")
    assert within.significant and within.worse and not within.regression  # 5% lower < 10% tolerance


def test_throughput_from_two_requests_is_never_a_regression():
    # a bootstrap over 2 requests spans only their two rates: 2 slower requests looked "significant"
    passed = [True] * 4
    a = run(cell(passed, latency=timed([100.0, 101.0], tokens_per_s=840.0)))
    b = run(cell(passed, latency=timed([125.0, 126.0], tokens_per_s=676.0)), run_id="cur")
    tps = row(compare_runs(a, b), "tokens_per_s")
    assert tps.worse and not tps.significant and not tps.regression and tps.ci is None
    assert "fewer than 8 timed requests (2)" in tps.method


def test_memory_deltas_are_exact_and_never_a_regression():
    a = run(cell([True] * 4))
    b = run(cell([True] * 4, memory=MemoryStats(270_000_000, 1_400_000_000, "cpu_rss")), run_id="cur")
    cmp = compare_runs(a, b)
    weights, peak = row(cmp, "weights_mb"), row(cmp, "peak_mb")
    assert weights.delta == pytest.approx(135.0) and peak.delta == pytest.approx(700.0)
    assert weights.worse and not weights.regression and weights.ci is None
    assert not cmp.regressed


def test_peak_memory_of_different_kinds_is_not_compared():
    a = run(cell([True] * 4))
    b = run(cell([True] * 4, memory=MemoryStats(135_000_000, 500_000_000, "cuda_allocated")), run_id="cur")
    cmp = compare_runs(a, b)
    assert "peak_mb" not in [m.metric for m in cmp.cells[0].metrics]
    assert any("cpu_rss vs cuda_allocated" in n for n in cmp.cells[0].notes)


def test_untimed_cells_skip_latency_with_a_note():
    a = run(cell([True] * 4, latency=timed(spread(100.0))))
    b = run(cell([True] * 4), run_id="cur")
    cmp = compare_runs(a, b)
    assert not any(m.metric.endswith("_ms") for m in cmp.cells[0].metrics)
    assert any("no timed pass in the current run" in n for n in cmp.cells[0].notes)


@pytest.mark.parametrize("tolerance", [-0.1, math.nan, math.inf])
def test_a_bad_tolerance_is_a_usage_error(tolerance):
    record = run(cell([True] * 4))
    with pytest.raises(UsageError, match="latency-tolerance"):
        compare_runs(record, record, latency_tolerance=tolerance)


def test_quality_rows_follow_the_declared_specs_primary_first():
    counts = [(2, 0, 0), (1, 1, 1), (0, 0, 2), (2, 1, 0)] * 5
    worse = [(0, 1, 2)] * 2 + counts[2:]
    scoring = SuiteScoring("entities", "f1", (
        MetricSpec("accuracy", "pass rate: every entity right", "higher", "pass_fail"),
        MetricSpec("f1", "entity-level micro F1", "higher", "micro_f1"),
        MetricSpec("unparseable_rate", "no entity list", "lower"),
    ))
    passed = [c == (2, 0, 0) for c in counts]
    bad = MetricValue(0.3, None, 20)
    good = MetricValue(0.1, None, 20)
    base = cell(passed, counts=counts, metrics={"unparseable_rate": good}, scoring=scoring)
    cur = cell([c == (2, 0, 0) for c in worse], counts=worse, metrics={"unparseable_rate": bad}, scoring=scoring)
    rows = compare_runs(run(base), run(cur, run_id="cur")).cells[0].metrics
    assert [r.metric for r in rows[:3]] == ["f1", "accuracy", "unparseable_rate"]
    assert rows[0].ci is not None and "bootstrap" in rows[0].method and rows[0].worse
    unparseable = rows[2]
    assert unparseable.worse is True and unparseable.ci is None and not unparseable.regression


def test_a_case_mean_metric_is_paired_and_a_point_only_one_never_regresses():
    scoring = SuiteScoring("code_exec", "accuracy", (
        MetricSpec("accuracy", "pass rate: every test passes", "higher", "pass_fail"),
        MetricSpec("tests_passed", "mean share of tests", "higher", "case_mean"),
    ))
    base = cell([True] * 30, metrics={"tests_passed": MetricValue(1.0, None, 30)}, scoring=scoring)
    cur = cell([False] * 20 + [True] * 10, metrics={"tests_passed": MetricValue(10 / 30, None, 30)}, scoring=scoring)
    tests_row = row(compare_runs(run(base), run(cur, run_id="cur")), "tests_passed")
    assert "mean case score" in tests_row.method and tests_row.regression
    assert tests_row.delta == pytest.approx(-20 / 30)


def test_records_without_scoring_fall_back_to_the_old_rules():
    counts = [(1, 0, 0)] * 6
    base, cur = cell([True] * 6, counts=counts), cell([True] * 6, counts=counts)
    rows = compare_runs(run(base), run(cur, run_id="cur")).cells[0].metrics
    assert [r.metric for r in rows[:2]] == ["f1", "accuracy"]  # f1 with per-case counts: the F1 suite's primary


def test_formatting_of_values_and_bounds():
    assert fmt_value("accuracy", -0.0, signed=True) == "+0.000"
    assert fmt_value("p95_ttft_ms", 1234.5) == "1,234" or fmt_value("p95_ttft_ms", 1234.5) == "1,235"
    assert fmt_value("p95_ttft_ms", -math.inf) == "unbounded"
    assert fmt_ci("accuracy", None) == "—"


# --- property ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_accuracy_delta_is_the_difference_of_rates_and_its_interval_contains_it(pairs):
    base = [b for b, _ in pairs]
    cur = [c for _, c in pairs]
    cmp = compare_runs(run(cell(base)), run(cell(cur), run_id="cur"))
    acc = row(cmp, "accuracy")
    expected = sum(cur) / len(cur) - sum(base) / len(base)
    assert acc.delta == pytest.approx(expected, abs=1e-12)
    assert acc.ci[0] - 1e-12 <= acc.delta <= acc.ci[1] + 1e-12
    assert len(cmp.cells[0].lost) == sum(b and not c for b, c in pairs)
    assert len(cmp.cells[0].gained) == sum(c and not b for b, c in pairs)
    assert acc.regression == (acc.ci[1] < 0)
