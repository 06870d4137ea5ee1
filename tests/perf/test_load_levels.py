"""`qeval perf` load levels end to end: the fake model in-process, a loopback server as an endpoint,
and the command line's checks."""

from __future__ import annotations

import json
import math

import pytest
import typer
from typer.testing import CliRunner

from qeval.cli_perf import register
from qeval.errors import UsageError
from qeval.load._arrivals import arrival_offsets
from qeval.load._types import ArrivalSpec
from qeval.models import FakeSource
from qeval.perf import PerfConfig, read_perf, run_perf
from qeval.targets import parse_target
from tests.load.loopback import MODEL, Loopback
from tests.targets.scripted_server import ScriptedServer


def _endpoint(name: str, base_url: str, model: str = MODEL):
    return parse_target(f"{name}=openai:{base_url}#{model}")


def test_fake_targets_are_measured_at_every_level_in_abba_order(tmp_path):
    config = PerfConfig(model="fake", precisions=("fp32", "int8"), prompt_tokens=6, output_tokens=3,
                        concurrency=(1, 2), requests=6, rounds=2, warmup=1, out_dir=str(tmp_path), run_id="r")
    record, folder = run_perf(config, source=FakeSource(token_delay_s=0.0005))
    assert record.batch_sizes == () and record.load is not None
    assert [lv.label for lv in record.load.levels] == ["c=1", "c=2"]
    assert list(record.order) == ["0/fp32/c=1", "0/int8/c=1", "0/fp32/c=2", "0/int8/c=2",
                                  "1/int8/c=1", "1/fp32/c=1", "1/int8/c=2", "1/fp32/c=2"]
    for perf in record.precisions:
        assert perf.points == ()
        assert [p.label for p in perf.levels] == ["c=1", "c=2"]
        for point in perf.levels:
            assert point.status == "ok" and point.requests == 6 and point.ok_requests == 6
            assert point.latency["ttft"].n == 6 and point.latency["tpot"].n == 6
            assert len(point.round_requests_per_s) == 2 and point.requests_per_s_ci is not None
            assert point.token_source == "ids"
            assert point.server is None  # in-process: no /metrics to read
    int8 = record.precisions[1]
    assert {r.level for r in int8.level_ratios} == {"c=1", "c=2"}
    assert record.precisions[0].level_ratios == ()
    back = read_perf(folder)
    assert back.precisions[1].levels[1].latency["ttft"].n == 6
    assert back.load == record.load
    assert "c=2" in (folder / "perf.md").read_text()


def test_an_endpoint_at_open_loop_rates_offers_the_schedule_it_drew(tmp_path):
    with Loopback(tokens=3) as server:
        config = PerfConfig(model=None, precisions=(), targets=(_endpoint("a", server.base_url),),
                            prompt_tokens=None, output_tokens=3, suite=None, workload=None,
                            rates=(40.0,), arrival=ArrivalSpec("gamma", 2.0), requests=30, rounds=1, warmup=0,
                            out_dir=str(tmp_path), run_id="r")
        config = _with_synthetic(config)
        record, _ = run_perf(config)
    point = record.precisions[0].levels[0]
    assert point.status == "ok" and point.requests == 30 and point.ok_requests == 30
    offsets = arrival_offsets(40.0, ArrivalSpec("gamma", 2.0), 30, seed=0)
    assert point.offered_requests_per_s == pytest.approx(29 / (offsets[-1] - offsets[0]))
    assert point.token_source == ""  # an endpoint: usage counts, per request
    assert point.output_tokens == 90  # the server's usage: 3 per request
    assert point.server is not None and point.server.unavailable == "no /metrics endpoint"


def _with_synthetic(config: PerfConfig) -> PerfConfig:
    """Synthetic prompts need a tokenizer; the loopback endpoint has none, so use a recorded workload."""
    from dataclasses import replace

    return replace(config, workload=_trace_file(config.out_dir, n=5))


def _trace_file(folder: str, n: int, offsets: list[float] | None = None) -> str:
    from pathlib import Path

    path = Path(folder) / "trace.jsonl"
    lines = []
    for i in range(n):
        line: dict = {"prompt": f"question {i}", "max_tokens": 3}
        if offsets is not None:
            line["offset_s"] = offsets[i]
        lines.append(json.dumps(line))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_timed_trace_is_replayed_as_its_own_level(tmp_path):
    trace = _trace_file(str(tmp_path), n=6, offsets=[0.0, 0.02, 0.04, 0.1, 0.12, 0.3])
    with Loopback(tokens=2) as server:
        config = PerfConfig(model=None, precisions=(), targets=(_endpoint("a", server.base_url),),
                            workload=trace, rounds=2, warmup=0, out_dir=str(tmp_path), run_id="r", time_scale=0.5)
        record, _ = run_perf(config)
    point = record.precisions[0].levels[0]
    assert point.label == "trace x0.5"
    assert point.requests == 12  # the whole trace, once per round
    assert point.offered_requests_per_s == pytest.approx(5 / 0.15)  # 6 requests over 0.3 s x 0.5


