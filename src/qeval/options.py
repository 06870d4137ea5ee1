"""The options the ``qeval`` command line and the pytest plugin share, declared once.

Each :class:`OptionSpec` is one option: its name, kind, default, help and parser, and the
surfaces it applies to. ``qeval sweep`` spells it ``--NAME``; the plugin spells it
``--qeval-NAME``, the ini key ``qeval_NAME`` and the ``[tool.qeval]`` key ``NAME`` (dashes
as underscores). The typer commands (:func:`qeval.cli_common.typer_option`) and the plugin's
option registration (:mod:`pytest_qeval.options`) both read help, default and parsing from
here, so the two cannot drift; ``tests/test_option_table.py`` checks that they have not.

Importing this module imports neither typer nor pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from qeval.errors import UsageError

Kind = Literal["str", "int", "float", "flag", "list", "multi", "path"]
"""How a value is given: ``flag`` takes none, ``multi`` is repeatable (kept as given),
``list`` is comma-separated; the rest take one value."""

Surface = Literal["sweep", "perf", "quantize", "plugin"]
"""Where an option applies: a ``qeval`` command, or the pytest plugin."""

Parser = Callable[[Any, "OptionSpec"], Any]
"""Raw value (a command-line or ini string, or a TOML value) → typed value; raises
``ValueError`` with the problem in words (the caller says where the value was set)."""


class _Flags(dict):
    """``{model}`` in a help text → ``--model`` or ``--qeval-model``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def __missing__(self, key: str) -> str:
        return self.prefix + key


@dataclass(frozen=True)
class OptionSpec:
    """One option, as every surface that offers it declares it."""

    name: str
    """The flag without dashes or prefix: ``calibration-seeds``."""
    kind: Kind
    default: Any
    """The value when the option is not given (``()`` for a repeatable one)."""
    help: str
    """One or two sentences; ``{other-option}`` is written as that surface's flag."""
    parser: Parser
    applies: frozenset[str]
    """The :data:`Surface` names that offer this option."""
    minimum: int | float | None = None
    """Smallest value accepted (numbers only)."""
    metavar: str | None = None

    @property
    def key(self) -> str:
        """The name as an identifier: ``calibration_seeds`` (the ``[tool.qeval]`` key, the field name)."""
        return self.name.replace("-", "_")

    def help_for(self, prefix: str) -> str:
        """The help text with other options spelled as flags: ``prefix`` is ``--`` or ``--qeval-``."""
        return self.help.format_map(_Flags(prefix))

    @property
    def cli_default(self) -> Any:
        """The default as typer declares it (a repeatable option defaults to ``None`` there)."""
        return None if self.kind == "multi" else self.default

    def parse(self, raw: Any, where: str) -> Any:
        """``raw`` as a typed value (``None`` stays ``None``). A bad value is a
        :class:`qeval.errors.UsageError` that starts with ``where`` (the flag, or the ini or
        ``[tool.qeval]`` key and its file) and says what to write instead."""
        if raw is None:
            return None
        try:
            return self.parser(raw, self)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None

    def check(self, raw: Any) -> str | None:
        """The problem with ``raw`` in words, or ``None`` if it parses (for a typer callback)."""
        if raw is None:
            return None
        try:
            self.parser(raw, self)
        except ValueError as exc:
            return str(exc)
        return None


# --- parsers ---------------------------------------------------------------------------------


def whole_number(raw: Any, spec: OptionSpec) -> int:
    return _at_least(spec, _converted(int, raw, "a whole number"), "")


def seconds(raw: Any, spec: OptionSpec) -> float:
    return _at_least(spec, _converted(float, raw, "a number of seconds"), " seconds")


def _converted(convert: Callable[[Any], Any], raw: Any, what: str) -> Any:
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected {what}, got {raw!r}.") from None


def _at_least(spec: OptionSpec, value: Any, unit: str) -> Any:
    if spec.minimum is not None and not value >= spec.minimum:
        raise ValueError(f"must be at least {spec.minimum}{unit}, got {value}.")
    return value


