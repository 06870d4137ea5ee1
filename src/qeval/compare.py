"""Regression comparison of two stored runs, baseline vs current. Pure: records in, records out.

Cells are matched on (suite, precision). Every delta is ``current - baseline`` and
every verdict is decided on an interval, never on a point value alone:

- **quality**: every metric the suite's scorer declares (:class:`qeval.results.MetricSpec`),
  the suite's primary metric first. One with a paired test (``accuracy``, ``f1``, ...) is
  paired on the cases both runs share (:func:`qeval.measure.drop`); a regression is a
  drop whose whole 95% interval lies above 0. The others (``unparseable_rate`` ...) are
  point values, marked worse or better by their declared direction, never a regression.
- **latency** (p50 and p95 of TTFT, TPOT and e2e): two distribution-free
  intervals of the percentile at 97.5% each, so their difference holds at 95%.
  A regression is significantly slower *and* slower by more than the tolerance.
  Only compared when the two environments match (or the caller allows it).
- **throughput** (``tokens_per_s``): two request-bootstrap intervals at 97.5%
  each; a regression is significantly lower *and* lower by more than the tolerance.
- **memory** (``weights_mb``, ``peak_mb``): exact deltas, informational only.
- A cell that was ``ok`` in the baseline and is missing, skipped or failed now is
  a regression; a cell that is new in the current run is only noted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qeval.environment import fingerprint_differences
from qeval.errors import UsageError
from qeval.measure import busy
from qeval.results import CellResult, Environment, LatencyStats, MetricSpec, RunRecord

# measure and stats pull in numpy and scipy: they are imported where used, so that
# importing qeval.report (which renders comparisons) stays light.
if TYPE_CHECKING:
    from qeval.measure import Flip, Measurement

LATENCY_KINDS: tuple[str, ...] = ("ttft", "tpot", "e2e")
LATENCY_PERCENTILES: tuple[int, ...] = (50, 95)
MISSING_STATUS = "missing"
"""The status of a cell that one of the runs does not have."""
ENV_MISMATCH_HINT = (
    "latency not compared across different environments; pass --allow-env-mismatch to compare anyway"
)
BYTES_PER_MB = 1_000_000
_NO_VALUE = "—"


@dataclass(frozen=True)
class MetricDelta:
    """One metric of one cell in both runs."""

    metric: str
    """``accuracy``, ``f1``, ``p95_ttft_ms``, ``tokens_per_s``, ``weights_mb`` ... (units in the name)."""
    baseline: float | None
    """The baseline cell's value."""
    current: float | None
    """The current cell's value."""
    delta: float | None
    """``current - baseline``; for paired quality metrics, measured on the cases both runs share."""
    ci: tuple[float, float] | None
    """95% interval of ``delta`` (``None`` when none can be made). A bound may be
    infinite: too few latency samples to bound the percentile on that side."""
    p_value: float | None
    """Two-sided p-value where the method has one (McNemar's exact test for accuracy)."""
    significant: bool | None
    """Whether ``ci`` excludes 0; ``None`` without an interval (point values only)."""
    worse: bool | None
    """Whether ``delta`` points the bad way (lower quality, slower, bigger); ``None``
    when the delta or the metric's direction is unknown."""
    regression: bool
    """Whether this delta is a regression by the rules in the module docstring."""
    method: str
    """How ``ci`` was made, in words."""
    n: int | None = None
    """Paired cases (quality) or the smaller of the two sample counts (latency)."""


@dataclass(frozen=True)
class CellComparison:
    """One (suite, precision) cell in both runs."""

    suite: str
    precision: str
    baseline_status: str
    """``ok``, ``skipped``, ``failed``, or ``missing`` (the baseline has no such cell)."""
    current_status: str
    """``ok``, ``skipped``, ``failed``, or ``missing`` (the current run has no such cell)."""
    baseline_reason: str | None = None
    """Why the baseline cell was skipped or failed."""
    current_reason: str | None = None
    """Why the current cell was skipped or failed."""
    metrics: tuple[MetricDelta, ...] = ()
    lost: tuple[Flip, ...] = ()
    """Cases that passed in the baseline and fail now (``reason``: the current failure)."""
    gained: tuple[Flip, ...] = ()
    """Cases that failed in the baseline and pass now (``reason``: the baseline failure)."""
    notes: tuple[str, ...] = ()
    """What limits this comparison (unpaired cases, changed suite content, missing samples ...)."""
    regressions: tuple[str, ...] = ()
    """One human-readable line per regression in this cell."""

    @property
    def regressed(self) -> bool:
        """Whether anything in this cell regressed."""
        return bool(self.regressions)


