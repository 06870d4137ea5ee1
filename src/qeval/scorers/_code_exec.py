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
:mod:`qeval.sandbox` (own uid and network namespace where possible, resource limits,
wall timeout). The verdict comes from the runner's nonce-authenticated record on a
private file descriptor plus a normal exit, never from the program's output or exit
code alone; ``details["outcome"]`` is one of :data:`OUTCOMES` (see docs/security.md).
"""

from __future__ import annotations

import ast
import json
import re
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
        defining = [b for b in blocks if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", b, re.MULTILINE)]
        source = "\n\n".join(defining or blocks)
    else:
        m = re.search(r"^[ \t]*(?:def|import|from|class)\b", completion, re.MULTILINE)
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
import sys as __qeval_sys, os as __qeval_os, json as __qeval_json
def __qeval_main():
    # Everything the runner needs is bound here, before the generated code runs, so rebinding
    # builtins or module attributes from the solution does not change how results are recorded.
    _os_write, _dumps, _exec, _compile, _BaseException = __qeval_os.write, __qeval_json.dumps, exec, compile, BaseException
    _type, _str, _len, _isinstance = type, str, len, isinstance
    _rfd, _wfd = int(__qeval_sys.argv[1]), int(__qeval_sys.argv[2])
    _nonce = __qeval_os.read(_rfd, 256).decode().strip()
    __qeval_os.close(_rfd)
    del __qeval_sys.argv[1:]
    def report(obj):
        # The only trusted channel: the nonce, then the outcome, on the inherited fd (not stdout).
        _os_write(_wfd, (_nonce + _dumps(obj) + "\\n").encode())
    setup_lines = {setup!r}.splitlines()
    def why(e, src):
        # A bare `assert` inside setup code (HumanEval's check) says nothing: name its line instead.
        try:
            msg = _str(e)[:200]
        except _BaseException:
            msg = "<unprintable>"
        if not msg:
            line, tb = None, e.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "setup.py":
                    line = tb.tb_lineno
                tb = tb.tb_next
            ok = line is not None and 0 < line <= _len(setup_lines)
            msg = (setup_lines[line - 1].strip() if ok else src)[:200]
        name = _type(e).__name__
        return (name if _isinstance(name, _str) else "Exception") + ": " + msg
    ns = {{"__name__": "__qeval_solution__"}}
    try:
        _exec(_compile({code!r}, "solution.py", "exec"), ns)
    except _BaseException as e:
        report({{"stage": "define", "error": why(e, "")[:300]}})
        return
    try:
        _exec(_compile({setup!r}, "setup.py", "exec"), ns)
    except _BaseException as e:
        report({{"stage": "setup", "error": why(e, "")[:300]}})
        return
    results = []
    for src in {tests!r}:
        try:
            _exec(_compile(src, "tests.py", "exec"), ns)
            results.append(None)
        except _BaseException as e:
            results.append(why(e, src))
    report({{"stage": "tests", "results": results}})
__qeval_main()
"""

OUTCOMES = ("passed", "failed", "timeout", "crashed", "resource_limit", "sandbox_error")
"""How every run ends (``details["outcome"]``); ``details["status"]`` keeps the finer reason
(``syntax_error``, ``missing_function``, ``error`` for the solution's or setup's own exception)."""


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
                        status="syntax_error", outcome="failed", code=prefix + completion)
        if not re.search(rf"\bdef\s+{re.escape(entry)}\s*\(", code):
            return fail(f"no function named {entry!r} in the completion", status="missing_function", outcome="failed", code=code)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError) as exc:
            return fail(f"syntax error: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})",
                        status="syntax_error", outcome="failed", code=code)
        if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry for n in ast.walk(tree)):
            return fail(f"no function named {entry!r} in the completion", status="missing_function", outcome="failed", code=code)

        limits = SandboxLimits(wall_s=float(self.timeout_s), cpu_s=max(1, int(self.timeout_s) + 1),
                               memory_bytes=int(self.memory_mb) * 1024 * 1024)
        result = run_python(_RUNNER.format(code=code, setup=setup, tests=tests), limits, verdict_channel=True)
        return _verdict(result, code, self.timeout_s)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        from qeval.stats import mean_ci, rate

        return {
            "tests_passed": mean_ci([s.value for s in scores]),
            "timeout_rate": rate([s.details.get("status") == "timeout" for s in scores]),
            "syntax_error_rate": rate([s.details.get("status") == "syntax_error" for s in scores]),
        }


