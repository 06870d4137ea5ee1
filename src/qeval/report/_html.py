"""report.html: one self-contained page (no external URLs). It opens with the decision the run
supports (:mod:`qeval.report._decision`), then the target table led by each suite's primary metric,
plots as PNG data URIs (the Pareto plot with intervals on both axes and labels that do not overlap),
per-suite intervals, endpoint measurement, perf latency distributions and the flipped cases.

Every model text (prompts, completions, expected answers, reasons) is untrusted and goes
through Jinja2's autoescape. A plot that cannot be drawn becomes a note in its section;
the rest of the page is still written.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qeval.files import atomic_write_text
from qeval.report._labels import annotate_points, settle_layout
from qeval.report._plots import LATENCY_LABEL, _collect, _finite, _plottable, _ttft_p95, _weights_mb, y_label
from qeval.report._table import BUSY_MARK, COLUMNS, fmt_mb, metric_legend, ordered_cells, suite_scorings, table_rows
from qeval.results import CellResult, RunRecord

if TYPE_CHECKING:
    from qeval.perf._schema import PerfRecord
    from qeval.recommend import Recommendation

HTML_FILE = "report.html"
PARETO_NOTE = (
    "Vertical bars: the 95% interval of the suite's primary metric. Horizontal bars: the 95% distribution-free "
    "(order-statistic) interval of the TTFT p95 from the cell's timed requests, not a bootstrap, which could never "
    "reach past the slowest request. A dashed arrow marks a side the timed requests cannot bound: with fewer than "
    "72 of them nothing bounds a p95 from above. Labels marked (busy!) were timed while the machine was busy with "
    "other work."
)
MAX_TEXT_CHARS = 4000
"""Longer completions are cut (the full text is in samples.jsonl)."""


@dataclass(frozen=True)
class Plot:
    title: str
    data_uri: str | None
    error: str | None = None


@dataclass(frozen=True)
class FlipRow:
    case_id: str
    expected: str
    reference_completion: str
    completion: str
    reason: str


@dataclass(frozen=True)
class FlipGroup:
    precision: str
    reference: str
    lost: tuple[FlipRow, ...]
    gained: tuple[FlipRow, ...]
    note: str = ""


@dataclass(frozen=True)
class SuiteFlips:
    suite: str
    groups: tuple[FlipGroup, ...]


# --- plots -----------------------------------------------------------------------------------


def _figure(ncols: int, nrows: int = 1, width: float = 4.8, height: float = 3.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _png_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot(title: str, draw: Callable[[], Any]) -> Plot:
    import numpy as np

    try:
        with np.errstate(all="ignore"):  # autoscaling values near 1e100 overflows harmlessly
            return Plot(title, _png_uri(draw()))
    except Exception as exc:  # noqa: BLE001 - a plot must never cost the page
        return Plot(title, None, f"{type(exc).__name__}: {exc}")


def _colours(record: RunRecord) -> dict[str, str]:
    return {p: f"C{i % 10}" for i, p in enumerate(dict.fromkeys(c.precision for c in record.cells))}


def _latency_ci(cell: CellResult) -> tuple[float, float] | None:
    """The TTFT p95's 95% distribution-free interval (a bound may be infinite); ``None`` without samples."""
    from qeval import measure

    try:
        ci = measure.absolute(cell, "p95_ttft_ms").ci
    except measure.MeasureError:
        return None
    return ci if ci is not None and not any(math.isnan(b) for b in ci) else None


def _busy(cell: CellResult) -> bool:
    bg = cell.latency.background if cell.latency is not None else None
    return bg is not None and bg.busy


def _weights_bytes(cell: CellResult) -> int | None:
    return cell.memory.weights_bytes if cell.memory else None


def _latency_bar(ax, x: float, y: float, ci: tuple[float, float] | None, colour: str) -> None:
    """The horizontal interval of a TTFT p95: solid where bounded; a dashed arrow on a side the
    timed requests cannot bound (with few samples nothing bounds a p95 from above)."""
    if ci is None:
        return
    lo, hi = ci
    style = {"color": colour, "alpha": 0.7, "lw": 1.2}
    if _plottable(lo) and _plottable(hi):
        ax.errorbar([x], [y], xerr=[[x - lo], [hi - x]], fmt="none", ecolor=colour, capsize=3, alpha=0.7)
        return
    if _plottable(lo):
        ax.plot([lo, x], [y, y], **style)
        ax.plot([lo], [y], marker="|", markersize=6, **style)
    reach = max(x - lo if _plottable(lo) else 0.0, 0.25 * abs(x), 1e-9)
    if not _plottable(hi):
        ax.plot([x, x + reach], [y, y], linestyle="--", **style)
        ax.plot([x + reach], [y], marker=">", markersize=4, **style)
    if not _plottable(lo):
        ax.plot([x - reach, x], [y, y], linestyle="--", **style)
        ax.plot([x - reach], [y], marker="<", markersize=4, **style)