@dataclass(frozen=True)
class Comparison:
    """Everything :func:`compare_runs` found."""

    baseline_run_id: str
    current_run_id: str
    baseline_created_at: str
    current_created_at: str
    baseline_model: str
    """The baseline's model spec."""
    current_model: str
    """The current run's model spec."""
    baseline_environment: Environment
    """The baseline's full environment fingerprint."""
    current_environment: Environment
    """The current run's full environment fingerprint."""
    env_differences: tuple[str, ...]
    """``key: baseline != current`` for every compared fingerprint key that differs."""
    latency_compared: bool
    """Whether latency and throughput were compared (same environment, or allowed)."""
    latency_tolerance: float
    """Relative slow-down (0.10 = 10%) below which a significant latency change is not a regression."""
    notes: tuple[str, ...]
    """Run-level caveats: different model, different environment, new cells."""
    cells: tuple[CellComparison, ...]
    regressions: tuple[str, ...]
    """Every cell's regression lines, in cell order."""

    @property
    def regressed(self) -> bool:
        """Whether any cell regressed."""
        return bool(self.regressions)

    @property
    def same_model(self) -> bool:
        """Whether both runs evaluated the same model spec."""
        return self.baseline_model == self.current_model


def compare_runs(
    baseline: RunRecord,
    current: RunRecord,
    *,
    allow_env_mismatch: bool = False,
    latency_tolerance: float = 0.10,
) -> Comparison:
    """Compare ``current`` against ``baseline`` cell by cell (see the module docstring for the rules)."""
    if not (isinstance(latency_tolerance, (int, float)) and math.isfinite(latency_tolerance) and latency_tolerance >= 0):
        raise UsageError(
            f"--latency-tolerance {latency_tolerance!r}: must be a finite number >= 0 "
            "(a fraction: 0.1 allows a 10% slow-down)."
        )
    env_differences = tuple(fingerprint_differences(baseline.environment, current.environment))
    latency_compared = not env_differences or allow_env_mismatch
    notes: list[str] = []
    if baseline.model.spec != current.model.spec:
        notes.append(
            f"the model differs: baseline {baseline.model.spec!r}, current {current.model.spec!r}; "
            "every delta includes the change of model."
        )
    if env_differences and latency_compared:
        notes.append(
            f"environments differ ({'; '.join(env_differences)}); latency compared anyway "
            "(--allow-env-mismatch): a latency change may come from the machine or libraries, not the model."
        )
    elif env_differences:
        notes.append(f"environments differ ({'; '.join(env_differences)}): {ENV_MISMATCH_HINT}.")

    base_cells = {(c.suite, c.precision): c for c in baseline.cells}
    cur_cells = {(c.suite, c.precision): c for c in current.cells}
    hashes = (baseline.settings.suite_hashes, current.settings.suite_hashes)
    compared = []
    for key in dict.fromkeys([*base_cells, *cur_cells]):
        base, cur = base_cells.get(key), cur_cells.get(key)
        timed, note = _node_latency(base, cur, baseline, current, latency_compared, allow_env_mismatch)
        cell = _compare_cell(key, base, cur, hashes, timed, latency_tolerance)
        compared.append(replace(cell, notes=(*cell.notes, note)) if note else cell)
    cells = tuple(compared)
    new = [f"{s} / {p}" for (s, p) in cur_cells if (s, p) not in base_cells]
    if new:
        notes.append(f"cells only in the current run (nothing to compare against): {', '.join(new)}.")
    return Comparison(
        baseline_run_id=baseline.run_id,
        current_run_id=current.run_id,
        baseline_created_at=baseline.created_at,
        current_created_at=current.created_at,
        baseline_model=baseline.model.spec,
        current_model=current.model.spec,
        baseline_environment=baseline.environment,
        current_environment=current.environment,
        env_differences=env_differences,
        latency_compared=latency_compared,
        latency_tolerance=float(latency_tolerance),
        notes=tuple(notes),
        cells=cells,
        regressions=tuple(line for cell in cells for line in cell.regressions),
    )


