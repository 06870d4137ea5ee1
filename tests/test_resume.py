"""Durable sweeps: a crashed, killed or interrupted run resumes to the results of a clean run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qeval.config import SweepConfig
from qeval.journal import JOURNAL_FILE, JournalError, read_journal
from qeval.models import FakeSource
from qeval.resume import resume_sweep
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "int8", "int4")


def _config(tmp_path, **kw):
    base = dict(model="fake", precisions=PRECISIONS, suites=(str(MINI),), device="cpu", latency_samples=2,
                warmup_requests=1, batch_size=2, out_dir=str(tmp_path))
    base.update(kw)
    return SweepConfig(**base)


def _cases(record):
    return {
        (c.precision, c.suite): [(k.case_id, k.prompt, k.completion, k.score, k.passed, k.reason, k.output_tokens)
                                 for k in c.cases]
        for c in record.cells
    }


def _cells(record):
    return [(c.precision, c.suite, c.status, c.n, c.accuracy, c.accuracy_ci, dict(c.metrics),
             c.accuracy_pass_output_tokens, c.precision_config) for c in record.cells]


def _same(a, b):
    assert _cells(a) == _cells(b)
    assert _cases(a) == _cases(b)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    record, _ = run_sweep(_config(tmp_path_factory.mktemp("clean")), source=FakeSource(responder=right_except_int4_on_odd))
    return record


class Crash(BaseException):
    """A simulated crash (not an Exception, so no cell swallows it)."""


def test_resume_after_a_crash_redoes_only_unfinished_batches(tmp_path, clean):
    calls = []

    def crashing(prompt, precision):
        calls.append((precision, prompt))
        if precision == "int8" and len([c for c in calls if c[0] == "int8"]) == 7:  # mid-batch 4 of int8
            raise Crash()
        return right_except_int4_on_odd(prompt, precision)

    with pytest.raises(Crash):
        run_sweep(_config(tmp_path, run_id="crashed"), source=FakeSource(responder=crashing))
    folder = tmp_path / "crashed"
    state = read_journal(folder)
    assert list(state.cells) == ["fp32"]
    assert sorted(state.batches[("int8", "mini")]) == [0, 1, 2]  # batch 3 died half-way: not journaled

    seen = []

    def counting(prompt, precision):
        seen.append(precision)
        return right_except_int4_on_odd(prompt, precision)

    record, path = resume_sweep(folder, source=FakeSource(responder=counting))
    _same(record, clean)
    # fp32 reused whole: asked only as the latency reference, 1 warm-up + 2 timed requests paired with
    # each of int8 and int4; int8: 6 of 12 cases generated again (+ 1 warm-up + 2 timed); int4: all of it
    assert seen.count("fp32") == 2 * 3
    assert seen.count("int8") == 6 + 3 and seen.count("int4") == 12 + 3
    data = json.loads((path / "results.json").read_text())
    assert data["settings"]["resumed"]["reused_precisions"] == ["fp32"]
    assert data["settings"]["resumed"]["partial_precisions"] == ["int8"]
    assert data["settings"]["incomplete"] is False
    assert read_journal(folder).done
    with pytest.raises(JournalError, match="finished already"):
        resume_sweep(folder, source=FakeSource(responder=right_except_int4_on_odd))


def test_a_finished_run_whose_report_is_schema_1_is_still_finished(tmp_path):
    from tests.report.test_schema_v1 import as_v1

    _, folder = run_sweep(_config(tmp_path, run_id="old"), source=FakeSource(responder=right_except_int4_on_odd))
    results = folder / "results.json"
    results.write_text(json.dumps(as_v1(json.loads(results.read_text()))))
    with pytest.raises(JournalError, match="finished already"):
        resume_sweep(folder, source=FakeSource(responder=right_except_int4_on_odd))


def test_resume_is_refused_when_a_suite_changed(tmp_path):
    suite = tmp_path / "mini"
    shutil.copytree(MINI, suite)

    def crashing(prompt, precision):
        if precision == "int8":
            raise Crash()
        return right_except_int4_on_odd(prompt, precision)

    with pytest.raises(Crash):
        run_sweep(_config(tmp_path / "out", run_id="r", suites=(str(suite),)), source=FakeSource(responder=crashing))
    with open(suite / "cases.jsonl", "a") as fh:
        fh.write('{"id": "extra", "inputs": {"a": 1, "b": 1}, "expected": 2}\n')
    with pytest.raises(JournalError, match="mini changed since the run started"):
        resume_sweep(tmp_path / "out" / "r", source=FakeSource(responder=right_except_int4_on_odd))


def test_a_new_sweep_does_not_overwrite_a_journaled_run(tmp_path):
    run_sweep(_config(tmp_path, run_id="same", precisions=("fp32",)), source=FakeSource())
    with pytest.raises(JournalError, match="--resume"):
        run_sweep(_config(tmp_path, run_id="same", precisions=("fp32",)), source=FakeSource())


def _cli(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}", QEVAL_TEST_DELAY_S="0.03")
    return subprocess.Popen(
        [sys.executable, "-m", "qeval.cli", "sweep", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _start_slow(tmp_path, run_id):
    return _cli(tmp_path, "--model", "tests.resume_helpers:slow_source", "--precisions", ",".join(PRECISIONS),
                "--suites", str(MINI), "--device", "cpu", "--latency-samples", "2", "--warmup", "1",
                "--batch-size", "2", "--out", str(tmp_path / "reports"))


def _wait_for_batches(proc, journal: Path, n: int, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if journal.exists() and journal.read_text().count('"kind":"batch"') >= n:
            return
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"sweep ended before {n} batches were journaled (rc {proc.returncode}): {err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no {n} journaled batches within {timeout} s")


def _only_run(tmp_path) -> Path:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        runs = list((tmp_path / "reports").glob(f"*/{JOURNAL_FILE}")) if (tmp_path / "reports").exists() else []
        if runs:
            return runs[0].parent
        time.sleep(0.02)
    pytest.fail("the sweep never created its journal")


def test_sigkill_mid_run_then_resume_equals_a_clean_run(tmp_path, clean):
    proc = _start_slow(tmp_path, "killed")
    folder = _only_run(tmp_path)
    _wait_for_batches(proc, folder / JOURNAL_FILE, 8)  # fp32 done (6 batches), int8 under way
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not read_journal(folder).done

    resumed = _cli(tmp_path, "--resume", str(folder))
    _out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    from qeval.report import read_record

    _same(read_record(folder), clean)


def test_sigint_writes_an_incomplete_report_exits_130_and_resumes(tmp_path, clean):
    proc = _start_slow(tmp_path, "stopped")
    folder = _only_run(tmp_path)
    _wait_for_batches(proc, folder / JOURNAL_FILE, 8)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    data = json.loads((folder / "results.json").read_text())
    assert data["settings"]["incomplete"] is True
    assert [c["precision"] for c in data["cells"]] == ["fp32"]
    assert "incomplete" in (folder / "summary.md").read_text() and f"--resume {folder}" in (folder / "summary.md").read_text()
    state = read_journal(folder)
    assert not state.done and not state.notes  # stopped between batches: nothing torn

    record, _ = resume_sweep(folder, source=FakeSource(responder=right_except_int4_on_odd))
    _same(record, clean)
    data = json.loads((folder / "results.json").read_text())
    assert data["settings"]["incomplete"] is False


def test_cli_resume_flags(tmp_path):
    from typer.testing import CliRunner

    from qeval.cli import app

    def run(*args):
        result = CliRunner().invoke(app, ["sweep", *args])
        return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")

    code, out = run("--resume", str(tmp_path), "--model", "fake")
    assert code == 2 and "leave out --model" in out
    code, out = run("--model", "fake")
    assert code == 2 and "--precisions" in out
    code, out = run("--resume", str(tmp_path))
    assert code == 2 and "no run journal" in out


def test_a_truncated_results_file_is_named_and_rebuilt_from_the_journal(tmp_path, clean):
    from qeval.errors import ReportError
    from qeval.report import read_record

    _, folder = run_sweep(_config(tmp_path, run_id="done"), source=FakeSource(responder=right_except_int4_on_odd))
    results = folder / "results.json"
    text = results.read_text()
    results.write_text(text[: len(text) // 2])
    with pytest.raises(ReportError, match=rf"{results}:\d+:\d+: not valid JSON .*truncated.*--resume {folder}"):
        read_record(folder)

    class NoLoad(FakeSource):
        def load(self, *a, **kw):
            raise AssertionError("a finished run must not load the model again")

    record, _ = resume_sweep(folder, source=NoLoad())
    _same(record, clean)
    _same(read_record(folder), clean)
    with pytest.raises(JournalError, match="finished already"):
        resume_sweep(folder, source=NoLoad())


def _crash_on_int8(prompt, precision):
    if precision == "int8":
        raise Crash()
    return right_except_int4_on_odd(prompt, precision)


def test_resume_on_another_device_is_refused(tmp_path):
    with pytest.raises(Crash):
        run_sweep(_config(tmp_path, run_id="r"), source=FakeSource(responder=_crash_on_int8))
    journal = tmp_path / "r" / JOURNAL_FILE
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["device"] == "cpu"
    header["device"] = "cuda"  # as if the run had started on a GPU machine
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(JournalError, match="started on cuda.*resolves.*to cpu"):
        resume_sweep(tmp_path / "r", source=FakeSource(responder=right_except_int4_on_odd))


def test_relative_paths_are_rebased_on_the_folder_the_run_started_from(tmp_path):
    from qeval.resume import config_from_header

    (tmp_path / "suites" / "mini").mkdir(parents=True)
    (tmp_path / "cal.jsonl").write_text("{}\n")
    header = {"config": {"model": "fake", "precisions": ["fp32"], "suites": ["suites/mini"],
                         "calibration": "generic,cal.jsonl"}, "cwd": str(tmp_path)}
    config = config_from_header(header, tmp_path / "out" / "r", tmp_path / "journal.jsonl")
    assert config.suites == (str(tmp_path / "suites" / "mini"),)
    assert config.calibration == f"generic,{tmp_path / 'cal.jsonl'}"
    assert config.model == "fake" and config.run_id == "r" and config.out_dir == str(tmp_path / "out")
    with pytest.raises(JournalError, match="journal.jsonl:1: the run header has no usable sweep config"):
        config_from_header({"config": {"model": "fake"}}, tmp_path / "r", tmp_path / "journal.jsonl")
