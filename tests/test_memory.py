"""weights_bytes counts real storage; peak_memory measures a block's peak."""

from __future__ import annotations

import gc
import mmap
import time

import pytest
import torch
from torch import nn

from qeval import memory
from qeval.memory import peak_memory, weights_bytes


@pytest.fixture(scope="module")
def by_precision(quantized_tiny_llama):
    return lambda name: quantized_tiny_llama(name)[0]


def _linear_bytes(model) -> int:
    """Bytes of the 14 decoder projections (whatever type they became)."""
    return sum(weights_bytes(m) for n, m in model.named_modules() if ".layers." in n and n.endswith("_proj"))


def test_fp32_counts_every_tensor_once_and_tied_weights_once(load_tiny_llama):
    model = load_tiny_llama(torch.float32)
    params = list(model.parameters())  # parameters() already yields the tied weight once
    expected = sum(p.numel() * 4 for p in params) + sum(b.numel() * b.element_size() for b in model.buffers())
    assert weights_bytes(model) == expected
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_views_and_shared_storage_count_once():
    module = nn.Linear(64, 32, bias=False)
    module.register_buffer("view", module.weight.data[:8])
    module.alias = module.weight.data.view(-1)
    module.extra = {"nested": [module.weight.data.t()]}
    assert weights_bytes(module) == 64 * 32 * 4


def test_tensor_attributes_and_meta_tensors():
    module = nn.Module()
    module.meta_info = {"scale": torch.zeros(10, dtype=torch.float16), "shape": (3, 4)}
    module.ghost = torch.empty(1000, device="meta")
    assert weights_bytes(module) == 20


def test_int8_linears_are_a_quarter_of_fp32(by_precision):
    ratio = _linear_bytes(by_precision("int8")) / _linear_bytes(by_precision("fp32"))
    # int8 data + one bf16 scale per row: just over 1/4; as bf16 it would be 1/2
    assert 0.25 < ratio < 0.27


def test_4bit_linears_are_an_eighth_of_fp32_plus_scales(by_precision):
    fp32 = _linear_bytes(by_precision("fp32"))
    for name in ("int4", "nf4", "hqq4"):
        ratio = _linear_bytes(by_precision(name)) / fp32
        # 4-bit data = 0.125; scales (and zeros/shifts) per group of 64-128 add < 0.04
        assert 0.125 < ratio < 0.165, (name, ratio)


def test_total_order(by_precision):
    sizes = {n: weights_bytes(by_precision(n)) for n in ("fp32", "bf16", "int8", "fp8", "int4", "nf4", "hqq4")}
    assert 1.99 < sizes["fp32"] / sizes["bf16"] <= 2  # RoPE buffers stay fp32
    assert sizes["fp32"] > sizes["bf16"] > sizes["int8"] > sizes["int4"]
    assert sizes["int8"] > sizes["nf4"] and sizes["int8"] > sizes["hqq4"]
    assert abs(sizes["fp8"] - sizes["int8"]) / sizes["int8"] < 0.01


def test_bnb_quant_state_and_hqq_meta_are_counted(by_precision):
    bnb_layer = by_precision("nf4").model.layers[0].self_attn.q_proj
    assert weights_bytes(bnb_layer) > bnb_layer.weight.untyped_storage().nbytes()
    hqq_layer = by_precision("hqq4").model.layers[0].self_attn.q_proj
    assert weights_bytes(hqq_layer) > hqq_layer.W_q.untyped_storage().nbytes()


def _fresh_pages(size: int) -> mmap.mmap:
    """``size`` bytes of new anonymous memory, every page written: resident for sure. (A torch
    or malloc block may instead reuse pages an earlier test freed that the allocator kept.)"""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


def _allocate_while_measuring() -> tuple[memory.PeakMemory, int]:
    size = 64 * 2**20
    # garbage from earlier tests (a model in a reference cycle) freed mid-window would lower the
    # RSS while the block raises it: collect it first
    gc.collect()
    with peak_memory("cpu") as peak:
        _fresh_pages(size).close()
    return peak, size


def test_cpu_peak_sees_a_freed_allocation():
    peak, size = _allocate_while_measuring()
    assert peak.peak_kind == "cpu_rss" and peak.cuda_reserved_bytes is None
    assert peak.method in ("vmhwm", "sampled_rss")
    if peak.method == "vmhwm":  # the sampler can miss a spike this short
        assert peak.peak_bytes - peak.start_bytes >= 0.9 * size


def test_cpu_peak_falls_back_to_sampling(monkeypatch):
    monkeypatch.setattr(memory, "_reset_hwm", lambda: False)
    size = 64 * 2**20
    gc.collect()  # as above
    with peak_memory("cpu") as peak:
        block = _fresh_pages(size)
        time.sleep(0.3)  # held for a few of the sampler's polls
    assert peak.method == "sampled_rss"
    assert peak.peak_bytes - peak.start_bytes >= 0.9 * size
    block.close()


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device"):
        with peak_memory("tpu"):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak():
    with peak_memory("cuda") as peak:
        block = torch.ones(32 * 2**20, dtype=torch.uint8, device="cuda")
        del block
    assert peak.peak_kind == "cuda_allocated" and peak.method == "torch.cuda"
    assert peak.peak_bytes - peak.start_bytes >= 32 * 2**20
    assert peak.cuda_reserved_bytes >= peak.peak_bytes
