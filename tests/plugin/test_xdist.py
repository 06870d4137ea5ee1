"""The plugin under pytest-xdist: each cell evaluated once, one run folder written by the controller."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from pytest_qeval.distributed import SharedCells, StoredCell, WorkerResult, merge, qeval_target_of
from pytest_qeval.session import VerdictRow
from tests.plugin.conftest import run

pytest.importorskip("xdist")

# Writes one line per completion to calls.log, so a test can count what each target evaluated.
COUNTED = textwrap.dedent(
    '''
    import re
    from qeval.models import FakeSource

    def _int4_wrong_on_odd(prompt, precision):
        with open("calls.log", "a") as log:
            log.write(precision + "\\n")
        a, b = map(int, re.findall(r"What is (\\d+) \\+ (\\d+)\\?", prompt)[0])
        return f"The answer is {a + b + (precision == 'int4' and a % 2 == 1)}."

    model = FakeSource(responder=_int4_wrong_on_odd)
    '''
)

# No timing: every completion is an accuracy-pass case, so calls.log counts cells' cases exactly.
ARGS = (
    "--qeval", "mini", "mini2", "test_hand.py", "--qeval-model", "counted:model", "--qeval-precisions", "bf16,int4",
    "--qeval-latency-samples", "0", "--qeval-slo", "accuracy >= 0.2", "--qeval-slo", "accuracy_drop_vs(bf16) <= 0.6",
    "--qeval-inconclusive", "pass",
)


@pytest.fixture
def two_suites(project: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(project.path / "mini", project.path / "mini2")
    yaml = project.path / "mini2" / "suite.yaml"
    yaml.write_text(yaml.read_text().replace("name: mini", "name: mini2"))
    project.makepyfile(counted=COUNTED)
    # a hand-written test on the reference's cell, on whichever worker: it must not evaluate it again
    project.makepyfile(test_hand="""
        def test_reference_cell(qeval_run):
            assert qeval_run("mini", "bf16").accuracy == 1.0
    """)
    # xdist's workers get the sys.path of the outer session; a conftest.py puts its folder on it
    # (import mode prepend), so the workers import `counted` too
    project.makeconftest("")
    return project


def _calls(project: pytest.Pytester) -> Counter[str]:
    log = project.path / "calls.log"
    counts = Counter(log.read_text().split()) if log.exists() else Counter()
    log.unlink(missing_ok=True)
    return counts


def _verdicts(folder: Path) -> list[dict]:
    rows = json.loads((folder / "slo.json").read_text())["verdicts"]
    return [row for row in rows if row["slo"] != "no-regression-vs-baseline"]


def _cells(folder: Path) -> list[tuple]:
    cells = json.loads((folder / "results.json").read_text())["cells"]
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return [(c["suite"], c["precision"], c["status"], c["n"], c["accuracy"], c["accuracy_ci"]) for c in cells] + [
        (s["suite"], s["precision"], s["case_id"], s["completion"], s["passed"]) for s in samples]


def test_each_cell_is_evaluated_once_and_the_controller_writes_one_run(two_suites, monkeypatch):
    plain = run(two_suites, *ARGS, "--qeval-report", "plain", "--qeval-save-baseline", "plain.json")
    plain.assert_outcomes(passed=7)
    assert _calls(two_suites) == {"bf16": 24, "int4": 24}
    summary = two_suites.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = run(two_suites, "-n", "2", *ARGS, "--qeval-no-cache", "--qeval-report", "xdist",
                 "--qeval-baseline", "plain.json", "--qeval-save-baseline", "xdist.json")
    result.assert_outcomes(passed=11)  # + no-regression-vs-baseline per suite and target
    # 12 cases × 2 suites per target, though the int4 worker's SLOs and test_hand.py need bf16 too
    assert _calls(two_suites) == {"bf16": 24, "int4": 24}
    (folder,) = (two_suites.path / "xdist").iterdir()
    (plain_folder,) = (two_suites.path / "plain").iterdir()
    assert _verdicts(folder) == _verdicts(plain_folder)  # the same rows in the same order
    assert len(_verdicts(folder)) == 6
    assert _cells(folder) == _cells(plain_folder)
    assert (folder / "regression.json").is_file()
    saved = json.loads((two_suites.path / "xdist.json").read_text())
    assert [(c["suite"], c["precision"]) for c in saved["cells"]] == [
        ("mini", "bf16"), ("mini2", "bf16"), ("mini", "int4"), ("mini2", "int4")]
    out = result.stdout.str()
    assert out.count("qeval baseline saved: xdist.json") == 1
    assert out.count("qeval regression vs plain.json: no regression") == 1
    step_summary = summary.read_text()
    assert step_summary.count("## qeval SLO verdicts") == 1
    assert "| int4 | mini2 | ok | accuracy 0.50 [" in step_summary  # the merged record's results table
    result.stdout.fnmatch_lines([
        "*qeval: results (each suite's primary metric first)*",
        "bf16*mini *ok*accuracy 1.00*",
        "bf16*mini2*ok*accuracy 1.00*",
        "int4*mini *ok*accuracy 0.50*",
        "int4*mini2*ok*accuracy 0.50*",
        "*qeval: SLO verdicts*",
        "mini   bf16*accuracy>=0.2*pass*",
        "mini   bf16*no-regression-vs-baseline*pass*",
        "mini   int4*accuracy>=0.2*pass*",
        "mini   int4*accuracy_drop_vs(bf16)<=0.6*inconclusive*",
        "mini   int4*no-regression-vs-baseline*pass*",
        "mini2  bf16*accuracy>=0.2*pass*",
        "mini2  bf16*no-regression-vs-baseline*pass*",
        "mini2  int4*accuracy>=0.2*pass*",
        "mini2  int4*accuracy_drop_vs(bf16)<=0.6*inconclusive*",
        "mini2  int4*no-regression-vs-baseline*pass*",
    ])


def test_the_store_hands_a_cell_and_where_it_came_from_to_another_worker(tmp_path):
    from qeval.runner import empty_cell

    store = SharedCells(tmp_path)
    assert store.get("mini", "bf16") is None
    cell = empty_cell("bf16", "mini", "skipped", "no GPU", None)
    store.put("mini", "bf16", cell, "20260101T000000Z-abcdef")
    assert store.get("mini", "bf16") == StoredCell(cell, "20260101T000000Z-abcdef")
    assert store.get("mini", "int4") is None


def test_a_targets_lock_excludes_other_processes(tmp_path):
    import multiprocessing
    import time

    store = SharedCells(tmp_path)
    flag = tmp_path / "child-has-it"
    child = multiprocessing.get_context("fork").Process(target=_take_lock, args=(tmp_path, flag))
    with store.lock("bf16"):
        child.start()
        time.sleep(0.3)
        assert not flag.exists()  # the child waits for the lock
    child.join(10)
    assert flag.exists()
    with store.lock("int4"), SharedCells(tmp_path).lock("bf16"):
        pass  # another target's lock, and a free one, do not wait


def _take_lock(folder: Path, flag: Path) -> None:
    with SharedCells(folder).lock("bf16"):
        flag.touch()


def test_the_scheduler_groups_a_targets_items(tmp_path):
    (tmp_path / "suites" / "medical").mkdir(parents=True)
    (tmp_path / "suites" / "medical" / "suite.yaml").write_text("name: medical\n")
    targets = ("bf16", "int4")
    assert qeval_target_of("suites/medical::int4::f1>=0.3", tmp_path, targets) == "int4"
    assert qeval_target_of("suites/medical::fp8::f1>=0.3", tmp_path, targets) is None  # not a target of the run
    assert qeval_target_of("tests/test_x.py::bf16::test_y", tmp_path, targets) is None  # not a suite folder
    assert qeval_target_of("suites/medical::int4", tmp_path, targets) is None


def test_merge_orders_verdicts_as_collected():
    def row(nodeid: str) -> VerdictRow:
        suite, precision, slo = nodeid.split("::")
        return VerdictRow(nodeid=nodeid, suite=suite, precision=precision, slo=slo, outcome="pass")

    order = ("a::bf16::x", "a::int4::x", "b::bf16::x", "b::int4::x")
    results = [
        WorkerResult("gw1", None, (row("b::int4::x"), row("a::int4::x")), order),
        WorkerResult("gw0", None, (row("a::bf16::x"), row("b::bf16::x")), order),
    ]
    record, verdicts = merge(results, ("bf16", "int4"))
    assert record is None
    assert [v.nodeid for v in verdicts] == list(order)