# --- cells -----------------------------------------------------------------------------------


def _node_latency(base: CellResult | None, cur: CellResult | None, baseline: RunRecord, current: RunRecord,
                  run_level: bool, allow: bool) -> tuple[bool, str | None]:
    """Whether a cell's latency is compared, and why not: a cell that ran on a Ray node
    (``node``) is judged by that node's fingerprint, not by the driver's."""
    if base is None or cur is None or (base.node is None and cur.node is None):
        return run_level, None
    differences = fingerprint_differences(base.node or baseline.environment, cur.node or current.environment)
    if not differences:
        return True, None
    if allow:
        return True, (f"the machines that ran this cell differ ({'; '.join(differences)}); latency compared anyway "
                      "(--allow-env-mismatch)")
    return False, f"the machines that ran this cell differ ({'; '.join(differences)}): {ENV_MISMATCH_HINT}"



def _compare_cell(
    key: tuple[str, str],
    base: CellResult | None,
    cur: CellResult | None,
    hashes: tuple[Mapping[str, str], Mapping[str, str]],
    latency_compared: bool,
    tolerance: float,
) -> CellComparison:
    suite, precision = key
    where = f"{suite} / {precision}"
    status: dict[str, Any] = {
        "suite": suite,
        "precision": precision,
        "baseline_status": base.status if base else MISSING_STATUS,
        "current_status": cur.status if cur else MISSING_STATUS,
        "baseline_reason": base.reason if base else None,
        "current_reason": cur.reason if cur else None,
    }
    if base is None:
        return CellComparison(**status, notes=("new in the current run; nothing to compare against",))
    if cur is None or base.status != "ok" or cur.status != "ok":
        if base.status == "ok":
            now = "missing from the current run" if cur is None else f"{cur.status} now ({cur.reason or 'no reason recorded'})"
            return CellComparison(**status, regressions=(f"{where}: ok in the baseline, {now}",))
        note = f"{base.status} in the baseline ({base.reason or 'no reason recorded'}); nothing to compare against"
        return CellComparison(**status, notes=(note,))

    notes: list[str] = []
    base_hash, cur_hash = hashes[0].get(suite), hashes[1].get(suite)
    if base_hash is not None and cur_hash is not None and base_hash != cur_hash:
        notes.append(
            f"the suite's content changed (hash {base_hash} -> {cur_hash}): cases were edited, added or removed, "
            "so a quality change may come from the suite, not the model (pairing is on case ids only)."
        )
    quality, lost, gained = _quality(base, cur, notes)
    costs = _costs(base, cur, latency_compared, tolerance, notes)
    rows = (*quality, *costs)
    return CellComparison(
        **status,
        metrics=rows,
        lost=lost,
        gained=gained,
        notes=tuple(dict.fromkeys(notes)),
        regressions=tuple(regression_line(where, row, tolerance) for row in rows if row.regression),
    )


# --- quality ---------------------------------------------------------------------------------


def _quality_value(cell: CellResult, metric: str) -> float | None:
    if metric == "accuracy":
        return cell.accuracy
    mv = cell.metrics.get(metric)
    return mv.value if mv is not None else None


def _quality(
    base: CellResult, cur: CellResult, notes: list[str]
) -> tuple[list[MetricDelta], tuple[Flip, ...], tuple[Flip, ...]]:
    from qeval import measure

    try:
        ref_cases, cur_cases, pair_notes = measure.paired_cases(base, cur)
    except measure.MeasureError as exc:
        notes.append(f"{exc} Quality is compared on point values only (no interval, no verdict).")
        paired = False
        lost: tuple[Flip, ...] = ()
        gained: tuple[Flip, ...] = ()
    else:
        notes.extend(pair_notes)
        paired = True
        lost, gained = measure.flips(ref_cases, cur_cases)

    rows: list[MetricDelta] = []
    for spec in quality_specs(base, cur):
        metric = spec.name
        b, c = _quality_value(base, metric), _quality_value(cur, metric)
        if b is None or c is None:
            continue
        if not spec.paired or spec.sign == 0:
            rows.append(_point_delta(metric, b, c, spec.sign, "point values only (no paired test for this metric)"))
            continue
        if not paired:
            rows.append(_point_delta(metric, b, c, spec.sign, "point values only (no per-case results to pair)"))
            continue
        try:
            drop = measure.drop(base, cur, metric)
        except measure.MeasureError as exc:
            notes.append(str(exc))
            rows.append(_point_delta(metric, b, c, spec.sign, "point values only (no paired test possible)"))
            continue
        rows.append(_from_drop(metric, b, c, drop, spec.sign))
    return rows, lost, gained


