"""Background load: parsing /proc/stat, judging a window, and a planted CPU hog making a cell's
latency not evidence (marked in the table, inconclusive in a gate)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.background import BUSY_OTHER_SHARE, BUSY_STEAL_SHARE, CpuSample, between, parse_proc_stat, sample, watch
from qeval.config import SweepConfig
from qeval.gates import decide, parse_slo
from qeval.measure import for_slo
from qeval.models import FakeSource
from qeval.report._table import BUSY_MARK, table_rows
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd

STAT = """cpu  1145637 10 131282 840519 9933 7 4024 2678 0 0
cpu0 422848 0 47461 590042 2356 0 2498 1338 0 0
intr 12345
"""



@pytest.fixture(autouse=True)
def _judge_machine_load(monkeypatch):
    """This file tests the busy judgement itself: at its default threshold."""
    monkeypatch.delenv("QEVAL_BUSY_OTHER_SHARE", raising=False)


def test_proc_stat_counts_busy_steal_and_total_seconds():
    busy, steal, total = parse_proc_stat(STAT, ticks_per_s=100.0)
    assert busy == pytest.approx((1145637 + 10 + 131282 + 7 + 4024) / 100)
    assert steal == pytest.approx(2678 / 100)
    assert total == pytest.approx((1145637 + 10 + 131282 + 840519 + 9933 + 7 + 4024 + 2678) / 100)


def test_a_file_without_the_cpu_line_is_refused():
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        parse_proc_stat("cpu0 1 2 3 4\n", 100.0)


def test_this_machine_can_be_sampled():
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat (not Linux)")
    got = sample()
    assert got is not None and got.total_s >= got.busy_s > 0 and got.own_s > 0


@given(
    window=st.floats(0.1, 100), cpus=st.integers(1, 64),
    others=st.floats(0, 1), own=st.floats(0, 1), steal=st.floats(0, 0.5), idle=st.floats(0.01, 1),
)
def test_a_window_is_busy_exactly_when_others_or_steal_pass_their_thresholds(window, cpus, others, own, steal, idle):
    capacity = window * cpus
    start = CpuSample(at_s=10.0, busy_s=1000.0, steal_s=5.0, total_s=5000.0, own_s=20.0)
    end = CpuSample(at_s=10.0 + window, busy_s=1000.0 + capacity * (others + own), steal_s=5.0 + capacity * steal,
                    total_s=5000.0 + capacity * (others + own + steal + idle), own_s=20.0 + capacity * own)
    load = between(start, end, cpus)
    assert load.other_share == pytest.approx(min(others, 1.0), abs=1e-6)
    assert 0.0 <= load.other_share <= 1.0
    total = others + own + steal + idle
    expected_steal = steal / total if total > 0 else None
    if expected_steal is not None:
        assert load.steal_share == pytest.approx(expected_steal, abs=1e-9)
    clear = (others < BUSY_OTHER_SHARE - 1e-6) and (expected_steal is None or expected_steal < BUSY_STEAL_SHARE - 1e-6)
    over = others >= BUSY_OTHER_SHARE + 1e-6 or (expected_steal is not None and expected_steal >= BUSY_STEAL_SHARE + 1e-6)
    if clear:
        assert not load.busy and load.reason is None
    if over:
        assert load.busy and load.reason


def test_quiet_probes_decide_for_a_remote_target():
    start = CpuSample(at_s=0.0, busy_s=0.0, steal_s=0.0, total_s=0.0, own_s=0.0)
    end = CpuSample(at_s=1.0, busy_s=1.9, steal_s=0.0, total_s=2.0, own_s=0.1)  # a local server working for us
    assert between(start, end, 2).busy
    calm = between(start, end, 2, probed_share=0.02)
    assert not calm.busy and calm.other_share == pytest.approx(0.9)


@pytest.fixture
def cpu_hog():
    """Two busy-looping processes (one per core here): another tenant of the machine."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture
