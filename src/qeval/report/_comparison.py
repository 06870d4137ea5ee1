"""regression.md / regression.json and the terminal text of a baseline-vs-current comparison."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qeval.compare import (
    CellComparison,
    Comparison,
    MetricDelta,
    fmt_ci,
    fmt_p,
    fmt_value,
)
from qeval.environment import compared_rows
from qeval.files import atomic_open, atomic_write_text
from qeval.report._json import jsonable
from qeval.report._markdown import _md, _table
from qeval.report._table import MISSING

if TYPE_CHECKING:
    from qeval.measure import Flip

REGRESSION_MD = "regression.md"
REGRESSION_JSON = "regression.json"
COMPARISON_SCHEMA_VERSION = 1
METRIC_COLUMNS = ("metric", "baseline", "current", "delta", "95% CI of delta", "p", "n", "verdict")
_MD_COMPLETION_CHARS = 400
_TEXT_COMPLETION_CHARS = 60


def headline(cmp: Comparison) -> str:
    """``REGRESSION`` or ``no regression``."""
    return "REGRESSION" if cmp.regressed else "no regression"


def verdict(row: MetricDelta, tolerance: float) -> str:
    """A metric row's verdict in words; never claims "no change" from an interval that includes 0."""
    if row.regression:
        return "REGRESSION"
    if row.significant is None:
        if row.method.startswith("exact"):
            if row.delta is None or row.delta == 0:
                return "same"
            return "larger (informational)" if row.worse else "smaller (informational)"
        return "no interval"
    if not row.significant:
        return "not significant"
    if not row.worse:
        return "better"
    return f"worse, within {tolerance * 100:.0f}% tolerance"


def _status(status: str, reason: str | None) -> str:
    return status if status in ("ok", "missing") else f"{status}: {reason or 'no reason recorded'}"


def _row(row: MetricDelta, tolerance: float) -> tuple[str, ...]:
    return (
        row.metric,
        fmt_value(row.metric, row.baseline),
        fmt_value(row.metric, row.current),
        fmt_value(row.metric, row.delta, signed=True),
        fmt_ci(row.metric, row.ci),
        fmt_p(row.p_value),
        MISSING if row.n is None else str(row.n),
        verdict(row, tolerance),
    )


# --- JSON ------------------------------------------------------------------------------------


def comparison_dict(cmp: Comparison) -> dict[str, Any]:
    """Strict-JSON form of ``cmp`` (infinite interval bounds become ``null``)."""
    body = jsonable(cmp)
    return jsonable({
        "kind": "qeval-comparison",
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "verdict": headline(cmp),
        "regressed": cmp.regressed,
        "same_model": cmp.same_model,
        **body,
    })


# --- markdown --------------------------------------------------------------------------------


_MD_SPECIAL = "\\`*_[]<>|~#"


def _md_text(value: Any, limit: int | None = None) -> str:
    """Any value as literal text inside a markdown table cell (markup and HTML escaped, one line)."""
    if value is None:
        return MISSING
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "… (truncated)"
    text = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    return text.replace("\r\n", " ↵ ").replace("\n", " ↵ ").replace("\r", " ↵ ")


def env_rows(cmp: Comparison) -> list[tuple[str, str, str, str]]:
    """``(key, baseline, current, "same"/"DIFFERS")`` for every compared fingerprint key."""
    rows = []
    for name, va, vb in compared_rows(cmp.baseline_environment, cmp.current_environment):
        show = [MISSING if v is None else str(v) for v in (va, vb)]
        rows.append((name, show[0], show[1], "same" if va == vb else "DIFFERS"))
    return rows


