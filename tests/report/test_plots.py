import pytest

from qeval.report import LATENCY_PLOT, WEIGHTS_PLOT, write_report
from qeval.report._plots import _caption, _collect, _ttft_p95

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_pngs(folder):
    for name in (LATENCY_PLOT, WEIGHTS_PLOT):
        data = (folder / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 5_000, name


def test_plots_are_valid_pngs(record, tmp_path):
    _check_pngs(write_report(record, tmp_path))


@pytest.mark.parametrize("case", ["one_precision", "all_failed", "nones", "no_cells"])
def test_plots_survive_degenerate_records(case, factory, tmp_path):
    cells = {
        "one_precision": (factory.ok_cell("fp32", "arith"),),
        "all_failed": (
            factory.not_run_cell("a", "s1", "failed", "boom"),
            factory.not_run_cell("b", "s2", "skipped", "no lib"),
        ),
        "nones": (
            factory.ok_cell("fp32", "arith", accuracy=None, latency=None, memory=None),
            factory.ok_cell("int8", "arith", latency=factory.latency(ttft_p95=None), accuracy_ci=None),
        ),
        "no_cells": (),
    }[case]
    _check_pngs(write_report(factory.make_record(cells=cells), tmp_path))


def test_left_out_cells_are_named(record, factory):
    by_suite, left_out = _collect(record, _ttft_p95, "TTFT p95")
    assert [p.precision for p in by_suite["arith"]] == ["fp32", "int8"]
    assert left_out == ["nf4 × arith: skipped", "nf4 × extract: failed"]
    assert "left out: nf4 × arith: skipped" in _caption(left_out)
    assert _caption([]) == "every cell is shown"
    point = by_suite["arith"][0]
    assert (point.lo, point.y, point.hi) == (0.15, 0.75, 0.85)
