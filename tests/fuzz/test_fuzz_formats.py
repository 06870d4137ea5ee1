"""Fuzzed HumanEval and MBPP files given as suites: every one loads or raises a SuiteError naming file:line and the fix."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.errors import SuiteError
from qeval.suites import load_suite
from tests.fuzz._explained import explained
from tests.fuzz._strategies import json_values, mutated

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FORMATS = Path(__file__).parents[1] / "data" / "formats"
ROWS = {
    name: [json.loads(line) for line in (FORMATS / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    for name in ("humaneval", "mbpp")
}
_CODE = st.sampled_from(["", "def f(:", "\x00", "def check(candidate):\n    assert candidate(1)", "assert f(1) == 1",
                         "(" * 200, "import os", "check", "class", "f" * 5000]) | st.text(max_size=30)


def _load(path: Path, data: bytes, lines: bool = True):
    path.write_bytes(data)
    result = explained(lambda: load_suite(path), path=path, lines=lines)
    if isinstance(result, Exception):
        assert isinstance(result, SuiteError)
    return result


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("name", ROWS)
def test_the_valid_files_load(tmp_path, name):
    suite = _load(tmp_path / f"{name}.jsonl", _jsonl(ROWS[name]))
    assert not isinstance(suite, Exception) and suite.cases_format == name


@FUZZ
@given(name=st.sampled_from(sorted(ROWS)), data=st.data())
def test_one_field_wrong(tmp_path, name, data):
    rows = list(ROWS[name])
    index = data.draw(st.integers(0, len(rows) - 1))
    rows[index] = data.draw(mutated(rows[index]))
    result = _load(tmp_path / f"{name}.jsonl", _jsonl(rows))
    if isinstance(result, Exception) and index > 0:  # line 1 also decides the format
        assert f"{name}.jsonl:{index + 1}:" in str(result)


@FUZZ
@given(name=st.sampled_from(sorted(ROWS)), data=st.data())
def test_code_keys_any_text(tmp_path, name, data):
    rows = list(ROWS[name])
    row = dict(rows[0])
    keys = ["prompt", "test", "entry_point", "canonical_solution"] if name == "humaneval" else [
        "code", "test_setup_code", "entry_point", "text"]
    row[data.draw(st.sampled_from(keys))] = data.draw(_CODE)
    if name == "mbpp" and data.draw(st.booleans()):
        row["test_list"] = data.draw(st.lists(_CODE, max_size=3))
    _load(tmp_path / f"{name}.jsonl", _jsonl([row, *rows[1:]]))


@FUZZ
@given(rows=st.lists(json_values, max_size=4))
def test_any_json_lines(tmp_path, rows):
    _load(tmp_path / "bench.jsonl", _jsonl(rows))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes(tmp_path, data):
    _load(tmp_path / "bench.jsonl", data)


@FUZZ
@given(name=st.sampled_from(sorted(ROWS)), cut=st.integers(0, 3000))
def test_truncated(tmp_path, name, cut):
    _load(tmp_path / f"{name}.jsonl", _jsonl(ROWS[name])[:cut])


@FUZZ
@given(data=st.binary(max_size=100))
def test_gzip_any_bytes(tmp_path, data):
    _load(tmp_path / "bench.jsonl.gz", data)


@FUZZ
@given(cut=st.integers(0, 400))
def test_gzip_truncated(tmp_path, cut):
    _load(tmp_path / "bench.jsonl.gz", gzip.compress(_jsonl(ROWS["mbpp"]))[:cut])


@pytest.mark.parametrize("suffix", [".json", ".txt", ""])
def test_wrong_suffix(tmp_path, suffix):
    assert isinstance(_load(tmp_path / f"bench{suffix}", _jsonl(ROWS["mbpp"]), lines=False), SuiteError)
