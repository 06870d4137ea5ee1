"""Shared fixtures: a tiny random LlamaForCausalLM saved as an HF folder.

Widths are multiples of 128 (hidden 256, intermediate 512) so every group-size
rule of the int4 backends holds; lm_head is tied to the input embedding like the
bundled SmolLM2. No tokenizer: tests feed token ids. The folder lives in
pytest's cache (``.pytest_cache/d/``), so later sessions reuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # the plugin tests (tests/plugin) run pytest in subprocesses

TINY_LLAMA = dict(
    vocab_size=1000,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=256,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
_TINY_LLAMA_VERSION = "v1"  # bump when TINY_LLAMA changes


@pytest.fixture(autouse=True)
def _machine_load_not_judged(monkeypatch):
    """Tests of verdict logic must not turn inconclusive because the test machine is busy (other
    tests, a compile beside them): the busy judgement is off here, and tests/test_background.py,
    which tests it with a real CPU hog, turns it back on. The load is still recorded."""
    monkeypatch.setenv("QEVAL_BUSY_OTHER_SHARE", "2")


def build_tiny_llama(**overrides):
    """A freshly initialised (seed 0) tiny LlamaForCausalLM, fp32, in memory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **overrides})).eval()


def shared_models_dir() -> Path:
    """The converted built-in models of the user's qeval cache (``$QEVAL_CACHE`` or the real home's
    ``~/.cache/qeval``: pytester points ``HOME`` at a scratch folder), created if missing."""
    import os
    import pwd

    root = os.environ.get("QEVAL_CACHE") or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "qeval"
    models = Path(root) / "models"
    models.mkdir(parents=True, exist_ok=True)
    return models


@pytest.fixture
def cache_sharing_models(tmp_path, monkeypatch) -> Path:
    """A fresh ``QEVAL_CACHE`` (nothing quantized, no cells) whose ``models`` folder is the shared
    one: the bundled model is converted once per machine (~40 s), not once per test. Returns it."""
    cache = tmp_path / "qeval-cache"
    cache.mkdir()
    (cache / "models").symlink_to(shared_models_dir())
    monkeypatch.setenv("QEVAL_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("qeval-cache")
    (cache / "models").symlink_to(shared_models_dir())
    return cache


@pytest.fixture
def session_cache(_session_cache, monkeypatch) -> Path:
    """One ``QEVAL_CACHE`` for the whole session (fresh each session, ``models`` shared as in
    :func:`cache_sharing_models`): a GPTQ checkpoint one test made is a cache hit for the next. The
    GPTQ test makes SmolLM2's; the managed vLLM sweep then serves it instead of quantizing again
    (~110 s on 2 cores). One folder, not copies: the key holds the model's path. Returns it."""
    monkeypatch.setenv("QEVAL_CACHE", str(_session_cache))
    return _session_cache


@pytest.fixture(scope="session")
def tiny_llama_dir(request) -> Path:
    """Path of a saved tiny random Llama (fp32 safetensors + config.json)."""
    import shutil
    import tempfile

    path = Path(request.config.cache.mkdir(f"qeval-tiny-llama-{_TINY_LLAMA_VERSION}")) / "model"
    if not (path / "config.json").exists():
        # written next to its final place, then renamed: an interrupted run leaves no half model
        staging = Path(tempfile.mkdtemp(dir=path.parent))
        build_tiny_llama().save_pretrained(staging)
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_builder() -> Callable:
    """``tiny_llama_builder(**config_overrides)`` -> an in-memory tiny Llama (fp32, seed 0)."""
    return build_tiny_llama


@pytest.fixture(scope="session")
def load_tiny_llama(tiny_llama_dir) -> Callable:
    """``load_tiny_llama(dtype)`` -> a fresh LlamaForCausalLM from ``tiny_llama_dir`` in eval mode."""
    from qeval.quantize import quiet

    def load(dtype):
        from transformers import LlamaForCausalLM

        with quiet():  # transformers may import torchao, which is noisy on a CPU build
            model = LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=dtype)
        return model.eval()

    return load


@pytest.fixture(scope="session")
def quantized_tiny_llama(load_tiny_llama) -> Callable:
    """``quantized_tiny_llama(precision)`` -> (model, applied) on CPU, built once per session.

    Shared between tests: do not modify the returned model.
    """
    import torch

    from qeval.quantize import get_precision

    cache: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        if name not in cache:
            precision = get_precision(name)
            model = load_tiny_llama(precision.load_dtype)
            # One intra-op thread while quantizing: on a shared 2-core machine two threads
            # thrash on hqq's many small ops (measured 30 s instead of 1 s for this model).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cache[name] = precision.apply(model, "cpu")
            finally:
                torch.set_num_threads(threads)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A real vLLM server (CPU build, fp32, greedy) serving the bundled SmolLM2-135M as
    ``smollm2-135m``: started on first use (~30 s), shared by the session, always stopped.

    Needs ``.venv-vllm`` (``make test`` installs it). Without it the tests skip, except under
    ``CI`` or ``QEVAL_REQUIRE_VLLM=1``, where they fail: CI must not silently skip them.
    """
    import os

    from tests.servers.vllm import VLLM_VENV, VllmServer, vllm_installed

    if not vllm_installed():
        msg = "vLLM venv not installed: run make test (or make .venv-vllm/.vllm-installed)"
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_VLLM") == "1":
            pytest.fail(f"{msg}. {VLLM_VENV} is missing or incomplete, and CI (or QEVAL_REQUIRE_VLLM=1) "
                        "requires the real-server tests to run.", pytrace=False)
        pytest.skip(msg)

    from qeval.models import BUILTINS, materialise

    server = VllmServer(materialise(BUILTINS["smollm2-135m"]),
                        log_path=tmp_path_factory.mktemp("vllm") / "server.log")
    with server:
        yield server
    # stopped: nothing of its process group may be left (a killed pytest is covered by the
    # server's parent-death guard, checked by hand: see tests/servers/vllm.py)
    try:
        os.killpg(server.pgid, 0)
    except ProcessLookupError:
        pass
    else:
        pytest.fail(f"vLLM's process group {server.pgid} is still alive after stop()", pytrace=False)


# --- a tiny random Llama with a real (trained-here) tokenizer and a chat template ----------------
# Widths are multiples of 128 so every int4 kernel's group-size rules hold. Built once per test
# session, offline, in about a second.

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus():
    words = "the answer is what plus minus times number patient dose mg daily json name city code def return".split()
    for i in range(400):
        yield " ".join(words[(i * 7 + k) % len(words)] for k in range(12)) + f" {i} {i * 3} = {i + 5}."


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-chat-llama")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(vocab_size=384, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    model = build_tiny_llama(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model.save_pretrained(path)
    return path
