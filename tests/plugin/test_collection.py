"""Collection, ids, pass/fail/inconclusive verdicts and failure messages."""

from __future__ import annotations

import subprocess
import sys

from tests.plugin.conftest import run

FAKE = ("--qeval-model", "fakemodel:int4_odd", "--qeval-latency-samples", "2", "--qeval-warmup", "0")


def test_plugin_module_imports_without_torch():
    code = "import sys, pytest_qeval.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_without_flag_the_plugin_is_inert(project):
    result = run(project, "mini")
    assert result.ret == 5  # nothing collected
    result.stdout.fnmatch_lines(["*no tests ran*"])


def test_p_no_qeval_disables_it(project):
    result = run(project, "-p", "no:qeval", "--qeval", "mini")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unrecognized arguments: --qeval*"])


def test_items_have_readable_ids_and_verdicts(project):
    result = run(
        project, "-v", "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16,int4",
        "--qeval-slo", "accuracy >= 0.2", "--qeval-slo", "accuracy_drop_vs(bf16) <= 0.02",
    )
    result.stdout.fnmatch_lines([
        "*mini::bf16::accuracy>=0.2 PASSED*",
        "*mini::int4::accuracy>=0.2 PASSED*",
        "*mini::int4::accuracy_drop_vs(bf16)<=0.02 FAILED*",
    ])
    # the reference precision gets no item against itself
    assert "mini::bf16::accuracy_drop_vs" not in result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)


def test_failure_shows_value_interval_rule_and_flipped_cases(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16,int4",
                 "--qeval-slo", "accuracy_drop_vs(bf16) <= 0.02")
    result.stdout.fnmatch_lines([
        "SLO      accuracy_drop_vs(bf16)<=0.02    [[]mini at int4[]]",
        "verdict  FAIL",
        "value    0.5   95% CI [[]0.*, 0.*[]]   n=12",
        "interval paired score interval (Tango) over 12 cases, 6 of them flipped",
        "rule     pass if the interval's upper bound <= 0.02; fail if its lower bound is not",
        "flipped  6 case(s) pass→fail against bf16:",
        "  mini-00: expected 1 | bf16: 'The answer is 1.' | int4: 'The answer is 2.'",
    ])
    result.stdout.fnmatch_lines(["*qeval: SLO verdicts*", "mini*int4*accuracy_drop_vs(bf16)<=0.02*fail*0.5*12"])


def test_inconclusive_policies(project):
    args = ("--qeval", "mini", *FAKE, "--qeval-precisions", "int4", "--qeval-slo", "accuracy >= 0.4")
    failed = run(project, *args)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["verdict  INCONCLUSIVE", "why      the interval straddles the threshold*about n=*"])
    skipped = run(project, *args, "--qeval-inconclusive", "skip", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*SKIPPED*inconclusive*"])
    passed = run(project, *args, "--qeval-inconclusive=pass")
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["*int4*accuracy>=0.4*inconclusive*"])


def test_suite_defaults_are_used_without_slo_options(project):
    result = run(project, "-v", "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16")
    result.stdout.fnmatch_lines(["*mini::bf16::accuracy>=0.5 PASSED*"])


def test_scoped_slo_applies_to_its_suite_only(project):
    result = run(project, "-v", "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16",
                 "--qeval-slo", "mini: accuracy >= 0.6")
    result.stdout.fnmatch_lines(["*mini::bf16::accuracy>=0.6 PASSED*"])
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-slo", "medical: f1 >= 0.6")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*scoped to suite(s) medical, but the collected suites are mini*"])


def test_latency_p95_on_few_samples_is_inconclusive_and_says_how_many(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16",
                 "--qeval-slo", "p95_ttft_ms <= 1000")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["value*95% CI [[]*, unbounded[]]   n=2", "*about n=72 would decide it*"])


def test_junit_xml_carries_the_measured_values(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16", "--junitxml=out.xml")
    result.assert_outcomes(passed=1)
    xml = (project.path / "out.xml").read_text()
    assert '<property name="qeval_value" value="1.0"' in xml
    assert '<property name="qeval_verdict" value="pass"' in xml


def test_fixtures_give_frozen_cells_and_models(project):
    project.makepyfile(test_hand="""
        import dataclasses
        import pytest

        def test_cell(qeval_run):
            cell = qeval_run("mini", "bf16")
            assert cell.accuracy == 1.0 and cell.n == 12
            with pytest.raises(dataclasses.FrozenInstanceError):
                cell.accuracy = 0.0

        def test_model(qeval_model):
            model = qeval_model("int4")
            assert qeval_model("int4") is model
            from qeval.generation import GenerationSettings
            from qeval.models import conversation
            prompt = model.prepare(conversation("What is 3 + 4?"), chat=False)
            assert model.generate([prompt], GenerationSettings())[0].text == "The answer is 8."
    """)
    result = run(project, "--qeval", "test_hand.py", *FAKE)
    result.assert_outcomes(passed=2)
    result = run(project, "test_hand.py")
    result.assert_outcomes(skipped=2)


def test_latency_is_paired_with_the_first_target_unless_switched_off(project):
    import json

    def cells(*extra: str) -> dict:
        # a median needs 7 pairs to be bounded at 95%
        result = run(project, "--qeval", "mini", *FAKE, "--qeval-latency-samples", "8", "--qeval-precisions",
                     "bf16,int4", "--qeval-no-cache", "--qeval-slo", "p50_ttft_ratio_vs(bf16) <= 1000", *extra)
        result.assert_outcomes(passed=1)
        folder = sorted((project.path / "reports").iterdir(), key=lambda p: p.stat().st_mtime)[-1]
        data = json.loads((folder / "results.json").read_text())
        return {c["precision"]: c["latency"] for c in data["cells"]}

    paired = cells()
    assert paired["bf16"]["paired"] is None  # the reference is not paired with itself
    assert paired["int4"]["paired"]["reference"] == "bf16" and paired["int4"]["paired"]["pairs"] == 8
    assert paired["int4"]["background"] is not None  # every timed pass records the machine's load
    alone = cells("--qeval-no-latency-pairing")
    assert alone["int4"]["paired"] is None
