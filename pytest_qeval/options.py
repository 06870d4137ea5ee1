"""The plugin's options: declared once, read from the command line, the pytest ini or
``[tool.qeval]`` in pyproject.toml (in that order of precedence), validated up front.

Importing this module imports neither torch nor the heavy parts of qeval.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from qeval import options as shared
from qeval.errors import QevalError
from qeval.gates import SLO, parse_slo
from qeval.options import OptionSpec, names, switch, text

ENABLE = "--qeval"
PREFIX = "--qeval-"
INCONCLUSIVE_POLICIES = ("fail", "skip", "pass")


def _path(raw: Any, spec: OptionSpec) -> Path:
    return Path(str(raw)).expanduser()


def _policy(raw: Any, spec: OptionSpec) -> str:
    value = str(raw).strip()
    if value not in INCONCLUSIVE_POLICIES:
        raise ValueError(f"{value!r} is not one of {', '.join(INCONCLUSIVE_POLICIES)}.")
    return value


def _slos(raw: Any, spec: OptionSpec) -> tuple[ScopedSlo, ...]:
    texts = [raw] if isinstance(raw, str) else list(raw)
    return tuple(_scoped_slo(str(t)) for t in texts if str(t).strip())  # unstripped: errors quote it as given


_PLUGIN = frozenset({"plugin"})

# The plugin's own options; the ones it shares with the command line come from qeval.options.
MODEL = OptionSpec("model", "str", "smollm2-135m",
                   "Model: built-in alias (smollm2-135m), local HF folder, `fake`, or module:attr.", text, _PLUGIN,
                   metavar="SPEC")
PRECISIONS = OptionSpec("precisions", "list", ("bf16",), "Comma-separated precisions to gate, e.g. bf16,int8,int4.",
                        names, _PLUGIN, metavar="LIST")
SLOS = OptionSpec("slo", "multi", (), "SLO expression, repeatable; replaces the suites' own SLOs. Prefix SUITE: to "
                  "scope it, e.g. 'medical: f1 >= 0.8'.", _slos, _PLUGIN, metavar="EXPR")
BASELINE = OptionSpec("baseline", "path", None, "Stored run to compare against (record file or run folder).", _path,
                      _PLUGIN, metavar="PATH")
SAVE_BASELINE = OptionSpec("save-baseline", "path", None, "Write this run's record (cases included) to PATH.", _path,
                           _PLUGIN, metavar="PATH")
REPORT = OptionSpec("report", "path", "reports", "Folder for reports (a run folder is made inside).", _path, _PLUGIN,
                    metavar="DIR")
INCONCLUSIVE = OptionSpec("inconclusive", "str", "fail", "What an inconclusive verdict does: fail, skip or pass.",
                          _policy, _PLUGIN, metavar="POLICY")
ALLOW_ENV_MISMATCH = OptionSpec("allow-env-mismatch", "flag", False,
                                "Compare latency against a baseline from other hardware/libraries.", switch, _PLUGIN)
NO_CACHE = OptionSpec("no-cache", "flag", False, "Re-evaluate every cell instead of reusing cached results.", switch,
                      _PLUGIN)

OPTIONS: tuple[OptionSpec, ...] = (
    MODEL, PRECISIONS, shared.DEVICE, shared.LIMIT, SLOS, BASELINE, SAVE_BASELINE, REPORT, INCONCLUSIVE,
    ALLOW_ENV_MISMATCH, shared.LATENCY_SAMPLES, shared.WARMUP, shared.BATCH_SIZE, NO_CACHE, shared.CALIBRATION,
    shared.CALIBRATION_SAMPLES, shared.CALIBRATION_SEED, shared.CALIBRATION_SEEDS, shared.TARGET, shared.API_KEY_ENV,
    shared.TARGET_REVISION, shared.CONCURRENCY, shared.REQUEST_TIMEOUT, shared.NO_LATENCY_PAIRING,
    shared.ENGINE_ARG, shared.VLLM, shared.LLAMACPP, shared.EXECUTOR, shared.RAY_ADDRESS, shared.RAY_RESOURCES,
)
"""Every option of the plugin, in ``--help`` order."""


@dataclass(frozen=True)
class ScopedSlo:
    """An SLO from the command line or configuration, optionally for one suite only."""

    slo: SLO
    suite: str | None
    text: str


@dataclass(frozen=True)
class Options:
    model: str
    precisions: tuple[str, ...]
    """The run's target names (with several calibration seeds, one per seed of a calibrated precision)."""
    device: str
    limit: int | None
    slos: tuple[ScopedSlo, ...]
    baseline: Path | None
    save_baseline: Path | None
    report: Path
    inconclusive: str
    allow_env_mismatch: bool
    latency_samples: int
    warmup: int
    batch_size: int | None
    no_cache: bool
    calibration: str | None
    calibration_samples: int
    calibration_seed: int
    calibration_seeds: int = 1
    target: tuple[str, ...] = ()
    api_key_env: tuple[str, ...] = ()
    target_revision: tuple[str, ...] = ()
    concurrency: int = 8
    request_timeout: float = 120.0
    no_latency_pairing: bool = False
    engine_arg: tuple[str, ...] = ()
    vllm: str | None = None
    llamacpp: str | None = None
    executor: str = "local"
    ray_address: str = "auto"
    ray_resources: tuple[str, ...] = ()
    targets: tuple[Any, ...] = ()
    """The run's targets (:class:`qeval.targets.TargetSpec`), one per name in ``precisions``
    before calibration seeds are expanded."""
    variants: tuple[Any, ...] = ()
    """With ``--qeval-calibration-seeds`` K > 1: one :class:`qeval.variants.Variant` per name in
    ``precisions`` (a calibrated one per seed, labelled like ``gptq-int4@generic/s1``)."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("qeval", "qeval: accuracy and latency SLOs per precision")
    group.addoption(ENABLE, action="store_true", default=False,
                    help="collect suite folders (with suite.yaml) as SLO items and evaluate them")
    for opt in OPTIONS:
        flag, help = PREFIX + opt.name, opt.help_for(PREFIX)
        # default None on every surface: read_options tells "not given" from a given default
        if opt.kind == "flag":
            group.addoption(flag, action="store_true", default=None, help=help)
        elif opt.kind == "multi":
            group.addoption(flag, action="append", default=None, metavar=opt.metavar or "NAME=VALUE", help=help)
        else:
            group.addoption(flag, default=None, metavar=opt.metavar or opt.name.split("-")[-1].upper(), help=help)
        ini_types: dict[str, Literal["bool", "linelist", "string"]] = {"flag": "bool", "multi": "linelist"}
        parser.addini(_ini_name(opt), f"qeval: {help}", type=ini_types.get(opt.kind, "string"), default=None)


def _ini_name(opt: OptionSpec) -> str:
    return "qeval_" + opt.key


def _pyproject_table(config: pytest.Config) -> tuple[dict[str, Any], str]:
    path = Path(config.rootpath) / "pyproject.toml"
    if not path.is_file():
        return {}, str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"{path}: cannot read [tool.qeval] ({exc}).") from exc
    table = data.get("tool", {}).get("qeval", {})
    if not isinstance(table, dict):
        raise pytest.UsageError(f"{path}: [tool.qeval] must be a table.")
    known = {o.key for o in OPTIONS} | {"slos"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise pytest.UsageError(
            f"{path}: unknown key(s) in [tool.qeval]: {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
        )
    return table, str(path)


def _raw(config: pytest.Config, opt: OptionSpec, table: dict[str, Any], where_toml: str) -> tuple[Any, str]:
    """The first value set: command line, then pytest ini, then [tool.qeval]; with where it came from."""
    value = config.getoption(PREFIX + opt.name)
    if value is not None:
        return value, PREFIX + opt.name
    ini = config.getini(_ini_name(opt))
    if ini not in (None, [], ""):
        return ini, f"ini option {_ini_name(opt)}"
    for k in (opt.key, "slos") if opt is SLOS else (opt.key,):
        if k in table:
            return table[k], f"[tool.qeval] {k} in {where_toml}"
    return opt.default, "default"


def read_options(config: pytest.Config) -> Options:
    """Every option resolved and checked; a bad value is a :class:`pytest.UsageError`
    saying which option (and where it was set), what is wrong and what to write."""
    table, where_toml = _pyproject_table(config)
    values: dict[str, Any] = {}
    wheres: dict[str, str] = {}
    for opt in OPTIONS:
        raw, where = _raw(config, opt, table, where_toml)
        try:
            values[opt.key] = opt.parse(raw, where)
        except QevalError as exc:
            raise pytest.UsageError(str(exc)) from None
        wheres[opt.name] = where
    _targets(values, wheres)
    _check(values)
    _variants(values)
    return Options(**values)


def _targets(values: dict[str, Any], wheres: dict[str, str]) -> None:
    """``--qeval-target NAME=SPEC`` (with its key and revision options) → ``targets``, and the
    target names become the run's ``precisions`` (the names every item, SLO and report uses)."""
    from qeval.targets import parse_assignments, parse_target, with_options

    given = values["target"]
    values["targets"] = ()
    try:
        if not given:
            for flag in ("api-key-env", "target-revision", "engine-arg"):
                if values[flag.replace("-", "_")]:
                    raise pytest.UsageError(f"{wheres[flag]}: it names targets; give them with --qeval-target NAME=SPEC.")
            return
        for flag in ("model", "precisions"):
            if wheres[flag] != "default":
                raise pytest.UsageError(
                    f"{wheres[flag]} and {wheres['target']}: give either targets or a model with precisions, not both "
                    "(--qeval-model M --qeval-precisions a,b means --qeval-target a=M@a --qeval-target b=M@b)."
                )
        specs = [parse_target(e, wheres["target"]) for e in given]
        targets = with_options(
            specs, parse_assignments(values["api_key_env"], "--qeval-api-key-env", "VAR"),
            parse_assignments(values["target_revision"], "--qeval-target-revision", "REV"), where=f"{wheres['target']}: ",
            engine_args=values["engine_arg"],
        )
    except QevalError as exc:
        raise pytest.UsageError(str(exc)) from None
    values["targets"] = targets
    values["precisions"] = tuple(t.name for t in targets)
    models = {t.model for t in targets if t.kind == "model"}
    if len(models) == 1:
        values["model"] = models.pop()


