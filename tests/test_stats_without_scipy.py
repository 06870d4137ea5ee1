"""qeval.stats' rate (Wilson) and bootstrap intervals, written out: equal to scipy's, without importing scipy.stats."""

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


def _scipy_bootstrap(columns: list[list[float]], statistic, confidence: float, seed: int) -> tuple[float, float]:
    """The call qeval.stats.bootstrap_ci made before it was written out."""
    import numpy as np

    arrays = tuple(np.asarray(c, dtype=float) for c in columns)

    def vectorised(*cols, axis=-1):
        return np.array([statistic(*row) for row in zip(*cols, strict=True)], dtype=float)

    res = scipy_stats.bootstrap(arrays, vectorised, paired=True, vectorized=True, confidence_level=confidence,
                                n_resamples=300, method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=40),
       st.floats(0.5, 0.99), st.integers(0, 2**32))
def test_the_bootstrap_interval_equals_scipys_draw_for_draw(cases, confidence: float, seed: int) -> None:
    from qeval.stats import bootstrap_ci, micro_f1

    columns = [list(map(float, c)) for c in zip(*cases, strict=True)]
    got = bootstrap_ci(columns, micro_f1, confidence, n_resamples=300, seed=seed)
    assert got is not None
    if all(len(set(c)) == 1 for c in columns):  # constant: the point, without resampling
        assert got[0] == got[1]
        return
    expected = _scipy_bootstrap(columns, micro_f1, confidence, seed)
    assert got == pytest.approx(expected, abs=1e-12)


def test_scoring_f1_does_not_import_scipy_stats() -> None:
    done = subprocess.run([sys.executable, "-c", (
        "import sys; from qeval import stats; "
        "print(stats.bootstrap_ci([[1, 0, 2], [0, 1, 0], [1, 1, 0]], lambda tp, fp, fn: tp.sum()), "
        "'scipy.stats' in sys.modules)"
    )], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "False"
