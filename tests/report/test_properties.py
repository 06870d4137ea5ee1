"""write_report never raises on finite or missing numbers, and its JSON always parses."""

import json
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.report import read_results, render_console_table, render_markdown, write_report
from qeval.report._write import ReportWarning
from qeval.report._json import write_results
from qeval.report._plots import _draw, _ttft_p95, _weights_mb
from qeval.report._samples import write_samples
from qeval.results import CellResult, LatencyStats, MemoryStats, MetricValue, Percentiles

num = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64))
count = st.integers(min_value=0, max_value=10**6)
big = st.one_of(st.none(), st.integers(min_value=0, max_value=10**15))


def _pair(a, b):
    return None if a is None or b is None else (a, b)


percentiles = st.builds(Percentiles, p50=num, p95=num, p99=num, n=count)
latencies = st.one_of(
    st.none(),
    st.builds(
        LatencyStats, ttft_ms=percentiles, tpot_ms=percentiles, itl_ms=percentiles, e2e_ms=percentiles,
        tokenize_ms=percentiles, output_tokens_per_s=num, requests=count, warmup_requests=count, output_tokens=count,
    ),
)
memories = st.one_of(
    st.none(), st.builds(MemoryStats, weights_bytes=big, peak_bytes=big, peak_kind=st.sampled_from(["cpu_rss", "cuda_allocated"]))
)
metrics = st.dictionaries(
    st.sampled_from(["f1", "unparseable_rate"]),
    st.builds(MetricValue, value=num, ci=st.builds(_pair, num, num), n=count),
    max_size=2,
)
cells = st.builds(
    CellResult,
    precision=st.sampled_from(["fp32", "int8", "int4"]),
    suite=st.sampled_from(["arith", "code"]),
    status=st.sampled_from(["ok", "skipped", "failed"]),
    reason=st.one_of(st.none(), st.text(max_size=30)),
    n=count,
    accuracy=num,
    accuracy_ci=st.builds(_pair, num, num),
    metrics=metrics,
    latency=latencies,
    memory=memories,
    load_s=num,
    quantize_s=num,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell_list=st.lists(cells, max_size=4))
def test_results_and_markdown_never_raise(factory, cell_list):
    record = factory.make_record(cells=tuple(cell_list))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_results(record, Path(tmp) / "results.json")
        data = read_results(path)
        json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
        assert len(data["cells"]) == len(cell_list)
        write_samples(record, Path(tmp) / "samples.jsonl")
    render_markdown(record)
    render_console_table(record)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell_list=st.lists(cells, min_size=1, max_size=3))
def test_write_report_never_raises(factory, cell_list):
    record = factory.make_record(cells=tuple(cell_list))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)  # a plot that failed quietly fails here
        folder = write_report(record, tmp)
        assert read_results(folder)["run_id"] == record.run_id
        assert (folder / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("x", "accuracy", "ci"),
    [(1.7e308, 0.5, (0.1, 0.9)), (-5.0, 0.5, (-1.7e308, 1.7e308)), (0.0, 1e300, (0.0, 1.0)), (5e-324, 0.5, None)],
)
def test_plots_survive_extreme_numbers(factory, x, accuracy, ci):
    cell = factory.ok_cell(
        "a", "s", accuracy=accuracy, accuracy_ci=ci, latency=factory.latency(ttft_p95=x),
        memory=MemoryStats(10**15, 1, "cpu_rss"),
    )
    record = factory.make_record(cells=(cell,))
    for x_of in (_ttft_p95, _weights_mb):
        assert _draw(record, x_of, "x", "x", "t")[:4] == b"\x89PNG"
