"""perf.md for a run that measured load levels (``PerfRecord.load`` set): how load was made,
one table per target with a row per level, the server's own view, the client's health, ratios
against the reference target and the cost at the saturation point.

The per-level cells are plain text (:func:`level_columns`, :func:`level_cells`) so report.html
shows the same table; Markdown only adds emphasis and escapes ``|``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qeval.perf._levels import CLIENT_SHARE_LIMIT, LEVEL_RATIO_METRICS
from qeval.perf._markdown import _cold_table, _interval, _num
from qeval.perf._schema import (
    Distribution,
    LevelPoint,
    LoadSettings,
    PerfRecord,
    PrecisionPerf,
    Quantile,
    Ratio,
    ServerGaugesSummary,
)

SATURATION_MARK = "(saturation point)"
"""Follows the level label in the row of the saturation point."""
CLIENT_FLAG_MARK = "(client flagged)"
"""Follows the level label where the load generator may have been the bottleneck."""
_RATIO_HEADERS = {
    "p50_ttft": "TTFT p50 × ref", "p95_ttft": "TTFT p95 × ref", "p50_tpot": "TPOT p50 × ref",
    "p95_tpot": "TPOT p95 × ref", "p95_e2e": "e2e p95 × ref", "tokens_per_s": "output tok/s × ref",
    "requests_per_s": "req/s × ref",
}


# --- the per-level table (shared with report.html) ---------------------------------------------


def level_columns(with_slos: bool) -> list[str]:
    """Headers of the per-level table; goodput and verdicts only when SLOs were given."""
    columns = [
        "level", "requests ok / sent", "offered req/s", "achieved req/s [95% CI]", "output tok/s [95% CI]",
        "TTFT p50 / p95 ms [p95 95% CI]", "TPOT p50 / p95 ms", "ITL p95 ms", "e2e p95 ms [95% CI]",
        "cap wait p95 ms", "errors: % [95% CI] (kinds)",
    ]
    return columns + (["goodput req/s [95% CI]", "SLO verdicts"] if with_slos else [])


def _quantile(q: Quantile | None, with_ci: bool = False) -> str:
    if q is None:
        return "–"
    return _interval(q.value, q.ci) if with_ci else _num(q.value)


def _dist(point: LevelPoint, kind: str) -> Distribution | None:
    return point.latency.get(kind)


def _pair(dist: Distribution | None, with_ci: bool) -> str:
    if dist is None:
        return "–"
    return f"{_quantile(dist.p50)} / {_quantile(dist.p95, with_ci)}"


def _offered(point: LevelPoint) -> str:
    if point.level.kind == "concurrency":
        return "– (closed loop)"
    return _num(point.offered_requests_per_s, 2)


def _errors(point: LevelPoint) -> str:
    failed = sum(point.errors.values())
    if not failed:
        return "0"
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(point.errors.items(), key=lambda kv: -kv[1]))
    rate = f"{_num(point.error_rate * 100)}%" if point.error_rate is not None else "–"
    if point.error_rate_ci is not None:
        rate += f" [{_num(point.error_rate_ci[0] * 100)}, {_num(point.error_rate_ci[1] * 100)}]"
    return f"{rate} ({kinds})"


def verdict_text(verdicts: Mapping[str, str]) -> str:
    """``all pass``, or each SLO that did not pass with its outcome."""
    if not verdicts:
        return "–"
    failing = [f"{slo}: {outcome}" for slo, outcome in verdicts.items() if outcome != "pass"]
    passing = len(verdicts) - len(failing)
    if not failing:
        return "all pass"
    return "; ".join(failing) + (f" (the other {passing} pass)" if passing else "")


def level_label(point: LevelPoint, saturation: str | None) -> str:
    """The level's label, marked when it is the saturation point or its client was flagged."""
    label = f"{point.label} {SATURATION_MARK}" if point.label == saturation else point.label
    return label + (f" {CLIENT_FLAG_MARK}" if point.client is not None and point.client.flagged else "")


