"""qeval.stats.proportion_ci is the closed-form Wilson interval: equal to scipy's, without importing scipy.stats."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from qeval.stats import proportion_ci


@st.composite
def _counts(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 100_000))
    return draw(st.integers(0, n)), n


@given(_counts(), st.floats(0.5, 0.9999))
def test_the_interval_equals_scipys_wilson_interval(counts: tuple[int, int], confidence: float) -> None:
    k, n = counts
    expected = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = proportion_ci(k, n, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_no_successes_start_at_zero_and_all_successes_end_at_one() -> None:
    assert proportion_ci(0, 7)[0] == 0.0
    assert proportion_ci(7, 7)[1] == 1.0
    assert proportion_ci(0, 0) is None
    with pytest.raises(ValueError, match="must lie in"):
        proportion_ci(8, 7)


def test_scoring_a_rate_does_not_import_scipy_stats() -> None:
    # importing scipy.stats costs ~0.5 s of every sweep's wrap-up (issue #18)
    done = subprocess.run([sys.executable, "-c", (
        "import sys; from qeval import stats; stats.rate([True, False, True]); "
        "print('scipy.stats' in sys.modules)"
    )], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False"]
