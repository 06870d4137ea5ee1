"""Static int8 activation ranges (w8a8-static: max |x|; w8a8-static-p999: 99.9th percentile).

The observers are checked against torch on synthetic data; the precisions on a tiny
random Llama with a small trained tokenizer and the generic calibration set.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from qeval.errors import UsageError
from qeval.quantize import QuantizeContext, get_precision, quiet, select_linears
from qeval.quantize._quanto_static import (
    AbsMaxObserver,
    PercentileObserver,
    StaticActivationConfig,
    calibration_batches,
    observe_input_ranges,
)

NAMES = ("w8a8-static", "w8a8-static-p999")
DECODER_LINEARS = 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)


# --- observers: no model ------------------------------------------------------------------------


@pytest.mark.parametrize("percentile", [99.9, 99.0, 90.0])
def test_percentile_observer_is_exact_over_batches(percentile):
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 16, generator=gen) * (1 + i) for i, n in enumerate([50, 7, 130, 1])]
    everything = torch.cat(batches).abs().flatten()
    observer = PercentileObserver(percentile, max_values=everything.numel() + 100)  # sized for more than it sees
    for batch in batches:
        observer.update(batch.to(torch.bfloat16).float())  # what bf16 activations look like
    expected = torch.quantile(torch.cat([b.to(torch.bfloat16).float() for b in batches]).abs().flatten(),
                              percentile / 100)
    assert observer.values_seen == everything.numel()
    assert observer.capacity < everything.numel() // 5  # it keeps only the top values
    assert observer.range() == pytest.approx(float(expected), rel=1e-5)
    assert observer.absmax == pytest.approx(float(everything.to(torch.bfloat16).float().max()), rel=1e-2)


def test_absmax_observer_and_an_outlier():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 8, generator=gen)
    plain_max, plain_pct = AbsMaxObserver(), PercentileObserver(99.9, x.numel())
    plain_max.update(x)
    plain_pct.update(x)
    x_outlier = x.clone()
    x_outlier[3, 5] = 1000.0
    out_max, out_pct = AbsMaxObserver(), PercentileObserver(99.9, x.numel())
    out_max.update(x_outlier)
    out_pct.update(x_outlier)
    assert plain_max.range() == pytest.approx(float(x.abs().max()))
    assert out_max.range() == 1000.0
    assert out_pct.range() == pytest.approx(plain_pct.range(), rel=0.01)  # one value in 16000: not seen


def test_config_validation():
    assert StaticActivationConfig().activation_range == "minmax"
    with pytest.raises(ValueError, match="activation_range"):
        StaticActivationConfig(activation_range="mse")
    with pytest.raises(ValueError, match="percentile"):
        StaticActivationConfig(activation_range="percentile")  # needs a percentile
    with pytest.raises(ValueError, match="percentile"):
        StaticActivationConfig(activation_range="percentile", percentile=100.0)
    with pytest.raises(ValueError, match="only used"):
        StaticActivationConfig(activation_range="minmax", percentile=99.9)


def test_registered_configs():
    assert get_precision("w8a8-static").config.activation_range == "minmax"
    assert get_precision("w8a8-static").config.percentile is None
    assert get_precision("w8a8-static-p999").config.percentile == 99.9
    assert all(get_precision(n).needs_calibration for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("context", [None, QuantizeContext(tokenizer=object(), calibration=None)])
def test_missing_calibration_is_a_usage_error(name, context):
    with pytest.raises(UsageError, match="needs calibration text.*--calibration"):
        get_precision(name).apply(nn.Sequential(nn.Linear(8, 8)), "cpu", context)


# --- the tiny Llama -----------------------------------------------------------------------------


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = ["the", "answer", "is", "what", "plus", "minus", "times", "number", "patient", "dose", "mg", "town"]
    corpus = [" ".join(words[(i * 7 + k) % len(words)] for k in range(12)) + f" {i} = {i + 5}." for i in range(300)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=384, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|endoftext|>")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a shared 2-core machine torch's kernels ran ~50x slower with 2 intra-op threads
    # than with 1 on this model (see docs/precisions.md).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tiny_llama_builder):
    """(tokenizer, bf16 tiny Llama, calibration set, held-out batch)."""
    from qeval.calibration import load_calibration

    with quiet():
        tokenizer = _tokenizer()
        model = tiny_llama_builder(vocab_size=len(tokenizer)).to(torch.bfloat16)
    calibration = load_calibration("generic", samples=8, seed=0)
    held_out = load_calibration("generic", samples=4, seed=99).texts
    batch = tokenizer(list(held_out), return_tensors="pt", padding=True, truncation=True, max_length=128)
    return tokenizer, model, calibration, batch


@pytest.fixture(scope="module")
def quantized(setup):
    """``quantized(name)`` -> (model, applied), built once per module; do not modify the model."""
    tokenizer, model, calibration, _ = setup
    cache: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        if name not in cache:
            context = QuantizeContext(tokenizer=tokenizer, calibration=calibration)
            cache[name] = get_precision(name).apply(copy.deepcopy(model), "cpu", context)
        return cache[name]

    return get


def _logits_error(model, reference, batch) -> float:
    mask = batch["attention_mask"].bool()
    with torch.no_grad():
        want = reference(**batch).logits.float()[mask]
        got = model(**batch).logits.float()[mask]
    return ((got - want).norm() / want.norm()).item()


def _input_scales(model) -> dict[str, float]:
    from optimum.quanto import QModuleMixin

    return {n: float(m.input_scale) for n, m in model.named_modules() if isinstance(m, QModuleMixin)}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_decoder_linear_is_static_int8_and_lm_head_kept(name, quantized):
    from optimum.quanto import QModuleMixin, qint8

    model, applied = quantized(name)
    layers = {n: m for n, m in model.named_modules() if ".layers." in n and n.endswith("_proj")}
    assert len(layers) == DECODER_LINEARS
    for layer_name, module in layers.items():
        assert isinstance(module, QModuleMixin) and module.frozen, layer_name
        assert module.weight_qtype == qint8 and module.activation_qtype == qint8
        assert type(module.weight).__name__ == "WeightQBytesTensor"
        assert 0 < float(module.input_scale) < 1  # calibrated, not quanto's uncalibrated 1.0
        assert module._quantize_hooks["output"].id not in module._forward_hooks  # outputs stay bf16
    assert type(model.lm_head) is nn.Linear and model.lm_head.weight is model.model.embed_tokens.weight
    assert applied["layers_quantized"] == DECODER_LINEARS
    assert applied["layers_skipped"] == ["lm_head"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_logits_close_to_bf16_and_far_from_an_uncalibrated_scale(name, quantized, setup):
    _, reference, _, batch = setup
    model, _ = quantized(name)
    error = _logits_error(model, reference, batch)
    # Measured on this model (held-out text): minmax 0.03, p99.9 0.06; uncalibrated (scale 1.0) ~1.
    assert error < 0.12, f"{name}: relative logits error {error:.4f}"
    scales = {n: m.input_scale.clone() for n, m in model.named_modules() if hasattr(m, "input_scale")}
    try:
        with torch.no_grad():
            for n, m in model.named_modules():
                if n in scales:
                    m.input_scale.fill_(1.0)  # what quanto uses when nothing calibrates it
        broken = _logits_error(model, reference, batch)
    finally:
        with torch.no_grad():
            for n, m in model.named_modules():
                if n in scales:
                    m.input_scale.copy_(scales[n])
    assert broken > 5 * error, f"{name}: {error:.4f} vs uncalibrated {broken:.4f}"
    with torch.no_grad():
        out = model.generate(batch["input_ids"][:2, :8], attention_mask=batch["attention_mask"][:2, :8],
                             max_new_tokens=3, do_sample=False)
    assert out.shape == (2, 11)


@pytest.mark.slow
def test_percentile_scales_clip_below_minmax(quantized):
    minmax = _input_scales(quantized("w8a8-static")[0])
    p999 = _input_scales(quantized("w8a8-static-p999")[0])
    assert minmax.keys() == p999.keys() and len(minmax) == DECODER_LINEARS
    assert all(p999[n] <= minmax[n] for n in minmax)
    assert any(p999[n] < minmax[n] for n in minmax)
    applied = quantized("w8a8-static-p999")[1]
    assert 0 < applied["range_over_absmax"]["min"] <= applied["range_over_absmax"]["max"] <= 1


@pytest.mark.slow
def test_an_outlier_moves_minmax_not_the_percentile(setup):
    tokenizer, model, calibration, _ = setup
    names, _ = select_linears(model)
    batches = calibration_batches(tokenizer, calibration.texts, max_length=64, batch_size=4)
    target = "model.layers.0.mlp.down_proj"
    clean = observe_input_ranges(model, names, batches, percentile=99.9)

    def inject(module, args):  # one activation of the first batch becomes 1000x its max
        x = args[0]
        if not injected:
            injected.append(True)
            x = x.clone()
            x[0, 3, 7] = 1000 * x.abs().max()
        return (x,)

    injected: list[bool] = []
    handle = model.get_submodule(target).register_forward_pre_hook(inject)
    try:
        dirty = observe_input_ranges(model, names, batches, percentile=99.9)
    finally:
        handle.remove()
    assert injected
    minmax_growth = dirty[target].absmax / clean[target].absmax
    percentile_growth = dirty[target].range / clean[target].range
    assert minmax_growth > 50, minmax_growth
    assert percentile_growth < 1.05, percentile_growth
    # downstream layers see the perturbed residual stream, but the observed layer moved most
    assert clean["model.layers.0.self_attn.q_proj"] == dirty["model.layers.0.self_attn.q_proj"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_record_is_json_and_names_the_calibration(name, quantized, setup):
    _, _, calibration, _ = setup
    _, applied = quantized(name)
    assert json.loads(json.dumps(applied)) == applied
    assert applied["library"] == "optimum-quanto"
    assert applied["calibration"] == calibration.record()
    assert applied["activation_range"] == ("minmax" if name == "w8a8-static" else "percentile")
    assert ("percentile" in applied) == (name == "w8a8-static-p999")
    assert applied["group_size"] is None
    assert applied["scheme"]["weights"] == "qint8" and applied["scheme"]["activations"] == "qint8"
    scale = applied["input_scale"]
    assert 0 < scale["min"] <= scale["median"] <= scale["max"] < 1
    assert applied["calibration_tokens"] > 0 and applied["calibration_batches"] >= 2
