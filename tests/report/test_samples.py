import json

from qeval.report import read_samples, write_report
from qeval.report._samples import SAMPLE_KEYS


def test_one_line_per_case(record, tmp_path):
    folder = write_report(record, tmp_path)
    lines = (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    expected = sum(len(c.cases) for c in record.cells)
    assert expected == 16
    assert len(lines) == expected
    rows = [json.loads(line) for line in lines]
    assert rows == read_samples(folder)
    for row in rows:
        assert tuple(row) == SAMPLE_KEYS
    first = rows[0]
    assert first["precision"] == "fp32" and first["suite"] == "arith" and first["case_id"] == "c0"
    assert first["expected"] == 0 and first["passed"] is True and first["tags"] == {"topic": "arith"}
    assert {(r["precision"], r["suite"]) for r in rows} == {
        ("fp32", "arith"), ("fp32", "extract"), ("int8", "arith"), ("int8", "extract")
    }


def test_no_cases_gives_empty_file(factory, tmp_path):
    record = factory.make_record(cells=(factory.not_run_cell("nf4", "arith", "skipped", "no bnb"),))
    folder = write_report(record, tmp_path)
    assert (folder / "samples.jsonl").read_text() == ""
