"""Plain-text renderings of verdicts: failure messages and the terminal summary table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MAX_FLIPS_SHOWN = 10


def number(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "unbounded" if x > 0 else "-unbounded"
    return f"{x:.4g}"


def interval(ci: Sequence[float] | None) -> str:
    return "none" if ci is None else f"[{number(ci[0])}, {number(ci[1])}]"


def _short(value: Any, width: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def verdict_message(row: Any, reference: str | None, policy: str) -> str:
    """What a failing or inconclusive SLO item shows: the SLO, the measured value with
    its interval and n, the threshold and rule, and the cases that flipped."""
    lines = [
        f"SLO      {row.slo}    [{row.suite} at {row.precision}]",
        f"verdict  {row.outcome.upper()}",
        f"value    {number(row.value)}   95% CI {interval(row.ci)}   n={row.n}",
        f"interval {row.method}",
        f"rule     {row.rule}",
    ]
    if row.outcome == "inconclusive":
        need = f"about n={row.needed_n}" if row.needed_n else "a much larger n"
        lines.append(
            f"why      the interval straddles the threshold: n is too small to tell; {need} would decide it "
            "(add cases, raise --qeval-limit, or --qeval-latency-samples for latency)."
        )
        lines.append(f"policy   --qeval-inconclusive={policy}")
    if row.message:
        lines.append(f"note     {row.message}")
    lines += flip_lines(row.lost, f"pass→fail against {reference}", row.precision, reference)
    return "\n".join(lines)


def flip_lines(flips: Sequence[Any], title: str, current: str, reference: str | None, limit: int = MAX_FLIPS_SHOWN) -> list[str]:
    if not flips:
        return []
    shown = flips[:limit]
    more = f", first {limit} shown; all are in the report" if len(flips) > limit else ""
    out = [f"flipped  {len(flips)} case(s) {title}{more}:"]
    for f in shown:
        out.append(
            f"  {f.case_id}: expected {_short(f.expected, 40)!s} | {reference}: {_short(f.reference_completion)!r}"
            f" | {current}: {_short(f.completion)!r}"
        )
    return out


def summary_table(rows: Sequence[Any]) -> list[str]:
    """suite × precision × SLO → verdict, as aligned text lines."""
    header = ("suite", "target", "SLO", "verdict", "value", "95% CI", "n")
    body = [
        (r.suite, r.precision, r.slo, r.outcome + (" (cached)" if r.cached else ""),
         number(r.value), interval(r.ci), str(r.n))
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body]


def results_table(record: Any) -> list[str]:
    """The run's cells, each led by its suite's primary metric and its interval (the pass rate after
    it, labelled), as aligned text lines, then a line per suite saying what both metrics are."""
    from qeval.report._table import COMPACT_COLUMNS, metric_legend, table_rows

    body = [row.compact() for row in table_rows(record)]
    widths = [max(len(str(c)) for c in col) for col in zip(COMPACT_COLUMNS, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COMPACT_COLUMNS), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body]
    return [line.rstrip() for line in lines] + metric_legend(record)
