"""Managed targets without a real engine: the server lifecycle (:class:`qeval.engines.ManagedServer`)
and :class:`qeval.engines.ManagedTarget` driven by a stand-in engine that runs the scripted
OpenAI-compatible server as its process. The real vLLM loop is tests/integration/test_managed_vllm.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.config import SweepConfig
from qeval.engines import Launch, ManagedServer, ServerError, group_alive
from qeval.engines._checkpoint import describe
from qeval.targets._managed import ManagedTarget
from qeval.errors import UsageError
from qeval.runner import Silent, Unprovisioned, provision, run_target
from qeval.suites import load_suite
from qeval.targets import parse_target, split_engine_args, with_options

SCRIPTED = Path(__file__).resolve().parents[1] / "targets" / "scripted_server.py"
REPO = Path(__file__).resolve().parents[2]


def _argv(port: int, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPTED), str(port), *extra]


def _server(tmp_path: Path, *extra: str, **kw) -> ManagedServer:
    return ManagedServer(lambda p: _argv(p, *extra), lambda p: f"http://127.0.0.1:{p}/v1/models",
                         name="scripted", log_path=tmp_path / "server.log", startup_timeout_s=30,
                         env={"PYTHONPATH": str(REPO)}, drop_env=(), **kw)


def _wait_gone(pgid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def test_a_server_runs_in_its_own_group_and_stop_takes_its_children_too(tmp_path):
    server = _server(tmp_path, "--spawn-child")
    with server:
        assert server.alive() and server.pgid != os.getpgid(0)
        assert server.startup_s is not None and server.startup_s > 0
        members = subprocess.run(["pgrep", "-g", str(server.pgid)], capture_output=True, text=True).stdout.split()
        assert len(members) >= 3  # the guard, the server and its sleeping child
        pgid = server.pgid
    assert _wait_gone(pgid, 2.0), "stop() left part of the server's process group alive"


def test_a_server_that_exits_at_start_fails_with_its_log_tail(tmp_path):
    with pytest.raises(ServerError) as err:
        _server(tmp_path, "--fail-start").start()
    assert "exited with code 3" in str(err.value)
    assert "scripted start-up failure" in err.value.log_tail
    assert str(tmp_path / "server.log") in str(err.value)


def test_no_server_outlives_a_sigkilled_parent(tmp_path):
    """The parent (a stand-in for qeval) is killed with SIGKILL: its server's whole group is gone within seconds."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tests.engines.test_managed import _server
        from pathlib import Path
        server = _server(Path({str(tmp_path)!r}), "--spawn-child").start()
        print(server.pgid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])})
    try:
        pgid = int(parent.stdout.readline())
        assert group_alive(pgid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(pgid, 5.0), f"process group {pgid} outlived its SIGKILLed parent"
    finally:
        parent.kill()


class ScriptedEngine:
    """An :class:`qeval.engines.Engine` whose "server" is the scripted OpenAI-compatible server."""

    name = "vllm"

    def __init__(self, checkpoint: Path, *, fail: bool = False, refuse: bool = False) -> None:
        self.checkpoint = checkpoint
        self.fail = fail
        self.refuse = refuse
        self.prepared = 0

    def precisions(self):
        return ("fp32",)

    def check_precision(self, precision):
        return None

    def unavailable_reason(self, precision):
        return None

    def version(self):
        return "scripted 1.0"

    def python(self):
        return sys.executable

    def prepare(self, model, precision, calibration, say):
        self.prepared += 1
        return describe(self.checkpoint, prepared_by="as-is")

    def launch(self, checkpoint, precision, host, port, engine_args):
        extra = ["--fail-start"] if (self.fail or self.refuse) else []
        return Launch(argv=tuple(_argv(port, *extra, *engine_args)), env={"PYTHONPATH": str(REPO)},
                      served_model="qeval-served")

    def refusal(self, log_tail, precision):
        return f"refused {precision}: not supported" if self.refuse and "not supported" in log_tail else None


def _target(tmp_path: Path, **kw) -> ManagedTarget:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 4096)
    spec = parse_target("served=vllm:smollm2-135m@fp32")
    return ManagedTarget(spec, ScriptedEngine(weights, **kw), servers_dir=tmp_path / "servers", concurrency=2)


