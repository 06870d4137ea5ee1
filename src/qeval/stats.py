"""Pure statistics: intervals for rates and scores, percentiles. No I/O.

All intervals are two-sided 95% unless ``confidence`` says otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from qeval.results import MetricValue, Percentiles


def _scipy_stats():
    # scipy.stats takes ~1 s to import; loading a suite (pytest collection) needs none of it
    from scipy import stats

    return stats


def proportion_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for a rate ``successes / n`` (``None`` when n == 0).

    Wilson rather than Wald: it stays inside [0, 1] and keeps its coverage at
    the small n and extreme rates that per-suite evals often have.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie in [0, n={n}]")
    # The closed form, as scipy.stats.binomtest(...).proportion_ci(method="wilson") computes it (the
    # tests hold the two equal): every sweep scores a rate, and importing scipy.stats for these few
    # lines costs ~0.5 s of each run's wrap-up.
    z = NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    p = successes / n
    denominator = 2 * (n + z**2)
    centre = (2 * n * p + z**2) / denominator
    half = z / denominator * math.sqrt(4 * n * p * (1 - p) + z**2)
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == n else centre + half
    return (low, high)


def rate(passed: Sequence[bool], confidence: float = 0.95) -> MetricValue:
    """Pass rate with its Wilson interval."""
    n = len(passed)
    k = int(sum(bool(p) for p in passed))
    return MetricValue(value=(k / n) if n else None, ci=proportion_ci(k, n, confidence), n=n)


def bootstrap_ci(
    columns: Sequence[Sequence[float]],
    statistic: Callable[..., float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``statistic(*columns)``, resampling cases (rows).

    ``columns`` are paired per case (e.g. tp, fp, fn counts), so a resample keeps
    each case's values together. ``None`` when fewer than 2 cases or the
    statistic is constant (the interval is then the point).
    """
    arrays = [np.asarray(c, dtype=float) for c in columns]
    n = len(arrays[0]) if arrays else 0
    if n < 2:
        return None
    point = float(statistic(*arrays))
    if all(np.all(a == a[0]) for a in arrays):
        return (point, point)
    # What scipy.stats.bootstrap(paired=True, method="percentile", vectorized, one batch) computes,
    # draw for draw (the tests hold the two equal): case indices from the seeded generator, the
    # statistic per resample, linear-interpolated quantiles. Written out because importing
    # scipy.stats costs ~0.5 s of every sweep whose suite scores F1 or a mean.
    picks = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n), dtype="int64")
    resampled = np.array([statistic(*(a[p] for a in arrays)) for p in picks], dtype=float)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha])
    return (float(low), float(high))