def level_cells(point: LevelPoint, saturation: str | None, with_slos: bool) -> list[str]:
    """One row of the per-level table as plain text (as many cells as :func:`level_columns`)."""
    label = level_label(point, saturation)
    if point.status != "ok":
        rest = len(level_columns(with_slos)) - 2
        return [label, f"{point.status}: {point.reason or ''}".strip()] + [""] * rest
    cap = point.cap_wait.p95 if point.cap_wait is not None else None
    cells = [
        label, f"{point.ok_requests} / {point.requests}", _offered(point),
        _interval(point.requests_per_s, point.requests_per_s_ci, 2),
        _interval(point.output_tokens_per_s, point.output_tokens_per_s_ci),
        _pair(_dist(point, "ttft"), with_ci=True), _pair(_dist(point, "tpot"), with_ci=False),
        _quantile(d.p95 if (d := _dist(point, "itl")) else None),
        _quantile(d.p95 if (d := _dist(point, "e2e")) else None, with_ci=True),
        _quantile(cap), _errors(point),
    ]
    if with_slos:
        goodput = (_interval(point.goodput_requests_per_s, point.goodput_requests_per_s_ci, 2)
                   if point.good_requests is not None else "–")
        cells += [goodput, verdict_text(point.verdicts)]
    return cells


def saturation_line(perf: PrecisionPerf) -> str:
    """What the SLOs allow this target (only meaningful when SLOs were given); when a tail
    percentile could not be bounded, how many requests would bound it."""
    short = _unbounded_tails(perf)
    if perf.saturation is None:
        return "No level meets every SLO." + short
    return _saturated(perf) + short


def _unbounded_tails(perf: PrecisionPerf) -> str:
    """`` A p95 needs at least 72 measured requests ...`` when an inconclusive verdict is on a
    percentile the level's n cannot bound; else empty."""
    from qeval import stats
    from qeval.gates import parse_slo
    from qeval.perf._goodput import LATENCY_SLO

    needs = []
    for point in perf.levels:
        for text, outcome in point.verdicts.items():
            metric = parse_slo(text).metric  # a ratio's is unitless: p95_ttft
            match = LATENCY_SLO.match(metric if metric.endswith("_ms") else metric + "_ms")
            if outcome != "inconclusive" or match is None or match[1] == "50":
                continue
            dist = point.latency.get(match[2])
            need = stats.min_samples_for_quantile(int(match[1]) / 100)
            if dist is not None and dist.n < need:
                needs.append((f"p{match[1]}", need, dist.n))
    if not needs:
        return ""
    pct, need, n = max(needs, key=lambda x: x[1])
    return (f" A {pct} has a finite upper bound only from {need} measured requests per level (here {n}): "
            f"raise --requests (or --duration) to decide it.")


def _saturated(perf: PrecisionPerf) -> str:
    return (f"Saturation point: {perf.saturation} (the highest level, in the order given, at which every SLO "
            "passes on its 95% interval).")


# --- Markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_md(c) for c in cells) + " |"


def _load_section(record: PerfRecord, load: LoadSettings) -> list[str]:
    levels = ", ".join(level.label for level in load.levels) or "none"
    if load.requests_per_level is not None:
        size = f"{load.requests_per_level} measured request(s) per target and level over all rounds"
    else:
        size = f"{_num(load.duration_s)} s per target and level over all rounds (split evenly between rounds)"
    lines = [
        "## Load",
        "",
        f"- Workload: {load.workload or 'not recorded'}; {load.distinct_prompts} distinct prompt(s).",
        f"- Levels: {levels}.",
        f"- Size: {size}; a trace level replays the whole trace.",
        (f"- Warm-up: {load.warmup_requests} untimed request(s) per block before the measured ones, under the "
         "level's own shape (a closed-loop level sends at least one per user)."),
        f"- Seed: {load.seed} (arrival schedules, synthetic lengths).",
        f"- Prefix cache: {prefix_cache_note(load)}",
    ]
    if record.slos:
        lines.append(f"- SLOs (decided on 95% intervals): {', '.join(f'`{s}`' for s in record.slos)}.")
    return lines + [
        "",
        ("TTFT: send → first token, time queued in the server included; time a request waited on the client's own "
         "concurrency cap is apart (cap wait). TPOT = (e2e − TTFT)/(output tokens − 1); ITL: every gap between "
         "chunks, pooled. Achieved rates: completed requests (output tokens) / wall time, 95% interval over rounds. "
         "Goodput: completed requests per second whose own TTFT, TPOT and e2e meet every latency SLO. "
         "Percentile intervals are distribution-free 95% order-statistic intervals (∞: too few samples to bound it)."),
        "",
    ]


