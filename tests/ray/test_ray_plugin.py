"""The pytest gate with ``--qeval-executor ray`` gives the verdicts it gives in-process."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fakes import MINI
from tests.plugin.conftest import FAKE_MODELS, run

pytestmark = pytest.mark.ray

GATE = ("-v", "--qeval", "mini", "--qeval-model", "fakemodel:int4_odd", "--qeval-precisions", "fp32,int4",
        "--qeval-latency-samples", "2", "--qeval-warmup", "0", "--qeval-no-cache",
        "--qeval-slo", "accuracy >= 0.7", "--qeval-slo", "accuracy_drop_vs(fp32) <= 0.1")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(MINI, pytester.path / "mini")
    pytester.makepyfile(fakemodel=FAKE_MODELS)
    pytester.syspathinsert()
    return pytester


def _verdicts(project, *extra):
    result = run(project, *GATE, "--qeval-report", "reports", *extra)
    (slo,) = sorted((project.path / "reports").glob("*/slo.json"), key=lambda p: p.stat().st_mtime)[-1:]
    rows = json.loads(slo.read_text())
    shutil.rmtree(project.path / "reports")
    return result, rows


def _outcomes(rows):
    items = rows["verdicts"] if isinstance(rows, dict) else rows
    return sorted((r["nodeid"].split("::", 1)[-1], r["outcome"], r.get("value"), r.get("n")) for r in items)


def test_the_gate_on_ray_gives_the_local_verdicts(project, ray_cluster):
    local, local_rows = _verdicts(project)
    remote, remote_rows = _verdicts(project, "--qeval-executor", "ray")
    assert _outcomes(remote_rows) == _outcomes(local_rows)
    assert remote.ret == local.ret == 1  # int4 fails both gates, fp32 passes
    remote.stdout.fnmatch_lines(["*mini::fp32::accuracy>=0.7 PASSED*", "*mini::int4::accuracy>=0.7 FAILED*",
                                 "*mini::int4::accuracy_drop_vs(fp32)<=0.1 FAILED*"])
    out = remote.stdout.str()
    assert "travels with the tasks" in out
    # both targets went to Ray together, when the first item needed one of them
    assert "qeval: ray fp32 done" in out and "qeval: ray int4 done" in out
    assert out.index("evaluating fakemodel:int4_odd at int4") < out.index("qeval: ray fp32 done")
