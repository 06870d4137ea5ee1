"""Model sources: local HF folders, built-in aliases, and a fake for tests."""

from __future__ import annotations

from pathlib import Path

from qeval.errors import ModelError, UsageError
from qeval.models._base import Generation, LoadedModel, ModelSource, TextModel, TimedGeneration
from qeval.models._builtin import BUILTINS, cache_dir, materialise
from qeval.models._fake import FakeSource, FakeTextModel
from qeval.models._hf import HFSource, HFTextModel

__all__ = [
    "BUILTINS",
    "FakeSource",
    "FakeTextModel",
    "Generation",
    "HFSource",
    "HFTextModel",
    "LoadedModel",
    "ModelSource",
    "TextModel",
    "TimedGeneration",
    "cache_dir",
    "resolve_model",
    "resolve_device",
]


def resolve_model(spec: str) -> ModelSource:
    """A model spec is a built-in alias, ``fake``, or a local HF folder."""
    if spec in BUILTINS:
        builtin = BUILTINS[spec]
        return HFSource.from_dir(spec, materialise(builtin), builtin.source_precision, builtin.notes, builtin.name)
    if spec == "fake":
        return FakeSource()
    path = Path(spec).expanduser()
    if not path.exists():
        aliases = ", ".join(BUILTINS)
        raise ModelError(
            f"Model {spec!r} not found: it is neither a local folder nor a built-in alias. "
            f"Give the path of a Hugging Face model folder (with config.json), or one of: {aliases}. "
            "Models cannot be downloaded at run time here."
        )
    if not (path / "config.json").exists():
        raise ModelError(
            f"{path} is not a Hugging Face model folder: it has no config.json. "
            "Point --model at the folder that save_pretrained wrote."
        )
    return HFSource.from_dir(spec, path.resolve())


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU here. Use --device cpu or auto.")
    return "cpu"
