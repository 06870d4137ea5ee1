"""PNG plots: each suite's primary metric (with its 95% interval) against latency and against weight size.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from qeval.files import atomic_write_bytes
from qeval.metric_specs import metric_value
from qeval.report._labels import annotate_points
from qeval.report._table import BYTES_PER_MB, ordered_cells, suite_scorings
from qeval.results import CellResult, RunRecord, SuiteScoring

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
    fig.canvas.draw()  # the layout is final now: labels are placed on it
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