def mean_ci(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> MetricValue:
    """Mean of per-case scores with a bootstrap interval."""
    n = len(values)
    if n == 0:
        return MetricValue(value=None, ci=None, n=0)
    ci = bootstrap_ci([values], lambda v: float(np.mean(v)), confidence=confidence, seed=seed)
    return MetricValue(value=float(np.mean(values)), ci=ci, n=n)


def micro_f1(tp: Sequence[float], fp: Sequence[float], fn: Sequence[float]) -> float:
    """Micro-averaged F1 from per-case counts (1.0 when there is nothing to find and nothing found)."""
    t, p, f = float(np.sum(tp)), float(np.sum(fp)), float(np.sum(fn))
    denom = 2 * t + p + f
    return 1.0 if denom == 0 else 2 * t / denom


def percentiles(samples_ms: Sequence[float]) -> Percentiles:
    """p50/p95/p99 with linear interpolation (numpy's default), and the sample count."""
    n = len(samples_ms)
    if n == 0:
        return Percentiles(p50=None, p95=None, p99=None, n=0)
    p50, p95, p99 = np.percentile(np.asarray(samples_ms, dtype=float), [50, 95, 99])
    return Percentiles(p50=float(p50), p95=float(p95), p99=float(p99), n=n)


def paired_rate_drop(reference: Sequence[bool], current: Sequence[bool], confidence: float = 0.95):
    """Drop of a pass rate between two runs on the same cases: ``rate(reference) - rate(current)``.

    Returns ``(drop, ci, p_value, lost, gained)``. ``lost`` passed in the
    reference and fail now, ``gained`` the reverse; ``drop = (lost - gained) / n``.

    The interval is Tango's score interval for a paired difference of
    proportions (Tango 1998): every drop whose score statistic stays within
    ±z. Unlike an interval conditional on the number of discordant cases, it
    accounts for that number being random: with all flips one way, or none at
    all, it still reaches past the observed drop (100 identical cases bound a
    drop at about 3.7 points, not 0). The p-value is McNemar's exact test
    (binomial at 1/2 over the discordant cases). ``ci`` is ``None`` when there
    are no cases.
    """
    if len(reference) != len(current):
        raise ValueError(f"paired runs must have the same cases ({len(reference)} != {len(current)})")
    n = len(reference)
    if n == 0:
        return None, None, 1.0, 0, 0
    lost = sum(1 for r, c in zip(reference, current) if r and not c)
    gained = sum(1 for r, c in zip(reference, current) if c and not r)
    drop = (lost - gained) / n
    z = float(_scipy_stats().norm.ppf(1 - (1 - confidence) / 2))
    score = functools.partial(_tango_score, lost=lost, gained=gained, n=n)
    edge = 1 - 1e-12
    low = -1.0 if score(-edge) <= z else _brentq(lambda d: score(d) - z, -edge, drop)
    high = 1.0 if score(edge) >= -z else _brentq(lambda d: score(d) + z, drop, edge)
    discordant = lost + gained
    p_value = 1.0 if discordant == 0 else float(_scipy_stats().binomtest(lost, discordant, 0.5).pvalue)
    return drop, (float(low), float(high)), p_value, lost, gained


def _tango_score(delta: float, lost: int, gained: int, n: int) -> float:
    """Tango's score statistic at a hypothesised drop ``delta`` (decreasing in ``delta``)."""
    a = 2.0 * n
    b = -lost - gained + (2.0 * n - lost + gained) * delta
    c = -gained * delta * (1 - delta)
    q21 = (np.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)  # restricted MLE of P(gained)
    variance = n * (2 * q21 + delta * (1 - delta))
    diff = lost - gained - n * delta
    if variance <= 0:
        return 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    return float(diff / np.sqrt(variance))


def _brentq(f: Callable[[float], float], lo: float, hi: float) -> float:
    from scipy.optimize import brentq

    return float(brentq(f, lo, hi, xtol=1e-10))


def quantile_ci(samples: Sequence[float], q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the population ``q``-quantile (``q`` in (0, 1)).

    The bounds are order statistics chosen with the binomial distribution
    (``scipy.stats.quantile_test``), so the coverage holds for any latency
    distribution. A bound that ``n`` samples cannot support is infinite: with 8
    samples nothing bounds the p95 from above, which is the truth. A percentile
    bootstrap would instead never reach past the sample maximum and pass a
    ``p95 <= T`` gate on 8 lucky samples. ``None`` when there are no samples.
    """
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        return None
    ci = _scipy_stats().quantile_test(x, q=float(np.median(x)), p=q).confidence_interval(confidence_level=confidence)
    lo = float(ci.low) if np.isfinite(ci.low) else -np.inf
    hi = float(ci.high) if np.isfinite(ci.high) else np.inf
    return (lo, hi)


def min_samples_for_quantile(q: float, confidence: float = 0.95) -> int:
    """Fewest samples for which :func:`quantile_ci` has both bounds finite
    (72 for the p95, 368 for the p99 and 6 for the median at 95%).

    The extreme order statistics bound the quantile only once the chance that
    every sample falls on one side of it, ``q**n`` or ``(1-q)**n``, is at most
    ``(1 - confidence) / 2``.
    """
    alpha = (1 - confidence) / 2
    return int(np.ceil(max(np.log(alpha) / np.log(q), np.log(alpha) / np.log(1 - q)) - 1e-9))


def ratio_from_intervals(num: tuple[float, float], den: tuple[float, float]) -> tuple[float, float]:
    """Bounds of ``a / b`` for positive ``a`` in ``num`` and ``b`` in ``den`` (intervals may be infinite)."""
    # an unbounded side stays unbounded; a non-positive lower bound of ``a`` says only a / b >= 0
    lo = num[0] / den[1] if num[0] > 0 and 0 < den[1] < np.inf else 0.0
    hi = num[1] / den[0] if den[0] > 0 and num[1] < np.inf else np.inf
    return (float(lo), float(hi))


def joint_confidence(confidence: float = 0.95, parts: int = 2) -> float:
    """Per-part confidence so that ``parts`` independent intervals hold together at ``confidence``."""
    return 1 - (1 - confidence) / parts
