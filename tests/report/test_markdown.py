from qeval.report import render_console_table, render_markdown, table_rows, write_report
from qeval.report._markdown import source_bits, source_precision_note
from qeval.results import ModelCard


def test_summary_contents(record, tmp_path):
    folder = write_report(record, tmp_path)
    text = (folder / "summary.md").read_text(encoding="utf-8")
    assert text.startswith("# qeval run `run-001`")
    for word in ("fp32", "int8", "nf4", "arith", "extract"):
        assert word in text
    assert "Q4_1 (GGUF, 4-bit, group 32)" in text
    assert "already 4-bit" in text and "falsely lossless" in text
    assert "accuracy 0.75 [0.15, 0.85] n=4 | (primary)" in text  # no stored scoring: the old rule (accuracy)
    assert "f1 0.61 [0.40, 0.80]" in text
    assert "skipped: bitsandbytes not installed" in text
    assert "failed: RuntimeError: group size 128 does not divide 576" in text
    assert "120 (n=8)" in text  # TTFT p95 with its sample count
    assert "270.0" in text and "900.0 rss" in text  # weights MB, peak MB
    assert "## Environment" in text and "torch.threads" in text
    assert "How to read this" in text and "Wilson 95%" in text


def test_table_cells_never_break_the_markdown_table(factory):
    record = factory.make_record(
        cells=(factory.not_run_cell("int4", "a|b", "failed", "line one\nline | two"),)
    )
    text = render_markdown(record)
    row = next(line for line in text.splitlines() if line.startswith("| int4"))
    assert "\n" not in row
    assert row.count(" | ") == 10  # eleven columns, pipes inside values are escaped
    assert "a\\|b" in row


def test_rows_grouped_by_precision_then_suite(record):
    rows = table_rows(record)
    assert [(r.precision, r.suite) for r in rows] == [
        ("fp32", "arith"), ("fp32", "extract"), ("int8", "arith"), ("int8", "extract"),
        ("nf4", "arith"), ("nf4", "extract"),
    ]
    skipped = rows[4]
    assert not skipped.ok and skipped.primary == skipped.pass_rate == "—" and skipped.ttft_p95_ms == "—"


def test_source_precision_note():
    def card(source):
        return ModelCard(spec="x", name="x", source_precision=source, parameters=None, architecture=None, path=None)

    assert source_bits("Q4_1 (GGUF, 4-bit, group 32)") == 4
    assert source_bits("Q8_0") == 8 and source_bits("nf4") == 4
    assert source_bits("bf16") is None and source_bits("32-bit float") is None
    assert "already 8-bit" in source_precision_note(card("Q8_0 GGUF"))
    assert "full precision" in source_precision_note(card("bf16"))
    assert "If these weights were already quantized" in source_precision_note(card("mystery"))


def test_console_table(record):
    from rich.console import Console

    table = render_console_table(record)
    assert len(table.columns) == 11 and table.row_count == 6
    assert [c.header for c in table.columns][3:5] == ["primary metric [95% CI] n", "pass rate [95% CI]"]
    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    out = console.export_text()
    assert "0.75 [0.15, 0.85] n=4" in out  # brackets are not swallowed as rich markup
    assert "skipped: bitsandbytes" in out


def test_empty_record(factory):
    record = factory.make_record(cells=())
    assert "No cells were run." in render_markdown(record)
    assert render_console_table(record).row_count == 0


def test_long_reason_is_short_in_the_table_and_whole_below(factory):
    reason = "x" * 200
    text = render_markdown(factory.make_record(cells=(factory.not_run_cell("int4", "s", "failed", reason),)))
    row = next(line for line in text.splitlines() if line.startswith("| int4"))
    assert reason not in row and "…" in row
    assert f"— failed: {reason}" in text