def quality_specs(base: CellResult, cur: CellResult) -> list[MetricSpec]:
    """The quality metrics to compare, as the suite's scorer declares them: the current cell's primary
    metric first, then the current cell's other metrics, then any only the baseline declares."""
    from qeval.metric_specs import scoring_of

    now, then = scoring_of(cur), scoring_of(base)
    specs = {now.primary: now.primary_spec}
    for spec in (*now.metrics, *then.metrics):
        specs.setdefault(spec.name, spec)
    return list(specs.values())


def _from_drop(metric: str, baseline: float, current: float, drop: Measurement, sign: int = 1) -> MetricDelta:
    # measure.drop is positive when worse (reference - current, or current - reference for a
    # lower-is-better metric); a delta is current - reference.
    # 0.0 - x rather than -x: a zero drop is a delta of 0.0, not -0.0
    if sign > 0:
        delta = 0.0 - drop.value if drop.value is not None else None
        ci = (0.0 - drop.ci[1], 0.0 - drop.ci[0]) if drop.ci is not None else None
    else:
        delta, ci = drop.value, drop.ci
    return MetricDelta(
        metric=metric,
        baseline=baseline,
        current=current,
        delta=delta,
        ci=ci,
        p_value=drop.p_value,
        significant=_excludes_zero(ci),
        worse=None if drop.value is None else drop.value > 0,
        regression=drop.ci is not None and drop.ci[0] > 0,
        method=drop.method,
        n=drop.n,
    )


def _point_delta(metric: str, baseline: float | None, current: float | None, direction: int, method: str) -> MetricDelta:
    """A delta without an interval. ``direction``: +1 higher is better, -1 lower is better, 0 unknown."""
    delta = current - baseline if baseline is not None and current is not None else None
    worse = None if delta is None or direction == 0 else delta * direction < 0
    return MetricDelta(metric, baseline, current, delta, None, None, None, worse, False, method)


# --- latency, throughput, memory -------------------------------------------------------------


def _costs(
    base: CellResult, cur: CellResult, latency_compared: bool, tolerance: float, notes: list[str]
) -> list[MetricDelta]:
    rows: list[MetricDelta] = []
    moved = endpoint_change(base, cur)
    if latency_compared and moved:
        notes.append(f"latency not compared: {moved}.")
        latency_compared = False
    if latency_compared:
        untimed = [name for name, cell in (("baseline", base), ("current", cur)) if not _timed(cell)]
        if untimed:
            notes.append(f"no timed pass in the {' and '.join(untimed)} run: latency and throughput not compared.")
        else:
            lacking = [
                f"{name} ({', '.join(k for k in LATENCY_KINDS if not lat.samples_ms.get(k))})"
                for name, lat in (("baseline", _latency_of(base)), ("current", _latency_of(cur)))
                if any(not lat.samples_ms.get(k) for k in LATENCY_KINDS)
            ]
            if lacking:
                notes.append(
                    f"no raw latency samples stored in the {' and '.join(lacking)} run: those rows "
                    "compare point values only (an older record, or no request with 2+ tokens for tpot)."
                )
            timed = [_latency_delta(base, cur, kind, pct, tolerance) for kind in LATENCY_KINDS
                     for pct in LATENCY_PERCENTILES]
            timed.append(_throughput_delta(base, cur, tolerance))
            why = busy(base) or busy(cur)
            if why:  # shown, but not evidence of a regression
                notes.append(f"latency and throughput are not evidence: {why}.")
                timed = [replace(r, significant=None, regression=False, method=f"{r.method}; not evidence (busy machine)")
                         for r in timed]
            rows.extend(timed)
    rows.extend(_memory_deltas(base, cur, notes))
    return rows


