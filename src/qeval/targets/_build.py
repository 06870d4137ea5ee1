"""From target specs to provisionable targets (shared by the sweep, ``qeval perf`` and the plugin)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from qeval.errors import UsageError
from qeval.targets._endpoint import EndpointTarget
from qeval.targets._inprocess import InProcessTarget
from qeval.targets._spec import TargetSpec


def build_targets(
    specs: Sequence[TargetSpec], source: Any = None, *, concurrency: int = 8, request_timeout_s: float = 120.0,
    tokenizer: str | None = None, identified_later: Collection[str] = (), servers_dir: Path | None = None,
    engine_executables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One provisionable target per spec, by name, in order. Endpoints are identified now (except
    those named in ``identified_later``, e.g. finished before a resume), so one that is down fails
    the run within seconds, as a usage error, before any model is loaded.

    ``source`` (tests, Python callers) serves every in-process target in place of its model spec.
    Managed targets (``vllm:``, ``llamacpp:``) write their server logs under ``servers_dir``;
    ``engine_executables`` maps an engine name to the executable the user chose (``--vllm``)."""
    from qeval.models import resolve_model
    from qeval.quantize import get_precision

    sources: dict[str, Any] = {}
    out: dict[str, Any] = {}
    count = token_counter(tokenizer)
    for spec in specs:
        if spec.kind == "openai":
            out[spec.name] = EndpointTarget(spec, concurrency=concurrency, read_timeout_s=request_timeout_s,
                                            count_tokens=count)
            continue
        if spec.managed:
            from qeval.engines import make_engine
            from qeval.targets._managed import ManagedTarget

            engine = make_engine(spec.kind, (engine_executables or {}).get(spec.kind))
            out[spec.name] = ManagedTarget(spec, engine, servers_dir=servers_dir, concurrency=concurrency,
                                           read_timeout_s=request_timeout_s, count_tokens=count)
            continue
        model = str(spec.model)
        if model not in sources:
            sources[model] = source or resolve_model(model)
        out[spec.name] = InProcessTarget(spec, sources[model], get_precision(str(spec.precision)))
    for name, target in out.items():
        if isinstance(target, EndpointTarget) and name not in identified_later:
            target.identify()
    return out


def precision_of(spec: TargetSpec) -> Any:
    """What the sweep's variants and calibration need to know of a target's precision: a
    :class:`qeval.quantize.Precision` (in-process), an :class:`qeval.engines.EnginePrecision`
    (managed), or ``None`` (an endpoint, whose precision is not ours to know)."""
    if spec.kind == "model":
        from qeval.quantize import get_precision

        return get_precision(str(spec.precision))
    if spec.managed:
        from qeval.engines import engine_precision

        return engine_precision(spec.kind, str(spec.precision))
    return None


def token_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    """``--tokenizer PATH`` (or a built-in alias, ``smollm2-135m``): counts an endpoint's output tokens
    when it sends no usage, and the prompt tokens synthetic prompts are built to."""
    if not tokenizer:
        return None
    from qeval.models._builtin import BUILTINS

    if tokenizer in BUILTINS and not Path(tokenizer).exists():
        from qeval.models import materialise

        tokenizer = str(materialise(BUILTINS[tokenizer]))
    path = Path(tokenizer)
    if not (path / "tokenizer_config.json").is_file() and not (path / "tokenizer.json").is_file():
        raise UsageError(f"--tokenizer {tokenizer}: no tokenizer.json or tokenizer_config.json in that folder. "
                         "Give the folder of the served model's tokenizer (a Hugging Face model folder).")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return count
