"""The README's release gate: `pytest --qeval` with the in-process incumbent and the canary served
by a real vLLM, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_canary_on_vllm_is_gated_against_the_in_process_incumbent(vllm_server, tmp_path):
    cmd = [
        sys.executable, "-m", "pytest", "-v", "--qeval", "suites/arithmetic", "--qeval-limit", "4",
        "--qeval-latency-samples", "2", "--qeval-warmup", "0",
        "--qeval-target", "incumbent=smollm2-135m@fp32", "--qeval-target", f"canary=openai:{vllm_server.base_url}",
        "--qeval-slo", "accuracy_drop_vs(incumbent) <= 0.6", "--qeval-slo", "error_rate <= 0.6",
        "--qeval-report", str(tmp_path / "reports"), "-o", f"cache_dir={tmp_path / 'cache'}",
        "-p", "no:hypothesispytest", "--junitxml", str(tmp_path / "junit.xml"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "arithmetic::canary::accuracy_drop_vs(incumbent)<=0.6 PASSED" in out
    assert "arithmetic::canary::error_rate<=0.6 PASSED" in out
    (results,) = (tmp_path / "reports").glob("*/results.json")
    cells = {c["precision"]: c for c in json.loads(results.read_text())["cells"]}
    # greedy fp32 on both sides: the same answers, so the same accuracy
    assert cells["canary"]["accuracy"] == cells["incumbent"]["accuracy"]
    assert cells["canary"]["latency"]["token_source"] == "usage"
    assert "canary" in (tmp_path / "junit.xml").read_text()
