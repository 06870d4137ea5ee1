"""``code_exec``: pull a Python function out of the completion and run the case's tests.

``expected`` is ``{"entry_point": "name", "tests": "assert name(1) == 2\\n...", "reference": "..."}``;
``reference`` (a known-good solution) is ignored by the scorer and used by the suite's own tests.
Two optional keys carry the HumanEval and MBPP protocols (see :mod:`qeval.suite_formats`):
``prefix``, source the completion continues (a HumanEval prompt: the program is
prefix + completion, or prefix followed by the completion's own full definition),
and ``setup``, source run after the solution and before the tests (HumanEval's
``check`` definition, MBPP's ``test_setup_code``); neither counts as a test.
Each top-level statement of ``tests`` runs separately, so the case value is the
fraction of tests passed; the case passes when all do. The code runs in
:mod:`qeval.sandbox` (subprocess, resource limits, wall timeout).
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from qeval.results import MetricValue, Score
from qeval.scorers._base import fail

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str, entry_point: str) -> str:
    """The Python source in ``completion`` most likely to define ``entry_point``.

    Fenced blocks first (the one defining ``entry_point``, else all joined);
    otherwise the raw text from the first ``def``/``import`` line, trimmed from
    the end until it compiles (drops trailing prose and half-written lines).
    """
    blocks = [b for b in _FENCE.findall(completion) if b.strip()]
    if blocks:
        defining = [b for b in blocks if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
        source = "\n\n".join(defining or blocks)
    else:
        m = re.search(r"^[ \t]*(?:def|import|from|class)\b", completion, re.M)
        source = completion[m.start():] if m else completion
    return _trim_to_compilable(_dedent_block(source))


def build_program(completion: str, entry_point: str, prefix: str = "") -> str:
    """The source to run for ``completion``: :func:`extract_code` alone without a ``prefix``.

    With a ``prefix`` (the function header and docstring the model was asked to
    complete), two readings: a completion that defines ``entry_point`` itself at
    top level runs after the prefix (its definition wins; the prefix's imports and
    helpers stay available), else the completion continues the prefix's body and
    ``prefix + completion`` is trimmed from the end until it compiles.
    """
    if not prefix:
        return extract_code(completion, entry_point)
    prefix = prefix if prefix.endswith("\n") else prefix + "\n"
    code = extract_code(completion, entry_point)
    if _defines_top_level(code, entry_point):
        joined = f"{prefix}\n{code}"
        return joined if _compiles(joined) else code
    blocks = [b for b in _FENCE.findall(completion) if b.strip()]
    body = blocks[0] if blocks else completion  # a fenced body keeps its indentation
    lines = body.splitlines()
    for end in range(len(lines), -1, -1):
        chunk = prefix + "".join(line + "\n" for line in lines[:end])
        if _compiles(chunk):
            return chunk
    return prefix + body


def _defines_top_level(code: str, entry_point: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry_point for n in tree.body)


def _compiles(source: str) -> bool:
    return _compile_error(source) is None


def _compile_error(source: str) -> str | None:
    """Why ``source`` does not compile (``None`` when it does).

    compile(), not ast.parse(): a continuation at the wrong indentation parses
    ("return x" at top level) but is still not a program. Warnings (invalid
    escapes in model output) are silenced: they are not this harness's business.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{exc.msg}, line {exc.lineno}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _dedent_block(source: str) -> str:
    import textwrap

    return textwrap.dedent(source).strip("\n") + "\n"


def _trim_to_compilable(source: str) -> str:
    lines = source.splitlines()
    for end in range(len(lines), 0, -1):
        chunk = "\n".join(lines[:end]) + "\n"
        try:
            ast.parse(chunk)
            return chunk
        except (SyntaxError, ValueError):
            continue
    return source


def _split_tests(tests: str) -> list[str]:
    tree = ast.parse(tests)
    return [ast.get_source_segment(tests, node) or ast.unparse(node) for node in tree.body]


