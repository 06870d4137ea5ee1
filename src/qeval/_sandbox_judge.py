"""The judge's side of a judged run: hold the tests, call the solution over a socket, record the outcome.

Runs inside the sandboxed judge process (standard library only), which the
solution's process cannot reach: another uid, no shared memory, no file
descriptor of the harness. The suite's code (prefix, setup, tests) is trusted and
runs here; the solution's functions appear in its namespace as proxies
(:func:`_proxy`) whose calls go over the socket and come back as plain values
built by :func:`qeval._sandbox_wire.from_wire`, so every comparison a test makes
runs on objects this process built. What the solution's process sends is never
executed, looked up as an attribute or trusted beyond that: a broken, hostile or
silent peer makes calls fail (or the run time out), never a test pass.

The record sent to the harness (one JSON document, then the socket is closed) is
``{"stage": "define" | "setup", "error": "..."}`` or ``{"stage": "tests",
"results": [None | "Type: message", ...]}``, one entry per test statement.
"""

from __future__ import annotations

import builtins
import json
import os
import sys

from qeval import _sandbox_wire as wire

TYPE_CHECKING = False  # see _sandbox_wire
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class SolutionError(Exception):
    """An exception the solution raised whose type is not a built-in one this process would raise itself."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


class SolutionGone(Exception):
    """The solution's process stopped answering (it exited, was killed, or sent something unreadable)."""


# Built-in exceptions that change control flow in the tests rather than failing them:
# StopIteration ends a map()/all() early, so a solution raising it could turn a check into a no-op.
_NOT_REBUILT = frozenset({"StopIteration", "StopAsyncIteration"})


class Solution:
    """The connection to the solution's process."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._reader = open(fd, "rb", closefd=False)  # noqa: SIM115 - lives as long as the run
        self._calls = 0
        self.gone: str | None = None

    def hello(self) -> dict[str, Any]:
        """The solution's ready message: its callables and modules. Raises SolutionGone or SolutionError."""
        message = self._receive("before the solution was defined")
        if isinstance(message, dict) and isinstance(message.get("error"), str):
            name, _, text = message["error"].partition(": ")
            raise SolutionError(name[:100], text)
        ready = message.get("ready") if isinstance(message, dict) else None
        if not isinstance(ready, dict):
            raise self._lost("sent something that is not a ready message")
        return ready

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            request = {"id": self._calls, "call": name, "args": [wire.to_wire(a) for a in args],
                       "kwargs": {k: wire.to_wire(v) for k, v in kwargs.items()}}
        except (wire.WireError, RecursionError) as exc:
            raise TypeError(f"cannot pass this argument to {name}() in the solution's process: {exc}") from None
        if self.gone is not None:
            raise SolutionGone(self.gone)
        self._calls += 1
        try:
            wire.send(self._fd, request)
        except OSError:
            raise self._lost("closed the connection") from None
        reply = self._receive(f"during the call {name}(...)")
        if not isinstance(reply, dict) or reply.get("id") != request["id"]:
            raise self._lost("sent a reply to a different call")
        raised: Exception | None = None
        try:
            if "raise" in reply:
                type_name, message = reply["raise"]
                raised = _rebuilt(str(type_name), str(message))
            else:
                value = wire.from_wire(reply["return"])
                changed = [(args[int(i)], wire.from_wire(data)) for i, data in dict(reply.get("mutated") or {}).items()]
        except (wire.WireError, KeyError, TypeError, ValueError, IndexError, RecursionError) as exc:
            raise self._lost(f"sent an unreadable reply ({type(exc).__name__}: {str(exc)[:100]})") from None
        if raised is not None:
            raise raised
        for original, now in changed:
            _update_in_place(original, now)
        return value

    def _receive(self, when: str) -> Any:
        if self.gone is not None:
            raise SolutionGone(self.gone)
        try:
            message = wire.receive(self._reader)
        except (wire.WireError, OSError) as exc:
            raise self._lost(f"sent an unreadable message ({exc})") from None
        if message is None:
            raise self._lost(f"ended {when} (it exited, or was killed)")
        return message

    def _lost(self, what: str) -> SolutionGone:
        self.gone = f"the solution's process {what}"
        return SolutionGone(self.gone)


def _rebuilt(type_name: str, message: str) -> Exception:
    """The exception to raise here for one the solution raised: a built-in type by that name, else SolutionError."""
    cls = getattr(builtins, type_name, None) if type_name.isidentifier() and type_name not in _NOT_REBUILT else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - a constructor that wants other arguments (UnicodeError, ...)
            pass
    return SolutionError(type_name[:100], message)