def _verdict(result: Any, code: str, timeout_s: float) -> Score:
    """The case's score from the harness's own record, never from the program's output or exit code alone.

    Passed needs all three: a normal exit (status ``ok``), the nonce-authenticated record the
    runner writes on its private fd after every test ran, and every test in it passing.
    """
    base = {"code": code, "network": result.isolation.get("network")}

    def bad(outcome: str, reason: str, status: str | None = None, value: float = 0.0, **more: Any) -> Score:
        return fail(reason[:300], value, status=status or outcome, outcome=outcome, **base, **more)

    tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    if result.status == "sandbox_error":
        return bad("sandbox_error", f"sandbox error: {tail}")
    if result.status == "timeout":
        return bad("timeout", f"timeout after {timeout_s:g} s")
    if result.status == "resource_limit":
        sig = signal_name(result.signal)
        which = {"SIGXFSZ": "file size", "SIGXCPU": "CPU time", "SIGKILL": "CPU time"}.get(sig, sig)
        return bad("resource_limit", f"resource limit: {which} ({sig})")
    if result.status == "crashed":
        return bad("crashed", f"crashed: killed by {signal_name(result.signal)}")
    report = None
    if result.verdict is not None:
        try:
            report = json.loads(result.verdict)
        except ValueError:
            report = None
    if not isinstance(report, dict) or report.get("stage") not in ("define", "setup", "tests"):
        if _is_resource_error(tail):
            return bad("resource_limit", f"resource limit: memory ({tail})")
        return bad("failed", f"no test verdict: the program exited (code {result.returncode}) before the harness "
                             f"recorded the tests' outcome; last stderr line: {tail}", status="no_verdict")
    if report["stage"] in ("define", "setup"):
        err = str(report.get("error"))
        outcome = "resource_limit" if _is_resource_error(err) else "failed"
        where = "defining the solution" if report["stage"] == "define" else "the tests' setup code"
        return bad(outcome, f"error while {where}: {err}" if report["stage"] == "define"
                   else f"error in {where}: {err}", status="error")
    errors = report.get("results")
    if not isinstance(errors, list):
        return bad("failed", "malformed test record", status="no_verdict")
    n_pass = sum(e is None for e in errors)
    counts = {"tests_passed": n_pass, "tests_total": len(errors)}
    value = n_pass / max(1, len(errors))
    if result.returncode != 0:
        return bad("failed", f"the program exited with code {result.returncode} after the tests ran", value=value,
                   status="no_verdict", **counts)
    if n_pass == len(errors):
        return Score(1.0, True, None, {"status": "passed", "outcome": "passed", **counts, **base})
    first = next(str(e) for e in errors if e is not None)
    outcome = "resource_limit" if any(_is_resource_error(str(e)) for e in errors if e is not None) else "failed"
    return fail(f"{len(errors) - n_pass}/{len(errors)} tests failed; first: {first}"[:600], value,
                status="failed", outcome=outcome, **counts, **base)


_RESOURCE_ERRORS = ("MemoryError", "[Errno 27]", "[Errno 24]", "[Errno 11]", "File too large", "Too many open files")
"""Exceptions that mean a sandbox limit was hit: address space, file size (EFBIG), open files
(EMFILE), processes (EAGAIN from fork)."""


def _is_resource_error(err: str) -> bool:
    return any(marker in err for marker in _RESOURCE_ERRORS)


def signal_name(sig: int | None) -> str:
    import signal as _signal

    if sig is None:
        return "no signal"
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
