"""perf.md: the load profile as Markdown tables (readable in a terminal and as a CI summary).

A run with load levels is rendered by :mod:`qeval.perf._levels_markdown`."""

from __future__ import annotations

import math

from qeval.perf._schema import (
    Distribution,
    LoadPoint,
    PerfRecord,
    PrecisionPerf,
    Quantile,
    Ratio,
)


def _num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:,.{digits}f}"


def _interval(value: float | None, ci: tuple[float, float] | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if ci is None:
        return _num(value, digits)
    return f"{_num(value, digits)} [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def _q(q: Quantile) -> str:
    return _interval(q.value, q.ci)


def _dist(point: LoadPoint, kind: str) -> Distribution | None:
    return point.latency.get(kind)


def _ratio(ratios: tuple[Ratio, ...], metric: str, batch: int, reference: bool) -> str:
    if reference:
        return "1 (ref)"
    r = next((r for r in ratios if r.metric == metric and r.batch_size == batch), None)
    return "–" if r is None else _interval(r.value, r.ci, 2)


def _batch_table(record: PerfRecord, batch: int) -> list[str]:
    lines = [
        f"## Batch size {batch}",
        "",
        ("| precision | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | TPOT p50 ms | TPOT p95 ms | TPOT p99 ms | n (ttft/tpot) "
        "| tokens/s | req/s | peak MB | p95 TTFT × ref | p95 TPOT × ref | tokens/s × ref |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for perf in record.precisions:
        point = next((p for p in perf.points if p.batch_size == batch), None)
        if point is None:
            continue
        if point.status != "ok":
            lines.append(f"| {perf.precision} | **{point.status}**: {point.reason or ''} |" + " |" * 12)
            continue
        ttft, tpot = _dist(point, "ttft"), _dist(point, "tpot")
        cells = [perf.precision]
        for d in (ttft, tpot):
            cells += [_q(d.p50), _q(d.p95), _q(d.p99)] if d else ["–"] * 3
        cells.append(f"{ttft.n if ttft else 0}/{tpot.n if tpot else 0}")
        cells.append(_interval(point.output_tokens_per_s, point.output_tokens_per_s_ci))
        cells.append(_num(point.requests_per_s, 2))
        cells.append(_num(point.peak_bytes / 1e6 if point.peak_bytes is not None else None))
        is_ref = perf.precision == record.reference
        for metric in ("p95_ttft", "p95_tpot", "tokens_per_s"):
            cells.append(_ratio(perf.ratios, metric, batch, is_ref))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _cold_table(record: PerfRecord) -> list[str]:
    lines = [
        "## Cold start (load + quantize + first batch-1 request, before warm-up)",
        "",
        "| precision | status | load s | quantize s | first request ms | total s | weights MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for perf in record.precisions:
        c = perf.cold_start
        weights = _num(perf.weights_bytes / 1e6 if perf.weights_bytes is not None else None)
        if c is None:
            lines.append(f"| {perf.precision} | {perf.status}: {perf.reason or ''} | – | – | – | – | {weights} |")
            continue
        lines.append(
            f"| {perf.precision} | {perf.status} | {_num(c.load_s, 2)} | {_num(c.quantize_s, 2)} | "
            f"{_num(c.first_request_ms)} | {_num(c.total_s, 2)} | {weights} |"
        )
    return lines + [""]


def _verdicts(perf: PrecisionPerf) -> str:
    if perf.goodput is None:
        return "–"
    parts = []
    for batch, verdicts in sorted(perf.goodput.verdicts.items()):
        fails = [f"{slo}: {o}" for slo, o in verdicts.items() if o != "pass"]
        parts.append(f"B={batch}: " + ("all pass" if not fails else "; ".join(fails)))
    return "<br>".join(parts) or "–"


def _goodput_table(record: PerfRecord) -> list[str]:
    if not record.slos and not any(p.cost for p in record.precisions):
        return []
    lines = ["## Goodput and cost", ""]
    if record.slos:
        lines += [f"SLOs (decided on 95% intervals): {', '.join(f'`{s}`' for s in record.slos)}", ""]
    else:
        lines += ["No SLOs given: cost is priced at each precision's highest-throughput load.", ""]
    lines += [
        ("| precision | goodput batch | tokens/s | req/s | USD / 1M output tokens | capacity tokens/h "
        "| break-even tokens/h | SLO verdicts |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for perf in record.precisions:
        if perf.status != "ok":
            lines.append(f"| {perf.precision} | {perf.status} | – | – | – | – | – | {perf.reason or ''} |")
            continue
        g, c = perf.goodput, perf.cost
        batch = ("none meets the SLOs" if g.batch_size is None else str(g.batch_size)) if g else "–"
        lines.append(
            f"| {perf.precision} | {batch} | {_num(g.output_tokens_per_s if g else None)} | "
            f"{_num(g.requests_per_s if g else None, 2)} | "
            f"{_num(c.usd_per_1m_output_tokens if c else None, 4)} | "
            f"{_num(c.capacity_tokens_per_hour if c else None, 0)} | "
            f"{_num(c.break_even_tokens_per_hour if c else None, 0)} | {_verdicts(perf)} |"
        )
    return lines + [""]


def render_perf_markdown(record: PerfRecord) -> str:
    """The whole perf.md for ``record``: batch sizes, or load levels when the run measured them."""
    from qeval.perf._levels_markdown import has_levels, render_levels_markdown  # it builds on this module

    if has_levels(record):
        return render_levels_markdown(record)
    prompt = record.prompt_tokens
    prompt_text = (f"{min(prompt)}–{max(prompt)} tokens ({len(prompt)} prompts)" if prompt else "not counted")
    warmup = next((p.warmup_requests for perf in record.precisions for p in perf.points), 0)
    lines = [
        f"# qeval perf: {record.model} on {record.device}",
        "",
        (f"Run `{record.run_id}` ({record.created_at}). Reference precision: **{record.reference}**. "
        f"Batch sizes {', '.join(map(str, record.batch_sizes))}; {record.rounds} round(s), precisions interleaved "
        f"ABBA ({len(record.order)} blocks); {warmup} warm-up request(s) at batch 1 and one warm-up batch at each larger size per precision (untimed). Prompts {prompt_text}; "
        f"up to {record.max_new_tokens} new tokens, greedy."),
        "",
        ("Percentiles: linear interpolation, with distribution-free 95% order-statistic intervals "
        "[low, high] (∞: too few samples to bound it). TTFT from the batch start (after tokenization); "
        "TPOT = (e2e − TTFT)/(tokens − 1). tokens/s: output tokens / generation wall time, interval over rounds. "
        "Ratios: this / reference, both sides at 97.5% so they hold together at 95%."),
        "",
    ]
    for batch in record.batch_sizes:
        lines += _batch_table(record, batch)
    lines += _cold_table(record)
    lines += _goodput_table(record)
    return "\n".join(lines).rstrip() + "\n"
