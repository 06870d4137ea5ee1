from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

from qeval.scorers import get_scorer
from qeval.scorers._f1 import micro_prf
from qeval.scorers._parse import extract_json_object, normalise_value

_keys = st.text(alphabet="abcdefghijklmnop_", min_size=1, max_size=8)
_values = st.one_of(st.integers(-1000, 1000), st.text(alphabet="abcdefgh XYZ", max_size=12), st.booleans(), st.none())
_objects = st.dictionaries(_keys, _values, max_size=5)


@settings(max_examples=150, deadline=None)
@given(obj=_objects, before=st.text(alphabet="abc xyz.\n:", max_size=30), fenced=st.booleans())
def test_json_object_found_in_text(obj: dict, before: str, fenced: bool) -> None:
    body = json.dumps(obj)
    text = f"{before}\n```json\n{body}\n```\nbye" if fenced else f"{before} {body} trailing"
    assert extract_json_object(text) == obj


@pytest.mark.parametrize(
    ("text", "obj"),
    [
        ('{"a": 1,}', {"a": 1}),
        ("{'a': 'b', 'c': None}", {"a": "b", "c": None}),
        ('noise {not json} then {"ok": true}', {"ok": True}),
        ('JSON: {"a": {"b": [1, 2]}}', {"a": {"b": [1, 2]}}),
        ("no object", None),
        ('{"cut": "off', None),
    ],
)
def test_json_object_tolerant(text: str, obj: dict | None) -> None:
    assert extract_json_object(text) == obj


def test_normalise_value() -> None:
    assert normalise_value("  New   York. ") == "new york"
    assert normalise_value("$1,200.00") == normalise_value(1200) == 1200.0
    assert normalise_value("") is None and normalise_value(None) is None


def test_score_fields() -> None:
    s = get_scorer("json_fields", {})
    exp = {"name": "Maria Lopez", "city": "Boston", "amount": 45}
    ok = s.score('```json\n{"Name": "maria  lopez", "city": "Boston.", "amount": "45", "extra": 1}\n```', exp)
    assert ok.passed and ok.value == 1.0 and ok.details["tp"] == 3
    part = s.score('{"name": "Maria Lopez", "city": "Denver"}', exp)
    assert not part.passed and part.details == {**part.details, "tp": 1, "fp": 1, "fn": 2}
    assert part.value == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert "city" in (part.reason or "") and "amount" in (part.reason or "")
    bad = s.score("I cannot help with that", exp)
    assert not bad.passed and bad.details["parseable"] is False and bad.details["fn"] == 3


def test_null_expected_field_counts_spurious_value() -> None:
    s = get_scorer("json_fields", {})
    assert s.score('{"name": "A", "date": null}', {"name": "A", "date": None}).passed
    wrong = s.score('{"name": "A", "date": "May 1"}', {"name": "A", "date": None})
    assert not wrong.passed and wrong.details["fp"] == 1


_counts = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(rows=_counts)
def test_prf_matches_direct_sklearn_over_items(rows: list[tuple[int, int, int]]) -> None:
    # Direct: one binary label per distinct item of each case.
    y_true, y_pred = [], []
    for tp, fp, fn in rows:
        y_true += [1] * tp + [0] * fp + [1] * fn
        y_pred += [1] * tp + [1] * fp + [0] * fn
    tp, fp, fn = (list(c) for c in zip(*rows))
    ours = micro_prf(tp, fp, fn)
    if not y_true:
        assert ours == (1.0, 1.0, 1.0)
        return
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0.0)
    assert ours == pytest.approx((p, r, f))


def test_aggregate_metrics_and_ci() -> None:
    s = get_scorer("json_fields", {})
    exp = {"a": "x", "b": "y"}
    outs = ['{"a": "x", "b": "y"}', '{"a": "x", "b": "z"}', "nothing", '{"a": "q"}'] * 3
    scores = [s.score(o, exp) for o in outs]
    agg = s.aggregate(scores)
    assert set(agg) == {"f1", "precision", "recall", "unparseable_rate"}
    tp = sum(x.details["tp"] for x in scores)
    fp = sum(x.details["fp"] for x in scores)
    fn = sum(x.details["fn"] for x in scores)
    assert agg["f1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert agg["precision"].value == pytest.approx(tp / (tp + fp))
    lo, hi = agg["f1"].ci
    assert lo <= agg["f1"].value <= hi
    assert agg["unparseable_rate"].value == pytest.approx(0.25) and agg["f1"].n == 12
    assert s.aggregate([])["f1"].value is None
