"""PNG plots: each suite's primary metric (with its 95% interval) against latency and against weight size;
and, for report.html, a perf run's load levels (:func:`draw_perf_levels`).

One subplot per suite, one point per target; the y axis is the suite's primary metric (suite.yaml's
``primary_metric``: F1 for extraction, the pass rate elsewhere). Labels are placed so they do not
overlap (:mod:`qeval.report._labels`). matplotlib is imported only
when a plot is drawn, and only its Agg canvas is used (no pyplot, no GUI
backend, no global state).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from qeval.files import atomic_write_bytes
from qeval.metric_specs import metric_value
from qeval.report._labels import annotate_points, settle_layout
from qeval.report._table import BYTES_PER_MB, ordered_cells, suite_scorings
from qeval.results import CellResult, RunRecord, SuiteScoring

if TYPE_CHECKING:
    from qeval.perf._schema import LevelPoint, PerfRecord, PrecisionPerf

LATENCY_PLOT = "accuracy_vs_latency.png"
WEIGHTS_PLOT = "accuracy_vs_weights.png"

LATENCY_LABEL = "TTFT p95 (ms; batch 1, warm, tokenization excluded)"
WEIGHTS_LABEL = "weights as stored (MB = 10^6 bytes)"
ACCURACY_LABEL = "accuracy (pass rate, Wilson 95% CI)"
"""The y label of a suite whose scoring is unknown (no cells with it)."""

_MAX_CAPTION_ITEMS = 8


@dataclass(frozen=True)
class _Point:
    precision: str
    x: float
    y: float
    lo: float
    hi: float


_MAX_ABS = 1e100
"""Values beyond this are not measurements; matplotlib's tick locator overflows near float max."""


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plottable(value: object) -> TypeGuard[float]:
    return _finite(value) and abs(value) <= _MAX_ABS


def _ttft_p95(cell: CellResult) -> float | None:
    return cell.latency.ttft_ms.p95 if cell.latency is not None else None


def _weights_mb(cell: CellResult) -> float | None:
    if cell.memory is None or not _finite(cell.memory.weights_bytes):
        return None
    return cell.memory.weights_bytes / BYTES_PER_MB


def y_label(scoring: SuiteScoring | None) -> str:
    """``f1: entity-level micro F1 (95% CI)``: what the y axis of a suite's subplot shows."""
    if scoring is None:
        return ACCURACY_LABEL
    spec = scoring.primary_spec
    label = spec.label if spec.label.startswith(spec.name) else f"{spec.name}: {spec.label}"
    return "\n".join(textwrap.wrap(f"{label} (95% CI)", width=48))


def _collect(
    record: RunRecord, x_of: Callable[[CellResult], float | None], x_name: str
) -> tuple[dict[str, list[_Point]], list[str]]:
    """Plottable points per suite (suite order kept), y on the suite's primary metric, and a note per
    left-out cell."""
    scorings = suite_scorings(record)
    by_suite: dict[str, list[_Point]] = {}
    left_out: list[str] = []
    for cell in ordered_cells(record):
        points = by_suite.setdefault(cell.suite, [])
        where = f"{cell.precision} × {cell.suite}"
        if cell.status != "ok":
            left_out.append(f"{where}: {cell.status}")
            continue
        x = x_of(cell)
        primary = scorings[cell.suite].primary
        mv = metric_value(cell, primary)
        value = mv.value if mv is not None else None
        if not _finite(value):
            left_out.append(f"{where}: no {primary}")
            continue
        if not _finite(x):
            left_out.append(f"{where}: no {x_name}")
            continue
        if not (_plottable(x) and _plottable(value)):
            left_out.append(f"{where}: value out of range")
            continue
        y = float(value)
        lo, hi = y, y
        ci = mv.ci if mv is not None else None
        if ci is not None and len(ci) == 2 and _finite(ci[0]) and _finite(ci[1]):
            lo, hi = min(float(ci[0]), y), max(float(ci[1]), y)
        points.append(_Point(cell.precision, float(x), y, lo, hi))
    return by_suite, left_out


def _caption(left_out: list[str]) -> str:
    if not left_out:
        return "every cell is shown"
    shown = left_out[:_MAX_CAPTION_ITEMS]
    more = len(left_out) - len(shown)
    text = "left out: " + "; ".join(shown) + (f"; and {more} more" if more else "")
    return "\n".join(textwrap.wrap(text, width=110))


