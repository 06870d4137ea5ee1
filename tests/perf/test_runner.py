"""The load-profile runner on the fake model: ABBA order, OOM handling, failed loads, files."""

import json
from dataclasses import dataclass, replace

import pytest
import torch

from qeval.errors import BackendUnavailable, ReportError, UsageError
from qeval.models import FakeSource
from qeval.perf import (
    PERF_FILE,
    PERF_MARKDOWN,
    PerfConfig,
    read_perf,
    run_perf,
    write_perf,
)
from qeval.perf._write import perf_dict


class _OutOfMemoryAt:
    """A fake model that runs out of (GPU) memory at batch sizes >= ``limit``."""

    def __init__(self, inner, limit: int, error) -> None:
        self._inner, self._limit, self._error = inner, limit, error
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate_timed_batch(self, prompts, settings):
        self.calls.append(len(prompts))
        if len(prompts) >= self._limit:
            raise self._error
        return self._inner.generate_timed_batch(prompts, settings)


@dataclass
class _Source(FakeSource):
    oom: dict = None  # precision -> (limit, exception)
    broken: dict = None  # precision -> exception raised by load

    def load(self, precision, device, calibration=None):
        if self.broken and precision in self.broken:
            raise self.broken[precision]
        loaded = super().load(precision, device, calibration)
        if self.oom and precision in self.oom:
            limit, error = self.oom[precision]
            return replace(loaded, model=_OutOfMemoryAt(loaded.model, limit, error))
        return loaded


def _config(tmp_path, **kw):
    base = {"model": "fake", "precisions": ("fp32", "int8"), "prompt_tokens": 4, "output_tokens": 3, "limit": 4,
                "batch_sizes": (1, 8, 32), "rounds": 2, "warmup": 1, "device": "cpu", "out_dir": str(tmp_path),
            "requests": 1}
    return PerfConfig(**{**base, **kw})


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA error: out of memory"),
])
def test_oom_is_recorded_and_larger_batches_are_skipped(tmp_path, error):
    source = _Source(token_delay_s=0.0, oom={"int8": (8, error)})
    record, folder = run_perf(_config(tmp_path), source=source)
    fp32, int8 = record.precisions
    assert [p.status for p in fp32.points] == ["ok", "ok", "ok"]
    assert [p.status for p in int8.points] == ["ok", "oom", "skipped"]
    assert "out of memory at batch 8 (warm-up)" in int8.points[1].reason
    assert "batch 8" in int8.points[2].reason
    # int8 ran out at its batch-8 warm-up: it never tried batch 8 timed, nor batch 32; fp32 went on
    assert record.order == ("0/fp32/1", "0/int8/1", "0/fp32/8", "0/fp32/32",
                            "1/int8/1", "1/fp32/1", "1/fp32/8", "1/fp32/32")
    ratio_8 = [r for r in int8.ratios if r.batch_size == 8]
    assert ratio_8 and all(r.value is None for r in ratio_8)
    assert (folder / PERF_FILE).is_file() and "**oom**" in (folder / PERF_MARKDOWN).read_text()


def test_each_batch_size_is_warmed_up_once_before_the_timed_rounds(tmp_path):
    source = _Source(token_delay_s=0.0, oom={"fp32": (10_000, None), "int8": (10_000, None)})
    models = []
    original = source.load

    def load(precision, device, calibration=None):
        loaded = original(precision, device, calibration)
        models.append(loaded.model)
        return loaded

    source.load = load
    run_perf(_config(tmp_path, warmup=2), source=source)
    for model in models:
        # cold-start request, 2 warm-up requests at batch 1, one untimed batch of 8 and of 32, then timed
        assert model.calls[:5] == [1, 1, 1, 8, 32]
    run_perf(_config(tmp_path, warmup=0), source=source)
    # no warm-up: after the cold-start request, the timed batch-1 block (4 prompts), then batch 8
    assert models[-1].calls[:6] == [1, 1, 1, 1, 1, 8]


def test_profile_measures_every_point(tmp_path):
    record, _ = run_perf(_config(tmp_path, slos=("p50_ttft_ms <= 10000",), gpu_hour_usd=2.0, api_usd_per_1m=1.0),
                         source=_Source(token_delay_s=0.0005))
    assert record.reference == "fp32" and record.prompt_tokens == (4, 4, 4, 4) and record.max_new_tokens == 3
    for perf in record.precisions:
        assert perf.status == "ok" and perf.cold_start.first_request_ms > 0
        for point in perf.points:
            # 4 prompts per block, a batch of 8 repeats them to fill it; 2 rounds
            assert point.requests == 2 * max(4, point.batch_size)
            assert point.output_tokens == 3 * point.requests
            assert point.latency["ttft"].n == point.requests and point.latency["tpot"].n == point.requests
            assert point.latency["itl"].n == 2 * point.requests
            assert point.output_tokens_per_s > 0 and len(point.round_tokens_per_s) == 2
            assert point.peak_bytes is not None and point.warmup_requests == 1
        assert perf.goodput.batch_size is not None or all(
            "inconclusive" in v.values() for v in perf.goodput.verdicts.values())
        assert perf.cost.break_even_tokens_per_hour == pytest.approx(2e6)
    assert {r.metric for r in record.precisions[1].ratios} >= {"p95_ttft", "tokens_per_s"}


