"""``code_exec``: pull a Python function out of the completion and run the case's tests.

``expected`` is ``{"entry_point": "name", "tests": "assert name(1) == 2\\n...", "reference": "..."}``;
``reference`` (a known-good solution) is ignored by the scorer and used by the suite's own tests.
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
try:
    exec(compile({code!r}, "solution.py", "exec"), __qeval_ns)
except BaseException as __qeval_e:
    __qeval_report({{"stage": "define", "error": type(__qeval_e).__name__ + ": " + str(__qeval_e)[:300]}})
    raise SystemExit(0)
__qeval_results = []
for __qeval_src in {tests!r}:
    try:
        exec(compile(__qeval_src, "tests.py", "exec"), __qeval_ns)
        __qeval_results.append(None)
    except BaseException as __qeval_e:
        __qeval_results.append(type(__qeval_e).__name__ + ": " + (str(__qeval_e)[:200] or __qeval_src[:200]))
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
        code = extract_code(completion, entry)
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
        result = run_python(_RUNNER.format(marker=marker, code=code, tests=tests), limits)
        if result.status == "timeout":
            return fail(f"timeout after {self.timeout_s:g} s", status="timeout", code=code)
        report = _find_report(result.stdout, marker)
        if report is None:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return fail(f"crashed (exit {result.returncode}): {tail}"[:300], status="crashed", code=code)
        if report["stage"] == "define":
            return fail(f"error while defining the solution: {report['error']}", status="error", code=code)
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
