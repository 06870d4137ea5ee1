"""Whole-record files and reading stored runs back into frozen records."""

from __future__ import annotations

import json

import pytest

from qeval.errors import ReportError
from qeval.report import read_record, write_record, write_report
from qeval.results import RunRecord


def test_record_file_round_trips_exactly(record, tmp_path):
    path = write_record(record, tmp_path / "baseline.json")
    back = read_record(path)
    assert isinstance(back, RunRecord)
    assert back == record
    assert back.cells[0].cases[1].passed is False
    assert isinstance(back.cells[0].accuracy_ci, tuple)


def test_run_folder_reads_back_with_cases_from_samples(record, tmp_path):
    folder = write_report(record, tmp_path)
    back = read_record(folder)
    assert [c.precision for c in back.cells] == [c.precision for c in record.cells]
    assert back.cells[0].cases == record.cells[0].cases
    assert back.cells[4].cases == ()


def test_results_json_without_samples_gives_cells_without_cases(record, tmp_path):
    folder = write_report(record, tmp_path)
    (folder / "samples.jsonl").unlink()
    back = read_record(folder / "results.json")
    assert back.cells[0].accuracy == record.cells[0].accuracy
    assert back.cells[0].cases == ()


def test_damaged_record_names_the_key(record, tmp_path):
    path = write_record(record, tmp_path / "b.json")
    data = json.loads(path.read_text())
    data["cells"][0]["accuracy"] = "lots"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"cells\.0\.accuracy"):
        read_record(path)
