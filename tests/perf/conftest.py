"""The tiny random Llama (``tiny_llama_dir``) plus a small trained tokenizer, so that
``qeval perf`` can run it through the real HF path (prompts are text there).

Special ids match the model's config: pad 0, bos 1, eos 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _corpus():
    words = ["the", "answer", "is", "what", "plus", "minus", "times", "number", "patient", "dose", "mg", "daily", "json", "name", "city", "code"]
    for i in range(300):
        yield " ".join(words[(i * 7 + k) % len(words)] for k in range(12)) + f" {i} = {i + 5}."


def add_tokenizer(folder: Path) -> None:
    """Train a byte-level BPE tokenizer (vocab 300 < the model's 1000) and save it into ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<pad>")
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id) == (0, 1, 2)
    fast.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_perf_model_dir(request, tmp_path_factory) -> Path:
    """The tiny Llama of ``tiny_llama_dir`` with a tokenizer, in a fresh folder.

    ``tiny_llama_dir`` lives in pytest's cache; under ``-p no:cacheprovider`` the same
    model (``build_tiny_llama``, seed 0) is saved here instead.
    """
    folder = tmp_path_factory.mktemp("tiny-perf-llama")
    if hasattr(request.config, "cache"):
        source = Path(request.getfixturevalue("tiny_llama_dir"))
        for f in source.iterdir():
            if f.is_file():
                shutil.copy2(f, folder / f.name)
    else:
        from tests.conftest import build_tiny_llama

        build_tiny_llama().save_pretrained(folder)
    add_tokenizer(folder)
    return folder
