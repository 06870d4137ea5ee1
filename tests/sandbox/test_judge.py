"""The judge's side of a judged run, in this process against a scripted peer on a socketpair.

The peer plays the solution's process: either the real server (:mod:`qeval._sandbox_solution`)
with some solution code, or a hostile script that sends whatever it likes. Whatever it sends,
the judge's comparisons run on values it built itself and only a correct answer passes a test.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from qeval import _sandbox_solution
from qeval._sandbox_judge import Solution, judge
from qeval._sandbox_wire import MAX_LINE_BYTES

Peer = Callable[[int], None]


def judged(peer: Peer, tests: list[str], setup: str = "", prefix: str = "", entry: str = "solve") -> dict[str, Any]:
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=_run_peer, args=(peer, theirs), daemon=True)
    thread.start()
    try:
        return judge({"entry_point": entry, "tests": tests, "setup": setup, "prefix": prefix}, Solution(ours.fileno()))
    finally:
        ours.close()
        thread.join(10)


def _run_peer(peer: Peer, sock: socket.socket) -> None:
    try:
        peer(sock.fileno())
    except OSError:
        pass  # the judge hung up
    finally:
        sock.close()


def solution(code: str) -> Peer:
    return lambda fd: _sandbox_solution.main(code, fd)


def scripted(ready: Any, reply: Callable[[dict[str, Any]], Any]) -> Peer:
    """A hostile peer: sends ``ready``, then ``reply(request)`` for every request (raw bytes are sent as is)."""
    def peer(fd: int) -> None:
        def send(obj: Any) -> None:
            os.write(fd, obj if isinstance(obj, bytes) else (json.dumps(obj) + "\n").encode())

        send(ready)
        with open(fd, "rb", closefd=False) as reader:
            for line in iter(reader.readline, b""):
                send(reply(json.loads(line)))
    return peer


READY = {"ready": {"callables": ["solve"], "modules": {}}}


def test_a_correct_solution_passes_and_a_wrong_one_fails_with_the_failing_line() -> None:
    tests = ["assert solve(1) == 2", "assert solve(2) == 3"]
    assert judged(solution("def solve(x):\n    return x + 1"), tests) == {"stage": "tests", "results": [None, None]}
    setup = "def check(candidate):\n    assert candidate(1) == 2\n"
    record = judged(solution("def solve(x):\n    return x"), ["check(solve)"], setup)
    assert record == {"stage": "tests", "results": ["AssertionError: assert candidate(1) == 2"]}


def test_a_value_that_equals_anything_stays_in_the_solutions_process() -> None:
    code = ("class Anything:\n    def __eq__(self, other):\n        return True\n"
            "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
            "def solve(x):\n    return Anything() if x == 1 else Liar(0)\n")
    record = judged(solution(code), ["assert solve(1) == 2", "assert solve(2) == 3"])
    assert record["results"][0].startswith("TypeError: the solution returned a value the judge cannot read")
    assert record["results"][1] == "AssertionError: assert solve(2) == 3"  # Liar(0) crossed as the int 0


def test_forged_names_never_replace_builtins_or_the_suites_own_code() -> None:
    ready = {"ready": {"callables": ["solve", "all", "abs", "check", "helper", "map"],
                       "modules": {"math": "os", "json": "not.stdlib.x"}}}
    prefix = "def helper(x):\n    return 2 * x\n\ndef solve(x):\n    '''stub'''\n"
    setup = "def check(candidate):\n    assert all(map(lambda x: candidate(x) == x + 1, [1, 2]))\n"
    tests = ["assert abs(-3) == 3", "check(solve)", "assert helper(2) == 4", "assert all([solve(1)])",
             "assert math.sqrt(4) == 2"]
    record = judged(scripted(ready, lambda req: {"id": req["id"], "return": True}), tests, setup, prefix)
    # abs, all, map and check are this process's own; helper is the prompt's; solve is the peer (True)
    assert record["results"][0] is None and record["results"][2] is None and record["results"][3] is None
    assert record["results"][1].startswith("AssertionError")
    assert record["results"][4] == "NameError: name 'math' is not defined"  # not os under math's name


def test_exceptions_come_back_as_builtin_types_except_those_that_change_control_flow() -> None:
    errors = iter([["ValueError", "bad"], ["StopIteration", ""], ["MyError", "mine"], ["SystemExit", "0"],
                   ["UnicodeDecodeError", "x"]])
    tests = ["try:\n    solve(1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no raise')",
             "assert all(map(solve, [1, 2]))",  # a StopIteration would end map() and make this pass
             "solve(1)", "solve(1)", "solve(1)"]
    record = judged(scripted(READY, lambda req: {"id": req["id"], "raise": next(errors)}), tests)
    assert record["results"] == [None, "StopIteration: assert all(map(solve, [1, 2]))", "MyError: mine",
                                 "SystemExit: 0", "UnicodeDecodeError: x"]


def test_a_peer_that_misbehaves_fails_every_remaining_call() -> None:
    replies: list[Any] = [
        {"id": 5, "return": 2},  # a reply to another call
        b"x" * (MAX_LINE_BYTES + 2) + b"\n",  # too long
    ]
    for bad in replies:
        record = judged(scripted(READY, lambda req, bad=bad: bad), ["assert solve(1) == 2", "assert solve(2) == 3"])
        assert all(r and r.startswith("SolutionGone: the solution's process") for r in record["results"]), record
    for bad in (b"[" * 200_000 + b"\n", b'{"id": 0, "return": {"t": 1}}\n', b'{"id": 0, "return": {"zz": 2}}\n',
                b'{"id": 0, "return": 2, "mutated": {"7": [1]}}\n', b'{"id": 0}\n', b'{"stage": "tests"}\n'):
        record = judged(scripted(READY, lambda req, bad=bad: bad), ["assert solve(1) == 2"])
        assert record["results"][0].startswith("SolutionGone"), (bad[:40], record)


def test_a_peer_that_ends_or_lies_before_it_is_ready_is_a_definition_error() -> None:
    assert judged(lambda fd: None, ["assert solve(1) == 2"])["stage"] == "define"
    assert judged(scripted({"stage": "tests", "results": [None]}, lambda req: None), ["solve(1)"])["stage"] == "define"
    record = judged(solution("import nonexistent_module_xyz"), ["solve(1)"])
    assert record == {"stage": "define", "error": "ModuleNotFoundError: No module named 'nonexistent_module_xyz'"}


def test_in_place_changes_to_arguments_reach_the_tests_objects() -> None:
    code = "def solve(xs, d):\n    xs.sort()\n    d['k'] = 1\n    return None\n"
    tests = ["xs, d = [3, 1, 2], {}\nsolve(xs, d)\nassert xs == [1, 2, 3] and d == {'k': 1}"]
    assert judged(solution(code), tests)["results"] == [None]


def test_the_solutions_modules_and_helpers_resolve_for_the_tests() -> None:
    code = "import math\ndef area(r):\n    return math.pi * r * r\ndef unit():\n    return 1\n"
    tests = ["assert math.isclose(area(unit()), 3.14159, rel_tol=1e-4)"]  # MBPP asserts lean on the solution's imports
    assert judged(solution(code), tests, entry="area")["results"] == [None]


def test_arguments_that_cannot_cross_fail_the_test_clearly() -> None:
    record = judged(solution("def solve(f):\n    return f(1)"), ["assert solve(lambda x: x + 1) == 2"])
    assert record["results"][0].startswith("TypeError: cannot pass this argument to solve()")
