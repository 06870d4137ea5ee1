"""Fuzzed stored runs: results.json, samples.jsonl and record (baseline) files.

Corrupt bytes, truncation, valid JSON of the wrong shape, another schema version,
one field mutated: every one loads or raises a ReportError naming the file (and,
for samples.jsonl, file:line) and the fix. A baseline from another model is not an
error: compare says so in its notes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.compare import compare_runs
from qeval.errors import ReportError
from qeval.report import (
    read_record,
    read_results,
    write_record,
    write_results,
    write_samples,
)
from qeval.report._json import ends_inside_a_value
from qeval.results import ModelCard
from tests.fuzz._explained import explained
from tests.fuzz._strategies import json_values, mutated
from tests.report.conftest import make_record, not_run_cell, ok_cell

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RECORD = make_record(cells=(ok_cell("fp32", "arith", n=3), not_run_cell("nf4", "arith", "skipped", "no bnb")))


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory) -> Path:
    """A run folder (results.json + samples.jsonl) and a record file, both valid."""
    folder = tmp_path_factory.mktemp("run")
    write_results(RECORD, folder / "results.json")
    write_samples(RECORD, folder / "samples.jsonl")
    write_record(RECORD, folder / "record.json")
    return folder


def _run_folder(tmp_path: Path, valid_run: Path, results: bytes | None = None, samples: bytes | None = None) -> Path:
    folder = tmp_path / "run"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "results.json").write_bytes(results if results is not None else (valid_run / "results.json").read_bytes())
    (folder / "samples.jsonl").write_bytes(samples if samples is not None else (valid_run / "samples.jsonl").read_bytes())
    return folder


def _read(folder: Path, lines: bool = False):
    result = explained(lambda: read_record(folder), path=folder, lines=lines)
    if isinstance(result, Exception):
        assert isinstance(result, ReportError)
    return result


def test_the_valid_run_reads_back(valid_run):
    assert read_record(valid_run) == RECORD
    assert read_record(valid_run / "record.json") == RECORD


# --- results.json / record files -------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300))
def test_results_any_bytes(tmp_path, valid_run, data):
    _read(_run_folder(tmp_path, valid_run, results=data))


@FUZZ
@given(value=json_values)
def test_results_any_json(tmp_path, valid_run, value):
    _read(_run_folder(tmp_path, valid_run, results=json.dumps(value).encode()))


@FUZZ
@given(version=json_values.filter(lambda v: v not in (1, 2) or isinstance(v, bool)))
def test_results_other_schema_version(tmp_path, valid_run, version):
    data = json.loads((valid_run / "results.json").read_text())
    data["schema_version"] = version
    result = _read(_run_folder(tmp_path, valid_run, results=json.dumps(data).encode()))
    assert isinstance(result, ReportError) and "schema_version" in str(result)


@FUZZ
@given(data=st.data())
def test_results_one_field_wrong(tmp_path, valid_run, data):
    valid = json.loads((valid_run / "results.json").read_text())
    _read(_run_folder(tmp_path, valid_run, results=json.dumps(data.draw(mutated(valid))).encode()))


@FUZZ
@given(data=st.data())
def test_record_file_one_field_wrong(tmp_path, valid_run, data):
    valid = json.loads((valid_run / "record.json").read_text())
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data.draw(mutated(valid))))
    result = explained(lambda: read_record(path), path=path)
    assert not isinstance(result, Exception) or isinstance(result, ReportError)


@FUZZ
@given(cut=st.integers(0, 2000))
def test_results_truncated(tmp_path, valid_run, cut):
    text = (valid_run / "results.json").read_bytes()
    result = _read(_run_folder(tmp_path, valid_run, results=text[: min(cut, len(text) - 2)]))
    assert isinstance(result, ReportError)


@FUZZ
@given(data=st.data())
def test_results_cut_anywhere_is_called_cut_short(tmp_path, valid_run, data):
    """Wherever the cut falls (inside a number, a string, between keys), the message says the file
    is cut short: json's error position alone does not (a cut inside ``1.5`` reports the ``.``)."""
    text = (valid_run / "results.json").read_bytes()
    cut = data.draw(st.integers(1, len(text.rstrip()) - 1))
    result = _read(_run_folder(tmp_path, valid_run, results=text[:cut]))
    assert isinstance(result, ReportError) and "cut short" in str(result), (text[cut - 20 : cut], result)


