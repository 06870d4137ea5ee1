"""Which precision to ship: the cheapest one that meets every SLO *with its interval*.

Pure: run records and perf records in, frozen records out; no files (the CLI glue in
``qeval.cli_recommend`` reads and writes them).

- A :class:`Candidate` is one precision with every SLO decided on every suite it applies
  to (``qeval.gates.decide`` on ``qeval.measure`` intervals), plus the numbers it is
  ranked and plotted by.
- :func:`recommend` picks the cheapest candidate whose every verdict is ``pass``
  (an ``inconclusive`` rules a precision out just as a ``fail`` does): cheapest by
  weights bytes, then peak bytes, then USD per 1M output tokens; ties keep input order.
- :func:`pareto_frontier` is over (accuracy ↑, p95 TTFT ↓, memory ↓) on point values.

recommendation.md / .json and the table rows are rendered in ``qeval.report._recommendation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qeval.errors import UsageError
from qeval.gates import SLO, Verdict, decide, is_cost_metric

if TYPE_CHECKING:
    from qeval.perf._schema import LoadPoint, PerfRecord, PrecisionPerf
    from qeval.results import CellResult

BYTES_PER_GB = 1_000_000_000
BYTES_PER_MB = 1_000_000
PERF_KINDS = ("ttft", "tpot", "itl", "e2e")
"""Latency kinds perf.json measures (tokenize comes from the sweep only)."""


@dataclass(frozen=True)
class Check:
    """One SLO decided at one place: a suite of the sweep, or a perf load point."""

    scope: str
    """``"suite arith"``, ``"perf batch 8"``, ``"memory"``."""
    verdict: Verdict


@dataclass(frozen=True)
class Candidate:
    """One precision, its verdicts and the numbers it is ranked and plotted by."""

    precision: str
    checks: tuple[Check, ...] = ()
    weights_bytes: int | None = None
    peak_bytes: int | None = None
    usd_per_1m: float | None = None
    """USD per 1M output tokens at the goodput load (perf.json), when known."""
    accuracy: float | None = None
    """Mean primary score over suites (accuracy, or f1 on F1 suites): point value."""
    p95_latency_ms: float | None = None
    """TTFT p95: at the perf goodput point when known, else the worst suite's batch-1 p95."""
    problems: tuple[str, ...] = ()
    """Why it cannot be judged at all (a cell that failed or was skipped)."""

    @property
    def meets(self) -> bool:
        """Every verdict passes and nothing kept it from running."""
        return not self.problems and all(c.verdict.outcome == "pass" for c in self.checks)

    @property
    def memory_bytes(self) -> float:
        """Memory for the Pareto frontier: weights, else peak (``inf`` when unknown)."""
        value = self.weights_bytes if self.weights_bytes is not None else self.peak_bytes
        return float(value) if value is not None else math.inf

    def blocking(self) -> tuple[Check, ...]:
        """The checks that rule it out (fail or inconclusive)."""
        return tuple(c for c in self.checks if c.verdict.outcome != "pass")


@dataclass(frozen=True)
class Recommendation:
    chosen: str | None
    """The precision to ship, or ``None`` when none meets every SLO."""
    frontier: tuple[str, ...]
    """Precisions on the (accuracy ↑, p95 latency ↓, memory ↓) Pareto frontier, input order."""
    candidates: tuple[Candidate, ...]
    slos: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- the pure core ---------------------------------------------------------------------------


