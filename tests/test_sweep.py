"""The sweep runner end to end on the fake model: cells, skips, failures, partial reports."""

import json

import pytest

from qeval.config import SweepConfig
from qeval.errors import SuiteError, UnknownNameError, UsageError
from qeval.models import FakeSource
from qeval.sweep import expand_suite_paths, run_sweep
from tests.fakes import MINI, right_except_int4_on_odd


def _config(tmp_path, **kw):
    base = dict(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                latency_samples=3, warmup_requests=1, out_dir=str(tmp_path))
    base.update(kw)
    return SweepConfig(**base)


def test_sweep_scores_times_and_reports(tmp_path):
    source = FakeSource(responder=right_except_int4_on_odd)
    record, path = run_sweep(_config(tmp_path), source=source)
    cells = {(c.precision, c.suite): c for c in record.cells}
    fp32, int4 = cells[("fp32", "mini")], cells[("int4", "mini")]
    assert fp32.status == int4.status == "ok"
    assert fp32.n == int4.n == 12
    assert fp32.accuracy == 1.0
    # a = 1..12, odd first operands: 6 of 12 planted wrong
    assert int4.accuracy == pytest.approx(0.5)
    lo, hi = int4.accuracy_ci
    assert lo < 0.5 < hi
    failed = {c.case_id for c in int4.cases if not c.passed}
    assert failed == {f"mini-{i:02d}" for i in range(0, 12, 2)}
    assert all(c.reason for c in int4.cases if not c.passed)
    # timed pass: 3 timed requests, 1 warm-up, real clock
    lat = int4.latency
    assert lat.requests == 3 and lat.warmup_requests == 1 and lat.ttft_ms.n == 3
    assert lat.ttft_ms.p50 > 0 and lat.e2e_ms.p95 >= lat.ttft_ms.p50
    assert len(int4.timed_case_ids) == 3
    assert int4.memory.weights_bytes < fp32.memory.weights_bytes
    assert int4.memory.peak_bytes and int4.memory.peak_bytes > 0
    # the report landed and says the same
    data = json.loads((path / "results.json").read_text())
    assert data["schema_version"] >= 1 and data["model"]["spec"] == "fake"
    got = {(c["precision"], c["suite"]): c for c in data["cells"]}
    assert got[("int4", "mini")]["accuracy"] == pytest.approx(0.5)
    samples = (path / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 24
    assert (path / "summary.md").exists()


def test_unavailable_precision_is_skipped_with_its_reason(tmp_path, monkeypatch):
    from qeval import quantize

    real = quantize.get_precision

    class Unavailable:
        def __init__(self, p):
            self._p = p

        def __getattr__(self, name):
            return getattr(self._p, name)

        def unavailable_reason(self, device):
            return "needs a GPU (test)"

    monkeypatch.setattr(quantize, "get_precision", lambda n: Unavailable(real(n)) if n == "int4" else real(n))
    record, _ = run_sweep(_config(tmp_path), source=FakeSource(responder=right_except_int4_on_odd))
    int4 = next(c for c in record.cells if c.precision == "int4")
    assert int4.status == "skipped" and int4.reason == "needs a GPU (test)" and int4.accuracy is None
    assert next(c for c in record.cells if c.precision == "fp32").status == "ok"


class _BreaksOn(FakeSource):
    def __init__(self, bad: str, exc: BaseException, **kw):
        super().__init__(**kw)
        self._bad, self._exc = bad, exc

    def load(self, precision, device):
        if precision == self._bad:
            raise self._exc
        return super().load(precision, device)


def test_a_failing_precision_is_recorded_and_the_sweep_goes_on(tmp_path):
    source = _BreaksOn("fp32", RuntimeError("CUDA out of memory (simulated)"), responder=right_except_int4_on_odd)
    record, path = run_sweep(_config(tmp_path), source=source)
    fp32 = next(c for c in record.cells if c.precision == "fp32")
    assert fp32.status == "failed" and "out of memory" in fp32.reason
    assert next(c for c in record.cells if c.precision == "int4").status == "ok"
    data = json.loads((path / "results.json").read_text())
    assert {c["status"] for c in data["cells"]} == {"failed", "ok"}


def test_interrupted_sweep_keeps_finished_precisions(tmp_path):
    source = _BreaksOn("int4", KeyboardInterrupt(), responder=right_except_int4_on_odd)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(tmp_path, run_id="partial"), source=source)
    data = json.loads((tmp_path / "partial" / "results.json").read_text())
    assert [(c["precision"], c["status"]) for c in data["cells"]] == [("fp32", "ok")]


def test_a_scorer_crash_costs_one_case_not_the_cell(tmp_path, monkeypatch):
    from qeval.suites import Suite

    class Boom:
        name = "boom"

        def score(self, completion, expected):
            if expected == 1:  # only the first case (a=1, b=0)
                raise ZeroDivisionError("bad scorer")
            from qeval.results import Score

            return Score(value=1.0, passed=True)

        def aggregate(self, scores):
            return {}

    monkeypatch.setattr(Suite, "scorer", lambda self: Boom())
    record, _ = run_sweep(_config(tmp_path, precisions=("fp32",)), source=FakeSource(responder=right_except_int4_on_odd))
    cell = record.cells[0]
    assert cell.status == "ok" and cell.accuracy == pytest.approx(11 / 12)
    bad = [c for c in cell.cases if not c.passed]
    assert len(bad) == 1 and bad[0].reason.startswith("scorer error: ZeroDivisionError")


def test_unknown_precision_fails_before_any_work(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'int4'"):
        run_sweep(_config(tmp_path, precisions=("fp32", "itn4")), source=FakeSource())
    assert not any(tmp_path.iterdir())


def test_bad_suite_paths_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not a suite folder"):
        expand_suite_paths([str(tmp_path)])
    assert expand_suite_paths([str(MINI.parent)]) == [MINI]
    with pytest.raises(UsageError, match="--limit"):
        run_sweep(_config(tmp_path, limit=0), source=FakeSource())
    from qeval.suites import load_suite

    with pytest.raises(SuiteError, match="suite.yaml"):
        load_suite(tmp_path)


def test_limit_and_batch_size_override(tmp_path):
    record, _ = run_sweep(_config(tmp_path, precisions=("fp32",), limit=5, batch_size=2), source=FakeSource(responder=right_except_int4_on_odd))
    assert record.cells[0].n == 5
    assert record.settings.batch_size == 2