@given(value=json_values, cut=st.integers(0, 400))
def test_a_whole_document_never_ends_inside_a_value(value, cut):
    document = json.dumps({"v": value})
    assert not ends_inside_a_value(document)
    if 0 < cut < len(document):
        assert ends_inside_a_value(document[:cut])


@pytest.mark.parametrize("text", [b"[" * 5000, b'{"schema_version": ' + b"9" * 5000 + b"}", b"\xff\xfe{}", b""])
def test_results_pathological(tmp_path, valid_run, text):
    assert isinstance(_read(_run_folder(tmp_path, valid_run, results=text)), ReportError)


@pytest.mark.parametrize("name", ["x" * 300, "missing", "a\x00b"])
def test_results_odd_paths(tmp_path, name):
    result = explained(lambda: read_results(tmp_path / name), path=None)
    assert isinstance(result, ReportError)


# --- samples.jsonl -----------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300))
def test_samples_any_bytes(tmp_path, valid_run, data):
    _read(_run_folder(tmp_path, valid_run, samples=data), lines=True)


@FUZZ
@given(rows=st.lists(json_values, max_size=4))
def test_samples_any_json_lines(tmp_path, valid_run, rows):
    _read(_run_folder(tmp_path, valid_run, samples="".join(json.dumps(r) + "\n" for r in rows).encode()), lines=True)


@FUZZ
@given(data=st.data())
def test_samples_one_field_wrong(tmp_path, valid_run, data):
    rows = [json.loads(line) for line in (valid_run / "samples.jsonl").read_text().splitlines()]
    index = data.draw(st.integers(0, len(rows) - 1))
    rows[index] = data.draw(mutated(rows[index]))
    result = _read(_run_folder(tmp_path, valid_run, samples="".join(json.dumps(r) + "\n" for r in rows).encode()), lines=True)
    if isinstance(result, Exception) and "samples.jsonl" in str(result):
        assert f"samples.jsonl:{index + 1}:" in str(result)


@FUZZ
@given(at=st.integers(0, 400), junk=st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
def test_samples_not_utf8(tmp_path, valid_run, at, junk):
    text = (valid_run / "samples.jsonl").read_bytes()
    at = min(at, len(text))
    result = _read(_run_folder(tmp_path, valid_run, samples=text[:at] + junk + text[at:]), lines=True)
    assert isinstance(result, ReportError)
    line = text[:at].count(b"\n") + 1
    assert f"samples.jsonl:{line}:" in str(result)


def test_samples_keep_line_separators_inside_strings(tmp_path, valid_run):
    record = make_record(cells=(ok_cell("fp32", "arith", n=1),))
    case = record.cells[0].cases[0]
    cell = dataclasses.replace(record.cells[0], cases=(dataclasses.replace(case, completion="a\u2028b\u2029c\x85d"),))
    record = dataclasses.replace(record, cells=(cell,))
    write_results(record, tmp_path / "results.json")
    write_samples(record, tmp_path / "samples.jsonl")
    assert read_record(tmp_path) == record


# --- a baseline from another model --------------------------------------------------------------


def test_baseline_from_another_model_is_compared_with_a_note(tmp_path, valid_run):
    other = dataclasses.replace(RECORD, model=ModelCard("other/model", "Other", "fp32", None, None, None))
    write_record(other, tmp_path / "baseline.json")
    comparison = compare_runs(read_record(tmp_path / "baseline.json"), read_record(valid_run))
    assert not comparison.same_model
    assert any("the model differs" in note and "other/model" in note for note in comparison.notes)
