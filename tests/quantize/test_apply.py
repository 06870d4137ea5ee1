"""Every precision on the tiny random Llama: it applies, runs, is really quantized,
records what it did, and stays close to fp32."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from qeval.quantize import get_precision, list_precisions, select_linears

# Calibrated precisions (GPTQ) need a tokenizer and calibration text: tests/integration/test_gptq_tiny.py.
# as-is applies nothing to a loaded model: tests/integration/test_as_is.py and test_gptq_checkpoint.py.
CPU_PRECISIONS = [
    name for name, _, reason in list_precisions("cpu")
    if reason is None and not get_precision(name).needs_calibration and name != "as-is"
]

# Relative L2 error of the logits against fp32 on a random model (measured: bf16 0.007,
# fp16 0.001, int8 0.016, w8a8 0.021, fp8 0.054, int4 0.20, nf4 0.17, hqq4 0.19).
MAX_LOGITS_ERROR = {
    "fp32": 0.0, "bf16": 0.03, "fp16": 0.01, "int8": 0.05, "w8a8": 0.07, "fp8": 0.12,
    "int4": 0.35, "nf4": 0.35, "hqq4": 0.35,
}
LIBRARY = {
    "fp32": "torch", "bf16": "torch", "fp16": "torch", "int8": "torchao", "w8a8": "torchao",
    "fp8": "torchao", "int4": "optimum-quanto", "nf4": "bitsandbytes", "hqq4": "hqq",
}
DECODER_LINEARS = 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)


def _weight_kind(name: str, module: nn.Module) -> bool:
    """Is this decoder layer quantized the way ``name`` promises?"""
    weight = getattr(module, "weight", None)
    if name in ("fp32", "bf16", "fp16"):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        return type(module) is nn.Linear and weight.dtype == dtype
    if name in ("int8", "w8a8"):
        return type(module) is nn.Linear and type(weight).__name__ == "Int8Tensor"
    if name == "fp8":
        return type(module) is nn.Linear and type(weight).__name__ == "Float8Tensor"
    if name == "int4":
        from optimum.quanto import QModuleMixin

        return isinstance(module, QModuleMixin) and "QBitsTensor" in type(module.weight).__name__
    if name == "nf4":
        import bitsandbytes as bnb

        return isinstance(module, bnb.nn.Linear4bit) and weight.dtype == torch.uint8
    if name == "hqq4":
        from hqq.core.quantize import HQQLinear

        return isinstance(module, HQQLinear) and module.meta["nbits"] == 4
    raise AssertionError(f"no check for {name}")


@pytest.fixture(scope="module")
def input_ids():
    return torch.randint(3, 1000, (2, 12), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def fp32_logits(load_tiny_llama, input_ids):
    with torch.no_grad():
        return load_tiny_llama(torch.float32)(input_ids).logits


@pytest.fixture(scope="module")
def quantized(quantized_tiny_llama):
    return quantized_tiny_llama


@pytest.mark.parametrize("name", CPU_PRECISIONS)
def test_apply_runs_and_is_close(name, quantized, input_ids, fp32_logits):
    model, applied = quantized(name)
    with torch.no_grad():
        logits = model(input_ids).logits.float()
        out = model.generate(
            input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=4, do_sample=False
        )
    assert out.shape == (2, 12 + 4)
    assert torch.isfinite(logits).all()
    error = ((logits - fp32_logits).norm() / fp32_logits.norm()).item()
    assert error <= MAX_LOGITS_ERROR[name] + 1e-6, f"{name}: relative logits error {error:.4f}"


@pytest.mark.parametrize("name", CPU_PRECISIONS)
def test_decoder_linears_are_quantized_and_lm_head_kept(name, quantized):
    model, applied = quantized(name)
    layers = [m for n, m in model.named_modules() if ".layers." in n and n.endswith("_proj")]
    assert len(layers) == DECODER_LINEARS
    assert all(_weight_kind(name, m) for m in layers), name
    assert type(model.lm_head) is nn.Linear and type(model.lm_head.weight) is nn.Parameter
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied


@pytest.mark.parametrize("name", CPU_PRECISIONS)
def test_applied_record(name, quantized):
    model, applied = quantized(name)
    assert json.loads(json.dumps(applied)) == applied
    assert applied["precision"] == name
    assert applied["library"] == LIBRARY[name]
    assert applied["library_version"] and applied["library_version"] != "unknown"
    assert applied["compute_dtype"] == get_precision(name).config.compute_dtype
    quantizes = name not in ("fp32", "bf16", "fp16")
    assert applied["layers_skipped"] == (["lm_head"] if quantizes else [])
    assert applied["layers_quantized"] == (DECODER_LINEARS if quantizes else 0)
    expected_group = {"int4": 128, "hqq4": 128, "nf4": 64}.get(name)
    assert applied["group_size"] == expected_group


def test_int4_group_size_is_set_on_every_layer(quantized):
    model, applied = quantized("int4")
    groups = {m.weight_group_size for n, m in model.named_modules() if hasattr(m, "weight_group_size")}
    assert groups == {applied["group_size"]}


def test_hqq4_group_size_is_set_on_every_layer(quantized):
    model, applied = quantized("hqq4")
    groups = {m.meta["group_size"] for m in model.modules() if hasattr(m, "meta") and isinstance(m.meta, dict)}
    assert groups == {applied["group_size"]}


def test_fp32_loaded_model_is_cast_to_the_compute_dtype(load_tiny_llama):
    model, applied = get_precision("int8").apply(load_tiny_llama(torch.float32), "cpu")
    assert applied["cast_from"] == "float32"
    assert model.lm_head.weight.dtype == torch.bfloat16
    # RoPE's buffer keeps fp32 as transformers' own bf16 loading does
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32


def test_select_linears_skips_the_tied_output(tiny_llama_builder):
    quantize, skipped = select_linears(tiny_llama_builder())
    assert skipped == ["lm_head"] and len(quantize) == DECODER_LINEARS
