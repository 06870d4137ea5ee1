"""The run journal: records round-trip, a torn last line is tolerated, other damage is named file:line."""

import json

import pytest

from qeval.journal import JOURNAL_FILE, Journal, JournalError, read_journal
from qeval.results import CaseResult, CellResult, ModelCard

CARD = ModelCard(spec="fake", name="fake", source_precision="fp32", parameters=1, architecture=None, path=None)


def _case(i: int) -> CaseResult:
    return CaseResult(case_id=f"c{i}", prompt="p", completion="The answer is 1.", expected=1, score=1.0,
                      passed=True, reason=None, output_tokens=4, tags={"t": "x"}, details={"parsed": 1.0})


def _write(path):
    j = Journal(path)
    j.append({"kind": "header", "run_id": "r1", "config": {}, "suite_hashes": {}})
    j.batch("fp32", "mini", 0, [_case(0), _case(1)], 8, 0.5)
    j.batch("fp32", "mini", 1, [_case(2)], 4, 0.25)
    j.cells("fp32", [CellResult(precision="fp32", suite="mini", status="ok", reason=None, n=3, accuracy=1.0,
                                accuracy_ci=(0.4, 1.0), cases=(_case(0),))], CARD)
    j.close()
    return path


def test_records_round_trip(tmp_path):
    state = read_journal(_write(tmp_path / JOURNAL_FILE))
    assert state.header["run_id"] == "r1" and not state.done and not state.notes
    cases, tokens, wall = state.batches[("fp32", "mini")][0]
    assert [c.case_id for c in cases] == ["c0", "c1"] and tokens == 8 and wall == 0.5
    assert cases[0] == _case(0)
    (cell,) = state.cells["fp32"]
    assert cell.accuracy == 1.0 and cell.accuracy_ci == (0.4, 1.0) and cell.cases == (_case(0),)
    assert state.model == CARD
    # reading the folder works too
    assert read_journal(tmp_path).header == state.header


def test_torn_last_line_is_ignored_with_a_note_and_cut_before_appending(tmp_path):
    path = _write(tmp_path / JOURNAL_FILE)
    whole = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b'{"kind": "batch", "label": "int4", "sui')
    state = read_journal(path)
    assert len(state.notes) == 1 and f"{path}:5" in state.notes[0] and "incomplete" in state.notes[0]
    assert state.valid_bytes == whole and ("int4", "mini") not in state.batches
    j = Journal(path, truncate_to=state.valid_bytes)
    j.done()
    j.close()
    again = read_journal(path)
    assert again.done and not again.notes


def test_garbage_line_is_a_clear_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path / JOURNAL_FILE)
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, "this is not json\n")
    path.write_text("".join(lines))
    with pytest.raises(JournalError, match=rf"{path}:3: damaged journal line"):
        read_journal(path)


def test_malformed_record_and_missing_header_are_errors(tmp_path):
    path = tmp_path / JOURNAL_FILE
    path.write_text(json.dumps({"kind": "batch", "label": "x"}) + "\n")
    with pytest.raises(JournalError, match=rf"{path}:1: the first record must be the run header"):
        read_journal(path)
    path.write_text(json.dumps({"kind": "header"}) + "\n" + json.dumps({"kind": "batch", "label": "x"}) + "\n")
    with pytest.raises(JournalError, match=rf"{path}:2: malformed 'batch' record"):
        read_journal(path)
    with pytest.raises(JournalError, match="no run journal here"):
        read_journal(tmp_path / "nowhere")
