"""What a target applied, as a typed record: the precision method and its settings, the
calibration it used, the checkpoint or recording it came from, or the endpoint it reached.

Each cell carries one (:attr:`qeval.results.CellResult.precision_config`). Reports read its
fields; nothing reads keys out of a dict. What only one method has (a kernel name, GPTQ's
``damp_percent``) goes into :attr:`AppliedPrecision.details`, which is shown, never read.

:meth:`AppliedPrecision.build` is how producers make one (known names become fields, the rest
details); :meth:`AppliedPrecision.from_json` reads both the nested form written since schema 2
and the flat dict of schema 1 results files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qeval._settings_record import CalibrationRecord


@dataclass(frozen=True)
class EndpointIdentity:
    """What an endpoint said about itself when the run started (``/models``, ``/version``, ``/props``,
    the ``server`` header): the fingerprint endpoint latencies are compared under."""

    base_url: str
    model: str
    """The served model id the requests named."""
    models_listed: tuple[str, ...] = ()
    max_model_len: int | None = None
    server_header: str | None = None
    version: Mapping[str, Any] | None = None
    """``GET {root}/version`` (vLLM), when it answers 200."""
    props: Mapping[str, Any] | None = None
    """``GET {root}/props`` (llama.cpp), strings cut to 2 KB (chat templates are huge)."""

    @classmethod
    def from_json(cls, data: Any) -> EndpointIdentity | None:
        """The record from its JSON form; ``None`` for an empty or partial one (schema 1 wrote ``{}``
        for in-process targets)."""
        if not isinstance(data, Mapping) or not {"base_url", "model"} <= set(data):
            return None
        values = _known(cls, data)
        values["models_listed"] = tuple(str(m) for m in values.get("models_listed") or ())
        return cls(**values)


@dataclass(frozen=True)
class EndpointUsed:
    """The endpoint a remote target reached, as it identified itself when the run started."""

    url: str
    served_model: str | None = None
    revision: str | None = None
    """What the user said the endpoint serves (``--target-revision``)."""
    api_key_env: str | None = None
    """The *name* of the environment variable the key came from; the key is written nowhere."""
    concurrency: int | None = None
    identity: EndpointIdentity | None = None
    client_host: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointUsed:
        values = _known(cls, data)
        values["identity"] = EndpointIdentity.from_json(values.get("identity"))
        return cls(**values)


@dataclass(frozen=True)
class EngineUsed:
    """The server qeval started for a managed target (``vllm:MODEL@PRECISION``), and what it served."""

    engine: str
    """``vllm`` or ``llamacpp``."""
    version: str | None
    command: tuple[str, ...]
    """The exact command line (no secret is ever on it)."""
    checkpoint: str
    """The folder or file the engine loaded."""
    checkpoint_sha256: str
    weights_bytes: int
    quant_config: Mapping[str, Any] = field(default_factory=dict)
    prepared_by: str = "as-is"
    """How the checkpoint was made (``as-is``, ``qeval quantize (gptqmodel)``, ``llm-compressor ...``)."""
    checkpoint_cache: str | None = None
    """``hit``: an earlier run's checkpoint was served; ``miss``: made for this run."""
    notes: tuple[str, ...] = ()
    log: str | None = None
    """The server's log (``RUN_DIR/servers/NAME.log``)."""
    spawn_to_healthy_s: float | None = None
    first_token_s: float | None = None
    """Spawn to the first token of a first request: the target's cold start."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineUsed:
        values = _known(cls, data)
        for name in ("command", "notes"):
            values[name] = tuple(str(v) for v in values.get(name) or ())
        values["quant_config"] = dict(values.get("quant_config") or {})
        return cls(**values)


@dataclass(frozen=True)
class ReplayUsed:
    """The recording a replayed target served completions from."""

    path: str
    sha256: str
    recorded_precision: str


@dataclass(frozen=True)
class AppliedPrecision:
    """Exactly what one target applied (library, scheme, group size, compute dtype, ...)."""

    precision: str | None = None
    """The precision method's name (``int4``, ``gptq-int4``, ``as-is``), or the fake/replay label."""
    description: str | None = None
    library: str | None = None
    library_version: str | None = None
    scheme: Mapping[str, Any] = field(default_factory=dict)
    """The method's configuration as applied (bits, symmetric, granularity ...)."""
    compute_dtype: str | None = None
    device: str | None = None
    group_size: int | None = None
    layers_quantized: int | None = None
    layers_skipped: tuple[str, ...] = ()
    cast_from: str | None = None
    """The dtype the weights were cast from before quantizing, when they were."""
    quantize_seconds: float | None = None
    quantize_peak_bytes: int | None = None
    """Peak memory while quantizing (calibration included): often above the serving peak."""
    quantize_peak_kind: str | None = None
    """``cpu_rss`` or ``cuda_allocated``."""
    calibration: CalibrationRecord | None = None
    cache: str | None = None
    """``hit`` (a stored quantized checkpoint was loaded) or ``miss`` (quantized now)."""
    checkpoint: str | None = None
    """The quantized checkpoint folder loaded."""
    endpoint: EndpointUsed | None = None
    """Set for a remote target (then nothing above was applied by qeval)."""
    engine: EngineUsed | None = None
    """Set for a managed target: the server qeval started (its ``endpoint`` is that server)."""
    replay: ReplayUsed | None = None
    traceback: str | None = None
    """The last frames of an unexpected failure (a ``failed`` cell)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific facts (kernel, ``damp_percent`` ...): shown in reports, never read."""

    @property
    def remote(self) -> bool:
        return self.endpoint is not None

    @classmethod
    def build(cls, **values: Any) -> AppliedPrecision:
        """Known names become typed fields (nested records from their JSON form); the rest go to ``details``."""
        return cls.from_json(values)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AppliedPrecision:
        """The record from its JSON form: schema 2's nested form, or schema 1's flat dict
        (endpoint fields at the top level under ``kind: openai``, ``replay`` as a path)."""
        data = dict(data or {})
        details = dict(data.pop("details", None) or {})
        if data.pop("kind", None) == "openai":  # schema 1: the endpoint's fields at the top level
            data["endpoint"] = {k: data.pop(k) for k in _names(EndpointUsed) if k in data}
        if isinstance(data.get("replay"), str):  # schema 1: path, sha256 and precision side by side
            data["replay"] = {"path": data["replay"], "sha256": data.pop("replay_sha256", ""),
                              "recorded_precision": data.pop("recorded_precision", "")}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in _names(cls):
                details[name] = value
            elif name == "calibration":
                if isinstance(value, Mapping) and _names(CalibrationRecord) <= set(value):
                    values[name] = CalibrationRecord(**_known(CalibrationRecord, value))
                elif value is not None:  # not a whole record: shown, not read
                    details[name] = value
            elif name == "endpoint":
                values[name] = EndpointUsed.from_json(value) if isinstance(value, Mapping) else None
            elif name == "engine":
                values[name] = EngineUsed.from_json(value) if isinstance(value, Mapping) else None
            elif name == "replay":
                values[name] = ReplayUsed(**_known(ReplayUsed, value)) if isinstance(value, Mapping) else None
            elif name == "layers_skipped":
                values[name] = tuple(str(v) for v in value or ())
            elif name == "scheme":
                if isinstance(value, Mapping):
                    values[name] = dict(value)
                elif value is not None:  # a bare name (hand-written or older files)
                    values[name] = {"name": value}
            else:
                values[name] = value
        return cls(**values, details=details)


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in _names(cls)}
