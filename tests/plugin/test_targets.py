"""The plugin with --qeval-target: an incumbent and a served canary gated on the same cases."""

from __future__ import annotations

import json
import re

import pytest

from tests.plugin.conftest import run
from tests.targets.scripted_server import ScriptedServer

QUICK = ("--qeval-latency-samples", "2", "--qeval-warmup", "0")


def _sums(body) -> str:
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", text)[0])
    return f"The answer is {a + b}."


def test_a_served_canary_is_gated_against_an_in_process_incumbent(project):
    with ScriptedServer(responder=_sums) as server:
        result = run(
            project, "-v", "--qeval", "mini", *QUICK,
            "--qeval-target", "incumbent=fakemodel:right@fp32",
            "--qeval-target", f"canary=openai:{server.base_url}",
            "--qeval-slo", "accuracy_drop_vs(incumbent) <= 0.3", "--qeval-slo", "error_rate <= 0.5",
        )
    result.stdout.fnmatch_lines([
        "*mini::canary::accuracy_drop_vs(incumbent)<=0.3 PASSED*",
        "*mini::canary::error_rate<=0.5 PASSED*",
    ])
    (slo_json,) = (project.path / "reports").glob("*/slo.json")
    assert "canary" in slo_json.read_text()
    (results,) = (project.path / "reports").glob("*/results.json")
    data = json.loads(results.read_text())
    assert {t["name"]: t["kind"] for t in data["targets"]} == {"incumbent": "model", "canary": "openai"}


def test_failed_requests_make_the_error_rate_gate_fail(project):
    # concurrency 1: the first three cases fail for good (four 500s each)
    with ScriptedServer(responder=_sums, faults=["500"] * 12) as server:
        result = run(
            project, "-v", "--qeval", "mini", *QUICK, "--qeval-concurrency", "1",
            "--qeval-target", f"canary=openai:{server.base_url}", "--qeval-slo", "error_rate <= 0.02",
        )
    result.stdout.fnmatch_lines(["*mini::canary::error_rate<=0.02 FAILED*"])
    assert "Traceback" not in result.stdout.str()


def test_a_down_endpoint_is_a_usage_error_not_a_hang(project):
    result = run(project, "--qeval", "mini", *QUICK, "--qeval-target", "canary=openai:http://127.0.0.1:9/v1")
    assert result.ret != 0
    out = result.stdout.str() + result.stderr.str()
    assert "127.0.0.1:9/v1" in out


def test_endpoint_cells_are_reused_only_with_a_revision(project):
    with ScriptedServer(responder=_sums) as server:
        args = ("--qeval", "mini", *QUICK, "--qeval-target", f"canary=openai:{server.base_url}")
        for _ in range(2):
            run(project, *args).assert_outcomes(passed=1)
        unversioned = len([r for r in server.requests if r.method == "POST"])
        assert unversioned == 2 * (12 + 2)  # nothing reused: a URL says nothing about what it serves
        for _ in range(2):
            run(project, *args, "--qeval-target-revision", "canary=v7").assert_outcomes(passed=1)
        versioned = len([r for r in server.requests if r.method == "POST"]) - unversioned
    assert versioned == 12 + 2  # the second run with the same revision came from the cache


def test_a_planted_key_appears_in_no_plugin_output(project, monkeypatch):
    key = "sk-qevalPLUGINplanted9876543210zyxw"
    monkeypatch.setenv("QEVAL_CANARY_KEY", key)
    summary = project.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with ScriptedServer(responder=_sums, faults=["401", "500"]) as server:
        result = run(
            project, "-v", "--qeval", "mini", *QUICK, "--junitxml", "junit.xml",
            "--qeval-target", "incumbent=fakemodel:right@fp32",
            "--qeval-target", f"canary=openai:{server.base_url}", "--qeval-api-key-env", "canary=QEVAL_CANARY_KEY",
            "--qeval-slo", "accuracy_drop_vs(incumbent) <= 0.3", "--qeval-save-baseline", "base.json",
        )
        auth = {r.headers.get("authorization") for r in server.requests if r.method == "POST"}
    assert auth == {f"Bearer {key}"}
    assert key not in result.stdout.str() + result.stderr.str()
    files = [p for p in project.path.rglob("*") if p.is_file()]
    assert summary in files and project.path / "junit.xml" in files and project.path / "base.json" in files
    for p in files:
        assert key.encode() not in p.read_bytes(), p


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--qeval-target", "canary=openai:http://127.0.0.1:9/v1", "--qeval-precisions", "fp32"), "not both"),
        (("--qeval-target", "canary"), "NAME=SPEC"),
        (("--qeval-api-key-env", "canary=KEY"), "give them with --qeval-target"),
        (("--qeval-target", "a=fakemodel:right@fp32", "--qeval-slo", "accuracy_drop_vs(b) <= 0.1"), "not in"),
    ],
)
def test_target_option_mistakes_are_usage_errors(project, args, says):
    result = run(project, "--qeval", "mini", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str()


def test_targets_from_pyproject(project):
    with ScriptedServer(responder=_sums) as server:
        project.makefile(".toml", pyproject=(
            "[tool.qeval]\n"
            f'target = ["incumbent=fakemodel:right@fp32", "canary=openai:{server.base_url}"]\n'
            'slos = ["accuracy_drop_vs(incumbent) <= 0.3"]\n'
            "latency_samples = 0\n"
        ))
        result = run(project, "-v", "--qeval", "mini")
    result.stdout.fnmatch_lines(["*mini::canary::accuracy_drop_vs(incumbent)<=0.3 PASSED*"])


def test_a_managed_target_whose_engine_is_missing_is_skipped_with_the_install_line(project, cache_sharing_models):
    result = run(
        project, "-v", "--qeval", "mini", *QUICK,
        "--qeval-target", "incumbent=fakemodel:right@fp32", "--qeval-target", "served=vllm:smollm2-135m@fp32",
        "--qeval-vllm", "/nonexistent/venv", "--qeval-engine-arg", "served:enforce-eager",
        "--qeval-slo", "accuracy_drop_vs(incumbent) <= 0.3",
    )
    out = result.stdout.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*mini::served::accuracy_drop_vs(incumbent)<=0.3 SKIPPED*"])
    assert "no vLLM found (--vllm /nonexistent/venv)" in out
