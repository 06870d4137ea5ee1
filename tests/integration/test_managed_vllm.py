"""Managed vLLM targets against the real vLLM (CPU build, ``.venv-vllm``): qeval prepares the
checkpoint, starts ``vllm serve`` on a free port, evaluates it, and stops it, target by target.

One sweep, as a user runs it, holds the in-process model and vLLM serving the same fp32 weights
(their greedy completions must agree), vLLM at gptq-int4 (the checkpoint ``qeval quantize``
writes: served where vLLM's build has the kernel, else ``skipped`` with vLLM's own words -- the
CPU wheel here has no ``cpu_gemm_wna16``), and a server started with an engine argument vLLM
rejects (a ``failed`` target with the log tail).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Lean on a 2-core CPU: eager (no compile, ready in ~30 s), 1 GiB of KV cache, the model worker in-process.
ENGINE_ARGS = ("--engine-arg", "enforce-eager", "--engine-arg", "max-model-len=2048", "--engine-arg", "max-num-seqs=8")
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


@pytest.fixture(scope="module")
def vllm_venv():
    from tests.servers.vllm import VLLM_VENV, vllm_installed

    if not vllm_installed():
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_VLLM") == "1":
            pytest.fail(f"{VLLM_VENV} is missing: CI requires the managed vLLM tests to run", pytrace=False)
        pytest.skip("vLLM venv not installed: run make test")
    return VLLM_VENV


def _qeval(*args: str, cwd: Path, venv: Path, **kw) -> subprocess.Popen:
    # MARK is inherited by every process qeval starts: the servers of *this* sweep are found by it,
    # whatever else runs on the machine (another qeval's servers, the session's vLLM fixture)
    env = {**os.environ, **ENV, "QEVAL_VLLM": str(venv), "QEVAL_TEST_MARK": str(cwd)}
    return subprocess.Popen([str(Path(sys.executable).with_name("qeval")), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _left_behind(mark: str, served_only: bool = False) -> list[int]:
    """Live processes started under ``QEVAL_TEST_MARK=mark`` (``served_only``: the vLLM servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"QEVAL_TEST_MARK={mark}".encode() in environ and (not served_only or b"qeval-served" in cmdline):
            found.append(int(entry.name))
    return found


def test_managed_vllm_sweep_side_by_side_with_in_process(vllm_venv, tmp_path, capsys, session_cache):
    # the session's QEVAL_CACHE: test_gptq_smollm2, when it ran before, made this GPTQ checkpoint
    proc = _qeval(
        "sweep", "--target", "hf=smollm2-135m@fp32", "--target", "vllm=vllm:smollm2-135m@fp32",
        "--target", "vllm-gptq=vllm:smollm2-135m@gptq-int4", "--target", "bad=vllm:smollm2-135m@fp32",
        "--suites", f"{REPO}/suites/arithmetic,{REPO}/suites/medical", "--limit", "3", "--latency-samples", "2",
        "--warmup", "0", "--calibration", "generic", "--calibration-samples", "8", "--device", "cpu",
        "--out", str(tmp_path), *ENGINE_ARGS, "--engine-arg", "bad:no-such-engine-flag=1",
        cwd=tmp_path, venv=vllm_venv,
    )
    output, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, output
    (run,) = [p for p in tmp_path.iterdir() if (p / "results.json").exists()]
    data = json.loads((run / "results.json").read_text())
    cells = {(c["precision"], c["suite"]): c for c in data["cells"]}
    for name in ("hf", "vllm"):
        for suite in ("arithmetic", "medical"):
            assert cells[(name, suite)]["status"] == "ok", (name, suite, cells[(name, suite)]["reason"])
    # fp32 in-process and fp32 in vLLM: the same greedy completions, case by case
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    for suite in ("arithmetic", "medical"):
        ours = [s["completion"] for s in samples if (s["precision"], s["suite"]) == ("hf", suite)]
        served = [s["completion"] for s in samples if (s["precision"], s["suite"]) == ("vllm", suite)]
        assert len(ours) == 3 and ours == served, suite
    # what was served is on record: engine, version, command line, checkpoint hash
    engine = cells[("vllm", "arithmetic")]["precision_config"]["engine"]
    assert engine["engine"] == "vllm" and engine["version"]
    assert len(engine["checkpoint_sha256"]) == 64 and "--enforce-eager" in engine["command"]
    assert engine["first_token_s"] >= engine["spawn_to_healthy_s"] > 0
    assert (run / "servers" / "vllm-gptq.log").exists()
    gptq = cells[("vllm-gptq", "arithmetic")]
    if gptq["status"] == "ok":  # a vLLM build with the GPTQ kernel
        config = gptq["precision_config"]["engine"]["quant_config"]
        assert config["quant_method"] == "gptq" and config["bits"] == 4
    else:  # the CPU wheel here: healthy, then its first forward pass lacks the kernel
        assert gptq["status"] == "skipped" and "vLLM cannot serve gptq-int4 here" in gptq["reason"], gptq["reason"]
    # the server's memory, not the client's
    assert cells[("vllm", "arithmetic")]["memory"]["peak_kind"] == "server_rss"
    # a bad engine argument: a failed target whose reason carries the log tail
    bad = cells[("bad", "arithmetic")]
    assert bad["status"] == "failed" and "no-such-engine-flag" in bad["reason"], bad["reason"]
    summary = (run / "summary.md").read_text()
    assert "## Servers qeval started" in summary and "## Same model, served two ways" in summary
    assert "| hf vs vllm | arithmetic | 3 / 3 | 3 / 3 |" in summary
    assert not _left_behind(str(tmp_path)), "a process qeval started outlived the sweep"
    with capsys.disabled():
        print(f"\nmanaged vLLM sweep: {output.splitlines()[-1] if output else ''}")


def test_killing_the_sweep_with_sigkill_leaves_no_engine_behind(vllm_venv, tmp_path):
    proc = _qeval(
        "sweep", "--target", "v=vllm:smollm2-135m@fp32", "--suites", f"{REPO}/suites/medical",
        "--latency-samples", "0", "--out", str(tmp_path), *ENGINE_ARGS, cwd=tmp_path, venv=vllm_venv,
    )
    try:
        deadline = time.monotonic() + 240
        while not _left_behind(str(tmp_path), served_only=True):  # wait until qeval has started the server
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the managed server never started"
            time.sleep(0.5)
        time.sleep(3)  # let it get going: loading the model, spawning its engine core
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _left_behind(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _left_behind(str(tmp_path)), "vLLM (or its engine core) outlived a SIGKILLed qeval"
    finally:
        proc.kill()

