"""Arrival schedules and the load flags' parsers.

The statistical tests compare a schedule's sample mean gap and sample CV with what was asked,
with tolerances of 6 standard deviations of their sampling distributions, so a correct
generator fails with probability ~1e-9 per example. For gamma gaps with CV c (shape 1/c^2,
skewness 2c, kurtosis 3 + 6c^2) over n gaps, the delta method gives
    sd(mean gap) / mean gap = c / sqrt(n),   sd(sample CV) / c = sqrt((1 + c^2) / (2 n));
300 simulated schedules at each of c = 0.25, 1, 2, 4 (n = 20,000 and 100,000) gave z-scores
with sd 0.94-1.07 and none beyond 3.4, so the formulas hold where these tests use them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.load._arrivals import (
    arrival_offsets,
    parse_arrival,
    parse_concurrency,
    parse_duration,
    parse_rates,
)
from qeval.load._types import ArrivalSpec

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
RATES = st.floats(min_value=0.01, max_value=1000.0)
Z = 6.0


def _gaps(offsets: tuple[float, ...]) -> np.ndarray:
    # the first request waits one gap, so the gaps start at 0
    return np.diff(np.concatenate([[0.0], offsets]))


def _cv(gaps: np.ndarray) -> float:
    return float(gaps.std(ddof=1) / gaps.mean())


# --- arrival_offsets ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, rate=RATES)
def test_poisson_gaps_have_mean_one_over_rate_and_cv_one(seed, rate):
    n = 20_000
    gaps = _gaps(arrival_offsets(rate, ArrivalSpec("poisson"), n, seed))
    assert len(gaps) == n
    assert abs(gaps.mean() * rate - 1) <= Z / math.sqrt(n)
    assert abs(_cv(gaps) - 1) <= Z / math.sqrt(n)  # sqrt((1 + c^2) / (2n)) at c = 1


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, rate=RATES, cv=st.floats(min_value=0.25, max_value=4.0))
def test_gamma_gaps_have_the_cv_asked_for(seed, rate, cv):
    n = 100_000
    gaps = _gaps(arrival_offsets(rate, ArrivalSpec("gamma", cv), n, seed))
    assert abs(gaps.mean() * rate - 1) <= Z * cv / math.sqrt(n)
    assert abs(_cv(gaps) / cv - 1) <= Z * math.sqrt((1 + cv**2) / (2 * n))


def test_gamma_cv_is_not_poisson_when_asked_otherwise():
    # the CV test above would pass a generator that ignores cv only if 1 were within tolerance
    bursty = _cv(_gaps(arrival_offsets(2.0, ArrivalSpec("gamma", 3.0), 50_000, 7)))
    smooth = _cv(_gaps(arrival_offsets(2.0, ArrivalSpec("gamma", 0.3), 50_000, 7)))
    assert bursty > 2.5 and smooth < 0.35


@given(rate=RATES, n=st.integers(min_value=2, max_value=500))
def test_constant_gaps_are_exactly_one_over_rate(rate, n):
    offsets = arrival_offsets(rate, ArrivalSpec("constant"), n, seed=0)
    gaps = _gaps(offsets)
    assert np.allclose(gaps, 1 / rate, rtol=1e-9, atol=0)
    assert _cv(gaps) < 1e-9
    assert offsets[0] == pytest.approx(1 / rate)


@given(seed=SEEDS, rate=RATES, n=st.integers(min_value=0, max_value=2000),
       spec=st.sampled_from([ArrivalSpec("poisson"), ArrivalSpec("constant"), ArrivalSpec("gamma", 0.25),
                             ArrivalSpec("gamma", 4.0)]))
def test_offsets_are_n_non_decreasing_times_from_the_first_gap(seed, rate, n, spec):
    offsets = arrival_offsets(rate, spec, n, seed)
    assert len(offsets) == n
    assert all(isinstance(t, float) and math.isfinite(t) for t in offsets)
    assert all(a <= b for a, b in zip(offsets, offsets[1:]))
    if n:
        assert offsets[0] >= 0


@given(seed=SEEDS, rate=RATES, cv=st.floats(min_value=0.1, max_value=5.0))
def test_same_seed_same_schedule_other_seed_other_schedule(seed, rate, cv):
    spec = ArrivalSpec("gamma", cv)
    first = arrival_offsets(rate, spec, 50, seed)
    assert arrival_offsets(rate, spec, 50, seed) == first
    assert arrival_offsets(rate, spec, 50, seed + 1) != first


def test_poisson_is_gamma_with_cv_one_draw_for_draw():
    assert arrival_offsets(3.0, ArrivalSpec("poisson"), 100, 5) == arrival_offsets(3.0, ArrivalSpec("gamma", 1.0), 100, 5)


def test_first_request_waits_one_gap_like_vllm_bench_serve():
    offsets = arrival_offsets(10.0, ArrivalSpec("poisson"), 10_000, 3)
    assert offsets[0] > 0
    # its wait is a gap like any other: mean 1/rate over many seeds
    firsts = [arrival_offsets(10.0, ArrivalSpec("poisson"), 1, s)[0] for s in range(4000)]
    assert abs(np.mean(firsts) * 10 - 1) <= Z / math.sqrt(4000)


@given(seed=SEEDS, n=st.integers(min_value=0, max_value=300),
       spec=st.sampled_from([ArrivalSpec("poisson"), ArrivalSpec("constant"), ArrivalSpec("gamma", 2.0)]))
def test_infinite_rate_sends_everything_at_once(seed, n, spec):
    assert arrival_offsets(math.inf, spec, n, seed) == (0.0,) * n


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_a_rate_that_is_not_positive_is_a_programming_error(rate):
    with pytest.raises(ValueError, match="rate_per_s"):
        arrival_offsets(rate, ArrivalSpec("poisson"), 3, 0)


# --- parse_arrival -----------------------------------------------------------------------


@pytest.mark.parametrize("text,spec", [
    ("poisson", ArrivalSpec("poisson")),
    (" Poisson ", ArrivalSpec("poisson")),
    ("constant", ArrivalSpec("constant")),
    ("gamma:2", ArrivalSpec("gamma", 2.0)),
    ("gamma:0.5", ArrivalSpec("gamma", 0.5)),
    ("gamma:cv=3", ArrivalSpec("gamma", 3.0)),
    ("GAMMA: cv = 1.5", ArrivalSpec("gamma", 1.5)),
])
def test_parse_arrival_reads_each_shape(text, spec):
    assert parse_arrival(text) == spec


@pytest.mark.parametrize("text", ["", "gamma", "gamma:", "gamma:0", "gamma:-1", "gamma:inf", "gamma:nan",
                                  "gamma:cv=", "gamma:k=2", "poisson:2", "constant:1", "burst", "exponential"])
def test_parse_arrival_rejects_junk_naming_the_flag(text):
    with pytest.raises(UsageError, match="--arrival") as err:
        parse_arrival(text)
    assert "e.g." in str(err.value)


@given(cv=st.floats(min_value=1e-6, max_value=1e6))
def test_parse_arrival_round_trips_a_gamma_cv(cv):
    assert parse_arrival(f"gamma:{cv!r}") == ArrivalSpec("gamma", cv)
    assert parse_arrival(ArrivalSpec("gamma", cv).label).cv == pytest.approx(cv, rel=1e-5)


@given(text=st.one_of(st.text(max_size=20), st.text(alphabet="gamcvpoisntl:=.-+e0123456789 ", max_size=16),
                      st.from_regex(r"gamma:(cv=)?[-+]?[0-9.e]{0,6}", fullmatch=True)))
def test_any_arrival_the_parser_accepts_is_valid(text):
    try:
        spec = parse_arrival(text)
    except UsageError:
        return
    assert spec.shape in ("poisson", "constant", "gamma")
    assert math.isfinite(spec.cv) and spec.cv > 0


# --- parse_rates / parse_concurrency -----------------------------------------------------


def test_parse_rates_sorts_and_dedupes_with_inf_last():
    assert parse_rates("4, 0.5,1,2,inf,1") == (0.5, 1.0, 2.0, 4.0, math.inf)
    assert parse_rates("INF") == (math.inf,)


@given(rates=st.lists(st.one_of(st.floats(min_value=1e-6, max_value=1e6), st.just(math.inf)), min_size=1, max_size=8))
def test_parse_rates_round_trips(rates):
    assert parse_rates(",".join(repr(r) for r in rates)) == tuple(sorted(set(rates)))


@pytest.mark.parametrize("text", ["", ",", "0", "-1", "1,x", "nan", "1e999", "1;2", "fast"])
def test_parse_rates_rejects_junk_naming_the_flag(text):
    with pytest.raises(UsageError, match="--rate"):
        parse_rates(text)


@given(text=st.text(alphabet="0123456789.,-+einfa ", max_size=20))
def test_any_rates_the_parser_accepts_are_positive_and_ascending(text):
    try:
        rates = parse_rates(text)
    except UsageError:
        return
    assert rates and all(r > 0 for r in rates)
    assert all(a < b for a, b in zip(rates, rates[1:]))


def test_parse_concurrency_sorts_and_dedupes():
    assert parse_concurrency("32,1, 8,50,8") == (1, 8, 32, 50)


@given(levels=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8))
def test_parse_concurrency_round_trips(levels):
    assert parse_concurrency(",".join(map(str, levels))) == tuple(sorted(set(levels)))


@pytest.mark.parametrize("text", ["", "0", "-2", "1.5", "8,x", "inf", "1 2"])
def test_parse_concurrency_rejects_junk_naming_the_flag(text):
    with pytest.raises(UsageError, match="--concurrency"):
        parse_concurrency(text)


@given(text=st.text(alphabet="0123456789.,- ", max_size=20))
def test_any_concurrency_the_parser_accepts_is_positive_whole_and_ascending(text):
    try:
        levels = parse_concurrency(text)
    except UsageError:
        return
    assert levels and all(isinstance(c, int) and c >= 1 for c in levels)
    assert all(a < b for a, b in zip(levels, levels[1:]))


# --- parse_duration ----------------------------------------------------------------------


@pytest.mark.parametrize("text,seconds", [
    ("60s", 60.0), ("2m", 120.0), ("1.5m", 90.0), ("90", 90.0), ("500ms", 0.5), ("1h", 3600.0),
    (" 10 s ", 10.0), ("2min", 120.0), (".5s", 0.5), ("1e2ms", 0.1),
])
def test_parse_duration_reads_each_unit(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@given(value=st.floats(min_value=1e-3, max_value=1e6), unit=st.sampled_from(["", "ms", "s", "m", "h"]))
def test_parse_duration_round_trips(value, unit):
    factor = {"": 1, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{value!r}{unit}") == pytest.approx(value * factor)


@pytest.mark.parametrize("text", ["", "0", "0s", "-5s", "5x", "s", "1m30s", "inf", "nan", "1e400s", "5 minutes"])
def test_parse_duration_rejects_junk_naming_the_flag(text):
    with pytest.raises(UsageError, match="--duration"):
        parse_duration(text)


@given(text=st.text(alphabet="0123456789.emsinh+- ", max_size=12))
def test_any_duration_the_parser_accepts_is_finite_and_positive(text):
    try:
        seconds = parse_duration(text)
    except UsageError:
        return
    assert math.isfinite(seconds) and seconds > 0