def _flip_table(flips: tuple[Flip, ...]) -> list[str]:
    rows = [
        (_md_text(f.case_id), _md_text(f.expected, _MD_COMPLETION_CHARS),
         _md_text(f.reference_completion, _MD_COMPLETION_CHARS), _md_text(f.completion, _MD_COMPLETION_CHARS))
        for f in flips
    ]
    # values are fully escaped already, so they are joined here rather than escaped again by _table
    lines = ["| case | expected | baseline completion | current completion |", "|---|---|---|---|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _md_cell(cell: CellComparison, tolerance: float) -> list[str]:
    mark = " — REGRESSION" if cell.regressed else ""
    lines = [f"## {_md_text(cell.suite)} / {_md_text(cell.precision)}{mark}", ""]
    base, cur = _status(cell.baseline_status, cell.baseline_reason), _status(cell.current_status, cell.current_reason)
    lines += [f"Status: baseline {_md_text(base)} · current {_md_text(cur)}", ""]
    # metric regressions show in the table's verdict column; a lost cell has no table
    status_regressions = () if cell.metrics else cell.regressions
    lines += [f"- **regression**: {_md(r)}" for r in status_regressions]
    lines += [f"- {_md(n)}" for n in cell.notes]
    if status_regressions or cell.notes:
        lines.append("")
    if cell.metrics:
        lines += _table(METRIC_COLUMNS, [_row(m, tolerance) for m in cell.metrics]) + [""]
    if cell.baseline_status == "ok" and cell.current_status == "ok":
        for title, flips in (("passed in the baseline, fail now", cell.lost), ("failed in the baseline, pass now", cell.gained)):
            lines += [f"**{len(flips)} case(s) {title}**", ""]
            if flips:
                lines += _flip_table(flips) + [""]
    return lines


def render_comparison_markdown(cmp: Comparison) -> str:
    """The whole regression.md text: verdict, caveats, environments, then every cell."""
    tol = cmp.latency_tolerance
    lines = [f"# qeval comparison: {headline(cmp)}", ""]
    runs = (
        f"Baseline `{_md_text(cmp.baseline_run_id)}` ({_md_text(cmp.baseline_created_at)}) → "
        f"current `{_md_text(cmp.current_run_id)}` ({_md_text(cmp.current_created_at)})"
    )
    lines += [runs, ""]
    if cmp.regressed:
        lines += [f"**REGRESSION**: {len(cmp.regressions)} regression(s).", ""]
        lines += [f"- {_md(r)}" for r in cmp.regressions] + [""]
    else:
        lines += [NO_REGRESSION_MD, ""]
    if cmp.notes:
        lines += ["## Caveats", ""] + [f"- {_md(n)}" for n in cmp.notes] + [""]

    lines += ["## Model and environment", ""]
    model_row = ("model spec", cmp.baseline_model, cmp.current_model, "same" if cmp.same_model else "DIFFERS")
    lines += _table(("key", "baseline", "current", ""), [model_row, *env_rows(cmp)])
    latency = "compared" if cmp.latency_compared else "**not compared** (environments differ)"
    lines += ["", f"Latency and throughput: {latency}; latency tolerance {tol * 100:.0f}%.", ""]

    for cell in cmp.cells:
        lines += _md_cell(cell, tol)

    lines += ["## How to read this", "", *_how_to_read(tol), ""]
    return "\n".join(lines)


NO_REGRESSION_MD = (
    "**No regression detected**: no cell was lost and no metric got worse with its whole 95% "
    "interval on the bad side (beyond the tolerance for latency). A change that is not significant "
    "is not proof of no change: read the intervals."
)


def _how_to_read(tolerance: float) -> list[str]:
    pct = f"{tolerance * 100:.0f}%"
    return [
        (
            "- **delta** = current − baseline. Quality metrics are **paired** on the cases both runs share: "
            "accuracy by Tango's paired score interval (p from McNemar's exact test), F1 / precision / recall by "
            "a paired case bootstrap. A quality "
            "regression is a delta whose whole 95% interval is below 0."
        ),
        (
            "- **latency**: each run's percentile gets a distribution-free order-statistic interval at 97.5%, "
            "so the interval of their difference holds at 95%. `unbounded` means too few samples to bound "
            f"that side. A latency regression is significantly slower **and** more than {pct} slower; "
            f"throughput likewise (significantly and more than {pct} lower; request bootstrap)."
        ),
        "- **weights_mb / peak_mb** are exact single measurements: shown, never a regression.",
        "- **not significant** means the interval includes 0: the data cannot tell, not that nothing changed.",
    ]


# --- terminal text ---------------------------------------------------------------------------


def _aligned(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]


def _one_line(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_flips(title: str, flips: tuple[Flip, ...], max_flips: int) -> list[str]:
    if not flips:
        return []
    lines = [f"  {len(flips)} case(s) {title}:"]
    rows = [("id", "expected", "baseline", "current")] + [
        (f.case_id, _one_line(f.expected, 20), repr(_one_line(f.reference_completion, _TEXT_COMPLETION_CHARS)),
         repr(_one_line(f.completion, _TEXT_COMPLETION_CHARS)))
        for f in flips[:max_flips]
    ]
    lines += _aligned(rows, indent="    ")
    if len(flips) > max_flips:
        lines.append(f"    ... and {len(flips) - max_flips} more (all are listed in {REGRESSION_MD} with --out)")
    return lines


def render_comparison_text(cmp: Comparison, max_flips: int = 10) -> str:
    """Plain aligned text for a terminal or CI log; at most ``max_flips`` flips each way per cell."""
    tol = cmp.latency_tolerance
    lines = [
        f"qeval compare: {headline(cmp)}",
        f"baseline {cmp.baseline_run_id} ({cmp.baseline_created_at}, {cmp.baseline_model})",
        f"current  {cmp.current_run_id} ({cmp.current_created_at}, {cmp.current_model})",
        "",
    ]
    lines += [f"note: {n}" for n in cmp.notes]
    lines += [""] if cmp.notes else []
    for cell in cmp.cells:
        base = _status(cell.baseline_status, cell.baseline_reason)
        cur = _status(cell.current_status, cell.current_reason)
        mark = "  REGRESSION" if cell.regressed else ""
        lines.append(f"{cell.suite} / {cell.precision}: baseline {base}, current {cur}{mark}")
        if cell.metrics:
            lines += _aligned([METRIC_COLUMNS, *(_row(m, tol) for m in cell.metrics)])
        lines += [f"  note: {n}" for n in cell.notes]
        lines += _text_flips("passed in the baseline, fail now", cell.lost, max_flips)
        lines += _text_flips("failed in the baseline, pass now", cell.gained, max_flips)
        lines.append("")
    if cmp.regressed:
        lines += [f"REGRESSION: {len(cmp.regressions)} regression(s):"] + [f"  - {r}" for r in cmp.regressions]
    else:
        lines.append("no regression detected (not significant is not proof of no change; read the intervals)")
    return "\n".join(lines) + "\n"


# --- files -----------------------------------------------------------------------------------


def write_comparison(cmp: Comparison, folder: str | Path) -> tuple[Path, Path]:
    """Write ``regression.md`` and ``regression.json`` into ``folder`` atomically; return both paths."""
    target = Path(folder)
    md_path = atomic_write_text(target / REGRESSION_MD, render_comparison_markdown(cmp))
    json_path = target / REGRESSION_JSON
    with atomic_open(json_path, "w") as handle:
        json.dump(comparison_dict(cmp), handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return md_path, json_path

