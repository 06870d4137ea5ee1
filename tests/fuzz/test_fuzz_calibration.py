"""Fuzzed calibration sets: .jsonl bytes, one-field mutations, bad names, paths and sample counts.

Every input loads or raises a CalibrationError naming file:line and the fix. The
line-level checks run on parse_lines (pure); load_calibration adds the file and
argument handling around it, and stops before the datasets reader for any bad line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.calibration import (
    CalibrationError,
    load_calibration,
    parse_lines,
    resolve_calibration,
)
from tests.fuzz._explained import explained
from tests.fuzz._strategies import json_values, mutated

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PATH = Path("sets/calibration.jsonl")
VALID_ROWS = [{"text": f"Calibration text number {i}, long enough to be a sentence."} for i in range(4)]
VALID_BYTES = "".join(json.dumps(r) + "\n" for r in VALID_ROWS).encode()


def _parse(data: bytes):
    result = explained(lambda: parse_lines(PATH, data), path=PATH, lines=True)
    if isinstance(result, Exception):
        assert isinstance(result, CalibrationError)
    return result


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes(data):
    _parse(data)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text(text):
    _parse(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(rows=st.lists(json_values, max_size=5))
def test_any_json_lines(rows):
    _parse("".join(json.dumps(r) + "\n" for r in rows).encode())


@FUZZ
@given(index=st.integers(0, len(VALID_ROWS) - 1), data=st.data())
def test_one_field_wrong(index, data):
    rows = list(VALID_ROWS)
    rows[index] = data.draw(mutated(rows[index]))
    result = _parse("".join(json.dumps(r) + "\n" for r in rows).encode())
    if isinstance(result, Exception):
        assert f"{PATH}:{index + 1}:" in str(result)


@FUZZ
@given(cut=st.integers(0, len(VALID_BYTES)))
def test_truncated(cut):
    _parse(VALID_BYTES[:cut])


@FUZZ
@given(at=st.integers(0, len(VALID_BYTES)), junk=st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
def test_not_utf8(at, junk):
    result = _parse(VALID_BYTES[:at] + junk + VALID_BYTES[at:])
    assert isinstance(result, Exception)
    line = VALID_BYTES[:at].count(b"\n") + 1
    assert f"{PATH}:{line}:" in str(result)


@pytest.mark.parametrize("line", ["[" * 5000, '{"text": ' + "9" * 5000 + "}", '{"text": "\\ud800"}', '{"text": "a", "text": "b"}'])
def test_pathological_lines(line):
    assert isinstance(_parse(line.encode()), Exception)


# --- the file, and load_calibration's arguments ------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=200))
def test_load_any_file(tmp_path, data):
    path = tmp_path / "set.jsonl"
    path.write_bytes(data)
    if not data.strip():
        result = explained(lambda: load_calibration(path, samples=1), path=path)
        assert isinstance(result, CalibrationError)
    else:
        # a valid file would go on to the (slow) datasets reader: keep to files parse_lines refuses
        try:
            parse_lines(path, data)
        except CalibrationError:
            result = explained(lambda: load_calibration(path, samples=1), path=path, lines=True)
            assert isinstance(result, CalibrationError)


@FUZZ
@given(name=st.text(max_size=30) | st.just("x" * 300) | st.sampled_from(["generic/", "..", ".", "~", "generic.jsonl"]))
def test_any_set_name(tmp_path, name):
    result = explained(lambda: resolve_calibration(name, root=tmp_path / "root"), path=None)
    if isinstance(result, Exception):
        assert isinstance(result, CalibrationError)


@FUZZ
@given(samples=st.integers(-5, 0) | st.booleans() | st.floats() | st.text(max_size=5) | st.none() | st.integers(5, 10**6),
       seed=st.integers() | st.floats() | st.text(max_size=5) | st.none())
def test_bad_samples_and_seed(tmp_path, samples, seed):
    path = tmp_path / "set.jsonl"
    path.write_bytes(VALID_BYTES)
    result = explained(lambda: load_calibration(path, samples=samples, seed=seed), path=None)
    assert isinstance(result, CalibrationError)  # every draw has a bad samples (or seed) value


@pytest.mark.parametrize("make", ["folder-without-file", "wrong-suffix", "directory-named-jsonl", "unreadable"])
def test_bad_paths(tmp_path, make):
    target = tmp_path / "set"
    if make == "folder-without-file":
        target.mkdir()
    elif make == "wrong-suffix":
        target = tmp_path / "set.txt"
        target.write_bytes(VALID_BYTES)
    elif make == "directory-named-jsonl":
        target = tmp_path / "set.jsonl"
        target.mkdir()
    else:
        target = tmp_path / "set.jsonl"
        target.write_bytes(VALID_BYTES)
        target.chmod(0)
    result = explained(lambda: load_calibration(target, samples=1), path=target)
    if make != "unreadable":  # root reads anything
        assert isinstance(result, CalibrationError)
