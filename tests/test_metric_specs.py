"""Metric semantics: the suite's scoring travels in every cell; older records fall back to the old rules."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qeval.config import SweepConfig
from qeval.measure import MeasureError, drop
from qeval.metric_specs import legacy_scoring, metric_value, scoring_of, suite_scoring
from qeval.models import FakeSource
from qeval.report import read_record
from qeval.suites import load_suite
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd
from tests.report.conftest import ok_cell


def test_a_suite_records_its_primary_metric_specs_and_slos():
    scoring = load_suite("suites/medical").scoring()
    assert scoring.primary == "f1" and scoring.scorer == "entities" and scoring.slos == ("f1 >= 0.3",)
    assert scoring.primary_spec.pairing == "micro_f1"
    assert scoring.spec("unparseable_rate").direction == "lower"
    assert scoring.spec("error_rate").direction == "lower"
    assert "every entity" in scoring.spec("accuracy").label
    assert scoring.spec("nonsense").direction == "unknown"


def test_a_sweep_stores_the_scoring_in_each_cell_and_reads_it_back(tmp_path):
    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=0, warmup_requests=0, out_dir=str(tmp_path))
    record, path = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))
    assert all(c.scoring == load_suite(MINI).scoring() for c in record.cells)
    data = json.loads((path / "results.json").read_text())
    assert data["cells"][0]["scoring"]["primary"] == "accuracy"
    assert read_record(path).cells == record.cells


def test_cells_without_scoring_get_the_old_rules():
    extraction = ok_cell("fp32", "extract")  # f1 but no per-case tp/fp/fn counts: accuracy was primary
    assert extraction.scoring is None
    scoring = scoring_of(extraction)
    assert scoring.primary == "accuracy" and scoring.spec("f1").pairing == "micro_f1"
    counted = [replace(c, details={"tp": 1, "fp": 0, "fn": 0}) for c in extraction.cases]
    assert legacy_scoring([ok_cell("fp32", "extract", cases=tuple(counted))]).primary == "f1"


def test_the_newest_stored_scoring_wins_for_a_suite():
    a = ok_cell("fp32", "arith")
    b = ok_cell("int8", "arith", scoring=load_suite("suites/medical").scoring())
    assert suite_scoring([a, b]).primary == "f1"
    assert metric_value(a, "accuracy").value == a.accuracy and metric_value(a, "nope") is None


def test_a_drop_needs_a_declared_paired_test():
    scoring = load_suite("suites/arithmetic").scoring()
    cell = ok_cell("fp32", "arith", scoring=scoring)
    with pytest.raises(MeasureError, match="unparseable_rate.*no paired test.*accuracy"):
        drop(cell, cell, "unparseable_rate")
    assert drop(cell, cell, "accuracy").value == 0
