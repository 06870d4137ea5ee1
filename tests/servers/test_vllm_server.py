"""A real vLLM server (CPU build) serving the bundled SmolLM2-135M: see tests/servers/vllm.py.

All tests share the session's ``vllm_server`` fixture (one start, ~30 s). That the server's
whole process group is gone after stop() is asserted by the fixture's teardown.
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.vllm

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def client(vllm_server):
    import httpx

    # trust_env=False: a proxy from the environment must never see loopback requests
    with httpx.Client(base_url=vllm_server.base_url, timeout=120, trust_env=False) as c:
        yield c


def test_server_lists_the_bundled_model(vllm_server, client):
    r = client.get("/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == [MODEL]
    assert vllm_server.base_url.startswith("http://127.0.0.1:") and vllm_server.base_url.endswith("/v1")
    assert vllm_server.startup_s is not None and vllm_server.startup_s > 0
    assert vllm_server.log_path.exists()


def test_server_runs_in_its_own_process_group(vllm_server):
    assert vllm_server.alive()
    assert vllm_server.pgid == vllm_server.proc.pid
    assert vllm_server.pgid != os.getpgid(0)  # a signal to the server's group never reaches pytest


def test_streamed_completion_has_content_chunks_and_a_usage_chunk(client):
    body = {
        "model": MODEL,
        "prompt": "The capital of France is",
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = []
    with client.stream("POST", "/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c for c in chunks if c["choices"] and c["choices"][0]["text"]]
    usage = [c for c in chunks if c.get("usage")]
    assert content, chunks
    assert len(usage) == 1 and usage[0] is chunks[-1] and usage[0]["choices"] == []  # the trailing usage chunk
    completion_tokens = usage[0]["usage"]["completion_tokens"]
    assert 1 <= len(content) <= completion_tokens <= 8
    assert usage[0]["usage"]["prompt_tokens"] > 0
    assert "".join(c["choices"][0]["text"] for c in content).strip()


@pytest.fixture(scope="module")
def hf_fp32():
    """The bundled model in-process (qeval's HF path), fp32 on CPU."""
    from qeval.models import resolve_model

    return resolve_model(MODEL).load("fp32", "cpu").model


# one answer that ends with EOS, one cut by max_tokens
@pytest.mark.parametrize("question", ["What is 2+3?", "Write a poem about the sea."])
def test_greedy_fp32_chat_completion_matches_hf_in_process(client, hf_fp32, question):
    from qeval.generation import GenerationSettings
    from qeval.models import conversation

    prompt = hf_fp32.prepare(conversation(question), chat=True)
    [hf] = hf_fp32.generate([prompt], GenerationSettings(max_new_tokens=16))

    r = client.post("/chat/completions", json={
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 16,
    })
    assert r.status_code == 200, r.text
    out = r.json()
    served = out["choices"][0]["message"]["content"]
    # same chat template and tokenizer: the same prompt ids
    assert out["usage"]["prompt_tokens"] == len(hf_fp32.tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
    assert served == hf.text, (served, hf.text)
    assert out["usage"]["completion_tokens"] == hf.output_tokens  # both count the EOS
