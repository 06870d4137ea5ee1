"""Published code-benchmark formats read as they are: HumanEval- and MBPP-style JSONL.

A :class:`CaseFormat` turns one JSON object of its file into a native case
(``{"id", "inputs", "expected", "tags"}``) that :mod:`qeval.suites` then validates
like any line of ``cases.jsonl``, and supplies the ``suite.yaml`` defaults
(prompt template, generation, scorer) that run the benchmark by its usual
protocol. Both map onto the ``code_exec`` scorer's ``expected`` keys:

- HumanEval: the model continues ``prompt``; ``prefix`` = prompt, ``setup`` =
  ``test`` (defines ``check(candidate)``), ``tests`` = ``check(<entry_point>)``,
  ``reference`` = ``canonical_solution``.
- MBPP: the model writes the function from ``text`` and the first test;
  ``tests`` = ``test_list`` + ``challenge_test_list``, ``setup`` =
  ``test_setup_code`` (+ the sanitized variant's ``test_imports``),
  ``reference`` = ``code``; the entry point is the function the tests call that
  ``code`` defines.

Keys a format does not use are ignored (the published files and their variants
carry extra metadata); the keys it uses are checked strictly.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import json
import keyword
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qeval.errors import SuiteError

AUTO: Final = "auto"
NATIVE = "native"
HUMANEVAL = "humaneval"
MBPP = "mbpp"
FORMATS = (NATIVE, HUMANEVAL, MBPP)
"""Values of ``cases_format`` in suite.yaml (plus ``auto``, the default)."""
CASES_SUFFIXES = (".jsonl", ".jsonl.gz")
"""A file with one of these suffixes given as a suite is read as HumanEval or MBPP cases."""

# Stop strings of the usual protocols: column-0 text ends the function being written.
# HumanEval: the Codex paper's list. MBPP: bigcode-evaluation-harness's `mbpp` task.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
MBPP_STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")


@dataclass(frozen=True)
class CaseFormat:
    """How one file format maps onto qeval cases."""

    name: str
    title: str
    """How people write it: ``HumanEval``, ``MBPP``."""
    id_key: str
    """The format's key for the case id (named in duplicate-id errors)."""
    keys_hint: str
    """The keys a line needs, for error messages."""
    input_names: tuple[str, ...]
    """Variables each case offers to ``prompt_template``."""
    suite_defaults: Mapping[str, Any]
    """suite.yaml keys filled in when the suite.yaml (or the bare file) leaves them out."""
    convert: Callable[[dict[str, Any], str], dict[str, Any]]
    """``(line object, "file:line") -> native case dict``; raises :class:`SuiteError`."""


def detect_format(obj: Mapping[str, Any]) -> str | None:
    """The format a line's keys say it is in, or ``None`` when they say nothing."""
    keys = set(obj)
    if "expected" in keys:
        return NATIVE
    if "canonical_solution" in keys or {"prompt", "test", "entry_point"} <= keys:
        return HUMANEVAL
    if "test_list" in keys:
        return MBPP
    if keys & {"id", "inputs"}:
        return NATIVE
    return None


def get_format(name: str) -> CaseFormat:
    """The foreign format called ``name`` (``humaneval`` or ``mbpp``)."""
    return _FORMATS[name]


# --- HumanEval ------------------------------------------------------------------------------


