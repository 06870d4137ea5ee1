"""Synthetic token lengths: the parser and the draws.

Quantile tolerances: the log of a lognormal draw is normal with sd sigma, and a sample
p-quantile of n normal draws has sd sqrt(p (1 - p) / n) / phi(z_p) * sigma (1.2533 sigma /
sqrt(n) for the median, 2.1131 sigma / sqrt(n) for p95). The tests allow 6 of those in log
space, plus one token for rounding to whole tokens.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.load._lengths import Z_95, LengthSpec, parse_lengths

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
Z = 6.0


@pytest.mark.parametrize("text,spec", [
    ("512", LengthSpec("fixed", 512)),
    ("fixed:512", LengthSpec("fixed", 512)),
    (" Fixed : 64 ", LengthSpec("fixed", 64)),
    ("lognormal:median=512,p95=2048", LengthSpec("lognormal", 512, p95_tokens=2048)),
    ("lognormal:p95=2048, median=512, max=4096", LengthSpec("lognormal", 512, p95_tokens=2048, max_tokens=4096)),
    ("uniform:min=64,max=256", LengthSpec("uniform", 160, min_tokens=64, max_tokens=256)),
    # spreads that cannot vary are fixed lengths
    ("uniform:min=7,max=7", LengthSpec("fixed", 7)),
    ("lognormal:median=300,p95=300", LengthSpec("fixed", 300)),
])
def test_parse_lengths_reads_each_form(text, spec):
    assert parse_lengths(text, "--prompt-tokens") == spec


@pytest.mark.parametrize("text", [
    "", "0", "-5", "1.5", "abc", "fixed:", "fixed:0", "lognormal", "lognormal:", "lognormal:median=512",
    "lognormal:median=512,p95=100", "lognormal:median=512,p95=2048,max=1000", "lognormal:median=512,p95=2048,min=1",
    "lognormal:median=512,median=600,p95=2048", "lognormal:median=x,p95=2048", "lognormal:median 512,p95=2048",
    "uniform:min=64", "uniform:min=300,max=200", "uniform:min=0,max=10", "normal:mean=5", "99999999999",
])
def test_parse_lengths_rejects_junk_naming_the_flag_with_an_example(text):
    with pytest.raises(UsageError, match="--output-tokens") as err:
        parse_lengths(text, "--output-tokens")
    message = str(err.value)
    assert "e.g." in message or "leave it out" in message or "give it once" in message


LENGTH_SPECS = st.one_of(
    st.integers(1, 100_000).map(lambda n: parse_lengths(str(n), "--x")),
    st.tuples(st.integers(1, 50_000), st.integers(1, 1000), st.one_of(st.none(), st.integers(0, 1000))).map(
        lambda t: parse_lengths(f"lognormal:median={t[0]},p95={t[0] + t[1]}"
                                + (f",max={t[0] + t[1] + t[2]}" if t[2] is not None else ""), "--x")),
    st.tuples(st.integers(1, 50_000), st.integers(1, 1000)).map(
        lambda t: parse_lengths(f"uniform:min={t[0]},max={t[0] + t[1]}", "--x")),
)


@given(spec=LENGTH_SPECS)
def test_the_label_reads_back_to_the_same_spec(spec):
    assert parse_lengths(spec.label, "--x") == spec
    assert spec.is_fixed == (spec.kind == "fixed")


@given(spec=LENGTH_SPECS, seed=SEEDS, n=st.integers(0, 300))
def test_draws_are_n_whole_numbers_at_least_one_reproducible_by_seed(spec, seed, n):
    lengths = spec.draw(n, seed)
    assert len(lengths) == n
    assert all(type(v) is int and v >= 1 for v in lengths)
    assert spec.draw(n, seed) == lengths
    if spec.max_tokens is not None:
        assert max(lengths, default=1) <= spec.max_tokens


@settings(max_examples=40, deadline=None)
@given(median=st.integers(1, 5000), ratio=st.floats(1.05, 20.0), seed=SEEDS)
def test_lognormal_draws_have_the_median_and_p95_asked_for(median, ratio, seed):
    p95 = max(median + 1, round(median * ratio))
    spec = parse_lengths(f"lognormal:median={median},p95={p95}", "--prompt-tokens")
    n = 20_000
    lengths = np.array(spec.draw(n, seed), dtype=float)
    sigma = math.log(p95 / median) / Z_95
    for asked, got, sd_per_sigma in ((median, np.median(lengths), 1.2533), (p95, np.percentile(lengths, 95), 2.1131)):
        slack = asked * (math.exp(Z * sd_per_sigma * sigma / math.sqrt(n)) - 1) + 1
        assert abs(got - asked) <= slack, (asked, got, slack)


def test_lognormal_has_a_long_right_tail_and_max_clamps_it():
    free = np.array(parse_lengths("lognormal:median=100,p95=1000", "--x").draw(20_000, 1))
    clamped = np.array(parse_lengths("lognormal:median=100,p95=1000,max=1000", "--x").draw(20_000, 1))
    assert free.max() > 3000  # P(one draw > 3000) ~ 0.75%: 20,000 draws all below has P ~ 1e-66
    assert clamped.max() == 1000
    assert 0.03 < np.mean(clamped == 1000) < 0.07  # the 5% above p95 land on the clamp
    assert np.array_equal(np.minimum(free, 1000), clamped)  # same seed: the clamp is the only difference


def test_small_lognormal_draws_round_up_to_one_token():
    lengths = parse_lengths("lognormal:median=1,p95=50", "--x").draw(5000, 2)
    assert min(lengths) == 1 and np.mean(np.array(lengths) == 1) > 0.4  # P(draw < 1.5) = 0.57


@given(low=st.integers(1, 1000), width=st.integers(0, 3), seed=SEEDS)
def test_uniform_draws_cover_the_range_inclusively(low, width, seed):
    spec = parse_lengths(f"uniform:min={low},max={low + width}", "--x")
    assert set(spec.draw(2000, seed)) == set(range(low, low + width + 1))


def test_fixed_draws_are_constant_and_other_kinds_vary_by_seed():
    assert parse_lengths("512", "--x").draw(4, 0) == (512, 512, 512, 512)
    for text in ("lognormal:median=512,p95=2048", "uniform:min=64,max=256"):
        spec = parse_lengths(text, "--x")
        assert spec.draw(50, 0) != spec.draw(50, 1)
        assert len(set(spec.draw(50, 0))) > 10
