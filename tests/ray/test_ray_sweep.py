"""``--executor ray``: the same case results as the local executor, per-node fingerprints, worker
deaths retried (or recorded as failed cells), and the journal the driver writes as results come back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qeval.config import SweepConfig
from qeval.journal import read_journal
from qeval.models import FakeSource
from qeval.sweep import run_sweep
from qeval.targets import parse_target
from tests.fakes import MINI, right_except_int4_on_odd
from tests.ray.helpers import AlwaysDie, DieAfter, DieOnce, Notes

pytestmark = pytest.mark.ray

PRECISIONS = ("fp32", "int8", "int4")


def _config(tmp_path, **kw):
    base = dict(model="fake", precisions=PRECISIONS, suites=(str(MINI),), device="cpu", latency_samples=2,
                warmup_requests=1, batch_size=4, out_dir=str(tmp_path))
    base.update(kw)
    return SweepConfig(**base)


def _cases(record):
    return {(c.precision, c.suite): [(k.case_id, k.prompt, k.completion, k.score, k.passed, k.reason, k.output_tokens)
                                     for k in c.cases] for c in record.cells}


def _cells(record):
    # what was applied, less how long quantizing took and its peak memory (measurements, not settings)
    return [(c.precision, c.suite, c.status, c.n, c.accuracy, c.accuracy_ci, dict(c.metrics),
             c.accuracy_pass_output_tokens, replace(c.precision_config, quantize_seconds=None, quantize_peak_bytes=None),
             c.timed_case_ids) for c in record.cells]


def _same(a, b):
    assert _cells(a) == _cells(b)
    assert _cases(a) == _cases(b)


def test_a_ray_sweep_gives_the_local_sweep_s_cells(tmp_path, ray_cluster):
    source = FakeSource(responder=right_except_int4_on_odd)
    local, _ = run_sweep(_config(tmp_path / "local"), source=source)
    notes = Notes()
    remote, folder = run_sweep(_config(tmp_path / "ray", executor="ray"), source=source, reporter=notes)
    _same(local, remote)
    assert [c.precision for c in remote.cells] == list(PRECISIONS)  # the sweep's order, whatever finished first
    # every cell says which machine ran it; paired latency is measured inside the task, against fp32
    assert all(c.node is not None and c.node.device == "cpu" and c.node.host_id for c in remote.cells)
    assert all(c.node is None for c in local.cells)
    assert [c.latency.paired.reference for c in remote.cells[1:]] == ["fp32", "fp32"]
    state = read_journal(folder)
    assert state.done and set(state.cells) == set(PRECISIONS)
    assert {label for label, _ in state.batches} == set(PRECISIONS)  # the tasks' batches, relayed as they finished
    data = json.loads((folder / "results.json").read_text())
    assert data["settings"]["incomplete"] is False and data["cells"][0]["node"]["device"] == "cpu"
    said = "\n".join(notes.lines)
    assert "cells 3 done, 0 running, 0 queued" in said and "started on" in said


@pytest.mark.slow
def test_the_tiny_llama_gives_the_same_cases_on_ray(tmp_path, ray_cluster, tiny_perf_model_dir):
    import shutil

    suite = tmp_path / "plain"  # the tiny tokenizer has no chat template: plain prompts
    shutil.copytree(MINI, suite)
    (suite / "suite.yaml").write_text((MINI / "suite.yaml").read_text().replace("chat_template: true",
                                                                                "chat_template: false"))
    targets = tuple(parse_target(f"{p}={tiny_perf_model_dir}@{p}") for p in ("fp32", "int8"))
    config = dict(model=None, precisions=(), targets=targets, suites=(str(suite),), limit=4, latency_samples=0,
                  batch_size=2)
    local = _local_in_a_subprocess(tmp_path / "local", targets, suite)
    assert [c.status for c in local.cells] == ["ok", "ok"], [c.reason for c in local.cells]
    # two CPUs per task: the torch threads of a local run here, so float sums add up in the same order
    notes = Notes()
    remote, _ = run_sweep(_config(tmp_path / "ray", executor="ray", ray_resources=("num_cpus=2",), **config),
                          reporter=notes)
    assert [c.status for c in remote.cells] == ["ok", "ok"], [c.reason for c in remote.cells]
    assert all(c.cases for c in remote.cells)
    _same(local, remote)
    # each task asked Ray for its memory estimate (a model folder the driver can read), and got placed
    said = "\n".join(notes.lines)
    assert "fp32 asks for 1.0 GiB of memory" in said and "int8 asks for 1.0 GiB of memory" in said


def _local_in_a_subprocess(out, targets, suite):
    """The local executor's run of the tiny Llama, in a process of its own: in this one, in-process
    pytester runs (tests/plugin) may have dropped transformers' lazily imported modules."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from qeval.report import read_record

    root = Path(__file__).resolve().parents[2]
    args = [a for t in targets for a in ("--target", f"{t.name}={t.model}@{t.precision}")]
    done = subprocess.run(
        [sys.executable, "-m", "qeval.cli", "sweep", *args, "--suites", str(suite), "--limit", "4", "--device", "cpu",
         "--latency-samples", "0", "--warmup", "1", "--batch-size", "2", "--out", str(out)],
        env=dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{root / 'src'}"), capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = Path(out).iterdir()
    return read_record(folder)


def test_a_worker_killed_mid_task_is_retried_and_the_sweep_completes(tmp_path, ray_cluster):
    marker = tmp_path / "died"
    source = FakeSource(responder=DieOnce(str(marker), "int8"))
    notes = Notes()
    record, folder = run_sweep(_config(tmp_path, executor="ray"), source=source, reporter=notes)
    assert marker.exists()  # a worker did die
    assert [c.status for c in record.cells] == ["ok", "ok", "ok"]
    clean, _ = run_sweep(_config(tmp_path / "clean"), source=FakeSource(responder=right_except_int4_on_odd))
    _same(record, clean)


def test_a_retried_task_reuses_the_batches_its_first_attempt_relayed(tmp_path, ray_cluster):
    log = tmp_path / "answered.log"
    # mini has 12 cases, batches of 4: the first attempt dies on its 9th prompt, two batches done
    source = FakeSource(responder=DieAfter(str(log), "int8", after=8))
    record, _ = run_sweep(_config(tmp_path, executor="ray", latency_samples=0), source=source)
    assert [c.status for c in record.cells] == ["ok", "ok", "ok"]
    died = (tmp_path / "answered.log.died").read_text()
    by_process: dict[str, int] = {}
    for line in log.read_text().splitlines():
        pid = line.split(" ", 1)[0]
        by_process[pid] = by_process.get(pid, 0) + 1
    assert by_process.pop(died) == 8
    assert list(by_process.values()) == [4]  # the retry generated only the batch left
    clean, _ = run_sweep(_config(tmp_path / "clean", latency_samples=0),
                         source=FakeSource(responder=right_except_int4_on_odd))
    _same(record, clean)


def test_a_task_that_keeps_dying_is_failed_cells_with_ray_s_reason(tmp_path, ray_cluster):
    record, _ = run_sweep(_config(tmp_path, executor="ray", precisions=("fp32", "int4")),
                          source=FakeSource(responder=AlwaysDie("int4")))
    fp32, int4 = record.cells
    assert fp32.status == "ok"
    assert int4.status == "failed" and "Ray task failed after 2 retries" in int4.reason
    assert "died" in int4.reason.lower() or "crash" in int4.reason.lower() or "exit" in int4.reason.lower()


def test_a_task_no_node_can_place_is_failed_cells_on_a_ray_of_qeval_s_own(tmp_path, ray_cluster):
    # its own local Ray (a subprocess: this process's Ray is the session's, which qeval only borrows)
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{root / 'src'}")
    done = subprocess.run(
        [sys.executable, "-m", "qeval.cli", "sweep", "--model", "fake", "--precisions", "fp32,int4", "--suites",
         str(MINI), "--device", "cpu", "--latency-samples", "0", "--out", str(tmp_path), "--executor", "ray",
         "--ray-address", "local", "--ray-resources", "int4:num_gpus=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = tmp_path.glob("*/results.json")
    cells = {c["precision"]: c for c in json.loads(results.read_text())["cells"]}
    assert cells["fp32"]["status"] == "ok"
    assert cells["int4"]["status"] == "failed"
    assert "asks for num_cpus=1, num_gpus=1, which no node of this Ray has" in cells["int4"]["reason"]