def test_unloadable_precisions_are_recorded_not_fatal(tmp_path):
    source = _Source(token_delay_s=0.0, broken={"int8": BackendUnavailable("no int8 kernels here"),
                                                "bf16": RuntimeError("kaboom")})
    record, _ = run_perf(_config(tmp_path, precisions=("fp32", "int8", "bf16"), batch_sizes=(1,), rounds=1),
                         source=source)
    assert [(p.precision, p.status) for p in record.precisions] == [("fp32", "ok"), ("int8", "skipped"), ("bf16", "error")]
    assert record.precisions[1].reason == "no int8 kernels here" and "kaboom" in record.precisions[2].reason
    assert record.order == ("0/fp32/1",)


def test_round_trip_and_into(tmp_path):
    run_dir = tmp_path / "sweep-run"
    run_dir.mkdir()
    record, folder = run_perf(_config(tmp_path, into=str(run_dir), batch_sizes=(1, 2), slos=("p95_ttft_ms <= 1",)),
                              source=_Source(token_delay_s=0.0))
    assert folder == run_dir and record.run_id == "sweep-run"
    back = read_perf(run_dir)
    assert back.precisions == record.precisions and back.order == record.order
    assert back.precisions[0].points[0].latency["ttft"].p99.ci[1] == float("inf")  # null in JSON
    json.loads((run_dir / PERF_FILE).read_text())  # strict JSON
    write_perf(back, tmp_path / "again")
    assert read_perf(tmp_path / "again" / PERF_FILE).precisions == record.precisions


def test_a_second_run_into_the_same_folder_keeps_the_first(tmp_path):
    run_dir = tmp_path / "sweep-run"
    run_dir.mkdir()
    notes: list[str] = []
    config = _config(tmp_path, into=str(run_dir), batch_sizes=(1,))
    first, _ = run_perf(config, source=_Source(token_delay_s=0.0), note=notes.append)
    assert not any("earlier" in text for text in notes)
    second, _ = run_perf(config, source=_Source(token_delay_s=0.0), note=notes.append)
    third, _ = run_perf(config, source=_Source(token_delay_s=0.0), note=notes.append)
    kept = sorted(run_dir.glob("perf.2*.json"))
    assert len(kept) == 2 and len(sorted(run_dir.glob("perf.2*.md"))) == 2
    assert sum(f"kept as {path}" in text for path in kept for text in notes) == 2
    assert [p.points for p in read_perf(run_dir).precisions] == [p.points for p in third.precisions]
    assert {json.dumps(json.loads(path.read_text())) for path in kept} == {
        json.dumps(perf_dict(first)), json.dumps(perf_dict(second))}


def test_read_perf_errors(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_perf(tmp_path)
    path = tmp_path / PERF_FILE
    path.write_text('{"schema_version": 1, "run_id": ')
    with pytest.raises(ReportError, match="not valid JSON"):
        read_perf(path)
    path.write_text('{"schema_version": 99}')
    with pytest.raises(ReportError, match="schema_version 99"):
        read_perf(path)
    path.write_text('{"schema_version": 1, "run_id": "x"}')
    with pytest.raises(ReportError, match="key"):
        read_perf(path)


@pytest.mark.parametrize(("kw", "match"), [
    ({"prompt_tokens": None}, "No prompts"),
    ({"suite": "suites/arithmetic"}, "not both"),
    ({"output_tokens": None}, "--output-tokens"),
    ({"precisions": ("fp32", "fp32")}, "more than once"),
    ({"precisions": ("fp33",)}, "fp33"),
    ({"rounds": 0}, "--rounds"),
    ({"warmup": -1}, "--warmup"),
    ({"gpu_hour_usd": -2.0}, "--gpu-hour-usd"),
    ({"api_usd_per_1m": 1.0}, "--gpu-hour-usd too"),
    ({"into": "/no/such/run"}, "--into"),
    ({"slos": ("accuracy >= 0.9",)}, "qeval recommend"),
    ({"precisions": ("gptq-int4",)}, "qeval quantize"),
])
def test_bad_configs_are_usage_errors(tmp_path, kw, match):
    with pytest.raises(Exception, match=match) as info:
        run_perf(_config(tmp_path, **kw), source=_Source())
    assert isinstance(info.value, (UsageError, KeyError))


def test_prompts_from_a_suite(tmp_path):
    from tests.fakes import MINI, right_except_int4_on_odd

    record, _ = run_perf(
        _config(tmp_path, prompt_tokens=None, output_tokens=None, suite=str(MINI), limit=3, batch_sizes=(2,), rounds=1),
        source=_Source(responder=right_except_int4_on_odd, token_delay_s=0.0),
    )
    assert len(record.prompt_tokens) == 3 and all(n > 3 for n in record.prompt_tokens)
    point = record.precisions[0].points[0]
    assert point.requests == 4 and point.status == "ok"  # 3 prompts in batches of 2, the last one filled up
