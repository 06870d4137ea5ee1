import json
import math

import pytest

from qeval.errors import ReportError
from qeval.report import read_results, results_dict, write_report, write_results
from qeval.report._json import jsonable
from qeval.results import CpuInfo, Environment, MetricValue

CELL_KEYS = {
    "precision": str, "suite": str, "status": str, "n": int, "metrics": dict, "precision_config": dict,
}
NULLABLE_CELL_KEYS = ("reason", "accuracy", "accuracy_ci", "latency", "memory", "load_s", "quantize_s")
TOP_KEYS = {
    "schema_version": int, "run_id": str, "created_at": str, "model": dict,
    "environment": dict, "settings": dict, "cells": list,
}


def test_results_json_has_every_key_with_the_right_type(record, tmp_path):
    folder = write_report(record, tmp_path)
    data = read_results(folder / "results.json")
    for key, kind in TOP_KEYS.items():
        assert isinstance(data[key], kind), key
    assert data["run_id"] == "run-001"
    assert data["model"]["source_precision"] == "Q4_1 (GGUF, 4-bit, group 32)"
    assert len(data["cells"]) == len(record.cells)
    for cell in data["cells"]:
        for key, kind in CELL_KEYS.items():
            assert isinstance(cell[key], kind), key
        for key in NULLABLE_CELL_KEYS:
            assert key in cell, key
        assert "cases" not in cell
        assert cell["status"] in ("ok", "skipped", "failed")


def test_ok_cell_numbers(record, tmp_path):
    data = read_results(write_report(record, tmp_path))
    cell = data["cells"][0]
    assert cell["accuracy"] == 0.75
    assert cell["accuracy_ci"] == [0.15, 0.85]
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(cell["latency"][name]) == {"p50", "p95", "p99", "n"}
        assert isinstance(cell["latency"][name]["n"], int)
    assert isinstance(cell["latency"]["output_tokens_per_s"], float)
    assert cell["memory"]["weights_bytes"] == 270_000_000
    assert cell["memory"]["peak_bytes"] == 900_000_000
    assert cell["metrics"]["f1"] == {"value": 0.61, "ci": [0.4, 0.8], "n": 4}
    assert cell["load_s"] == 2.0 and cell["quantize_s"] == 0.5
    assert cell["precision_config"]["library"] == "torchao"
    assert cell["n_samples"] == 4


def test_skipped_and_failed_cells_carry_reason_and_null_numbers(record, tmp_path):
    data = read_results(write_report(record, tmp_path))
    by_status = {c["status"]: c for c in data["cells"] if c["status"] != "ok"}
    assert "bitsandbytes" in by_status["skipped"]["reason"]
    assert "group size" in by_status["failed"]["reason"]
    for cell in by_status.values():
        for key in ("accuracy", "accuracy_ci", "latency", "memory", "load_s", "quantize_s"):
            assert cell[key] is None, key


def test_round_trip_equals_results_dict(record, tmp_path):
    folder = write_report(record, tmp_path)
    assert read_results(folder) == results_dict(record)  # a folder is accepted as well as the file


def test_nan_and_inf_become_null(factory, tmp_path):
    nan_cell = factory.ok_cell(
        "fp32", "arith", accuracy=float("nan"), load_s=float("inf"),
        metrics={"f1": MetricValue(value=float("-inf"), ci=(float("nan"), 1.0), n=4)},
        latency=factory.latency(ttft_p95=float("nan"), tokens_per_s=float("inf")),
    )
    record = factory.make_record(cells=(nan_cell,), environment=Environment(cpu=CpuInfo(load_average_1m=float("nan"))))
    folder = write_report(record, tmp_path)
    text = (folder / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    cell = data["cells"][0]
    assert cell["accuracy"] is None and cell["load_s"] is None
    assert cell["metrics"]["f1"] == {"value": None, "ci": [None, 1.0], "n": 4}
    assert cell["latency"]["ttft_ms"]["p95"] is None
    assert cell["latency"]["output_tokens_per_s"] is None
    assert data["environment"]["cpu"]["load_average_1m"] is None


def test_odd_objects_are_stringified():
    import numpy as np
    from pathlib import Path

    odd = {"out": Path("/x/y"), "n": np.int64(3), "v": np.float32(0.5), "s": {2, 1}}
    assert jsonable(odd) == {"out": "/x/y", "n": 3, "v": 0.5, "s": [1, 2]}


def test_read_results_rejects_other_schema_version(record, tmp_path):
    path = write_results(record, tmp_path / "results.json")
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"schema_version 99.*reads schema_version 2 or 1") as info:
        read_results(path)
    assert str(path) in str(info.value)
    del data["schema_version"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="no schema_version"):
        read_results(path)


def test_read_results_errors_are_clear(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_results(tmp_path / "missing.json")
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": 2,\n  "cells": [')
    with pytest.raises(ReportError, match=r"results.json:2:\d+: not valid JSON"):
        read_results(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ReportError, match="JSON object"):
        read_results(bad)
    assert issubclass(ReportError, OSError)


def test_unsafe_run_id_is_refused(factory, tmp_path):
    for run_id in ("../escape", "a/b", "", ".."):
        with pytest.raises(ReportError, match="cannot be a folder name"):
            write_report(factory.make_record(run_id=run_id), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_finite_floats_survive(factory, tmp_path):
    record = factory.make_record(cells=(factory.ok_cell("fp32", "arith", accuracy=1 / 3),))
    data = read_results(write_report(record, tmp_path))
    assert math.isclose(data["cells"][0]["accuracy"], 1 / 3)