def _scoped_slo(text: str) -> ScopedSlo:
    """``"f1 >= 0.8"`` or ``"medical: f1 >= 0.8"`` (the SLO applies to suite ``medical`` only);
    a :class:`qeval.gates.SloError` (a ``ValueError``) when it does not parse."""
    suite, sep, expr = text.partition(":")
    if not sep:
        suite, expr = "", text
    return ScopedSlo(slo=parse_slo(expr), suite=suite.strip() or None, text=text.strip())


def parse_scoped_slo(text: str, where: str) -> ScopedSlo:
    """:func:`_scoped_slo`, with a bad SLO as a :class:`pytest.UsageError` naming ``where``."""
    try:
        return _scoped_slo(text)
    except QevalError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _check(values: dict[str, Any]) -> None:
    from qeval.models import check_model_spec
    from qeval.quantize import CALIBRATED, check_precision_name  # names only: neither torch nor a backend is imported

    for name in values["precisions"] if not values["targets"] else ():
        try:
            check_precision_name(name)
        except QevalError as exc:
            raise pytest.UsageError(f"--qeval-precisions: {exc}") from None
    for model in {t.model for t in values["targets"] if t.kind == "model"} or {values["model"]}:
        try:
            check_model_spec(model)
        except QevalError as exc:
            raise pytest.UsageError(f"--qeval-model: {exc}") from None
    dupes = sorted({p for p in values["precisions"] if values["precisions"].count(p) > 1})
    if dupes:
        raise pytest.UsageError(f"--qeval-precisions: {', '.join(dupes)} given more than once.")
    baseline = values["baseline"]
    if baseline is not None and not baseline.exists():
        raise pytest.UsageError(
            f"--qeval-baseline: {baseline} does not exist. Save one first with --qeval-save-baseline PATH."
        )
    for scoped in values["slo"]:
        ref = scoped.slo.reference
        if ref == "baseline" and baseline is None:
            raise pytest.UsageError(f"--qeval-slo {scoped.text!r} compares against the baseline: pass --qeval-baseline PATH.")
        if ref not in (None, "baseline") and ref not in values["precisions"]:
            raise pytest.UsageError(
                f"--qeval-slo {scoped.text!r} compares against {ref}, which is not in --qeval-precisions (or --qeval-target) "
                f"({','.join(values['precisions'])}). Add it, e.g. --qeval-precisions {ref},{','.join(values['precisions'])}."
            )
    if values["targets"]:
        from qeval.targets import precision_of

        needing = [str(t.precision) for t in values["targets"] if (p := precision_of(t)) is not None and p.needs_calibration]
    else:
        needing = [p for p in values["precisions"] if p in CALIBRATED]
    if needing and not values["calibration"]:
        raise pytest.UsageError(
            f"--qeval-precisions: {', '.join(needing)} need(s) calibration text: pass --qeval-calibration NAME "
            "(generic, medical, code, arithmetic) or a calibration.jsonl path."
        )
    if values["calibration"] and "," in str(values["calibration"]) and not Path(values["calibration"]).exists():
        raise pytest.UsageError(
            f"--qeval-calibration {values['calibration']!r}: a test session calibrates with one set. To compare "
            "sets, run `qeval sweep --calibration a,b` (one cell per set, compared pairwise)."
        )
    if values["calibration"]:
        from qeval.calibration import resolve_calibration

        try:
            resolve_calibration(values["calibration"])
        except QevalError as exc:
            raise pytest.UsageError(f"--qeval-calibration: {exc}") from None
    if values["executor"] == "ray":
        from qeval.executors import ray_missing
        from qeval.executors._ray import INSTALL

        why = ray_missing()
        if why is not None:
            raise pytest.UsageError(f"--qeval-executor ray: {why}. Install it with: {INSTALL}; or leave out "
                                    "--qeval-executor to evaluate in this process.")
    report = values["report"]
    if report.exists() and not report.is_dir():
        raise pytest.UsageError(f"--qeval-report: {report} exists and is not a folder.")
    values["slos"] = values.pop("slo")


