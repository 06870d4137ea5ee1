"""The accuracy pass's weight-first linear product (qeval.models._weight_first): the same layer
outputs, only on the eligible layers, and always undone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from qeval.models._weight_first import weight_first_linears  # noqa: E402


def _patched(model) -> list:
    return [m for m in model.modules() if "forward" in vars(m)]


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 20), lead=st.sampled_from([(), (3,)]), features=st.integers(1, 48),
       out=st.integers(1, 48), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_a_layer_gives_the_linear_product_and_gets_its_own_forward_back(rows, lead, features, out, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(features, out, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out, features, generator=gen))
        if bias:
            layer.bias.copy_(torch.randn(out, generator=gen))
    x = torch.randn(*lead, rows, features, generator=gen)
    want = torch.nn.functional.linear(x, layer.weight, layer.bias)
    changed = weight_first_linears(layer)
    assert len(changed) == 1
    with torch.no_grad():
        got = layer(x)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    changed.restore()
    changed.restore()  # idempotent
    assert _patched(layer) == []
    assert torch.equal(layer(x), want)


def test_only_plain_float32_linears_on_the_cpu_are_changed():
    class OwnLinear(torch.nn.Linear):
        pass

    plain = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(plain, torch.nn.Linear(4, 4).to(torch.bfloat16), OwnLinear(4, 4),
                                torch.nn.Linear(4, 4).double(), torch.nn.LayerNorm(4))
    changed = weight_first_linears(model)
    assert _patched(model) == [plain]
    assert weight_first_linears(model).__len__() == 0  # a patched forward is never patched again
    changed.restore()
    assert _patched(model) == []


def test_the_accuracy_stream_undoes_it_and_a_timed_request_after_an_abandoned_stream_too(tiny_llama_builder):
    from qeval.generation import GenerationSettings
    from qeval.models import HFTextModel
    from tests.test_engine import _CharTokenizer, _raw, _text

    model = tiny_llama_builder()
    hf = HFTextModel(model, _CharTokenizer(), "cpu")
    prompts = [_raw(_text([5 + i, 40, 41, 300 + i] * (i + 1))) for i in range(5)]
    settings_ = GenerationSettings(max_new_tokens=4, batch_size=2)
    seen = []
    real = model.model.layers[0].mlp.up_proj
    for _, _ in hf.generate_stream(prompts, settings_):
        seen.append("forward" in vars(real))
    assert seen and all(seen)  # the layers were changed while the stream ran ...
    assert _patched(model) == []  # ... and are their own again once it ended
    stream = hf.generate_stream(prompts, settings_)
    next(stream)  # left unfinished, still referenced
    assert _patched(model) != []
    hf.generate_timed(prompts[0], settings_)
    assert _patched(model) == []
    stream.close()
