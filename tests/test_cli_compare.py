"""`qeval compare`: exit 0 without a regression, 1 with one, 2 for a user mistake (no traceback)."""

from __future__ import annotations

import json
from dataclasses import replace

from typer.testing import CliRunner

from qeval.cli import app
from qeval.report import write_record, write_report
from tests.test_compare import ENV, cell, planted, run, spread, timed

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _files(tmp_path, baseline, current):
    return write_record(baseline, tmp_path / "baseline.json"), write_record(current, tmp_path / "current.json")


def test_no_regression_exits_0(tmp_path):
    record = run(cell([i % 2 == 0 for i in range(20)], latency=timed(spread(100.0))))
    a, b = _files(tmp_path, record, replace(record, run_id="again"))
    code, out = _run("compare", a, b)
    assert code == 0, out
    assert out.startswith("qeval compare: no regression")
    assert "arith / int8: baseline ok, current ok" in out


def test_regression_exits_1_and_writes_the_reports(tmp_path):
    base, cur = planted(200, lost=range(0, 80, 2))
    a, b = _files(tmp_path, run(cell(base)), run(cell(cur), run_id="cur"))
    code, out = _run("compare", a, b, "--out", tmp_path / "cmp")
    assert code == 1, out
    assert out.startswith("qeval compare: REGRESSION")
    assert "arith / int8: accuracy 0.500 -> 0.300" in out
    md = (tmp_path / "cmp" / "regression.md").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "cmp" / "regression.json").read_text(encoding="utf-8"))
    assert "| c78 |" in md and data["regressed"] is True
    assert "regression.md" in out and "regression.json" in out


def test_run_folders_are_accepted(tmp_path):
    base, cur = planted(10, lost=[0])
    folder_a = write_report(run(cell(base)), tmp_path / "reports")
    folder_b = write_report(run(cell(cur), run_id="cur"), tmp_path / "reports")
    code, out = _run("compare", folder_a, folder_b / "results.json")
    assert code == 0, out  # one lost case of 10 is not significant
    assert "1 case(s) passed in the baseline, fail now" in out and "c0" in out


def test_env_mismatch_flag_and_tolerance(tmp_path):
    passed = [True] * 10
    a = run(cell(passed, latency=timed(spread(100.0))))
    b = run(cell(passed, latency=timed(spread(150.0))), run_id="cur",
            environment=replace(ENV, packages={"torch": "2.12.1"}))
    fa, fb = _files(tmp_path, a, b)
    code, out = _run("compare", fa, fb)
    assert code == 0, out
    assert "pass --allow-env-mismatch to compare anyway" in out and "packages.torch: 2.13.0 != 2.12.1" in out
    code, out = _run("compare", fa, fb, "--allow-env-mismatch")
    assert code == 1 and "p95_ttft_ms" in out
    code, out = _run("compare", fa, fb, "--allow-env-mismatch", "--latency-tolerance", "1.0")
    assert code == 0, out


def test_missing_file_is_a_user_error(tmp_path):
    a, _ = _files(tmp_path, run(cell([True])), run(cell([True])))
    code, out = _run("compare", a, tmp_path / "nope.json")
    assert code == 2, out
    assert "Traceback" not in out
    assert "nope.json: no such file" in out and "run folder" in out


def test_damaged_file_is_a_user_error(tmp_path):
    a, b = _files(tmp_path, run(cell([True])), run(cell([True])))
    b.write_text("{not json", encoding="utf-8")
    code, out = _run("compare", a, b)
    assert code == 2 and "Traceback" not in out and "not valid JSON" in out


def test_negative_tolerance_is_refused(tmp_path):
    a, b = _files(tmp_path, run(cell([True])), run(cell([True])))
    code, out = _run("compare", a, b, "--latency-tolerance", "-0.5")
    assert code == 2 and "Traceback" not in out
