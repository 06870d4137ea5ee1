"""Fuzzed suite folders: suite.yaml and cases.jsonl, from random bytes to valid files with one field wrong.

Every input loads or raises a SuiteError naming file:line and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.suites import load_suite
from tests.fakes import MINI
from tests.fuzz._explained import explained
from tests.fuzz._strategies import json_values, mutated

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID_YAML = yaml.safe_load((MINI / "suite.yaml").read_text())
VALID_CASES = [json.loads(line) for line in (MINI / "cases.jsonl").read_text().splitlines() if line.strip()]
VALID_CASES_BYTES = (MINI / "cases.jsonl").read_bytes()


def _suite(folder: Path, yaml_data: bytes, cases_data: bytes = VALID_CASES_BYTES) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "suite.yaml").write_bytes(yaml_data)
    (folder / "cases.jsonl").write_bytes(cases_data)
    return folder


def _load(folder: Path, lines: bool = True):
    return explained(lambda: load_suite(folder), path=folder, lines=lines)


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_the_valid_suite_loads(tmp_path):
    suite = _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes()))
    assert not isinstance(suite, Exception) and len(suite.cases) == len(VALID_CASES)


# --- suite.yaml -------------------------------------------------------------------------------


@FUZZ
@given(text=st.text(max_size=200))
def test_yaml_any_text(tmp_path, text):
    _load(_suite(tmp_path / "s", text.encode("utf-8")))


@FUZZ
@given(data=st.binary(max_size=200))
def test_yaml_any_bytes(tmp_path, data):
    _load(_suite(tmp_path / "s", data))


@FUZZ
@given(value=json_values)
def test_yaml_any_structure(tmp_path, value):
    _load(_suite(tmp_path / "s", yaml.safe_dump(value).encode()))


@FUZZ
@given(spec=mutated(VALID_YAML))
def test_yaml_one_field_wrong(tmp_path, spec):
    _load(_suite(tmp_path / "s", yaml.safe_dump(spec, sort_keys=False).encode()))


@FUZZ
@given(cut=st.integers(0, len((MINI / "suite.yaml").read_bytes())))
def test_yaml_truncated(tmp_path, cut):
    _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes()[:cut]))


@FUZZ
@given(at=st.integers(0, len((MINI / "suite.yaml").read_bytes())),
       junk=st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
def test_yaml_not_utf8(tmp_path, at, junk):
    data = (MINI / "suite.yaml").read_bytes()
    result = _load(_suite(tmp_path / "s", data[:at] + junk + data[at:]))
    assert isinstance(result, Exception)
    line = data[:at].count(b"\n") + 1
    assert f"suite.yaml:{line}:" in str(result)


# --- cases.jsonl ------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300))
def test_cases_any_bytes(tmp_path, data):
    _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), data))


@FUZZ
@given(rows=st.lists(json_values, max_size=5))
def test_cases_any_json_lines(tmp_path, rows):
    _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), _jsonl(rows)))


@FUZZ
@given(index=st.integers(0, len(VALID_CASES) - 1), data=st.data())
def test_cases_one_field_wrong(tmp_path, index, data):
    rows = list(VALID_CASES)
    rows[index] = data.draw(mutated(rows[index]))
    result = _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), _jsonl(rows)))
    if isinstance(result, Exception) and "cases.jsonl" in str(result):
        assert f"cases.jsonl:{index + 1}" in str(result)


@FUZZ
@given(cut=st.integers(0, len(VALID_CASES_BYTES)))
def test_cases_truncated(tmp_path, cut):
    _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), VALID_CASES_BYTES[:cut]))


@FUZZ
@given(at=st.integers(0, len(VALID_CASES_BYTES)), junk=st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
def test_cases_not_utf8(tmp_path, at, junk):
    data = VALID_CASES_BYTES[:at] + junk + VALID_CASES_BYTES[at:]
    result = _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), data))
    assert isinstance(result, Exception)
    line = VALID_CASES_BYTES[:at].count(b"\n") + 1
    assert f"cases.jsonl:{line}" in str(result)


@pytest.mark.parametrize("text", ["[" * 5000, '{"id": "a", "expected": ' + "9" * 5000 + "}", '{"id": "a", "expected": 1}\n' * 2])
def test_cases_pathological_lines(tmp_path, text):
    result = _load(_suite(tmp_path / "s", (MINI / "suite.yaml").read_bytes(), text.encode()))
    assert isinstance(result, Exception)


@pytest.mark.parametrize("template", ["{{ a + 'x' }}", "{{ a / 0 }}", "{{ a | int(1, 2, 3) }}", "{{ a.b.c }}", "{{ a() }}"])
def test_template_that_fails_on_a_case(tmp_path, template):
    spec = {**VALID_YAML, "prompt_template": template}
    result = _load(_suite(tmp_path / "s", yaml.safe_dump(spec).encode()))
    assert isinstance(result, Exception)
    assert "cases.jsonl:1" in str(result)


@pytest.mark.parametrize("name", ["x" * 300, "a\x00b", "/", "..", "cases.jsonl/"])
def test_cases_file_odd_names(tmp_path, name):
    spec = {**VALID_YAML, "cases_file": name}
    _load(_suite(tmp_path / "s", yaml.safe_dump(spec).encode()))


@FUZZ
@given(name=st.text(min_size=1, max_size=20) | st.just("x" * 300))
def test_suite_path_any_name(tmp_path, name):
    target = tmp_path / name
    explained(lambda: load_suite(target), path=None)
