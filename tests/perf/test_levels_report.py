"""perf.md and report.html for a run that measured load levels (and a schema-1 perf.json still renders).

The records are built by hand from scripted requests through the same arithmetic the runner uses
(:func:`qeval.perf._levels.level_point`, ``with_verdicts``, ``saturation``), so the numbers the
report prints are the ones a real run would have recorded.
"""

from __future__ import annotations

import json
import re
from html import escape as html_escape
from dataclasses import replace

import pytest

from qeval.load._driver import LevelRun
from qeval.load._types import ArrivalSpec, LoadLevel, RequestSample
from qeval.perf import parse_perf_slos, read_perf, render_perf_markdown, write_perf
from qeval.perf._cost import cost_at
from qeval.perf._levels import level_point, level_ratios, saturation, with_verdicts
from qeval.perf._schema import (
    Distribution,
    LevelPoint,
    LoadPoint,
    LoadSettings,
    PerfRecord,
    PrecisionPerf,
    Quantile,
    Ratio,
    ServerGaugesSummary,
)
from qeval.perf._write import PERF_FILE, perf_dict
from qeval.report._html import render_html
from tests.report.conftest import make_record, ok_cell

C1, C8, C32 = (LoadLevel("concurrency", c) for c in (1, 8, 32))
RATE = LoadLevel("rate", 4.0, ArrivalSpec("poisson"), max_concurrency=16)
SLO_TEXT = "p95_ttft_ms <= 300"
NO_METRICS = "/metrics answered 404 (no Prometheus endpoint)"
PER_ROUND = 60  # two rounds: 120 requests per level, enough to bound a p95 (72)


def _samples(n: int, ttft_ms: float, tpot_ms: float, tokens: int = 16, errors: int = 0) -> tuple[RequestSample, ...]:
    out = []
    for i in range(n):
        first = ttft_ms * (0.9 + 0.2 * ((i * 7) % n) / n)
        times = tuple(first + k * tpot_ms for k in range(tokens))
        failed = i < errors
        out.append(RequestSample(
            index=i, due_s=i * 0.01, sent_s=i * 0.01, cap_wait_ms=0.0,
            token_times_ms=() if failed else times, e2e_ms=times[-1],
            output_tokens=None if failed else tokens, error_kind="timeout" if failed else None,
            client_overhead_ms=0.05,
        ))
    return tuple(out)


def _runs(level: LoadLevel, ttft_ms: float, wall_s: float, lag_ms: float = 0.1, errors: int = 0) -> list[LevelRun]:
    return [
        LevelRun(level, _samples(PER_ROUND, ttft_ms, 10.0, errors=errors), wall_s * scale,
                 scheduled_span_s=None if level.kind == "concurrency" else PER_ROUND / level.value * scale,
                 loop_lag_ms=(lag_ms,) * 50)
        for scale in (1.0, 1.1)
    ]


def _gauges(kv: float) -> ServerGaugesSummary:
    return ServerGaugesSummary(engine="vllm", samples=12, running_mean=6.5, running_max=8, waiting_mean=1.25,
                               waiting_max=3, kv_cache_usage_mean=kv, kv_cache_usage_max=kv + 0.1, preemptions=2)


def _target(name: str, slowdown: float, *, server: bool, flag_c32: bool, slos: tuple[str, ...],
            reference: tuple[LevelPoint, ...] | None = None) -> PrecisionPerf:
    shapes = ((C1, 50.0, 6.0), (C8, 120.0, 1.5), (C32, 400.0, 1.2))
    points = []
    for level, ttft, wall in shapes:
        gauges = [_gauges(0.42) if server else ServerGaugesSummary(unavailable=NO_METRICS)] * 2
        lag = 100.0 if flag_c32 and level is C32 else 0.1
        points.append(level_point(level, _runs(level, ttft * slowdown, wall, lag_ms=lag), parse_perf_slos(slos),
                                  gauges, warmup_requests=2, token_source="usage"))
    ratios: tuple[Ratio, ...] = ()
    if reference is not None:
        ratios = tuple(r for ref, cur in zip(reference, points) for r in level_ratios(ref, cur))
    parsed = parse_perf_slos(slos)
    if parsed:
        points = [replace(p, verdicts=with_verdicts(p, parsed, ratios, reference is None)) for p in points]
    sat = saturation(points)
    ok = [p for p in points if p.status == "ok"]
    priced = next((p for p in ok if p.label == sat), None) if slos else max(ok, key=lambda p: p.output_tokens_per_s or 0)
    return PrecisionPerf(name, "ok", weights_bytes=10**9, levels=tuple(points), level_ratios=ratios, saturation=sat,
                         cost=cost_at(2.0, priced.output_tokens_per_s if priced else None))


