"""`as-is` on a plain model folder: its stored dtype, nothing quantized."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_as_is_on_a_plain_model_loads_the_stored_dtype_unquantized(tiny_chat_model_dir):
    from qeval.models import HFSource

    source = HFSource.from_dir("tiny", tiny_chat_model_dir)
    assert source.stored_dtype == "float32" and source.gptq is None
    as_is, fp32 = source.load("as-is", "cpu"), source.load("fp32", "cpu")
    assert as_is.applied.precision == "as-is" and as_is.applied.compute_dtype == "float32"
    assert as_is.applied.layers_quantized == 0 and as_is.applied.cast_from is None
    assert as_is.applied.library == "torch"
    tok = as_is.model.tokenizer
    batch = tok(["the answer is 3 plus 4 = 7."], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(as_is.model.model(**batch).logits, fp32.model.model(**batch).logits)