def prefix_cache_note(load: LoadSettings) -> str:
    """Whether a server's prefix cache could have served repeated prompts."""
    if load.unique_prompts:
        return ("each request carried a nonce at the start of its prompt (--unique-prompts), so no prompt was "
                "sent twice and a server's prefix cache could not serve one from an earlier request.")
    if load.prompts_repeated:
        return ("prompts repeated across requests and levels, so a server's prefix cache could serve repeats "
                "(lower TTFT than fresh prompts would see); --unique-prompts gives each request a nonce to defeat it.")
    return "no prompt was sent twice."


def _target_table(record: PerfRecord, perf: PrecisionPerf) -> list[str]:
    lines = [f"## {perf.precision}: load levels", ""]
    if perf.status != "ok" or not perf.levels:
        return lines + [f"**{perf.status}**: {perf.reason or 'no level was measured'}", ""]
    with_slos = bool(record.slos)
    sources = sorted({p.token_source for p in perf.levels if p.token_source})
    if sources:
        lines += [f"Output tokens counted from: {', '.join(sources)}.", ""]
    columns = level_columns(with_slos)
    lines += [_row(columns), "|" + "---|" * len(columns)]
    for point in perf.levels:
        cells = level_cells(point, perf.saturation, with_slos)
        if point.label == perf.saturation:
            cells[0] = f"**{cells[0]}**"
        lines.append(_row(cells))
    lines.append("")
    if with_slos:
        lines += [saturation_line(perf), ""]
        if all(p.good_requests is None for p in perf.levels):
            lines += ["Goodput needs a latency SLO on TTFT, TPOT or e2e (`p95_ttft_ms <= 300`); none was given.", ""]
    return lines + _server_lines(perf)


def _pct(fraction: float | None) -> str:
    return "–" if fraction is None else f"{fraction * 100:.1f}%"


def _gauges(point: LevelPoint, server: ServerGaugesSummary) -> str:
    return _row([
        point.label, server.engine or "–", str(server.samples),
        f"{_num(server.running_mean)} / {_num(server.running_max, 0)}",
        f"{_num(server.waiting_mean)} / {_num(server.waiting_max, 0)}",
        f"{_pct(server.kv_cache_usage_mean)} / {_pct(server.kv_cache_usage_max)}",
        _num(server.preemptions, 0),
    ])


def _server_lines(perf: PrecisionPerf) -> list[str]:
    """The server's own gauges per level; levels without any say so once per reason."""
    seen = [(p, p.server) for p in perf.levels if p.server is not None]
    if not seen:
        return []
    sampled = [(p, s) for p, s in seen if s.samples > 0]
    lines = [f"### {perf.precision}: the server's view (its /metrics)", ""]
    if sampled:
        lines += [
            "| level | engine | polls | running mean / max | waiting mean / max | KV cache used mean / max (%) "
            "| preemptions |",
            "|---|---|---|---|---|---|---|",
        ] + [_gauges(p, s) for p, s in sampled] + [""]
    missing: dict[str, list[str]] = {}
    for p, s in seen:
        if s.samples == 0:
            missing.setdefault(s.unavailable or "nothing was sampled", []).append(p.label)
    for reason, labels in missing.items():
        where = "any level" if len(labels) == len(perf.levels) else ", ".join(labels)
        lines += [f"No /metrics at {where}: {reason} (not an error; the client-side figures stand).", ""]
    return lines


def _client_section(record: PerfRecord) -> list[str]:
    healths = [p.client for perf in record.precisions for p in perf.levels if p.client is not None]
    limit = healths[0].share_limit if healths else CLIENT_SHARE_LIMIT
    lines = [
        "## Client health",
        "",
        (f"The generator's event-loop lag p99, dispatch lateness p99 and read overhead p50 must each stay under "
         f"{limit:.0%} of the level's median TTFT; a level where one does not is flagged (its latencies may carry "
         "the client's own delay: a lagging client only makes a target look slower, so there a pass stands and a "
         "fail counts only if it survives the lag taken off, else it is inconclusive)."),
        "",
    ]
    flagged = [(perf.precision, p) for perf in record.precisions for p in perf.levels
               if p.client is not None and p.client.flagged]
    if not flagged:
        return lines + ["No level was flagged.", ""]
    return lines + [f"- **{name} at {p.label}**: {p.client.reason if p.client else ''}" for name, p in flagged] + [""]


