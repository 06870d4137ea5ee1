"""report.html: self-contained, escaped, flips per suite, perf only with perf, robust to plot failures."""

from __future__ import annotations

import base64
import re
import warnings
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.perf._schema import (
    Distribution,
    Goodput,
    LoadPoint,
    PerfRecord,
    PrecisionPerf,
    Quantile,
)
from qeval.report import RESULTS_FILE, ReportWarning, _html, write_report
from qeval.report._html import HTML_FILE, render_html, write_html
from tests.report.test_properties import cells as property_cells

EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _flipped(cells_cases, flip_ids, completion=None):
    """A copy of the cases where ``flip_ids`` switch pass/fail (and optionally say ``completion``)."""
    out = []
    for c in cells_cases:
        if c.case_id in flip_ids:
            c = replace(c, passed=not c.passed, score=1.0 - c.score, reason=None if not c.passed else "wrong",
                        completion=completion if completion is not None else c.completion)
        out.append(c)
    return tuple(out)


@pytest.fixture
def flip_record(factory):
    base = factory.cases(6)  # c0, c2, c4 pass
    return factory.make_record(cells=(
        factory.ok_cell("fp32", "arith", n=6, cases=base),
        factory.ok_cell("fp32", "extract", n=6, cases=base),
        factory.ok_cell("int8", "arith", n=6, cases=_flipped(base, {"c2"}, completion=EVIL)),
        factory.ok_cell("int8", "extract", n=6, cases=_flipped(base, {"c3"})),
        factory.not_run_cell("nf4", "arith", "skipped", "no lib"),
    ))


def _perf() -> PerfRecord:
    q = Quantile(100.0, (90.0, 120.0), 50)
    dist = Distribution(q, q, q, 50, samples_ms=tuple(80.0 + i for i in range(50)))
    pts = (LoadPoint(1, "ok", requests=50, latency={"ttft": dist}, output_tokens_per_s=40.0, peak_bytes=10**9),
           LoadPoint(8, "oom", reason="CUDA out of memory at batch 8"))
    return PerfRecord(
        run_id="r", created_at="t", model="fake", device="cuda", reference="fp32", batch_sizes=(1, 8), rounds=2,
        order=(), prompt_tokens=(8,), max_new_tokens=8, slos=(),
        precisions=(PrecisionPerf("fp32", "ok", points=pts, goodput=Goodput(1, 40.0, 1.0)),
                    PrecisionPerf("int8", "ok", points=pts)),
    )


def _images(html: str) -> list[str]:
    return re.findall(r'<img[^>]*\bsrc="([^"]*)"', html)


def _suite_chunks(html: str) -> dict[str, str]:
    parts = html.split('<section class="suite-flips"')[1:]
    return {re.search(r'data-suite="([^"]*)"', p)[1]: p.split("</section>")[0] for p in parts}


def test_page_is_written_and_self_contained(flip_record, tmp_path):
    path = write_html(flip_record, tmp_path / HTML_FILE, perf=_perf())
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    images = _images(html)
    assert len(images) == 3  # pareto, per-suite intervals, perf
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    # the precision table carries summary.md's numbers
    assert "0.50 [0.15, 0.85] n=6" in html and "skipped: no lib" in html


def test_model_text_is_escaped(flip_record):
    html = render_html(flip_record)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_flips_appear_under_their_suite(flip_record):
    chunks = _suite_chunks(render_html(flip_record))
    assert set(chunks) == {"arith", "extract"}
    assert ">c2<" in chunks["arith"] and ">c3<" not in chunks["arith"]
    assert ">c3<" in chunks["extract"] and ">c2<" not in chunks["extract"]
    assert "int8 vs fp32: 1 lost (passed in fp32), 0 gained" in chunks["arith"]
    assert "int8 vs fp32: 0 lost (passed in fp32), 1 gained" in chunks["extract"]
    assert "<details>" in chunks["arith"]


def test_perf_section_only_with_perf(flip_record):
    without = render_html(flip_record)
    assert 'id="perf"' not in without and len(_images(without)) == 2
    with_perf = render_html(flip_record, perf=_perf())
    assert 'id="perf"' in with_perf and "CUDA out of memory at batch 8" in with_perf


def test_recommendation_section(flip_record):
    from qeval.recommend import Candidate, recommend

    rec = recommend([Candidate("int8", weights_bytes=1), Candidate("fp32", weights_bytes=2)], ["accuracy >= 0.1"])
    html = render_html(flip_record, recommendation=rec)
    assert 'id="recommendation"' in html and "Recommended: int8" in html
    assert 'id="recommendation"' not in render_html(flip_record)


def test_a_failing_plot_keeps_the_rest_of_the_page(flip_record, monkeypatch):
    def boom(record):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(_html, "_draw_pareto", boom)
    html = render_html(flip_record)
    assert "plot not drawn (RuntimeError: no fonts)" in html
    assert len(_images(html)) == 1 and 'id="flips"' in html and 'id="targets-table"' in html


def test_write_report_writes_report_html(flip_record, tmp_path):
    folder = write_report(flip_record, tmp_path)
    assert (folder / HTML_FILE).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_write_report_survives_a_broken_html_page(flip_record, tmp_path, monkeypatch):
    import qeval.report._write as write_mod

    def boom(*a, **k):
        raise ValueError("template broke")

    monkeypatch.setattr(write_mod, "write_html", boom)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = write_report(flip_record, tmp_path)
    assert (folder / RESULTS_FILE).exists() and not (folder / HTML_FILE).exists()
    assert any(issubclass(w.category, ReportWarning) and "report.html" in str(w.message) for w in caught)


def test_degenerate_records_still_render(factory):
    for cells in ((), (factory.not_run_cell("a", "s", "failed", "boom"),),
                  (factory.ok_cell("fp32", "arith", accuracy=None, latency=None, memory=None),)):
        html = render_html(factory.make_record(cells=cells))
        assert "plot not drawn" not in html, html[:2000]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell_list=st.lists(property_cells, max_size=4))
def test_any_record_renders_every_plot(factory, cell_list):
    html = render_html(factory.make_record(cells=tuple(cell_list)))
    assert "plot not drawn" not in html


def test_endpoint_measurement_section_on_the_page(factory):
    from qeval.applied import AppliedPrecision, EndpointUsed

    lat = replace(factory.latency(), token_source="chunks", client_overhead_ms=factory.pct(0.3, 0.9))
    served = factory.ok_cell("served", "arith", latency=lat,
                             precision_config=AppliedPrecision(endpoint=EndpointUsed(url="http://127.0.0.1:8000/v1")))
    html = render_html(factory.make_record(cells=(served, factory.ok_cell("fp32", "arith"))))
    section = html.split('<section id="endpoint-measurement">')[1].split("</section>")[0]
    assert "chunks (approximate)" in section and "0.30 (n=8)" in section and "0 of 4" in section
    assert 'id="endpoint-measurement"' not in render_html(factory.make_record())
