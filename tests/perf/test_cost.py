"""Cost arithmetic: USD per million tokens, capacity, break-even."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.perf import (
    Goodput,
    LoadPoint,
    break_even_tokens_per_hour,
    capacity_tokens_per_hour,
    cost_at,
    costed_load,
    usd_per_1m_output_tokens,
)

prices = st.floats(0.01, 1000, allow_nan=False)
rates = st.floats(0.1, 1e6, allow_nan=False)


def test_worked_example():
    # $2/h at 1000 tokens/s: 3.6M tokens/h -> $0.5556 per million
    cost = cost_at(2.0, 1000.0, api_usd_per_1m=0.5)
    assert cost.capacity_tokens_per_hour == 3_600_000
    assert cost.usd_per_1m_output_tokens == pytest.approx(2.0 / 3.6)
    assert cost.break_even_tokens_per_hour == pytest.approx(4_000_000)


@given(prices, rates, rates)
def test_cost_falls_as_throughput_rises(gpu, a, b):
    lo, hi = sorted((a, b))
    assert usd_per_1m_output_tokens(gpu, hi) <= usd_per_1m_output_tokens(gpu, lo)


@given(prices, rates)
def test_cost_times_capacity_is_the_gpu_hour(gpu, tps):
    cost = cost_at(gpu, tps)
    assert cost.usd_per_1m_output_tokens * cost.capacity_tokens_per_hour / 1e6 == pytest.approx(gpu)


@given(prices, prices)
def test_break_even_volume_costs_the_same_on_the_api(gpu, api):
    volume = break_even_tokens_per_hour(gpu, api)
    assert volume * api / 1e6 == pytest.approx(gpu)


@given(prices, rates, prices)
def test_self_hosting_is_cheaper_per_token_exactly_when_break_even_is_below_capacity(gpu, tps, api):
    cost = cost_at(gpu, tps, api)
    cheaper = cost.usd_per_1m_output_tokens < api
    assert cheaper == (cost.break_even_tokens_per_hour < cost.capacity_tokens_per_hour) or math.isclose(
        cost.usd_per_1m_output_tokens, api, rel_tol=1e-9)


def test_no_throughput_no_price():
    assert usd_per_1m_output_tokens(2.0, None) is None
    assert capacity_tokens_per_hour(0.0) is None
    assert cost_at(2.0, None).usd_per_1m_output_tokens is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_bad_prices_are_usage_errors(bad):
    with pytest.raises(UsageError, match="positive"):
        usd_per_1m_output_tokens(bad, 10.0)
    with pytest.raises(UsageError, match="api-usd-per-1m"):
        break_even_tokens_per_hour(1.0, bad)


def _pt(b, tps, status="ok"):
    return LoadPoint(batch_size=b, status=status, output_tokens_per_s=tps if status == "ok" else None)


def test_costed_load_is_goodput_or_best_throughput():
    points = [_pt(1, 10.0), _pt(8, 50.0), _pt(32, 40.0), _pt(64, None, "oom")]
    assert costed_load(points, None).batch_size == 8
    assert costed_load(points, Goodput(batch_size=1, output_tokens_per_s=10.0, requests_per_s=1.0)).batch_size == 1
    assert costed_load(points, Goodput(batch_size=None, output_tokens_per_s=None, requests_per_s=None)) is None
