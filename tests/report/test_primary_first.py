"""Every table leads with each suite's primary metric and its interval; the pass rate follows, labelled."""

from __future__ import annotations

import re

from rich.console import Console

from qeval.report import render_console_table, render_markdown, table_rows
from qeval.report._html import render_html
from qeval.report._table import COLUMNS
from qeval.results import MetricValue
from qeval.suites import load_suite

MEDICAL, ARITH = load_suite("suites/medical").scoring(), load_suite("suites/arithmetic").scoring()


def _record(factory):
    return factory.make_record(cells=(
        factory.ok_cell("fp32", "medical", n=10, accuracy=0.0, accuracy_ci=(0.0, 0.28), scoring=MEDICAL,
                        metrics={"f1": MetricValue(0.52, (0.40, 0.63), 10), "recall": MetricValue(0.5, (0.3, 0.7), 10)}),
        factory.ok_cell("fp32", "arithmetic", n=10, accuracy=0.6, accuracy_ci=(0.31, 0.83), scoring=ARITH, metrics={}),
    ))


def test_rows_lead_with_the_primary_metric_then_the_labelled_pass_rate(factory):
    medical, arith = table_rows(_record(factory))
    assert COLUMNS[3:5] == ("primary metric [95% CI] n", "pass rate [95% CI]")
    assert medical.cells()[3:5] == ("f1 0.52 [0.40, 0.63] n=10", "0.00 [0.00, 0.28] n=10")
    assert "f1" not in medical.metrics and "recall 0.50" in medical.metrics  # shown once
    assert arith.cells()[3:5] == ("accuracy 0.60 [0.31, 0.83] n=10", "(primary)")


def test_summary_leads_with_f1_for_medical_and_explains_the_pass_rate(factory):
    text = render_markdown(_record(factory))
    row = next(line for line in text.splitlines() if line.startswith("| fp32 | medical"))
    assert row.split(" | ")[3] == "f1 0.52 [0.40, 0.63] n=10"
    assert "- medical: primary metric f1 = entity-level micro F1; pass rate: case F1 >= pass_f1" in text


def test_terminal_table_leads_with_the_primary_metric(factory):
    console = Console(width=300, record=True, color_system=None)
    console.print(render_console_table(_record(factory)))
    out = console.export_text()
    line = next(line for line in out.splitlines() if "medical" in line and "f1 0.52" in line)
    assert line.index("f1 0.52 [0.40, 0.63] n=10") < line.index("0.00 [0.00, 0.28] n=10")
    assert "medical: primary metric f1 = entity-level micro F1" in out


def test_page_table_leads_with_the_primary_metric(factory):
    html = render_html(_record(factory))
    table = html.split('<section id="targets-table">')[1].split("</section>")[0]
    headers = re.findall(r"<th>(.*?)</th>", table)
    assert headers[3:5] == ["primary metric [95% CI] n", "pass rate [95% CI]"]
    cells = re.findall(r"<td>(.*?)</td>", table)
    assert cells[3:5] == ["f1 0.52 [0.40, 0.63] n=10", "0.00 [0.00, 0.28] n=10"]
    assert "entity-level micro F1" in table
    assert "Precisions" not in html and "<h2>Targets</h2>" in html


def test_the_terminal_prints_the_same_decision_as_summary_md(factory):
    from qeval.report._decision import decide_run, render_decision_console

    record = _record(factory)
    decision = decide_run(record)
    console = Console(width=300, record=True, color_system=None)
    console.print(render_decision_console(decision))
    out = console.export_text()
    assert out.startswith(f"Decision: {decision.headline}")
    assert f"**{decision.headline}**" in render_markdown(record)
    for reason in decision.reasons[:3]:
        assert reason in out
