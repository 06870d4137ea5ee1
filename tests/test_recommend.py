"""qeval recommend: the pure choice (property-tested), building candidates, and the CLI end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qeval.gates import SLO, Verdict, parse_slo
from qeval.perf._schema import (
    Cost,
    Distribution,
    Goodput,
    LoadPoint,
    PerfRecord,
    PrecisionPerf,
    Quantile,
)
from qeval.recommend import (
    Candidate,
    Check,
    Requirements,
    build_candidates,
    choose,
    dominates,
    pareto_frontier,
    primary_metric,
    recommend,
)
from qeval.report._recommendation import render_markdown
from qeval.results import MemoryStats
from tests.report.conftest import latency, ok_cell

# --- pure core: properties --------------------------------------------------------------------

_SLO = SLO("accuracy", ">=", 0.5)
outcomes = st.sampled_from(["pass", "fail", "inconclusive"])
maybe = lambda s: st.one_of(st.none(), s)


def _check(outcome: str) -> Check:
    return Check("suite s", Verdict(_SLO, outcome, 0.6, (0.4, 0.8), 40, "rule", 90 if outcome == "inconclusive" else None))


@st.composite
def candidates(draw, name: str = "p") -> Candidate:
    return Candidate(
        precision=name,
        checks=tuple(_check(o) for o in draw(st.lists(outcomes, max_size=3))),
        weights_bytes=draw(maybe(st.integers(1, 5))),
        peak_bytes=draw(maybe(st.integers(1, 5))),
        usd_per_1m=draw(maybe(st.sampled_from([0.1, 0.5, 1.0]))),
        accuracy=draw(maybe(st.sampled_from([0.2, 0.5, 0.9]))),
        p95_latency_ms=draw(maybe(st.sampled_from([10.0, 50.0, 100.0]))),
    )


@st.composite
def fields(draw):
    n = draw(st.integers(1, 6))
    return [draw(candidates(f"p{i}")) for i in range(n)]


@given(fields())
@settings(max_examples=200, deadline=None)
def test_recommended_precision_passes_every_slo(cands):
    chosen = choose(cands)
    if chosen is None:
        assert not any(c.meets for c in cands)
    else:
        assert all(k.verdict.outcome == "pass" for k in chosen.checks)
        assert not chosen.problems


def _worse_or_equal(c: Candidate, draw) -> Candidate:
    worse_int = lambda v: None if v is None else v + draw(st.integers(0, 2))
    worse_usd = lambda v: None if v is None else v + draw(st.sampled_from([0.0, 0.5]))
    # A dominated copy: each check no better (pass may turn fail/inconclusive), extra checks may be added.
    checks = tuple(k if k.verdict.outcome != "pass" else _check(draw(outcomes)) for k in c.checks)
    checks += tuple(_check(o) for o in draw(st.lists(outcomes, max_size=2)))
    return Candidate(
        precision="dominated", checks=checks,
        weights_bytes=worse_int(c.weights_bytes), peak_bytes=worse_int(c.peak_bytes), usd_per_1m=worse_usd(c.usd_per_1m),
        accuracy=c.accuracy, p95_latency_ms=c.p95_latency_ms,
    )


@given(fields(), st.data())
@settings(max_examples=200, deadline=None)
def test_adding_a_dominated_precision_never_changes_the_recommendation(cands, data):
    base = data.draw(st.sampled_from(cands))
    extra = _worse_or_equal(base, data.draw)
    before = recommend(cands).chosen
    assert recommend([*cands, extra]).chosen == before
    # inserted first it still cannot win on cost unless it ties exactly with a candidate that meets
    if before is not None:
        assert recommend([extra, *cands]).chosen in (before, "dominated")


@given(fields())
@settings(max_examples=200, deadline=None)
def test_frontier_holds_no_dominated_point_and_every_other_point_is_dominated(cands):
    frontier = pareto_frontier(cands)
    assert frontier  # a non-empty set always has a non-dominated point
    for c in frontier:
        assert not any(dominates(o, c) for o in cands)
    for c in cands:
        if c not in frontier:
            assert any(dominates(o, c) for o in frontier)


def test_inconclusive_rules_out_like_fail_and_cheapest_meeting_wins():
    cheap_unsure = Candidate("int4", (_check("inconclusive"),), weights_bytes=1, peak_bytes=1)
    mid = Candidate("int8", (_check("pass"),), weights_bytes=2, peak_bytes=9)
    mid_cheaper_peak = Candidate("int8b", (_check("pass"),), weights_bytes=2, peak_bytes=3)
    big = Candidate("bf16", (_check("pass"),), weights_bytes=4, peak_bytes=4)
    assert choose([cheap_unsure, mid, big]).precision == "int8"
    assert choose([cheap_unsure, mid, mid_cheaper_peak, big]).precision == "int8b"
    text = render_markdown(recommend([cheap_unsure, big], ["accuracy >= 0.5"]))
    assert "Recommended: bf16" in text and "inconclusive" in text and "needs n≈90" in text
    none = recommend([cheap_unsure])
    assert none.chosen is None and "No target meets" in render_markdown(none)


def test_cost_breaks_ties_on_memory():
    a = Candidate("a", (), weights_bytes=1, peak_bytes=1, usd_per_1m=2.0)
    b = Candidate("b", (), weights_bytes=1, peak_bytes=1, usd_per_1m=1.0)
    assert choose([a, b]).precision == "b"


# --- building candidates from records ---------------------------------------------------------


def _cells():
    return (
        ok_cell("bf16", "arith", n=40, accuracy=0.9, accuracy_ci=(0.77, 0.96),
                memory=MemoryStats(400_000_000, 900_000_000, "cpu_rss")),
        ok_cell("int8", "arith", n=40, accuracy=0.85, accuracy_ci=(0.71, 0.93),
                memory=MemoryStats(200_000_000, 700_000_000, "cpu_rss"), latency=latency(ttft_p95=90.0)),
        ok_cell("int4", "arith", n=40, accuracy=0.4, accuracy_ci=(0.26, 0.55),
                memory=MemoryStats(100_000_000, 600_000_000, "cpu_rss")),
    )


def test_absolute_slo_decides_on_the_interval():
    cands = build_candidates(_cells(), Requirements(slos=(parse_slo("accuracy >= 0.7"),)))
    by = {c.precision: c for c in cands}
    assert by["bf16"].meets and by["int8"].meets
    assert [k.verdict.outcome for k in by["int4"].checks] == ["fail"]
    assert recommend(cands).chosen == "int8"


def test_memory_budget_rules_out_by_peak():
    cands = build_candidates(_cells(), Requirements(memory_budget_bytes=0.65e9))
    assert recommend(cands).chosen == "int4"
    by = {c.precision: c for c in cands}
    assert by["int8"].blocking()[0].scope == "memory"


def test_failed_cell_is_a_problem_not_a_pass():
    cells = (*_cells()[:2], replace(_cells()[2], status="failed", reason="boom", accuracy=None))
    by = {c.precision: c for c in build_candidates(cells, Requirements())}
    assert not by["int4"].meets and "boom" in by["int4"].problems[0]


def test_unknown_reference_and_inapplicable_slo_are_usage_errors():
    from qeval.errors import UsageError

    with pytest.raises(UsageError, match="'fp8'.*bf16, int8, int4"):
        build_candidates(_cells(), Requirements(max_drop=0.02, vs="fp8"))
    with pytest.raises(UsageError, match="applies to no suite"):
        build_candidates(_cells(), Requirements(slos=(parse_slo("rouge >= 0.2"),)))


def test_f1_suites_gate_their_drop_on_f1():
    counted = tuple(replace(c, details={"tp": 1, "fp": 0, "fn": int(not c.passed)}) for c in _cells()[0].cases)
    cells = (*_cells(), *(ok_cell(p, "extract", n=4, cases=counted) for p in ("bf16", "int8", "int4")))
    assert primary_metric([c for c in cells if c.suite == "extract"]) == "f1"
    assert primary_metric([c for c in cells if c.suite == "arith"]) == "accuracy"
    by = {c.precision: c for c in build_candidates(cells, Requirements(max_drop=0.02, vs="bf16"))}
    assert {(k.scope, str(k.verdict.slo)) for k in by["int8"].checks} == {
        ("suite arith", "accuracy_drop_vs(bf16) <= 0.02"), ("suite extract", "f1_drop_vs(bf16) <= 0.02")}
    assert all(k.verdict.outcome == "pass" for k in by["bf16"].checks)  # the reference against itself


def _perf(p95_ms: dict[str, float], batch: int = 4) -> PerfRecord:
    def point(precision: str) -> LoadPoint:
        q = Quantile(p95_ms[precision], (p95_ms[precision] * 0.9, p95_ms[precision] * 1.1), 100)
        return LoadPoint(batch_size=batch, status="ok", requests=100, latency={"ttft": Distribution(q, q, q, 100)},
                         peak_bytes=123)
    return PerfRecord(
        run_id="r", created_at="t", model="fake", device="cpu", reference="bf16", batch_sizes=(1, batch), rounds=2,
        order=(), prompt_tokens=(8,), max_new_tokens=8, slos=(),
        precisions=tuple(
            PrecisionPerf(p, "ok", points=(point(p),), goodput=Goodput(batch, 10.0, 1.0),
                          cost=Cost(gpu_hour_usd=2.0, usd_per_1m_output_tokens=usd))
            for p, usd in (("bf16", 3.0), ("int8", 2.0), ("int4", 1.0))
        ),
    )


def test_latency_slo_uses_the_perf_goodput_point():
    req = Requirements(slos=(parse_slo("p95_ttft_ms <= 100"),))
    cands = build_candidates(_cells(), req, [_perf({"bf16": 50.0, "int8": 95.0, "int4": 60.0})])
    by = {c.precision: c for c in cands}
    assert by["bf16"].checks[0].scope == "perf batch 4"
    assert by["bf16"].checks[0].verdict.outcome == "pass"
    assert by["int8"].checks[0].verdict.outcome == "inconclusive"  # [85.5, 104.5] straddles 100
    assert by["int4"].usd_per_1m == 1.0 and by["int4"].peak_bytes == 123 and by["int4"].p95_latency_ms == 60.0
    assert recommend(cands).chosen == "int4"


def test_without_perf_latency_is_decided_on_sweep_samples():
    cells = tuple(
        replace(c, latency=replace(c.latency, samples_ms={"ttft": tuple(float(x % 50) for x in range(100))}))
        for c in _cells()
    )
    cands = build_candidates(cells, Requirements(slos=(parse_slo("p95_ttft_ms <= 100"),)))
    assert all(c.checks[0].scope == "suite arith" and c.checks[0].verdict.outcome == "pass" for c in cands)


# --- CLI end to end on a fake sweep -----------------------------------------------------------


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    from qeval.config import SweepConfig
    from qeval.models import FakeSource
    from qeval.sweep import run_sweep
    from tests.fakes import MINI, right_except_int4_on_odd

    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=3, warmup_requests=1, out_dir=str(tmp_path_factory.mktemp("runs")))
    _, path = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))
    return path


def _invoke(*args):
    from qeval.cli_recommend import register

    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)  # keep "recommend" as a subcommand
    return CliRunner().invoke(app, ["recommend", *map(str, args)])


def test_cli_recommends_and_writes_reports(fake_run):
    result = _invoke(fake_run, "--slo", "accuracy >= 0.1")
    assert result.exit_code == 0, result.output
    assert "Recommended: int4" in result.output
    data = json.loads((fake_run / "recommendation.json").read_text())
    assert data["recommended"] == "int4" and data["slos"] == ["accuracy >= 0.1"]
    assert "Recommended: int4" in (fake_run / "recommendation.md").read_text()
    page = (fake_run / "report.html").read_text()
    assert 'id="recommendation"' in page and "Recommended: int4" in page


def test_cli_none_meets_exits_1_and_names_the_blocking_slos(fake_run):
    result = _invoke(fake_run, "--slo", "accuracy >= 0.3", "--max-accuracy-drop", "0.02", "--vs", "fp32",
                     "--slo", "p95_ttft_ms <= 1000")
    assert result.exit_code == 1, result.output
    data = json.loads((fake_run / "recommendation.json").read_text())
    assert data["recommended"] is None
    int4 = next(c for c in data["candidates"] if c["precision"] == "int4")
    outcomes = {c["slo"]: c["outcome"] for c in int4["checks"]}
    assert outcomes["accuracy >= 0.3"] == "inconclusive"
    assert outcomes["accuracy_drop_vs(fp32) <= 0.02"] == "fail"
    assert any("needs n≈" in r for r in int4["ruled_out_by"])


def test_cli_drop_vs_reference_recommends_the_reference(fake_run):
    result = _invoke(fake_run, "--max-accuracy-drop", "0.02", "--vs", "fp32")
    assert result.exit_code == 0, result.output
    assert "Recommended: fp32" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (("{missing}",), "no such run folder"),
        (("{run}", "--max-accuracy-drop", "0.02", "--vs", "fp8"), "'fp8'"),
        (("{run}", "--slo", "accuracy >> 3"), "Cannot parse SLO"),
        (("{run}", "--max-accuracy-drop", "0.02"), "needs --vs"),
        (("{run}", "{run}"), "appears in more than one run"),
    ],
)
def test_cli_user_errors_are_clear_and_exit_2(fake_run, tmp_path, args, message):
    args = [a.format(run=fake_run, missing=tmp_path / "nope") for a in args]
    result = _invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_uses_perf_json_when_present(fake_run, tmp_path):
    import math
    import shutil

    from qeval.report._json import jsonable
    from qeval.results import to_dict

    run = shutil.copytree(fake_run, tmp_path / "run")
    perf = _perf({"bf16": 50.0, "int8": 95.0, "int4": 60.0})
    renamed = {"bf16": "fp32", "int4": "int4"}
    perf = replace(perf, reference="fp32", precisions=tuple(
        replace(pp, precision=renamed[pp.precision], goodput=Goodput(4, 10.0, 1.0, verdicts={4: {"x": "pass"}}))
        for pp in perf.precisions if pp.precision in renamed
    ))
    data = jsonable(to_dict(perf))
    (run / "perf.json").write_text(json.dumps(data))
    result = _invoke(run, "--slo", "p95_ttft_ms <= 100")
    assert result.exit_code == 0, result.output
    out = json.loads((run / "recommendation.json").read_text())
    assert out["recommended"] == "int4"
    int4 = next(c for c in out["candidates"] if c["precision"] == "int4")
    assert int4["checks"][0]["scope"] == "perf batch 4" and int4["usd_per_1m_output_tokens"] == 1.0
    # an interval bound the samples cannot support is written as null and read back as unbounded
    unbounded = Quantile(60.0, (55.0, math.inf), 100)
    data["precisions"][1]["points"][0]["latency"]["ttft"]["p95"] = jsonable(to_dict(unbounded))
    assert data["precisions"][1]["points"][0]["latency"]["ttft"]["p95"]["ci"] == [55.0, None]
    (run / "perf.json").write_text(json.dumps(data))
    result = _invoke(run, "--slo", "p95_ttft_ms <= 100")
    assert result.exit_code == 0 and "Recommended: fp32" in result.output, result.output
    int4 = next(c for c in json.loads((run / "recommendation.json").read_text())["candidates"] if c["precision"] == "int4")
    assert int4["checks"][0]["outcome"] == "inconclusive" and "needs n≈" in int4["ruled_out_by"][0]
    assert 'id="perf"' in (run / "report.html").read_text()


def test_recommendation_numbers_read_as_numbers():
    from qeval.report._recommendation import _fmt

    assert [_fmt(v) for v in (2534.2, 921.4, 0.625, None, math.inf)] == ["2,534", "921", "0.625", "—", "∞"]
