from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.scorers import get_scorer
from qeval.scorers._numeric import extract_number

# Surrounding text without digits or characters that attach to a number.
_filler = st.text(alphabet=st.sampled_from("abcdefghij klmnopqrstuvwxyz?!:;\n"), max_size=40)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 42.", 42),
        ("= 1,234", 1234),
        ("-3.5", -3.5),
        ("42 apples", 42),
        ("3/4", 0.75),
        ("x = 3 + 4 = 7", 7),
        ("The answer is 42 apples, which is 2 more than 40", 42),
        ("I think 5, no wait, 6", 6),
        ("$1,200.50 in total", 1200.5),
        ("Answer: -12", -12),
    ],
)
def test_extract_number_examples(text: str, number: float) -> None:
    assert extract_number(text) == pytest.approx(number)


def test_extract_number_none() -> None:
    assert extract_number("no digits here") is None
    assert extract_number("") is None


@settings(max_examples=150, deadline=None)
@given(prefix=_filler, suffix=_filler, value=st.integers(min_value=-10**9, max_value=10**9))
def test_number_in_random_text_is_found(prefix: str, suffix: str, value: int) -> None:
    assert extract_number(f"{prefix} {value} {suffix}") == value


@settings(max_examples=150, deadline=None)
@given(value=st.integers(min_value=0, max_value=10**12), cents=st.integers(min_value=0, max_value=99))
def test_comma_formatting_round_trips(value: int, cents: int) -> None:
    assert extract_number(f"The answer is {value:,}.") == value
    assert extract_number(f"= {value:,}.{cents:02d}") == pytest.approx(value + cents / 100)


@settings(max_examples=100, deadline=None)
@given(value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3)))
def test_decimal_after_marker(value: float) -> None:
    assert extract_number(f"so 1 + 2 ... answer = {value}") == pytest.approx(value)


def test_scorer_exact_and_tolerance() -> None:
    exact = get_scorer("numeric", {})
    assert exact.score("The answer is 12.", 12).passed
    bad = exact.score("The answer is 13.", 12)
    assert not bad.passed and "13" in (bad.reason or "")
    garbage = exact.score("I don't know", 12)
    assert not garbage.passed and garbage.details["parsed"] is None
    loose = get_scorer("numeric", {"tolerance": 0.5})
    assert loose.score("12.4", 12).passed
    rel = get_scorer("numeric", {"rel_tolerance": 0.01})
    assert rel.score("1005", 1000).passed and not rel.score("1020", 1000).passed
    assert exact.score("0.75", "3/4").passed


def test_scorer_rejects_bad_args() -> None:
    with pytest.raises(ValueError):
        get_scorer("numeric", {"tolerance": -1})
    with pytest.raises(TypeError):
        get_scorer("numeric", {"tolerence": 1})


def test_aggregate_unparseable_rate() -> None:
    s = get_scorer("numeric", {})
    scores = [s.score("5", 5), s.score("nothing", 5)]
    agg = s.aggregate(scores)
    assert agg["unparseable_rate"].value == 0.5 and agg["unparseable_rate"].n == 2