def intra_op_threads():
    """``intra_op_threads(n)`` sets torch's intra-op threads for the test; restored after it."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _hog_sweep(tmp_path, threads: int):
    """fp32 and int4 of the fake model swept beside the hog; both passes busy, ``threads`` recorded."""
    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=6, warmup_requests=1, batch_size=4, out_dir=str(tmp_path), run_id="hog")
    # the fake model sleeps per token (it uses no CPU), so nearly all the busy CPU is the hog's
    record, path = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd, token_delay_s=0.01))
    for cell in record.cells:
        assert cell.latency is not None and cell.latency.background is not None
        assert cell.latency.background.busy and "other processes" in (cell.latency.background.reason or "")
        assert cell.latency.background.intra_op_threads == threads
    return record, path


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="background load is read from /proc/stat (Linux)")
def test_a_planted_background_load_makes_latency_not_evidence(tmp_path, cpu_hog, intra_op_threads):
    intra_op_threads(2)
    record, path = _hog_sweep(tmp_path, threads=2)
    fp32, int4 = record.cells
    rows = table_rows(record)
    assert all(row.ttft_p95_ms.endswith(BUSY_MARK) for row in rows)
    summary = (path / "summary.md").read_text()
    assert "## Machine load while timing" in summary and "busy: other processes used" in summary
    assert "2 intra-op threads" in summary and "run with `OMP_NUM_THREADS=1`" in summary

    gate = parse_slo("p50_ttft_ms <= 100000")  # would pass on any machine: the interval is far below
    m = for_slo(gate, int4)
    verdict = decide(gate, m.value, m.ci, m.n, m.min_n, m.unreliable)
    assert verdict.outcome == "inconclusive" and "not evidence" in verdict.rule and "busy" in verdict.rule
    # the same figure from a quiet window passes: only the load made it inconclusive
    assert decide(gate, m.value, m.ci, m.n, m.min_n).outcome == "pass"
    # a ratio from the pass paired with fp32 is shown but not evidence either: contention slows
    # kernels unequally, which pairing does not cancel (benchmarks/noise.py)
    ratio = for_slo(parse_slo("p50_ttft_ratio_vs(fp32) <= 100"), int4, fp32)
    assert "ABBA pairs" in ratio.method and ratio.value is not None
    assert ratio.unreliable is not None and "busy" in ratio.unreliable
    assert decide(gate, ratio.value, ratio.ci, ratio.n, ratio.min_n, ratio.unreliable).outcome == "inconclusive"


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="background load is read from /proc/stat (Linux)")
def test_single_threaded_passes_keep_their_paired_ratio_on_a_busy_machine(tmp_path, cpu_hog, intra_op_threads):
    intra_op_threads(1)
    record, path = _hog_sweep(tmp_path, threads=1)
    fp32, int4 = record.cells
    # absolute figures are still not evidence ...
    gate = parse_slo("p50_ttft_ms <= 100000")
    m = for_slo(gate, int4)
    assert decide(gate, m.value, m.ci, m.n, m.min_n, m.unreliable).outcome == "inconclusive"
    # ... but the ratio from the pass paired with fp32 is: one thread a side, slowed alike
    ratio = for_slo(parse_slo("p50_ttft_ratio_vs(fp32) <= 100"), int4, fp32)
    assert ratio.unreliable is None and "one intra-op thread" in ratio.method and ratio.value is not None
    assert decide(parse_slo("p50_ttft_ratio_vs(fp32) <= 100"), ratio.value, ratio.ci, ratio.n, ratio.min_n,
                  ratio.unreliable).outcome == "pass"
    # an unpaired ratio (against a cell of another run, say) is not evidence at any thread count
    unpaired = for_slo(parse_slo("p50_ttft_ratio_vs(fp32) <= 100"), replace(int4, latency=replace(
        int4.latency, paired=None)), fp32)
    assert unpaired.unreliable is not None
    summary = (path / "summary.md").read_text()
    assert "1 intra-op thread" in summary and "run with `OMP_NUM_THREADS=1`" not in summary


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="background load is read from /proc/stat (Linux)")
def test_one_side_with_several_threads_keeps_a_busy_paired_ratio_unreliable(tmp_path, cpu_hog, intra_op_threads):
    intra_op_threads(1)
    record, _ = _hog_sweep(tmp_path, threads=1)
    fp32, int4 = record.cells
    assert int4.latency is not None and fp32.latency is not None and fp32.latency.background is not None
    two = replace(fp32, latency=replace(fp32.latency, background=replace(fp32.latency.background, intra_op_threads=2)))
    ratio = for_slo(parse_slo("p50_ttft_ratio_vs(fp32) <= 100"), int4, two)
    assert "ABBA pairs" in ratio.method and ratio.unreliable is not None and "busy" in ratio.unreliable


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="background load is read from /proc/stat (Linux)")
def test_threads_are_recorded_for_in_process_passes_only(intra_op_threads):
    intra_op_threads(1)
    with watch() as here:
        pass
    with watch(remote=True, probe_s=0.01) as served:  # a server's threads are not ours to know
        pass
    assert here.load is not None and here.load.intra_op_threads == 1
    assert served.load is not None and served.load.intra_op_threads is None
