"""The HF model adapter on the tiny random Llama: batching, counting, timing."""

import pytest

from qeval.generation import GenerationSettings
from qeval.models import conversation, resolve_model


@pytest.fixture(scope="module")
def fp32_model(tiny_chat_model_dir):
    loaded = resolve_model(str(tiny_chat_model_dir)).load("fp32", "cpu")
    yield loaded.model
    loaded.model.close()


def test_chat_template_is_applied(fp32_model):
    text = fp32_model.prepare(conversation("hi", "be brief"), chat=True).text
    assert text.startswith("<|im_start|>system\nbe brief<|im_end|>") and text.endswith("<|im_start|>assistant\n")


def test_batched_generation_matches_one_by_one(fp32_model):
    """Left padding must not change greedy outputs: a batch equals its rows alone."""
    settings = GenerationSettings(max_new_tokens=8)
    prompts = [fp32_model.prepare(conversation(p), chat=True) for p in ["a", "the answer is what plus 12"]]
    batch = fp32_model.generate(prompts, settings)
    alone = [fp32_model.generate([p], settings)[0] for p in prompts]
    assert [g.text for g in batch] == [g.text for g in alone]
    assert [g.output_tokens for g in batch] == [g.output_tokens for g in alone]
    assert all(1 <= g.output_tokens <= 8 for g in batch)


def test_timed_generation_counts_tokens_from_ids(fp32_model):
    settings = GenerationSettings(max_new_tokens=6)
    prompt = fp32_model.prepare(conversation("number"), chat=True)
    timed = fp32_model.generate_timed(prompt, settings)
    plain = fp32_model.generate([prompt], settings)[0]
    assert timed.text == plain.text and timed.output_tokens == plain.output_tokens
    assert len(timed.token_times_ms) == timed.output_tokens
    assert list(timed.token_times_ms) == sorted(timed.token_times_ms) and timed.token_times_ms[0] > 0
    assert timed.tokenize_ms >= 0


def test_raw_prompt_gets_the_bos_the_tokenizer_would_add(fp32_model):
    tok = fp32_model.tokenizer
    adds_bos = tok("a").input_ids[:1] == [tok.bos_token_id]
    text = fp32_model.prepare(conversation("plain"), chat=False).text
    assert text == (tok.bos_token + "plain" if adds_bos else "plain")


def test_generation_stops_at_a_stop_string(fp32_model):
    prompt = fp32_model.prepare(conversation("the answer"), chat=True)
    plain = fp32_model.generate([prompt], GenerationSettings(max_new_tokens=16))[0]
    # the seeded random model never emits EOS within 16 tokens; plant its first character as the stop
    assert plain.output_tokens == 16 and plain.text
    stop = plain.text[0]
    settings = GenerationSettings(max_new_tokens=16, stop=(stop,))
    stopped = fp32_model.generate([prompt, prompt], settings)
    timed = fp32_model.generate_timed(prompt, settings)
    for gen in (*stopped, timed):
        assert stop in gen.text and gen.text.startswith(plain.text[: plain.text.index(stop)])
        assert gen.output_tokens < plain.output_tokens
    assert stopped[0].output_tokens == timed.output_tokens == len(timed.token_times_ms)
    # the vocabulary scan behind stop strings is done once, not per request
    assert fp32_model._stop_criteria((stop,)) is fp32_model._stop_criteria((stop,))