def endpoint_key(cell: CellResult) -> tuple[Any, ...] | None:
    """What an endpoint's latency depends on beyond qeval: which server, serving what, measured from
    which client host (``None`` for an in-process cell, whose machine the environment fingerprint covers)."""
    import json

    endpoint = cell.precision_config.endpoint
    if endpoint is None:
        return None
    ident = endpoint.identity
    version = json.dumps(ident.version if ident else None, sort_keys=True, default=str)
    return (endpoint.url, endpoint.served_model, endpoint.revision, version, ident.server_header if ident else None,
            endpoint.client_host)


def endpoint_change(base: CellResult, cur: CellResult) -> str | None:
    """Why two cells' latencies are not comparable as endpoint measurements, or ``None``."""
    a, b = endpoint_key(base), endpoint_key(cur)
    if a == b:
        return None
    if a is None or b is None:
        return "one run measured an in-process model and the other an endpoint (the network and server are in one figure only)"
    names = ("url", "served model", "revision", "server version", "server header", "client host")
    differ = [f"{n} {x!r} -> {y!r}" for n, x, y in zip(names, a, b) if x != y]
    return "the endpoint or the client host changed (" + "; ".join(differ) + ")"


def _timed(cell: CellResult) -> bool:
    return cell.latency is not None and cell.latency.requests > 0


def _latency_of(cell: CellResult) -> LatencyStats:
    """The timed-pass statistics of a cell that :func:`_timed` accepted."""
    assert cell.latency is not None, "latency and throughput rows are built only for timed cells"
    return cell.latency


def _latency_delta(base: CellResult, cur: CellResult, kind: str, pct: int, tolerance: float) -> MetricDelta:
    from qeval import stats

    metric = f"p{pct}_{kind}_ms"
    q, confidence = pct / 100, stats.joint_confidence()
    b = getattr(getattr(base.latency, f"{kind}_ms"), f"p{pct}")
    c = getattr(getattr(cur.latency, f"{kind}_ms"), f"p{pct}")
    b_samples, c_samples = _latency_of(base).samples_ms.get(kind), _latency_of(cur).samples_ms.get(kind)
    if b is None or c is None or not b_samples or not c_samples:
        return _point_delta(metric, b, c, -1, "point values only (no raw samples to make an interval)")
    b_ci, c_ci = stats.quantile_ci(b_samples, q, confidence), stats.quantile_ci(c_samples, q, confidence)
    assert b_ci is not None and c_ci is not None, "quantile_ci is None only without samples"
    ci = (c_ci[0] - b_ci[1], c_ci[1] - b_ci[0])
    delta = c - b
    ratio = c / b if b > 0 else (math.inf if c > 0 else 1.0)
    method = (
        f"difference of two distribution-free order-statistic intervals of the p{pct} "
        f"(97.5% each; {len(b_samples)} and {len(c_samples)} samples)"
    )
    need = stats.min_samples_for_quantile(q, confidence)
    if min(len(b_samples), len(c_samples)) < need:
        method += f"; bounding a p{pct} on both sides at 97.5% needs >= {need} samples per run"
    return MetricDelta(
        metric=metric,
        baseline=b,
        current=c,
        delta=delta,
        ci=ci,
        p_value=None,
        significant=_excludes_zero(ci),
        worse=delta > 0,
        regression=ci[0] > 0 and ratio > 1 + tolerance,
        method=method,
        n=min(len(b_samples), len(c_samples)),
    )


