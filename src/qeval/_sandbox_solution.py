"""The solution's side of a judged run: define the solution, then answer the judge's calls.

Runs inside the sandboxed solution process (standard library only). Nothing here is
trusted: the solution shares this interpreter and may rewrite any of it. Whatever
it makes this process send, the judge reads as plain data (:mod:`qeval._sandbox_wire`)
and checks itself, so the worst a subverted server can do is answer a call wrongly,
which is what a wrong solution does anyway.

Protocol, one JSON line per message on the socket to the judge: first
``{"ready": {"callables": [...], "modules": {name: module}}}`` (the solution's
top-level functions and imported modules, so tests that use them, e.g. ``math`` in
an MBPP assert, resolve) or ``{"error": "Type: message"}``; then for each
``{"id": n, "call": name, "args": [...], "kwargs": {...}}`` one of
``{"id": n, "return": value, "mutated": {position: value}}`` (arguments the call
changed in place), ``{"id": n, "raise": [type name, message]}``.
"""

from __future__ import annotations

import types

from qeval import _sandbox_wire as wire

TYPE_CHECKING = False  # see _sandbox_wire
if TYPE_CHECKING:
    from typing import Any

_MUTABLE = (list, dict, set, bytearray)


def main(code: str, fd: int) -> None:
    """Run ``code`` as the solution and serve calls on socket ``fd`` until the judge hangs up."""
    ns: dict[str, Any] = {"__name__": "__qeval_solution__"}
    try:
        exec(compile(code, "solution.py", "exec", dont_inherit=True), ns)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the judge reports it
        wire.send(fd, {"error": describe(exc)})
        return
    callables = [k for k, v in ns.items() if not k.startswith("__") and callable(v) and not isinstance(v, type)]
    modules = {k: v.__name__ for k, v in ns.items() if isinstance(v, types.ModuleType) and isinstance(v.__name__, str)}
    wire.send(fd, {"ready": {"callables": callables, "modules": modules}})
    with open(fd, "rb", closefd=False) as reader:
        while True:
            request = wire.receive(reader)
            if request is None:
                return
            wire.send(fd, answer(ns, request))


def answer(ns: dict[str, Any], request: Any) -> dict[str, Any]:
    """Run one call and describe its outcome as plain data."""
    call_id = request.get("id")
    try:
        args = [wire.from_wire(a) for a in request["args"]]
        kwargs = {str(k): wire.from_wire(v) for k, v in request["kwargs"].items()}
        name = str(request["call"])
    except BaseException as exc:  # noqa: BLE001
        return {"id": call_id, "raise": ["RuntimeError", f"bad call from the judge: {describe(exc)}"]}
    fn = ns.get(name)
    if fn is None:  # the solution's code did not define it after all (a conditional def, a del)
        return {"id": call_id, "raise": ["NameError", f"name {name!r} is not defined"]}
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the judge raises it in the test
        return {"id": call_id, "raise": [_type_name(exc), _message(exc)]}
    try:
        sent = request["args"]
        mutated = {str(i): now for i, a in enumerate(args)
                   if isinstance(a, _MUTABLE) and (now := wire.to_wire(a)) != sent[i]}
        return {"id": call_id, "return": wire.to_wire(value), "mutated": mutated}
    except (wire.WireError, RecursionError, ValueError) as exc:
        return {"id": call_id, "raise": ["TypeError", f"the solution returned a value the judge cannot read: {exc}"]}


def describe(exc: BaseException) -> str:
    return f"{_type_name(exc)}: {_message(exc)}"


def _type_name(exc: BaseException) -> str:
    name = type(exc).__name__
    return name if isinstance(name, str) else "Exception"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "<unprintable>"
