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

from qeval.gates import SLO, SloError, parse_slo

ENABLE = "--qeval"
INCONCLUSIVE_POLICIES = ("fail", "skip", "pass")


@dataclass(frozen=True)
class _Option:
    name: str
    """Command-line flag without ``--qeval-`` (also the ini key ``qeval_<name>`` and
    the ``[tool.qeval]`` key ``<name>``, with dashes as underscores)."""
    help: str
    default: Any = None
    kind: str = "str"  # str | int | float | list | flag | slos | multi (repeatable, kept as given)


OPTIONS: tuple[_Option, ...] = (
    _Option("model", "model: built-in alias (smollm2-135m), local HF folder, `fake`, or module:attr", "smollm2-135m"),
    _Option("precisions", "comma-separated precisions to gate, e.g. bf16,int8,int4", ("bf16",), "list"),
    _Option("device", "auto (CUDA when available), cpu or cuda", "auto"),
    _Option("limit", "evaluate N cases of each suite, evenly spaced (default: all)", None, "int"),
    _Option("slo", "SLO expression, repeatable; replaces the suites' own SLOs. Prefix SUITE: to scope "
            "it, e.g. 'medical: f1 >= 0.8'", (), "slos"),
    _Option("baseline", "stored run to compare against (record file or run folder)"),
    _Option("save-baseline", "write this run's record (cases included) to PATH"),
    _Option("report", "folder for reports (a run folder is made inside)", "reports"),
    _Option("inconclusive", "what an inconclusive verdict does: fail, skip or pass", "fail"),
    _Option("allow-env-mismatch", "compare latency against a baseline from other hardware/libraries", False, "flag"),
    _Option("latency-samples", "timed batch-1 requests per cell (a p95 needs >= 72 to be bounded)", 8, "int"),
    _Option("warmup", "untimed warm-up requests before each timed pass", 2, "int"),
    _Option("batch-size", "accuracy-pass batch size (default: each suite's)", None, "int"),
    _Option("no-cache", "re-evaluate every cell instead of reusing cached results", False, "flag"),
    _Option("calibration", "calibration set for GPTQ precisions: a name under calibration/ or a .jsonl path"),
    _Option("calibration-samples", "calibration texts to sample", 128, "int"),
    _Option("calibration-seed", "seed of the calibration sample", 0, "int"),
    _Option("target", "NAME=SPEC, repeatable: MODEL@PRECISION or openai:URL[#MODEL]; replaces "
            "--qeval-model/--qeval-precisions, and SLOs refer to targets by NAME", (), "multi"),
    _Option("api-key-env", "TARGET=VAR, repeatable: read that endpoint's API key from environment variable VAR", (), "multi"),
    _Option("target-revision", "TARGET=REV, repeatable: what the endpoint serves; only with one may its cells be "
            "reused from the cache", (), "multi"),
    _Option("concurrency", "endpoint targets: requests in flight at once in the accuracy pass", 8, "int"),
    _Option("request-timeout", "endpoint targets: seconds of silence before a request is a timeout", 120.0, "float"),
)


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
    target: tuple[str, ...] = ()
    api_key_env: tuple[str, ...] = ()
    target_revision: tuple[str, ...] = ()
    concurrency: int = 8
    request_timeout: float = 120.0
    targets: tuple[Any, ...] = ()
    """The run's targets (:class:`qeval.targets.TargetSpec`), one per name in ``precisions``."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("qeval", "qeval: accuracy and latency SLOs per precision")
    group.addoption(ENABLE, action="store_true", default=False,
                    help="collect suite folders (with suite.yaml) as SLO items and evaluate them")
    for opt in OPTIONS:
        flag = f"--qeval-{opt.name}"
        if opt.kind == "flag":
            group.addoption(flag, action="store_true", default=None, help=opt.help)
        elif opt.kind == "slos":
            group.addoption(flag, action="append", default=None, metavar="EXPR", help=opt.help)
        elif opt.kind == "multi":
            group.addoption(flag, action="append", default=None, metavar="NAME=VALUE", help=opt.help)
        else:
            group.addoption(flag, default=None, metavar=opt.name.split("-")[-1].upper(), help=opt.help)
        ini_types: dict[str, Literal["bool", "linelist", "string"]] = {"flag": "bool", "slos": "linelist", "multi": "linelist"}
        ini_type = ini_types.get(opt.kind, "string")
        parser.addini(_ini_name(opt), f"qeval: {opt.help}", type=ini_type, default=None)


def _ini_name(opt: _Option) -> str:
    return "qeval_" + opt.name.replace("-", "_")


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
    known = {o.name.replace("-", "_") for o in OPTIONS} | {"slos"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise pytest.UsageError(
            f"{path}: unknown key(s) in [tool.qeval]: {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
        )
    return table, str(path)


def _raw(config: pytest.Config, opt: _Option, table: dict[str, Any], where_toml: str) -> tuple[Any, str]:
    """The first value set: command line, then pytest ini, then [tool.qeval]; with where it came from."""
    value = config.getoption(f"--qeval-{opt.name}")
    if value is not None:
        return value, f"--qeval-{opt.name}"
    ini = config.getini(_ini_name(opt))
    if ini not in (None, [], ""):
        return ini, f"ini option {_ini_name(opt)}"
    key = opt.name.replace("-", "_")
    for k in (key, "slos") if opt.kind == "slos" else (key,):
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
        values[opt.name.replace("-", "_")] = _convert(opt, raw, where)
        wheres[opt.name] = where
    _targets(values, wheres)
    _check(values)
    return Options(**values)


def _targets(values: dict[str, Any], wheres: dict[str, str]) -> None:
    """``--qeval-target NAME=SPEC`` (with its key and revision options) → ``targets``, and the
    target names become the run's ``precisions`` (the names every item, SLO and report uses)."""
    from qeval.errors import QevalError
    from qeval.targets import parse_assignments, parse_target, with_options

    entries = values["target"]
    values["targets"] = ()
    try:
        if not entries:
            for flag in ("api-key-env", "target-revision"):
                if values[flag.replace("-", "_")]:
                    raise pytest.UsageError(f"{wheres[flag]}: it names targets; give them with --qeval-target NAME=SPEC.")
            return
        for flag in ("model", "precisions"):
            if wheres[flag] != "default":
                raise pytest.UsageError(
                    f"{wheres[flag]} and {wheres['target']}: give either targets or a model with precisions, not both "
                    "(--qeval-model M --qeval-precisions a,b means --qeval-target a=M@a --qeval-target b=M@b)."
                )
        specs = [parse_target(e, wheres["target"]) for e in entries]
        targets = with_options(
            specs, parse_assignments(values["api_key_env"], "--qeval-api-key-env", "VAR"),
            parse_assignments(values["target_revision"], "--qeval-target-revision", "REV"), where=f"{wheres['target']}: ",
        )
    except QevalError as exc:
        raise pytest.UsageError(str(exc)) from None
    values["targets"] = targets
    values["precisions"] = tuple(t.name for t in targets)
    models = {t.model for t in targets if t.kind == "model"}
    if len(models) == 1:
        values["model"] = models.pop()


