"""llama.cpp as a managed engine (``--target NAME=llamacpp:MODEL@QTYPE``): see qeval.engines._llamacpp.

The unit tests need no server. The ``llamacpp`` tests start real llama-cpp-python servers from
``.venv-llamacpp`` (``make .venv-llamacpp/.llamacpp-installed``; ``QEVAL_LLAMACPP`` names another
environment): they skip without it, except under ``CI`` or ``QEVAL_REQUIRE_LLAMACPP=1``, where
they fail. Each server serves the bundled SmolLM2-135M GGUF and is ready in 1-3 s.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from qeval.engines import engine_precision, engine_precision_names, make_engine
from qeval.engines._base import Checkpoint
from qeval.engines._llamacpp import (
    PACKAGE,
    QTYPES,
    SERVED_MODEL,
    LlamaCppEngine,
    fallbacks_of,
    find_llamacpp_python,
    gguf_quant_config,
    precision_record,
    refusal_line,
    requantize_notes,
    served_gguf,
)
from qeval.errors import UsageError
from qeval.targets import parse_target

REPO_ROOT = Path(__file__).resolve().parents[2]
STAMP = ".llamacpp-installed"  # written by the Makefile once the venv imports llama_cpp.server


# -- without a server ----------------------------------------------------------------------------

def test_qtypes_are_the_precision_names_after_as_is() -> None:
    assert engine_precision_names("llamacpp") == ("as-is", *QTYPES)
    assert {"Q8_0", "Q4_K_M", "Q4_0", "F16"} <= set(QTYPES)
    for name in ("as-is", *QTYPES):
        record = engine_precision("llamacpp", name)
        assert record == precision_record(name) and record.name == name and not record.needs_calibration
    with pytest.raises(KeyError):
        precision_record("int4")


def test_spec_takes_any_case_and_keeps_the_canonical_name() -> None:
    spec = parse_target("q=llamacpp:smollm2-135m@q4_k_m")
    assert (spec.kind, spec.model, spec.precision, spec.managed) == ("llamacpp", "smollm2-135m", "Q4_K_M", True)
    assert spec.spec == "llamacpp:smollm2-135m@Q4_K_M"
    with pytest.raises(UsageError, match="Q8_0"):
        parse_target("q=llamacpp:smollm2-135m@int8")


def _engine(tmp_path: Path) -> LlamaCppEngine:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.touch()
    return LlamaCppEngine(str(tmp_path / "venv"))


def test_launch_never_lets_a_request_interrupt_another(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    checkpoint = Checkpoint(path=tmp_path / "m.gguf", sha256="0" * 64, weights_bytes=1)
    launch = engine.launch(checkpoint, "Q8_0", "127.0.0.1", 8123, ("--n_threads", "2"))
    argv = list(launch.argv)
    python = argv.index(str(tmp_path / "venv" / "bin" / "python"))
    assert argv[python + 1:python + 3] == ["-m", "llama_cpp.server"]
    assert argv[argv.index("--interrupt_requests") + 1] == "False"
    assert argv[argv.index("--model") + 1] == str(tmp_path / "m.gguf")
    assert argv[argv.index("--port") + 1] == "8123" and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--model_alias") + 1] == launch.served_model == SERVED_MODEL
    assert argv[-2:] == ["--n_threads", "2"]  # engine arguments last: they override qeval's choices
    # uvicorn takes HOST and PORT from the environment over the command line: they are unset
    assert argv[0] == "env" and {"HOST", "PORT", "API_KEY"} <= {argv[i + 1] for i in range(python) if argv[i] == "-u"}
    assert launch.health_path == "/v1/models"


def test_refusals_are_told_from_failures() -> None:
    refused = ("llama_model_load: error loading model: error loading model architecture: unknown model "
               "architecture: 'mamba9'\nllama_load_model_from_file: failed to load model\n"
               "ValueError: Failed to load model from file: /m.gguf")
    assert "unknown model architecture: 'mamba9'" in (refusal_line(refused) or "")
    assert LlamaCppEngine(None).refusal(refused, "Q8_0") == (
        "llama.cpp refused Q8_0 here: llama_model_load: error loading model: error loading model architecture: "
        "unknown model architecture: 'mamba9'")
    crashed = "llama_model_load: error loading model: tensor 'x' data is not within the file bounds\nValueError: x"
    bad_arg = "__main__.py: error: unrecognized arguments: --no-such-flag 1"
    benign = "llama_context: flash_attn is not supported on this backend, disabling\nKeyboardInterrupt"
    for log in (crashed, bad_arg, benign):
        assert LlamaCppEngine(None).refusal(log, "Q8_0") is None, log
    quantize = "llama_model_quantize: failed to quantize: requantizing from type q4_1 is disabled"
    assert refusal_line(quantize) == quantize


def test_a_missing_environment_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("QEVAL_LLAMACPP", raising=False)
    reason = LlamaCppEngine(str(tmp_path / "nowhere")).unavailable_reason("Q8_0")
    assert reason is not None and f"--llamacpp {tmp_path / 'nowhere'}" in reason
    assert f"pip install '{PACKAGE}'" in reason and "make .venv-llamacpp/.llamacpp-installed" in reason
    fake = _engine(tmp_path)  # a python that runs nothing: no package metadata
    assert "has no llama-cpp-python" in (fake.unavailable_reason("as-is") or "")
    assert fake.version() is None


def test_the_environment_comes_from_the_option_then_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QEVAL_LLAMACPP", str(tmp_path / "env-venv"))
    (tmp_path / "env-venv").mkdir()
    assert find_llamacpp_python() == tmp_path / "env-venv" / "bin" / "python"
    assert find_llamacpp_python(str(tmp_path / "opt" / "python3")) == tmp_path / "opt" / "python3"
    assert make_engine("llamacpp", str(tmp_path / "env-venv")).name == "llamacpp"


def write_gguf(path: Path, file_type: int, tensors: list[tuple[str, tuple[int, ...], int]]) -> Path:
    """A GGUF header (no tensor data): what qeval reads of a GGUF, nothing more."""
    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    kvs = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("general.file_type") + struct.pack("<II", 4, file_type),
        string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(string(t) for t in ("a", "bc", "d")),
        string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 1, 2),
    ]
    infos = [string(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
             + struct.pack("<IQ", ggml_type, 0) for name, shape, ggml_type in tensors]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(infos))
    return path


def test_quant_config_reads_the_gguf_header(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", 3, [("a.weight", (64, 4), 3), ("b.weight", (64, 2), 8), ("n", (128,), 0)])
    assert gguf_quant_config(path) == {
        "format": "gguf", "file_type": "Q4_1", "tensor_types": {"Q4_1": 1, "Q8_0": 1, "F32": 1},
        "weight_share": {"Q4_1": 0.5, "Q8_0": 0.25, "F32": 0.25},
    }


def test_requantized_files_are_keyed_by_source_content_and_type(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "Model.Q4_1.gguf"
    a = served_gguf(source, "a" * 64, "Q8_0")
    assert a == tmp_path / "cache" / "served" / f"Model.Q4_1-Q8_0-{'a' * 12}.gguf"
    assert len({a, served_gguf(source, "b" * 64, "Q8_0"), served_gguf(source, "a" * 64, "Q4_K_M")}) == 3


def test_requantizing_says_what_bounds_quality() -> None:
    assert requantize_notes("Q4_1", "Q8_0") == (
        "requantized from Q4_1 (allow_requantize): quality is bounded by the Q4_1 source",)
    assert "dequantized from Q4_1 to F16" in requantize_notes("Q4_1", "F16")[0]
    assert requantize_notes("F16", "Q8_0") == ()
    log = ("warning: blk.0.attn_k.weight          - ncols    576 not divisible by 256 (required for type    q4_K) "
           "-> falling back to    q5_0\n" * 2 + "warning: blk.0.ffn_down.weight - ncols 576 not divisible by 256 "
           "(required for type    q6_K) -> falling back to    q8_0\nllama_model_quantize_impl: WARNING: 3 of 272 "
           "tensor(s) required fallback quantization\n")
    assert fallbacks_of(log) == {"q4_K->q5_0": 2, "q6_K->q8_0": 1}
    fallback = requantize_notes("F16", "Q4_K_M", fallbacks_of(log))
    assert len(fallback) == 2 and "2 tensors are q5_0, not q4_K" in fallback[0]


def test_a_cached_gguf_is_reused_with_its_notes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    source = write_gguf(tmp_path / "m.Q4_1.gguf", 3, [("a.weight", (64, 4), 3)])
    from qeval.engines._checkpoint import content_sha256

    out = served_gguf(source, content_sha256(source), "Q8_0")
    out.parent.mkdir(parents=True)
    write_gguf(out, 7, [("a.weight", (64, 4), 8)])
    out.with_name(out.name + ".json").write_text(json.dumps({"notes": ["from the sidecar"], "prepared_by": "earlier"}))
    engine = _engine(tmp_path)  # would fail to quantize: a hit must not try
    said: list[str] = []
    checkpoint = engine.prepare(str(source), "Q8_0", None, said.append)
    assert (checkpoint.path, checkpoint.cache, checkpoint.notes, checkpoint.prepared_by) == (
        out, "hit", ("from the sidecar",), "earlier")
    assert checkpoint.quant_config["file_type"] == "Q8_0" and said == []
    as_is = engine.prepare(str(source), "as-is", None, said.append)
    assert (as_is.path, as_is.cache, as_is.quant_config["file_type"]) == (source, None, "Q4_1")


def test_a_model_that_is_no_gguf_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.gguf file or a built-in alias"):
        _engine(tmp_path).prepare(str(tmp_path / "model-folder"), "as-is", None, print)


# -- real llama-cpp-python servers ---------------------------------------------------------------

@pytest.fixture(scope="session")
def llamacpp_python() -> Path:
    """The Python of llama-cpp-python[server] (``.venv-llamacpp``, or ``QEVAL_LLAMACPP``)."""
    given = os.environ.get("QEVAL_LLAMACPP")
    venv = REPO_ROOT / ".venv-llamacpp"
    python = find_llamacpp_python(given) if given else venv / "bin" / "python"
    ready = python is not None and python.exists() and (given is not None or (venv / STAMP).exists())
    if not ready:
        msg = "llama-cpp-python venv not installed: run make test (or make .venv-llamacpp/.llamacpp-installed)"
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_LLAMACPP") == "1":
            pytest.fail(f"{msg}. .venv-llamacpp is missing or incomplete, and CI (or QEVAL_REQUIRE_LLAMACPP=1) "
                        "requires the real-server tests to run.", pytrace=False)
        pytest.skip(msg)
    assert python is not None
    return python


def _server_pids() -> set[int]:
    import psutil

    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if "llama_cpp.server" in (proc.info.get("cmdline") or []):
            pids.add(proc.info["pid"])
    return pids


@pytest.mark.llamacpp
@pytest.mark.slow
def test_managed_sweep_as_is_and_requantized(llamacpp_python, tmp_path, monkeypatch, capsys) -> None:
    from qeval.config import SweepConfig
    from qeval.sweep import run_sweep

    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))  # the Q8_0 file is written, then reused
    before = _server_pids()
    config = SweepConfig(
        model=None, precisions=(), suites=(str(REPO_ROOT / "suites" / "arithmetic"),), device="cpu", limit=4,
        out_dir=str(tmp_path / "reports"), latency_samples=2, warmup_requests=0,
        targets=(parse_target("asis=llamacpp:smollm2-135m@as-is"), parse_target("q8=llamacpp:smollm2-135m@Q8_0")),
        engine_executables=(("llamacpp", str(llamacpp_python)),),
    )
    start = time.perf_counter()
    record, path = run_sweep(config)
    took_s = time.perf_counter() - start
    cells = {c.precision: c for c in record.cells}
    assert set(cells) == {"asis", "q8"}
    for name, cell in cells.items():
        assert cell.status == "ok", (name, cell.reason)
        assert cell.n == 4 and cell.metrics["error_rate"].value == 0.0
        assert cell.latency is not None and cell.latency.requests == 2
        assert cell.latency.token_source == "chunks"  # llama-cpp-python streams no usage
        engine = cell.precision_config.engine
        assert engine is not None and engine.engine == "llamacpp" and engine.version == f"llama-cpp-python {PACKAGE.split('==')[1]}"
        assert engine.command[engine.command.index("--interrupt_requests") + 1] == "False"
        assert engine.first_token_s is not None and Path(engine.log or "").is_file()
    asis, q8 = cells["asis"].precision_config.engine, cells["q8"].precision_config.engine
    assert asis is not None and q8 is not None
    assert (asis.quant_config["file_type"], asis.checkpoint_cache, asis.notes) == ("Q4_1", None, ())
    assert (q8.quant_config["file_type"], q8.checkpoint_cache) == ("Q8_0", "miss")
    assert "requantized from Q4_1 (allow_requantize): quality is bounded by the Q4_1 source" in q8.notes
    assert q8.checkpoint.startswith(str(tmp_path / "cache" / "served")) and q8.checkpoint_sha256 != asis.checkpoint_sha256
    assert "requantized from Q4_1" in (path / "results.json").read_text()
    assert (path / "servers" / "q8.log").is_file()
    assert _server_pids() - before == set(), "a llama.cpp server outlived the sweep"
    # the next run reuses the written file
    again = LlamaCppEngine(str(llamacpp_python)).prepare("smollm2-135m", "Q8_0", None, print)
    assert (str(again.path), again.cache, again.notes) == (q8.checkpoint, "hit", q8.notes)
    with capsys.disabled():
        print(f"\nllama.cpp managed sweep (as-is + Q8_0, 4 cases, 2 timed): {took_s:.1f} s; accuracy "
              f"{cells['asis'].accuracy} / {cells['q8'].accuracy}; ready in {asis.spawn_to_healthy_s} s")


# The model writes on past 120 tokens here (>= 1.2 s at ~100 tokens/s): the second request,
# sent 0.2 s after the first, arrives while the first is generating.
STORY = (("user", "Write a long story about a dragon who learns to cook."),)
MAX_TOKENS = 120


def _two_concurrent_streams(llamacpp_python: Path, tmp_path: Path, interrupt: bool) -> list:
    """Serve the bundled GGUF with ``--interrupt_requests {interrupt}`` and send it two streams,
    the second while the first is generating."""
    from qeval.engines import ManagedServer
    from qeval.targets._http import EndpointClient, EndpointRequest, EndpointSettings
    from qeval.targets._retry import RetryPolicy

    engine = LlamaCppEngine(str(llamacpp_python))
    checkpoint = engine.prepare("smollm2-135m", "as-is", None, print)

    def command(port: int) -> list[str]:
        argv = list(engine.launch(checkpoint, "as-is", "127.0.0.1", port, ()).argv)
        argv[argv.index("--interrupt_requests") + 1] = str(interrupt)
        return argv

    server = ManagedServer(command, lambda port: f"http://127.0.0.1:{port}/v1/models", name="llamacpp-test",
                           log_path=tmp_path / "server.log", python=engine.python(), startup_timeout_s=120)
    request = EndpointRequest(messages=STORY, prompt=None, max_tokens=MAX_TOKENS)
    responses: list = [None, None]
    with server:
        settings = EndpointSettings(f"http://127.0.0.1:{server.port}/v1", model=SERVED_MODEL, concurrency=2,
                                    retry=RetryPolicy(max_attempts=1))
        with EndpointClient(settings) as client:
            def send(i: int) -> None:
                responses[i] = client.complete(request)

            first = threading.Thread(target=send, args=(0,))
            first.start()
            time.sleep(0.2)  # whichever holds the server when the other arrives is cut off
            send(1)
            first.join(timeout=120)
    assert not server.alive()
    return responses


@pytest.mark.llamacpp
@pytest.mark.slow
def test_qeval_starts_llamacpp_so_concurrent_streams_finish(llamacpp_python, tmp_path) -> None:
    responses = _two_concurrent_streams(llamacpp_python, tmp_path, interrupt=False)
    for r in responses:
        assert r.error_kind is None and r.finish_reason is not None and r.text, r


@pytest.mark.llamacpp
@pytest.mark.slow
def test_an_interrupting_llamacpp_server_gives_truncated_outcomes(llamacpp_python, tmp_path) -> None:
    """Someone else's server started with the default ``--interrupt_requests True``: the second
    request cuts the first stream off (HTTP 200, [DONE], no finish_reason); the endpoint client
    must call that ``truncated``, not a short answer."""
    responses = _two_concurrent_streams(llamacpp_python, tmp_path, interrupt=True)
    cut = [r for r in responses if r.finish_reason is None]
    assert cut, f"no stream was cut off: {responses}"
    assert all(r.error_kind == "truncated" for r in cut), [(r.error_kind, r.text) for r in cut]


@pytest.mark.llamacpp
@pytest.mark.slow
def test_perf_load_levels_on_a_managed_llamacpp_server_see_its_queue(llamacpp_python, tmp_path, capsys) -> None:
    """llama-cpp-python's server decodes one request at a time: four users queue behind each other,
    and the load generator must see it (TTFT at 4 users several times that at 1); it has no /metrics."""
    from qeval.perf import PerfConfig, run_perf

    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps({"prompt": f"Count from {i} to {i + 9}:", "max_tokens": 8}) + "\n"
                             for i in range(4)))
    before = _server_pids()
    config = PerfConfig(model=None, precisions=(), targets=(parse_target("l=llamacpp:smollm2-135m@as-is"),),
                        workload=str(trace), concurrency=(1, 4), requests=8, rounds=1, warmup=1,
                        out_dir=str(tmp_path / "reports"), run_id="load",
                        engine_executables=(("llamacpp", str(llamacpp_python)),))
    record, _ = run_perf(config)
    (perf,) = record.precisions
    assert perf.status == "ok", perf.reason
    one, four = perf.levels
    assert one.ok_requests == 8 and four.ok_requests == 8, (one.errors, four.errors)
    ratio = four.latency["ttft"].p50.value / one.latency["ttft"].p50.value
    with capsys.disabled():
        print(f"\nllama.cpp managed, closed loop: TTFT p50 c=1 {one.latency['ttft'].p50.value:.0f} ms, "
              f"c=4 {four.latency['ttft'].p50.value:.0f} ms (x{ratio:.1f}); "
              f"{one.output_tokens_per_s:.1f} -> {four.output_tokens_per_s:.1f} tok/s")
    assert ratio >= 2.5, f"TTFT at 4 users / 1 user = {ratio:.2f} on a server that serves one at a time"
    assert four.output_tokens_per_s < 1.6 * one.output_tokens_per_s  # one at a time: no batching gain
    assert one.server is not None and one.server.unavailable == "no /metrics endpoint"
    assert _server_pids() == before  # the server was stopped


class _Crash(BaseException):
    """A simulated crash of the driver (not an Exception: no cell swallows it)."""


class _CrashOnTask:
    """A reporter that dies when the sweep starts its ``n``-th pass (task)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def task(self, description: str, total: int) -> None:
        self.seen += 1
        if self.seen == self.n:
            raise _Crash()

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@pytest.mark.llamacpp
@pytest.mark.slow
def test_a_managed_sweep_resumes_with_its_engine_settings(llamacpp_python, tmp_path) -> None:
    """Killed after its first managed target, a sweep resumes: that target's cell is reused, the
    next one's server is started with the same --engine-arg and engine the first run was given."""
    from qeval.config import SweepConfig
    from qeval.journal import read_journal
    from qeval.resume import resume_sweep
    from qeval.sweep import run_sweep
    from qeval.targets import with_options

    before = _server_pids()
    specs = with_options([parse_target("a=llamacpp:smollm2-135m@as-is"), parse_target("b=llamacpp:smollm2-135m@as-is")],
                         {}, {}, engine_args=("n_ctx=1024",))
    config = SweepConfig(
        model=None, precisions=(), suites=(str(REPO_ROOT / "suites" / "arithmetic"),), device="cpu", limit=3,
        out_dir=str(tmp_path), run_id="managed", latency_samples=2, warmup_requests=0, targets=specs,
        engine_executables=(("llamacpp", str(llamacpp_python)),),
    )
    with pytest.raises(_Crash):
        run_sweep(config, reporter=_CrashOnTask(3))  # a: accuracy, a: latency, then b's accuracy: crash
    assert _server_pids() == before  # b's server was stopped on the way out
    folder = tmp_path / "managed"
    assert list(read_journal(folder).cells) == ["a"]
    record, _ = resume_sweep(folder)
    cells = {c.precision: c for c in record.cells}
    assert cells["a"].status == cells["b"].status == "ok", (cells["a"].reason, cells["b"].reason)
    command = cells["b"].precision_config.engine.command
    last = len(command) - 1 - command[::-1].index("--n_ctx")  # the user's comes after qeval's default: it wins
    assert command[last + 1] == "1024"
    assert str(llamacpp_python) in command
    settings = json.loads((folder / "results.json").read_text())["settings"]
    assert settings["resumed"]["reused_precisions"] == ["a"] and settings["incomplete"] is False
    assert _server_pids() == before
