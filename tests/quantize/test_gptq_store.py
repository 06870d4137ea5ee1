"""A checkpoint calibrated at float32 is stored as a bf16 base's would be (qeval.quantize._gptq)."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from qeval.quantize._gptq import _store_unquantized_as


def _dtypes(path) -> dict[str, torch.dtype]:
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name).dtype for name in handle.keys()}


def test_float32_tensors_become_bf16_and_packed_ones_stay(tmp_path):
    embed = torch.randn(8, 4)
    first = {"model.embed_tokens.weight": embed, "model.norm.weight": torch.ones(4)}
    second = {"layers.0.q.qweight": torch.arange(6, dtype=torch.int32).reshape(2, 3),
              "layers.0.q.scales": torch.full((1, 3), 0.5, dtype=torch.float16)}
    save_file(first, str(tmp_path / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(second, str(tmp_path / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float32", "hidden_size": 4}))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 1}, "weight_map": {}}))
    untouched = (tmp_path / "model-00002-of-00002.safetensors").stat().st_mtime_ns

    _store_unquantized_as(tmp_path, "bfloat16")

    assert _dtypes(tmp_path / "model-00001-of-00002.safetensors") == {
        "model.embed_tokens.weight": torch.bfloat16, "model.norm.weight": torch.bfloat16}
    # a shard without float32 is not rewritten (its dtypes come from the header, nothing is loaded)
    assert (tmp_path / "model-00002-of-00002.safetensors").stat().st_mtime_ns == untouched
    assert _dtypes(tmp_path / "model-00002-of-00002.safetensors") == {
        "layers.0.q.qweight": torch.int32, "layers.0.q.scales": torch.float16}
    with safe_open(str(tmp_path / "model-00001-of-00002.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
        assert torch.equal(handle.get_tensor("model.embed_tokens.weight"), embed.to(torch.bfloat16))
    with safe_open(str(tmp_path / "model-00002-of-00002.safetensors"), framework="pt") as handle:
        assert torch.equal(handle.get_tensor("layers.0.q.qweight"), second["layers.0.q.qweight"])
    assert json.loads((tmp_path / "config.json").read_text()) == {"dtype": "bfloat16", "hidden_size": 4}
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == (32 + 4) * 2 + 6 * 4 + 3 * 2
