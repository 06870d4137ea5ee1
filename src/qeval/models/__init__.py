"""Model sources: local HF folders, built-in aliases, recorded completions (replay), and a fake for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qeval.errors import ModelError, UsageError
from qeval.models._base import (
    Generation,
    LoadedModel,
    Message,
    ModelSource,
    Prompt,
    TextModel,
    TimedGeneration,
    conversation,
)
from qeval.models._builtin import BUILTINS, cache_dir, materialise
from qeval.models._fake import FakeSource, FakeTextModel
from qeval.models._hf import HFSource, HFTextModel
from qeval.models._replay import ReplaySource, ReplayTextModel, is_replay_spec

__all__ = [
    "BUILTINS",
    "FakeSource",
    "FakeTextModel",
    "Generation",
    "HFSource",
    "HFTextModel",
    "LoadedModel",
    "Message",
    "ModelSource",
    "Prompt",
    "ReplaySource",
    "ReplayTextModel",
    "TextModel",
    "TimedGeneration",
    "cache_dir",
    "check_model_spec",
    "conversation",
    "resolve_model",
    "resolve_device",
]


def resolve_model(spec: str) -> ModelSource:
    """A model spec is a built-in alias, ``fake``, ``replay:PATH[#PRECISION]`` (recorded
    completions, see :mod:`qeval.models._replay`), a local HF folder, or ``module:attr``
    naming a Python :class:`ModelSource` (or a function returning one)."""
    if spec in BUILTINS:
        builtin = BUILTINS[spec]
        return HFSource.from_dir(spec, materialise(builtin), builtin.source_precision, builtin.notes, builtin.name)
    if spec == "fake":
        return FakeSource()
    if is_replay_spec(spec):
        return ReplaySource(spec)
    try:
        path = Path(spec).expanduser()
        exists = path.exists()
    except (OSError, RuntimeError, ValueError):  # ~user with no such user, a name the OS refuses
        path, exists = Path(spec), False
    if not exists and ":" in spec:
        return _python_source(spec)
    if not exists:
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


def check_model_spec(spec: str) -> None:
    """Raise :class:`ModelError` now if ``spec`` cannot name a model, without loading
    weights (a built-in alias is converted on first use, not here)."""
    if spec in BUILTINS or spec == "fake":
        return
    resolve_model(spec)


def cpu_only_torch() -> bool:
    """True when the installed torch is a build without CUDA or ROCm, read from its
    ``torch/version.py`` without importing torch (~2 s); False when unsure."""
    import ast
    from importlib import metadata

    try:
        path = metadata.distribution("torch").locate_file("torch/version.py")
        tree = ast.parse(Path(str(path)).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - absent, unusual or unreadable: ask torch itself
        return False
    values: dict[str, Any] = {}
    target: ast.expr
    value: ast.expr | None
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            values[target.id] = value.value
    return all(k in values for k in ("cuda", "hip")) and values["cuda"] is None and values["hip"] is None


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device == "cpu" or (device == "auto" and cpu_only_torch()):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU here. Use --device cpu or auto.")
    return "cpu"


def _python_source(spec: str) -> ModelSource:
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:  # TypeError: a relative name such as ".x"
        raise ModelError(
            f"Model {spec!r}: cannot import module {module_name!r} ({exc}). A Python model source is "
            "written module:attr and its module must be importable: check the spelling, or put its folder on PYTHONPATH. "
            "For a model folder, check the path."
        ) from exc
    obj = getattr(module, attr, None) if attr else None
    if obj is None:
        raise ModelError(f"Model {spec!r}: module {module_name!r} has no attribute {attr!r}. Check the name after the colon.")
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "load")):
        obj = obj()
    if not (hasattr(obj, "card") and hasattr(obj, "load")):
        raise ModelError(
            f"Model {spec!r} is a {type(obj).__name__}, not a model source: it needs a `card` "
            "(qeval.results.ModelCard) and a `load(precision, device)` method (see qeval.models.FakeSource)."
        )
    return obj
