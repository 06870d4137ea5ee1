from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from qeval.scorers import get_scorer
from qeval.scorers._entities import entity_pairs, normalise_entity, parse_entities

EXP = {"medications": ["metformin"], "doses": ["500 mg"], "frequencies": ["twice daily"], "conditions": ["type 2 diabetes"]}


def test_json_and_normalisation() -> None:
    s = get_scorer("entities", {})
    out = '{"medications": ["Metformin"], "doses": ["500mg"], "frequencies": ["BID"], "conditions": ["Type 2 Diabetes"]}'
    sc = s.score(out, EXP)
    assert sc.passed and sc.value == 1.0 and sc.details["tp"] == 4


def test_line_format_and_synonyms() -> None:
    parsed = parse_entities("Medication: metformin\nDosage: 500 mg\nFrequency: twice a day\nDiagnosis: type 2 diabetes")
    assert entity_pairs(parsed, ("medications", "doses", "frequencies", "conditions")) == entity_pairs(
        EXP, ("medications", "doses", "frequencies", "conditions"))


def test_broken_json_is_salvaged() -> None:
    parsed = parse_entities('{"medications": ["metformin"], "doses": ["500 mg"], "add": "x"] }')
    assert parsed is not None and parsed["medications"] == ["metformin"]


def test_partial_and_unparseable() -> None:
    s = get_scorer("entities", {})
    part = s.score('{"medications": ["metformin"], "conditions": ["asthma"]}', EXP)
    assert not part.passed and (part.details["tp"], part.details["fp"], part.details["fn"]) == (1, 1, 3)
    assert part.value == pytest.approx(2 / (2 + 1 + 3))
    none = s.score("The patient should rest.", EXP)
    assert not none.passed and none.details["parseable"] is False
    lenient = get_scorer("entities", {"pass_f1": 0.3})
    assert lenient.score('{"medications": ["metformin"], "conditions": ["asthma"]}', EXP).passed


def test_bad_args() -> None:
    with pytest.raises(ValueError):
        get_scorer("entities", {"pass_f1": 2})
    with pytest.raises(ValueError):
        get_scorer("entities", {"types": ["allergies"]})


def test_normalise_entity() -> None:
    assert normalise_entity("doses", "500MG.") == "500 mg"
    assert normalise_entity("frequencies", "b.i.d.") == "twice daily"
    assert normalise_entity("medications", " None ") is None


_words = st.sampled_from(["aspirin", "metformin", "insulin", "statin", "warfarin", "heparin"])
_lists = st.fixed_dictionaries({"medications": st.lists(_words, max_size=3, unique=True),
                                "conditions": st.lists(st.sampled_from(["asthma", "gout", "flu"]), max_size=2, unique=True)})


@settings(max_examples=100, deadline=None)
@given(gold=_lists, pred=_lists, as_lines=st.booleans())
def test_case_f1_matches_sklearn(gold: dict, pred: dict, as_lines: bool) -> None:
    s = get_scorer("entities", {})
    text = ("\n".join(f"{k}: {', '.join(v)}" for k, v in pred.items()) if as_lines else json.dumps(pred))
    sc = s.score(text, gold)
    universe = sorted({(k, v) for d in (gold, pred) for k, vs in d.items() for v in vs})
    y_true = [v in gold[k] for k, v in universe]
    y_pred = [v in pred[k] for k, v in universe]
    expected = 1.0 if not universe else f1_score(y_true, y_pred, zero_division=0.0)
    if as_lines and not any(pred.values()):
        return  # empty lines carry no entity list: scored as unparseable, checked elsewhere
    assert sc.value == pytest.approx(expected)


def test_aggregate_matches_sklearn_micro() -> None:
    s = get_scorer("entities", {})
    outs = [json.dumps(EXP), '{"medications": ["metformin"]}', "no idea", '{"conditions": ["type 2 diabetes", "gout"]}']
    scores = [s.score(o, EXP) for o in outs]
    agg = s.aggregate(scores)
    y_true, y_pred = [], []
    for sc in scores:
        d = sc.details
        y_true += [1] * d["tp"] + [0] * d["fp"] + [1] * d["fn"]
        y_pred += [1] * d["tp"] + [1] * d["fp"] + [0] * d["fn"]
    assert agg["f1"].value == pytest.approx(f1_score(y_true, y_pred))
    assert agg["unparseable_rate"].value == pytest.approx(0.25)
    assert agg["recall"].ci is not None