def _draw_pareto(record: RunRecord):
    from qeval.recommend import Candidate, pareto_frontier
    from qeval.report._nodes import node_numbers

    by_suite, _ = _collect(record, _ttft_p95, "TTFT p95")  # y: each suite's primary metric
    nodes = node_numbers(record)  # cells timed on machines that do not compare: labelled, no frontier
    scorings = suite_scorings(record)
    suites = list(by_suite) or ["(no cells)"]
    fig, axes = _figure(min(len(suites), 3), math.ceil(len(suites) / 3), width=6.0 if len(suites) == 1 else 4.8)
    cells = {(c.precision, c.suite): c for c in record.cells}
    colours = _colours(record)
    labelled = []
    for ax, suite in zip(axes, suites):
        points = by_suite.get(suite, [])
        ax.set_title(suite, fontsize=10)
        ax.set_xlabel(LATENCY_LABEL, fontsize=8)
        ax.set_ylabel(y_label(scorings.get(suite)), fontsize=8)
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, "no plottable cells", ha="center", va="center", transform=ax.transAxes, color="0.4")
            continue
        cands = [
            Candidate(p.precision, accuracy=p.y, p95_latency_ms=p.x,
                      weights_bytes=_weights_bytes(cells[(p.precision, suite)]))
            for p in points
        ]
        front = set() if nodes else {c.precision for c in pareto_frontier(cands)}
        biggest = max((_weights_mb(cells[(q.precision, suite)]) or 0.0) for q in points) or 1.0
        labels = []
        for pt in points:
            cell = cells[(pt.precision, suite)]
            colour = colours.get(pt.precision, "C0")
            mb = _weights_mb(cell)
            ax.errorbar([pt.x], [pt.y], yerr=[[pt.y - pt.lo], [pt.hi - pt.y]], fmt="none", ecolor=colour,
                        capsize=3, alpha=0.7)
            _latency_bar(ax, pt.x, pt.y, _latency_ci(cell), colour)
            size = 30 + 170 * (mb / biggest) if mb else 30
            ax.scatter([pt.x], [pt.y], s=size, color=colour, edgecolors="black" if pt.precision in front else "none",
                       linewidths=1.5, zorder=3)
            node = nodes.get((pt.precision, suite))
            labels.append(pt.precision + (f" ({fmt_mb(_weights_bytes(cell))} MB)" if mb else "")
                          + (f" [node {node}]" if node else "")
                          + (" *" if pt.precision in front else "") + (BUSY_MARK if _busy(cell) else ""))
        if min(p.x for p in points) >= 0:  # from 0, so that ratios between targets read true
            ax.set_xlim(left=0)
        labelled.append((ax, points, labels))
    for ax in axes[len(suites):]:
        ax.set_visible(False)
    fig.suptitle("marker area ∝ weights MB; [node k]: timed on node k (see Nodes), latencies of different "
                 "nodes do not compare, so no frontier is drawn" if nodes else
                 "marker area ∝ weights MB; outlined, * = Pareto frontier", fontsize=9)
    settle_layout(fig)  # the layout is final: labels are placed on it
    for ax, points, labels in labelled:
        annotate_points(ax, [p.x for p in points], [p.y for p in points], labels, drawn=True)
    return fig


