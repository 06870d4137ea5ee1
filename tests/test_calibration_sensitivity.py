"""`--calibration a,b` and `--calibration-seeds K` on the fake model: one cell per choice,
pairwise paired comparison, and the spread across seeds beside the sampling error."""

import json
import math

import pytest

from qeval.config import SweepConfig
from qeval.errors import QevalError
from qeval.models import FakeSource
from qeval.sweep import run_sweep
from tests.fakes import MINI, sums


def calibration_dependent(prompt: str, precision: str) -> str:
    """generic-calibrated models miss a % 3 == 0, medical-calibrated ones a % 4 == 0;
    the sample with seed 1 also misses a == 1. Uncalibrated precisions are right."""
    a, b = sums(prompt)
    wrong = ("@generic" in precision and a % 3 == 0) or ("@medical" in precision and a % 4 == 0)
    wrong = wrong or (precision.endswith("/s1") and a == 1)
    return f"The answer is {a + b + (1 if wrong else 0)}."


def _sweep(tmp_path, **kw):
    config = SweepConfig(model="fake", precisions=("fp32", "gptq-int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=0, out_dir=str(tmp_path), calibration_samples=4, **kw)
    return run_sweep(config, source=FakeSource(responder=calibration_dependent))


def _case(a: int) -> str:
    return f"mini-{a - 1:02d}"


def test_each_set_and_seed_is_its_own_cell_and_pairs_are_compared_on_the_same_cases(tmp_path):
    record, path = _sweep(tmp_path, calibration="generic,medical", calibration_seeds=2)
    labels = [c.precision for c in record.cells]
    assert labels == ["fp32", "gptq-int4@generic/s0", "gptq-int4@generic/s1", "gptq-int4@medical/s0",
                      "gptq-int4@medical/s1"]
    acc = {c.precision: c.accuracy for c in record.cells}
    assert acc["gptq-int4@generic/s0"] == pytest.approx(8 / 12)
    assert acc["gptq-int4@medical/s1"] == pytest.approx(8 / 12)  # 4, 8, 12 and 1
    cal = {c.precision: c.precision_config.calibration for c in record.cells if c.precision != "fp32"}
    assert {(v.name, v.seed) for v in cal.values() if v} == {("generic", 0), ("generic", 1), ("medical", 0), ("medical", 1)}
    assert len({v.sample_hash for v in cal.values() if v}) == 4  # four different samples were drawn

    data = json.loads((path / "calibration.json").read_text())
    pair = next(p for p in data["pairs"] if p["metric"] == "accuracy" and p["a"] == "gptq-int4@generic/s0")
    assert pair["b"] == "gptq-int4@medical/s0" and pair["n"] == 12
    assert pair["difference"] == pytest.approx(8 / 12 - 9 / 12)
    assert set(pair["only_a"]) == {_case(4), _case(8)}  # medical misses them, generic does not
    assert set(pair["only_b"]) == {_case(3), _case(6), _case(9)}
    lo, hi = pair["ci"]
    assert lo < pair["difference"] < hi and 0 < pair["p_value"] <= 1
    assert len([p for p in data["pairs"] if p["metric"] == "accuracy"]) == 2  # one per seed

    spread = next(s for s in data["seed_spread"] if s["calibration_set"] == "generic")
    assert spread["values"] == pytest.approx([8 / 12, 7 / 12])
    assert spread["sd"] == pytest.approx(math.sqrt(((1 / 24) ** 2) * 2))  # stdev of two values 1/12 apart
    assert spread["unstable_cases"] == [_case(1)]
    mean = 7.5 / 12
    assert spread["sampling_se"] == pytest.approx(math.sqrt(mean * (1 - mean) / 12))

    summary = (path / "summary.md").read_text()
    assert "## Calibration sensitivity" in summary and "gptq-int4@medical/s0" in summary
    settings = json.loads((path / "results.json").read_text())["settings"]
    assert [v["label"] for v in settings["calibration_variants"]] == labels[1:]


def test_one_calibration_keeps_the_plain_label_and_writes_no_sensitivity(tmp_path):
    record, path = _sweep(tmp_path, calibration="generic")
    assert [c.precision for c in record.cells] == ["fp32", "gptq-int4"]
    assert not (path / "calibration.json").exists()
    assert "Calibration sensitivity" not in (path / "summary.md").read_text()


def test_a_bad_set_among_several_fails_before_any_model_loads(tmp_path):
    with pytest.raises(QevalError, match="nosuch"):
        _sweep(tmp_path, calibration="generic,nosuch")
    assert not list(tmp_path.iterdir())


def test_cli_takes_several_sets_and_seeds(tmp_path):
    from typer.testing import CliRunner

    from qeval.cli import app

    result = CliRunner().invoke(app, [
        "sweep", "--model", "fake", "--precisions", "gptq-int4", "--suites", str(MINI), "--device", "cpu",
        "--calibration", "generic, medical", "--calibration-samples", "4", "--calibration-seeds", "2",
        "--latency-samples", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = list(tmp_path.iterdir())
    assert (run_dir / "calibration.json").is_file()
    assert "gptq-int4@medical/s1" in result.output


def test_cli_refuses_zero_seeds(tmp_path):
    from typer.testing import CliRunner

    from qeval.cli import app

    result = CliRunner().invoke(app, [
        "sweep", "--model", "fake", "--precisions", "gptq-int4", "--suites", str(MINI), "--device", "cpu",
        "--calibration", "generic", "--calibration-seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())
