"""Suite folders: ``suite.yaml`` (how to prompt and score) + ``cases.jsonl`` (the data).

The cases may also be a HumanEval- or MBPP-format JSONL file, named by
``cases_file:`` in suite.yaml or given on its own as the suite (see
:mod:`qeval.suite_formats`). :func:`load_suite` validates everything up front,
so a bad suite fails at load time with one :class:`~qeval.errors.SuiteError`
naming file, line and key and saying how to fix it -- never halfway through a sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qeval._paths import is_dir as _is_dir
from qeval._paths import is_file as _is_file
from qeval.generation import GenerationSettings
from qeval.errors import SuiteError, UnknownNameError
from qeval.results import MetricSpec, SuiteScoring
from qeval.scorers import Scorer, get_scorer
from qeval.suite_formats import (
    AUTO,
    CASES_SUFFIXES,
    FORMATS,
    NATIVE,
    CaseFormat,
    decode_cases,
    default_yaml_text,
    detect_format,
    first_object,
    get_format,
    json_problem,
    read_cases_file,
    require_foreign_format,
    with_defaults,
)

SUITE_FILE = "suite.yaml"
CASES_FILE = "cases.jsonl"


# --- schema (pydantic, extra keys forbidden) ------------------------------------------------


class _Generation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max_new_tokens: int = Field(64, gt=0)
    stop: list[str] = Field(default_factory=list)
    batch_size: int = Field(8, gt=0)


class _ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class _SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    description: str = ""
    prompt_template: str
    chat_template: bool = True
    system_prompt: str | None = None
    generation: _Generation = Field(default_factory=_Generation)
    scorer: _ScorerSpec
    primary_metric: str = "accuracy"
    slos: list[str] = Field(default_factory=list)
    cases_file: str = CASES_FILE
    cases_format: Literal["auto", "native", "humaneval", "mbpp"] = AUTO


class _CaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: Any
    tags: dict[str, Any] = Field(default_factory=dict)


# --- public records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One evaluation case (a line of ``cases.jsonl``)."""

    id: str
    inputs: Mapping[str, Any]
    """Variables of the suite's ``prompt_template``."""
    expected: Any
    """What the scorer compares the completion with (scorer-specific shape)."""
    tags: Mapping[str, Any] = field(default_factory=dict)
    """Free-form labels, e.g. ``{"difficulty": "easy"}``; reports break results down by them."""