def _draw_suite_intervals(record: RunRecord):
    from qeval.metric_specs import metric_value

    scorings = suite_scorings(record)
    suites = list(dict.fromkeys(c.suite for c in record.cells)) or ["(no cells)"]
    fig, axes = _figure(min(len(suites), 3), math.ceil(len(suites) / 3), height=0.5 + 0.45 * max(
        1, len({c.precision for c in record.cells})) + 1.2)
    colours = _colours(record)
    for ax, suite in zip(axes, suites):
        cells = [c for c in ordered_cells(record) if c.suite == suite]
        metric = scorings[suite].primary if suite in scorings else "accuracy"
        ax.set_title(f"{suite} — {metric} (95% CI)", fontsize=10)
        ax.set_xlim(-0.03, 1.03)
        ax.grid(True, axis="x", alpha=0.3)
        labels = []
        for i, cell in enumerate(cells):
            labels.append(cell.precision if cell.status == "ok" else f"{cell.precision} ({cell.status})")
            mv = metric_value(cell, metric)
            value, ci = (mv.value, mv.ci) if mv is not None else (None, None)
            if cell.status != "ok" or not _plottable(value):
                continue
            ok_ci = ci is not None and len(ci) == 2 and all(map(_plottable, ci)) and ci[0] <= value <= ci[1]
            xerr = [[value - ci[0]], [ci[1] - value]] if ci is not None and ok_ci else None
            ax.errorbar([value], [i], xerr=xerr, fmt="o", color=colours.get(cell.precision, "C0"), capsize=4)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
    for ax in axes[len(suites):]:
        ax.set_visible(False)
    return fig


