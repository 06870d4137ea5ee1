"""Seed spread on synthetic cells: what counts as a case that changes between seeds."""

from dataclasses import replace

from qeval.report._calibration import seed_spreads
from qeval.applied import AppliedPrecision
from qeval.results import CalibrationRecord, CaseResult, MetricValue
from tests.report.conftest import make_record, ok_cell


def _cell(seed: int, scores: list[float], f1: float):
    cases = tuple(
        CaseResult(case_id=f"c{i}", prompt="p", completion="x", expected=["a"], score=s, passed=s == 1.0,
                   reason=None, output_tokens=3, tags={}, details={"tp": s, "fp": 1 - s, "fn": 0.0})
        for i, s in enumerate(scores)
    )
    cal = CalibrationRecord(name="generic", path="calibration/generic/calibration.jsonl", content_hash="c" * 64,
                            sample_hash=f"h{seed}", samples=8, seed=seed, available=100)
    return replace(ok_cell(f"gptq-int4@generic/s{seed}", "medical", n=len(cases), accuracy=sum(c.passed for c in cases) / len(cases)),
                   cases=cases, metrics={"f1": MetricValue(f1, (f1 - 0.1, f1 + 0.1), len(cases))},
                   precision_config=AppliedPrecision(precision="gptq-int4", calibration=cal))


def test_f1_counts_cases_whose_score_moved_even_when_pass_fail_did_not():
    record = make_record(cells=(_cell(0, [1.0, 0.5, 0.0], 0.6), _cell(1, [1.0, 0.25, 0.0], 0.5)))
    by_metric = {s.metric: s for s in seed_spreads(record)}
    assert by_metric["accuracy"].unstable_cases == ()
    assert by_metric["f1"].unstable_cases == ("c1",)
    assert by_metric["f1"].values == (0.6, 0.5)
