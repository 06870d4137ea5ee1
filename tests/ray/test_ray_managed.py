"""A managed engine on Ray: the llama.cpp server starts inside the task, on the node that runs it,
and is stopped with it (here the node is this machine: a local Ray of 2 CPUs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qeval.config import SweepConfig
from qeval.sweep import run_sweep
from qeval.targets import parse_target
from tests.engines.test_llamacpp import _server_pids, llamacpp_python  # noqa: F401 - the real-server venv
from tests.ray.helpers import Notes

pytestmark = [pytest.mark.ray, pytest.mark.llamacpp]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_managed_llamacpp_target_serves_inside_its_ray_task(llamacpp_python, ray_cluster, tmp_path):  # noqa: F811
    before = _server_pids()
    notes = Notes()
    config = SweepConfig(
        model=None, precisions=(), suites=(str(REPO_ROOT / "suites" / "arithmetic"),), device="cpu", limit=2,
        out_dir=str(tmp_path), latency_samples=0, warmup_requests=0, executor="ray",
        targets=(parse_target("asis=llamacpp:smollm2-135m@as-is"),),
        engine_executables=(("llamacpp", str(llamacpp_python)),),
    )
    record, folder = run_sweep(config, reporter=notes)
    (cell,) = record.cells
    assert cell.status == "ok", cell.reason
    assert cell.n == 2 and cell.metrics["error_rate"].value == 0.0
    engine = cell.precision_config.engine
    assert engine is not None and engine.engine == "llamacpp" and engine.quant_config["file_type"] == "Q4_1"
    # the task ran it: the cell carries the node's fingerprint, the server's log is in the run folder
    assert cell.node is not None and cell.node.host_id
    assert Path(engine.log or "").is_file() and Path(engine.log or "").parent == folder / "servers"
    said = "\n".join(notes.lines)
    assert "asis started on" in said
    assert "asis asks for" not in said  # a managed server's memory is its engine's settings: no estimate
    assert _server_pids() - before == set(), "a llama.cpp server outlived its Ray task"
