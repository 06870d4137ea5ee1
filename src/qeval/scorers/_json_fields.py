"""``json_fields``: a JSON object in the completion, compared field by field.

Items are ``(field, normalised value)`` pairs over the *expected* field names
(extra keys the model adds are ignored). A wrong value counts as one false
positive and one false negative; a missing field as a false negative; a value
given where ``expected`` has ``null`` as a false positive. Case value = case F1;
a case passes when every expected field is right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from qeval.metric_specs import aggregate_names, pass_rate
from qeval.results import MetricSpec, MetricValue, Score
from qeval.scorers._f1 import case_f1, f1_metrics, f1_specs, overlap
from qeval.scorers._parse import extract_json_object, normalise_value


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", str(name).strip().casefold())


def field_pairs(obj: Mapping[str, Any], fields: Sequence[str]) -> set[tuple[str, Any]]:
    """``(field, normalised value)`` for each of ``fields`` present with a non-empty value."""
    by_key = {_key(k): v for k, v in obj.items()}
    pairs = set()
    for name in fields:
        value = normalise_value(by_key.get(_key(name)))
        if value is not None:
            pairs.add((name, value))
    return pairs


@dataclass(frozen=True)
class JsonFieldsScorer:
    """Field-level comparison of the first JSON object in the completion with ``expected`` (a dict)."""

    name: str = "json_fields"
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = (
        pass_rate("every expected field exactly right"),
        *f1_specs("field-level", "no JSON object in the completion"),
    )
    metric_names: ClassVar[tuple[str, ...]] = aggregate_names(metric_specs)
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def score(self, completion: str, expected: Any) -> Score:
        if not isinstance(expected, Mapping) or not expected:
            raise ValueError(f"json_fields needs expected to be a non-empty object, got {expected!r}")
        fields = list(expected)
        gold = field_pairs(expected, fields)
        obj = extract_json_object(completion)
        if obj is None:
            tp, fp, fn = overlap(gold, set())
            return Score(0.0, False, "no JSON object found in the completion",
                         {"parseable": False, "parsed": None, "tp": tp, "fp": fp, "fn": fn})
        pred = field_pairs(obj, fields)
        tp, fp, fn = overlap(gold, pred)
        wrong = sorted({f for f, _ in gold ^ pred})
        details = {"parseable": True, "parsed": _jsonable(obj), "tp": tp, "fp": fp, "fn": fn, "wrong_fields": wrong}
        if not wrong:
            return Score(1.0, True, None, details)
        return Score(case_f1(tp, fp, fn), False, f"wrong or missing fields: {', '.join(wrong)}", details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        return f1_metrics(scores)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
