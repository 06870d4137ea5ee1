"""Broken Hugging Face model folders: a handful of explicit cases (loading is too slow to fuzz).

Each ends in a ModelError that names the folder (or the file in it) and says how to fix it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qeval.errors import ModelError, QevalError
from qeval.models import BUILTINS, resolve_model
from tests.conftest import build_tiny_llama
from tests.fuzz._explained import explained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a small trained tokenizer: a complete, loadable HF folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llama") / "model"
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["the answer is 42"] * 8, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(path)
    build_tiny_llama(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2, bos_token_id=None, eos_token_id=fast.eos_token_id,
                     pad_token_id=fast.pad_token_id).save_pretrained(path)
    return path


def _load(folder: Path):
    def load():
        return resolve_model(str(folder)).load("fp32", "cpu")

    result = explained(load, path=folder)
    if isinstance(result, Exception):
        assert isinstance(result, ModelError), type(result)
    return result


def _broken(model_dir: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    change(folder)
    return folder


def test_the_complete_folder_loads(model_dir):
    loaded = _load(model_dir)
    assert not isinstance(loaded, QevalError)
    loaded.model.close()


def _write(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _delete(*patterns: str):
    def change(folder: Path) -> None:
        for pattern in patterns:
            for file in folder.glob(pattern):
                file.unlink()

    return change


def _edit_config(**changes):
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not ...}))

    return change


BROKEN = {
    "config.json missing": _delete("config.json"),
    "config.json empty": _write("config.json", b""),
    "config.json not JSON": _write("config.json", b"{\"model_type\": "),
    "config.json not UTF-8": _write("config.json", b"\xff\xfe{}"),
    "config.json a list": _write("config.json", b"[1, 2]"),
    "config.json an empty object": _write("config.json", b"{}"),
    "config.json unknown model_type": _edit_config(model_type="no-such-architecture"),
    "config.json no model_type": _edit_config(model_type=..., architectures=...),
    "config.json architectures not a list": _edit_config(architectures=5),
    "config.json wrong sizes": _edit_config(hidden_size=96),
    "config.json wrongly typed size": _edit_config(num_hidden_layers="two"),
    "weights missing": _delete("*.safetensors", "*.bin"),
    "weights truncated": lambda folder: (folder / "model.safetensors").write_bytes(
        (folder / "model.safetensors").read_bytes()[:1000]),
    "weights garbage": _write("model.safetensors", b"\x00" * 64),
    "tokenizer files missing": _delete("tokenizer*", "special_tokens_map.json"),
    "tokenizer.json garbage": _write("tokenizer.json", b"{not json"),
    "tokenizer_config.json garbage": _write("tokenizer_config.json", b"[["),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_folder(model_dir, tmp_path, case):
    result = _load(_broken(model_dir, tmp_path, BROKEN[case]))
    if isinstance(result, QevalError):
        return
    result.model.close()
    assert case == "config.json architectures not a list", f"{case}: loaded without an error"  # transformers goes by model_type


def test_not_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    for spec in (tmp_path / "file", tmp_path / "missing"):
        result = explained(lambda spec=spec: resolve_model(str(spec)), path=None)
        assert isinstance(result, ModelError)


@settings(max_examples=50, deadline=None)
@given(spec=st.text(max_size=20) | st.sampled_from([":x", ".mod:x", "~nosuchuser/model", "x" * 300, "a\x00b", "os:", "os:nope"]))
def test_any_model_spec(spec):
    # a built-in alias would fetch a model: every other spec resolves or raises a ModelError
    assume(spec not in BUILTINS and spec != "fake" and not spec.startswith("replay:"))
    result = explained(lambda: resolve_model(spec), path=None)
    if isinstance(result, Exception):
        assert isinstance(result, QevalError)
