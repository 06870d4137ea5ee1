"""What an SLO measures on a cell: a value, its 95% interval, n, and how the interval was made.

Pure: takes frozen cell results, returns frozen measurements. Three kinds:

- **absolute** (``accuracy >= 0.9``, ``p95_ttft_ms <= 300``): the cell's own number.
  Rates get Wilson intervals, F1 a case bootstrap (both computed by the scorers),
  latency percentiles distribution-free order-statistic intervals, throughput a
  request bootstrap; weights and peak memory are exact.
- **drop** (``accuracy_drop_vs(bf16) <= 0.02``): ``reference - current`` on the
  cases both share, *paired*, by the test the suite's scorer declares for the metric
  (:class:`qeval.results.MetricSpec`): Tango's score interval for pass rates, a paired
  case bootstrap for F1 / precision / recall and mean case scores, and the cases that flipped.
- **ratio** (``p95_ttft_ratio_vs(bf16) <= 0.8``): ``current / reference`` of a cost.
  When the current cell's timed pass was paired with the reference's requests (ABBA, one
  window: :func:`qeval.timing.paired_timed_pass`), a latency ratio is the ratio of the two
  sides' percentiles over those pairs, with a bootstrap over pairs: what the machine did
  meanwhile slowed both sides alike. Otherwise percentile ratios combine the two
  order-statistic intervals at 97.5% each (so both hold together at 95%); throughput ratios
  bootstrap both runs.

A latency figure timed while the machine was busy with other work
(:attr:`qeval.results.LatencyStats.background`) is not evidence: its measurement carries
``unreliable`` and every verdict on it is inconclusive, with the reason -- a paired ratio
too. Pairing cancels load that *changes* between targets (the sweep that times fp32 on a quiet
machine and int8 once a neighbour started); it does not cancel how heavy contention slows one
kernel more than another. Measured with ``benchmarks/noise.py`` (2 cores, 2 busy loops started
when int8 begins): paired TPOT p50 ratio int8/fp32 1.00 [0.99, 1.01] quiet, 2.04 [1.85, 2.30]
under the hog; TTFT 3.76 [3.68, 3.84] and 3.33 [2.09, 4.09]. That unequal slowing comes from
intra-op threads: with one thread per side (``OMP_NUM_THREADS=1``) the same benchmark kept both
ratios (docs/metrics.md, "One intra-op thread keeps a paired ratio"), so a paired ratio between two in-process
passes that each ran at one thread stays evidence on a busy machine; their absolute figures do not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from qeval import stats
from qeval.errors import QevalError
from qeval.metric_specs import scoring_of, spec_of
from qeval.results import CaseResult, CellResult
from qeval.scorers._f1 import micro_precision, micro_recall

BYTES_PER_MB = 1_000_000
_LATENCY = re.compile(r"^p(50|95|99)_(ttft|tpot|itl|e2e|tokenize)(_ms)?$")


class MeasureError(QevalError, ValueError):
    """The cell cannot give the number an SLO asks for (metric absent, no cases, no timing)."""


@dataclass(frozen=True)
class Flip:
    """A case whose pass/fail differs between the reference and the current run."""

    case_id: str
    expected: Any
    reference_completion: str
    completion: str
    reason: str | None
    """Why the failing side failed (the scorer's reason)."""


@dataclass(frozen=True)
class Measurement:
    value: float | None
    ci: tuple[float, float] | None
    """95% interval; a bound may be infinite when the samples cannot support it."""
    n: int
    method: str
    """How the interval was made, in words (shown in failure messages)."""
    min_n: int | None = None
    """Fewest samples for which this method can bound the value at all (tail percentiles)."""
    lost: tuple[Flip, ...] = ()
    """Passed in the reference, fail now (drops only)."""
    gained: tuple[Flip, ...] = ()
    """Failed in the reference, pass now (drops only)."""
    p_value: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    unreliable: str | None = None
    """Why this figure is not evidence (the machine was busy while it was timed): a verdict on it
    is inconclusive, whatever the interval says."""


# --- absolute --------------------------------------------------------------------------------


def absolute(cell: CellResult, metric: str) -> Measurement:
    """The cell's own value of ``metric`` with its interval."""
    if metric == "accuracy":
        return Measurement(cell.accuracy, cell.accuracy_ci, cell.n, "Wilson interval of the pass rate")
    lat = _LATENCY.match(metric)
    if lat:
        pct, kind = int(lat[1]), lat[2]
        samples = _latency_samples(cell, kind)
        value = getattr(getattr(cell.latency, f"{kind}_ms"), f"p{pct}")
        return Measurement(
            value, stats.quantile_ci(samples, pct / 100), len(samples),
            f"distribution-free order-statistic interval of the p{pct} over {len(samples)} timed {kind} samples",
            min_n=stats.min_samples_for_quantile(pct / 100), unreliable=busy(cell),
        )
    if metric == "tokens_per_s":
        tokens, _ = _throughput_columns(cell)
        value = cell.latency.output_tokens_per_s if cell.latency else None
        return Measurement(value, throughput_ci(cell, 0.95), len(tokens), "bootstrap over timed requests",
                           unreliable=busy(cell))
    if metric in ("weights_mb", "peak_mb", "weights", "peak"):
        value = _memory_mb(cell, metric)
        return Measurement(value, (value, value), 1, "exact (a single deterministic measurement)")
    if metric in cell.metrics:
        mv = cell.metrics[metric]
        return Measurement(mv.value, mv.ci, mv.n, "the scorer's interval (Wilson for rates, case bootstrap otherwise)")
    known = ", ".join(["accuracy", *sorted(cell.metrics)])
    raise MeasureError(
        f"Suite {cell.suite!r} at {cell.precision} has no metric {metric!r}; it has: {known}, "
        "plus latency (p95_ttft_ms ...), tokens_per_s, weights_mb and peak_mb."
    )


def _latency_samples(cell: CellResult, kind: str) -> tuple[float, ...]:
    if cell.latency is None or cell.latency.requests == 0:
        raise MeasureError(
            f"Suite {cell.suite!r} at {cell.precision} has no timed pass (latency samples 0, or it failed: "
            f"{cell.reason or 'no reason recorded'}); raise --qeval-latency-samples to gate on latency."
        )
    samples = cell.latency.samples_ms.get(kind)
    if samples is None:
        raise MeasureError(
            f"Suite {cell.suite!r} at {cell.precision} was stored without raw {kind} samples "
            "(an older record); re-run it to gate on its latency."
        )
    return tuple(samples)


def _throughput_columns(cell: CellResult) -> tuple[list[float], list[float]]:
    """Per timed request that produced tokens: (output tokens, seconds incl. tokenization)."""
    if cell.latency is None or cell.latency.requests == 0:
        raise MeasureError(f"Suite {cell.suite!r} at {cell.precision} has no timed pass to measure throughput on.")
    per_request = cell.latency.request_tokens
    e2e = cell.latency.samples_ms.get("e2e", ())
    tok = cell.latency.samples_ms.get("tokenize", ())
    keep = [i for i, t in enumerate(per_request) if t > 0]
    if len(keep) != len(e2e) or len(tok) != len(per_request):
        return [], []  # an older record or a model that streams differently: no interval
    return [float(per_request[i]) for i in keep], [(e2e[j] + tok[i]) / 1000.0 for j, i in enumerate(keep)]


def _memory_mb(cell: CellResult, metric: str) -> float:
    field_name = "weights_bytes" if metric.startswith("weights") else "peak_bytes"
    value = getattr(cell.memory, field_name, None) if cell.memory else None
    if value is None:
        raise MeasureError(f"Suite {cell.suite!r} at {cell.precision} has no {field_name} recorded.")
    return value / BYTES_PER_MB


# --- drop ------------------------------------------------------------------------------------


def paired_cases(reference: CellResult, current: CellResult) -> tuple[list[CaseResult], list[CaseResult], list[str]]:
    """The cases both cells share, in the current cell's order, and notes on what was left out."""
    if not reference.cases or not current.cases:
        which = "reference" if not reference.cases else "current"
        raise MeasureError(
            f"Suite {current.suite!r}: the {which} run ({reference.precision if which == 'reference' else current.precision}) "
            "has no per-case results, and a paired comparison needs them. Compare against a record "
            "saved with --qeval-save-baseline, or a run folder that still has samples.jsonl."
        )
    # an error outcome (a request that failed for good) says nothing about quality: unpaired
    ref_by_id = {c.case_id: c for c in reference.cases if c.error is None}
    cur = [c for c in current.cases if c.case_id in ref_by_id and c.error is None]
    notes = []
    errors = sum(c.error is not None for c in current.cases) + sum(c.error is not None for c in reference.cases)
    if len(cur) != len(current.cases) or len(cur) != len(reference.cases):
        notes.append(
            f"paired on the {len(cur)} cases both runs share "
            f"({len(current.cases)} now, {len(reference.cases)} in the reference"
            + (f"; {errors} error outcome(s) left out" if errors else "") + ")"
        )
    if not cur:
        raise MeasureError(f"Suite {current.suite!r}: the two runs share no case ids, so they cannot be paired.")
    return [ref_by_id[c.case_id] for c in cur], cur, notes


def flips(ref: Sequence[CaseResult], cur: Sequence[CaseResult]) -> tuple[tuple[Flip, ...], tuple[Flip, ...]]:
    """(lost, gained): cases that went pass→fail and fail→pass, in case order."""
    lost = tuple(
        Flip(c.case_id, c.expected, r.completion, c.completion, c.reason)
        for r, c in zip(ref, cur) if r.passed and not c.passed
    )
    gained = tuple(
        Flip(c.case_id, c.expected, r.completion, c.completion, r.reason)
        for r, c in zip(ref, cur) if c.passed and not r.passed
    )
    return lost, gained


def drop(reference: CellResult, current: CellResult, metric: str) -> Measurement:
    """``reference - current`` of a quality metric on paired cases (positive = worse now; for a
    lower-is-better metric, ``current - reference``). The paired test is the one the suite's scorer
    declares for the metric (:class:`qeval.results.MetricSpec`)."""
    spec = spec_of(metric, current, reference)
    if not spec.paired or spec.sign == 0:
        paired = [s.name for s in scoring_of(current).metrics if s.paired and s.sign]
        raise MeasureError(
            f"Suite {current.suite!r}: {metric!r} has no paired test ({spec.method}), so no drop can be measured "
            f"for it; the suite's metrics with one: {', '.join(paired) or 'none'}. Gate {metric!r} with an "
            "absolute threshold instead."
        )
    ref, cur, notes = paired_cases(reference, current)
    lost, gained = flips(ref, cur)
    if spec.pairing == "pass_fail":
        value, ci, p, _, _ = stats.paired_rate_drop([r.passed for r in ref], [c.passed for c in cur])
        return _oriented(spec.sign, Measurement(
            value, ci, len(cur), f"paired score interval (Tango) over {len(cur)} cases, {len(lost) + len(gained)} of them flipped",
            lost=lost, gained=gained, p_value=p, notes=tuple(notes),
        ))
    if spec.pairing == "case_mean":
        scores = [[float(r.score) for r in ref], [float(c.score) for c in cur]]

        def mean_difference(a, b) -> float:
            return float(a.mean() - b.mean())

        value = mean_difference(*(np.asarray(c, dtype=float) for c in scores))
        return _oriented(spec.sign, Measurement(
            value, stats.bootstrap_ci(scores, mean_difference), len(cur),
            f"paired bootstrap of the mean case score over {len(cur)} cases (2000 resamples)",
            lost=lost, gained=gained, notes=tuple(notes),
        ))
    columns = [_counts(ref, k) for k in ("tp", "fp", "fn")] + [_counts(cur, k) for k in ("tp", "fp", "fn")]
    stat = _MICRO[spec.pairing]

    def difference(tp1, fp1, fn1, tp2, fp2, fn2) -> float:
        return stat(tp1, fp1, fn1) - stat(tp2, fp2, fn2)

    arrays = [np.asarray(c, dtype=float) for c in columns]
    value = difference(*arrays)
    ci = stats.bootstrap_ci(columns, difference)
    return _oriented(spec.sign, Measurement(value, ci, len(cur), "paired bootstrap over cases (2000 resamples)",
                                            lost=lost, gained=gained, notes=tuple(notes)))


def _oriented(sign: int, m: Measurement) -> Measurement:
    """``m`` (reference - current) turned so that positive is worse for a lower-is-better metric too."""
    if sign > 0 or m.value is None:
        return m
    ci = (0.0 - m.ci[1], 0.0 - m.ci[0]) if m.ci is not None else None
    return replace(m, value=0.0 - m.value, ci=ci)


def _counts(cases: Sequence[CaseResult], key: str) -> list[float]:
    missing = [c.case_id for c in cases if key not in c.details]
    if missing:
        raise MeasureError(
            f"Case {missing[0]!r} has no {key!r} count in its details: its scorer does not produce F1, "
            "so an F1 drop cannot be measured for this suite."
        )
    return [float(c.details[key]) for c in cases]


_MICRO: dict[str, Callable[..., float]] = {
    "micro_f1": stats.micro_f1, "micro_precision": micro_precision, "micro_recall": micro_recall,
}
"""The statistic behind each ``micro_*`` pairing (:data:`qeval.results.Pairing`)."""


# --- ratio -----------------------------------------------------------------------------------


def ratio(reference: CellResult, current: CellResult, metric: str) -> Measurement:
    """``current / reference`` of a cost (``p95_ttft``, ``tokens_per_s``, ``weights``, ``peak``)."""
    lat = _LATENCY.match(metric)
    if lat:
        pct, kind = int(lat[1]), lat[2]
        paired = _paired_ratio(reference, current, pct, kind)
        if paired is not None:
            return paired
        q, conf = pct / 100, stats.joint_confidence()
        a, b = _latency_samples(current, kind), _latency_samples(reference, kind)
        va = getattr(getattr(current.latency, f"{kind}_ms"), f"p{pct}")
        vb = getattr(getattr(reference.latency, f"{kind}_ms"), f"p{pct}")
        value = va / vb if va is not None and vb else None
        ca, cb = stats.quantile_ci(a, q, conf), stats.quantile_ci(b, q, conf)
        ci = stats.ratio_from_intervals(ca, cb) if ca and cb else None
        return Measurement(
            value, ci, min(len(a), len(b)),
            f"ratio of two order-statistic intervals of the p{pct} (97.5% each; {len(a)} and {len(b)} samples)",
            min_n=stats.min_samples_for_quantile(q, conf), unreliable=busy(current) or busy(reference),
        )
    if metric == "tokens_per_s":
        cur, ref = absolute(current, metric), absolute(reference, metric)
        value = cur.value / ref.value if cur.value and ref.value else None
        conf = stats.joint_confidence()
        ca = throughput_ci(current, conf)
        cb = throughput_ci(reference, conf)
        ci = stats.ratio_from_intervals(ca, cb) if ca and cb and value is not None else None
        return Measurement(value, ci, min(cur.n, ref.n), "ratio of two request-bootstrap intervals (97.5% each)",
                           unreliable=busy(current) or busy(reference))
    if metric in ("weights", "peak", "weights_mb", "peak_mb"):
        mb_cur, mb_ref = _memory_mb(current, metric), _memory_mb(reference, metric)
        value = mb_cur / mb_ref if mb_ref else None
        return Measurement(value, (value, value) if value is not None else None, 1, "exact (deterministic sizes)")
    raise MeasureError(f"No ratio is defined for {metric!r}; use p50/p95/p99 of a latency, tokens_per_s, weights or peak.")


def busy(cell: CellResult) -> str | None:
    """Why ``cell``'s latency figures are not evidence (the machine was busy with other work while
    they were timed), or ``None``."""
    background = cell.latency.background if cell.latency else None
    if background is None or not background.busy:
        return None
    return f"{cell.precision}/{cell.suite}: the machine was busy while it was timed ({background.reason})"


def _single_threaded(cell: CellResult) -> bool:
    background = cell.latency.background if cell.latency else None
    return background is not None and background.intra_op_threads == 1


def _paired_ratio(reference: CellResult, current: CellResult, pct: int, kind: str) -> Measurement | None:
    """The ratio from ``current``'s pairs with ``reference`` (``None`` when it was not paired with it)."""
    paired = current.latency.paired if current.latency else None
    if paired is None or paired.reference != reference.precision or kind not in paired.samples_ms:
        return None
    column = paired.samples_ms[kind]
    mine, theirs = np.asarray(column.target, dtype=float), np.asarray(column.reference, dtype=float)
    q, n = pct / 100, len(mine)
    min_n = stats.min_samples_for_quantile(q)
    method = (f"ratio of the p{pct}s of {n} ABBA pairs timed together with {reference.precision} "
              "(percentile bootstrap over pairs)")
    # busy: both sides of every pair shared the load, but with several intra-op threads contention
    # slows kernels unequally (see the module doc), so a busy paired ratio is shown, not taken as
    # evidence -- unless both sides ran single-threaded (the module doc)
    unreliable = busy(current) or busy(reference)
    if unreliable and _single_threaded(current) and _single_threaded(reference):
        unreliable = None
        method += "; the machine was busy, but both sides ran at one intra-op thread, which keeps the ratio"
    if n == 0 or not np.quantile(theirs, q) > 0:
        return Measurement(None, None, n, method, min_n=min_n, unreliable=unreliable)

    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        den = float(np.quantile(b, q))
        return float(np.quantile(a, q)) / den if den > 0 else math.inf

    value = statistic(mine, theirs)
    ci = stats.bootstrap_ci([column.target, column.reference], statistic) if n >= min_n else (0.0, math.inf)
    return Measurement(value, ci, n, method, min_n=min_n, unreliable=unreliable)


MIN_REQUESTS_FOR_THROUGHPUT_CI = 8
"""Fewer timed requests give no throughput interval. A percentile bootstrap over n
requests only ever spans the range of their rates: with 2 requests, two slightly slower
ones than the baseline's read as a "significant" slow-down (seen in CI, on a fake model)."""


def throughput_ci(cell: CellResult, confidence: float = 0.95) -> tuple[float, float] | None:
    """Interval of the cell's tokens/s from a bootstrap over its timed requests (``None`` without
    them, or with fewer than :data:`MIN_REQUESTS_FOR_THROUGHPUT_CI`)."""
    tokens, seconds = _throughput_columns(cell)
    value = cell.latency.output_tokens_per_s if cell.latency else None
    if len(tokens) < MIN_REQUESTS_FOR_THROUGHPUT_CI or not value or sum(seconds) <= 0:
        return None
    # Bootstrap tokens / request time, then scale onto tokens / pass wall time (the reported value).
    point = sum(tokens) / sum(seconds)
    ci = stats.bootstrap_ci([tokens, seconds], lambda t, s: float(t.sum() / s.sum()), confidence=confidence)
    return (ci[0] * value / point, ci[1] * value / point) if ci else None


def finite(ci: tuple[float, float] | None) -> bool:
    return ci is not None and all(math.isfinite(b) for b in ci)


def for_slo(slo: Any, cell: CellResult, reference: CellResult | None = None) -> Measurement:
    """What ``slo`` (a :class:`qeval.gates.SLO`) measures on ``cell``; ``reference`` is the
    cell it is compared with for drops and ratios."""
    if slo.relation == "absolute":
        return absolute(cell, slo.metric)
    if reference is None:
        raise MeasureError(f"SLO {slo} compares against {slo.reference}, but no reference cell was given.")
    if slo.relation == "drop":
        return drop(reference, cell, slo.metric)
    return ratio(reference, cell, slo.metric)