def test_goodput_and_the_saturation_point_follow_the_slo(tmp_path):
    """A single-slot server: one user gets ~50 ms TTFT, eight queue behind each other (~400 ms)."""
    with Loopback(tokens=2, first_token_s=0.05, serial=True) as server:
        config = PerfConfig(model=None, precisions=(), targets=(_endpoint("a", server.base_url),),
                            workload=_trace_file(str(tmp_path), n=4), concurrency=(1, 8), requests=72, rounds=1,
                            warmup=1, slos=("p95_ttft_ms <= 200",), out_dir=str(tmp_path), run_id="r")
        record, _ = run_perf(config)
    perf = record.precisions[0]
    one, eight = perf.levels
    assert one.verdicts == {"p95_ttft_ms <= 200": "pass"}
    assert eight.verdicts == {"p95_ttft_ms <= 200": "fail"}
    assert perf.saturation == "c=1"
    assert one.good_requests == 72 and eight.good_requests is not None and eight.good_requests < 10
    assert one.goodput_requests_per_s == pytest.approx(72 / one.wall_s)
    # the single slot caps throughput: eight users get no more done than one
    assert eight.requests_per_s < 1.5 * one.requests_per_s


def test_unique_prompts_never_send_the_same_prompt_twice(tmp_path):
    with ScriptedServer() as server:
        target = _endpoint("a", server.base_url, server.models[0])
        config = PerfConfig(model=None, precisions=(), targets=(target,), workload=_trace_file(str(tmp_path), n=2),
                            concurrency=(2,), requests=6, rounds=2, warmup=1, unique_prompts=True,
                            out_dir=str(tmp_path), run_id="r")
        record, _ = run_perf(config)
        prompts = [r.body["prompt"] for r in server.requests if r.path.endswith("/completions")]
    # the cold-start request (before any level) as the workload has it, then every request of the
    # levels with its own nonce: 6 measured + 2 warm-ups x 2 rounds, all distinct
    assert prompts[0] == "question 0"
    assert len(prompts[1:]) == len(set(prompts[1:])) == 6 + 2 * 2
    assert all(p.startswith("[request ") for p in prompts[1:])
    assert record.load is not None and record.load.unique_prompts and not record.load.prompts_repeated


def test_repeated_prompts_are_reported(tmp_path):
    with Loopback(tokens=2) as server:
        config = PerfConfig(model=None, precisions=(), targets=(_endpoint("a", server.base_url),),
                            workload=_trace_file(str(tmp_path), n=2), concurrency=(1,), requests=4, rounds=1,
                            warmup=0, out_dir=str(tmp_path), run_id="r")
        record, _ = run_perf(config)
    assert record.load is not None and record.load.prompts_repeated and record.load.distinct_prompts == 2


@pytest.mark.parametrize(("kw", "match"), [
    ({"concurrency": (1,), "batch_sizes": (1, 4)}, "--batch-sizes measures static batches"),
    ({"rates": (math.inf,), "duration_s": 5.0}, "--rate inf"),
    ({"concurrency": (1,), "duration_s": 5.0, "requests": 10}, "not both"),
    ({"concurrency": (1,), "max_concurrency": 0}, "--max-concurrency"),
    ({"duration_s": 5.0}, "give --concurrency"),
    ({"concurrency": (1,), "workload": "/no/such/file.jsonl", "prompt_tokens": None}, "no such file"),
])
def test_bad_load_settings_are_usage_errors(tmp_path, kw, match):
    base = dict(model="fake", precisions=("fp32",), prompt_tokens=4, output_tokens=2, out_dir=str(tmp_path))
    with pytest.raises(UsageError, match=match):
        run_perf(PerfConfig(**{**base, **kw}), source=FakeSource())


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return app


@pytest.mark.parametrize(("args", "match"), [
    (["--concurrency", "1,x"], "--concurrency"),
    (["--rate", "0"], "--rate"),
    (["--concurrency", "1", "--arrival", "lumpy"], "--arrival"),
    (["--concurrency", "1", "--duration", "soon"], "--duration"),
    (["--prompt-tokens", "lognormal:median=8,p95=4"], "--prompt-tokens"),
    (["--prompt-tokens", "lognormal:median=8,p95=16"], "length distributions are for load levels"),
])
def test_the_command_line_says_what_is_wrong_without_a_traceback(app, args, match):
    result = CliRunner().invoke(app, ["perf", "--model", "fake", "--precisions", "fp32", "--output-tokens", "2",
                                      *(["--prompt-tokens", "4"] if "--prompt-tokens" not in args else []), *args])
    assert result.exit_code != 0
    assert match in result.output
    assert "Traceback" not in result.output