class _HumanEvalLine(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    task_id: str | int
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def _humaneval_case(raw: dict[str, Any], where: str) -> dict[str, Any]:
    line = _validate(_HumanEvalLine, raw, where, HUMANEVAL)
    entry = _identifier(line.entry_point, "entry_point", where)
    if entry == "check":
        raise SuiteError(f"{where}: key 'entry_point': 'check' is the name of the test function the 'test' key "
                         "defines; rename the solution's function.")
    tree = _parse(line.test, "test", where)
    if not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
        raise SuiteError(f"{where}: key 'test': defines no top-level function check(candidate). A HumanEval test "
                         "is `def check(candidate): assert candidate(...) == ...`; qeval then calls check(entry_point).")
    return {
        "id": str(line.task_id),
        "inputs": {"prompt": line.prompt, "entry_point": entry},
        "expected": {
            "entry_point": entry,
            "prefix": line.prompt,
            "setup": line.test,
            "tests": f"check({entry})",
            "reference": line.canonical_solution,
        },
    }


# --- MBPP -----------------------------------------------------------------------------------


class _MbppLine(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    task_id: int | str
    text: str | None = None
    prompt: str | None = None
    """The sanitized variant's name for ``text``."""
    code: str
    test_list: list[str] = Field(min_length=1)
    test_setup_code: str | None = None
    test_imports: list[str] | None = None
    """The sanitized variant's imports the tests need."""
    challenge_test_list: list[str] | None = None
    entry_point: str | None = None
    """Not in MBPP itself; honoured when a converted file carries it."""


def _mbpp_case(raw: dict[str, Any], where: str) -> dict[str, Any]:
    line = _validate(_MbppLine, raw, where, MBPP)
    text = line.text if line.text is not None else line.prompt
    if text is None:
        raise SuiteError(f"{where}: key 'text' is missing; add the task description (the sanitized MBPP "
                         "variant calls it 'prompt').")
    tests = list(line.test_list)
    challenge = list(line.challenge_test_list or [])
    for key, items in (("test_list", tests), ("challenge_test_list", challenge)):
        for i, test in enumerate(items):
            _parse(test, f"{key}[{i}]", where)
    setup = "\n".join(s for s in [line.test_setup_code or "", *(line.test_imports or [])] if s.strip())
    _parse(setup, "test_setup_code", where)
    entry: str | None
    if line.entry_point is not None:
        entry = _identifier(line.entry_point, "entry_point", where)
    else:
        entry = _infer_entry_point(tests, line.code)
        if entry is None:
            raise SuiteError(f"{where}: key 'test_list': cannot tell which function the tests call (no call of a "
                             "function that 'code' defines). Add \"entry_point\": \"<function name>\" to this line.")
    expected: dict[str, Any] = {"entry_point": entry, "tests": "\n".join(tests + challenge), "reference": line.code}
    if setup:
        expected["setup"] = setup
    return {
        "id": str(line.task_id),
        "inputs": {"text": text, "test_example": tests[0], "tests": "\n".join(tests), "entry_point": entry},
        "expected": expected,
    }


def _infer_entry_point(tests: list[str], code: str) -> str | None:
    """The first function the tests call (in source order) that ``code`` defines at top level;
    else the first called name that is not a builtin."""
    called: list[str] = []
    for test in tests:
        calls = [(n.lineno, n.col_offset, n.func.id) for n in ast.walk(ast.parse(test))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        for _line, _col, name in sorted(calls):
            if name not in called:
                called.append(name)
    try:
        defined = {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        defined = set(re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", code, re.MULTILINE))
    for name in called:
        if name in defined:
            return name
    return next((name for name in called if not hasattr(builtins, name)), None)


# --- files --------------------------------------------------------------------------------


def read_cases_file(cases_path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz`` (the hash is over the content, not the archive)."""
    try:
        data = cases_path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{cases_path}: cannot read it ({exc.strerror or exc}). Check that it is a readable file.") from None
    if cases_path.name.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise SuiteError(f"{cases_path}: not a readable gzip file ({exc}). Re-download it, or pass the unpacked .jsonl.") from None
    return data


def decode_cases(cases_path: Path, data: bytes) -> str:
    """A cases file's text; :class:`SuiteError` naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows editors) is not an error
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteError(f"{cases_path}:{line}: not valid UTF-8 (byte {data[exc.start]:#04x}). Save the file as UTF-8.") from None


def json_problem(exc: ValueError | RecursionError) -> str:
    """What :func:`json.loads` found wrong, for a message."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return f"{type(exc).__name__}: {exc}"


@overload
def first_object(cases_path: Path, data: bytes, *, strict: Literal[True]) -> tuple[int, dict[str, Any]]: ...
@overload
def first_object(cases_path: Path, data: bytes, *, strict: bool) -> tuple[int, dict[str, Any]] | None: ...
def first_object(cases_path: Path, data: bytes, *, strict: bool) -> tuple[int, dict[str, Any]] | None:
    """Line number and object of the first non-blank line. Unreadable: ``None``, or (``strict``)
    the error the full parse would give."""
    try:
        text = decode_cases(cases_path, data)
    except SuiteError:
        if not strict:
            return None
        raise
    for lineno, line in enumerate(text.split("\n"), start=1):  # JSONL lines end at \n only (not U+2028)
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number, [[[[... nested too deep
            if not strict:
                return None
            raise SuiteError(f"{cases_path}:{lineno}: invalid JSON ({json_problem(exc)}). Fix it: each line must be one JSON object.") from None
        if not isinstance(obj, dict):
            if not strict:
                return None
            raise SuiteError(f"{cases_path}:{lineno}: expected a JSON object (one case per line), got {type(obj).__name__}. Write one object per line.")
        return lineno, obj
    if strict:
        raise SuiteError(f"{cases_path}: the file has no cases. Add one JSON object (a HumanEval or MBPP problem) per line.")
    return None


def require_foreign_format(cases_path: Path, cases_bytes: bytes) -> str:
    """The format of a file given as a suite on its own: HumanEval or MBPP, else a :class:`SuiteError`."""
    if not cases_path.name.endswith(CASES_SUFFIXES):
        raise SuiteError(
            f"{cases_path}: not a suite. Pass a suite folder (with suite.yaml) or a HumanEval/MBPP "
            f"file ending in {' or '.join(CASES_SUFFIXES)}."
        )
    lineno, first = first_object(cases_path, cases_bytes, strict=True)
    fmt = detect_format(first)
    if fmt is None or fmt == NATIVE:
        native = ""
        if fmt == NATIVE:
            folder = cases_path.parent
            native = (f" It looks like qeval's own case format, which needs its suite.yaml: pass the folder {folder}."
                      if (folder / "suite.yaml").is_file() else
                      " It looks like qeval's own case format, which needs a suite.yaml: put both in a folder and pass the folder.")
        raise SuiteError(
            f"{cases_path}:{lineno}: cannot tell the format from this line's keys ({', '.join(sorted(first)) or 'none'}). "
            f"A HumanEval line has {get_format('humaneval').keys_hint}; an MBPP line has {get_format('mbpp').keys_hint}.{native}"
        )
    return fmt


def default_yaml_text(cases_path: Path, fmt: str) -> str:
    """The suite.yaml text a bare ``cases_path`` in format ``fmt`` stands for (named after the file)."""
    stem = cases_path.name
    for suffix in CASES_SUFFIXES:
        stem = stem.removesuffix(suffix)
    spec = {"name": stem, **get_format(fmt).suite_defaults, "cases_file": cases_path.name, "cases_format": fmt}
    spec = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.items()}
    return yaml.dump(spec, Dumper=_QuotingDumper, sort_keys=False, allow_unicode=True, width=1000)


class _QuotingDumper(yaml.SafeDumper):
    """Strings holding newlines as one double-quoted line ("\\nclass"), so the text reads like suite.yaml."""


_QuotingDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "\n" in value else None)
)


def with_defaults(raw: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """suite.yaml keys over the format's defaults; ``generation`` merged key by key."""
    merged = {**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in defaults.items()}, **raw}
    if isinstance(raw.get("generation"), dict) and isinstance(defaults.get("generation"), Mapping):
        merged["generation"] = {**defaults["generation"], **raw["generation"]}
    return merged


# --- shared checks --------------------------------------------------------------------------


def _validate(model: type[BaseModel], raw: dict[str, Any], where: str, fmt: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems: dict[str, list[str]] = {}
        got: dict[str, Any] = {}
        for err in exc.errors():
            # loc is (key, [index], [union member]): keep the key and list indexes, as in `test_list[1]`
            head, *rest = err["loc"]
            key = str(head) + "".join(f"[{p}]" for p in rest if isinstance(p, int))
            text = "is missing; add it" if err["type"] == "missing" else err["msg"].removeprefix("Input should be ")
            problems.setdefault(key, [])
            if text not in problems[key]:
                problems[key].append(text)
            got[key] = err.get("input")
        parts = []
        for key, texts in problems.items():
            if texts == ["is missing; add it"]:
                parts.append(f"key {key!r} is missing; add it")
            else:
                should = " or ".join(texts)
                should = f"should be {should}" if should.startswith(("a ", "an ")) else should
                parts.append(f"key {key!r}: {should} (got {_short(got[key])}); change its value")
        spec = get_format(fmt)
        raise SuiteError(f"{where}: {'; '.join(parts)}. Each {spec.title} line needs {spec.keys_hint}.") from None


def _identifier(name: str, key: str, where: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SuiteError(f"{where}: key {key!r}: {name!r} is not a Python function name; give the name the tests call.")
    return name


def _parse(source: str, key: str, where: str) -> ast.Module:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except SyntaxError as exc:
        raise SuiteError(f"{where}: key {key!r}: not valid Python ({exc.msg} on its line {exc.lineno}); fix the code.") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SuiteError(f"{where}: key {key!r}: not valid Python ({type(exc).__name__}: {exc}); fix the code.") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _code_suite_defaults(description: str, prompt_template: str, stop: tuple[str, ...]) -> MappingProxyType:
    """suite.yaml defaults of a code-benchmark format: what differs between them is the
    description, the prompt and the stop strings."""
    return MappingProxyType({
        "description": description,
        "prompt_template": prompt_template,
        "chat_template": False,
        "system_prompt": None,
        "generation": {"max_new_tokens": 512, "stop": list(stop), "batch_size": 8},
        "scorer": {"name": "code_exec", "args": {"timeout_s": 10}},
        "primary_metric": "accuracy",
        "slos": [],
    })


_FORMATS: dict[str, CaseFormat] = {
    HUMANEVAL: CaseFormat(
        name=HUMANEVAL,
        title="HumanEval",
        id_key="task_id",
        keys_hint="task_id, prompt, canonical_solution, test (defining check(candidate)) and entry_point",
        input_names=("prompt", "entry_point"),
        suite_defaults=_code_suite_defaults(
            "HumanEval-format code completion: the model continues each prompt; check(entry_point) runs in the "
            "sandbox.",
            "{{ prompt | trim }}",
            HUMANEVAL_STOP,
        ),
        convert=_humaneval_case,
    ),
    MBPP: CaseFormat(
        name=MBPP,
        title="MBPP",
        id_key="task_id",
        keys_hint="task_id, text (or prompt), code and test_list (a non-empty list of assert lines)",
        input_names=("text", "test_example", "tests", "entry_point"),
        suite_defaults=_code_suite_defaults(
            "MBPP-format code generation: the model writes a function from its description and one example test; "
            "every test runs in the sandbox.",
            '"""\n{{ text }}\n{{ test_example }}\n"""\n',
            MBPP_STOP,
        ),
        convert=_mbpp_case,
    ),
}


__all__ = ["AUTO", "CASES_SUFFIXES", "FORMATS", "HUMANEVAL", "HUMANEVAL_STOP", "MBPP", "MBPP_STOP", "NATIVE", "CaseFormat",
           "detect_format", "get_format"]
