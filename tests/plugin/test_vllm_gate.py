"""A pytest release gate: the in-process incumbent against the canary served by a real vLLM."""

from __future__ import annotations

import json

import pytest

from tests.plugin.conftest import run

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_canary_on_vllm_is_gated_against_the_in_process_incumbent(project, vllm_server):
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).resolve().parents[2] / "suites" / "arithmetic", project.path / "arithmetic")
    result = run(
        project, "-v", "--qeval", "arithmetic", "--qeval-limit", "4", "--qeval-latency-samples", "2",
        "--qeval-warmup", "0", "--qeval-target", "incumbent=smollm2-135m@fp32",
        "--qeval-target", f"canary=openai:{vllm_server.base_url}",
        "--qeval-slo", "accuracy_drop_vs(incumbent) <= 0.6", "--qeval-slo", "error_rate <= 0.6",
    )
    result.stdout.fnmatch_lines([
        "*arithmetic::canary::accuracy_drop_vs(incumbent)<=0.6 PASSED*",
        "*arithmetic::canary::error_rate<=0.6 PASSED*",
    ])
    (results,) = (project.path / "reports").glob("*/results.json")
    cells = {c["precision"]: c for c in json.loads(results.read_text())["cells"]}
    # greedy fp32 on both sides: the same answers, so no case flipped
    assert cells["canary"]["accuracy"] == cells["incumbent"]["accuracy"]
    assert cells["canary"]["latency"]["token_source"] == "usage"
