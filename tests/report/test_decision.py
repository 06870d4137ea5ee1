"""The decision a report opens with: the cheapest target meeting the SLOs, or why there is none yet."""

from __future__ import annotations

import re

from qeval.report._decision import decide_run, render_decision_markdown
from qeval.report._html import render_html
from qeval.report._markdown import render_markdown
from qeval.results import MemoryStats, MetricValue
from qeval.suites import load_suite

MEDICAL = load_suite("suites/medical").scoring()  # primary f1, slos: f1 >= 0.3


def _cell(factory, target, f1, ci, n, weights, **kw):
    return factory.ok_cell(target, "medical", n=n, accuracy=0.0, accuracy_ci=(0.0, 0.28),
                           metrics={"f1": MetricValue(f1, ci, n)}, scoring=MEDICAL,
                           memory=MemoryStats(weights, weights * 3, "cpu_rss"), **kw)


def test_the_cheapest_target_that_passes_is_chosen_and_a_cheaper_undecided_one_says_which_n(factory):
    record = factory.make_record(cells=(
        _cell(factory, "fp32", 0.60, (0.50, 0.70), 40, 270_000_000),
        _cell(factory, "int4", 0.35, (0.10, 0.60), 10, 70_000_000),
    ))
    d = decide_run(record)
    assert d.kind == "chosen" and d.chosen == "fp32" and d.slos == ("medical: f1 >= 0.3",)
    assert d.headline.startswith("Ship fp32")
    assert any(r.startswith("fp32 · suite medical: f1 >= 0.3: pass, 0.60 [0.50, 0.70], n=40") for r in d.reasons)
    undecided = next(r for r in d.reasons if r.startswith("int4"))
    # ±25 points at n=10; the side facing the threshold (0.25) must shrink to the gap (0.05): n x 25 (float rounding: 251)
    assert "undecided at n=10: the interval spans ±25 points" in undecided and re.search(r"about n=25[01] would decide", undecided)


def test_no_decision_yet_when_nothing_fails_for_sure(factory):
    record = factory.make_record(cells=(_cell(factory, "int8", 0.35, (0.10, 0.60), 10, 135_000_000),))
    d = decide_run(record)
    assert d.kind == "undecided" and d.chosen is None and d.headline.startswith("No decision yet")
    assert re.search(r"about n=25[01] would decide", d.reasons[0])


def test_every_target_failing_says_so(factory):
    record = factory.make_record(cells=(_cell(factory, "int8", 0.10, (0.02, 0.20), 40, 135_000_000),))
    d = decide_run(record)
    assert d.kind == "none_meets" and "fail, 0.10 [0.02, 0.20], n=40" in d.reasons[0]


def test_given_slos_replace_the_suites_own_and_unknown_references_become_notes(factory):
    record = factory.make_record(cells=(_cell(factory, "int8", 0.60, (0.50, 0.70), 40, 135_000_000),))
    d = decide_run(record, ["f1 >= 0.65", "f1_drop_vs(bf16) <= 0.02"])
    assert d.slos == ("f1 >= 0.65",) and d.kind == "undecided"
    assert any("'bf16', which is not a target" in n for n in d.notes)


def test_without_slos_the_report_says_how_to_give_some(factory):
    d = decide_run(factory.make_record())  # old cells: no scoring, no suite SLOs
    assert d.kind == "no_slos" and "--slo" in d.headline


def test_summary_and_page_open_with_the_decision(factory):
    record = factory.make_record(cells=(
        _cell(factory, "fp32", 0.60, (0.50, 0.70), 40, 270_000_000),
        _cell(factory, "int4", 0.35, (0.10, 0.60), 10, 70_000_000),
    ))
    md = render_markdown(record)
    assert md.index("## Decision") < md.index("## Model") < md.index("## Results")
    assert "**Ship fp32" in md
    html = render_html(record)
    assert html.index('id="verdict"') < html.index('id="targets-table"') < html.index('id="pareto"')
    box = re.search(r'<section id="verdict" class="verdict chosen">(.*?)</section>', html, re.S)
    assert box is not None and "Ship fp32" in box[1] and re.search(r"about n=25[01] would decide", box[1])


def test_decision_markdown_lists_reasons_and_the_slos(factory):
    record = factory.make_record(cells=(_cell(factory, "int8", 0.35, (0.10, 0.60), 10, 135_000_000),))
    lines = render_decision_markdown(decide_run(record))
    assert lines[:3] == ["## Decision", "", f"**{decide_run(record).headline}**"]
    assert any("`medical: f1 >= 0.3`" in line for line in lines)


def test_a_pytest_run_without_suite_slos_points_to_its_verdicts(factory):
    from qeval.results import RunSettings

    d = decide_run(factory.make_record(settings=RunSettings(slos=("accuracy >= 0.9",))))
    assert d.kind == "no_slos" and "`accuracy >= 0.9`" in d.headline and "slo.md" in d.headline
