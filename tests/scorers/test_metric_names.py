"""Each scorer declares up front exactly the metrics its aggregate returns (SLOs are checked against them)."""

import pytest

from qeval.results import Score
from qeval.scorers import SCORERS, get_scorer


@pytest.mark.parametrize("name", list(SCORERS))
def test_declared_metric_names_match_aggregate(name):
    scorer = get_scorer(name, {})
    scores = [Score(1.0, True, details={"tp": 1, "fp": 0, "fn": 0, "parseable": True, "parsed": 1, "status": "passed"}),
              Score(0.0, False, "wrong", details={"tp": 0, "fp": 1, "fn": 1, "parseable": False, "parsed": None})]
    assert tuple(sorted(scorer.aggregate(scores))) == tuple(sorted(scorer.metric_names))


@pytest.mark.parametrize("name", list(SCORERS))
def test_every_metric_is_declared_once_with_its_meaning(name):
    scorer = get_scorer(name, {})
    specs = {s.name: s for s in scorer.metric_specs}
    assert len(specs) == len(scorer.metric_specs), "a metric declared twice"
    assert specs["accuracy"].pairing == "pass_fail" and specs["accuracy"].label.startswith("pass rate")
    assert set(specs) - {"accuracy"} == set(scorer.metric_names)
    for spec in specs.values():
        assert spec.direction in ("higher", "lower") and spec.label
        assert not spec.paired or spec.direction == "higher"