def _ratio_cell(ratios: Sequence[Ratio], metric: str, label: str) -> str:
    r = next((r for r in ratios if r.metric == metric and r.level == label), None)
    return "–" if r is None else _interval(r.value, r.ci, 2)


def _ratio_section(record: PerfRecord) -> list[str]:
    others = [p for p in record.precisions if p.precision != record.reference and p.levels]
    if not others:
        return []
    lines = [
        f"## Ratios against {record.reference}",
        "",
        "This / reference at the same level, with 95% intervals (both sides at 97.5% so they hold together).",
        "",
    ]
    for perf in others:
        header = ["level"] + [_RATIO_HEADERS.get(m, m) for m in LEVEL_RATIO_METRICS]
        lines += [f"### {perf.precision}", "", _row(header), "|" + "---|" * len(header)]
        lines += [_row([p.label] + [_ratio_cell(perf.level_ratios, m, p.label) for m in LEVEL_RATIO_METRICS])
                  for p in perf.levels]
        lines.append("")
    return lines


def priced_level(record: PerfRecord, perf: PrecisionPerf) -> LevelPoint | None:
    """The level cost is priced at: the saturation point with SLOs, else the highest throughput."""
    ok = [p for p in perf.levels if p.status == "ok" and p.output_tokens_per_s]
    if record.slos:
        return next((p for p in ok if p.label == perf.saturation), None)
    return max(ok, key=lambda p: p.output_tokens_per_s or 0.0, default=None)


def _cost_section(record: PerfRecord) -> list[str]:
    if not any(p.cost for p in record.precisions):
        return []
    lines = ["## Cost", ""]
    lines += (["Priced at each target's saturation point."] if record.slos
              else ["No SLOs given: priced at each target's highest-throughput level."]) + [""]
    lines += [
        "| target | priced at | output tok/s | USD / 1M output tokens | capacity tokens/h | break-even tokens/h |",
        "|---|---|---|---|---|---|",
    ]
    for perf in record.precisions:
        c, point = perf.cost, priced_level(record, perf)
        where = point.label if point else ("no level meets every SLO" if record.slos else "no ok level")
        lines.append(_row([
            perf.precision, where, _num(point.output_tokens_per_s if point else None),
            _num(c.usd_per_1m_output_tokens if c else None, 4), _num(c.capacity_tokens_per_hour if c else None, 0),
            _num(c.break_even_tokens_per_hour if c else None, 0),
        ]))
    return lines + [""]


def render_levels_markdown(record: PerfRecord) -> str:
    """The whole perf.md of a run that measured load levels."""
    lines = [
        f"# qeval perf: {record.model} on {record.device}",
        "",
        (f"Run `{record.run_id}` ({record.created_at}). Reference target: **{record.reference}**. "
         f"{record.rounds} round(s); at each level the targets run interleaved ABBA ({len(record.order)} blocks). "
         f"Up to {record.max_new_tokens} new tokens per request unless the workload says otherwise."),
        "",
    ]
    if record.incomplete:
        lines += [f"> **Incomplete: {record.incomplete}.** Every block that finished is below; levels and "
                  "targets the run did not reach have fewer requests (or none) than asked for.", ""]
    if record.load is not None:
        lines += _load_section(record, record.load)
    for perf in record.precisions:
        lines += _target_table(record, perf)
    lines += _client_section(record)
    lines += _ratio_section(record)
    lines += _cold_table(record)
    lines += _cost_section(record)
    return "\n".join(lines).rstrip() + "\n"


def has_levels(record: PerfRecord) -> bool:
    """Whether ``record`` measured load levels (rendered by this module)."""
    return record.load is not None or any(p.levels for p in record.precisions)


__all__ = [
    "CLIENT_FLAG_MARK", "SATURATION_MARK", "has_levels", "level_cells", "level_columns", "level_label",
    "prefix_cache_note",
    "priced_level", "render_levels_markdown", "saturation_line", "verdict_text",
]
