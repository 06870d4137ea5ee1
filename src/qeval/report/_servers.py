"""The servers qeval started for managed targets, and how two targets that serve the same model at
the same precision in different ways (in-process and vLLM, say) agree.

Rows are plain text: summary.md escapes them, report.html autoescapes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from qeval.report._table import MISSING, fmt_percentile, ordered_cells
from qeval.results import CellResult, RunRecord

SERVER_COLUMNS = ("target", "engine", "checkpoint", "prepared by", "cache", "healthy s", "first token s", "log")
AGREEMENT_COLUMNS = ("targets", "suite", "identical completions", "same verdict", "primary metric", "p50 TTFT ms",
                     "p50 TPOT ms", "cases that differ")
_ENGINE_PREFIX = re.compile(r"^(vllm|llamacpp):")
DIFFERING_SHOWN = 12


def server_rows(record: RunRecord) -> list[tuple[str, ...]]:
    """One row per managed target (first ok cell's record): what was served and how long it took to serve."""
    rows: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for cell in ordered_cells(record):
        engine = cell.precision_config.engine
        if engine is None or cell.precision in seen:
            continue
        seen.add(cell.precision)
        rows.append((
            cell.precision, f"{engine.engine} {engine.version or ''}".strip(),
            f"{engine.checkpoint} (sha256 {engine.checkpoint_sha256[:12]}, {engine.weights_bytes / 1e6:.0f} MB)",
            engine.prepared_by + ("; " + "; ".join(engine.notes) if engine.notes else ""),
            engine.checkpoint_cache or MISSING,
            _seconds(engine.spawn_to_healthy_s), _seconds(engine.first_token_s), engine.log or MISSING,
        ))
    return rows


def server_commands(record: RunRecord) -> list[tuple[str, str]]:
    """``(target, command line)`` of every managed target."""
    out: dict[str, str] = {}
    for cell in ordered_cells(record):
        engine = cell.precision_config.engine
        if engine is not None and cell.precision not in out:
            out[cell.precision] = " ".join(engine.command)
    return list(out.items())


def _seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def same_model_pairs(record: RunRecord) -> list[tuple[str, str]]:
    """Pairs of targets that serve the same ``MODEL@PRECISION`` in different ways (one in-process, one
    served by an engine; or two engines), in target order."""
    specs = [(t.name, _ENGINE_PREFIX.sub("", t.spec), t.kind) for t in record.targets]
    pairs = []
    for i, (a, spec_a, kind_a) in enumerate(specs):
        for b, spec_b, kind_b in specs[i + 1:]:
            if spec_a == spec_b and kind_a != kind_b and "openai" not in (kind_a, kind_b):
                pairs.append((a, b))
    return pairs


def agreement_rows(record: RunRecord) -> list[tuple[str, ...]]:
    """Per pair (:func:`same_model_pairs`) and suite: completions compared case by case."""
    cells = {(c.precision, c.suite): c for c in record.cells if c.status == "ok"}
    rows: list[tuple[str, ...]] = []
    for a, b in same_model_pairs(record):
        for suite in dict.fromkeys(c.suite for c in record.cells):
            ca, cb = cells.get((a, suite)), cells.get((b, suite))
            if ca is None or cb is None:
                continue
            rows.append(_agreement(a, b, suite, ca, cb))
    return rows


def _agreement(a: str, b: str, suite: str, ca: CellResult, cb: CellResult) -> tuple[str, ...]:
    by_id = {c.case_id: c for c in cb.cases if c.error is None}
    both = [(x, by_id[x.case_id]) for x in ca.cases if x.error is None and x.case_id in by_id]
    identical = sum(1 for x, y in both if x.completion == y.completion)
    same = sum(1 for x, y in both if x.passed == y.passed)
    differ = [x.case_id for x, y in both if x.completion != y.completion]
    shown = ", ".join(differ[:DIFFERING_SHOWN]) + (f" (+{len(differ) - DIFFERING_SHOWN} more)" if len(differ) > DIFFERING_SHOWN else "")
    return (
        f"{a} vs {b}", suite, f"{identical} / {len(both)}", f"{same} / {len(both)}",
        f"{_primary(ca)} vs {_primary(cb)}", _side(ca, cb, "ttft_ms"), _side(ca, cb, "tpot_ms"), shown or "none",
    )


def _primary(cell: CellResult) -> str:
    from qeval.metric_specs import metric_value, scoring_of

    name = scoring_of(cell).primary
    metric = metric_value(cell, name)
    return MISSING if metric is None or metric.value is None else f"{name} {metric.value:.2f}"


def _side(ca: CellResult, cb: CellResult, field: str) -> str:
    values = []
    for cell in (ca, cb):
        lat = cell.latency
        values.append(fmt_percentile(getattr(lat, field), "p50") if lat is not None else MISSING)
    return " vs ".join(values)


def render_servers(record: RunRecord, md: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]]) -> list[str]:
    """summary.md's "Servers qeval started" and "Same model, served two ways" sections (``md`` draws a table)."""
    lines: list[str] = []
    rows = server_rows(record)
    if rows:
        lines += ["## Servers qeval started", ""]
        lines += md(SERVER_COLUMNS, rows)
        lines += ["", "Cold start = spawn to healthy, then to the first token of a one-token request. "
                  "Each server was stopped before the next target started. Command lines:", ""]
        lines += [f"- `{name}`: `{command}`" for name, command in server_commands(record)]
        lines.append("")
    agreement = agreement_rows(record)
    if agreement:
        lines += ["## Same model, served two ways", ""]
        lines += md(AGREEMENT_COLUMNS, agreement)
        lines += ["", "Greedy completions compared case by case on the cases both answered. Where the kernels "
                  "agree (fp32), every completion should be identical; a lower count says the serving engine "
                  "changes answers, and the in-process figures do not predict it.", ""]
    return lines


__all__ = ["AGREEMENT_COLUMNS", "SERVER_COLUMNS", "agreement_rows", "render_servers", "same_model_pairs",
           "server_commands", "server_rows"]
