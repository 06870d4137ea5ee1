"""RetryPolicy.wait_s: bounded waits, bounded attempts, bounded total, Retry-After honoured."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.targets._retry import RetryPolicy, parse_retry_after

_policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=12),
    base_s=st.floats(min_value=0.0, max_value=5.0),
    max_wait_s=st.floats(min_value=0.0, max_value=30.0),
    budget_s=st.floats(min_value=0.0, max_value=40.0),  # on the waits' scale, so budgets bind
)
# What a server may send: nothing, seconds (some beyond any cap), garbage.
_retry_after = st.none() | st.integers(min_value=0, max_value=100).map(str) | st.sampled_from(["soon", "-3", ""])


def _run(policy: RetryPolicy, seed: int, answers: list[str | None], durations: list[float]) -> list[float]:
    """Simulate a failing request: the waits the policy grants until it gives up."""
    rng = random.Random(seed)
    elapsed, attempt = 0.0, 1
    waits: list[float] = []
    while True:
        elapsed += durations[(attempt - 1) % len(durations)]  # the failed attempt's own time
        wait = policy.wait_s(attempt + 1, answers[(attempt - 1) % len(answers)], rng, elapsed, now_epoch_s=0.0)
        if wait is None:
            return waits
        assert wait >= 0
        waits.append(wait)
        elapsed += wait
        attempt += 1


@given(
    _policies,
    st.integers(),
    st.lists(_retry_after, min_size=1, max_size=12),
    st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=12),
)
def test_waits_attempts_and_total_are_bounded(
    policy: RetryPolicy, seed: int, answers: list[str | None], durations: list[float]
) -> None:
    waits = _run(policy, seed, answers, durations)
    assert 1 + len(waits) <= policy.max_attempts
    assert all(w <= policy.max_wait_s for w in waits)
    assert sum(waits) <= policy.budget_s + 1e-9


@given(
    _policies,
    st.integers(min_value=2, max_value=12),
    st.floats(min_value=0.0, max_value=30.0),
    st.integers(min_value=0, max_value=40),
)
def test_retry_after_seconds_honoured_when_it_fits(
    policy: RetryPolicy, attempt: int, elapsed: float, asked: int
) -> None:
    wait = policy.wait_s(attempt, str(asked), random.Random(0), elapsed)
    fits = attempt <= policy.max_attempts and asked <= policy.max_wait_s and elapsed + asked <= policy.budget_s
    if fits and elapsed < policy.budget_s:
        assert wait is not None and wait >= asked
    else:
        assert wait is None  # sooner than asked would only be refused again


@given(st.integers(min_value=0, max_value=3600), st.floats(min_value=1e9, max_value=2e9))
def test_retry_after_http_date(delay: int, now: float) -> None:
    date = formatdate(int(now) + delay, usegmt=True)
    asked = parse_retry_after(date, now)
    assert asked is not None and delay - 1 <= asked <= delay  # the date has whole seconds
    assert parse_retry_after(formatdate(now - 100, usegmt=True), now) == 0.0  # a past date: now


def test_http_date_needs_a_clock_and_garbage_falls_back_to_backoff() -> None:
    policy = RetryPolicy(base_s=1.0, max_wait_s=60.0, budget_s=100.0)
    date = formatdate(1_000_030, usegmt=True)
    assert policy.wait_s(2, date, random.Random(0), 0.0, now_epoch_s=1_000_000.0) == pytest.approx(30.0)
    # without a clock the date is ignored and the jittered backoff (<= base_s) applies
    for unreadable in (date, "later please"):
        wait = policy.wait_s(2, unreadable, random.Random(0), 0.0)
        assert wait is not None and wait <= 1.0


@given(st.integers(min_value=2, max_value=200), st.integers())
def test_full_jitter_stays_under_the_doubling_cap(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=1000, base_s=0.5, max_wait_s=20.0, budget_s=1e9)
    wait = policy.wait_s(attempt, None, random.Random(seed), 0.0)
    assert wait is not None and 0.0 <= wait <= min(20.0, 0.5 * 2 ** (attempt - 2))


def test_jitter_spreads_and_is_reproducible() -> None:
    policy = RetryPolicy(base_s=8.0, max_wait_s=8.0)
    draws = [policy.wait_s(2, None, random.Random(seed), 0.0) for seed in range(50)]
    assert len(set(draws)) > 40  # full jitter, not a fixed ladder
    assert draws == [policy.wait_s(2, None, random.Random(seed), 0.0) for seed in range(50)]


def test_first_attempt_never_waits_and_last_gives_up() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.wait_s(1, "10", random.Random(0), 0.0) == 0.0
    assert policy.wait_s(3, None, random.Random(0), 0.0) is not None
    assert policy.wait_s(4, "0", random.Random(0), 0.0) is None


def test_spent_budget_gives_up_and_a_draw_is_cut_to_what_is_left() -> None:
    policy = RetryPolicy(base_s=100.0, max_wait_s=100.0, budget_s=10.0)
    assert policy.wait_s(2, None, random.Random(0), 10.0) is None
    wait = policy.wait_s(2, None, random.Random(0), 9.5)
    assert wait is not None and wait <= 0.5


@pytest.mark.parametrize("bad", [dict(max_attempts=0), dict(base_s=-1.0), dict(budget_s=float("nan"))])
def test_invalid_policy_is_a_usage_error(bad: dict[str, float]) -> None:
    with pytest.raises(UsageError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]
