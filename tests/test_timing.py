
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.models import TimedGeneration
from qeval.timing import sample_indices, summarise

gaps = st.lists(st.floats(min_value=0.01, max_value=500, allow_nan=False), min_size=1, max_size=40)


def _request(first_ms, gap_list):
    times = [first_ms]
    for g in gap_list[1:]:
        times.append(times[-1] + g)
    return TimedGeneration(text="x", output_tokens=len(times), tokenize_ms=0.5, token_times_ms=tuple(times))


def test_definitions_on_a_hand_computed_request():
    r = TimedGeneration(text="abc", output_tokens=4, tokenize_ms=2.0, token_times_ms=(100.0, 110.0, 130.0, 160.0))
    s = summarise([r], wall_s=0.2, warmup_requests=1)
    assert s.ttft_ms.p50 == 100.0 and s.ttft_ms.n == 1
    assert s.e2e_ms.p50 == 160.0
    # TPOT = (e2e - TTFT) / (tokens - 1) = 60 / 3
    assert s.tpot_ms.p50 == pytest.approx(20.0)
    # ITL pools every gap: 10, 20, 30
    assert s.itl_ms.n == 3 and s.itl_ms.p50 == pytest.approx(20.0)
    assert s.output_tokens_per_s == pytest.approx(4 / 0.2)
    assert s.tokenize_ms.p50 == 2.0
    assert s.warmup_requests == 1 and s.requests == 1


def test_single_token_request_has_no_tpot_or_itl():
    r = TimedGeneration(text="a", output_tokens=1, tokenize_ms=1.0, token_times_ms=(50.0,))
    s = summarise([r], wall_s=0.1, warmup_requests=0)
    assert s.ttft_ms.n == 1 and s.tpot_ms.n == 0 and s.tpot_ms.p50 is None and s.itl_ms.n == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0.1, max_value=1000, allow_nan=False), gaps), min_size=1, max_size=10))
def test_summary_invariants(reqs):
    requests = [_request(first, g) for first, g in reqs]
    s = summarise(requests, wall_s=1.0, warmup_requests=0)
    assert s.ttft_ms.n == len(requests)
    assert s.itl_ms.n == sum(len(r.token_times_ms) - 1 for r in requests)
    for p in (s.ttft_ms, s.e2e_ms, s.itl_ms, s.tpot_ms):
        if p.n:
            assert p.p50 <= p.p95 + 1e-9 <= p.p99 + 2e-9
    # e2e >= ttft for every request, so the same holds for the medians
    assert s.e2e_ms.p50 >= s.ttft_ms.p50 - 1e-9
    # TPOT is the mean ITL of each request, so it lies within the ITL range
    if s.tpot_ms.n:
        all_itl = [b - a for r in requests for a, b in zip(r.token_times_ms, r.token_times_ms[1:])]
        assert min(all_itl) - 1e-6 <= s.tpot_ms.p50 <= max(all_itl) + 1e-6
    assert s.output_tokens_per_s == pytest.approx(sum(r.output_tokens for r in requests))


def test_percentiles_use_linear_interpolation():
    reqs = [TimedGeneration("x", 1, 0.0, (float(v),)) for v in range(1, 101)]
    s = summarise(reqs, wall_s=1.0, warmup_requests=0)
    assert s.ttft_ms.p95 == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert s.ttft_ms.p99 == pytest.approx(99.01)


@given(st.integers(0, 50), st.integers(0, 20), st.integers(0, 5))
def test_sample_indices_are_valid_and_deterministic(n, samples, warmup):
    warm, timed = sample_indices(n, samples, warmup)
    assert (warm, timed) == sample_indices(n, samples, warmup)
    assert len(timed) == (samples if n else 0)
    assert len(set(timed)) == min(n, samples)  # distinct until the cases run out, then repeated
    assert all(0 <= i < n for i in warm + timed)
    assert len(warm) == (warmup if n else 0)
    if n > samples:
        assert not set(warm) & set(timed)