_RUNNER = """\
import json as __qeval_json
__qeval_ns = {{"__name__": "__qeval_solution__"}}
def __qeval_report(obj):
    print({marker!r} + __qeval_json.dumps(obj), flush=True)
__qeval_setup_lines = {setup!r}.splitlines()
def __qeval_why(e, src):
    # A bare `assert` inside setup code (HumanEval's check) says nothing: name its line instead.
    msg = str(e)[:200]
    if not msg:
        line, tb = None, e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "setup.py":
                line = tb.tb_lineno
            tb = tb.tb_next
        ok = line is not None and 0 < line <= len(__qeval_setup_lines)
        msg = (__qeval_setup_lines[line - 1].strip() if ok else src)[:200]
    return type(e).__name__ + ": " + msg
try:
    exec(compile({code!r}, "solution.py", "exec"), __qeval_ns)
except BaseException as __qeval_e:
    __qeval_report({{"stage": "define", "error": type(__qeval_e).__name__ + ": " + str(__qeval_e)[:300]}})
    raise SystemExit(0)
try:
    exec(compile({setup!r}, "setup.py", "exec"), __qeval_ns)
except BaseException as __qeval_e:
    __qeval_report({{"stage": "setup", "error": type(__qeval_e).__name__ + ": " + str(__qeval_e)[:300]}})
    raise SystemExit(0)
__qeval_results = []
for __qeval_src in {tests!r}:
    try:
        exec(compile(__qeval_src, "tests.py", "exec"), __qeval_ns)
        __qeval_results.append(None)
    except BaseException as __qeval_e:
        __qeval_results.append(__qeval_why(__qeval_e, __qeval_src))
__qeval_report({{"stage": "tests", "results": __qeval_results}})
"""


@dataclass(frozen=True)
class CodeExecScorer:
    """Runs the case's unit tests against the completion's function in the sandbox.

    ``timeout_s``: wall-clock limit per case; ``memory_mb``: address-space limit.
    """

    timeout_s: float = 5.0
    memory_mb: int = 512
    name: str = "code_exec"
    metric_names: ClassVar[tuple[str, ...]] = ("tests_passed", "timeout_rate", "syntax_error_rate")
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def __post_init__(self) -> None:
        for arg in ("timeout_s", "memory_mb"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{arg} must be a number > 0, got {value!r}")

    def score(self, completion: str, expected: Any) -> Score:
        from qeval.sandbox import SandboxLimits, run_python

        if not isinstance(expected, Mapping) or "entry_point" not in expected or "tests" not in expected:
            raise ValueError(f"code_exec needs expected = {{'entry_point': ..., 'tests': ...}}, got {expected!r}")
        entry, tests = str(expected["entry_point"]), _split_tests(str(expected["tests"]))
        prefix, setup = str(expected.get("prefix") or ""), str(expected.get("setup") or "")
        code = build_program(completion, entry, prefix)
        if prefix and completion.strip() and code.rstrip() == prefix.rstrip():
            # trimming kept none of the completion: it neither continues the prompt nor redefines the function
            problem = _compile_error(prefix.rstrip("\n") + "\n" + completion)
            return fail(f"syntax error: the completion does not continue the prompt as Python ({problem})",
                        status="syntax_error", code=prefix + completion)
        if not re.search(rf"\bdef\s+{re.escape(entry)}\s*\(", code):
            return fail(f"no function named {entry!r} in the completion", status="missing_function", code=code)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError) as exc:
            return fail(f"syntax error: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})",
                        status="syntax_error", code=code)
        if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry for n in ast.walk(tree)):
            return fail(f"no function named {entry!r} in the completion", status="missing_function", code=code)

        marker = f"__QEVAL_{secrets.token_hex(8)}__"
        limits = SandboxLimits(wall_s=float(self.timeout_s), cpu_s=max(1, int(self.timeout_s) + 1),
                               memory_bytes=int(self.memory_mb) * 1024 * 1024)
        result = run_python(_RUNNER.format(marker=marker, code=code, setup=setup, tests=tests), limits)
        if result.status == "timeout":
            return fail(f"timeout after {self.timeout_s:g} s", status="timeout", code=code)
        report = _find_report(result.stdout, marker)
        if report is None:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return fail(f"crashed (exit {result.returncode}): {tail}"[:300], status="crashed", code=code)
        if report["stage"] == "define":
            return fail(f"error while defining the solution: {report['error']}", status="error", code=code)
        if report["stage"] == "setup":
            return fail(f"error in the tests' setup code: {report['error']}", status="error", code=code)
        errors = report["results"]
        n_pass = sum(e is None for e in errors)
        details = {"status": "passed" if n_pass == len(errors) else "failed", "tests_passed": n_pass,
                   "tests_total": len(errors), "code": code}
        if n_pass == len(errors):
            return Score(1.0, True, None, details)
        first = next(e for e in errors if e is not None)
        return Score(n_pass / max(1, len(errors)), False,
                     f"{len(errors) - n_pass}/{len(errors)} tests failed; first: {first}", details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        from qeval.stats import mean_ci, rate

        return {
            "tests_passed": mean_ci([s.value for s in scores]),
            "timeout_rate": rate([s.details.get("status") == "timeout" for s in scores]),
            "syntax_error_rate": rate([s.details.get("status") == "syntax_error" for s in scores]),
        }


def _find_report(stdout: str, marker: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                return json.loads(line[len(marker):])
            except ValueError:
                return None
    return None