def text(raw: Any, spec: OptionSpec) -> str:
    return str(raw).strip()


def entries(raw: Any, spec: OptionSpec) -> tuple[str, ...]:
    """A repeatable option: one string or a list of them, blanks dropped."""
    items = [raw] if isinstance(raw, str) else list(raw)
    return tuple(str(i).strip() for i in items if str(i).strip())


def names(raw: Any, spec: OptionSpec) -> tuple[str, ...]:
    """``"bf16, int8"`` or ``["bf16", "int8"]`` → ``("bf16", "int8")``; at least one."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    chosen = tuple(str(i).strip() for i in items if str(i).strip())
    if not chosen:
        raise ValueError("give at least one name, e.g. bf16,int8.")
    return chosen


def switch(raw: Any, spec: OptionSpec) -> bool:
    """A flag: ``True`` on the command line, ``true``/``1``/``yes``/``on`` in an ini file, a TOML bool."""
    if isinstance(raw, str):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return bool(raw)


def _one_of(raw: Any, what: str, choices: tuple[str, ...], joined: str) -> str:
    """``raw`` stripped, when it is one of ``choices``; else a ValueError listing them (``joined``)."""
    value = str(raw).strip()
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; use {joined}.")
    return value


def device(raw: Any, spec: OptionSpec) -> str:
    return _one_of(raw, "device", DEVICES, ", ".join(DEVICES))


DEVICES = ("auto", "cpu", "cuda")

EXECUTORS = ("local", "ray")


def executor(raw: Any, spec: OptionSpec) -> str:
    return _one_of(raw, "executor", EXECUTORS, " or ".join(EXECUTORS))


RAY_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


def parse_ray_resources(items: Any) -> dict[str | None, dict[str, float]]:
    """``("num_cpus=2", "int4:num_gpus=1,memory=8e9")`` → ``{None: {"num_cpus": 2.0}, "int4": {...}}``
    (``None``: every target); a ``ValueError`` saying what to write instead."""
    out: dict[str | None, dict[str, float]] = {}
    for item in items:
        head, sep, rest = str(item).partition(":")
        target, body = (head.strip() or None, rest) if sep and "=" not in head else (None, str(item))
        asked = out.setdefault(target, {})
        for part in body.split(","):
            key, eq, value = part.strip().partition("=")
            key = key.strip().replace("-", "_")
            if not eq or key not in RAY_RESOURCE_KEYS:
                raise ValueError(f"{item!r}: expected [TARGET:]KEY=VALUE[,KEY=VALUE] with KEY one of "
                                 f"{', '.join(RAY_RESOURCE_KEYS)}, e.g. int4:num_gpus=1,memory=8e9.")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{item!r}: {key} must be a number, got {value.strip()!r}.") from None
            if not number >= 0:
                raise ValueError(f"{item!r}: {key} must be 0 or more, got {value.strip()}.")
            asked[key] = number
    return out


def ray_resources(raw: Any, spec: OptionSpec) -> tuple[str, ...]:
    items = entries(raw, spec)
    parse_ray_resources(items)
    return items

_SWEEP_AND_PLUGIN = frozenset({"sweep", "plugin"})
_ENDPOINT_CLIENTS = frozenset({"sweep", "perf", "plugin"})
_CALIBRATING = frozenset({"sweep", "quantize", "plugin"})

# --- the shared options ----------------------------------------------------------------------

TARGET = OptionSpec(
    "target", "multi", (),
    "NAME=SPEC, repeatable: MODEL@PRECISION (smollm2-135m@int4), openai:URL[#MODEL] "
    "(openai:http://127.0.0.1:8000/v1), or a server qeval starts and stops: vllm:MODEL@PRECISION "
    "(vllm:smollm2-135m@gptq-int4) or llamacpp:MODEL@QTYPE (llamacpp:smollm2-135m@Q8_0). Replaces {model} and "
    "{precisions}; reports and SLOs call the target NAME.",
    entries, _SWEEP_AND_PLUGIN, metavar="NAME=SPEC",
)
API_KEY_ENV = OptionSpec(
    "api-key-env", "multi", (),
    "TARGET=VAR, repeatable: read that endpoint's API key from environment variable VAR (never written anywhere).",
    entries, _ENDPOINT_CLIENTS, metavar="TARGET=VAR",
)
TARGET_REVISION = OptionSpec(
    "target-revision", "multi", (),
    "TARGET=REV, repeatable: what the endpoint serves (model revision, image tag), recorded with its results; "
    "the pytest plugin reuses an endpoint's cached cells only when it has one.",
    entries, _SWEEP_AND_PLUGIN, metavar="TARGET=REV",
)
CONCURRENCY = OptionSpec(
    "concurrency", "int", 8, "Endpoint targets: requests in flight at once in the accuracy pass.",
    whole_number, _SWEEP_AND_PLUGIN, minimum=1,
)
REQUEST_TIMEOUT = OptionSpec(
    "request-timeout", "float", 120.0, "Endpoint targets: seconds of silence before a request is a timeout.",
    seconds, _ENDPOINT_CLIENTS, minimum=0.1, metavar="SECONDS",
)
LIMIT = OptionSpec(
    "limit", "int", None,
    "N cases of each suite, evenly spaced through its cases file, the same N every run (default: all).",
    whole_number, _SWEEP_AND_PLUGIN, minimum=1, metavar="N",
)
LATENCY_SAMPLES = OptionSpec(
    "latency-samples", "int", 8,
    "Timed batch-1 requests per cell, cycling through the cases (0 = no timing; a p95 needs >= 72 to be bounded).",
    whole_number, _SWEEP_AND_PLUGIN, minimum=0, metavar="K",
)
WARMUP = OptionSpec(
    "warmup", "int", 2, "Untimed warm-up requests before each timed pass.",
    whole_number, _SWEEP_AND_PLUGIN, minimum=0, metavar="W",
)
BATCH_SIZE = OptionSpec(
    "batch-size", "int", None, "Accuracy-pass batch size (default: each suite's).",
    whole_number, _SWEEP_AND_PLUGIN, minimum=1, metavar="B",
)
DEVICE = OptionSpec(
    "device", "str", "auto", "auto (CUDA when available), cpu or cuda.",
    device, frozenset({"sweep", "perf", "quantize", "plugin"}),
)
CALIBRATION = OptionSpec(
    "calibration", "str", None,
    "Calibration set for calibrated precisions (GPTQ, static int8): a name under calibration/ (generic, medical, "
    "code, arithmetic) or a .jsonl path. `qeval sweep` takes several, comma-separated: one cell each, compared "
    "pairwise on the same cases.",
    text, _CALIBRATING, metavar="NAME|PATH",
)
CALIBRATION_SAMPLES = OptionSpec(
    "calibration-samples", "int", 128, "Calibration texts to sample.",
    whole_number, _CALIBRATING, minimum=1, metavar="N",
)
CALIBRATION_SEED = OptionSpec(
    "calibration-seed", "int", 0, "Seed of the calibration sample (recorded, and part of the cell cache key).",
    whole_number, _CALIBRATING, metavar="S",
)
CALIBRATION_SEEDS = OptionSpec(
    "calibration-seeds", "int", 1,
    "Quantize each calibrated precision K times, from samples drawn with seeds {calibration-seed} to "
    "{calibration-seed}+K-1: one cell each (labelled like gptq-int4@generic/s1), so the report shows the spread "
    "calibration alone causes.",
    whole_number, _SWEEP_AND_PLUGIN, minimum=1, metavar="K",
)

ENGINE_ARG = OptionSpec(
    "engine-arg", "multi", (),
    "[TARGET:]KEY[=VALUE], repeatable: passed to the servers qeval starts (vllm:, llamacpp:) as --KEY VALUE, "
    "e.g. max-model-len=2048 or enforce-eager; with TARGET: only to that target's server.",
    entries, _ENDPOINT_CLIENTS, metavar="[TARGET:]KEY[=VALUE]",
)
VLLM = OptionSpec(
    "vllm", "str", None,
    "The vLLM to start for vllm: targets: a virtualenv folder, its python or its vllm script (default: "
    "$QEVAL_VLLM, then vllm on PATH, then ./.venv-vllm).",
    text, _ENDPOINT_CLIENTS, metavar="PATH",
)
LLAMACPP = OptionSpec(
    "llamacpp", "str", None,
    "The llama-cpp-python[server] to start for llamacpp: targets: a virtualenv folder or its python (default: "
    "$QEVAL_LLAMACPP, then this Python, then ./.venv-llamacpp).",
    text, _ENDPOINT_CLIENTS, metavar="PATH",
)

NO_LATENCY_PAIRING = OptionSpec(
    "no-latency-pairing", "flag", False,
    "Time each target on its own instead of alternating its timed requests with the first target's (ABBA). "
    "Pairing keeps latency ratios against the first target true on a busy machine; it doubles the timed requests.",
    switch, _SWEEP_AND_PLUGIN,
)

EXECUTOR = OptionSpec(
    "executor", "str", "local",
    "Where each target's model load and suites run: local (this process, one target after another) or ray "
    "(one Ray task per target, results journaled as they come back; pip install 'qeval[ray]', see docs/ray.md).",
    executor, _SWEEP_AND_PLUGIN, metavar="local|ray",
)
RAY_ADDRESS = OptionSpec(
    "ray-address", "str", "auto",
    "With {executor} ray: the cluster. auto: the one this machine runs (or RAY_ADDRESS), else a local Ray "
    "started for the run and shut down after it; local: always a new local Ray; or ray://HEAD:10001, HEAD:6379.",
    text, _SWEEP_AND_PLUGIN, metavar="ADDRESS",
)
RAY_RESOURCES = OptionSpec(
    "ray-resources", "multi", (),
    "[TARGET:]KEY=VALUE[,KEY=VALUE], repeatable: what each Ray task asks for (num_cpus, num_gpus, memory in "
    "bytes); default num_cpus=1, plus num_gpus=1 for a CUDA target. num_cpus also sets the task's torch threads.",
    ray_resources, _SWEEP_AND_PLUGIN, metavar="[TARGET:]KEY=VALUE",
)

SHARED_OPTIONS: tuple[OptionSpec, ...] = (
    TARGET, API_KEY_ENV, TARGET_REVISION, CONCURRENCY, REQUEST_TIMEOUT, LIMIT, LATENCY_SAMPLES, WARMUP,
    BATCH_SIZE, DEVICE, CALIBRATION, CALIBRATION_SAMPLES, CALIBRATION_SEED, CALIBRATION_SEEDS, NO_LATENCY_PAIRING,
    ENGINE_ARG, VLLM, LLAMACPP, EXECUTOR, RAY_ADDRESS, RAY_RESOURCES,
)
"""Every option both the ``qeval`` command line and the pytest plugin offer."""


def shared_option(name: str) -> OptionSpec:
    """The shared option called ``name`` (``calibration-seeds`` or ``calibration_seeds``)."""
    for spec in SHARED_OPTIONS:
        if name in (spec.name, spec.key):
            return spec
    raise KeyError(name)


__all__ = [
    "API_KEY_ENV", "BATCH_SIZE", "CALIBRATION", "CALIBRATION_SAMPLES", "CALIBRATION_SEED", "CALIBRATION_SEEDS",
    "CONCURRENCY", "DEVICE", "DEVICES", "ENGINE_ARG", "EXECUTOR", "EXECUTORS", "RAY_ADDRESS", "RAY_RESOURCES",
    "executor", "parse_ray_resources", "ray_resources", "LLAMACPP", "VLLM", "LATENCY_SAMPLES", "LIMIT", "REQUEST_TIMEOUT", "SHARED_OPTIONS", "TARGET",
    "TARGET_REVISION", "WARMUP", "Kind", "OptionSpec", "Surface", "device", "entries", "names", "seconds",
    "shared_option", "switch", "text", "whole_number",
]