def _draw_perf(perf: PerfRecord):
    from qeval.perf._levels_markdown import has_levels
    from qeval.report._plots import draw_perf_levels

    if has_levels(perf):
        return draw_perf_levels(perf)
    batches = list(perf.batch_sizes) or sorted({p.batch_size for pp in perf.precisions for p in pp.points})
    fig, axes = _figure(min(len(batches), 3) or 1, math.ceil(max(len(batches), 1) / 3))
    for ax, batch in zip(axes, batches):
        ax.set_title(f"batch {batch}: TTFT per precision", fontsize=10)
        ax.set_ylabel("TTFT (ms)", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        data, labels = [], []
        for pp in perf.precisions:
            point = next((p for p in pp.points if p.batch_size == batch), None)
            if point is None:
                continue
            dist = point.latency.get("ttft") if point.status == "ok" else None
            samples = [s for s in (dist.samples_ms if dist else ()) if _finite(s)]
            if not samples and dist is not None:
                samples = [q.value for q in (dist.p50, dist.p95, dist.p99) if _finite(q.value)]
            labels.append(pp.precision if samples else f"{pp.precision}\n({point.status})")
            data.append(samples or [math.nan])
        if data:
            ax.boxplot(data, showfliers=True)
            ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
            if all(math.isnan(d[0]) for d in data):
                ax.text(0.5, 0.5, "no precision served this batch", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")
                ax.set_yticks([])
        else:
            ax.text(0.5, 0.5, "no load point", ha="center", va="center", transform=ax.transAxes, color="0.4")
    for ax in axes[len(batches):]:
        ax.set_visible(False)
    return fig


# --- flips -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    s = "—" if value is None else str(value)
    return s if len(s) <= MAX_TEXT_CHARS else s[:MAX_TEXT_CHARS] + f" … ({len(s) - MAX_TEXT_CHARS} more characters in samples.jsonl)"


def _rows(flips: Sequence[Any]) -> tuple[FlipRow, ...]:
    return tuple(
        FlipRow(f.case_id, _text(f.expected), _text(f.reference_completion), _text(f.completion), _text(f.reason))
        for f in flips
    )


def suite_flips(record: RunRecord) -> list[SuiteFlips]:
    """Per suite: the cases each precision flipped against the suite's first precision that ran."""
    from qeval import measure

    out = []
    for suite in dict.fromkeys(c.suite for c in record.cells):
        cells = [c for c in ordered_cells(record) if c.suite == suite and c.status == "ok" and c.cases]
        if len(cells) < 2:
            continue
        ref, groups = cells[0], []
        for cell in cells[1:]:
            try:
                r, c, notes = measure.paired_cases(ref, cell)
            except measure.MeasureError as exc:
                groups.append(FlipGroup(cell.precision, ref.precision, (), (), str(exc)))
                continue
            lost, gained = measure.flips(r, c)
            groups.append(FlipGroup(cell.precision, ref.precision, _rows(lost), _rows(gained), "; ".join(notes)))
        out.append(SuiteFlips(suite, tuple(groups)))
    return out


# --- page ------------------------------------------------------------------------------------

_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.notok td { color: #888; }
td pre { white-space: pre-wrap; margin: 0; max-width: 40em; font-size: 0.95em; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: 0.9em; }
.good { color: #07622b; font-weight: bold; } .bad { color: #a01010; font-weight: bold; }
details { margin: 0.3em 0 0.6em; } summary { cursor: pointer; }
.verdict { border: 3px solid #888; background: #f6f6f6; border-radius: 6px; padding: 0.4em 1.2em 0.8em; margin: 1em 0 1.5em; }
.verdict h2 { margin: 0.3em 0; } .verdict .headline { font-size: 1.25em; font-weight: bold; margin: 0.4em 0; }
.verdict.chosen { border-color: #07622b; background: #eef8f0; } .verdict.undecided { border-color: #b8860b; background: #fff8e6; }
.verdict.none_meets { border-color: #a01010; background: #fdeeee; }
.verdict li { margin: 0.2em 0; font-family: ui-monospace, monospace; font-size: 0.85em; }
</style>"""

_PERF_SECTION = """{% if perf %}
<section id="perf"><h2>Load profile ({{ perf.device }})</h2>
{% if perf_plot.data_uri %}<img alt="{{ perf_plot.title }}" src="{{ perf_plot.data_uri }}">
{% else %}<p class="bad">plot not drawn ({{ perf_plot.error }}).</p>{% endif %}
{% if levels %}<p class="note">{{ levels.note }}</p>
{% if perf.load %}<p class="note">Load: {{ perf.load.workload }}; levels {% for lv in perf.load.levels %}{{ lv.label }}{% if not loop.last %}, {% endif %}{% endfor %}. Prefix cache: {{ levels.prefix_cache }}</p>{% endif %}
{% if perf.slos %}<p class="note">SLOs (decided on 95% intervals): {% for s in perf.slos %}<code>{{ s }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
{% for pp in perf.precisions %}<h3>{{ pp.precision }}</h3>
{% if pp.levels %}<table class="levels"><tr>{% for h in levels.columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for p in pp.levels %}<tr class="{{ 'notok' if p.status != 'ok' else '' }}">{% for v in levels.cells(p, pp.saturation) %}<td>{% if p.label == pp.saturation and loop.first %}<b>{{ v }}</b>{% else %}{{ v }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if perf.slos %}<p>{{ levels.saturation_line(pp) }}</p>{% endif %}
{% for p in pp.levels if p.client and p.client.flagged %}<p class="bad">client flagged at {{ p.label }}: {{ p.client.reason }}</p>{% endfor %}
{% else %}<p class="bad">{{ pp.status }}{% if pp.reason %}: {{ pp.reason }}{% endif %}</p>{% endif %}
{% endfor %}
{% else %}
<table><tr><th>target</th><th>batch</th><th>status</th><th>TTFT p50 / p95 ms</th><th>output tok/s</th><th>peak MB</th></tr>
{% for pp in perf.precisions %}{% for p in pp.points %}
<tr class="{{ '' if p.status == 'ok' else 'notok' }}"><td>{{ pp.precision }}</td><td>{{ p.batch_size }}</td>
<td>{{ p.status }}{% if p.reason %}: {{ p.reason }}{% endif %}</td>
<td>{{ fmt_q(p, 'p50') }} / {{ fmt_q(p, 'p95') }}</td><td>{{ fmt_num(p.output_tokens_per_s) }}</td>
<td>{{ fmt_mb(p.peak_bytes) }}</td></tr>
{% endfor %}{% endfor %}
</table>{% endif %}</section>
{% endif %}
"""

_PERF_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>qeval perf {{ perf.run_id }}</title>
{% include "style" %}</head><body>
<h1>qeval perf — {{ perf.model }}</h1>
<p class="note">run {{ perf.run_id }} · {{ perf.created_at }} · reference target {{ perf.reference }}</p>
{% include "perf" %}
</body></html>
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>qeval report {{ record.run_id }}</title>
{% include "style" %}</head><body>
<h1>qeval report — {{ record.model.name }}</h1>
<p class="note">run {{ record.run_id }} · {{ record.created_at }} · model {{ record.model.spec }}
 · source precision {{ record.model.source_precision }}</p>

<section id="verdict" class="verdict {{ decision.kind }}"><h2>Decision</h2>
<p class="headline">{{ decision.headline }}</p>
{% if decision.reasons %}<ul>{% for r in decision.reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
{% if decision.slos %}<p class="note">Decided on {{ decision.slo_source }}: {% for s in decision.slos %}<code>{{ s }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.
Every verdict is on a 95% interval: pass when all of it meets the threshold, fail when none of it does, undecided when the threshold lies inside it.</p>{% endif %}
{% for n in decision.notes %}<p class="note">{{ n }}</p>{% endfor %}
</section>

{% if recommendation %}
<section id="recommendation"><h2>Recommendation</h2>
<p class="{{ 'good' if recommendation.chosen else 'bad' }}">{{ rec_headline }}</p>
<p>SLOs: {% for s in recommendation.slos %}<code>{{ s }}</code>{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}</p>
<table><tr>{% for h in rec_columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rec_rows %}<tr>{% for v in row %}<td><pre>{{ v }}</pre></td>{% endfor %}</tr>{% endfor %}
</table></section>
{% endif %}

<section id="targets-table"><h2>Targets</h2>
<table><tr>{% for h in columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr class="{{ '' if row.ok else 'notok' }}">{% for v in row.cells() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
<ul class="note">{% for line in legend %}<li>{{ line }}</li>{% endfor %}</ul>
<p class="note">Each row leads with its suite's primary metric (suite.yaml's <code>primary_metric</code>) and its 95% interval;
the pass rate (Wilson 95% interval) follows, labelled. Latency: batch 1, warm, n = timed requests{% if busy %};
<code>{{ busy_mark }}</code>: the machine was busy with other work while it was timed (not evidence){% endif %}.</p>
</section>

{% for section_id, heading, plot, note in plots %}
<section id="{{ section_id }}"><h2>{{ heading }}</h2>
{% if plot.data_uri %}<img alt="{{ plot.title }}" src="{{ plot.data_uri }}">
{% else %}<p class="bad">plot not drawn ({{ plot.error }}); the rest of the report is complete.</p>{% endif %}
{% if note %}<p class="note">{{ note }}</p>{% endif %}
</section>
{% endfor %}

{% if endpoint_rows %}
<section id="endpoint-measurement"><h2>Endpoint measurement</h2>
<table><tr>{% for h in endpoint_columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in endpoint_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
<p class="note">{{ endpoint_note }}</p>
</section>
{% endif %}

{% if server_rows %}
<section id="servers"><h2>Servers qeval started</h2>
<table><tr>{% for h in server_columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in server_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
<details><summary>Command lines</summary><ul>{% for name, command in server_commands %}<li><code>{{ name }}</code>: <code>{{ command }}</code></li>{% endfor %}</ul></details>
</section>
{% endif %}

{% if agreement_rows %}
<section id="agreement"><h2>Same model, served two ways</h2>
<table><tr>{% for h in agreement_columns %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in agreement_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
<p class="note">Greedy completions compared case by case on the cases both answered.</p>
</section>
{% endif %}

{% include "perf" %}

<section id="flips"><h2>Flipped cases</h2>
<p class="note">Per suite, against the first target that ran on it. Model text is shown escaped, as written.</p>
{% for sf in flips %}
<section class="suite-flips" id="flips-{{ loop.index }}" data-suite="{{ sf.suite }}"><h3>{{ sf.suite }}</h3>
{% for g in sf.groups %}
<details><summary>{{ g.precision }} vs {{ g.reference }}: {{ g.lost|length }} lost (passed in {{ g.reference }}), {{ g.gained|length }} gained{% if g.note %} — {{ g.note }}{% endif %}</summary>
{% for title, rows in (('lost', g.lost), ('gained', g.gained)) %}{% if rows %}
<table><caption>{{ title }}</caption><tr><th>case</th><th>expected</th><th>{{ g.reference }} completion</th><th>{{ g.precision }} completion</th><th>reason</th></tr>
{% for r in rows %}<tr><td>{{ r.case_id }}</td><td><pre>{{ r.expected }}</pre></td><td><pre>{{ r.reference_completion }}</pre></td><td><pre>{{ r.completion }}</pre></td><td><pre>{{ r.reason }}</pre></td></tr>{% endfor %}
</table>{% endif %}{% endfor %}
</details>
{% endfor %}
</section>
{% else %}<p class="note">No suite ran on two or more targets with per-case results.</p>
{% endfor %}
</section>
</body></html>
"""


def _fmt_q(point: Any, which: str) -> str:
    dist = point.latency.get("ttft") if point.latency else None
    value = getattr(dist, which).value if dist is not None else None
    return f"{value:,.1f}" if _finite(value) else "—"


def _fmt_num(value: float | None) -> str:
    return f"{value:,.1f}" if _finite(value) else "—"


def _fmt_mb(value: float | None) -> str:
    return f"{value / 1e6:,.1f}" if _finite(value) else "—"


@dataclass(frozen=True)
class _LevelsView:
    """What the perf section needs to show load levels: perf.md's per-level table, cell for cell."""

    columns: list[str]
    cells: Callable[[Any, str | None], list[str]]
    saturation_line: Callable[[Any], str]
    prefix_cache: str
    note: str


def _levels_context(perf: PerfRecord) -> _LevelsView | None:
    from qeval.perf._levels_markdown import (
        has_levels,
        level_cells,
        level_columns,
        prefix_cache_note,
        saturation_line,
    )
    from qeval.report._plots import LEVELS_NOTE

    if not has_levels(perf):
        return None
    with_slos = bool(perf.slos)
    return _LevelsView(
        columns=level_columns(with_slos), cells=lambda point, sat: level_cells(point, sat, with_slos),
        saturation_line=saturation_line, prefix_cache=prefix_cache_note(perf.load) if perf.load else "",
        note=LEVELS_NOTE,
    )


def render_html(record: RunRecord, perf: PerfRecord | None = None, recommendation: Recommendation | None = None) -> str:
    """The page as a string."""
    from qeval.report._decision import decide_run, from_recommendation
    from qeval.report._markdown import ENDPOINT_COLUMNS, ENDPOINT_NOTE, endpoint_rows
    from qeval.report._servers import (
        AGREEMENT_COLUMNS,
        SERVER_COLUMNS,
        agreement_rows,
        server_commands,
        server_rows,
    )

    env = _environment()
    rows = table_rows(record)
    decision = (from_recommendation(recommendation, "the SLOs given to qeval recommend") if recommendation is not None
                else decide_run(record))
    context: dict[str, Any] = {
        "record": record, "columns": COLUMNS, "rows": rows, "perf": perf, "recommendation": recommendation,
        "decision": decision, "legend": metric_legend(record),
        "busy": any(BUSY_MARK in r.ttft_p95_ms for r in rows), "busy_mark": BUSY_MARK.strip(),
        "plots": [
            ("pareto", "Primary metric vs latency (Pareto)", _plot("pareto", lambda: _draw_pareto(record)), PARETO_NOTE),
            ("suite-intervals", "Per-suite primary metric with 95% intervals",
             _plot("suites", lambda: _draw_suite_intervals(record)), ""),
        ],
        "endpoint_rows": endpoint_rows(record), "endpoint_columns": ENDPOINT_COLUMNS, "endpoint_note": ENDPOINT_NOTE,
        "server_rows": server_rows(record), "server_columns": SERVER_COLUMNS, "server_commands": server_commands(record),
        "agreement_rows": agreement_rows(record), "agreement_columns": AGREEMENT_COLUMNS,
        "flips": suite_flips(record), **_perf_context(perf),
    }
    if recommendation is not None:
        from qeval.report._recommendation import TABLE_COLUMNS, headline
        from qeval.report._recommendation import table_rows as rec_rows

        context.update(rec_headline=headline(recommendation), rec_columns=TABLE_COLUMNS, rec_rows=rec_rows(recommendation))
    return env.get_template("report").render(**context)


def _environment() -> Any:
    import jinja2

    loader = jinja2.DictLoader({"report": _TEMPLATE, "perf": _PERF_SECTION, "style": _STYLE, "perf_page": _PERF_PAGE})
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def _perf_context(perf: PerfRecord | None) -> dict[str, Any]:
    return {
        "perf": perf, "fmt_q": _fmt_q, "fmt_num": _fmt_num, "fmt_mb": _fmt_mb,
        "perf_plot": _plot("perf", lambda: _draw_perf(perf)) if perf is not None else None,
        "levels": _levels_context(perf) if perf is not None else None,
    }


def render_perf_html(perf: PerfRecord) -> str:
    """perf.html: the load profile alone (what ``qeval perf`` writes beside perf.md)."""
    return _environment().get_template("perf_page").render(**_perf_context(perf))


def write_html(
    record: RunRecord, path: str | Path, perf: PerfRecord | None = None, recommendation: Recommendation | None = None
) -> Path:
    """Write report.html for ``record`` (with perf and a recommendation when given) to ``path``, atomically."""
    atomic_write_text(path, render_html(record, perf, recommendation))
    return Path(path)
