"""The driver of a Ray sweep killed (SIGKILL) or interrupted (SIGINT), then ``--resume``: the
journal it wrote as results streamed back finishes to a clean run's case results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qeval.config import SweepConfig
from qeval.journal import JOURNAL_FILE, read_journal
from qeval.models import FakeSource
from qeval.report import read_record
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
PRECISIONS = ("fp32", "int8", "int4")
SETTINGS = ("--device", "cpu", "--latency-samples", "2", "--warmup", "1", "--batch-size", "2")


def _cases(record):
    return {(c.precision, c.suite): [(k.case_id, k.completion, k.score, k.passed, k.output_tokens) for k in c.cases]
            for c in record.cells}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    config = SweepConfig(model="fake", precisions=PRECISIONS, suites=(str(MINI),), device="cpu", latency_samples=2,
                         warmup_requests=1, batch_size=2, out_dir=str(tmp_path_factory.mktemp("clean")))
    record, _ = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))
    return record


def _cli(tmp_path, address, *args, delay="0.2"):
    # the session's Ray, by address: the driver in the subprocess joins it as a second job
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}", QEVAL_TEST_DELAY_S=delay)
    return subprocess.Popen(
        [sys.executable, "-m", "qeval.cli", "sweep", "--executor", "ray", "--ray-address", address, *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _start(tmp_path, address):
    return _cli(tmp_path, address, "--model", "tests.resume_helpers:slow_source", "--precisions", ",".join(PRECISIONS),
                "--suites", str(MINI), *SETTINGS, "--out", str(tmp_path / "reports"))


def _wait_for(proc, tmp_path, what, timeout=90.0) -> Path:
    """The run folder, once its journal holds ``what`` (a predicate on the journal's text)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for journal in (tmp_path / "reports").glob(f"*/{JOURNAL_FILE}"):
            if what(journal.read_text()):
                return journal.parent
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"the sweep ended first (rc {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the journal did not get there within {timeout} s")


@pytest.fixture(scope="module")
def address(ray_cluster):
    return ray_cluster.get_runtime_context().gcs_address


def test_driver_sigkilled_mid_sweep_then_resume_equals_a_clean_run(tmp_path, address, clean):
    proc = _start(tmp_path, address)
    # one target journaled whole and another's batches under way: killed with work in flight
    folder = _wait_for(proc, tmp_path, lambda text: text.count('"kind":"cells"') >= 1 and '"kind":"batch"' in text)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = read_journal(folder)
    assert not state.done and state.cells

    resumed = _cli(tmp_path, address, "--resume", str(folder), delay="0")
    _out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    record = read_record(folder)
    assert [c.precision for c in record.cells] == list(PRECISIONS)
    assert _cases(record) == _cases(clean)
    assert record.settings.resumed is not None and record.settings.resumed.reused_precisions


def test_ctrl_c_cancels_the_tasks_and_writes_the_incomplete_report(tmp_path, address, clean):
    proc = _start(tmp_path, address)
    folder = _wait_for(proc, tmp_path, lambda text: '"kind":"batch"' in text)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "--resume" in err and "cancelled" in _out + err
    data = json.loads((folder / "results.json").read_text())
    assert data["settings"]["incomplete"] is True
    assert "incomplete" in (folder / "summary.md").read_text()
    assert not read_journal(folder).done