@dataclass(frozen=True)
class Suite:
    """A loaded, validated suite. Build with :func:`load_suite`."""

    name: str
    path: Path
    description: str
    prompt_template: str
    chat_template: bool
    """Wrap the rendered prompt in the tokenizer's chat template (as the user message)."""
    system_prompt: str | None
    generation: GenerationSettings
    scorer_name: str
    scorer_args: Mapping[str, Any]
    primary_metric: str
    """The metric the suite is judged on: ``accuracy`` or one of the scorer's aggregate metrics."""
    slos: tuple[str, ...]
    """Default SLO expressions such as ``"accuracy >= 0.3"`` (parsed by the gates)."""
    cases: tuple[Case, ...]
    content_hash: str
    """sha256 over the bytes of suite.yaml then the cases file, decompressed (unchanged by
    :meth:`limited`); for a bare HumanEval/MBPP file, the suite.yaml it stands for."""
    cases_format: str = NATIVE
    """``native``, ``humaneval`` or ``mbpp``: how the cases file was read."""
    _template: jinja2.Template | None = field(repr=False, compare=False, default=None)

    def render(self, case: Case) -> str:
        """The user-message text for ``case`` (jinja2, undefined variables are errors)."""
        assert self._template is not None, "load_suite compiles the prompt template of every suite it builds"
        return self._template.render(**case.inputs)

    def scorer(self) -> Scorer:
        """A fresh scorer built from the suite's ``scorer:`` block."""
        return get_scorer(self.scorer_name, dict(self.scorer_args))

    def scoring(self) -> SuiteScoring:
        """What every cell of this suite records about its metrics: the primary metric, each metric's
        declared spec (the scorer's, then ``error_rate``) and the suite's own SLOs."""
        from qeval.metric_specs import ACCURACY, ERROR_RATE_SPEC, pass_rate

        scorer = self.scorer()
        specs = tuple(getattr(scorer, "metric_specs", ()))
        declared = {s.name for s in specs}
        # a scorer registered from outside that declares only names: their meaning is unknown
        names = getattr(scorer, "metric_names", ())
        specs += tuple(MetricSpec(n, n, "unknown", "none") for n in names if n not in declared)
        if ACCURACY not in declared:
            specs = (pass_rate("share of cases that pass"), *specs)
        return SuiteScoring(self.scorer_name, self.primary_metric, (*specs, ERROR_RATE_SPEC), self.slos)

    def limited(self, n: int | None) -> Suite:
        """``n`` cases evenly spaced through the file, in file order, as a new suite.

        Evenly spaced rather than the first ``n``: suites are often written
        easy-to-hard, and a quick ``--limit 16`` run should keep the mix of
        difficulties, not just the easy head. Deterministic; ``None`` (or ``n`` at
        least the suite size) returns this suite.
        """
        if n is None or n >= len(self.cases):
            return self
        if n < 0:
            raise ValueError(f"limit must be >= 0, got {n}")
        total = len(self.cases)
        picked = [self.cases[(i * total) // n] for i in range(n)]
        return dataclasses.replace(self, cases=tuple(picked))


# --- loading ----------------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    """Load and validate the suite at ``path``: a suite folder, or a HumanEval/MBPP ``.jsonl`` file.

    A folder holds ``suite.yaml`` and its cases file (``cases.jsonl``, or the
    ``cases_file:`` it names, in the ``cases_format:`` it names or detects). A
    bare ``.jsonl``/``.jsonl.gz`` file in HumanEval or MBPP format becomes a suite
    named after the file with that format's defaults (:func:`default_suite_yaml`).

    Raises :class:`SuiteError` for missing files, YAML/JSON syntax errors,
    unknown, missing or mistyped keys, duplicate case ids, an empty suite, an
    unknown scorer or bad scorer args, and templates that use a variable some
    case lacks.
    """
    target = Path(path)
    if _is_file(target) and target.name == SUITE_FILE:
        target = target.parent
    if _is_file(target):
        return _load_cases_file(target)
    if not _is_dir(target):
        raise SuiteError(
            f"{target}: suite not found. Pass a folder containing {SUITE_FILE} and {CASES_FILE}, "
            "or a HumanEval/MBPP .jsonl file."
        )
    yaml_path = target / SUITE_FILE
    if not yaml_path.is_file():
        raise SuiteError(f"{yaml_path}: file not found. A suite folder needs both {SUITE_FILE} and {CASES_FILE}.")
    yaml_bytes = yaml_path.read_bytes()
    raw = _load_yaml(yaml_path, yaml_bytes)
    cases_name = _raw_choice(raw, "cases_file", CASES_FILE, yaml_path, yaml_bytes, None)
    cases_path = target / cases_name
    if not _is_file(cases_path):
        if "cases_file" in raw:
            raise SuiteError(f"{yaml_path}:{_yaml_line(yaml_bytes, ('cases_file',))}: key 'cases_file': {cases_path} not "
                             "found. Give the cases file's path relative to the suite folder (or an absolute path).")
        raise SuiteError(f"{cases_path}: file not found. A suite folder needs both {SUITE_FILE} and {CASES_FILE} "
                         "(or a `cases_file:` key naming its cases file).")
    cases_bytes = read_cases_file(cases_path)
    fmt = _raw_choice(raw, "cases_format", AUTO, yaml_path, yaml_bytes, (AUTO, *FORMATS))
    if fmt == AUTO:
        first = first_object(cases_path, cases_bytes, strict=False)
        fmt = (detect_format(first[1]) if first else None) or NATIVE
    if fmt != NATIVE:
        raw = with_defaults(raw, get_format(fmt).suite_defaults)
    return _build(target, yaml_path, yaml_bytes, raw, cases_path, cases_bytes, fmt)



def default_suite_yaml(path: str | Path) -> str:
    """The suite.yaml a bare HumanEval/MBPP file at ``path`` is run with (its format's defaults).

    Copy it next to the file (with ``cases_file:`` naming it) to change a setting.
    """
    cases_path = Path(path)
    fmt = require_foreign_format(cases_path, read_cases_file(cases_path))
    return default_yaml_text(cases_path, fmt)


def _load_cases_file(cases_path: Path) -> Suite:
    cases_bytes = read_cases_file(cases_path)
    fmt = require_foreign_format(cases_path, cases_bytes)
    yaml_text = default_yaml_text(cases_path, fmt)
    yaml_bytes = yaml_text.encode("utf-8")
    return _build(cases_path, cases_path, yaml_bytes, yaml.safe_load(yaml_text), cases_path, cases_bytes, fmt)


def _build(
    path: Path, yaml_path: Path, yaml_bytes: bytes, raw: dict[str, Any], cases_path: Path, cases_bytes: bytes, fmt: str
) -> Suite:
    spec = _validate_spec(yaml_path, yaml_bytes, raw)
    template = _compile_template(yaml_path, yaml_bytes, spec.prompt_template)
    scorer = _build_scorer(yaml_path, yaml_bytes, spec.scorer)  # validates name and args now, not mid-sweep
    metrics = ["accuracy", *scorer.aggregate([])]
    if spec.primary_metric not in metrics:
        line = _yaml_line(yaml_bytes, ("primary_metric",))
        raise SuiteError(
            f"{yaml_path}:{line}: key 'primary_metric': {spec.primary_metric!r} is not a metric of scorer "
            f"{spec.scorer.name!r}. Use one of: {', '.join(metrics)}."
        )
    cases = _parse_cases(cases_path, cases_bytes, template, None if fmt == NATIVE else get_format(fmt))

    return Suite(
        name=spec.name,
        path=path,
        description=spec.description,
        prompt_template=spec.prompt_template,
        chat_template=spec.chat_template,
        system_prompt=spec.system_prompt,
        generation=GenerationSettings(
            max_new_tokens=spec.generation.max_new_tokens,
            stop=tuple(spec.generation.stop),
            batch_size=spec.generation.batch_size,
        ),
        scorer_name=spec.scorer.name,
        scorer_args=MappingProxyType(dict(spec.scorer.args)),
        primary_metric=spec.primary_metric,
        slos=tuple(spec.slos),
        cases=cases,
        content_hash=hashlib.sha256(yaml_bytes + cases_bytes).hexdigest(),
        cases_format=fmt,
        _template=template,
    )


def _raw_choice(raw: dict[str, Any], key: str, default: str, yaml_path: Path, data: bytes, allowed: tuple[str, ...] | None) -> str:
    """A suite.yaml key needed before the whole file is validated (it decides which file to read and how)."""
    value = raw.get(key, default)
    if not isinstance(value, str) or not value or (allowed is not None and value not in allowed):
        want = f"one of {', '.join(allowed)}" if allowed else "a file name or path relative to the suite folder"
        raise SuiteError(f"{yaml_path}:{_yaml_line(data, (key,))}: key {key!r}: got {value!r}; use {want}.")
    return value


def _load_yaml(yaml_path: Path, data: bytes) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(data)
    except yaml.reader.ReaderError as exc:  # a byte or character YAML refuses: a position, no mark
        if exc.encoding != "unicode":  # the bytes do not decode; position is a byte offset
            line = data[: exc.position].count(b"\n") + 1
            raise SuiteError(f"{yaml_path}:{line}: not valid UTF-8 (byte {exc.character:#04x}). "
                             "Save the file as UTF-8.") from None
        line = data.decode("utf-8", errors="replace")[: exc.position].count("\n") + 1
        raise SuiteError(f"{yaml_path}:{line}: YAML does not allow the character {chr(exc.character)!r} here. "
                         "Remove it, or write it as an escape inside a double-quoted string.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{yaml_path}:{mark.line + 1}" if mark is not None else f"{yaml_path}:1"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}: YAML syntax error: {problem}. Fix the YAML syntax (indentation, quotes, colons).") from None
    except RecursionError:
        raise SuiteError(f"{yaml_path}:1: YAML nested too deeply to read. Fix the YAML syntax (unclosed brackets?).") from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise SuiteError(f"{yaml_path}:1: expected a mapping of keys (name, prompt_template, scorer, ...), got {got}. "
                         "Write one `key: value` per line; see docs/suites.md.")
    return raw


def _validate_spec(yaml_path: Path, data: bytes, raw: dict[str, Any]) -> _SuiteSpec:
    try:
        return _SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(_explain(exc, yaml_path, lambda loc: _yaml_line(data, loc), _SuiteSpec)) from None


def _compile_template(yaml_path: Path, data: bytes, source: str) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        line = _yaml_line(data, ("prompt_template",))
        raise SuiteError(
            f"{yaml_path}:{line}: key 'prompt_template': jinja2 syntax error on template line {exc.lineno}: "
            f"{exc.message}. Fix the template ({{{{ var }}}} for variables)."
        ) from None


def _build_scorer(yaml_path: Path, data: bytes, spec: _ScorerSpec) -> Scorer:
    try:
        return get_scorer(spec.name, dict(spec.args))
    except UnknownNameError as exc:
        line = _yaml_line(data, ("scorer", "name"))
        raise SuiteError(f"{yaml_path}:{line}: key 'scorer.name': {exc}") from None
    except (TypeError, ValueError) as exc:
        line = _yaml_line(data, ("scorer", "args"))
        raise SuiteError(
            f"{yaml_path}:{line}: key 'scorer.args': bad arguments for scorer {spec.name!r}: {exc}. "
            "See docs/suites.md for each scorer's arguments."
        ) from None


def _parse_cases(cases_path: Path, data: bytes, template: jinja2.Template, fmt: CaseFormat | None) -> tuple[Case, ...]:
    """Every line as a :class:`Case`; ``fmt`` (HumanEval, MBPP) converts each line to a native case first."""
    text = decode_cases(cases_path, data)
    keys = fmt.keys_hint if fmt else "id, inputs, expected, tags"
    id_key = fmt.id_key if fmt else "id"
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):  # JSONL lines end at \n only (not U+2028)
        if not line.strip():
            continue
        where = f"{cases_path}:{lineno}"
        try:
            raw = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number, [[[[... nested too deep
            raise SuiteError(f"{where}: invalid JSON ({json_problem(exc)}). Fix it: each line must be one JSON object.") from None
        if not isinstance(raw, dict):
            raise SuiteError(f"{where}: expected a JSON object with keys {keys}; got {type(raw).__name__}. Write one object per line.")
        if fmt is not None:
            raw = fmt.convert(raw, where)
        for key in ("id", "expected"):
            if key not in raw:
                raise SuiteError(f"{where}: key {key!r} is missing; add it. Every case needs 'id' and 'expected'.{_format_hint(raw)}")
        try:
            spec = _CaseSpec.model_validate(raw)
        except ValidationError as exc:
            raise SuiteError(_explain(exc, cases_path, lambda loc: lineno, _CaseSpec) + _format_hint(raw)) from None
        if spec.id in first_line:
            raise SuiteError(
                f"{where}: key {id_key!r}: duplicate case id {spec.id!r} (first on line {first_line[spec.id]}). Case ids must be unique."
            )
        first_line[spec.id] = lineno
        case = Case(id=spec.id, inputs=MappingProxyType(spec.inputs), expected=spec.expected, tags=MappingProxyType(spec.tags))
        try:
            template.render(**case.inputs)
        except jinja2.UndefinedError as exc:
            if fmt is not None:
                raise SuiteError(
                    f"{where}: the prompt_template uses a variable the {fmt.name} format does not provide ({exc.message}). "
                    f"Use only: {', '.join(fmt.input_names)}."
                ) from None
            raise SuiteError(
                f"{where}: key 'inputs': the prompt_template uses a variable this case lacks ({exc.message}). "
                f"Add it to the case's inputs or remove it from the template."
            ) from None
        except Exception as exc:  # noqa: BLE001 -- the template's own expression failed on this case's inputs
            raise SuiteError(
                f"{where}: key 'inputs': the prompt_template fails on this case ({type(exc).__name__}: {exc}). "
                "Fix the template's expression or the case's inputs."
            ) from None
        cases.append(case)
    if not cases:
        raise SuiteError(f"{cases_path}: the suite has no cases. Add one JSON object per line: {{\"id\": ..., \"inputs\": {{...}}, \"expected\": ...}}.")
    return tuple(cases)


def _format_hint(raw: dict[str, Any]) -> str:
    fmt = detect_format(raw)
    if fmt in (None, NATIVE):
        return ""
    return f" This line looks like {fmt} format: set `cases_format: {fmt}` (or `auto`) in {SUITE_FILE}."


# --- error translation ------------------------------------------------------------------------


def _explain(exc: ValidationError, file: Path, line_of: Any, model: type[BaseModel]) -> str:
    """One message per pydantic error, naming file:line and the dotted key."""
    parts = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            fix = f"remove it or fix its spelling (allowed: {', '.join(allowed)})" if allowed else "remove it"
            msg = f"unknown key {key!r}; {fix}"
        elif kind == "missing":
            msg = f"key {key!r} is missing; add it"
        else:
            got = err.get("input")
            msg = f"key {key!r}: {err['msg']} (got {got!r}); change its value"
        parts.append(f"{file}:{line_of(loc)}: {msg}.")
    return " ".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        fld = getattr(current, "model_fields", {}).get(part)
        if fld is None or not (isinstance(fld.annotation, type) and issubclass(fld.annotation, BaseModel)):
            return []
        current = fld.annotation
    return list(getattr(current, "model_fields", {}))


def _yaml_line(data: bytes, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest existing key along ``loc`` in the YAML document (1 if unknown)."""
    try:
        node = yaml.compose(data)
    except yaml.YAMLError:
        return 1
    line = 1
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            break
    return line


__all__ = ["CASES_FILE", "CASES_SUFFIXES", "SUITE_FILE", "Case", "Suite", "default_suite_yaml",
           "load_suite"]
