"""recommendation.md, recommendation.json and the rows of the recommendation table
(shared by the markdown, the terminal and report.html). Pure: strings and dicts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qeval.recommend import BYTES_PER_MB, Candidate, Check, Recommendation
from qeval.files import atomic_write_text
from qeval.report._json import jsonable

RECOMMENDATION_MD = "recommendation.md"
RECOMMENDATION_JSON = "recommendation.json"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "—" if value is None else ("∞" if value > 0 else "-∞")
    if abs(value) >= 1000:  # 2,534 ms, not 2.53e+03
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def describe_verdict(check: Check) -> str:
    """``suite arith: p95_ttft_ms <= 300: inconclusive, value 290 [250, 340] n=40 (needs n≈95)``."""
    v = check.verdict
    text = f"{check.scope}: {v.slo}: {v.outcome}"
    if v.value is not None:
        text += f", value {_fmt(v.value)}"
        if v.ci is not None:
            text += f" [{_fmt(v.ci[0])}, {_fmt(v.ci[1])}]"
        text += f" n={v.n}"
    else:
        text += f" ({v.rule})"
    if v.outcome == "inconclusive" and v.needed_n:
        text += f" (needs n≈{v.needed_n})"
    return text


def status_of(rec: Recommendation, c: Candidate) -> str:
    if c.precision == rec.chosen:
        return "recommended"
    return "meets every SLO" if c.meets else "ruled out"


def recommendation_dict(rec: Recommendation) -> dict[str, Any]:
    """The JSON form written to recommendation.json."""
    return jsonable({
        "recommended": rec.chosen,
        "slos": list(rec.slos),
        "frontier": list(rec.frontier),
        "notes": list(rec.notes),
        "candidates": [
            {
                "precision": c.precision,
                "status": status_of(rec, c),
                "meets": c.meets,
                "weights_bytes": c.weights_bytes,
                "peak_bytes": c.peak_bytes,
                "usd_per_1m_output_tokens": c.usd_per_1m,
                "accuracy": c.accuracy,
                "p95_ttft_ms": c.p95_latency_ms,
                "on_frontier": c.precision in rec.frontier,
                "problems": list(c.problems),
                "ruled_out_by": [describe_verdict(k) for k in c.blocking()],
                "checks": [
                    {
                        "scope": k.scope, "slo": str(k.verdict.slo), "outcome": k.verdict.outcome,
                        "value": k.verdict.value, "ci": k.verdict.ci, "n": k.verdict.n,
                        "rule": k.verdict.rule, "needed_n": k.verdict.needed_n,
                    }
                    for k in c.checks
                ],
            }
            for c in rec.candidates
        ],
    })


def _mb(n: float | None) -> str:
    return "—" if n is None else f"{n / BYTES_PER_MB:,.1f}"


def table_rows(rec: Recommendation) -> list[tuple[str, ...]]:
    """Rows of the recommendation table (shared by markdown and the terminal)."""
    rows: list[tuple[str, ...]] = []
    for c in rec.candidates:
        why = [*c.problems, *(describe_verdict(k) for k in c.blocking())]
        rows.append((
            c.precision, status_of(rec, c), _mb(c.weights_bytes), _mb(c.peak_bytes),
            "—" if c.usd_per_1m is None else f"{c.usd_per_1m:.3g}", _fmt(c.accuracy), _fmt(c.p95_latency_ms),
            "yes" if c.precision in rec.frontier else "no", "\n".join(why) or "—",
        ))
    return rows


TABLE_COLUMNS = ("target", "status", "weights MB", "peak MB", "USD/1M out tok", "primary metric (mean over suites)",
                 "p95 TTFT ms", "Pareto", "ruled out by")


def headline(rec: Recommendation) -> str:
    if rec.chosen is None:
        return "No target meets every SLO (an inconclusive verdict rules a target out, like a fail)."
    return f"Recommended: {rec.chosen} — the cheapest target (weights, then peak memory, then cost) that meets every SLO."


def render_markdown(rec: Recommendation) -> str:
    """recommendation.md."""
    esc = lambda s: s.replace("|", "\\|").replace("\n", "<br>")
    lines = ["# Target recommendation", "", f"**{headline(rec)}**", "", "SLOs (decided on 95% intervals):", ""]
    lines += [f"- `{s}`" for s in rec.slos] or ["- (none)"]
    lines += ["", f"Pareto frontier (accuracy ↑, p95 TTFT ↓, memory ↓; point values): {', '.join(rec.frontier) or '—'}", ""]
    lines.append("| " + " | ".join(TABLE_COLUMNS) + " |")
    lines.append("|" + "---|" * len(TABLE_COLUMNS))
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in table_rows(rec)]
    lines += ["", *[f"- {n}" for n in rec.notes]]
    return "\n".join(lines).rstrip() + "\n"


def write_recommendation(rec: Recommendation, folder: str | Path) -> tuple[Path, Path]:
    """recommendation.md and recommendation.json into ``folder``, atomically."""
    md = atomic_write_text(Path(folder) / RECOMMENDATION_MD, render_markdown(rec))
    js = atomic_write_text(
        Path(folder) / RECOMMENDATION_JSON,
        json.dumps(recommendation_dict(rec), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
    )
    return Path(md), Path(js)