def _record(slos: tuple[str, ...] = (SLO_TEXT,), *, unique: bool = False, repeated: bool = True) -> PerfRecord:
    ref = _target("fp16", 1.0, server=True, flag_c32=False, slos=slos)
    other = _target("int8", 1.1, server=False, flag_c32=True, slos=slos, reference=ref.levels)
    load = LoadSettings(workload="synthetic: prompt 128 tokens, output 16 tokens", levels=(C1, C8, C32),
                        requests_per_level=120, duration_s=None, warmup_requests=2, unique_prompts=unique,
                        distinct_prompts=8, prompts_repeated=repeated, seed=7)
    return PerfRecord(run_id="lv-1", created_at="2026-01-01T00:00:00+00:00", model="tiny", device="cuda",
                      reference="fp16", batch_sizes=(), rounds=2, order=("0/fp16/c=1", "0/int8/c=1"),
                      prompt_tokens=(), max_new_tokens=16, slos=slos, precisions=(ref, other), load=load)


def _section(md: str, heading: str, nested: bool = False) -> str:
    """The Markdown from ``heading`` to the next heading (``nested``: of the same or a higher level)."""
    start = md.index(heading)
    depth = len(heading) - len(heading.lstrip("#")) if nested else 6
    rest = md[start + len(heading):]
    end = re.search(rf"^#{{1,{depth}}} ", rest, re.MULTILINE)
    return heading + (rest[:end.start()] if end else rest)