def _variants(values: dict[str, Any]) -> None:
    """``--qeval-calibration-seeds K`` > 1: each calibrated target is evaluated once per seed, under
    a name of its own (``gptq-int4@generic/s0`` ...), as ``qeval sweep`` labels its variants;
    those names become the run's ``precisions`` (nodes, items, reports)."""
    values["variants"] = ()
    if values["calibration_seeds"] == 1 or not values["calibration"]:
        return
    from qeval.quantize import get_precision
    from qeval.targets import precision_of
    from qeval.variants import plan

    targets = values["targets"]
    if targets:
        precisions = [precision_of(t) for t in targets]
    else:
        precisions = [get_precision(p) for p in values["precisions"]]
    try:
        variants = plan(precisions, values["calibration"], values["calibration_seed"], values["calibration_seeds"],
                        targets)
    except QevalError as exc:
        raise pytest.UsageError(f"--qeval-calibration-seeds: {exc}") from None
    split = {base: [v.label for v in variants if _base(v) == base] for base in {_base(v) for v in variants}}
    split = {base: labels for base, labels in split.items() if labels != [base]}
    if not split:
        return  # no calibrated target: every target runs once
    for scoped in values["slos"]:
        labels = split.get(str(scoped.slo.reference))
        if labels:
            raise pytest.UsageError(
                f"--qeval-slo {scoped.text!r} compares against {scoped.slo.reference}, which --qeval-calibration-seeds "
                f"{values['calibration_seeds']} evaluates once per seed ({', '.join(labels)}): compare against one "
                f"of those, or against an uncalibrated target."
            )
    values["variants"] = tuple(variants)
    values["precisions"] = tuple(v.label for v in variants)


def _base(variant: Any) -> str:
    return variant.target.name if variant.target is not None else variant.precision.name
