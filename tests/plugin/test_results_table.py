"""The plugin's terminal summary and slo.md lead with each suite's primary metric and its interval."""

from __future__ import annotations

from tests.plugin.conftest import run

FAKE = ("--qeval-model", "fakemodel:int4_odd", "--qeval-latency-samples", "2", "--qeval-warmup", "0")


def test_terminal_and_slo_md_show_the_primary_metric_first(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "bf16,int4", "--qeval-report", "out")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*qeval: results (each suite's primary metric first)*",
        "target*suite*status*primary metric [[]95% CI[]] n*pass rate [[]95% CI[]]*TTFT p95 ms (n)",
        "bf16*mini*ok*accuracy 1.00 [[]0.*, 1.00[]] n=12*(primary)*",
        "int4*mini*ok*accuracy 0.50 [[]0.*, 0.*[]] n=12*(primary)*",
        "mini: primary metric accuracy = pass rate: *",
        "*qeval: SLO verdicts*",
    ])
    (slo_md,) = (project.path / "out").glob("*/slo.md")
    text = slo_md.read_text()
    assert "| target | suite | status | primary metric [95% CI] n | pass rate [95% CI] | TTFT p95 ms (n) |" in text
    assert text.index("primary metric [95% CI] n") < text.index("| suite | target | SLO | verdict |")
    assert "| int4 | mini | ok | accuracy 0.50 [" in text