def _num(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.inf


def cost_key(c: Candidate) -> tuple[float, float, float]:
    """Cheapest first: weights bytes, then peak bytes, then USD per 1M tokens (unknown = last)."""
    return (_num(c.weights_bytes), _num(c.peak_bytes), _num(c.usd_per_1m))


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The cheapest candidate that meets every SLO (the first of equals), or ``None``."""
    meeting = [c for c in candidates if c.meets]
    return min(meeting, key=cost_key) if meeting else None


def _objectives(c: Candidate) -> tuple[float, float, float]:
    # All three minimised; an unknown value counts as the worst.
    acc = c.accuracy if c.accuracy is not None and math.isfinite(c.accuracy) else -math.inf
    return (-acc, _num(c.p95_latency_ms), c.memory_bytes)


def dominates(a: Candidate, b: Candidate) -> bool:
    """``a`` is at least as good as ``b`` on accuracy, p95 latency and memory, and better on one."""
    oa, ob = _objectives(a), _objectives(b)
    return all(x <= y for x, y in zip(oa, ob)) and any(x < y for x, y in zip(oa, ob))


def pareto_frontier(candidates: Sequence[Candidate]) -> tuple[Candidate, ...]:
    """The candidates no other candidate dominates, in input order."""
    return tuple(c for c in candidates if not any(dominates(o, c) for o in candidates if o is not c))


def recommend(candidates: Sequence[Candidate], slos: Sequence[str] = (), notes: Sequence[str] = ()) -> Recommendation:
    """Choose, and compute the frontier over the same candidates."""
    chosen = choose(candidates)
    return Recommendation(
        chosen=chosen.precision if chosen else None,
        frontier=tuple(c.precision for c in pareto_frontier(candidates)),
        candidates=tuple(candidates),
        slos=tuple(slos),
        notes=tuple(notes),
    )


# --- building candidates from a sweep (and perf.json) ----------------------------------------


@dataclass(frozen=True)
class Requirements:
    """What the user asked for, parsed."""

    slos: tuple[SLO, ...] = ()
    """SLOs for every suite they apply to."""
    suite_slos: tuple[tuple[str, SLO], ...] = ()
    """(suite, SLO): an SLO of one suite only, such as suite.yaml's own ``slos``."""
    max_drop: float | None = None
    """``--max-accuracy-drop``: the suite's primary metric may drop by at most this vs ``vs``."""
    vs: str | None = None
    memory_budget_bytes: float | None = None

    def describe(self) -> tuple[str, ...]:
        out = [str(s) for s in self.slos] + [f"{suite}: {s}" for suite, s in self.suite_slos]
        if self.max_drop is not None:
            out.append(f"primary_metric_drop_vs({self.vs}) <= {self.max_drop:g}")
        if self.memory_budget_bytes is not None:
            out.append(f"peak (else weights) <= {self.memory_budget_bytes / BYTES_PER_GB:g} GB")
        return tuple(out)


def primary_metric(cells: Sequence[CellResult]) -> str:
    """The suite's primary metric as its cells record it (suite.yaml's ``primary_metric``); for cells
    from records that did not store it, the rule used then (:func:`qeval.metric_specs.legacy_primary`)."""
    from qeval.metric_specs import suite_scoring

    return suite_scoring(cells).primary


def _applies(slo: SLO, suite_cells: Sequence[CellResult]) -> bool:
    """Costs and accuracy apply to every suite; other quality metrics where the suite declares or has them."""
    from qeval.metric_specs import suite_scoring

    if is_cost_metric(slo.metric) or slo.metric == "accuracy":
        return True
    declared = {s.name for s in suite_scoring(suite_cells).metrics}
    return slo.metric in declared or any(slo.metric in c.metrics for c in suite_cells)


def _no_interval(slo: SLO, why: str) -> Verdict:
    return Verdict(slo, "inconclusive", None, None, 0, why)


def _decide_on_cell(slo: SLO, cell: CellResult, reference: CellResult | None) -> Verdict:
    from qeval import measure

    if slo.relation != "absolute":
        if reference is None or reference.status != "ok":
            why = "no reference cell" if reference is None else f"reference {reference.precision} {reference.status}"
            return _no_interval(slo, f"cannot compare: {why} on suite {cell.suite}")
        if reference.precision == cell.precision:  # the reference against itself: exactly no change
            same = 0.0 if slo.relation == "drop" else 1.0
            return decide(slo, same, (same, same), cell.n)
    try:
        m = measure.for_slo(slo, cell, reference)
    except measure.MeasureError as exc:
        return _no_interval(slo, str(exc))
    return decide(slo, m.value, m.ci, m.n, m.min_n, m.unreliable)


def _perf_point(pp: PrecisionPerf) -> LoadPoint | None:
    """The goodput point (or batch 1, else the smallest batch) of one precision's perf."""
    points = sorted(pp.points, key=lambda p: p.batch_size)
    if not points:
        return None
    want = pp.goodput.batch_size if pp.goodput and pp.goodput.batch_size else 1
    return next((p for p in points if p.batch_size == want), points[0])


def _decide_on_perf(slo: SLO, pp: PrecisionPerf, perf_reference: str) -> Check | None:
    """A latency/throughput SLO decided on the perf goodput point; ``None``: perf cannot say."""
    from qeval import stats

    point = _perf_point(pp)
    if point is None:
        return None
    scope = f"perf batch {point.batch_size}"
    if point.status != "ok":
        return Check(scope, Verdict(slo, "fail", None, None, 0, f"{point.status}: {point.reason or 'no reason recorded'}"))
    metric = slo.metric
    if slo.relation == "absolute" and metric == "tokens_per_s":
        v = decide(slo, point.output_tokens_per_s, point.output_tokens_per_s_ci, point.requests)
        return Check(scope, v)
    parts = metric.removesuffix("_ms").split("_")
    if len(parts) != 2 or parts[1] not in PERF_KINDS or not parts[0].startswith("p"):
        return None
    if slo.relation == "absolute":
        dist = point.latency.get(parts[1])
        if dist is None:
            return None
        q = getattr(dist, parts[0])
        return Check(scope, decide(slo, q.value, q.ci, q.n, stats.min_samples_for_quantile(int(parts[0][1:]) / 100)))
    if slo.relation == "ratio" and slo.reference == perf_reference:
        if pp.precision == perf_reference:
            return Check(scope, decide(slo, 1.0, (1.0, 1.0), point.requests))
        r = next((r for r in pp.ratios if r.metric == metric and r.batch_size == point.batch_size), None)
        if r is not None:
            return Check(scope, decide(slo, r.value, r.ci, point.requests))
    return None


def _expand(req: Requirements, suites: Mapping[str, Sequence[CellResult]]) -> list[tuple[SLO, list[str]]]:
    """Each SLO with the suites it applies to; the drop sugar becomes one SLO per primary metric."""
    out: list[tuple[SLO, list[str]]] = []
    for slo in req.slos:
        names = [s for s, cells in suites.items() if _applies(slo, cells)]
        if not names:
            metrics = sorted({m for cells in suites.values() for c in cells for m in c.metrics})
            raise UsageError(
                f"SLO {slo} applies to no suite of the run: no suite has metric {slo.metric!r} "
                f"(they have accuracy{', ' + ', '.join(metrics) if metrics else ''}, latency, memory)."
            )
        out.append((slo, names))
    out += [(slo, [suite]) for suite, slo in req.suite_slos if suite in suites]
    if req.max_drop is not None:
        by_metric: dict[str, list[str]] = {}
        for s, cells in suites.items():
            by_metric.setdefault(primary_metric(cells), []).append(s)
        for metric, names in by_metric.items():
            out.append((SLO(metric, "<=", req.max_drop, "drop", req.vs), names))
    return out


def build_candidates(
    cells: Sequence[CellResult], req: Requirements, perf: Sequence[PerfRecord] = ()
) -> list[Candidate]:
    """One candidate per precision (order of first appearance), every SLO decided.

    Latency and throughput SLOs are decided on a precision's perf.json goodput point
    when one is given, else on the sweep's batch-1 timing of each suite.
    """
    precisions = list(dict.fromkeys(c.precision for c in cells))
    refs = {s.reference for s in (*req.slos, *(s for _, s in req.suite_slos)) if s.reference} | ({req.vs} if req.vs else set())
    unknown = sorted(r for r in refs if r not in precisions)
    if unknown:
        raise UsageError(
            f"Reference precision {unknown[0]!r} (from --vs or an SLO's _vs(...)) is not in the run; "
            f"it has: {', '.join(precisions) or 'no precisions'}. Use one of those."
        )
    seen: dict[tuple[str, str], CellResult] = {}
    for cell in cells:
        key = (cell.precision, cell.suite)
        if key in seen:
            raise UsageError(
                f"Precision {cell.precision!r} on suite {cell.suite!r} appears in more than one run; "
                "pass run folders whose precisions do not overlap."
            )
        seen[key] = cell
    suites: dict[str, list[CellResult]] = {}
    for cell in cells:
        suites.setdefault(cell.suite, []).append(cell)
    perf_by = {pp.precision: (pp, rec.reference) for rec in perf for pp in rec.precisions}
    expanded = _expand(req, suites)
    primaries = {s: primary_metric(cs) for s, cs in suites.items()}
    return [_candidate(p, seen, suites, primaries, expanded, perf_by.get(p), req) for p in precisions]


def _candidate(
    precision: str,
    seen: Mapping[tuple[str, str], CellResult],
    suites: Mapping[str, Sequence[CellResult]],
    primaries: Mapping[str, str],
    expanded: Sequence[tuple[SLO, list[str]]],
    perf: tuple[PrecisionPerf, str] | None,
    req: Requirements,
) -> Candidate:
    mine = [seen[(precision, s)] for s in suites if (precision, s) in seen]
    ok = [c for c in mine if c.status == "ok"]
    problems = [f"suite {c.suite}: {c.status}: {c.reason or 'no reason recorded'}" for c in mine if c.status != "ok"]
    problems += [f"suite {s}: not run at this precision" for s in suites if (precision, s) not in seen]
    pp: PrecisionPerf | None = None
    perf_label = ""
    if perf is not None and perf[0].status == "ok":
        pp, perf_label = perf
    checks: list[Check] = []
    for slo, names in expanded:
        on_perf = _decide_on_perf(slo, pp, perf_label) if pp is not None and is_cost_metric(slo.metric) else None
        if on_perf is not None:
            checks.append(on_perf)
            continue
        for s in names:
            cell = seen.get((precision, s))
            if cell is None or cell.status != "ok":
                continue  # already a problem
            ref = seen.get((slo.reference, s)) if slo.reference else None
            checks.append(Check(f"suite {s}", _decide_on_cell(slo, cell, ref)))
    weights = max((c.memory.weights_bytes for c in ok if c.memory and c.memory.weights_bytes is not None), default=None)
    peak = max((c.memory.peak_bytes for c in ok if c.memory and c.memory.peak_bytes is not None), default=None)
    p95 = max((c.latency.ttft_ms.p95 for c in ok if c.latency and c.latency.ttft_ms.p95 is not None), default=None)
    usd = None
    if pp is not None:
        weights = pp.weights_bytes if pp.weights_bytes is not None else weights
        point = _perf_point(pp)
        if point is not None and point.status == "ok":
            peak = point.peak_bytes if point.peak_bytes is not None else peak
            ttft = point.latency.get("ttft")
            p95 = ttft.p95.value if ttft is not None and ttft.p95.value is not None else p95
        usd = pp.cost.usd_per_1m_output_tokens if pp.cost else None
    if req.memory_budget_bytes is not None:
        used, what = (peak, "peak_mb") if peak is not None else (weights, "weights_mb")
        slo = SLO(what, "<=", req.memory_budget_bytes / BYTES_PER_MB)
        if used is None:
            checks.append(Check("memory", _no_interval(slo, "no memory recorded")))
        else:
            mb = used / BYTES_PER_MB
            checks.append(Check("memory", decide(slo, mb, (mb, mb), 1)))
    scores = [v for v in (_primary_value(c, primaries[c.suite]) for c in ok) if v is not None]
    return Candidate(
        precision=precision, checks=tuple(checks), weights_bytes=weights, peak_bytes=peak, usd_per_1m=usd,
        accuracy=sum(scores) / len(scores) if scores else None, p95_latency_ms=p95, problems=tuple(problems),
    )


def _primary_value(cell: CellResult, metric: str) -> float | None:
    from qeval.metric_specs import metric_value

    mv = metric_value(cell, metric)
    return mv.value if mv is not None else None