def test_perf_into_a_sweep_folder_redraws_its_report_with_the_load_levels(tmp_path):
    from qeval.cli_perf import _write_pages
    from qeval.config import SweepConfig
    from qeval.sweep import run_sweep

    sweep = SweepConfig(model="fake", precisions=("fp32",), suites=("suites/arithmetic",), limit=2,
                        out_dir=str(tmp_path), latency_samples=2, warmup_requests=0)
    _, folder = run_sweep(sweep, source=FakeSource(token_delay_s=0.0005))
    before = (folder / "report.html").read_text()
    assert 'id="perf"' not in before
    config = PerfConfig(model="fake", precisions=("fp32",), prompt_tokens=4, output_tokens=2, concurrency=(1, 2),
                        requests=4, rounds=1, warmup=0, into=str(folder))
    record, out = run_perf(config, source=FakeSource(token_delay_s=0.0005))
    pages = _write_pages(record, out)
    assert pages == [folder / "perf.html", folder / "report.html"]
    report = (folder / "report.html").read_text()
    assert 'id="perf"' in report and "c=2" in report
    assert "c=2" in (folder / "perf.html").read_text()


def test_an_all_at_once_level_reads_back_as_infinite(tmp_path):
    config = PerfConfig(model="fake", precisions=("fp32",), prompt_tokens=4, output_tokens=2, rates=(math.inf,),
                        max_concurrency=2, requests=6, rounds=1, warmup=0, out_dir=str(tmp_path), run_id="r")
    record, folder = run_perf(config, source=FakeSource(token_delay_s=0.0005))
    back = read_perf(folder)
    (point,) = back.precisions[0].levels
    assert point.level.value == math.inf and point.label == "rate=inf/s"
    assert point.offered_requests_per_s == math.inf
    assert back.load is not None and back.load.levels[0].value == math.inf
    assert back == record


def test_synthetic_lengths_on_an_endpoint_take_its_tokenizer(tmp_path, tiny_perf_model_dir):
    from qeval.load._lengths import parse_lengths

    with ScriptedServer() as server:
        target = _endpoint("a", server.base_url, server.models[0])
        base = dict(model=None, precisions=(), targets=(target,), prompt_lengths=parse_lengths("uniform:min=5,max=12",
                    "--prompt-tokens"), output_tokens=3, concurrency=(1,), requests=4, rounds=1, warmup=0,
                    out_dir=str(tmp_path), run_id="r")
        with pytest.raises(UsageError, match="give --tokenizer"):
            run_perf(PerfConfig(**base))
        record, _ = run_perf(PerfConfig(**{**base, "run_id": "r2"}, tokenizer=str(tiny_perf_model_dir)))
        prompts = [r.body["prompt"] for r in server.requests if r.path.endswith("/completions")]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_perf_model_dir))
    lengths = {len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts}
    assert lengths <= set(range(5, 13)) and len(lengths) > 1  # drawn lengths, built exactly
    assert record.precisions[0].levels[0].ok_requests == 4


def test_ctrl_c_keeps_the_blocks_that_finished_and_exits_130(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    trace = _trace_file(str(tmp_path), n=2)
    with Loopback(tokens=2, first_token_s=0.03) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qeval.cli", "perf", "--target", f"a=openai:{server.base_url}#{MODEL}",
             "--workload", trace, "--concurrency", "1,2", "--requests", "400", "--rounds", "2", "--warmup", "0",
             "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the second block has started: the first one is finished
            lines.append(line)
            if "round 0: a at c=2" in line:
                proc.send_signal(signal.SIGINT)
                break
        out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "incomplete: interrupted after 1 of 4 blocks" in out
    (folder,) = (tmp_path / "out").iterdir()
    record = read_perf(folder)
    assert record.incomplete == "interrupted after 1 of 4 blocks"
    first, second = record.precisions[0].levels
    assert first.status == "ok" and first.ok_requests == 200  # round 0 of c=1: 400 / 2 rounds
    assert second.status == "error" and second.requests == 0
    assert "**Incomplete: interrupted after 1 of 4 blocks.**" in (folder / "perf.md").read_text()


def test_identical_synthetic_prompts_count_as_repeated(tmp_path):
    config = PerfConfig(model="fake", precisions=("fp32",), prompt_tokens=4, output_tokens=2, concurrency=(1,),
                        requests=3, rounds=1, warmup=0, out_dir=str(tmp_path), run_id="r")
    record, _ = run_perf(config, source=FakeSource(token_delay_s=0.0005))
    assert record.load is not None and record.load.distinct_prompts == 1  # 8 copies of one synthetic prompt
    assert record.load.prompts_repeated
