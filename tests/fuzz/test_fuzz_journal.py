"""Fuzzed run journals (what `qeval sweep --resume` reads): damage ends in a JournalError naming file:line and the fix.

A torn last line is not an error (the run was killed mid-write): it is dropped with a note.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.journal import JOURNAL_FILE, Journal, JournalError, read_journal
from qeval.results import CaseResult, CellResult, ModelCard
from tests.fuzz._explained import explained
from tests.fuzz._strategies import json_values, mutated

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CARD = ModelCard(spec="fake", name="fake", source_precision="fp32", parameters=1, architecture=None, path=None)
CASE = CaseResult(case_id="c0", prompt="p", completion="1", expected=1, score=1.0, passed=True, reason=None, output_tokens=1)


@pytest.fixture(scope="module")
def valid_lines(tmp_path_factory) -> list[bytes]:
    """The lines of a valid journal: header, one batch, one variant's cells."""
    path = tmp_path_factory.mktemp("journal") / JOURNAL_FILE
    journal = Journal(path)
    journal.append({"kind": "header", "run_id": "r1", "config": {}, "suite_hashes": {}})
    journal.batch("fp32", "mini", 0, [CASE], 1, 0.5)
    journal.cells("fp32", [CellResult(precision="fp32", suite="mini", status="ok", reason=None, n=1, accuracy=1.0,
                                      accuracy_ci=(0.2, 1.0), cases=(CASE,))], CARD)
    journal.close()
    return path.read_bytes().split(b"\n")[:-1]


def _read(tmp_path, data: bytes):
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(data)
    result = explained(lambda: read_journal(path), path=path, lines=True)
    if isinstance(result, Exception):
        assert isinstance(result, JournalError)
    return result


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes(tmp_path, data):
    _read(tmp_path, data)


@FUZZ
@given(rows=st.lists(json_values, max_size=4))
def test_any_json_lines(tmp_path, rows):
    _read(tmp_path, b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@FUZZ
@given(data=st.data())
def test_one_field_wrong(tmp_path, valid_lines, data):
    lines = list(valid_lines)
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = json.dumps(data.draw(mutated(json.loads(lines[index])))).encode()
    result = _read(tmp_path, b"\n".join(lines) + b"\n")
    if isinstance(result, Exception) and "journal.jsonl:" in str(result):
        assert f"journal.jsonl:{index + 1}:" in str(result) or "journal.jsonl:1:" in str(result)


@FUZZ
@given(cut=st.integers(0, 3000))
def test_truncated(tmp_path, valid_lines, cut):
    _read(tmp_path, (b"\n".join(valid_lines) + b"\n")[:cut])


def test_pathological_lines(tmp_path):
    header = b'{"kind": "header", "run_id": "r"}\n'
    overflow = b'{"kind": "batch", "label": "a", "suite": "s", "cases": [], "batch": 1e999, "output_tokens": 1, "wall_s": 1}'
    for line in (b"[" * 5000, overflow, b'{"kind": ' + b"9" * 5000 + b"}"):
        assert isinstance(_read(tmp_path, header + line + b"\n"), JournalError)
