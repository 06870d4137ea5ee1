"""`qeval perf` through typer: flag validation (fake model) and one real run on the tiny Llama."""

import json

import pytest
import typer
from typer.testing import CliRunner

from qeval.cli_perf import register
from qeval.errors import UsageError
from qeval.perf import parse_batch_sizes, read_perf


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `perf` a named subcommand
    return app


def _run(app, *args):
    return CliRunner().invoke(app, ["perf", *args])


def test_parse_batch_sizes():
    assert parse_batch_sizes("32, 1,8,8") == (1, 8, 32)
    for bad, match in (("1,x", "'x' is not a whole number"), ("0,8", "not a positive"), (" , ", "empty")):
        with pytest.raises(UsageError, match=match):
            parse_batch_sizes(bad)


@pytest.mark.parametrize(("args", "match"), [
    (["--batch-sizes", "1,x"], "not a whole number"),
    (["--batch-sizes", "-4"], "not a positive"),
    (["--precisions", "fp32,nosuch"], "nosuch"),
    (["--rounds", "0"], "--rounds"),
    (["--slo", "accuracy >= 0.9"], "qeval recommend"),
    (["--slo", "p95_ttft_ms <= fast"], "Cannot parse"),
    (["--gpu-hour-usd", "0"], "--gpu-hour-usd"),
])
def test_user_mistakes_exit_2_with_a_message(app, args, match):
    base = {"--model": "fake", "--precisions": "fp32", "--prompt-tokens": "4", "--output-tokens": "2",
            "--device": "cpu"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result = _run(app, *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output


@pytest.fixture
def one_thread():
    # two intra-op threads on a shared 2-core machine thrash on this model's tiny matmuls
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_perf_on_the_tiny_llama(app, tiny_perf_model_dir, tmp_path, one_thread):
    result = _run(app, "--model", str(tiny_perf_model_dir), "--precisions", "fp32,int8", "--prompt-tokens", "8",
                  "--output-tokens", "4", "--limit", "1", "--batch-sizes", "1,2", "--rounds", "2", "--warmup", "0", "--requests", "4",
                  "--device", "cpu", "--out", str(tmp_path), "--gpu-hour-usd", "2")
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    data = json.loads((folder / "perf.json").read_text())
    assert [p["precision"] for p in data["precisions"]] == ["fp32", "int8"]
    assert data["order"] == ["0/fp32/1", "0/int8/1", "0/fp32/2", "0/int8/2",
                             "1/int8/1", "1/fp32/1", "1/int8/2", "1/fp32/2"]
    record = read_perf(folder)
    for perf in record.precisions:
        assert perf.status == "ok" and perf.cold_start.load_s > 0 and perf.weights_bytes > 0
        for point in perf.points:
            assert point.status == "ok"
            assert point.requests == 4  # --requests 4 over 2 rounds: 2 per block, although --limit 1
            for kind in ("ttft", "tpot", "e2e"):
                dist = point.latency[kind]
                assert dist.n > 0 and dist.p50.n == dist.n and dist.p50.value > 0
            assert point.output_tokens_per_s > 0 and perf.cost.usd_per_1m_output_tokens > 0
    assert record.prompt_tokens == (8,)
    assert "## Batch size 2" in (folder / "perf.md").read_text()


def test_load_levels_on_the_tiny_llama_through_its_engine_slots(app, tiny_perf_model_dir, tmp_path, one_thread):
    result = _run(app, "--model", str(tiny_perf_model_dir), "--precisions", "fp32", "--prompt-tokens",
                  "uniform:min=4,max=12", "--output-tokens", "4", "--concurrency", "1,3", "--requests", "6",
                  "--rounds", "2", "--warmup", "0", "--device", "cpu", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    record = read_perf(folder)
    (perf,) = record.precisions
    assert [p.label for p in perf.levels] == ["c=1", "c=3"]
    for point in perf.levels:
        assert point.status == "ok" and point.ok_requests == 6 and point.token_source == "ids"
        assert point.output_tokens > 0 and point.latency["ttft"].n == 6
    assert record.load is not None and record.load.workload.startswith("synthetic: prompt uniform:min=4,max=12")
    assert record.load.distinct_prompts > 1  # lengths drawn, not one prompt repeated
    page = (folder / "perf.html").read_text()
    assert "c=3" in page and 'src="data:image/png;base64,' in page and "plot not drawn" not in page
    assert "perf.html" in result.output
