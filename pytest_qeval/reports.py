"""What a qeval pytest session leaves behind: the run report, the SLO verdicts
(slo.md, slo.json), the regression report against a baseline, the GitHub step
summary, and the baseline file when asked to save one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pytest_qeval.messages import flip_lines, interval, number
from pytest_qeval.session import QevalSession
from qeval.results import RunRecord

SLO_MD = "slo.md"
SLO_JSON = "slo.json"


def verdicts_dict(session: QevalSession) -> dict[str, Any]:
    from qeval.report._json import jsonable
    from qeval.results import to_dict

    rows = []
    for r in session.verdicts:
        row = to_dict(r)
        row["lost"] = [to_dict(f) for f in r.lost]
        row["gained"] = [to_dict(f) for f in r.gained]
        rows.append(row)
    counts: dict[str, int] = {}
    for r in session.verdicts:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return jsonable({
        "run_id": session.run_id,
        "model": session.options.model,
        "precisions": list(session.options.precisions),
        "inconclusive_policy": session.options.inconclusive,
        "baseline": str(session.options.baseline) if session.options.baseline else None,
        "counts": counts,
        "verdicts": rows,
    })


def verdicts_markdown(session: QevalSession, record: Any = None) -> str:
    """slo.md: the run's results (each suite's primary metric first), then every SLO verdict.
    ``record``: the session's run record (built here when not given)."""
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        f"## qeval SLO verdicts — {session.options.model} (run {session.run_id})",
        "",
        *_results_markdown(session.record() if record is None else record),
        "Each SLO is decided on its 95% interval: **pass** when the whole interval meets the threshold, "
        "**fail** when none of it does, **inconclusive** when n is too small to tell "
        f"(treated as `{session.options.inconclusive}`).",
        "",
        "| suite | target | SLO | verdict | value | 95% CI | n | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in session.verdicts:
        note = r.message
        if r.outcome == "inconclusive" and r.needed_n:
            note = f"about n={r.needed_n} would decide it. {note}".strip()
        verdict = f"**{r.outcome}**" + (" (cached)" if r.cached else "")
        lines.append(
            f"| {cell(r.suite)} | {cell(r.precision)} | `{cell(r.slo)}` | {verdict} | {number(r.value)} "
            f"| {interval(r.ci)} | {r.n} | {cell(note)} |"
        )
    flipped = [r for r in session.verdicts if r.lost]
    for r in flipped:
        lines += ["", f"### {r.suite} at {r.precision}: `{r.slo}`", "", "```"]
        lines += flip_lines(r.lost, "pass→fail", r.precision, "reference", limit=len(r.lost))
        lines += ["```"]
    return "\n".join(lines) + "\n"


def _results_markdown(record: Any) -> list[str]:
    """The compact results table: target, suite, the suite's primary metric [95% CI], the pass rate, TTFT."""
    if record is None:
        return []
    from qeval.report._table import COMPACT_COLUMNS, metric_legend, table_rows

    def row(values: Any) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    lines = [row(COMPACT_COLUMNS), "|" + "---|" * len(COMPACT_COLUMNS)]
    lines += [row(r.compact()) for r in table_rows(record)]
    return lines + ["", *(f"- {line}" for line in metric_legend(record)), ""]


def write_session_reports(session: QevalSession, record: RunRecord | None) -> tuple[Path | None, list[str]]:
    """Write everything about ``record`` (the session's, or under xdist the workers' merged) and
    the session's verdicts; returns the run folder and human lines about what was written.
    Called once per run: by the session, or by the xdist controller (never by a worker)."""
    notes: list[str] = []
    if record is None:  # nothing was evaluated (e.g. --collect-only): no report, no import of the report code
        return None, notes
    from qeval.report import atomic_write_text, write_record, write_report

    # No plots or report.html: a gate's report is its verdicts, and drawing them (matplotlib,
    # scipy) would be most of a cached re-run's time. `qeval recommend RUN_DIR` draws report.html.
    folder = write_report(record, session.options.report, views=False)
    atomic_write_text(folder / SLO_JSON, json.dumps(verdicts_dict(session), indent=2, allow_nan=False) + "\n")
    md = verdicts_markdown(session, record)
    atomic_write_text(folder / SLO_MD, md)
    notes.append(f"qeval report: {folder} (slo.md, slo.json, summary.md, results.json, samples.jsonl)")
    if session.baseline is not None:
        from qeval.compare import compare_runs
        from qeval.report import render_comparison_markdown, write_comparison

        cmp = compare_runs(session.baseline, record, allow_env_mismatch=session.options.allow_env_mismatch)
        write_comparison(cmp, folder)
        md += "\n" + render_comparison_markdown(cmp)
        notes.append(
            f"qeval regression vs {session.options.baseline}: "
            + ("REGRESSION (" + "; ".join(cmp.regressions[:3]) + ")" if cmp.regressed else "no regression")
            + f" — {folder / 'regression.md'}"
        )
    if session.options.save_baseline is not None:
        write_record(record, session.options.save_baseline)
        notes.append(f"qeval baseline saved: {session.options.save_baseline}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(md + "\n")
        notes.append("qeval verdicts appended to $GITHUB_STEP_SUMMARY")
    return folder, notes
