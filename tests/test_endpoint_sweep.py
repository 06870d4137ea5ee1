"""An OpenAI-compatible endpoint as a sweep target, against the scripted server (real sockets).

Faults a real server cannot produce on demand (429s, 500s, a server that dies mid-run) come
from :mod:`tests.targets.scripted_server`; the same flows against a real vLLM are in
``tests/integration/test_endpoint_vllm.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qeval.cli import app
from qeval.config import SweepConfig
from qeval.errors import QevalError
from qeval.models import FakeSource
from qeval.report import read_record
from qeval.resume import resume_sweep
from qeval.sweep import run_sweep
from qeval.targets import parse_target
from tests.fakes import MINI, right_except_int4_on_odd
from tests.targets.scripted_server import ScriptedServer


def _user_text(body) -> str:
    if "messages" in body:
        return body["messages"][-1]["content"]
    return body["prompt"]


def sums_responder(body) -> str:
    return right_except_int4_on_odd(_user_text(body), "served")


def _config(tmp_path: Path, url: str, **kw) -> SweepConfig:
    targets = (parse_target("ref=fake@fp32"), parse_target(f"served=openai:{url}"))
    base = dict(model=None, precisions=(), suites=(str(MINI),), device="cpu", out_dir=str(tmp_path),
                latency_samples=3, warmup_requests=1, targets=targets, concurrency=4)
    base.update(kw)
    return SweepConfig(**base)


def test_an_endpoint_target_is_evaluated_beside_an_in_process_one(tmp_path):
    with ScriptedServer(responder=sums_responder, version={"version": "0.0-scripted"}) as server:
        record, path = run_sweep(_config(tmp_path, server.base_url), source=FakeSource(responder=right_except_int4_on_odd))
        bodies = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    ref, served = (c for c in record.cells)
    assert (ref.precision, served.precision) == ("ref", "served")
    assert served.status == "ok" and served.n == 12 and served.accuracy == 1.0
    # scored exactly like the in-process target: same completions, same scores
    assert [c.passed for c in served.cases] == [c.passed for c in ref.cases]
    # a chat suite goes as messages; greedy, the suite's max tokens, a seed
    assert all(b["temperature"] == 0 and b["max_tokens"] == 16 and "seed" in b for b in bodies)
    assert json.loads(served.cases[0].prompt)["messages"][-1] == {"role": "user", "content": "What is 1 + 0?"}
    # latency from the stream; the server's usage counted the tokens
    assert served.latency is not None and served.latency.requests == 3 and served.latency.token_source == "usage"
    assert served.latency.client_overhead_ms is not None
    # remote memory is unknown, never the client's
    assert served.memory.weights_bytes is None and served.memory.peak_bytes is None
    assert served.metrics["error_rate"].value == 0.0 and served.metrics["error_rate"].n == 12
    kinds = {t.name: (t.kind, t.remote) for t in record.targets}
    assert kinds == {"ref": ("model", False), "served": ("openai", True)}
    (served_target,) = [t for t in record.targets if t.name == "served"]
    assert served_target.identity is not None and served_target.identity.model == "scripted-model"
    assert served_target.identity.version == {"version": "0.0-scripted"}
    back = read_record(path)
    assert back.targets == record.targets and back.cells[1].cases == served.cases
    summary = (path / "summary.md").read_text()
    assert "## Targets" in summary and "openai:" in summary


def test_failed_requests_are_error_outcomes_outside_accuracy(tmp_path):
    # concurrency 1 so the faults hit known cases: case 0 gets 500 four times (every attempt)
    with ScriptedServer(responder=sums_responder, faults=["500"] * 4) as server:
        config = _config(tmp_path, server.base_url, concurrency=1, latency_samples=0,
                         targets=(parse_target(f"served=openai:{server.base_url}"),))
        record, _ = run_sweep(config)
    (cell,) = record.cells
    assert cell.status == "ok"
    assert [c.error for c in cell.cases][:2] == ["http_500", None]
    assert cell.cases[0].attempts == 4
    assert cell.n == 11 and cell.accuracy == 1.0  # the error is out of the denominator, not a wrong answer
    errors = cell.metrics["error_rate"]
    assert errors.value == pytest.approx(1 / 12) and errors.n == 12 and errors.ci[1] > 1 / 12
    assert "1 of 12 requests failed for good (http_500 1)" in cell.reason


def test_a_server_that_dies_mid_run_gives_error_outcomes_and_a_report(tmp_path):
    server = ScriptedServer(responder=sums_responder, chunk_delay_s=0.01)
    served = {"n": 0}

    def dying(body) -> str:
        served["n"] += 1
        if served["n"] == 5:
            # kept-alive connections outlive a listener that stops: drop them too, like a killed process
            server.add_faults(*["drop"] * 200)
            threading.Thread(target=server.__exit__, daemon=True).start()
        return sums_responder(body)

    server.responder = dying
    with server:
        config = _config(tmp_path, server.base_url, concurrency=1, latency_samples=2,
                         targets=(parse_target(f"served=openai:{server.base_url}"),))
        start = time.perf_counter()
        record, path = run_sweep(config)
        took = time.perf_counter() - start
    (cell,) = record.cells
    kinds = {c.error for c in cell.cases}
    assert None in kinds and kinds - {None} <= {"connection", "truncated", "timeout"}
    assert sum(c.error is not None for c in cell.cases) >= 6
    assert cell.metrics["error_rate"].value >= 0.5
    # the timed pass met a dead server: counted, not timed, and no throughput of zero
    assert cell.latency.requests == 0 and cell.latency.errors == 2 and cell.latency.output_tokens_per_s is None
    assert (path / "results.json").is_file() and (path / "summary.md").is_file()
    assert took < 120


def test_resume_does_not_re_request_finished_chunks(tmp_path):
    with ScriptedServer(responder=sums_responder) as server:
        config = _config(tmp_path, server.base_url, latency_samples=0,
                         targets=(parse_target(f"served=openai:{server.base_url}"),), batch_size=1)
        record, path = run_sweep(config)
        journal = path / "journal.jsonl"
        lines = journal.read_text().splitlines()
        batches = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "batch"]
        # keep the header and the first chunk only: as if killed right after it was journaled
        journal.write_text("\n".join(lines[: batches[0] + 1]) + "\n")
        (path / "results.json").unlink()
        before = len([r for r in server.requests if r.method == "POST"])
        again, _ = resume_sweep(path)
        sent = len([r for r in server.requests if r.method == "POST"]) - before
    first = json.loads(lines[batches[0]])
    reused = len(first["cases"])
    assert sent == 12 - reused
    assert [c.completion for c in again.cells[0].cases] == [c.completion for c in record.cells[0].cases]


def test_an_endpoint_that_is_down_fails_fast_with_the_url(tmp_path):
    start = time.perf_counter()
    with pytest.raises(QevalError, match=r"127\.0\.0\.1:9/v1"):
        run_sweep(_config(tmp_path, "http://127.0.0.1:9/v1"))
    assert time.perf_counter() - start < 30
    assert not list(tmp_path.iterdir())  # nothing was run, no half report


def test_a_planted_api_key_appears_in_no_output(tmp_path, monkeypatch):
    key = "sk-qevalPLANTED0123456789abcdefXYZ"
    monkeypatch.setenv("QEVAL_TEST_API_KEY", key)
    with ScriptedServer(responder=sums_responder, faults=["401", "500", "500", "500", "500"]) as server:
        result = CliRunner().invoke(app, [
            "sweep", "--target", "ref=fake@fp32", "--target", f"served=openai:{server.base_url}",
            "--api-key-env", "served=QEVAL_TEST_API_KEY", "--suites", str(MINI), "--device", "cpu",
            "--out", str(tmp_path), "--latency-samples", "2", "--warmup", "0", "--concurrency", "1",
        ])
        auth = {r.headers.get("authorization") for r in server.requests if r.method == "POST"}
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 0, output
    assert auth == {f"Bearer {key}"}  # the key was used...
    assert key not in output  # ...and written nowhere
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "journal.jsonl" for p in files) and any(p.name == "report.html" for p in files)
    for p in files:
        assert key.encode() not in p.read_bytes(), p
    data = json.loads((next(tmp_path.iterdir()) / "results.json").read_text())
    served = [c for c in data["cells"] if c["precision"] == "served"][0]
    assert served["precision_config"]["endpoint"]["api_key_env"] == "QEVAL_TEST_API_KEY"  # the variable's name only


def test_perf_profiles_an_endpoint_beside_an_in_process_target(tmp_path):
    from qeval.perf import PerfConfig, measure

    with ScriptedServer(responder=sums_responder, chunk_delay_s=0.002) as server:
        config = PerfConfig(
            model=None, precisions=(), suite=str(MINI), limit=4, batch_sizes=(1, 4), requests=8, rounds=2, warmup=1,
            device="cpu", out_dir=str(tmp_path),
            targets=(parse_target("ref=fake@fp32"), parse_target(f"served=openai:{server.base_url}")),
        )
        record = measure(config, source=FakeSource(responder=right_except_int4_on_odd))
        sent = len([r for r in server.requests if r.method == "POST"])
    ref, served = record.precisions
    assert (ref.precision, served.precision, served.status) == ("ref", "served", "ok")
    assert served.weights_bytes is None
    at4 = [p for p in served.points if p.batch_size == 4][0]
    assert at4.status == "ok" and at4.requests >= 8 and at4.peak_bytes is None
    assert at4.latency["ttft"].n == at4.requests
    assert sent >= 8 + 8 + 1  # both batch sizes' timed requests and the cold-start request went to the server
    assert record.reference == "ref" and any(r.batch_size == 4 for r in served.ratios)


def test_resume_refuses_an_endpoint_that_now_serves_something_else(tmp_path):
    from qeval.journal import JournalError

    with ScriptedServer(responder=sums_responder, version={"version": "1.0"}) as server:
        config = _config(tmp_path, server.base_url, latency_samples=0, batch_size=1,
                         targets=(parse_target(f"served=openai:{server.base_url}"),))
        _, path = run_sweep(config)
        journal = path / "journal.jsonl"
        lines = journal.read_text().splitlines()
        first_batch = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "batch")
        journal.write_text("\n".join(lines[: first_batch + 1]) + "\n")
        (path / "results.json").unlink()
        server.version = {"version": "2.0"}  # redeployed behind the same URL
        with pytest.raises(JournalError, match=r"changed since the run started \(version"):
            resume_sweep(path)
