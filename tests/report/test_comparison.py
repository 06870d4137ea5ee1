"""regression.md / regression.json / terminal text of a comparison."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from qeval.compare import compare_runs
from qeval.report import (
    REGRESSION_JSON,
    REGRESSION_MD,
    comparison_dict,
    render_comparison_markdown,
    render_comparison_text,
    write_comparison,
)
from qeval.results import CaseResult
from tests.test_compare import ENV, cell, planted, run, timed


def _regressed(n: int = 200, lost_every: int = 2, lost_upto: int = 80):
    base, cur = planted(n, lost=range(0, lost_upto, lost_every))
    a = run(cell(base, latency=timed([100.0 + i for i in range(8)])))
    b = run(cell(cur, latency=timed([300.0 + i for i in range(8)])), run_id="cur")
    return compare_runs(a, b)


def _strict(obj) -> None:
    """Fail on any NaN or infinity anywhere in ``obj``."""
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
    elif isinstance(obj, dict):
        for v in obj.values():
            _strict(v)
    elif isinstance(obj, list):
        for v in obj:
            _strict(v)


def test_json_is_strict_and_unbounded_intervals_become_null():
    cmp = _regressed()
    data = comparison_dict(cmp)
    _strict(data)
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["verdict"] == "REGRESSION" and back["regressed"] is True
    p95 = next(m for m in back["cells"][0]["metrics"] if m["metric"] == "p95_ttft_ms")
    assert p95["ci"][1] is None  # 8 samples cannot bound a p95 from above
    assert [f["case_id"] for f in back["cells"][0]["lost"]][:3] == ["c0", "c2", "c4"]
    assert back["baseline_environment"]["packages"] == {"torch": "2.13.0"}


def test_markdown_lists_every_flip_and_the_verdict():
    cmp = _regressed()
    text = render_comparison_markdown(cmp)
    assert text.startswith("# qeval comparison: REGRESSION")
    assert "**40 case(s) passed in the baseline, fail now**" in text
    for i in range(0, 80, 2):
        assert f"| c{i} | {i} | right {i} | wrong {i} |" in text
    assert "| accuracy | 0.500 | 0.300 | -0.200 |" in text
    assert "REGRESSION" in text.split("## How to read this")[0].split("| accuracy |")[1].splitlines()[0]
    assert "unbounded]" in text


def test_markdown_escapes_completions_inside_table_cells():
    nasty = "a | b\n<think>*x*</think> `c`"
    base = cell([True, True])
    cases = (replace(base.cases[0], passed=False, completion=nasty), base.cases[1])
    cur = cell([False, True], cases=cases)
    text = render_comparison_markdown(compare_runs(run(base), run(cur, run_id="cur")))
    flip_row = next(line for line in text.splitlines() if line.startswith("| c0 |"))
    assert flip_row.count(" | ") == 3  # four columns: the pipe inside the completion is escaped
    assert "\\|" in flip_row and "\\<think\\>" in flip_row and "\\*x\\*" in flip_row and "↵" in flip_row


def test_markdown_environment_table_shows_both_sides():
    env_b = replace(ENV, packages={"torch": "2.12.1"})
    a = run(cell([True] * 4))
    b = run(cell([True] * 4), run_id="cur", environment=env_b)
    text = render_comparison_markdown(compare_runs(a, b))
    assert "| packages.torch | 2.13.0 | 2.12.1 | DIFFERS |" in text
    assert "| device | cpu | cpu | same |" in text
    assert "**not compared** (environments differ)" in text
    assert "--allow-env-mismatch" in text


def test_no_regression_headline_does_not_claim_equivalence():
    record = run(cell([True] * 4))
    cmp = compare_runs(record, replace(record, run_id="again"))
    md, txt = render_comparison_markdown(cmp), render_comparison_text(cmp)
    assert md.startswith("# qeval comparison: no regression")
    assert "not proof of no change" in md and "not proof of no change" in txt
    assert txt.startswith("qeval compare: no regression")


def test_text_is_aligned_and_caps_the_flips():
    cmp = _regressed()
    text = render_comparison_text(cmp, max_flips=5)
    lines = text.splitlines()
    assert lines[0] == "qeval compare: REGRESSION"
    header = next(line for line in lines if line.strip().startswith("metric"))
    accuracy = next(line for line in lines if line.strip().startswith("accuracy"))
    assert header.index("baseline") == accuracy.index("0.500")
    assert header.index("verdict") == accuracy.index("REGRESSION")
    assert "40 case(s) passed in the baseline, fail now:" in text
    flip_rows = [line.split()[0] for line in lines if line.startswith("    c")]
    assert flip_rows == ["c0", "c2", "c4", "c6", "c8"]
    assert "... and 35 more" in text
    assert text.rstrip().splitlines()[-1].startswith("  - arith / int8: ")


def test_text_completions_are_one_line():
    long = "line one\nline two " + "x" * 200
    base = cell([True])
    cur = cell([False], cases=(replace(base.cases[0], passed=False, completion=long),))
    text = render_comparison_text(compare_runs(run(base), run(cur, run_id="cur")))
    row = next(line for line in text.splitlines() if line.strip().startswith("c0"))
    assert "line one line two" in row and "…" in row and len(row) < 200


def test_write_comparison_writes_both_files(tmp_path):
    cmp = _regressed()
    md_path, json_path = write_comparison(cmp, tmp_path / "out")
    assert (md_path.name, json_path.name) == (REGRESSION_MD, REGRESSION_JSON)
    assert md_path.read_text(encoding="utf-8") == render_comparison_markdown(cmp)
    assert json.loads(json_path.read_text(encoding="utf-8")) == json.loads(json.dumps(comparison_dict(cmp)))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".qeval-tmp")]


def test_expected_values_of_any_shape_are_rendered():
    base = cell([True])
    c0 = base.cases[0]
    structured = CaseResult(**{**c0.__dict__, "expected": {"name": "Ada", "year": 1815}})
    base = cell([True], cases=(structured,))
    cur = cell([False], cases=(replace(structured, passed=False, completion="Bob"),))
    cmp = compare_runs(run(base), run(cur, run_id="cur"))
    assert '{"name": "Ada", "year": 1815}' in render_comparison_markdown(cmp)
    assert '{"name": "Ada", "year": 1815}'[:19] in render_comparison_text(cmp)


def test_a_lost_cell_is_listed_in_markdown_and_text():
    a = run(cell([True] * 4), cell([True] * 4, precision="int4"))
    cmp = compare_runs(a, run(cell([True] * 4), run_id="cur"))
    md, txt = render_comparison_markdown(cmp), render_comparison_text(cmp)
    assert "## arith / int4 — REGRESSION" in md
    assert "- **regression**: arith / int4: ok in the baseline, missing from the current run" in md
    assert "arith / int4: baseline ok, current missing  REGRESSION" in txt