def _rows(table_md: str) -> dict[str, list[str]]:
    """Level label -> the row's cells, for every table row of ``table_md``."""
    out = {}
    for line in table_md.splitlines():
        if line.startswith("| ") and not line.startswith("| level"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[cells[0]] = cells
    return out


def _run():
    """A sweep's run record for report.html to carry the perf section on."""
    return make_record(cells=(ok_cell("fp16", "arith"), ok_cell("int8", "arith")))


# --- perf.md ------------------------------------------------------------------------------------


def test_levels_table_marks_the_saturation_point():
    record = _record()
    md = render_perf_markdown(record)
    table = _section(md, "## fp16: load levels")
    rows = _rows(table)
    assert set(rows) == {"c=1", "**c=8 (saturation point)**", "c=32"}
    assert "Saturation point: c=8" in table
    c32 = rows["c=32"]
    assert c32[-1] == f"{SLO_TEXT}: fail"
    assert rows["c=1"][-1] == "all pass"
    # achieved req/s with its interval over rounds, from level_point's own arithmetic
    point = record.precisions[0].levels[0]
    assert rows["c=1"][3] == f"{point.requests_per_s:,.2f} [{point.requests_per_s_ci[0]:,.2f}, {point.requests_per_s_ci[1]:,.2f}]"
    assert rows["c=1"][2] == "– (closed loop)" and rows["c=1"][1] == "120 / 120"
    ttft = point.latency["ttft"]
    assert rows["c=1"][5].startswith(f"{ttft.p50.value:,.1f} / {ttft.p95.value:,.1f} [")
    assert "Batch size" not in md


def test_no_level_meeting_every_slo_is_said():
    md = render_perf_markdown(_record(("p95_ttft_ms <= 10",)))
    assert "No level meets every SLO." in _section(md, "## fp16: load levels")
    assert "(saturation point)" not in md
    assert "| fp16 | no level meets every SLO |" in _section(md, "## Cost")


def test_goodput_column_only_with_slos():
    with_slos = render_perf_markdown(_record())
    assert "goodput req/s [95% CI]" in with_slos and "SLO verdicts" in with_slos
    without = render_perf_markdown(_record(()))
    assert "goodput req/s" not in without and "SLO verdicts" not in without
    assert "Saturation point" not in without and "No level meets" not in without
    assert "No SLOs given: priced at each target's highest-throughput level." in without


def test_goodput_column_says_why_without_a_latency_slo():
    md = render_perf_markdown(_record(("tokens_per_s >= 1",)))
    table = _section(md, "## fp16: load levels")
    assert "Goodput needs a latency SLO on TTFT, TPOT or e2e" in table
    assert _rows(table)["c=1"][-2] == "–"


def test_goodput_cells_carry_their_interval():
    record = _record()
    point = record.precisions[0].levels[1]
    assert point.good_requests == 120  # c=8: every request within 300 ms
    row = _rows(_section(render_perf_markdown(record), "## fp16: load levels"))["**c=8 (saturation point)**"]
    lo, hi = point.goodput_requests_per_s_ci
    assert row[-2] == f"{point.goodput_requests_per_s:,.2f} [{lo:,.2f}, {hi:,.2f}]"


def test_prefix_cache_note_both_ways():
    repeated = _section(render_perf_markdown(_record(repeated=True)), "## Load")
    assert "prompts repeated across requests and levels" in repeated and "--unique-prompts gives each request a nonce" in repeated
    assert "nonce to defeat it" in repeated
    unique = _section(render_perf_markdown(_record(unique=True, repeated=False)), "## Load")
    assert "each request carried a nonce" in unique and "repeated across" not in unique


def test_load_section_says_how_load_was_made():
    load = _section(render_perf_markdown(_record()), "## Load")
    assert "synthetic: prompt 128 tokens, output 16 tokens" in load and "8 distinct prompt(s)" in load
    assert "Levels: c=1, c=8, c=32." in load
    assert "120 measured request(s) per target and level" in load
    assert "Warm-up: 2 untimed request(s)" in load and "Seed: 7" in load
    assert f"`{SLO_TEXT}`" in load
    timed = replace(_record(), load=replace(_record().load, requests_per_level=None, duration_s=30.0))
    assert "30.0 s per target and level" in render_perf_markdown(timed)


def test_flagged_client_level_is_quoted_with_the_bound():
    record = _record()
    flagged = record.precisions[1].levels[2]
    assert flagged.client is not None and flagged.client.flagged
    health = _section(render_perf_markdown(record), "## Client health")
    assert "must each stay under 5% of the level's median TTFT" in health
    assert f"**int8 at c=32**: {flagged.client.reason}" in health
    assert "the load generator may be the bottleneck" in health
    assert "fp16 at" not in health  # only flagged levels are listed
    rows = _rows(_section(render_perf_markdown(record), "## int8: load levels"))
    assert "c=32 (client flagged)" in rows and "c=1" in rows


def test_no_flag_says_so():
    record = _record()
    calm = replace(record, precisions=(record.precisions[0],))
    assert "No level was flagged." in render_perf_markdown(calm)


def test_server_gauges_as_percent_and_missing_metrics_said_once():
    md = render_perf_markdown(_record())
    served = _section(md, "### fp16: the server's view (its /metrics)")
    row = _rows(served)["c=8"]
    assert row[1:] == ["vllm", "24", "6.5 / 8", "1.2 / 3", "42.0% / 52.0%", "4"]  # two rounds
    assert "No /metrics" not in served
    missing = _section(md, "### int8: the server's view (its /metrics)")
    assert missing.count("No /metrics") == 1
    assert f"No /metrics at any level: {NO_METRICS} (not an error" in missing
    assert "error" not in _rows(_section(md, "## int8: load levels"))["c=1"][1]


def test_ratios_per_level_against_the_reference():
    record = _record()
    ratios = _section(render_perf_markdown(record), "## Ratios against fp16", nested=True)
    assert "### int8" in ratios and "### fp16" not in ratios
    rows = _rows(ratios)
    assert set(rows) == {"c=1", "c=8", "c=32"}
    r = next(r for r in record.precisions[1].level_ratios if r.metric == "p95_ttft" and r.level == "c=8")
    assert rows["c=8"][2] == f"{r.value:,.2f} [{r.ci[0]:,.2f}, {r.ci[1]:,.2f}]"
    assert 1.05 < r.value < 1.15  # int8 was scripted 10% slower


def test_cost_at_the_saturation_point():
    record = _record()
    cost = _section(render_perf_markdown(record), "## Cost")
    assert "Priced at each target's saturation point." in cost
    sat = record.precisions[0].levels[1]
    usd = record.precisions[0].cost.usd_per_1m_output_tokens
    assert f"| fp16 | c=8 | {sat.output_tokens_per_s:,.1f} | {usd:,.4f} |" in cost


def test_failed_level_and_open_loop_offered_rate():
    record = _record(())
    ref = record.precisions[0]
    broken = LevelPoint(level=C32, label=C32.label, status="error", reason="RuntimeError: server went away")
    rate = level_point(RATE, _runs(RATE, 80.0, 16.0), ())
    record = replace(record, precisions=(replace(ref, levels=(ref.levels[0], rate, broken)),))
    rows = _rows(_section(render_perf_markdown(record), "## fp16: load levels"))
    assert rows["c=32"][1] == "error: RuntimeError: server went away"
    assert rows[RATE.label][2] == f"{rate.offered_requests_per_s:,.2f}"


def test_errors_show_rate_interval_and_kinds():
    level = level_point(C1, _runs(C1, 50.0, 6.0, errors=3), ())
    record = _record(())
    record = replace(record, precisions=(replace(record.precisions[0], levels=(level,)),))
    row = _rows(_section(render_perf_markdown(record), "## fp16: load levels"))["c=1"]
    assert row[1] == "114 / 120"
    assert re.fullmatch(r"5\.0% \[\d+\.\d, \d+\.\d\] \(timeout: 6\)", row[10])


def test_batch_profile_is_unchanged_without_load():
    q = Quantile(100.0, (90.0, 120.0), 50)
    dist = Distribution(q, q, q, 50)
    record = PerfRecord(
        run_id="b", created_at="t", model="m", device="cpu", reference="fp32", batch_sizes=(1,), rounds=1,
        order=("0/fp32/1",), prompt_tokens=(8,), max_new_tokens=8, slos=(),
        precisions=(PrecisionPerf("fp32", "ok", points=(LoadPoint(1, "ok", latency={"ttft": dist}),)),),
    )
    md = render_perf_markdown(record)
    assert "## Batch size 1" in md and "## Load" not in md and "Client health" not in md


# --- schema 1 ---------------------------------------------------------------------------------


@pytest.fixture
def schema1_perf(tmp_path):
    """A perf.json as schema 1 wrote it: a batch profile, none of the keys schema 2 added."""
    q = Quantile(100.0, (90.0, float("inf")), 50)
    dist = Distribution(q, q, q, 50, samples_ms=(90.0, 100.0, 110.0))
    point = LoadPoint(1, "ok", requests=50, latency={"ttft": dist, "tpot": dist}, output_tokens_per_s=40.0,
                      output_tokens_per_s_ci=(38.0, 42.0), peak_bytes=10**9, round_tokens_per_s=(39.0, 41.0))
    record = PerfRecord(
        run_id="v1", created_at="t", model="m", device="cpu", reference="fp32", batch_sizes=(1,), rounds=2,
        order=("0/fp32/1", "0/int8/1"), prompt_tokens=(8,), max_new_tokens=8, slos=(),
        precisions=(PrecisionPerf("fp32", "ok", points=(point,)),
                    PrecisionPerf("int8", "ok", points=(point,), ratios=(Ratio("p95_ttft", 1, 1.0, (0.9, 1.1)),))),
    )
    data = perf_dict(record)
    data["schema_version"] = 1
    del data["load"]
    for perf in data["precisions"]:
        for key in ("levels", "level_ratios", "saturation"):
            del perf[key]
        for ratio in perf["ratios"]:
            del ratio["level"]
    (tmp_path / PERF_FILE).write_text(json.dumps(data), encoding="utf-8")
    return tmp_path / PERF_FILE


def test_schema1_perf_still_reads_and_renders(schema1_perf):
    record = read_perf(schema1_perf)
    assert record.schema_version == 1 and record.load is None
    assert record.precisions[1].ratios[0].level is None
    md = render_perf_markdown(record)
    assert "## Batch size 1" in md and "| int8 |" in md and "1.00 [0.90, 1.10]" in md
    html = render_html(_run(), perf=record)
    assert 'id="perf"' in html and "plot not drawn" not in _perf_section(html)


def test_levels_record_round_trips_through_perf_json(tmp_path):
    record = _record()
    write_perf(record, tmp_path)
    again = read_perf(tmp_path)
    assert again.load == record.load and again.precisions[0].saturation == "c=8"
    assert render_perf_markdown(again) == (tmp_path / "perf.md").read_text(encoding="utf-8")


# --- report.html --------------------------------------------------------------------------------


def _perf_section(html: str) -> str:
    return html.split('<section id="perf">', 1)[1].split("</section>", 1)[0]


def test_html_draws_the_latency_throughput_curve_and_the_table():
    html = render_html(_run(), perf=_record())
    section = _perf_section(html)
    images = re.findall(r'<img[^>]*\bsrc="([^"]*)"', section)
    assert len(images) == 1 and images[0].startswith("data:image/png;base64,")
    assert "plot not drawn" not in section
    assert "<th>achieved req/s [95% CI]</th>" in section and "<th>goodput req/s [95% CI]</th>" in section
    assert "c=8 (saturation point)" in section and "Saturation point: c=8" in section
    assert html_escape(f"{SLO_TEXT}: fail") in section
    assert "the load generator may be the bottleneck" in section  # the flagged level, quoted
    assert "batch" not in section.lower().split("<table", 1)[1].split("</tr>", 1)[0]  # not the batch table


def test_html_levels_plot_draws_without_slos_and_with_unbounded_intervals():
    record = _record(())
    short = level_point(C8, [replace(r, samples=r.samples[:20]) for r in _runs(C8, 120.0, 1.5)], ())
    assert short.latency["ttft"].p95.ci[1] == float("inf")  # 40 requests cannot bound a p95
    ref = record.precisions[0]
    record = replace(record, precisions=(replace(ref, levels=(ref.levels[0], short)),))
    section = _perf_section(render_html(_run(), perf=record))
    assert "plot not drawn" not in section and "data:image/png;base64," in section
    assert "goodput req/s" not in section


def test_unbounded_p95_is_drawn_as_a_clipped_arrow_with_a_note():
    from qeval.report._plots import draw_perf_levels

    record = _record(())
    short = level_point(C8, [replace(r, samples=r.samples[:20]) for r in _runs(C8, 120.0, 1.5)], ())
    ref = record.precisions[0]
    fig = draw_perf_levels(replace(record, precisions=(replace(ref, levels=(ref.levels[0], short)),)))
    curve = fig.axes[0]
    arrows = [line for line in curve.get_lines() if line.get_marker() == "^"]
    assert len(arrows) == 2  # p95 TTFT and p95 e2e of c=8, neither bounded above
    tip = arrows[0].get_ydata()[0]
    assert tip > short.latency["ttft"].p95.value and curve.get_ylim()[1] < 1e6  # clipped, the axis keeps its scale
    assert "a p95 bound the samples cannot support" in fig.get_supxlabel()


def test_level_labels_do_not_overlap():
    from qeval.report._plots import draw_perf_levels

    fig = draw_perf_levels(_record())
    renderer = fig.canvas.get_renderer()
    for curve in fig.axes[::2]:
        boxes = [t.get_window_extent(renderer) for t in curve.texts]
        assert len(boxes) == 6  # three levels, two series
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (a, b)


def test_levels_figure_marks_saturation_and_slo_lines():
    from qeval.report._plots import draw_perf_levels

    fig = draw_perf_levels(_record())
    curve = fig.axes[0]
    texts = {t.get_text() for t in curve.texts}
    assert {"c=1", "c=8", "c=32"} <= texts
    (legend,) = fig.legends  # one legend above every panel
    entries = [t.get_text() for t in legend.get_texts()]
    assert {"p95 TTFT", "p95 e2e", "saturation point", f"SLO {SLO_TEXT}", "goodput req/s"} <= set(entries)
    slo_line = next(line for line in curve.get_lines() if line.get_label() == f"SLO {SLO_TEXT}")
    assert list(slo_line.get_ydata()) == [300.0, 300.0]
    rings = [c for c in curve.collections if c.get_label() == "saturation point"]
    sat = _record().precisions[0].levels[1]
    assert rings and tuple(rings[0].get_offsets()[0]) == pytest.approx((sat.output_tokens_per_s,
                                                                         sat.latency["ttft"].p95.value))
    assert len(fig.axes) == 4  # two targets, two panels each


def test_latencies_spanning_decades_get_a_log_axis():
    from qeval.report._plots import draw_perf_levels

    fast = level_point(C1, _runs(C1, 2.0, 6.0), ())
    slow = level_point(C32, _runs(C32, 4000.0, 1.2), ())
    record = _record(())
    record = replace(record, precisions=(replace(record.precisions[0], levels=(fast, slow), saturation=None),))
    fig = draw_perf_levels(record)
    assert fig.axes[0].get_yscale() == "log"
    assert {"c=1", "c=32"} <= {t.get_text() for t in fig.axes[0].texts}