def _update_in_place(original: Any, now: Any) -> None:
    """Apply an in-place change the solution made to an argument (``lst.sort()``) to the test's own object."""
    if type(original) is list and type(now) is list or type(original) is bytearray and type(now) is bytearray:
        original[:] = now
    elif type(original) is dict and type(now) is dict or type(original) is set and type(now) is set:
        original.clear()
        original.update(now)


def _proxy(solution: Solution, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return solution.call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def _names_used(*sources: str) -> set[str]:
    """Every global or attribute name the compiled ``sources`` mention (nested functions included)."""
    names: set[str] = set()
    stack = [compile(s, "<names>", "exec", dont_inherit=True) for s in sources]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, type(code)))
    return names


def _bind_solution(ns: dict[str, Any], solution: Solution, ready: dict[str, Any], entry_point: str,
                   used: set[str]) -> None:
    """Make the solution's names the tests use resolve: the entry point and its other functions as
    proxies, its imported standard-library modules as this process's own copies. Only names the
    suite's code mentions and does not define, never a builtin (a solution announcing a function
    ``abs`` or ``check`` must not replace the tests' own)."""
    import importlib

    free = {n for n in used if n not in ns and not hasattr(builtins, n) and not n.startswith("__")}
    callables = ready.get("callables")
    for name in [str(n) for n in callables] if isinstance(callables, list) else []:
        if name in free:
            ns[name] = _proxy(solution, name)
    modules = ready.get("modules")
    stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    for name, module in dict(modules).items() if isinstance(modules, dict) else []:
        # `import math` binds math: only that module, never another one under its name (a solution
        # naming `site` for `math` would have this process import site and run .pth files).
        if name in free and name not in ns and isinstance(module, str) and module.split(".")[0] == name and name in stdlib:
            try:
                ns[name] = importlib.import_module(module)
            except Exception:  # noqa: BLE001,S110 - then the tests meet a NameError, as they would without it
                pass
    ns[entry_point] = _proxy(solution, entry_point)


def judge(job: dict[str, Any], solution: Solution) -> dict[str, Any]:
    """Run the job's tests against ``solution``; the record for the harness."""
    setup, tests, prefix = str(job["setup"]), [str(t) for t in job["tests"]], str(job["prefix"])
    setup_lines = setup.splitlines()

    def why(exc: BaseException, src: str) -> str:
        msg = str(exc)[:200]
        if not msg:  # a bare `assert` inside setup code (HumanEval's check) says nothing: name its line
            line, tb = None, exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "setup.py":
                    line = tb.tb_lineno
                tb = tb.tb_next
            ok = line is not None and 0 < line <= len(setup_lines)
            msg = (setup_lines[line - 1].strip() if ok and line else src)[:200]
        name = exc.type_name if isinstance(exc, SolutionError) else type(exc).__name__
        return f"{name}: {msg}"

    try:
        ready = solution.hello()
    except (SolutionError, SolutionGone) as exc:
        return {"stage": "define", "error": why(exc, "")[:300]}
    ns: dict[str, Any] = {"__name__": "__qeval_tests__"}
    try:
        # The prompt's own helpers (HumanEval's encode_cyclic) come from the suite, not from the solution.
        prefix_code = compile(prefix, "prefix.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        prefix_code = None  # a prompt that is not a program by itself: it only ever supplied helpers
    try:
        if prefix_code is not None:
            exec(prefix_code, ns)
        _bind_solution(ns, solution, ready, str(job["entry_point"]), _names_used(setup, *tests))
        exec(compile(setup, "setup.py", "exec", dont_inherit=True), ns)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from suite code is its error too
        return {"stage": "setup", "error": why(exc, "")[:300]}
    results: list[str | None] = []
    for src in tests:
        try:
            exec(compile(src, "tests.py", "exec", dont_inherit=True), ns)
            results.append(None)
        except BaseException as exc:  # noqa: BLE001
            results.append(why(exc, src))
    return {"stage": "tests", "results": results}


def main(job: dict[str, Any], harness_fd: int, solution_fd: int) -> None:
    """Judge ``job`` against the solution on ``solution_fd``; send the record on ``harness_fd``."""
    record = judge(job, Solution(solution_fd))
    os.close(solution_fd)  # the solution's process sees the end of the calls and exits
    data = json.dumps(record).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(harness_fd, view):]
    os.close(harness_fd)