def test_a_managed_target_is_served_evaluated_recorded_and_stopped(tmp_path):
    target = _target(tmp_path)
    suite = load_suite("suites/arithmetic").limited(3)
    config = SweepConfig(model=None, precisions=(), suites=("suites/arithmetic",), limit=3, latency_samples=2,
                         warmup_requests=0, pair_latency=False)
    (cell,) = run_target(target, [suite], "cpu", config, Silent())
    assert cell.status == "ok", cell.reason
    assert len(cell.cases) == 3 and all(c.completion.startswith("echo:") for c in cell.cases)
    engine = cell.precision_config.engine
    assert engine is not None and engine.version == "scripted 1.0" and engine.checkpoint_sha256
    assert engine.command[0] == sys.executable and "--fail-start" not in engine.command
    assert engine.first_token_s >= engine.spawn_to_healthy_s > 0
    assert Path(engine.log) == tmp_path / "servers" / "served.log" and Path(engine.log).exists()
    # the server's memory, measured: the checkpoint's bytes and the server group's peak RSS
    assert cell.memory.weights_bytes == 4096
    assert cell.memory.peak_kind == "server_rss" and cell.memory.peak_bytes > 1_000_000
    assert cell.latency is not None and cell.latency.requests == 2
    assert not _scripted_servers_alive(), "the server outlived its target"


def _scripted_servers_alive() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"{SCRIPTED} [0-9]+"], capture_output=True, text=True).stdout
    return out.split()


def test_a_refused_precision_is_skipped_with_the_engines_words(tmp_path):
    result = provision(_target(tmp_path, refuse=True), "cpu")
    assert isinstance(result, Unprovisioned) and result.status == "skipped"
    assert "refused fp32: not supported" in result.reason and "served.log" in result.reason


def test_a_server_that_fails_to_start_is_a_failed_target_with_the_log_tail(tmp_path):
    result = provision(_target(tmp_path, fail=True), "cpu")
    assert isinstance(result, Unprovisioned) and result.status == "failed"
    assert "exited with code 3" in result.reason and "scripted start-up failure" in result.reason


# --- specs ------------------------------------------------------------------------------------


def test_managed_specs_parse_and_print_back():
    spec = parse_target("canary=vllm:models/x@GPTQ-int4")
    assert (spec.kind, spec.model, spec.precision, spec.spec) == ("vllm", "models/x", "gptq-int4", "vllm:models/x@gptq-int4")
    assert spec.managed and spec.remote
    with pytest.raises(UsageError, match="vllm has no precision 'int4'"):
        parse_target("c=vllm:smollm2-135m@int4")
    with pytest.raises(UsageError, match="write vllm:MODEL@PRECISION"):
        parse_target("c=vllm:smollm2-135m")


def test_engine_args_go_to_every_managed_target_or_the_one_named():
    targets = [parse_target("a=vllm:m@fp32"), parse_target("b=vllm:m@bf16"), parse_target("c=m@fp32")]
    out = with_options(targets, {}, {}, engine_args=["max-model-len=2048", "b:enforce-eager", "--seed=3"])
    args = {t.name: t.engine_args for t in out}
    assert args == {"a": ("--max-model-len", "2048", "--seed", "3"),
                    "b": ("--max-model-len", "2048", "--enforce-eager", "--seed", "3"), "c": ()}
    with pytest.raises(UsageError, match="'z' is not a managed target"):
        with_options(targets, {}, {}, engine_args=["z:enforce-eager"])
    with pytest.raises(UsageError, match="servers qeval starts"):
        with_options([targets[2]], {}, {}, engine_args=["enforce-eager"])


_KEY = st.from_regex(r"[a-z][a-z0-9\-]{0,15}", fullmatch=True)
_VALUE = st.text(st.characters(codec="ascii", exclude_characters="\n\r"), max_size=12)


