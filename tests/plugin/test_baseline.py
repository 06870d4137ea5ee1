"""Baselines: save, compare with planted flips, environment checks, and the cell cache."""

from __future__ import annotations

import json

from tests.plugin.conftest import run

QUICK = ("--qeval-latency-samples", "2", "--qeval-warmup", "0", "--qeval-precisions", "bf16")


def _save_baseline(project, model: str = "fakemodel:right", *extra: str) -> None:
    result = run(project, "--qeval", "mini", "--qeval-model", model, *QUICK, *extra, "--qeval-save-baseline", "base.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["qeval baseline saved: base.json"])


def test_planted_flips_fail_the_baseline_gates_and_are_reported(project):
    _save_baseline(project)
    result = run(
        project, "-v", "--qeval", "mini", "--qeval-model", "fakemodel:regressed", *QUICK,
        "--qeval-baseline", "base.json", "--qeval-slo", "accuracy_drop_vs(baseline) <= 0.01",
    )
    result.stdout.fnmatch_lines([
        "*mini::bf16::accuracy_drop_vs(baseline)<=0.01 FAILED*",
        "*mini::bf16::no-regression-vs-baseline*",
    ])
    out = result.stdout.str()
    assert "flipped  2 case(s) pass→fail against baseline:" in out
    assert "mini-01: expected 4" in out and "mini-03: expected 10" in out
    result.stdout.fnmatch_lines(["qeval regression vs base.json: *"])
    reports = list((project.path / "reports").glob("*/regression.json"))
    assert len(reports) == 1
    data = json.loads(reports[0].read_text())
    text = json.dumps(data)
    assert "mini-01" in text and "mini-03" in text
    assert (reports[0].parent / "regression.md").read_text().count("mini-01") >= 1


def test_unchanged_model_passes_against_its_own_baseline(project):
    _save_baseline(project)
    result = run(project, "-v", "--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK, "--qeval-no-cache",
                 "--qeval-baseline", "base.json", "--qeval-slo", "accuracy_drop_vs(baseline) <= 0.35",
                 "--qeval-slo", "accuracy_drop_vs(baseline) <= 0.01", "--qeval-inconclusive", "skip")
    # 12 identical cases bound the drop at about 0.24: enough for 0.35, too few for 0.01
    result.stdout.fnmatch_lines([
        "*accuracy_drop_vs(baseline)<=0.35 PASSED*",
        "*accuracy_drop_vs(baseline)<=0.01 SKIPPED*",
        "*no-regression-vs-baseline PASSED*",
    ])


def test_gained_cases_are_listed_too(project):
    _save_baseline(project, "fakemodel:regressed")
    run(project, "--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK, "--qeval-baseline", "base.json")
    md = next((project.path / "reports").glob("*/regression.md")).read_text()
    assert "mini-01" in md and "mini-03" in md  # fail→pass now


def test_latency_against_a_baseline_from_other_hardware_is_refused_unless_allowed(project):
    _save_baseline(project, "fakemodel:right", "--qeval-latency-samples", "8")  # a p50 needs 7 at 97.5%
    base = project.path / "base.json"
    data = json.loads(base.read_text())
    data["environment"]["cpu"]["model"] = "Some Other CPU 9000"
    base.write_text(json.dumps(data))
    args = ("--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK, "--qeval-baseline", "base.json",
            "--qeval-slo", "p50_e2e_ratio_vs(baseline) <= 100", "--qeval-latency-samples", "8")
    refused = run(project, *args)
    refused.stdout.fnmatch_lines(["*refused to compare latency*cpu.model: Some Other CPU 9000 != *--qeval-allow-env-mismatch*"])
    refused.assert_outcomes(failed=1, passed=1)
    allowed = run(project, *args, "--qeval-allow-env-mismatch")
    assert "refused to compare" not in allowed.stdout.str()
    allowed.assert_outcomes(passed=2)


def test_a_baseline_saved_at_schema_1_still_gates(project):
    from tests.report.test_schema_v1 import as_v1

    _save_baseline(project)
    base = project.path / "base.json"
    base.write_text(json.dumps(as_v1(json.loads(base.read_text()))))
    result = run(project, "-v", "--qeval", "mini", "--qeval-model", "fakemodel:regressed", *QUICK,
                 "--qeval-baseline", "base.json", "--qeval-slo", "accuracy_drop_vs(baseline) <= 0.01")
    result.stdout.fnmatch_lines(["*mini::bf16::accuracy_drop_vs(baseline)<=0.01 FAILED*"])
    assert "flipped  2 case(s) pass→fail against baseline:" in result.stdout.str()


def test_cells_are_reused_from_the_cache_until_something_changes(project):
    args = ("--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK)
    first = run(project, *args)
    assert "qeval: evaluating" in first.stdout.str()
    second = run(project, *args)
    assert "qeval: evaluating" not in second.stdout.str()
    second.stdout.fnmatch_lines(["*1 cell(s) reused from the cache*"])
    changed = run(project, *args, "--qeval-limit", "6")  # different cases: a different cell
    assert "qeval: evaluating" in changed.stdout.str()
    forced = run(project, *args, "--qeval-no-cache")
    assert "qeval: evaluating" in forced.stdout.str()


def test_github_step_summary_gets_the_verdict_table(project, monkeypatch):
    summary = project.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run(project, "--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK)
    text = summary.read_text()
    assert "| mini | bf16 | `accuracy>=0.5` | **pass** |" in text


def test_a_different_calibration_sample_is_a_different_cell(project):
    args = ("--qeval", "mini", "--qeval-model", "fakemodel:right", "--qeval-latency-samples", "0",
            "--qeval-precisions", "gptq-int4", "--qeval-calibration", "generic", "--qeval-calibration-samples", "4",
            "--qeval-slo", "accuracy >= 0.5")
    first = run(project, *args)
    first.assert_outcomes(passed=1)
    assert "qeval: evaluating" in run(project, *args, "--qeval-calibration-seed", "1").stdout.str()
    assert "qeval: evaluating" not in run(project, *args).stdout.str()
    data = json.loads(sorted((project.path / "reports").glob("*/results.json"))[0].read_text())
    assert data["settings"]["calibration"]["name"] == "generic"
    assert data["cells"][0]["precision_config"]["calibration"]["samples"] == 4


def test_a_fully_cached_rerun_never_imports_torch(project):
    # What makes a warm re-run cheap (benchmarks/warm_rerun.py): the cache key and the
    # report's fingerprint come from an earlier run's probe, not from importing torch.
    project.makeconftest("""
        import sys

        def pytest_unconfigure(config):
            open("torch_imported.txt", "w").write(str("torch" in sys.modules))
    """)
    args = ("--qeval", "mini", "--qeval-model", "fakemodel:right", *QUICK, "--qeval-device", "cpu")
    first = project.runpytest_subprocess("-p", "no:hypothesispytest", *args)
    assert "qeval: evaluating" in first.stdout.str()
    second = project.runpytest_subprocess("-p", "no:hypothesispytest", *args)
    second.stdout.fnmatch_lines(["*1 cell(s) reused from the cache*"])
    assert (project.path / "torch_imported.txt").read_text() == "False"
    report = sorted((project.path / "reports").glob("*/results.json"))[-1]
    torch_info = json.loads(report.read_text())["environment"]["torch"]
    assert isinstance(torch_info["threads"], int) and torch_info["probed"].startswith("earlier run")
