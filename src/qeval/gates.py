"""SLO expressions: one small grammar, parsed into frozen records. Pure; no I/O.

Grammar (whitespace is free between tokens)::

    slo       := target OP NUMBER
    target    := METRIC                         absolute:  accuracy >= 0.92, p95_ttft_ms <= 300
               | METRIC "_drop_vs(" REF ")"      quality drop against REF:  accuracy_drop_vs(bf16) <= 0.02
               | METRIC "_ratio_vs(" REF ")"     cost ratio against REF:    p95_ttft_ratio_vs(bf16) <= 0.8
    OP        := ">=" | "<=" | ">" | "<"
    REF       := a precision name in the same run, or "baseline" (the stored baseline run)

Metrics: quality scores (``accuracy``, ``f1`` and any other suite metric name such as
``unparseable_rate``), latency percentiles ``p{50,95,99}_{ttft,tpot,itl,e2e,tokenize}_ms``,
``tokens_per_s``, ``weights_mb`` and ``peak_mb``. In a ratio the metric is written without
its unit (``p95_ttft_ratio_vs``), since a ratio has none. A drop is
``reference − this`` (positive = worse) and applies to quality metrics only; a ratio is
``this / reference`` and applies to cost metrics only.

Verdicts: :func:`decide` turns a measured value and its interval (``qeval.measure``) into
pass / fail / inconclusive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, cast

from qeval.errors import UsageError

Op = Literal[">=", "<=", ">", "<"]
Relation = Literal["absolute", "drop", "ratio"]

_LATENCY = re.compile(r"^p(50|95|99)_(ttft|tpot|itl|e2e|tokenize)_ms$")
_COST_UNITLESS = re.compile(r"^p(50|95|99)_(ttft|tpot|itl|e2e|tokenize)$")
_COST_OTHER = {"tokens_per_s": "tokens_per_s", "weights_mb": "weights", "peak_mb": "peak"}
_NAME = r"[a-z][a-z0-9_]*"
_SLO = re.compile(
    rf"""^\s*
    (?P<metric>{_NAME}?)
    (?:_(?P<rel>drop|ratio)_vs\(\s*(?P<ref>[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*\))?
    \s*(?P<op>>=|<=|>|<)\s*
    (?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    \s*$""",
    re.VERBOSE,
)
_EXAMPLES = "accuracy >= 0.92, p95_ttft_ms <= 300, accuracy_drop_vs(bf16) <= 0.02, p95_ttft_ratio_vs(bf16) <= 0.8"


class SloError(UsageError):
    """An SLO expression that does not parse or does not make sense."""


@dataclass(frozen=True)
class SLO:
    """One service-level objective, e.g. ``accuracy_drop_vs(bf16) <= 0.02``."""

    metric: str
    """``accuracy``, ``f1``, ``p95_ttft_ms`` ...; in a ratio, the unitless cost name (``p95_ttft``)."""
    op: Op
    threshold: float
    relation: Relation = "absolute"
    reference: str | None = None
    """Precision name or ``"baseline"`` for drop/ratio; ``None`` when absolute."""

    def __str__(self) -> str:
        target = self.metric if self.relation == "absolute" else f"{self.metric}_{self.relation}_vs({self.reference})"
        return f"{target} {self.op} {_number(self.threshold)}"

    def holds(self, value: float) -> bool:
        """The comparison itself, on a point value. Verdicts use interval bounds instead:
        the operator alone says which bound decides (``>=``: the lower one)."""
        return {">=": value >= self.threshold, "<=": value <= self.threshold,
                ">": value > self.threshold, "<": value < self.threshold}[self.op]


def _number(x: float) -> str:
    # repr round-trips exactly; drop a trailing ".0" so 300.0 reads as 300.
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def is_cost_metric(metric: str) -> bool:
    """Latency, throughput and memory metrics (with or without their unit suffix)."""
    return bool(_LATENCY.match(metric) or _COST_UNITLESS.match(metric)) or metric in _COST_OTHER or metric in _COST_OTHER.values()


def parse_slo(text: str) -> SLO:
    """Parse one SLO expression; :class:`SloError` says what is wrong and shows valid examples."""
    if not isinstance(text, str) or not text.strip():
        raise SloError(f"Empty SLO expression. Write one like: {_EXAMPLES}.")
    m = _SLO.match(text)
    if m is None:
        raise SloError(
            f"Cannot parse SLO {text!r}: expected METRIC OP NUMBER, with OP one of >=, <=, >, <. "
            f"Write it like one of: {_EXAMPLES}."
        )
    metric, rel, ref = m["metric"], m["rel"], m["ref"]
    threshold = float(m["num"])
    if not metric:
        raise SloError(f"SLO {text!r} names no metric before the comparison. Put one first, e.g. {_EXAMPLES}.")
    if not math.isfinite(threshold):
        raise SloError(f"SLO {text!r}: the threshold must be a finite number; use one such as 0.9 or 300.")
    # the regex admits only these: rel is drop|ratio (or absent), op is >=|<=|>|<
    relation = cast(Relation, rel or "absolute")
    _check_metric(text, metric, relation)
    return SLO(metric=metric, op=cast(Op, m["op"]), threshold=threshold, relation=relation, reference=ref)


def _check_metric(text: str, metric: str, relation: Relation) -> None:
    if relation == "ratio":
        if _LATENCY.match(metric):
            raise SloError(f"SLO {text!r}: write a ratio without the unit, e.g. {metric[:-3]}_ratio_vs(bf16) (a ratio has no unit).")
        if not (_COST_UNITLESS.match(metric) or metric in _COST_OTHER.values() or metric == "tokens_per_s"):
            raise SloError(
                f"SLO {text!r}: a ratio compares costs (p95_ttft, p50_tpot, tokens_per_s, weights, peak); "
                f"for a quality metric such as {metric!r} use {metric}_drop_vs(REF)."
            )
        return
    if _COST_UNITLESS.match(metric):
        raise SloError(f"SLO {text!r}: an absolute latency needs its unit: {metric}_ms. Write that instead.")
    if metric.startswith("p") and "_" in metric and metric.endswith("_ms") and not _LATENCY.match(metric):
        raise SloError(
            f"SLO {text!r}: unknown latency metric {metric!r}; use p50, p95 or p99 of ttft, tpot, itl, e2e "
            "or tokenize, e.g. p95_ttft_ms."
        )
    if relation == "drop" and is_cost_metric(metric):
        raise SloError(
            f"SLO {text!r}: a drop compares quality scores; for a cost such as {metric!r} use a ratio, "
            f"e.g. p95_ttft_ratio_vs(bf16) <= 1.2."
        )


Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    """An SLO decided on a confidence interval, never on a point estimate alone."""

    slo: SLO
    outcome: Outcome
    value: float | None
    ci: tuple[float, float] | None
    n: int
    rule: str
    """How the outcome follows from the interval, in words."""
    needed_n: int | None = None
    """For an inconclusive verdict: roughly the n at which this interval would decide."""


def decide(
    slo: SLO, value: float | None, ci: tuple[float, float] | None, n: int, min_n: int | None = None,
    unreliable: str | None = None,
) -> Verdict:
    """Pass when the whole interval satisfies the SLO, fail when the whole interval
    violates it, inconclusive when the threshold lies inside the interval.

    With a two-sided 95% interval, a true value sitting exactly on the threshold
    fails at most 2.5% of the time: the gate does not flake on noise. A bound may
    be infinite (a p95 from 8 samples has no upper bound); ``min_n`` is then the
    fewest samples that can bound it, reported as the n needed. ``unreliable`` (the figure was
    timed on a busy machine) makes the verdict inconclusive, with that reason as its rule.
    """
    t = slo.threshold
    if unreliable is not None:
        return Verdict(slo, "inconclusive", value, ci, n, f"not evidence: {unreliable}", None)
    if value is None or ci is None:
        return Verdict(slo, "inconclusive", value, ci, n, "no interval (too few samples)", None)
    lo, hi = ci
    if slo.op in (">=", ">"):
        good, bad = slo.holds(lo), not slo.holds(hi)
        rule = f"pass if the interval's lower bound {slo.op} {t:g}; fail if its upper bound is not"
    else:
        good, bad = slo.holds(hi), not slo.holds(lo)
        rule = f"pass if the interval's upper bound {slo.op} {t:g}; fail if its lower bound is not"
    if good:
        return Verdict(slo, "pass", value, ci, n, rule)
    if bad:
        return Verdict(slo, "fail", value, ci, n, rule)
    needed = _needed_n(value, ci, n, t)
    if min_n is not None and (needed is None or needed < min_n) and not all(map(math.isfinite, ci)):
        needed = min_n
    return Verdict(slo, "inconclusive", value, ci, n, rule, needed)


def _needed_n(value: float, ci: tuple[float, float], n: int, threshold: float) -> int | None:
    # An interval's reach shrinks like 1/sqrt(n): scale n until the side facing the
    # threshold fits between the value and the threshold (if the value holds still).
    gap = abs(value - threshold)
    side = (value - ci[0]) if threshold < value else (ci[1] - value)
    if gap == 0 or side <= 0 or n <= 0 or not math.isfinite(side):
        return None
    scale = side / gap
    if scale > 1e6:  # the value sits on the threshold: no realistic n decides it
        return None
    return max(n + 1, math.ceil(n * scale**2))
