"""What a run evaluates: named targets, each a model at a precision or a served endpoint.

``--target NAME=SPEC`` (repeatable) where SPEC is

- ``MODEL@PRECISION``: a model qeval loads itself (any ``--model`` spec: a built-in alias,
  a local HF folder, ``fake``, ``replay:...``) quantized to PRECISION, e.g.
  ``smollm2-135m@int4``, ``models/x@gptq-int4``;
- ``openai:URL[#MODEL]``: an OpenAI-compatible server someone else runs (vLLM, llama.cpp,
  SGLang, TGI), e.g. ``openai:http://127.0.0.1:8000/v1#smollm2``. MODEL defaults to the only
  model the server lists;
- ``vllm:MODEL@PRECISION`` or ``llamacpp:MODEL@QTYPE``: a server qeval starts, evaluates and
  stops itself (:mod:`qeval.engines`), e.g. ``vllm:smollm2-135m@gptq-int4``,
  ``llamacpp:smollm2-135m@Q8_0``.

``--model M --precisions a,b`` is shorthand for ``--target a=M@a --target b=M@b``.
A :class:`TargetSpec` is a small frozen record: it pickles and hashes, so a cell that names
it can be sent to another machine. It never holds a secret: an endpoint's API key is read
from the environment variable it names, when the request is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from qeval.errors import UnknownNameError, UsageError

TargetKind = Literal["model", "openai", "vllm", "llamacpp"]
MANAGED_KINDS = ("vllm", "llamacpp")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
"""Target names appear in SLO references (``accuracy_drop_vs(NAME)``), file names and JUnit ids."""
OPENAI_PREFIX = "openai:"
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TargetSpec:
    """One named thing to evaluate."""

    name: str
    kind: TargetKind
    model: str | None = None
    """``kind="model"``: the model spec qeval loads."""
    precision: str | None = None
    """``kind="model"``: the precision it is quantized to."""
    url: str | None = None
    """``kind="openai"``: the API base URL, ending in ``/v1``."""
    served_model: str | None = None
    """``kind="openai"``: the served model id (``None``: the only one the server lists)."""
    api_key_env: str | None = None
    """``kind="openai"``: the environment variable that holds the API key (the key is never stored)."""
    engine_args: tuple[str, ...] = ()
    """Managed targets: extra engine arguments, as passed (``--max-model-len``, ``2048``)."""
    revision: str | None = None
    """What the user says the endpoint serves (a model revision, an image tag). Only with one may
    the plugin's cell cache reuse an endpoint's cells: a URL alone says nothing about what is behind it."""

    @property
    def remote(self) -> bool:
        """Served by a server process (someone else's, or one qeval started): requests go over HTTP
        and the client's memory is not the target's."""
        return self.kind != "model"

    @property
    def managed(self) -> bool:
        """A server qeval starts and stops itself."""
        return self.kind in MANAGED_KINDS

    @property
    def spec(self) -> str:
        """The SPEC half of ``NAME=SPEC``, as the user would write it (no secret in it)."""
        if self.kind == "openai":
            return f"{OPENAI_PREFIX}{self.url}" + (f"#{self.served_model}" if self.served_model else "")
        if self.managed:
            return f"{self.kind}:{self.model}@{self.precision}"
        return f"{self.model}@{self.precision}"

    def __str__(self) -> str:
        return f"{self.name}={self.spec}"


def check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"{where}: target name {name!r} is not usable: start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (at most 64 characters), e.g. incumbent, canary, int4."
        )
    return name


def parse_target(text: str, where: str = "--target") -> TargetSpec:
    """``NAME=SPEC`` → :class:`TargetSpec` (see the module doc for SPEC)."""
    name, eq, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not eq or not name or not spec:
        raise UsageError(
            f"{where} {text!r}: write NAME=SPEC, e.g. fp32=smollm2-135m@fp32 or "
            "served=openai:http://127.0.0.1:8000/v1#smollm2-135m."
        )
    check_name(name, where)
    if spec.startswith(OPENAI_PREFIX):
        return _endpoint(name, spec[len(OPENAI_PREFIX):], f"{where} {name}")
    engine, colon, rest = spec.partition(":")
    if colon and engine in MANAGED_KINDS:
        return _managed(name, engine, rest, f"{where} {name}")
    model, at, precision = spec.rpartition("@")
    if not at or not model or not precision:
        raise UsageError(
            f"{where} {name}: {spec!r} names no precision. Write MODEL@PRECISION (e.g. smollm2-135m@int4; "
            "`qeval precisions` lists them) or openai:URL[#MODEL] for a served endpoint."
        )
    from qeval.quantize import check_precision_name  # names only: no backend is imported

    try:
        check_precision_name(precision)
    except UnknownNameError as exc:
        raise UsageError(f"{where} {name}: {exc}") from None
    return TargetSpec(name=name, kind="model", model=model, precision=precision)


def _endpoint(name: str, rest: str, where: str) -> TargetSpec:
    url, _, served = rest.partition("#")
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise UsageError(
            f"{where}: {url!r} is not an http(s) URL. Write openai:http://HOST:PORT/v1[#MODEL], "
            "e.g. openai:http://127.0.0.1:8000/v1."
        )
    if "@" in url.split("//", 1)[1].split("/", 1)[0]:
        raise UsageError(
            f"{where}: the URL carries credentials (user:password@host). Put the API key in an environment "
            "variable and name it with --api-key-env NAME=VAR instead: a URL ends up in reports."
        )
    if not url.endswith("/v1"):
        raise UsageError(
            f"{where}: {url!r} should be the API base URL, ending in /v1 (qeval appends /chat/completions, "
            f"/completions and /models), e.g. {url}/v1."
        )
    return TargetSpec(name=name, kind="openai", url=url, served_model=served.strip() or None)


def _managed(name: str, engine: str, rest: str, where: str) -> TargetSpec:
    from qeval.engines import engine_precision_names

    model, at, precision = rest.rpartition("@")
    names = engine_precision_names(engine)
    if not at or not model.strip() or not precision.strip():
        raise UsageError(f"{where}: write {engine}:MODEL@PRECISION, e.g. {engine}:smollm2-135m@{names[0]} "
                         f"({engine} precisions: {', '.join(names)}).")
    precision = precision.strip()
    matched = next((n for n in names if n.lower() == precision.lower()), None)
    if matched is None:
        raise UsageError(f"{where}: {engine} has no precision {precision!r}; it takes {', '.join(names)}.")
    return TargetSpec(name=name, kind=engine, model=model.strip(), precision=matched)  # type: ignore[arg-type]


def targets_from_precisions(model: str, precisions: Sequence[str]) -> tuple[TargetSpec, ...]:
    """``--model M --precisions a,b`` → targets ``a=M@a``, ``b=M@b``."""
    return tuple(TargetSpec(name=p, kind="model", model=model, precision=p) for p in precisions)


def parse_assignments(entries: Iterable[str], flag: str, what: str) -> dict[str, str]:
    """``NAME=VALUE`` options (``--api-key-env canary=OPENAI_API_KEY``) → a dict, refusing repeats."""
    out: dict[str, str] = {}
    for entry in entries:
        name, eq, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise UsageError(f"{flag} {entry!r}: write TARGET={what}, e.g. {flag} canary={_example(what)}.")
        if name in out:
            raise UsageError(f"{flag}: target {name!r} is given twice.")
        out[name] = value
    return out


def _example(what: str) -> str:
    return "OPENAI_API_KEY" if what == "VAR" else "v2026-11-30"


def with_options(
    targets: Sequence[TargetSpec], api_key_env: dict[str, str], revisions: dict[str, str], where: str = "",
    engine_args: Sequence[str] = (),
) -> tuple[TargetSpec, ...]:
    """Attach ``--api-key-env``, ``--target-revision`` and ``--engine-arg`` values to the targets they name."""
    names = [t.name for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{where}target {', '.join(dupes)} is given more than once: each target name once.")
    for flag, given in (("--api-key-env", api_key_env), ("--target-revision", revisions)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise UsageError(f"{where}{flag} names {', '.join(unknown)}, which is not a target here ({', '.join(names)}).")
    per_target = split_engine_args(engine_args, targets, where)
    out = []
    for t in targets:
        var = api_key_env.get(t.name)
        if var is not None:
            if t.kind != "openai":
                raise UsageError(f"{where}--api-key-env {t.name}: only an openai: endpoint target takes an API key.")
            if not _VAR.match(var):
                raise UsageError(
                    f"{where}--api-key-env {t.name}={var[:3]}...: give the NAME of an environment variable "
                    "(e.g. OPENAI_API_KEY), not the key itself: a key on the command line ends up in shell history and logs."
                )
        out.append(replace(t, api_key_env=var or t.api_key_env, revision=revisions.get(t.name, t.revision),
                           engine_args=t.engine_args + per_target.get(t.name, ()) if t.managed else ()))
    return tuple(out)


def split_engine_args(entries: Sequence[str], targets: Sequence[TargetSpec], where: str = "") -> dict[str, tuple[str, ...]]:
    """``--engine-arg [TARGET:]KEY[=VALUE]`` → the engine arguments of each managed target, in order."""
    managed = [t.name for t in targets if t.managed]
    if entries and not managed:
        raise UsageError(f"{where}--engine-arg applies to servers qeval starts: name one with --target NAME=vllm:MODEL@PRECISION "
                         "or NAME=llamacpp:MODEL@QTYPE.")
    out: dict[str, list[str]] = {n: [] for n in managed}
    for entry in entries:
        name, colon, rest = entry.partition(":")
        names = managed
        if colon and "=" not in name:
            if name not in out:
                raise UsageError(f"{where}--engine-arg {entry!r}: {name!r} is not a managed target here "
                                 f"({', '.join(managed)}).")
            names, entry = [name], rest
        for n in names:
            out[n].extend(_engine_arg(entry, where))
    return {n: tuple(v) for n, v in out.items()}


def _engine_arg(entry: str, where: str) -> list[str]:
    """``max-model-len=2048`` → ``--max-model-len 2048``; ``enforce-eager`` → ``--enforce-eager``."""
    key, eq, value = entry.partition("=")
    key = key.strip().lstrip("-")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", key):
        raise UsageError(f"{where}--engine-arg {entry!r}: write [TARGET:]KEY=VALUE or [TARGET:]KEY (a flag), e.g. "
                         "max-model-len=2048 or enforce-eager; the leading -- is added for you.")
    return [f"--{key}", value.strip()] if eq else [f"--{key}"]


__all__ = [
    "MANAGED_KINDS",
    "OPENAI_PREFIX",
    "TargetKind",
    "TargetSpec",
    "check_name",
    "parse_assignments",
    "parse_target",
    "split_engine_args",
    "targets_from_precisions",
    "with_options",
]