def _convert(opt: _Option, raw: Any, where: str) -> Any:
    if raw is None:
        return None
    if opt.kind == "flag":
        if isinstance(raw, str):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return bool(raw)
    if opt.kind == "multi":
        items = [raw] if isinstance(raw, str) else list(raw)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if opt.kind == "float":
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise pytest.UsageError(f"{where}: expected a number of seconds, got {raw!r}.") from None
        if not number > 0:
            raise pytest.UsageError(f"{where}: must be more than 0, got {raw!r}.")
        return number
    if opt.kind == "int":
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise pytest.UsageError(f"{where}: expected a whole number, got {raw!r}.") from None
        low = 0 if opt.name in ("latency-samples", "warmup", "calibration-seed") else 1
        if value < low:
            raise pytest.UsageError(f"{where}: must be at least {low}, got {value}.")
        return value
    if opt.kind == "list":
        names = raw.split(",") if isinstance(raw, str) else list(raw)
        chosen = tuple(str(i).strip() for i in names if str(i).strip())
        if not chosen:
            raise pytest.UsageError(f"{where}: give at least one name, e.g. bf16,int8.")
        return chosen
    if opt.kind == "slos":
        texts = [raw] if isinstance(raw, str) else list(raw)
        return tuple(parse_scoped_slo(str(t), where) for t in texts if str(t).strip())
    if opt.name in ("baseline", "save-baseline", "report"):
        return Path(str(raw)).expanduser()
    return str(raw).strip()


def parse_scoped_slo(text: str, where: str) -> ScopedSlo:
    """``"f1 >= 0.8"`` or ``"medical: f1 >= 0.8"`` (the SLO applies to suite ``medical`` only)."""
    suite, sep, expr = text.partition(":")
    if not sep:
        suite, expr = "", text
    try:
        slo = parse_slo(expr)
    except SloError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    return ScopedSlo(slo=slo, suite=suite.strip() or None, text=text.strip())


def _check(values: dict[str, Any]) -> None:
    from qeval.errors import QevalError
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
    if values["device"] not in ("auto", "cpu", "cuda"):
        raise pytest.UsageError(f"--qeval-device: unknown device {values['device']!r}; use auto, cpu or cuda.")
    if values["inconclusive"] not in INCONCLUSIVE_POLICIES:
        raise pytest.UsageError(
            f"--qeval-inconclusive: {values['inconclusive']!r} is not one of {', '.join(INCONCLUSIVE_POLICIES)}."
        )
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
    precisions = [t.precision for t in values["targets"] if t.kind == "model"] if values["targets"] else values["precisions"]
    needing = [p for p in precisions if p in CALIBRATED]
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
    report = values["report"]
    if report.exists() and not report.is_dir():
        raise pytest.UsageError(f"--qeval-report: {report} exists and is not a folder.")
    values["slos"] = values.pop("slo")