def _throughput_delta(base: CellResult, cur: CellResult, tolerance: float) -> MetricDelta:
    from qeval import measure, stats

    metric = "tokens_per_s"
    b_lat, c_lat = _latency_of(base), _latency_of(cur)
    b, c = b_lat.output_tokens_per_s, c_lat.output_tokens_per_s
    if b is None or c is None:
        return _point_delta(metric, b, c, +1, "point values only (throughput not recorded)")
    # 97.5% each so that the difference holds at 95%, like latency.
    confidence = stats.joint_confidence()
    b_ci = measure.throughput_ci(base, confidence)
    c_ci = measure.throughput_ci(cur, confidence)
    if b_ci is None or c_ci is None:
        fewest = min(b_lat.requests, c_lat.requests)
        why = (f"fewer than {measure.MIN_REQUESTS_FOR_THROUGHPUT_CI} timed requests ({fewest}): no interval"
               if 0 < fewest < measure.MIN_REQUESTS_FOR_THROUGHPUT_CI else "per-request token counts not stored")
        return _point_delta(metric, b, c, +1, f"point values only ({why})")
    ci = (c_ci[0] - b_ci[1], c_ci[1] - b_ci[0])
    delta = c - b
    return MetricDelta(
        metric=metric,
        baseline=b,
        current=c,
        delta=delta,
        ci=ci,
        p_value=None,
        significant=_excludes_zero(ci),
        worse=delta < 0,
        regression=ci[1] < 0 and b > 0 and c / b < 1 - tolerance,
        method="difference of two request-bootstrap intervals (97.5% each)",
        n=min(b_lat.requests, c_lat.requests),
    )


def _memory_deltas(base: CellResult, cur: CellResult, notes: list[str]) -> list[MetricDelta]:
    exact = "exact: one deterministic measurement per run, no interval; informational, never a regression"
    rows = []
    bm, cm = base.memory, cur.memory
    bw = bm.weights_bytes if bm else None
    cw = cm.weights_bytes if cm else None
    if bw is not None and cw is not None:
        rows.append(_point_delta("weights_mb", bw / BYTES_PER_MB, cw / BYTES_PER_MB, -1, exact))
    bp = bm.peak_bytes if bm else None
    cp = cm.peak_bytes if cm else None
    if bm is not None and cm is not None and bp is not None and cp is not None:
        if bm.peak_kind != cm.peak_kind:
            notes.append(
                f"peak memory measured differently ({bm.peak_kind} vs {cm.peak_kind}): not compared."
            )
        else:
            rows.append(_point_delta("peak_mb", bp / BYTES_PER_MB, cp / BYTES_PER_MB, -1, exact))
    return rows


def _excludes_zero(ci: tuple[float, float] | None) -> bool | None:
    return None if ci is None else bool(ci[0] > 0 or ci[1] < 0)


# --- words -----------------------------------------------------------------------------------


def fmt_value(metric: str, value: float | None, signed: bool = False) -> str:
    """A metric's value (or delta, with ``signed``) in the precision that suits its unit;
    ``unbounded`` for an infinite interval bound, ``—`` when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NO_VALUE
    if math.isinf(value):
        return "unbounded"
    value = value + 0.0  # -0.0 reads as 0
    sign = "+" if signed else ""
    if metric.endswith("_ms"):
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:{sign},.{digits}f}"
    if metric in ("tokens_per_s", "weights_mb", "peak_mb"):
        return f"{value:{sign},.1f}"
    return f"{value:{sign}.3f}"


def fmt_ci(metric: str, ci: tuple[float, float] | None) -> str:
    """``[lo, hi]`` of a delta's interval (signed), ``—`` without one."""
    if ci is None:
        return _NO_VALUE
    return f"[{fmt_value(metric, ci[0], signed=True)}, {fmt_value(metric, ci[1], signed=True)}]"


def fmt_p(p: float | None) -> str:
    """A p-value: ``<0.001``, ``0.042``, or ``—``."""
    if p is None:
        return _NO_VALUE
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def regression_line(where: str, row: MetricDelta, tolerance: float) -> str:
    """``arith / int8: accuracy 0.800 -> 0.650, delta -0.150 (95% CI [...], p=..., n=200)``."""
    extra = []
    if row.p_value is not None:
        extra.append(f"p={fmt_p(row.p_value)}")
    if row.n is not None:
        extra.append(f"n={row.n}")
    is_cost = row.metric.endswith("_ms") or row.metric == "tokens_per_s"
    if is_cost and row.baseline and row.current is not None:
        change = (row.current / row.baseline - 1) * 100
        extra.append(f"{change:+.0f}%, tolerance {tolerance * 100:.0f}%")
    tail = ", ".join([f"95% CI {fmt_ci(row.metric, row.ci)}", *extra])
    return (
        f"{where}: {row.metric} {fmt_value(row.metric, row.baseline)} -> {fmt_value(row.metric, row.current)}, "
        f"delta {fmt_value(row.metric, row.delta, signed=True)} ({tail})"
    )