@given(st.lists(st.tuples(_KEY, st.one_of(st.none(), _VALUE)), max_size=6))
def test_engine_args_keep_every_key_and_value_in_order(pairs):
    entries = [k if v is None else f"{k}={v}" for k, v in pairs]
    out = split_engine_args(entries, [parse_target("a=vllm:m@fp32")])["a"]
    expected: list[str] = []
    for k, v in pairs:
        expected += [f"--{k}"] if v is None else [f"--{k}", v.strip()]
    assert list(out) == expected


def test_the_root_cause_is_read_out_of_an_engine_log():
    from qeval.targets._managed import root_cause

    vllm_init = "\n".join([
        "(APIServer pid=1) WARNING [system_utils.py:255] fd limit errors like `OSError: [Errno 24] Too many open files`.",
        "(EngineCore pid=2) ERROR [core.py:1510] RuntimeError: _C::static_scaled_fp8_quant() expected at most 0 argument(s)",
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    ])
    assert root_cause(vllm_init) == "RuntimeError: _C::static_scaled_fp8_quant() expected at most 0 argument(s)"
    argparse = "usage: api_server.py [-h] [--model MODEL]\napi_server.py: error: unrecognized arguments: --no-such-flag 1"
    assert root_cause(argparse) == "the engine rejected its arguments: unrecognized arguments: --no-such-flag 1"
    assert root_cause("INFO started\nINFO ready") is None


def test_vllm_names_a_missing_kernel_as_a_refusal_and_an_argument_error_as_none():
    from qeval.engines._vllm import VllmEngine

    engine = VllmEngine("/nonexistent")
    log = ("(EngineCore pid=3) ERROR 12-07 [core.py:1512] AttributeError: '_OpNamespace' '_C' object has no attribute "
           "'cpu_gemm_wna16'\nvllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.")
    assert engine.refusal(log, "gptq-int4") == (
        "vLLM cannot serve gptq-int4 here: AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'")
    assert engine.refusal("api_server.py: error: unrecognized arguments: --x", "fp32") is None
    assert "no vLLM found (--vllm /nonexistent)" in (engine.unavailable_reason("fp32") or "")


@pytest.mark.parametrize(("precision", "args", "dtype"), [
    ("w8a8-int8-minmax", (), ["float32"]),
    ("w8a8-int8-mse", (), ["float32"]),
    ("w8a8-int8-mse", ("--dtype", "bfloat16"), ["bfloat16"]),  # the user's dtype wins, and is the only one
    ("w8a8-int8-minmax", ("--dtype=float16",), []),
    ("w8a8-int8", (), []),  # dynamic activations: vLLM's own default
    ("fp32", (), ["float32"]),
])
def test_vllm_serves_static_w8a8_checkpoints_in_float32_unless_told(tmp_path, precision, args, dtype):
    from qeval.engines._base import Checkpoint
    from qeval.engines._vllm import PRECISIONS, VllmEngine

    assert precision in PRECISIONS
    launch = VllmEngine("/nonexistent").launch(Checkpoint(path=tmp_path, sha256="0", weights_bytes=0), precision, "127.0.0.1", 8000, args)
    argv = list(launch.argv)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--dtype"] == dtype
    if args:
        assert argv[-len(args):] == list(args)


def test_a_managed_bundled_model_keeps_its_4_bit_warning_on_the_card():
    from qeval.engines._vllm import VllmEngine
    from qeval.models._builtin import SMOLLM2
    from qeval.targets import parse_target

    target = ManagedTarget(parse_target("v=vllm:smollm2-135m@fp32"), VllmEngine("/nonexistent"))
    assert "already quantised to 4 bits (Q4_1, group 32)" in target.card.notes
    assert target.card.source_precision.startswith(SMOLLM2.source_precision)
    assert target.card.source_precision.endswith("at fp32") and "served by" in target.card.source_precision
    other = ManagedTarget(parse_target("v=vllm:/models/llama@fp32"), VllmEngine("/nonexistent"))
    assert "Q4_1" not in other.card.notes and other.card.name == "/models/llama"
