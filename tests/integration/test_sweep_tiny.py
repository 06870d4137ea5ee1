"""Every CPU precision through the real sweep path on the tiny random Llama."""

import json

import pytest

from qeval.config import SweepConfig
from qeval.quantize import PRECISIONS, get_precision
from qeval.sweep import run_sweep
from tests.fakes import MINI

CPU_PRECISIONS = tuple(n for n in PRECISIONS if get_precision(n).unavailable_reason("cpu") is None)


def test_all_cpu_precisions_are_available_here():
    # The project installs every backend; if one goes missing, say so loudly.
    assert set(CPU_PRECISIONS) == {
        "fp32", "bf16", "fp16", "int8", "w8a8", "fp8", "int4", "nf4", "hqq4", "gptq-int4", "gptq-int8",
        "w8a8-static", "w8a8-static-p999", "as-is",
    }


@pytest.fixture(scope="module")
def tiny_sweep(tiny_chat_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    config = SweepConfig(
        model=str(tiny_chat_model_dir),
        precisions=CPU_PRECISIONS,
        suites=(str(MINI),),
        device="cpu",
        limit=4,
        latency_samples=2,
        warmup_requests=1,
        out_dir=str(out),
        calibration="generic",  # for the GPTQ precisions
        calibration_samples=8,
    )
    return run_sweep(config)


def test_every_precision_produces_an_ok_cell(tiny_sweep):
    record, _ = tiny_sweep
    assert [(c.precision, c.status, c.reason) for c in record.cells] == [(p, "ok", None) for p in CPU_PRECISIONS]
    for cell in record.cells:
        assert cell.n == 4 and 0.0 <= cell.accuracy <= 1.0
        assert cell.latency.requests == 2 and cell.latency.warmup_requests == 1
        assert cell.latency.ttft_ms.n == 2 and cell.latency.ttft_ms.p50 > 0
        assert cell.memory.peak_kind == "cpu_rss" and cell.memory.peak_bytes > 0
        assert cell.load_s > 0 and cell.quantize_s >= 0
        assert all(c.output_tokens >= 1 for c in cell.cases)


def test_weights_shrink_with_precision(tiny_sweep):
    record, _ = tiny_sweep
    w = {c.precision: c.memory.weights_bytes for c in record.cells}
    assert w["fp32"] > w["bf16"] > w["int8"] > w["int4"]
    assert w["bf16"] == w["fp16"]
    assert w["fp32"] == pytest.approx(2 * w["bf16"], rel=0.01)
    for four_bit in ("int4", "nf4", "hqq4", "gptq-int4"):
        assert w[four_bit] < w["int8"]


def test_group_size_is_recorded(tiny_sweep):
    record, path = tiny_sweep
    data = json.loads((path / "results.json").read_text())
    cfg = {c["precision"]: c["precision_config"] for c in data["cells"]}
    assert cfg["int4"]["group_size"] in (128, 64, 32)
    assert 128 % cfg["int4"]["group_size"] == 0
    assert cfg["hqq4"]["group_size"] in (128, 64, 32)