def _draw(
    record: RunRecord, x_of: Callable[[CellResult], float | None], x_name: str, x_label: str, title: str
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_suite, left_out = _collect(record, x_of, x_name)
    scorings = suite_scorings(record)
    suites = list(by_suite) or ["(no cells)"]
    ncols = min(len(suites), 3)
    nrows = math.ceil(len(suites) / ncols)
    fig = Figure(figsize=(4.8 * ncols, 3.8 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    precisions = list(dict.fromkeys(c.precision for c in record.cells))
    colours = {p: f"C{i % 10}" for i, p in enumerate(precisions)}
    labelled = []

    for ax, suite in zip(axes, suites):
        points = by_suite.get(suite, [])
        ax.set_title(suite, fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel(y_label(scorings.get(suite)), fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, "no plottable cells", ha="center", va="center", transform=ax.transAxes, color="0.4")
            continue
        for pt in points:
            below, above = pt.y - pt.lo, pt.hi - pt.y
            bars = [[below], [above]] if math.isfinite(below) and math.isfinite(above) else None
            ax.errorbar(
                [pt.x], [pt.y], yerr=bars,
                fmt="o", color=colours.get(pt.precision, "C0"), capsize=3, markersize=5,
            )
        xs = [pt.x for pt in points]
        right = max(xs) * 1.2
        if min(xs) >= 0 and math.isfinite(right):  # start at 0 so ratios between targets read true
            ax.set_xlim(left=0, right=right if right > 0 else 1.0)
        labelled.append((ax, points))
    for ax in axes[len(suites):]:
        ax.set_visible(False)
    fig.suptitle(f"{title} — {record.model.name} — run {record.run_id}", fontsize=10)
    fig.supxlabel(_caption(left_out), fontsize=7, color="0.3")
    settle_layout(fig)  # the layout is final now: labels are placed on it
    for ax, points in labelled:
        annotate_points(ax, [p.x for p in points], [p.y for p in points], [p.precision for p in points], drawn=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_accuracy_vs_latency(record: RunRecord, path: str | Path) -> Path:
    """Each suite's primary metric (95% CI bars) against TTFT p95 per target, one subplot per suite; PNG at ``path``."""
    png = _draw(record, _ttft_p95, "TTFT p95", LATENCY_LABEL, "primary metric vs TTFT p95")
    return atomic_write_bytes(path, png)


def plot_accuracy_vs_weights(record: RunRecord, path: str | Path) -> Path:
    """Each suite's primary metric (95% CI bars) against weights MB per target, one subplot per suite; PNG at ``path``."""
    png = _draw(record, _weights_mb, "weights size", WEIGHTS_LABEL, "primary metric vs weights size")
    return atomic_write_bytes(path, png)


def write_plots(record: RunRecord, out_dir: str | Path) -> list[Path]:
    """Both plots into ``out_dir``; returns their paths."""
    folder = Path(out_dir)
    return [
        plot_accuracy_vs_latency(record, folder / LATENCY_PLOT),
        plot_accuracy_vs_weights(record, folder / WEIGHTS_PLOT),
    ]


# --- load levels (qeval perf --concurrency/--rate/a trace) --------------------------------------

LEVELS_NOTE = (
    "Left, per target: the p95 TTFT and p95 e2e of each load level against the throughput it achieved, in "
    "level order; vertical bars are the p95's 95% distribution-free interval, horizontal bars the throughput's "
    "interval over rounds. A dashed arrow marks a side the samples cannot bound (fewer than 72 successful "
    "requests bound no p95 from above). Ringed (left) and shaded (right): the saturation point; dotted lines: "
    "the p95 TTFT/e2e SLOs. "
    "Right: requests/s per level, offered (the schedule's), achieved and goodput (requests within every "
    "latency SLO), each with its interval over rounds."
)
_LEVEL_SERIES = (("ttft", "p95 TTFT", "o", "C0"), ("e2e", "p95 e2e", "s", "C1"))
_LOG_SPREAD = 20.0
"""A latency panel whose values span more than this factor gets a log y axis."""


@dataclass(frozen=True)
class _LevelPoint:
    label: str
    x: float
    x_ci: tuple[float, float] | None
    y: float
    y_ci: tuple[float, float] | None
    saturation: bool
    shape: str
    """The level's kind (concurrency, rate, replay): only levels of one kind are joined by a line."""


def _interval(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    return ci if ci is not None and len(ci) == 2 and not any(math.isnan(b) for b in ci) else None


_Rate = Callable[["LevelPoint"], tuple[float | None, tuple[float, float] | None]]
"""A level's rate and its interval over rounds."""


def _throughput_axis(levels: Sequence[LevelPoint]) -> tuple[str, _Rate]:
    """Output tokens/s when every served level counted tokens, else requests/s."""
    ok = [p for p in levels if p.status == "ok"]
    if ok and all(_plottable(p.output_tokens_per_s) and p.output_tokens_per_s > 0 for p in ok):
        return "achieved output tokens/s", lambda p: (p.output_tokens_per_s, p.output_tokens_per_s_ci)
    return "achieved requests/s", lambda p: (p.requests_per_s, p.requests_per_s_ci)


def _latency_points(perf: PrecisionPerf, kind: str) -> tuple[list[_LevelPoint], list[str]]:
    """The plottable levels of one latency kind, and a note per level left out."""
    _, x_of = _throughput_axis(perf.levels)
    points, left_out = [], []
    for level in perf.levels:
        dist = level.latency.get(kind) if level.status == "ok" else None
        x, x_ci = x_of(level)
        y = dist.p95.value if dist is not None else None
        if not (_plottable(x) and _plottable(y)):
            left_out.append(f"{level.label} ({level.status if level.status != 'ok' else 'no ' + kind})")
            continue
        points.append(_LevelPoint(level.label, float(x), _interval(x_ci), float(y),
                                  _interval(dist.p95.ci) if dist is not None else None, level.label == perf.saturation,
                                  level.level.kind))
    return points, left_out


def _slo_thresholds(perf: PerfRecord) -> dict[str, list[tuple[str, float]]]:
    """kind -> (SLO text, threshold ms) for every absolute p95 TTFT/e2e SLO of the run."""
    from qeval.errors import QevalError
    from qeval.perf import parse_perf_slos

    try:
        slos = parse_perf_slos(perf.slos)
    except QevalError:  # a perf.json written with SLOs this version no longer reads: no lines
        return {}
    out: dict[str, list[tuple[str, float]]] = {}
    for slo in slos:
        kind = {"p95_ttft_ms": "ttft", "p95_e2e_ms": "e2e"}.get(slo.metric)
        if kind is not None and slo.relation == "absolute":
            out.setdefault(kind, []).append((str(slo), slo.threshold))
    return out


def _vertical_interval(ax, x: float, y: float, ci: tuple[float, float] | None, colour: str, log: bool) -> bool:
    """A point's vertical interval: solid where bounded, a dashed arrow on a side the samples cannot
    bound (clipped, so the axis keeps its scale). Returns whether a side was unbounded."""
    if ci is None:
        return False
    lo, hi = ci
    lo_ok = _plottable(lo) and (lo > 0 or not log)
    hi_ok = _plottable(hi)
    style = {"color": colour, "alpha": 0.7, "lw": 1.2}
    if lo_ok and hi_ok:
        ax.errorbar([x], [y], yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]], fmt="none", ecolor=colour, capsize=3,
                    alpha=0.7)
        return False
    up = y * 1.6 if log else y + max(0.25 * abs(y), 1e-9)
    down = y / 1.6 if log else y - max(0.25 * abs(y), 1e-9)
    if lo_ok:
        ax.errorbar([x], [y], yerr=[[max(y - lo, 0.0)], [0.0]], fmt="none", ecolor=colour, capsize=3, alpha=0.7)
    else:
        ax.plot([x, x], [y, down], linestyle="--", **style)
        ax.plot([x], [down], marker="v", markersize=4, **style)
    if hi_ok:
        ax.errorbar([x], [y], yerr=[[0.0], [max(hi - y, 0.0)]], fmt="none", ecolor=colour, capsize=3, alpha=0.7)
    else:
        ax.plot([x, x], [y, up], linestyle="--", **style)
        ax.plot([x], [up], marker="^", markersize=4, **style)
    return True


def _draw_curve(ax, perf: PrecisionPerf, slos: dict[str, list[tuple[str, float]]]) -> tuple[list[_LevelPoint], bool]:
    """One target's latency–throughput curve; the points to label and whether a bound was clipped."""
    x_label, _ = _throughput_axis(perf.levels)
    series = {kind: _latency_points(perf, kind) for kind, *_ in _LEVEL_SERIES}
    ys = [p.y for pts, _ in series.values() for p in pts] + [t for lines in slos.values() for _, t in lines]
    log = bool(ys) and min(ys) > 0 and max(ys) / min(ys) > _LOG_SPREAD
    if log:
        ax.set_yscale("log")
    clipped, ringed, labelled = False, False, []
    for kind, name, marker, colour in _LEVEL_SERIES:
        points, _ = series[kind]
        for shape in dict.fromkeys(p.shape for p in points):  # in level order, within one kind of load
            run = [p for p in points if p.shape == shape]
            ax.plot([p.x for p in run], [p.y for p in run], color=colour, lw=1.0)
        if points:
            ax.plot([p.x for p in points], [p.y for p in points], marker=marker, color=colour, linestyle="none",
                    label=name)
        for p in points:
            if p.x_ci is not None and _plottable(p.x_ci[0]) and _plottable(p.x_ci[1]):
                ax.errorbar([p.x], [p.y], xerr=[[max(p.x - p.x_ci[0], 0.0)], [max(p.x_ci[1] - p.x, 0.0)]],
                            fmt="none", ecolor=colour, capsize=3, alpha=0.5)
            clipped |= _vertical_interval(ax, p.x, p.y, p.y_ci, colour, log)
            if p.saturation:
                ax.scatter([p.x], [p.y], s=260, facecolors="none", edgecolors="black", linewidths=1.6, zorder=4,
                           label=None if ringed else "saturation point")
                ringed = True
        labelled += points
        for text, threshold in slos.get(kind, []):
            ax.axhline(threshold, color=colour, linestyle=":", lw=1.3, label=f"SLO {text}")
    left_out = sorted({note for _, notes in series.values() for note in notes})
    ax.set_title(f"{perf.precision}: latency vs throughput per load level", fontsize=10)
    ax.set_xlabel(x_label + ("\nleft out: " + ", ".join(left_out) if left_out else ""), fontsize=8)
    ax.set_ylabel("p95 latency (ms)" + (", log scale" if log else ""), fontsize=8)
    ax.grid(True, alpha=0.3, which="both" if log else "major")
    if labelled:
        reach = [p.x for p in labelled] + [p.x_ci[1] for p in labelled if p.x_ci and _plottable(p.x_ci[1])]
        ax.set_xlim(left=0, right=max(reach) * 1.1 or 1.0)
    else:
        ax.text(0.5, 0.5, "no level served", ha="center", va="center", transform=ax.transAxes, color="0.4")
    return labelled, clipped


def _draw_rates(ax, perf: PrecisionPerf) -> None:
    """Offered, achieved and goodput requests/s per level (categorical x, in the order given)."""
    levels = perf.levels
    xs = list(range(len(levels)))
    ticks = [p.label if p.status == "ok" else f"{p.label}\n({p.status})" for p in levels]
    crowded = len(levels) > 4 or max(map(len, ticks), default=0) > 10
    ax.set_xticks(xs, ticks, fontsize=8, rotation=25 if crowded else 0, ha="right" if crowded else "center")
    series = [("achieved req/s", "o", "C0", lambda p: (p.requests_per_s, p.requests_per_s_ci))]
    if any(p.good_requests is not None for p in levels):
        series.append(("goodput req/s", "D", "C2", lambda p: (p.goodput_requests_per_s, p.goodput_requests_per_s_ci)))
    for name, marker, colour, value_of in series:
        shown = [(i, *value_of(p)) for i, p in zip(xs, levels) if p.status == "ok" and _plottable(value_of(p)[0])]
        if shown:
            ax.plot([i for i, *_ in shown], [v for _, v, _ in shown], marker=marker, color=colour, lw=1.0, label=name)
        for i, value, ci in shown:
            _vertical_interval(ax, i, value, _interval(ci), colour, log=False)
    offered = [(i, p.offered_requests_per_s) for i, p in zip(xs, levels) if _plottable(p.offered_requests_per_s)]
    if offered:
        ax.plot([i for i, _ in offered], [v for _, v in offered], marker="x", color="0.4", lw=0, label="offered req/s")
    at = next((i for i, p in zip(xs, levels) if p.label == perf.saturation), None)
    if at is not None:
        ax.axvspan(at - 0.35, at + 0.35, color="0.88", zorder=0, label="saturation point (level)")
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{perf.precision}: requests/s per load level", fontsize=10)
    ax.set_xlabel("load level", fontsize=8)
    ax.set_ylabel("requests/s", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _figure_legend(fig) -> None:
    """One legend for every panel, above them (each series once), so no panel's labels can run into it."""
    handles: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside upper center", ncol=min(len(handles), 5),
                   fontsize=8, frameon=False)


def draw_perf_levels(perf: PerfRecord):
    """The load levels of ``perf`` as a matplotlib Figure (Agg canvas): one row per target with its
    latency–throughput curve (left) and its requests/s per level (right); see :data:`LEVELS_NOTE`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    targets = [pp for pp in perf.precisions if pp.levels] or list(perf.precisions[:1])
    fig = Figure(figsize=(11.5, 4.6 * max(len(targets), 1) + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(targets), 1), 2, squeeze=False)
    slos = _slo_thresholds(perf)
    labelled, clipped = [], False
    for (curve, rates), pp in zip(axes, targets):
        points, was_clipped = _draw_curve(curve, pp, slos)
        clipped |= was_clipped
        labelled.append((curve, points))
        _draw_rates(rates, pp)
    _figure_legend(fig)
    if clipped:
        fig.supxlabel("dashed arrows: a p95 bound the samples cannot support (drawn clipped)", fontsize=7, color="0.3")
    settle_layout(fig)  # the layout is final: labels are placed on it
    for ax, points in labelled:
        annotate_points(ax, [p.x for p in points], [p.y for p in points], [p.label for p in points], drawn=True)
    return fig
