"""GPTQ through gptqmodel on the tiny random Llama: error vs RTN, the checkpoint cache, the record."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="gptqmodel not installed"),
]


@pytest.fixture(scope="module")
def calibration():
    from qeval.calibration import load_calibration

    return load_calibration("generic", samples=16, seed=0)


def _logits(model, tokenizer, texts):
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=128)
    batch = batch.to(next(model.parameters()).device)
    with torch.no_grad():
        return model(**batch).logits.float()


def test_gptq_int4_beats_rtn_int4_and_reuses_its_checkpoint(tiny_chat_model_dir, calibration, tmp_path, monkeypatch):
    from qeval.calibration import load_calibration
    from qeval.models import HFSource

    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    source = HFSource.from_dir("tiny", tiny_chat_model_dir)
    held_out = load_calibration("generic", samples=8, seed=99).texts  # calibration-like text, other samples
    ref = source.load("fp32", "cpu").model
    tok = ref.tokenizer
    want = _logits(ref.model, tok, held_out)

    rtn = source.load("int4", "cpu")
    gptq = source.load("gptq-int4", "cpu", calibration)
    rtn_err = torch.mean((_logits(rtn.model.model, tok, held_out) - want) ** 2).item()
    gptq_err = torch.mean((_logits(gptq.model.model, tok, held_out) - want) ** 2).item()
    print(f"logit MSE vs fp32: RTN int4 {rtn_err:.3e}, GPTQ int4 {gptq_err:.3e}, ratio {gptq_err / rtn_err:.2f}")
    assert gptq_err < rtn_err

    applied = gptq.applied
    assert applied.cache == "miss" and applied.group_size == 128
    assert applied.calibration is not None and applied.calibration.content_hash == calibration.content_hash
    assert applied.layers_quantized == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers

    again = source.load("gptq-int4", "cpu", calibration)
    assert again.applied.cache == "hit" and again.applied.checkpoint == applied.checkpoint
    same = torch.equal(_logits(again.model.model, tok, held_out), _logits(gptq.model.model, tok, held_out))
    assert same


def test_gptq_without_calibration_is_a_usage_error(tiny_chat_model_dir):
    from qeval.errors import UsageError
    from qeval.models import HFSource

    with pytest.raises(UsageError, match="needs calibration text: pass --calibration"):
        HFSource.from_dir("tiny", tiny_chat_model_dir).load("gptq-int4", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gptq_on_cuda_quantizes_loads_and_records_the_kernel(tiny_chat_model_dir, calibration, tmp_path, monkeypatch):
    from qeval.calibration import load_calibration
    from qeval.models import HFSource

    monkeypatch.setenv("QEVAL_CACHE", str(tmp_path / "cache"))
    source = HFSource.from_dir("tiny", tiny_chat_model_dir)
    held_out = load_calibration("generic", samples=8, seed=99).texts
    ref = source.load("fp32", "cuda").model
    want = _logits(ref.model, ref.tokenizer, held_out).cpu()
    rtn = source.load("int4", "cuda")
    gptq = source.load("gptq-int4", "cuda", calibration)
    applied = gptq.applied
    print("CUDA GPTQ record:", {k: applied.details.get(k) for k in ("kernel_backend", "kernel", "kernels_passed_over",
                                                                     "gptq_quantize_seconds")},
          "quantize_peak_bytes", applied.quantize_peak_bytes)
    assert applied.device == "cuda" and applied.details["kernel"] and applied.layers_quantized == 14
    assert applied.quantize_peak_kind == "cuda_allocated" and (applied.quantize_peak_bytes or 0) > 0
    gptq_err = torch.mean((_logits(gptq.model.model, ref.tokenizer, held_out).cpu() - want) ** 2).item()
    rtn_err = torch.mean((_logits(rtn.model.model, ref.tokenizer, held_out).cpu() - want) ** 2).item()
    print(f"CUDA logit MSE vs fp32: RTN int4 {rtn_err:.3e}, GPTQ int4 {gptq_err:.3e}")
    assert gptq_err < rtn_err
