"""``code_exec``: pull a Python function out of the completion and run the case's tests.

``expected`` is ``{"entry_point": "name", "tests": "assert name(1) == 2\\n...", "reference": "..."}``;
``reference`` (a known-good solution) is ignored by the scorer and used by the suite's own tests.
Two optional keys carry the HumanEval and MBPP protocols (see :mod:`qeval.suite_formats`):
``prefix``, source the completion continues (a HumanEval prompt: the program is
prefix + completion, or prefix followed by the completion's own full definition),
and ``setup``, source run after the solution and before the tests (HumanEval's
``check`` definition, MBPP's ``test_setup_code``); neither counts as a test.
Each top-level statement of ``tests`` runs separately, so the case value is the
fraction of tests passed; the case passes when all do. The run is a judged run of
:mod:`qeval.sandbox`: the solution runs in a sandboxed process of its own (own uid and
network namespace where possible, resource limits, wall timeout), the tests in a
separate judge process that calls the solution's functions over a socket and compares
the plain values it gets back itself. The verdict is the judge's record; nothing the
solution's process prints, returns or does can write it. ``details["outcome"]`` is one
of :data:`OUTCOMES` (see docs/security.md).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from qeval.metric_specs import aggregate_names, pass_rate, share_spec
from qeval.results import MetricSpec, MetricValue, Score
from qeval.scorers._base import fail

if TYPE_CHECKING:
    from qeval.sandbox import JudgedRun, SandboxResult

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
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = (
        pass_rate("every unit test passes"),
        MetricSpec("tests_passed", "mean share of a case's unit tests that pass", "higher", "case_mean"),
        share_spec("timeout_rate", "share of cases stopped at the time limit"),
        share_spec("syntax_error_rate", "share of completions that are not valid Python"),
    )
    metric_names: ClassVar[tuple[str, ...]] = aggregate_names(metric_specs)
    """What ``aggregate`` returns (SLOs are checked against it before anything runs)."""

    def __post_init__(self) -> None:
        for arg in ("timeout_s", "memory_mb"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{arg} must be a number > 0, got {value!r}")

    def score(self, completion: str, expected: Any) -> Score:
        from qeval.sandbox import JudgeJob, SandboxLimits, run_judged

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
        job = JudgeJob(entry_point=entry, tests=tuple(tests), setup=setup, prefix=prefix)
        return _verdict(run_judged(code, job, limits), code, self.timeout_s)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]:
        from qeval.stats import mean_ci, rate

        return {
            "tests_passed": mean_ci([s.value for s in scores]),
            "timeout_rate": rate([s.details.get("status") == "timeout" for s in scores]),
            "syntax_error_rate": rate([s.details.get("status") == "syntax_error" for s in scores]),
        }


def _verdict(run: JudgedRun, code: str, timeout_s: float) -> Score:
    """The case's score from the judge's record, never from anything the solution's process printed or returned.

    Passed needs all of: the judge's record saying every test passed, the judge exiting
    normally, and the solution's process ending normally (exit 0 once the judge hung up).
    Anything else is one of the other outcomes; a signal that ended the solution's process
    or the wall clock take precedence over the record.
    """
    sol, judge = run.solution, run.judge
    base = {"code": code, "network": sol.isolation.get("network")}

    def bad(outcome: str, reason: str, status: str | None = None, value: float = 0.0, **more: Any) -> Score:
        return fail(reason[:300], value, status=status or outcome, outcome=outcome, **base, **more)

    def tail(result: SandboxResult) -> str:
        return (result.stderr.strip().splitlines() or ["no output"])[-1]

    if "sandbox_error" in (sol.status, judge.status):
        return bad("sandbox_error", f"sandbox error: {tail(sol if sol.status == 'sandbox_error' else judge)}")
    for who, result in (("", sol), ("the judge process: ", judge)):
        if result.status == "resource_limit":
            sig = signal_name(result.signal)
            which = {"SIGXFSZ": "file size", "SIGXCPU": "CPU time", "SIGKILL": "CPU time"}.get(sig, sig)
            return bad("resource_limit", f"{who}resource limit: {which} ({sig})")
        if result.status == "crashed":
            return bad("crashed", f"{who}crashed: killed by {signal_name(result.signal)}")
    if "timeout" in (sol.status, judge.status):
        return bad("timeout", f"timeout after {timeout_s:g} s")
    report = run.record
    if judge.status != "ok" or not isinstance(report, dict) or report.get("stage") not in ("define", "setup", "tests"):
        return bad("failed", f"no test verdict: the judge process ended (exit code {judge.returncode}) without "
                             f"recording the tests' outcome; its last stderr line: {tail(judge)}", status="no_verdict")
    if report["stage"] in ("define", "setup"):
        err = str(report.get("error"))
        if report["stage"] == "define" and sol.status != "ok":  # it exited before it was ready: say how
            err += f" (exit code {sol.returncode}; last stderr line: {tail(sol)})"
        outcome = "resource_limit" if _is_resource_error(err) else "failed"
        if report["stage"] == "setup":
            return bad(outcome, f"error in the tests' setup code: {err}", status="error")
        return bad(outcome, f"error while defining the solution: {err}", status="error")
    errors = report.get("results")
    if not isinstance(errors, list):
        return bad("failed", "malformed test record", status="no_verdict")
    n_pass = sum(e is None for e in errors)
    counts = {"tests_passed": n_pass, "tests_total": len(errors)}
    value = n_pass / max(1, len(errors))
    if sol.status != "ok":  # e.g. a MemoryError in its server, an atexit hook that exits 1
        outcome = "resource_limit" if _is_resource_error(tail(sol)) else "failed"
        return bad(outcome, f"the solution's process exited with code {sol.returncode} ({n_pass}/{len(errors)} "
                            f"tests passed); last stderr line: {tail(sol)}", value=value, status="no_verdict", **counts)
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
