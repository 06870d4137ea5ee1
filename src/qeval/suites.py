"""Suite folders: ``suite.yaml`` (how to prompt and score) + ``cases.jsonl`` (the data).

:func:`load_suite` validates everything up front, so a bad suite fails at load
time with one :class:`~qeval.errors.SuiteError` naming file, line and key and
saying how to fix it -- never halfway through a sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qeval.config import GenerationSettings
from qeval.errors import SuiteError, UnknownNameError
from qeval.scorers import Scorer, get_scorer

SUITE_FILE = "suite.yaml"
CASES_FILE = "cases.jsonl"
DIFFICULTIES = ("easy", "medium", "hard")


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
    """sha256 over the bytes of suite.yaml then cases.jsonl (unchanged by :meth:`limited`)."""
    _template: jinja2.Template = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    def render(self, case: Case) -> str:
        """The user-message text for ``case`` (jinja2, undefined variables are errors)."""
        return self._template.render(**case.inputs)

    def scorer(self) -> Scorer:
        """A fresh scorer built from the suite's ``scorer:`` block."""
        return get_scorer(self.scorer_name, dict(self.scorer_args))

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
    """Load and validate the suite folder at ``path``.

    Raises :class:`SuiteError` for missing files, YAML/JSON syntax errors,
    unknown, missing or mistyped keys, duplicate case ids, an empty suite, an
    unknown scorer or bad scorer args, and templates that use a variable some
    case lacks.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SuiteError(f"{folder}: suite folder not found. Pass a folder containing {SUITE_FILE} and {CASES_FILE}.")
    yaml_path, cases_path = folder / SUITE_FILE, folder / CASES_FILE
    for p in (yaml_path, cases_path):
        if not p.is_file():
            raise SuiteError(f"{p}: file not found. A suite folder needs both {SUITE_FILE} and {CASES_FILE}.")
    yaml_bytes, cases_bytes = yaml_path.read_bytes(), cases_path.read_bytes()

    spec = _parse_suite_yaml(yaml_path, yaml_bytes)
    template = _compile_template(yaml_path, yaml_bytes, spec.prompt_template)
    scorer = _build_scorer(yaml_path, yaml_bytes, spec.scorer)  # validates name and args now, not mid-sweep
    metrics = ["accuracy", *scorer.aggregate([])]
    if spec.primary_metric not in metrics:
        line = _yaml_line(yaml_bytes, ("primary_metric",))
        raise SuiteError(
            f"{yaml_path}:{line}: key 'primary_metric': {spec.primary_metric!r} is not a metric of scorer "
            f"{spec.scorer.name!r}. Use one of: {', '.join(metrics)}."
        )
    cases = _parse_cases(cases_path, cases_bytes, template)

    return Suite(
        name=spec.name,
        path=folder,
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
        _template=template,
    )


def _parse_suite_yaml(yaml_path: Path, data: bytes) -> _SuiteSpec:
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{yaml_path}:{mark.line + 1}" if mark is not None else str(yaml_path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}: YAML syntax error: {problem}. Fix the YAML syntax (indentation, quotes, colons).") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{yaml_path}:1: expected a mapping of keys (name, prompt_template, scorer, ...), got {type(raw).__name__}.")
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


def _parse_cases(cases_path: Path, data: bytes, template: jinja2.Template) -> tuple[Case, ...]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{cases_path}: not UTF-8 ({exc}). Save the file as UTF-8.") from None
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{cases_path}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}). Each line must be one JSON object.") from None
        if not isinstance(raw, dict):
            raise SuiteError(f"{where}: expected a JSON object with keys id, inputs, expected, tags; got {type(raw).__name__}.")
        for key in ("id", "expected"):
            if key not in raw:
                raise SuiteError(f"{where}: key {key!r} is missing. Every case needs 'id' and 'expected'.")
        try:
            spec = _CaseSpec.model_validate(raw)
        except ValidationError as exc:
            raise SuiteError(_explain(exc, cases_path, lambda loc: lineno, _CaseSpec)) from None
        if spec.id in first_line:
            raise SuiteError(
                f"{where}: key 'id': duplicate case id {spec.id!r} (first on line {first_line[spec.id]}). Case ids must be unique."
            )
        first_line[spec.id] = lineno
        case = Case(id=spec.id, inputs=MappingProxyType(spec.inputs), expected=spec.expected, tags=MappingProxyType(spec.tags))
        try:
            template.render(**case.inputs)
        except jinja2.UndefinedError as exc:
            raise SuiteError(
                f"{where}: key 'inputs': the prompt_template uses a variable this case lacks ({exc.message}). "
                f"Add it to the case's inputs or remove it from the template."
            ) from None
        cases.append(case)
    if not cases:
        raise SuiteError(f"{cases_path}: the suite has no cases. Add one JSON object per line: {{\"id\": ..., \"inputs\": {{...}}, \"expected\": ...}}.")
    return tuple(cases)


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


__all__ = ["CASES_FILE", "DIFFICULTIES", "SUITE_FILE", "Case", "Suite", "load_suite"]
