"""HFTextModel.generate_timed_batch on the tiny Llama: shared step times, per-row EOS."""

import pytest

from qeval.generation import GenerationSettings
from qeval.models import HFTextModel, Message, Prompt, resolve_model


@pytest.fixture(scope="module")
def tiny(tiny_perf_model_dir):
    from qeval.quantize import quiet

    with quiet():
        return resolve_model(str(tiny_perf_model_dir)).load("fp32", "cpu").model


def test_rows_share_step_times_and_stop_at_their_own_eos(tiny):
    import torch

    prompts = [" the the answer is", " dose mg daily json name city code"]
    settings = GenerationSettings(max_new_tokens=6)
    enc = tiny.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        ids = tiny.model.generate(**enc, **tiny._gen_kwargs(settings))[:, enc["input_ids"].shape[1]:].tolist()
    k = next((k for k in range(5) if ids[0][k] not in ids[1] and ids[0][k] not in ids[0][:k]), None)
    if k is None:
        pytest.skip(f"the random model's rows generate the same tokens ({ids}); no row-specific EOS to plant")
    stop = ids[0][k]
    # a model whose EOS is the token row 0 generates at step k: row 0 ends there, row 1 runs on
    tiny.model.generation_config.eos_token_id = stop
    try:
        model = HFTextModel(tiny.model, tiny.tokenizer, "cpu")
        first, second = model.generate_timed_batch([Prompt((Message("user", p),), chat=False, text=p) for p in prompts], settings)
    finally:
        tiny.model.generation_config.eos_token_id = 2
    assert (first.output_tokens, second.output_tokens) == (k + 1, 6)
    assert len(first.token_times_ms) == k + 1 and len(second.token_times_ms) == 6
    assert first.token_times_ms == second.token_times_ms[: k + 1]  # one step, one time for every row
    assert first.tokenize_ms == second.tokenize_ms > 0
    assert list(second.token_times_ms) == sorted(second.token_times_ms) and second.token_times_ms[0] > 0
    assert tiny.count_tokens(prompts[0]) == len(enc["input_ids"][0]) - int((enc["attention_mask"][0] == 0).sum())
