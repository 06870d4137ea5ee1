"""The endpoint workflow against a real vLLM (CPU build) serving the bundled SmolLM2-135M.

An in-process fp32 target and the served model side by side on the same cases: greedy fp32
completions must agree where the kernels agree, latency comes from the stream, the server's
usage counts the tokens, and a planted key appears nowhere.
"""

from __future__ import annotations

import json

import pytest

from qeval.config import SweepConfig
from qeval.sweep import run_sweep
from qeval.targets import parse_target

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_sweep_in_process_and_served_side_by_side(vllm_server, tmp_path, monkeypatch, capsys):
    key = "sk-qevalVLLMplanted55555555555555"
    monkeypatch.setenv("QEVAL_VLLM_TEST_KEY", key)  # vLLM runs without --api-key: it ignores the header
    served = parse_target(f"served=openai:{vllm_server.base_url}")
    from dataclasses import replace

    config = SweepConfig(
        model=None, precisions=(), suites=("suites/arithmetic", "suites/medical"), device="cpu", limit=6,
        out_dir=str(tmp_path), latency_samples=3, warmup_requests=1,
        targets=(parse_target("fp32=smollm2-135m@fp32"), replace(served, api_key_env="QEVAL_VLLM_TEST_KEY")),
    )
    record, path = run_sweep(config)
    cells = {(c.precision, c.suite): c for c in record.cells}
    agree = {}
    for suite in ("arithmetic", "medical"):
        local, remote = cells[("fp32", suite)], cells[("served", suite)]
        assert local.status == "ok" and remote.status == "ok", (local.reason, remote.reason)
        assert remote.metrics["error_rate"].value == 0.0
        same = sum(a.completion == b.completion for a, b in zip(local.cases, remote.cases, strict=True))
        agree[suite] = (same, len(local.cases))
        # streamed latency, tokens from vLLM's usage, memory unknown
        assert remote.latency.requests == 3 and remote.latency.token_source == "usage"
        assert remote.latency.ttft_ms.p50 > 0 and remote.latency.client_overhead_ms is not None
        assert remote.memory.weights_bytes is None
    with capsys.disabled():
        print(f"\nfp32 in-process vs vLLM fp32 greedy completions identical: {agree}")
    total = sum(a for a, _ in agree.values()), sum(n for _, n in agree.values())
    assert total[0] >= 0.9 * total[1], agree
    (target,) = [t for t in record.targets if t.name == "served"]
    assert target.identity is not None and target.identity.model == "smollm2-135m" and target.identity.version  # vLLM's /version
    for p in path.iterdir():
        assert key.encode() not in p.read_bytes(), p
    data = json.loads((path / "results.json").read_text())
    assert {t["name"] for t in data["targets"]} == {"fp32", "served"}
